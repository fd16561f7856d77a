"""Writes the reproduction's outputs: ``theory_results.json``, ``theory_tables.md`` and three PNG plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from recipe.sgpo.theory.experiments import TARGET_ACCURACIES  # noqa: E402

#: Resolution of the PNGs: small enough that each stays well under 200 KB.
PLOT_DPI = 80

CURVE_COLOURS = {"grpo": "tab:blue", "sgpo (logistic)": "tab:red", "sgpo (linear)": "tab:green"}

SWEEP_COLUMNS = {"start_accuracy": "p₀", "group_size": "G", "num_steps": "K"}


def json_ready(value):
    """Infinite iteration counts (target never reached) become ``None``: strict JSON has no ``Infinity``."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def cell(iterations: float | None, max_iterations: int) -> str:
    """An iteration count for a table: ``> max`` when the target was not reached."""
    return f"> {max_iterations}" if iterations is None else f"{iterations:.0f}"


def ratio_cell(value: float | None) -> str:
    """``T_GRPO / T_SGPO``: ``∞`` when only GRPO misses the target, ``–`` when SGPO misses it."""
    if value is None:
        return "–"
    return "∞" if math.isinf(value) else f"{value:.2f}"


def comparison_cells(row: dict, max_iterations: int) -> list[str]:
    """GRPO, SGPO, ratio per target, exact then Monte-Carlo median (``n/a`` where not sampled)."""
    cells = []
    for kind in ("exact", "sampled"):
        for target in TARGET_ACCURACIES:
            entry = row.get(f"{kind}_{target}")
            if entry is None:
                cells += ["n/a"] * 3
                continue
            grpo, sgpo = (None if math.isinf(entry[e]) else entry[e] for e in ("grpo", "sgpo"))
            cells += [cell(grpo, max_iterations), cell(sgpo, max_iterations), ratio_cell(entry["ratio"])]
    return cells


def comparison_header(first_columns: list[str]) -> list[str]:
    """Table header lines for :func:`comparison_cells`."""
    names = []
    for kind in ("exact", "MC median"):
        for target in TARGET_ACCURACIES:
            names += [f"{kind} GRPO→{target}", f"{kind} SGPO→{target}", f"{kind} ratio {target}"]
    columns = first_columns + names
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def tables_markdown(results: dict) -> str:
    """The acceleration and judge-noise tables as Markdown."""
    max_iterations = results["iterations"]
    lines = [f"Iterations to reach accuracy {' and '.join(map(str, TARGET_ACCURACIES))}; ratio = GRPO / SGPO "
             f"(> 1: SGPO faster). Monte-Carlo: median over {results['runs']} runs.", ""]
    for sweep, column in SWEEP_COLUMNS.items():
        lines += [f"**Acceleration vs {column}** (others as the base case)", ""]
        lines += comparison_header([column])
        for row in results["acceleration"][sweep]:
            lines.append("| " + " | ".join([str(row["settings"][sweep])] + comparison_cells(row, max_iterations)) + " |")
        lines.append("")
    lines += ["**Imperfect judge** (K = 2, base case): ε misplaces the first error, δ says \"no error\"", ""]
    lines += comparison_header(["ε", "δ"])
    for row in results["judge_noise"]:
        settings = row["settings"]
        first = [str(settings["judge_misplace_prob"]), str(settings["judge_no_error_prob"])]
        lines.append("| " + " | ".join(first + comparison_cells(row, max_iterations)) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(results: dict, path: Path) -> None:
    """Accuracy (expected-update path, MC median and spread) and the all-negative share along training."""
    figure, (accuracy_axis, share_axis) = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, curve in results["curves"].items():
        colour = CURVE_COLOURS.get(label)
        iterations = range(len(curve["median"]))
        accuracy_axis.plot(curve["exact"], color=colour, linestyle="--", linewidth=1)
        accuracy_axis.plot(curve["median"], color=colour, label=label)
        accuracy_axis.fill_between(iterations, curve["low"], curve["high"], color=colour, alpha=0.15)
        share_axis.plot(curve["all_negative_measured"], color=colour, alpha=0.6, linewidth=0.8, label=f"{label} measured")
        share_axis.plot(curve["all_negative_predicted"], color=colour, linestyle="--", label=f"{label} mean (1−p)^G")
    base = results["base"]
    accuracy_axis.set(xlabel="iteration", ylabel="accuracy p", title=f"K={base['num_steps']}, G={base['group_size']}, "
                      f"p₀={base['start_accuracy']}: median (band 10–90 %), dashed = exact expected update")
    accuracy_axis.title.set_fontsize(8)
    accuracy_axis.legend(fontsize=8)
    share_axis.set(xlabel="iteration", ylabel="share of all-negative groups", title="all-negative groups")
    share_axis.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=PLOT_DPI)
    plt.close(figure)


