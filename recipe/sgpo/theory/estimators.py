"""The shipped advantage estimators, called through verl's registry on groups of encoded rewards.

``grpo`` is verl 0.9.1's ``compute_grpo_outcome_advantage``; ``sgpo`` is ``recipe/sgpo/advantage.py``
(importing it registers the name). Each response is one token whose reward is the encoded scalar, so the
estimator's per-token advantage is the response's advantage.
"""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import OmegaConf
from verl.trainer.ppo.core_algos import get_adv_estimator_fn

import recipe.sgpo.advantage  # noqa: F401  (registers "sgpo" with verl)

#: The estimators compared, and whether each one's run asks the step-wise judge: GRPO is the baseline
#: with the binary reward (``reward.sgpo.judge_scope=off``), SGPO grades wrong chains.
JUDGE_USED = {"grpo": False, "sgpo": True}
ESTIMATORS = tuple(JUDGE_USED)


def algorithm_config(estimator: str, reward_band: float) -> object:
    """The trainer's ``algorithm`` section as verl would pass it (GRPO's std normalisation on)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; expected one of {ESTIMATORS}")
    return OmegaConf.create(
        {"adv_estimator": estimator, "norm_adv_by_std_in_grpo": True, "sgpo": {"reward_band": reward_band}}
    )


def group_advantages(estimator: str, rewards: np.ndarray, reward_band: float) -> np.ndarray:
    """Advantages ``(num_groups, G)`` of ``rewards`` ``(num_groups, G)``, one group per row, one call.

    Calls ``get_adv_estimator_fn(estimator)`` with ``token_level_rewards`` ``(num_groups·G, 1)``, an all-ones
    ``response_mask`` and ``index`` = the row number, exactly the arguments verl's trainer passes.
    """
    num_groups, group_size = rewards.shape
    config = algorithm_config(estimator, reward_band)
    token_rewards = torch.as_tensor(rewards.reshape(-1, 1), dtype=torch.float32)
    kwargs = dict(
        token_level_rewards=token_rewards,
        response_mask=torch.ones_like(token_rewards),
        index=np.repeat(np.arange(num_groups), group_size),
        config=config,
    )
    if estimator == "grpo":  # verl's compute_advantage passes this flag to grpo explicitly
        kwargs["norm_adv_by_std_in_grpo"] = True
    advantages, _ = get_adv_estimator_fn(estimator)(**kwargs)
    return advantages.reshape(num_groups, group_size).double().numpy()


def distinct_group_advantages(estimator: str, rewards: np.ndarray, reward_band: float) -> np.ndarray:
    """Same as :func:`group_advantages`, but the estimator is called once per *distinct* group.

    Both estimators treat a group's members symmetrically (the advantage of a member depends on its own
    reward and the group's multiset of rewards), so sampled groups are sorted, deduplicated, scored once
    and scattered back. verl's ``grpo`` loops over rows in Python (about 20 µs a row); Monte-Carlo runs
    sample the same few multisets over and over, so this keeps the whole reproduction within minutes.
    ``tests/test_theory_on_cpu.py`` checks that the result equals the direct call (to float32 rounding:
    the sorted members are summed in another order).
    """
    order = np.argsort(rewards, axis=1, kind="stable")
    sorted_rewards = np.take_along_axis(rewards, order, axis=1)
    distinct, inverse = np.unique(sorted_rewards, axis=0, return_inverse=True)
    sorted_advantages = group_advantages(estimator, distinct, reward_band)[inverse.reshape(-1)]
    advantages = np.empty_like(sorted_advantages)
    np.put_along_axis(advantages, order, sorted_advantages, axis=1)
    return advantages
