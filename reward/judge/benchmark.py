"""Judge-quality benchmark: run any judge backend over a labelled set and report ProcessBench's metrics.

Metrics (as ProcessBench reports them, plus two of ours):

* ``error_acc``: on samples that contain an error, the share whose predicted first wrong step is exactly
  the labelled one;
* ``correct_acc``: on samples without an error, the share predicted "no error";
* ``f1``: the harmonic mean of the two (ProcessBench's headline number);
* ``exact``: exact-step agreement over all samples (``none`` = ``none`` counts);
* ``not_judged``: share of samples without a usable verdict (each counts as a wrong prediction above),
  with the failure reasons.

Datasets (``--dataset``):

* ``champ``: the 540 first-wrong-step annotations that the PyPI package ``champ-dataset`` ships (model
  solutions to 270 competition problems, annotated with the character span of the first wrong step). The
  response is segmented with *our* rule (``reward.sgpo.judge.steps``) and the label is the step that holds
  the annotation's first character. Reference: the CHAMP solution and answer.
* ``processbench``: ProcessBench's format (``--input``: a ``.json`` list, ``.jsonl`` or ``.parquet`` with
  ``problem``, ``steps``, ``label`` = 0-based index of the earliest wrong step or -1); its steps are used as
  given, and there is no reference (the judge sees the problem alone).
* ``arith``: a synthetic labelled set of the CPU demo's arithmetic task (``--arith-size`` items, seeded,
  half with one injected error): the rule verifier's home ground.
* ``judge_file``: a judge-example file written by ``python -m data_prep write judge_...`` (``--input``:
  ``data/<name>/<split>.parquet``, e.g. the held-out ``data/judge_arith/test.parquet``). The judge
  segments each row's ``response`` itself (or takes ProcessBench's steps as given), as in SGPO training;
  the label is the one the example was written with, in the project's step numbering.

Usage::

    python -m reward.judge.benchmark --dataset champ --set backend=rule
    python -m reward.judge.benchmark --dataset champ --limit 100 --serve MODEL_DIR \\
        --set 'openai.extra_body={structured_outputs: {regex: "VERDICT: (none|[1-9][0-9]?)"}}'
    python -m reward.judge.benchmark --dataset processbench --input gsm8k.json \\
        --set openai.base_url=http://HOST:8000/v1 --set openai.model=Qwen/QwQ-32B --set openai.max_tokens=16384

``--set KEY=VALUE`` sets ``reward.sgpo.judge.KEY`` (values parsed as YAML); ``--config FILE`` reads a YAML
mapping of the same settings first. ``--output FILE.jsonl`` writes one line per sample.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from reward.judge import JudgeConfig, JudgeRequest, build_judge
from reward.judge.steps import segment_response

#: Seed of the synthetic arithmetic set.
ARITH_SEED = 1234
#: Operand range and operation count of the synthetic arithmetic set (as the CPU demo's defaults).
ARITH_OPERANDS = (1, 20)
ARITH_OPS = (2, 4)


@dataclass(frozen=True)
class LabelledSample:
    """One labelled response: ``label`` is the 1-based first wrong step, or None when it has no error."""

    sample_id: str
    request: JudgeRequest
    label: int | None


# -- datasets ----------------------------------------------------------------------------------------------
def champ_samples(config: JudgeConfig) -> list[LabelledSample]:
    """CHAMP's 540 annotated model solutions, with labels mapped onto our segmentation."""
    import champ_dataset

    dataset = champ_dataset.load("v0")
    samples = []
    for problem_id, problem in dataset.problems.items():
        solution = "\n".join(step.text for step in problem.solution.steps)
        for source, annotation in sorted((problem.fws_annotations or {}).items()):
            request = JudgeRequest(problem=problem.text, reference_answer=problem.answer, response=annotation.text,
                                   reference_solution=solution)
            label = None
            if annotation.start_idx is not None:
                steps = segment_response(annotation.text, config.steps.max_steps, config.steps.min_step_chars,
                                         config.steps.think_part).steps
                label = next((s.index for s in steps if s.end > annotation.start_idx), len(steps))
            samples.append(LabelledSample(f"{problem_id}|{source}", request, label))
    return samples


def processbench_samples(path: Path) -> list[LabelledSample]:
    """ProcessBench items (``id``, ``problem``, ``steps``, ``label``: 0-based earliest error or -1)."""
    if path.suffix == ".parquet":
        import pandas

        rows = pandas.read_parquet(path).to_dict("records")
    elif path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        rows = json.loads(path.read_text())
    samples = []
    for position, row in enumerate(rows):
        missing = [key for key in ("problem", "steps", "label") if key not in row]
        if missing:
            raise ValueError(f"{path} item {position} lacks {', '.join(missing)}: not ProcessBench's format")
        steps = tuple(str(step) for step in row["steps"])
        label = int(row["label"])
        request = JudgeRequest(problem=row["problem"], reference_answer="", response="\n\n".join(steps), steps=steps)
        samples.append(LabelledSample(str(row.get("id", position)), request, None if label < 0 else label + 1))
    return samples


