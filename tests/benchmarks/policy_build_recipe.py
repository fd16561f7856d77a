"""Build the arithmetic policy with other settings and say what it learned: the time, and by operation count
the accuracy, the share of bare guesses and the accuracy of the worked solutions.

    .venv/bin/python tests/benchmarks/policy_build_recipe.py --set split_words=False --set architecture=llama \
        --set train_steps=2500 [--out DIR] [--problems-per-length 96]
    .venv/bin/python tests/benchmarks/policy_build_recipe.py --policy cache/models/arith-policy   # diagnose only

``--set FIELD=VALUE`` overrides one field of ``data_prep.arith_policy.ArithPolicyConfig`` (any number of times;
the value is read as the field's type). The folder is built by the module's own ``build_arith_policy`` (so the
tokenizer check and the report are those of a real build) into ``--out`` (default: a temporary folder,
deleted afterwards), then loaded back as verl loads it (``AutoTokenizer``, ``AutoModelForCausalLM``) and
sampled at temperature 1, one sample per problem, on problems of the stream ``"<seed>:diagnostic"`` (apart
from every other stream). A response is a guess when it opens with ``\\boxed``; the main job's learning rests
on the policy guessing often (low accuracy) while its worked solutions are often right (what RL moves it to).
Results: docs/cpu_training.md ("Why the target is missed").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from data_prep import arith_policy as ap  # noqa: E402
from data_prep.arith import ArithConfig, generate_problems  # noqa: E402
from reward.answers import extract_final_answer  # noqa: E402

#: Opening of a bare guess (the habit stage's ``\\boxed{N}`` with no steps).
GUESS_OPENING = "\\boxed"


def parse_override(text: str, fields: dict[str, dataclasses.Field]) -> tuple[str, object]:
    """``FIELD=VALUE`` as a (field, typed value) pair; an error names the unknown field or the bad value."""
    name, separator, raw = text.partition("=")
    if not separator or name not in fields:
        raise SystemExit(f"--set {text!r}: expected FIELD=VALUE with FIELD one of {sorted(fields)}")
    kind = type(getattr(ap.ArithPolicyConfig(), name))
    if kind is bool:
        if raw not in ("True", "False"):
            raise SystemExit(f"--set {text!r}: {name} is True or False")
        return name, raw == "True"
    try:
        return name, kind(raw)
    except ValueError:
        raise SystemExit(f"--set {text!r}: {name} must be a {kind.__name__}") from None


def diagnose(folder: Path, config: ap.ArithPolicyConfig, per_length: int) -> dict[int, dict[str, float]]:
    """By operation count: accuracy, guess share, accuracy of guesses and of worked solutions (None if none)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    arith, rows = config.arith_config(), {}
    for num_ops in range(arith.min_ops, arith.max_ops + 1):
        length_config = ArithConfig(**{**asdict(arith), "min_ops": num_ops, "max_ops": num_ops})
        problems = generate_problems(per_length, config.seed, split="diagnostic", config=length_config)
        prompts = [tokenizer.apply_chat_template(ap.prompt_messages(p), add_generation_prompt=True, tokenize=False)
                   for p in problems]
        torch.manual_seed(config.seed + num_ops)
        texts = ap.sample_responses(model, tokenizer, prompts, config.max_new_tokens)
        guesses, worked = [], []
        for text, problem in zip(texts, problems):
            answer = extract_final_answer(text).answer
            right = answer is not None and answer.strip() == str(problem.answer)
            (guesses if text.lstrip().startswith(GUESS_OPENING) else worked).append(right)
        share = lambda outcomes: sum(outcomes) / len(outcomes) if outcomes else None  # noqa: E731
        rows[num_ops] = {"accuracy": share(guesses + worked), "guess_share": len(guesses) / len(problems),
                         "guess_accuracy": share(guesses), "worked_accuracy": share(worked)}
    return rows


def percent(value: float | None) -> str:
    return "  -  " if value is None else f"{100 * value:4.0f}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--policy", type=Path, help="diagnose this built folder instead of building one")
    parser.add_argument("--out", type=Path, help="where to build (kept); default: a temporary folder, deleted")
    parser.add_argument("--problems-per-length", type=int, default=96)
    args = parser.parse_args()
    fields = {f.name: f for f in dataclasses.fields(ap.ArithPolicyConfig) if f.name != "task"}
    config = ap.ArithPolicyConfig(**dict(parse_override(text, fields) for text in args.overrides))
    if args.policy and args.overrides:
        raise SystemExit("--policy diagnoses a built folder with its own settings; drop --set")
    scratch = None
    if args.policy:
        folder = args.policy
        config = ap.ArithPolicyConfig(**{k: v for k, v in ap.build_report(folder)["settings"].items()})
    else:
        scratch = None if args.out else Path(tempfile.mkdtemp(prefix="policy-recipe-"))
        folder = args.out or scratch / "policy"
        started = time.perf_counter()
        ap.build_arith_policy(folder, config, show_progress=sys.stderr.isatty())
        print(f"build: {time.perf_counter() - started:.0f} s from the call")
    try:
        report = ap.build_report(folder)
        default = ap.settings_of(ap.ArithPolicyConfig())
        changed = {k: v for k, v in report["settings"].items() if v != default[k]}
        print(f"settings changed from the default: {json.dumps(changed)}")
        print(f"report: build_seconds {report['build_seconds']:.0f}, final_loss {report['final_loss']:.3f}, "
              f"accuracy {json.dumps(report['sampled_accuracy_by_operations'])}")
        print(f"{'ops':>3} {'accuracy':>9} {'guesses':>8} {'guess acc':>10} {'worked acc':>11}   "
              f"({args.problems_per_length} problems per length, stream '{config.seed}:diagnostic')")
        for num_ops, row in diagnose(folder, config, args.problems_per_length).items():
            print(f"{num_ops:>3} {percent(row['accuracy']):>9} {percent(row['guess_share']):>8} "
                  f"{percent(row['guess_accuracy']):>10} {percent(row['worked_accuracy']):>11}")
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
