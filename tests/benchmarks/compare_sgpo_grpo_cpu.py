"""SGPO vs GRPO on the CPU: the main job run twice with the same seed and settings, one table, one plot.

Runs ``recipe.sgpo.cpu_demo`` with ``--estimator grpo`` (the baseline: binary reward, no judge) and then
``--estimator sgpo`` (rule-based step verifier), each a full ``verl.trainer.main_ppo`` launch on the CPU,
and writes to ``--out`` (default ``outputs/compare_cpu``):

* ``results.md`` — per step: accuracy, share of all-negative groups, share of all-negative responses with
  a non-zero advantage, the actor's gradient norm, seconds per step, for both; then the mean step time of each and SGPO's time
  overhead as a ratio ``mean(sgpo step s) / mean(grpo step s)`` (steps after the first, which carries
  one-off warm-up). The paper reports about 10 % overhead on GPUs with LLM judges.
* ``results.json`` — the same figures, machine-readable; ``plot.png`` — accuracy and all-negative share
  per step, and seconds per step.

Usage::

    python tests/benchmarks/compare_sgpo_grpo_cpu.py [--steps 6] [--seed 0] [--out DIR] [main-job options]

Extra options (e.g. ``--model tiny --response-length 32``) are passed to both runs. Step times on a shared
machine vary with its load: compare the two runs of one invocation, not runs of different days.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from recipe.sgpo.cpu_demo import DemoOptions, StepRow, parse_args, read_metrics, run  # noqa: E402

ESTIMATORS = ("grpo", "sgpo")  # baseline first
#: Steps whose time is left out of the overhead ratio (the first step pays one-off warm-up).
WARMUP_STEPS = 1


def run_both(base: DemoOptions, out: Path) -> dict[str, dict[int, dict[str, Any]]]:
    metrics = {}
    for estimator in ESTIMATORS:
        options = DemoOptions(**{**vars(base), "estimator": estimator, "run_dir": out / estimator})
        print(f"\n[compare] === {estimator} ===", flush=True)
        if run(options) != 0:
            raise SystemExit(f"[compare] the {estimator} run failed; see {options.folder / 'logs' / 'trainer.log'}")
        metrics[estimator] = read_metrics(options.folder / "logs" / "metrics.jsonl")
    return metrics


def step_rows(metrics: dict[int, dict[str, Any]]) -> list[StepRow]:
    return [StepRow.from_metrics(step, data) for step, data in sorted(metrics.items()) if step > 0]


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ratio(means: dict[str, float | None]) -> float | None:
    return means["sgpo"] / means["grpo"] if means["sgpo"] and means["grpo"] else None


def summarize(metrics: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Per-step rows, and mean seconds per step and per generation phase after the warm-up steps.

    The generation phase (verl's ``timing_s/gen``) is where the reward manager grades and judges
    (rewards are computed as trajectories finish), so its ratio isolates the judge's cost from the
    training phases, which are the same work for both estimators.
    """
    rows = {name: step_rows(data) for name, data in metrics.items()}
    later = {name: [data for step, data in sorted(m.items()) if step > WARMUP_STEPS] for name, m in metrics.items()}
    step_means = {name: mean([d["timing_s/step"] for d in ds if "timing_s/step" in d]) for name, ds in later.items()}
    gen_means = {name: mean([d["timing_s/gen"] for d in ds if "timing_s/gen" in d]) for name, ds in later.items()}
    return {
        "rows": {name: [vars(r) for r in rs] for name, rs in rows.items()},
        "mean_step_s": step_means,
        "mean_gen_s": gen_means,
        "overhead_ratio": _ratio(step_means),
        "gen_overhead_ratio": _ratio(gen_means),
        "warmup_steps_excluded": WARMUP_STEPS,
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_markdown(summary: dict[str, Any], command: str) -> str:
    grpo, sgpo = summary["rows"]["grpo"], summary["rows"]["sgpo"]
    lines = [
        f"Command: `{command}`",
        "",
        "| step | accuracy GRPO | accuracy SGPO | all-negative groups GRPO | all-negative groups SGPO "
        "| adv ≠ 0 in all-neg GRPO | adv ≠ 0 in all-neg SGPO | grad norm GRPO | grad norm SGPO "
        "| s/step GRPO | s/step SGPO |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for g, s in zip(grpo, sgpo):
        lines.append(
            f"| {g['step']} | {_pct(g['accuracy'])} | {_pct(s['accuracy'])} | {_pct(g['all_negative_share'])} "
            f"| {_pct(s['all_negative_share'])} | {_pct(g['taught_share'])} | {_pct(s['taught_share'])} "
            f"| {_g(g['grad_norm'])} | {_g(s['grad_norm'])} | {_s(g['step_s'])} | {_s(s['step_s'])} |"
        )
    means, ratio = summary["mean_step_s"], summary["overhead_ratio"]
    gen, gen_ratio = summary["mean_gen_s"], summary["gen_overhead_ratio"]
    lines += [
        "",
        f"Mean s/step after the first {summary['warmup_steps_excluded']} step(s): GRPO {_s(means['grpo'])}, "
        f"SGPO {_s(means['sgpo'])}; SGPO/GRPO time ratio "
        + ("-" if ratio is None else f"**{ratio:.2f}** ({100 * (ratio - 1):+.0f} %)")
        + " (the paper: about 1.10 on GPUs). Generation phase (where grading and judging happen): GRPO "
        + f"{_s(gen['grpo'])} s, SGPO {_s(gen['sgpo'])} s, ratio "
        + ("-" if gen_ratio is None else f"{gen_ratio:.2f}")
        + ".",
    ]
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name, style in (("grpo", "o--"), ("sgpo", "s-")):
        rows = summary["rows"][name]
        steps = [r["step"] for r in rows]
        for axis, key, scale in ((axes[0], "accuracy", 100), (axes[1], "all_negative_share", 100), (axes[2], "step_s", 1)):
            values = [None if r[key] is None else scale * r[key] for r in rows]
            axis.plot(steps, values, style, label=name.upper())
    steps = [r["step"] for r in summary["rows"]["sgpo"]]
    for axis, title in zip(axes, ("accuracy (%)", "all-negative groups (%)", "seconds per step")):
        axis.set_title(title)
        axis.set_xlabel("training step")
        axis.set_xticks(steps)
        axis.grid(alpha=0.3)
        axis.legend()
    for axis in axes[:2]:
        axis.set_ylim(-5, 105)
    axes[2].set_ylim(bottom=0)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=True)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "compare_cpu")
    parser.add_argument("--summarize-only", action="store_true", help="rewrite the table and plot from the runs in --out")
    known, rest = parser.parse_known_args(argv)
    base = parse_args(rest)
    known.out.mkdir(parents=True, exist_ok=True)
    if known.summarize_only:
        metrics = {name: read_metrics(known.out / name / "logs" / "metrics.jsonl") for name in ESTIMATORS}
        if not all(metrics.values()):
            raise SystemExit(f"[compare] no metrics of both runs under {known.out}; run without --summarize-only")
        previous = known.out / "results.json"
        argv = json.loads(previous.read_text())["command"].split()[2:] if previous.exists() else argv
    else:
        metrics = run_both(base, known.out)
    summary = summarize(metrics)
    command = "python tests/benchmarks/compare_sgpo_grpo_cpu.py " + " ".join(argv)
    (known.out / "results.json").write_text(json.dumps({"command": command, **summary}, indent=2))
    markdown = render_markdown(summary, command.strip())
    (known.out / "results.md").write_text(markdown)
    plot(summary, known.out / "plot.png")
    print("\n" + markdown)
    print(f"[compare] wrote {known.out / 'results.md'}, results.json and plot.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
