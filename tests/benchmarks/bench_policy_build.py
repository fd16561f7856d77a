"""Time one pre-training step of the arithmetic policy under each speed-up tried, against the float32 default,
in the same process, on the same batches.

    .venv/bin/python tests/benchmarks/bench_policy_build.py [--steps 60]

The build (``data_prep/arith_policy.py``) is compute-bound training of a 0.9 M-parameter Qwen2 at batch 16;
this prints, for each variant, the mean seconds per step after ``WARMUP`` steps and the ratio to the
baseline (below 1: faster). Variants: bf16 autocast; float32 matmuls at bf16 precision
(``torch.set_float32_matmul_precision("medium")``); ``torch.compile`` (its compile time is printed apart);
one thread instead of the default; the same batches without their lone-space tokens (a tokenizer merging
the space into the number). Results are recorded in docs/cpu_training.md ("Why the target is missed").
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from data_prep import arith_policy as ap  # noqa: E402
from data_prep.arith import generate_problems  # noqa: E402

#: Steps excluded from the mean (allocator and, for torch.compile, compilation).
WARMUP = 10
#: Problems the batches are drawn from (enough for every solution length).
PROBLEMS = 4000


def batches(steps: int):
    config = ap.ArithPolicyConfig()
    problems = generate_problems(PROBLEMS, config.seed, split="pretrain", config=config.arith_config())
    slips = random.Random(f"{config.seed}:slips")
    solutions = [ap.slipped_solution(problem, slips, config) for problem in problems]
    tokenizer = ap.build_tokenizer([ap.render_chatml(ap.prompt_messages(p)) for p in problems] + solutions, config.vocab_size)
    by_length: dict[int, list] = {}
    for example in ap.encode_examples(tokenizer, problems, solutions):
        by_length.setdefault(len(example[0]), []).append(example)
    order, lengths = random.Random(0), sorted(by_length)
    weights = [len(by_length[n]) for n in lengths]
    chosen = []
    for _ in range(steps):
        pool = by_length[order.choices(lengths, weights)[0]]
        chosen.append(ap._batch([order.choice(pool) for _ in range(config.batch_size)], tokenizer.pad_token_id))
    return tokenizer, config, chosen


def seconds_per_step(tokenizer, config, chosen, *, autocast=False, compiled=False, matmul="highest", threads=None):
    previous_threads = torch.get_num_threads()
    torch.set_float32_matmul_precision(matmul)
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = ap.new_policy_model(tokenizer, config)
        model.train()
        forward = torch.compile(model) if compiled else model
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
        times = []
        for input_ids, labels, attention in chosen:
            started = time.perf_counter()
            precision = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
            with precision:
                loss = forward(input_ids=input_ids, attention_mask=attention, labels=labels).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            times.append(time.perf_counter() - started)
        return statistics.mean(times[WARMUP:]), sum(times[:WARMUP])
    finally:
        torch.set_float32_matmul_precision("highest")
        torch.set_num_threads(previous_threads)


def without_lone_spaces(tokenizer, chosen):
    """The same batches with every lone-space token (``Ġ``, before each number) removed: the sequence lengths a
    tokenizer merging that space into the number would give (the text is no longer valid; only the shapes count)."""
    space = tokenizer.convert_tokens_to_ids("\u0120")
    shorter = []
    for input_ids, labels, attention in chosen:
        kept = [(row != space) & (mask == 1) for row, mask in zip(input_ids, attention)]
        shorter.append(ap._batch([(ids[keep].tolist(), target[keep].tolist())
                                  for ids, target, keep in zip(input_ids, labels, kept)], tokenizer.pad_token_id))
    return shorter


VARIANTS = {
    "bf16 autocast": {"autocast": True},
    "fp32 matmul at bf16 precision": {"matmul": "medium"},
    "torch.compile": {"compiled": True},
    "one thread": {"threads": 1},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help=f"steps per variant, the first {WARMUP} not timed")
    args = parser.parse_args()
    tokenizer, config, chosen = batches(args.steps)
    baseline, _ = seconds_per_step(tokenizer, config, chosen)
    print(f"float32 (default, {torch.get_num_threads()} threads): {1000 * baseline:.1f} ms/step")
    for name, options in VARIANTS.items():
        mean, first = seconds_per_step(tokenizer, config, chosen, **options)
        print(f"{name}: {1000 * mean:.1f} ms/step, {mean / baseline:.2f} x the default (first {WARMUP} steps {first:.1f} s)")
    # Timed against a default run just before it: a gain of ~10 % is within the machine's drift over the
    # minutes the variants above take, so the first baseline would not do.
    shorter = without_lone_spaces(tokenizer, chosen)
    paired_baseline, _ = seconds_per_step(tokenizer, config, chosen)
    mean, _ = seconds_per_step(tokenizer, config, shorter)
    width, shorter_width = (statistics.mean(batch[0].shape[1] for batch in group) for group in (chosen, shorter))
    print(f"no lone-space tokens (width {width:.1f} -> {shorter_width:.1f}): {1000 * mean:.1f} ms/step, "
          f"{mean / paired_baseline:.2f} x the default timed just before it ({1000 * paired_baseline:.1f} ms/step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
