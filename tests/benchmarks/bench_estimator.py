"""Time the `sgpo` estimator against verl's own `grpo` estimator, in the same process, on the same batch.

    .venv/bin/python tests/benchmarks/bench_estimator.py [--repeats 5]

Batches: 1,024 prompts × 8 responses × 4,096 response tokens (a realistic RL step) and 128 × 8 × 1,024.
Rewards are binary for grpo (its input) and SGPO-encoded for sgpo (about half the groups all-negative,
90 % of wrong answers judged). Prints the median wall time of each and the ratio sgpo / grpo
(target ≤ 1.0). Both run through verl's registry call path (`get_adv_estimator_fn`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for sgpo_batches

from sgpo_batches import random_batch  # noqa: E402
from verl.trainer.ppo.core_algos import get_adv_estimator_fn  # noqa: E402

import recipe.sgpo.advantage  # noqa: E402,F401  (registers sgpo if the plugin did not)

SHAPES = ((1024, 8, 4096), (128, 8, 1024))
ALGORITHM = {"adv_estimator": "sgpo", "norm_adv_by_std_in_grpo": True, "sgpo": {"reward_band": 0.5}}


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    grpo, sgpo = get_adv_estimator_fn("grpo"), get_adv_estimator_fn("sgpo")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'batch (prompts x n x tokens)':>30} {'grpo s':>9} {'sgpo s':>9} {'sgpo/grpo':>10}")
    for prompts, n, tokens in SHAPES:
        graded_rewards, mask, index = random_batch(prompts, n, tokens, graded=True, seed=0)
        binary_rewards = (graded_rewards >= 1).float() * graded_rewards
        t_grpo = median_seconds(lambda: grpo(binary_rewards, mask, index), args.repeats)
        t_sgpo = median_seconds(lambda: sgpo(graded_rewards, mask, index, config=ALGORITHM), args.repeats)
        print(f"{f'{prompts} x {n} x {tokens}':>30} {t_grpo:9.4f} {t_sgpo:9.4f} {t_sgpo / t_grpo:10.3f}")


if __name__ == "__main__":
    main()
