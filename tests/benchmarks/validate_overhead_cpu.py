"""Validate the step-time model of the judge overhead (recipe/sgpo/overhead) against measured CPU steps.

    .venv/bin/python tests/benchmarks/validate_overhead_cpu.py [--out outputs/overhead_validation]
                                                                [--judge-row FILE] [--reuse] [--steps 2]

One CPU vLLM judge server (SmolLM2, the main job's ``--judge llm``) is started and serves everything:

1. The judge row: ``tests/benchmarks/bench_judge_throughput.py`` against it (output tokens/s against
   concurrency with the main job's capped answers), unless ``--judge-row`` gives one.
2. Measured runs of the CPU main job (``python -m recipe.sgpo.cpu_demo --judge-url <the server>``, the
   ``arith`` policy), each with its GRPO baseline of the same settings and seed (:data:`CASES`): group
   size, judge concurrency and schedule vary; the all-negative share varies from step to step with the
   policy. The server's Prometheus counters (``/metrics``: generation tokens, finished requests) are read
   before and after each run: their ratio is the run's mean judge answer length in tokens.
3. For every SGPO step ``s`` the model is given only what it cannot know (all times in seconds):

   - from the **GRPO baseline's step s**: ``generation_s = timing_s/gen`` (the policy's static batches,
     grading included) and ``update_s = timing_s/step − gen − testing − save_checkpoint``;
   - from the **SGPO run's step s**: the batch (prompts, group size), the measured all-negative share and
     accuracy (the model's phase), and the judge client's concurrency; from the whole run, the mean judge
     answer length;
   - the judge row's throughput table.

   It predicts the SGPO step (``timing_s/step`` without validation and checkpoint) and the judge calls
   (used: ``sgpo/judge/called``; discarded by the eager schedule: ``sgpo/judge/wasted``), and the report
   compares them with the measurement: relative step-time error (tolerance :data:`STEP_TIME_TOLERANCE`)
   and used calls (exact); wasted calls depend on the order the grader finishes a batch in (drawn).

``--reuse`` keeps run folders that already hold the requested steps (re-analysis without re-running).
Writes ``<out>/validation.json`` and prints a markdown table (docs/judge_overhead.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from recipe.cpu_backend.rollout import MAX_BATCH_SEQUENCES  # noqa: E402
from recipe.sgpo.cpu_demo import read_metrics  # noqa: E402
from recipe.sgpo.offline.store import replacing, write_json  # noqa: E402
from recipe.sgpo.overhead import predict  # noqa: E402

#: Largest relative step-time error counted as a match (the machine is shared: step times vary with load).
STEP_TIME_TOLERANCE = 0.25
#: reward.sgpo.judge.openai.max_concurrency of the trainer yaml, times the CPU platform's one reward worker.
DEFAULT_JUDGE_CONCURRENCY = 32
#: Settings every run shares (small validation: its time is excluded from the compared step time anyway).
COMMON_ARGS = ("--model", "arith", "--train-size", "64", "--val-size", "2", "--val-samples", "1", "--seed", "0")


@dataclass(frozen=True)
class Case:
    """One measured SGPO setting and the GRPO baseline it is compared against."""

    name: str
    baseline: str
    batch_size: int
    group_size: int
    judge_concurrency: int = DEFAULT_JUDGE_CONCURRENCY
    schedule: str = "after_group"

    def sgpo_args(self, judge_url: str) -> list[str]:
        overrides = [f"reward.sgpo.judge.openai.max_concurrency={self.judge_concurrency}",
                     f"reward.sgpo.judge_schedule={self.schedule}"]
        return ["--judge", "llm", "--judge-url", judge_url, *self.shape_args(), "--", *overrides]

    def shape_args(self) -> list[str]:
        return ["--batch-size", str(self.batch_size), "--group-size", str(self.group_size)]


#: The measured settings. Batch × group stays at the CPU rollout's one static batch (64 sequences), so the
#: policy never generates while the judge server works on the same two cores (on GPUs they are separate).
CASES = (
    Case("b16-n4", "grpo-b16-n4", 16, 4),
    Case("b16-n4-judge-concurrency-4", "grpo-b16-n4", 16, 4, judge_concurrency=4),
    Case("b16-n4-eager", "grpo-b16-n4", 16, 4, schedule="eager"),
    Case("b8-n8", "grpo-b8-n8", 8, 8),
)


def ensure_run(out: Path, name: str, args: list[str], steps: int, reuse: bool) -> dict[int, dict[str, Any]]:
    """Metrics by step of one CPU main-job run, running it unless ``reuse`` and its steps are there."""
    folder = out / name
    metrics = read_metrics(folder / "logs" / "metrics.jsonl")
    if reuse and all("timing_s/step" in metrics.get(step, {}) for step in range(1, steps + 1)):
        print(f"[validate] reusing {folder}", flush=True)
        return metrics
    # args last: they may end with `-- <hydra overrides>`
    command = [sys.executable, "-m", "recipe.sgpo.cpu_demo", *COMMON_ARGS, "--steps", str(steps),
               "--run-dir", str(folder), *args]
    print(f"[validate] {name}: {' '.join(command[1:])}", flush=True)
    status = subprocess.run(command, cwd=REPO_ROOT).returncode
    metrics = read_metrics(folder / "logs" / "metrics.jsonl")
    missing = [step for step in range(1, steps + 1) if "timing_s/step" not in metrics.get(step, {})]
    if status != 0 or missing:
        raise SystemExit(f"[validate] run {name} failed (exit {status}; steps without timing: {missing}); "
                         f"see {folder / 'logs' / 'trainer.log'}")
    return metrics


def server_counters(base_url: str) -> dict[str, float]:
    """Generated tokens, prompt tokens and finished requests so far, from the vLLM server's ``/metrics``."""
    wanted = {"vllm:generation_tokens_total": "generation_tokens", "vllm:prompt_tokens_total": "prompt_tokens",
              "vllm:request_success_total": "requests"}
    text = urllib.request.urlopen(base_url.removesuffix("/v1") + "/metrics", timeout=30).read().decode()
    counters = dict.fromkeys(wanted.values(), 0.0)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in wanted:
            counters[wanted[name]] += float(line.rsplit(" ", 1)[1])  # summed over labels (finish reasons)
    return counters


