"""Accuracy of a policy folder on a validation parquet, sampled with plain transformers, outside verl.

    .venv/bin/python tests/benchmarks/policy_accuracy_on_val.py --val outputs/compare_cpu/grpo/seed0/data/arith/val.parquet \
        [--policy cache/models/arith-policy] [--samples 4] [--seeds 0 1]

The reference for the trainer's step-0 validation (``val-core/.../acc/mean@N``), which sees the same policy and the
same problems through verl's agent loop and the CPU rollout server: the same sampling (temperature 1, no top-k or
top-p), the grader's own answer extractor, ``--samples`` per problem. Prints the accuracy per seed with all
samples in one left-padded batch (as the rollout server batches them) and with one sample per batch (no padding),
so that a padding effect would show. Results and the comparison with the trainer: docs/cpu_training.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from data_prep.arith_policy import DEFAULT_ARITH_POLICY_DIR, count_correct_samples  # noqa: E402

#: Longest response sampled (the main job's --response-length default).
MAX_NEW_TOKENS = 128


def accuracy(model, tokenizer, prompts: list[str], answers: list[str], batches: list[list[int]], seed: int) -> float:
    import torch

    torch.manual_seed(seed)
    correct = sum(count_correct_samples(model, tokenizer, [prompts[i] for i in rows], [answers[i] for i in rows], MAX_NEW_TOKENS)
                  for rows in batches)
    return correct / sum(len(rows) for rows in batches)


def main() -> int:
    import pandas as pd
    from transformers import AutoModelForCausalLM, AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, default=DEFAULT_ARITH_POLICY_DIR)
    parser.add_argument("--val", type=Path, required=True, help="a val.parquet the main job wrote")
    parser.add_argument("--samples", type=int, default=4, help="samples per problem (the main job's --val-samples)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.policy)
    model = AutoModelForCausalLM.from_pretrained(args.policy).eval()
    frame = pd.read_parquet(args.val)
    prompts = [tokenizer.apply_chat_template(list(p), add_generation_prompt=True, tokenize=False) for p in frame["prompt"]]
    answers = [str(r["ground_truth"]).strip() for r in frame["reward_model"]]
    rows = [i for i in range(len(prompts)) for _ in range(args.samples)]
    for seed in args.seeds:
        together = accuracy(model, tokenizer, prompts, answers, [rows], seed)
        alone = accuracy(model, tokenizer, prompts, answers, [[i] for i in rows], seed)
        print(f"seed {seed}: {100 * together:.1f} % (one batch of {len(rows)}), {100 * alone:.1f} % (one sample per batch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