def judge_file_samples(path: Path, config: JudgeConfig) -> list[LabelledSample]:
    """The rows of a judge-example parquet (``data_prep/judge_data.py``), labels in the project's steps.

    Raises ``ValueError`` when the file is not a judge-example file, or when the judge's step settings
    differ from those the file was written with (its labels would not match the judge's steps).
    """
    import pyarrow.parquet as pq

    if not path.is_file():
        raise ValueError(f"--input {path}: no such file (write it with `python -m data_prep write judge_...`)")
    table = pq.read_table(path)
    needed = {"problem", "response", "steps", "steps_as_given", "first_error_step", "reference_answer",
              "reference_solution", "source_id"}
    if missing := needed - set(table.column_names):
        raise ValueError(f"{path} lacks {', '.join(sorted(missing))}: not a judge-example file from data_prep")
    manifest = path.with_name(path.name.replace(".parquet", ".manifest.json"))
    if manifest.is_file():
        written = json.loads(manifest.read_text()).get("steps", {})
        current = {"max_steps": config.steps.max_steps, "min_step_chars": config.steps.min_step_chars,
                   "max_judged_chars": config.steps.max_judged_chars, "think_part": config.steps.think_part}
        if any(written.get(key, value) != value for key, value in current.items()):
            raise ValueError(f"{path} was written with step settings {written}; the judge uses {current}: "
                             "set the same reward.sgpo.judge.steps.* (or rewrite the file)")
    samples = []
    for row in table.to_pylist():
        steps = tuple(row["steps"]) if row["steps_as_given"] else None
        request = JudgeRequest(problem=row["problem"], reference_answer=row["reference_answer"] or "",
                               response=row["response"], steps=steps, reference_solution=row["reference_solution"])
        samples.append(LabelledSample(row["source_id"], request, row["first_error_step"]))
    return samples


def arith_samples(size: int, seed: int = ARITH_SEED) -> list[LabelledSample]:
    """Synthetic arithmetic problems in the CPU demo's format; every other one has one injected error."""
    rng = random.Random(seed)
    samples = []
    for index in range(size):
        ops = [rng.choice("+-*") for _ in range(rng.randint(*ARITH_OPS))]
        operands = [rng.randint(*ARITH_OPERANDS) for _ in range(len(ops) + 1)]
        expression = str(operands[0])
        for op, operand in zip(ops, operands[1:]):
            expression = f"({expression} {op} {operand})"
        expression = expression[1:-1] if expression.startswith("(") else expression
        reference, value = [], operands[0]
        for op, operand in zip(ops, operands[1:]):
            result = value + operand if op == "+" else value - operand if op == "-" else value * operand
            reference.append(f"{value} {op} {operand} = {result}")
            value = result
        wrong_step = rng.randint(1, len(ops)) if index % 2 else None
        lines, value = [], operands[0]
        for step, (op, operand) in enumerate(zip(ops, operands[1:]), start=1):
            result = value + operand if op == "+" else value - operand if op == "-" else value * operand
            if step == wrong_step:
                result += rng.choice([-3, -2, -1, 1, 2, 3])
            lines.append(f"{value} {op} {operand} = {result}")
            value = result
        response = "\n".join(lines) + f"\n\\boxed{{{value}}}"
        problem = (f"Compute {expression}. Show each step on its own line as `a op b = c`, applying one operation "
                   "to the previous result, then finish with \\boxed{N}, where N is the final result.")
        request = JudgeRequest(problem=problem, reference_answer=reference[-1].split(" = ")[-1], response=response,
                               reference_solution="\n".join(reference))
        samples.append(LabelledSample(f"arith-{index}", request, wrong_step))
    return samples


# -- scoring ----------------------------------------------------------------------------------------------
def score(labels: Sequence[int | None], predictions: Sequence[int | None], judged: Sequence[bool]) -> dict[str, Any]:
    """ProcessBench's metrics; a sample without a usable verdict counts as a wrong prediction."""
    hits = [ok and prediction == label for label, prediction, ok in zip(labels, predictions, judged)]
    erroneous = [hit for hit, label in zip(hits, labels) if label is not None]
    correct = [hit for hit, label in zip(hits, labels) if label is None]
    error_acc = sum(erroneous) / len(erroneous) if erroneous else float("nan")
    correct_acc = sum(correct) / len(correct) if correct else float("nan")
    f1 = 2 * error_acc * correct_acc / (error_acc + correct_acc) if error_acc + correct_acc > 0 else 0.0
    return {"samples": len(labels), "erroneous": len(erroneous), "correct": len(correct),
            "error_acc": error_acc, "correct_acc": correct_acc, "f1": f1,
            "exact": sum(hits) / len(hits) if hits else float("nan"),
            "not_judged": 1 - sum(judged) / len(judged) if judged else float("nan")}