def answer_tokens(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean output and prompt tokens of the requests served between two counter readings."""
    requests = after["requests"] - before["requests"]
    if requests <= 0:
        raise SystemExit("[validate] the judge server served no request during an SGPO run")
    return {"requests": requests, "output_tokens": (after["generation_tokens"] - before["generation_tokens"]) / requests,
            "prompt_tokens": (after["prompt_tokens"] - before["prompt_tokens"]) / requests}


def outside_generation_s(step: dict[str, Any]) -> float:
    """Seconds of a step spent outside generation, validation and checkpointing (the model's update_s)."""
    return step["timing_s/step"] - step["timing_s/gen"] - step.get("timing_s/testing", 0.0) \
        - step.get("timing_s/save_checkpoint", 0.0)


def compared_step_s(step: dict[str, Any]) -> float:
    """The measured step without validation and checkpointing (what the model predicts)."""
    return step["timing_s/step"] - step.get("timing_s/testing", 0.0) - step.get("timing_s/save_checkpoint", 0.0)


def model_inputs(case: Case, baseline: dict[str, Any], measured: dict[str, Any], judge_row: dict[str, Any],
                 output_tokens: float) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(run, judge, phase) rows of the model for one measured SGPO step and its baseline step."""
    share = float(measured["sgpo/groups/all_negative_share"])
    accuracy = float(measured["sgpo/accuracy"])
    run = {
        "train_batch_size": case.batch_size, "n": case.group_size,
        "generation_s": baseline["timing_s/gen"], "static_batch_sequences": MAX_BATCH_SEQUENCES,
        "update_s": outside_generation_s(baseline), "grade_s": 0.0,
        # lengths only size the judged text, whose cost the measured judge rate already holds (prefill_cost 0)
        "response_mean_tokens": float(measured["response_length/mean"]), "response_cv": 0.5,
        "max_response_length": float(measured["response_length/max"]), "wrong_length_factor": 1.0,
        "judged_tokens_mean": None,
    }
    judge = {**judge_row, "max_in_flight": case.judge_concurrency, "output_tokens": output_tokens}
    phase = {"all_negative_share": share,
             "other_accuracy": min(1.0, accuracy / (1.0 - share)) if share < 1.0 else 0.0}
    return run, judge, phase


def compare(case: Case, baseline: dict[int, dict], sgpo: dict[int, dict], judge_row: dict, tokens: dict,
            steps: int) -> list[dict]:
    rows = []
    for step in range(1, steps + 1):
        run, judge, phase = model_inputs(case, baseline[step], sgpo[step], judge_row, tokens["output_tokens"])
        predicted = predict(run, judge, phase, case.schedule, seed=step)
        measured_s = compared_step_s(sgpo[step])
        rows.append({
            "case": case.name, "step": step, "all_negative_share": phase["all_negative_share"],
            "judge_output_tokens": tokens["output_tokens"],
            "judge_concurrency": case.judge_concurrency, "schedule": case.schedule,
            "grpo_step_s": compared_step_s(baseline[step]),
            "measured_step_s": measured_s, "predicted_step_s": predicted.step_s,
            "error": predicted.step_s / measured_s - 1.0,
            "measured_ratio": measured_s / compared_step_s(baseline[step]), "predicted_ratio": predicted.ratio,
            "measured_calls": int(round(sgpo[step].get("sgpo/judge/called", 0))),
            # sgpo/judge/called counts the calls whose verdict is used; wasted (eager) ones separately
            "predicted_calls": predicted.judge_calls - predicted.wasted_calls,
            "measured_wasted": int(round(sgpo[step].get("sgpo/judge/wasted", 0))),
            "predicted_wasted": predicted.wasted_calls,
        })
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| setting | step | all-neg share | judge answer tokens | GRPO step s | SGPO step s measured | "
             "predicted | error | ratio measured / predicted | judge calls measured / predicted (wasted) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['step']} | {100 * r['all_negative_share']:.0f} % | {r['judge_output_tokens']:.0f} | "
            f"{r['grpo_step_s']:.1f} | "
            f"{r['measured_step_s']:.1f} | {r['predicted_step_s']:.1f} | {100 * r['error']:+.0f} % | "
            f"{r['measured_ratio']:.2f} / {r['predicted_ratio']:.2f} | {r['measured_calls']} / {r['predicted_calls']} "
            f"({r['measured_wasted']} / {r['predicted_wasted']}) |")
    within = sum(1 for r in rows if abs(r["error"]) <= STEP_TIME_TOLERANCE)
    calls = sum(1 for r in rows if r["measured_calls"] == r["predicted_calls"])
    lines.append("")
    lines.append(f"Step time within ±{100 * STEP_TIME_TOLERANCE:.0f} %: {within} of {len(rows)} steps; "
                 f"judge calls exact: {calls} of {len(rows)}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "overhead_validation")
    parser.add_argument("--judge-row", type=Path, default=None, help="bench_judge_throughput.py --out file")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="keep runs that already have the steps")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from data_prep.models import ensure_smollm2
    from recipe.sgpo.cpu_demo import JUDGE_MODEL_NAME
    from reward.judge.cpu_server import CPUJudgeServer

    judge_path = args.judge_row or args.out / "judge_row.json"
    tokens_path = args.out / "judge_tokens.json"
    measured_tokens = json.loads(tokens_path.read_text()) if args.reuse and tokens_path.exists() else {}
    server = CPUJudgeServer(ensure_smollm2(), served_model_name=JUDGE_MODEL_NAME,
                            log_path=args.out / "judge_server.log").start()
    try:
        if args.judge_row is None and not (args.reuse and judge_path.exists()):
            bench = [sys.executable, str(REPO_ROOT / "tests" / "benchmarks" / "bench_judge_throughput.py"),
                     "--base-url", server.base_url, "--out", str(judge_path)]
            if subprocess.run(bench, cwd=REPO_ROOT).returncode != 0:
                raise SystemExit("[validate] the judge throughput benchmark failed")
        judge_row = json.loads(judge_path.read_text())
        baselines: dict[str, dict] = {}
        rows: list[dict] = []
        for case in CASES:
            if case.baseline not in baselines:
                baselines[case.baseline] = ensure_run(args.out, case.baseline,
                                                      ["--estimator", "grpo", *case.shape_args()], args.steps, args.reuse)
            before = server_counters(server.base_url)
            sgpo = ensure_run(args.out, case.name, case.sgpo_args(server.base_url), args.steps, args.reuse)
            after = server_counters(server.base_url)
            if after["requests"] > before["requests"] or case.name not in measured_tokens:
                measured_tokens[case.name] = answer_tokens(before, after)
                write_json(tokens_path, measured_tokens)
            rows += compare(case, baselines[case.baseline], sgpo, judge_row, measured_tokens[case.name], args.steps)
    finally:
        server.stop()

    table = markdown(rows)
    print(table)
    result = {"rows": rows, "judge_row": str(judge_path), "tolerance": STEP_TIME_TOLERANCE,
              "command": " ".join(["tests/benchmarks/validate_overhead_cpu.py", *(argv or sys.argv[1:])]),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "date": datetime.date.today().isoformat()}
    write_json(args.out / "validation.json", result)
    with replacing(args.out / "validation.md") as temporary:
        temporary.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