def plot_acceleration(results: dict, path: Path) -> None:
    """Exact and MC acceleration ratios against p₀, G and K."""
    figure, axes = plt.subplots(1, len(SWEEP_COLUMNS), figsize=(11, 3.4))
    for axis, (sweep, column) in zip(axes, SWEEP_COLUMNS.items()):
        rows = results["acceleration"][sweep]
        values = [row["settings"][sweep] for row in rows]
        for target, marker in zip(TARGET_ACCURACIES, "os"):
            for kind, style in (("exact", "-"), ("sampled", ":")):
                ratios = [row[f"{kind}_{target}"]["ratio"] for row in rows]
                ratios = [math.nan if r is None or math.isinf(r) else r for r in ratios]
                axis.plot(values, ratios, style, marker=marker, label=f"{'exact' if kind == 'exact' else 'MC'} → {target}")
        axis.axhline(1.0, color="grey", linewidth=0.8)
        axis.set(xlabel=column, ylabel="T_GRPO / T_SGPO")
        if sweep == "start_accuracy":
            axis.set_xscale("log")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=PLOT_DPI)
    plt.close(figure)


def plot_judge_noise(results: dict, path: Path) -> None:
    """Exact acceleration ratio (target 0.5 and 0.9) against ε, one line per δ."""
    figure, axes = plt.subplots(1, len(TARGET_ACCURACIES), figsize=(9, 3.4))
    deltas = sorted({row["settings"]["judge_no_error_prob"] for row in results["judge_noise"]})
    for axis, target in zip(axes, TARGET_ACCURACIES):
        for delta in deltas:
            rows = [row for row in results["judge_noise"] if row["settings"]["judge_no_error_prob"] == delta]
            eps = [row["settings"]["judge_misplace_prob"] for row in rows]
            ratios = [row[f"exact_{target}"]["ratio"] for row in rows]
            axis.plot(eps, [math.nan if r is None or math.isinf(r) else r for r in ratios], marker="o", label=f"δ={delta}")
        axis.axhline(1.0, color="grey", linewidth=0.8)
        axis.set(xlabel="ε (judge misplaces the first error)", ylabel="T_GRPO / T_SGPO (exact)", title=f"target {target}")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=PLOT_DPI)
    plt.close(figure)


def write_outputs(results: dict, plot_dir: Path, data_dir: Path) -> list[Path]:
    """Write the JSON and Markdown tables into ``data_dir``, the plots into ``plot_dir``; returns the paths."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: data_dir / f"theory_{name}" for name in ("results.json", "tables.md")}
    paths |= {name: plot_dir / f"theory_{name}" for name in ("curves.png", "acceleration.png", "judge_noise.png")}
    paths["results.json"].write_text(json.dumps(json_ready(results), allow_nan=False, indent=1))
    paths["tables.md"].write_text(tables_markdown(results))
    plot_curves(results, paths["curves.png"])
    plot_acceleration(results, paths["acceleration.png"])
    plot_judge_noise(results, paths["judge_noise.png"])
    return list(paths.values())
