"""Inputs for the end-to-end CPU trainer tests: a small arithmetic parquet set in verl's schema, and a
reward function for a random tiny policy.

Why a stand-in reward: the tiny policy has random weights, so every response is gibberish and a real
step judge gives every one of them the same verdict (first step wrong, RTS 0): an all-negative group
with no spread, which SGPO rightly leaves at zero advantage. To exercise the graded path end to end the
tests grade instead by a property that does vary between gibberish responses (the share of characters
that could belong to an arithmetic line). It plays the judge's role — a graded value ``g`` in [0, 1]
encoded with SGPO's band — and nothing else; the real judge is tested on its own.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from reward.encoding import encode_reward

#: Characters an arithmetic step line is made of; the stand-in grade is their share of the response.
ARITH_CHARACTERS = set("0123456789+-*= \n")
DATA_SOURCE = "sgpo/arith"
BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def arith_rows(num_problems: int, seed: int, split: str) -> list[dict]:
    """Two-operation problems in verl's RL schema (problem and reference solution in ``extra_info``)."""
    rng = random.Random(f"{seed}:{split}")
    rows = []
    for index in range(num_problems):
        a, b, c = rng.randint(1, 20), rng.randint(1, 20), rng.randint(1, 9)
        first = a + b
        answer = first * c
        problem = (
            f"Compute ({a} + {b}) * {c}. Show each step on its own line as `a op b = c`, "
            "then finish with \\boxed{N}."
        )
        solution = f"{a} + {b} = {first}\n{first} * {c} = {answer}"
        rows.append(
            {
                "data_source": DATA_SOURCE,
                "prompt": [{"role": "user", "content": problem}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": str(answer)},
                "extra_info": {
                    "split": split,
                    "index": index,
                    "problem": problem,
                    "reference_solution": solution,
                    "answer": str(answer),
                },
            }
        )
    return rows


def write_arith_parquet(out_dir: Path, train: int = 8, val: int = 4, seed: int = 0) -> tuple[Path, Path]:
    """Write ``train.parquet`` and ``val.parquet`` under ``out_dir``; returns their paths."""
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, count in (("train", train), ("val", val)):
        path = out_dir / f"{split}.parquet"
        pd.DataFrame(arith_rows(count, seed, split)).to_parquet(path)
        paths.append(path)
    return paths[0], paths[1]


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict | None = None,
    graded: bool = True,
    reward_band: float = 0.5,
    **unused,
) -> dict:
    """Correct → 1; wrong → ``c·g`` with the stand-in grade when ``graded`` (sgpo), else 0 (grpo)."""
    boxed = BOXED.findall(solution_str)
    correct = bool(boxed) and boxed[-1].strip() == str(ground_truth).strip()
    grade = None
    if graded and not correct:
        grade = sum(ch in ARITH_CHARACTERS for ch in solution_str) / max(len(solution_str), 1)
    return {"score": encode_reward(correct, grade, reward_band), "correct": float(correct)}


def build_coin_policy(out_dir: Path, rows: list[dict], steps: int = 300, seed: int = 0) -> Path:
    """A tiny policy that has memorised the answers of ``rows`` and boxes, for each, the right answer or
    the answer plus one, about half the time each: groups of such responses are mostly mixed (some
    members right, some wrong), the case where SGPO must equal GRPO. Built with the arithmetic policy's
    tokenizer, model and training loop (data_prep/arith_policy.py) in a few seconds."""
    import torch

    from data_prep.arith_policy import (ArithPolicyConfig, build_tokenizer, encode_chat_example, new_policy_model,
                                        pretrain, render_chatml, save_policy)

    prompts = [list(row["prompt"]) for row in rows]
    answers = [int(row["reward_model"]["ground_truth"]) for row in rows]
    tokenizer = build_tokenizer([render_chatml(p) for p in prompts] + ["\\boxed{12}"], vocab_size=320)
    examples = [encode_chat_example(tokenizer, prompt, f"\\boxed{{{boxed}}}")
                for prompt, answer in zip(prompts, answers) for boxed in (answer, answer + 1)]
    settings = ArithPolicyConfig(seed=seed, train_steps=steps, warmup_steps=10, batch_size=16, lr=3e-3, hidden_size=64,
                                 intermediate_size=128, num_hidden_layers=2, num_attention_heads=2)
    torch.manual_seed(seed)
    model = new_policy_model(tokenizer, settings)
    pretrain(model, tokenizer, examples, settings, lambda step, loss: None)
    save_policy(model, tokenizer, out_dir)
    return out_dir
