"""SGPO vs GRPO on the CPU over seeds: the main job run per estimator and seed, one table, one plot.

For every seed in ``--seeds`` it runs ``recipe.sgpo.cpu_demo`` with ``--estimator grpo`` (the baseline:
binary reward, no judge) and ``--estimator sgpo`` (rule-based step verifier), each a full
``verl.trainer.main_ppo`` launch with the same settings, validating every ``--val-every`` steps. With
``--ablations`` it adds, for the first seed only, SGPO with ``algorithm.sgpo.apply_to=all_incorrect``
(wrong answers of mixed groups graded too; the judge then sees every wrong answer) and SGPO with the
``linear`` map ``g = RTS`` instead of the logistic one. It writes to ``--out`` (default
``outputs/compare_cpu``):

* ``results.md``: validation accuracy at each validation step, mean ± standard deviation over seeds
  (sample std, n - 1), and per run variant the mean over seeds and steps of the training accuracy, the
  share of all-negative groups, the share of all-negative responses with a non-zero advantage and the
  seconds per step (steps after the first, which carries one-off warm-up), with the SGPO/GRPO time ratio;
* ``results.json``: the same figures and every run's per-step rows, machine-readable;
* ``plot.png``: validation accuracy (mean, band of ± 1 std), all-negative share and seconds per step.

Usage::

    python tests/benchmarks/compare_sgpo_grpo_cpu.py [--seeds 0 1 2] [--ablations] [--out DIR] [main-job options]

Main-job options (e.g. ``--steps 30 --val-every 5``) are passed to every run. Each run keeps its folder
(``<out>/<variant>/seed<k>``), and a finished run (its metrics reach the last step) is not run again, so
an interrupted comparison continues where it stopped; ``--summarize-only`` rewrites table and plot.
Step times on a shared machine vary with its load: compare runs of one invocation, not of different days.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from recipe.sgpo.cpu_demo import DemoOptions, StepRow, parse_args, read_metrics, run, validation_accuracy  # noqa: E402
from reward.encoding import CORRECT_REWARD  # noqa: E402
from reward.judge.backends.rule import equations  # noqa: E402

#: Steps whose time is left out of the time ratio (the first step pays one-off warm-up).
WARMUP_STEPS = 1
#: Training steps averaged at each end of a run for the behaviour figures (guess share, worked accuracy).
BEHAVIOUR_WINDOW = 5
#: Validation interval when the command line gives none (the main job's own default validates only twice).
DEFAULT_VAL_EVERY = 5


@dataclass(frozen=True)
class Variant:
    """One way of training: a label, the estimator, and extra trainer overrides."""

    name: str
    estimator: str
    overrides: tuple[str, ...] = ()


BASELINE = Variant("grpo", "grpo")
SGPO = Variant("sgpo", "sgpo")
ABLATIONS = (
    Variant("sgpo-all_incorrect", "sgpo", ("algorithm.sgpo.apply_to=all_incorrect", "reward.sgpo.judge_scope=all_wrong")),
    Variant("sgpo-linear", "sgpo", ("reward.sgpo.judge.grading.map=linear",)),
)


def run_options(base: DemoOptions, variant: Variant, seed: int, out: Path) -> DemoOptions:
    return DemoOptions(**{
        **vars(base), "estimator": variant.estimator, "seed": seed, "run_dir": out / variant.name / f"seed{seed}",
        "extra_overrides": [*base.extra_overrides, *variant.overrides],
    })


def plan(seeds: list[int], ablations: bool) -> list[tuple[Variant, int]]:
    runs = [(variant, seed) for seed in seeds for variant in (BASELINE, SGPO)]
    if ablations:
        runs += [(variant, seeds[0]) for variant in ABLATIONS]
    return runs


def is_finished(metrics: dict[int, dict[str, Any]], steps: int) -> bool:
    return steps in metrics and "timing_s/step" in metrics[steps]


def run_all(base: DemoOptions, runs: list[tuple[Variant, int]], out: Path) -> None:
    for number, (variant, seed) in enumerate(runs, 1):
        options = run_options(base, variant, seed, out)
        metrics_file = options.folder / "logs" / "metrics.jsonl"
        if is_finished(read_metrics(metrics_file), options.steps):
            print(f"[compare] {variant.name} seed {seed}: finished earlier, kept", flush=True)
            continue
        print(f"\n[compare] === run {number}/{len(runs)}: {variant.name}, seed {seed} ===", flush=True)
        if run(options) != 0:
            raise SystemExit(f"[compare] the {variant.name} seed {seed} run failed; see {options.folder / 'logs' / 'trainer.log'}")


def load(base: DemoOptions, runs: list[tuple[Variant, int]], out: Path) -> dict[str, dict[int, dict[int, dict[str, Any]]]]:
    """``{variant: {seed: {step: metrics}}}`` of the runs that exist under ``out``."""
    loaded: dict[str, dict[int, dict[int, dict[str, Any]]]] = {}
    for variant, seed in runs:
        metrics = read_metrics(run_options(base, variant, seed, out).folder / "logs" / "metrics.jsonl")
        if metrics:
            loaded.setdefault(variant.name, {})[seed] = metrics
    return loaded


def rollout_behaviour(rollouts: Path) -> dict[int, dict[str, float | None]]:
    """Per training step, from verl's rollout dump: the share of responses that are a bare guess (no
    ``a op b = c`` line) and the accuracy of the others (worked solutions; None when there are none)."""
    behaviour = {}
    for file in rollouts.glob("*.jsonl"):
        rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        worked = [row for row in rows if any(equations(line) for line in row["output"].splitlines())]
        if rows:
            correct = sum(float(row["score"]) >= CORRECT_REWARD for row in worked)
            behaviour[int(file.stem)] = {"guess_share": 1 - len(worked) / len(rows),
                                         "worked_accuracy": correct / len(worked) if worked else None}
    return behaviour


def behaviour_summary(folders: list[Path], steps: int) -> dict[str, float | None]:
    """Guess share and worked-solution accuracy over the first and the last :data:`BEHAVIOUR_WINDOW` steps."""
    windows = {"first": range(1, BEHAVIOUR_WINDOW + 1), "last": range(steps - BEHAVIOUR_WINDOW + 1, steps + 1)}
    per_run = [rollout_behaviour(folder / "rollouts") for folder in folders]
    summary: dict[str, float | None] = {}
    for window, window_steps in windows.items():
        for key in ("guess_share", "worked_accuracy"):
            values = [run[step][key] for run in per_run for step in window_steps
                      if step in run and run[step][key] is not None]
            summary[f"{key}/{window}"] = statistics.fmean(values) if values else None
    return summary


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None for fewer than two values)."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def validation_curve(by_seed: dict[int, dict[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per validation step: mean and std over seeds of the validation accuracy, and the seed count."""
    per_step: dict[int, list[float]] = {}
    for metrics in by_seed.values():
        for step, data in metrics.items():
            accuracy = validation_accuracy(StepRow.from_metrics(step, data).validation)
            if accuracy is not None:
                per_step.setdefault(step, []).append(float(accuracy))
    curve = []
    for step, values in sorted(per_step.items()):
        mean, std = mean_std(values)
        curve.append({"step": step, "mean": mean, "std": std, "seeds": len(values)})
    return curve