async def run_benchmark(samples: Sequence[LabelledSample], config: JudgeConfig, *, concurrency: int,
                        output: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Judge every sample (``concurrency`` at a time) and return the metrics with failure counts."""
    from tqdm import tqdm

    judge = build_judge(config)
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(samples), desc=f"judging ({config.backend})", disable=not progress, file=sys.stderr)

    async def one(sample: LabelledSample):
        async with gate:
            verdict = await judge.judge(sample.request)
        bar.update(1)
        return verdict

    started = time.perf_counter()
    try:
        verdicts = await asyncio.gather(*[one(sample) for sample in samples])
    finally:
        await judge.aclose()
        bar.close()
    elapsed = time.perf_counter() - started
    if output is not None:
        with output.open("w") as handle:
            for sample, verdict in zip(samples, verdicts):
                handle.write(json.dumps({"id": sample.sample_id, "label": sample.label, **asdict(verdict)}) + "\n")
    metrics = score([s.label for s in samples], [v.first_error_step for v in verdicts], [v.judged for v in verdicts])
    metrics["failures"] = dict(Counter(v.failure for v in verdicts if not v.judged))
    metrics["mean_latency_s"] = sum(v.latency_s for v in verdicts) / max(len(verdicts), 1)
    metrics["wall_s"] = elapsed
    return metrics


# -- CLI --------------------------------------------------------------------------------------------------
def _set(mapping: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.removeprefix("reward.sgpo.judge.").split(".")
    node = mapping
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def settings_from_args(config_file: Path | None, assignments: Iterable[str]) -> dict[str, Any]:
    mapping: dict[str, Any] = yaml.safe_load(config_file.read_text()) if config_file else {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {assignment!r}")
        _set(mapping, key.strip(), yaml.safe_load(raw))
    return mapping


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reward.judge.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["champ", "processbench", "arith", "judge_file"], required=True)
    parser.add_argument("--input", type=Path,
                        help="ProcessBench file (.json, .jsonl, .parquet), or a judge-example parquet for judge_file")
    parser.add_argument("--limit", type=int, default=None, help="judge only the first N samples")
    parser.add_argument("--arith-size", type=int, default=200, help="size of the synthetic arithmetic set")
    parser.add_argument("--config", type=Path, help="YAML mapping of reward.sgpo.judge settings")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a reward.sgpo.judge setting, e.g. openai.base_url=http://127.0.0.1:8000/v1")
    parser.add_argument("--serve", type=Path, metavar="MODEL_DIR",
                        help="start a CPU vLLM judge server for MODEL_DIR and point the openai backend at it")
    parser.add_argument("--concurrency", type=int, default=16, help="samples in flight at once")
    parser.add_argument("--output", type=Path, help="write one JSON line per sample here")
    args = parser.parse_args(argv)

    try:
        mapping = settings_from_args(args.config, args.set)
        server = None
        if args.serve is not None:
            from reward.judge.cpu_server import CPUJudgeServer

            server = CPUJudgeServer(args.serve, served_model_name="judge").start()
            _set(mapping, "backend", "openai")
            _set(mapping, "openai.base_url", server.base_url)
            _set(mapping, "openai.model", "judge")
        config = JudgeConfig.from_mapping(mapping)
        if args.dataset in ("processbench", "judge_file") and args.input is None:
            raise ValueError(f"--dataset {args.dataset} needs --input FILE")
        samples = (champ_samples(config) if args.dataset == "champ"
                   else processbench_samples(args.input) if args.dataset == "processbench"
                   else judge_file_samples(args.input, config) if args.dataset == "judge_file"
                   else arith_samples(args.arith_size))
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    samples = samples[: args.limit] if args.limit else samples
    try:
        metrics = asyncio.run(run_benchmark(samples, config, concurrency=args.concurrency, output=args.output))
    finally:
        if server is not None:
            server.stop()
    from reward.judge.prompt import PromptTemplate

    template = PromptTemplate.load(config.prompt_version, config.prompt_file)
    metrics = {"dataset": args.dataset, "backend": config.backend, "prompt": template.version,
               "prompt_sha256": template.sha256[:12], **metrics}
    print(json.dumps(metrics))
    print(f"{args.dataset} ({metrics['samples']} samples, {metrics['erroneous']} with an error), {config.backend}: "
          f"error acc {metrics['error_acc']:.3f}, correct acc {metrics['correct_acc']:.3f}, F1 {metrics['f1']:.3f}, "
          f"exact {metrics['exact']:.3f}, not judged {metrics['not_judged']:.3f} {metrics['failures']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
