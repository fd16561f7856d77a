"""The main job on its embedded CPU default (interim form: an end-to-end check of config and estimator).

Composes the shipped `sgpo_trainer.yaml` with verl 0.9.1's `ppo_trainer`, runs the fail-fast checks
that do not need the reward manager, and feeds a synthetic batch through verl's own
`compute_advantage` with `sgpo` and with `grpo`, printing how many all-negative groups each one
teaches. (A later change turns this into real CPU training with verl's trainer.)
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipe.sgpo.cpu_demo", description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=256, help="prompts in the synthetic batch")
    parser.add_argument("--group-size", type=int, default=8, help="responses per prompt (rollout.n)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from recipe.sgpo.preflight import check_plugin_installed, compose_config

    problem = check_plugin_installed()
    if problem:
        print(f"[sgpo] {problem}", file=sys.stderr)
        return 1
    config = compose_config([f"actor_rollout_ref.rollout.n={args.group_size}"])
    from verl import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    from reward.encoding import encode_reward

    gen = np.random.default_rng(args.seed)
    band = float(config.algorithm.sgpo.reward_band)
    rewards, uids = [], []
    for prompt in range(args.prompts):
        solve_rate = 0.0 if gen.random() < 0.6 else gen.random()  # most early groups are all-negative
        for _ in range(args.group_size):
            correct = gen.random() < solve_rate
            rewards.append(encode_reward(correct, None if correct else float(gen.random()), band))
            uids.append(f"p{prompt}")
    scores = torch.tensor(rewards, dtype=torch.float32)
    index = np.array(uids, dtype=object)
    width = 16
    token_rewards = torch.zeros(len(rewards), width)
    token_rewards[:, -1] = scores
    mask = torch.ones(len(rewards), width)

    all_negative = np.array([bool((scores[index == uid] < 1).all()) for uid in index])
    print(f"[sgpo] config: adv_estimator={config.algorithm.adv_estimator}, sgpo={dict(config.algorithm.sgpo)}")
    print(f"[sgpo] batch: {args.prompts} prompts x {args.group_size}; all-negative groups: "
          f"{all_negative.reshape(args.prompts, args.group_size)[:, 0].mean():.0%}")
    for estimator in ("grpo", "sgpo"):
        rewards_for = token_rewards if estimator == "sgpo" else (token_rewards >= 1).float()
        data = DataProto.from_dict({"token_level_rewards": rewards_for, "response_mask": mask}, {"uid": index})
        advantages = compute_advantage(data, adv_estimator=estimator, config=config.algorithm).batch["advantages"]
        per_response = advantages[:, 0]
        taught = (per_response[torch.as_tensor(all_negative)] != 0).float().mean().item()
        print(f"[sgpo] {estimator}: share of all-negative responses with a non-zero advantage = {taught:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