def training_summary(by_seed: dict[int, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Means over seeds and training steps of the per-step figures (time: steps after the warm-up)."""
    rows = [StepRow.from_metrics(step, data) for metrics in by_seed.values()
            for step, data in sorted(metrics.items()) if step > 0 and "timing_s/step" in data]

    def average(key: str, first_step: int = 1) -> float | None:
        values = [getattr(r, key) for r in rows if r.step >= first_step and getattr(r, key) is not None]
        return statistics.fmean(values) if values else None

    return {
        "accuracy": average("accuracy"),
        "all_negative_share": average("all_negative_share"),
        "taught_share": average("taught_share"),
        "step_s": average("step_s", WARMUP_STEPS + 1),
        "steps": len({r.step for r in rows}),
        "seeds": len(by_seed),
    }


def summarize(loaded: dict[str, dict[int, dict[int, dict[str, Any]]]],
              folders: dict[str, list[Path]] | None = None, steps: int | None = None) -> dict[str, Any]:
    folders = folders or {}
    variants = {name: {"validation": validation_curve(by_seed), "training": training_summary(by_seed),
                       "behaviour": behaviour_summary(folders.get(name, []), steps or 0),
                       "rows": {str(seed): [vars(StepRow.from_metrics(step, data)) for step, data in sorted(m.items())]
                                for seed, m in by_seed.items()}}
                for name, by_seed in loaded.items()}
    times = {name: v["training"]["step_s"] for name, v in variants.items()}
    ratio = times.get("sgpo") / times["grpo"] if times.get("sgpo") and times.get("grpo") else None
    return {"variants": variants, "time_ratio": ratio, "warmup_steps_excluded": WARMUP_STEPS}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _pm(point: dict[str, Any] | None) -> str:
    if point is None:
        return "-"
    spread = "" if point["std"] is None else f" ± {100 * point['std']:.1f}"
    return f"{100 * point['mean']:.1f}{spread} %"


def render_markdown(summary: dict[str, Any], command: str) -> str:
    variants = summary["variants"]
    names = list(variants)
    curves = {name: {p["step"]: p for p in variants[name]["validation"]} for name in names}
    steps = sorted({step for curve in curves.values() for step in curve})
    seeds = {name: variants[name]["training"]["seeds"] for name in names}
    lines = [f"Command: `{command}`", "",
             "Validation accuracy (mean ± std over seeds; seeds per variant: "
             + ", ".join(f"{n} {seeds[n]}" for n in names) + "):", "",
             "| step | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    for step in steps:
        lines.append(f"| {step} | " + " | ".join(_pm(curves[n].get(step)) for n in names) + " |")
    window = BEHAVIOUR_WINDOW
    lines += ["", "Training, means over seeds and steps; then what the rollouts show (verl's rollout dump), first "
              f"{window} steps → last {window}:", "",
              "| variant | training accuracy | all-negative groups | adv ≠ 0 in all-negative groups | s/step "
              "| bare guesses | accuracy of worked solutions |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        t, b = variants[name]["training"], variants[name]["behaviour"]
        step_s = "-" if t["step_s"] is None else f"{t['step_s']:.1f}"
        lines.append(f"| {name} | {_pct(t['accuracy'])} | {_pct(t['all_negative_share'])} | {_pct(t['taught_share'])} "
                     f"| {step_s} | {_pct(b.get('guess_share/first'))} → {_pct(b.get('guess_share/last'))} "
                     f"| {_pct(b.get('worked_accuracy/first'))} → {_pct(b.get('worked_accuracy/last'))} |")
    ratio = summary["time_ratio"]
    lines += ["", f"SGPO/GRPO seconds per step (after the first {summary['warmup_steps_excluded']} step): "
              + ("-" if ratio is None else f"**{ratio:.2f}**") + "."]
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for name, variant in summary["variants"].items():
        curve = variant["validation"]
        steps = [p["step"] for p in curve]
        means = [100 * p["mean"] for p in curve]
        (line,) = axes[0].plot(steps, means, "o-", label=name)
        spreads = [100 * (p["std"] or 0.0) for p in curve]
        axes[0].fill_between(steps, [m - s for m, s in zip(means, spreads)], [m + s for m, s in zip(means, spreads)],
                             color=line.get_color(), alpha=0.15)
        for axis, key, scale in ((axes[1], "all_negative_share", 100), (axes[2], "step_s", 1)):
            per_step: dict[int, list[float]] = {}
            for rows in variant["rows"].values():
                for row in rows:
                    if row["step"] > 0 and row[key] is not None:
                        per_step.setdefault(row["step"], []).append(scale * row[key])
            xs = sorted(per_step)
            axis.plot(xs, [statistics.fmean(per_step[x]) for x in xs], "-", color=line.get_color(), label=name)
    titles = ("validation accuracy (%), mean ± std over seeds", "all-negative groups (%), mean over seeds",
              "seconds per step, mean over seeds")
    for axis, title in zip(axes, titles):
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("training step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    axes[1].set_ylim(-5, 105)
    axes[2].set_ylim(bottom=0)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "compare_cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the GRPO and SGPO runs")
    parser.add_argument("--ablations", action="store_true", help="add all_incorrect and linear SGPO runs (first seed)")
    parser.add_argument("--summarize-only", action="store_true", help="rewrite the table and plot from the runs in --out")
    known, rest = parser.parse_known_args(argv)
    if "--val-every" not in rest:
        rest = ["--val-every", str(DEFAULT_VAL_EVERY), *rest]
    base = parse_args(rest)
    runs = plan(known.seeds, known.ablations)
    known.out.mkdir(parents=True, exist_ok=True)
    if not known.summarize_only:
        run_all(base, runs, known.out)
    loaded = load(base, runs, known.out)
    if BASELINE.name not in loaded or SGPO.name not in loaded:
        raise SystemExit(f"[compare] no GRPO and SGPO runs under {known.out}; run without --summarize-only")
    folders: dict[str, list[Path]] = {}
    for variant, seed in runs:
        folders.setdefault(variant.name, []).append(run_options(base, variant, seed, known.out).folder)
    summary = summarize(loaded, folders, base.steps)
    command = "python tests/benchmarks/compare_sgpo_grpo_cpu.py " + " ".join(argv)
    previous = known.out / "results.json"
    if known.summarize_only and previous.exists():  # the table names the command that made the runs
        command = json.loads(previous.read_text()).get("command", command)
    (known.out / "results.json").write_text(json.dumps({"command": command.strip(), **summary}, indent=2))
    markdown = render_markdown(summary, command.strip())
    (known.out / "results.md").write_text(markdown)
    plot(summary, known.out / "plot.png")
    print("\n" + markdown)
    print(f"[compare] wrote {known.out / 'results.md'}, results.json and plot.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
