"""PNG curves from training logs: GRPO and SGPO runs of one size on shared axes, one panel per quantity.

Each run is a (label, log) pair; a log is verl's file-logger jsonl or a tensorboard folder
(:func:`recipe.sgpo.eval.tables.read_log_metrics`). Panels (x: training step):

* validation accuracy   mean over benchmarks of ``val-core/<source>/acc/mean@N`` (percent)
* training accuracy     ``sgpo/accuracy`` (percent of the step's responses correct)
* all-negative groups   ``sgpo/groups/all_negative_share`` (percent of the step's groups)
* judge calls           ``sgpo/judge/called`` (responses sent to the judge in the step)
* judge latency         ``sgpo/judge/latency_s/mean`` (seconds per call)
* step time             ``timing_s/step`` (seconds)

A panel no run has data for is left out; a run missing a quantity simply has no line in that panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from recipe.sgpo.eval.scores import RecordsError
from recipe.sgpo.eval.tables import read_log_metrics, validation_accuracy

#: Percent per unit for shares.
PERCENT = 100.0
#: Panels per row of the figure; inches per panel; dots per inch of the PNG.
PANELS_PER_ROW = 3
PANEL_SIZE_IN = (4.5, 3.2)
FIGURE_DPI = 120


@dataclass(frozen=True)
class Panel:
    """One quantity: its title, y-axis label and how to read it from a step's metrics (None: absent)."""

    title: str
    y_label: str
    read: Callable[[dict], float | None]


def _metric(key: str, scale: float = 1.0) -> Callable[[dict], float | None]:
    return lambda metrics: scale * float(metrics[key]) if key in metrics else None


def _mean_validation(metrics: dict) -> float | None:
    accuracy = validation_accuracy(metrics)
    return sum(accuracy.values()) / len(accuracy) if accuracy else None


PANELS = (
    Panel("validation accuracy (mean over benchmarks)", "percent", _mean_validation),
    Panel("training accuracy", "percent", _metric("sgpo/accuracy", PERCENT)),
    Panel("all-negative groups", "percent of groups", _metric("sgpo/groups/all_negative_share", PERCENT)),
    Panel("judge calls per step", "responses", _metric("sgpo/judge/called")),
    Panel("judge latency", "seconds per call", _metric("sgpo/judge/latency_s/mean")),
    Panel("step time", "seconds", _metric("timing_s/step")),
)


def series(metrics_by_step: dict[int, dict], panel: Panel) -> tuple[list[int], list[float]]:
    """(steps, values) of one panel for one run, steps ascending, steps without the quantity skipped."""
    points = [(step, panel.read(metrics)) for step, metrics in sorted(metrics_by_step.items())]
    kept = [(step, value) for step, value in points if value is not None]
    return [step for step, _ in kept], [value for _, value in kept]


def plot_runs(runs: Sequence[tuple[str, Path]], output: Path) -> list[str]:
    """Write the PNG; returns the titles of the panels drawn. Raises when no run has any panel's data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = [(label, read_log_metrics(path)) for label, path in runs]
    drawn = [(panel, [(label, series(metrics, panel)) for label, metrics in logs]) for panel in PANELS]
    drawn = [(panel, lines) for panel, lines in drawn if any(steps for _, (steps, _) in lines)]
    if not drawn:
        raise RecordsError(f"no plottable metric in {[str(path) for _, path in runs]}; give verl training logs (metrics.jsonl)")
    rows = -(-len(drawn) // PANELS_PER_ROW)
    columns = min(PANELS_PER_ROW, len(drawn))
    figure, axes = plt.subplots(rows, columns, figsize=(PANEL_SIZE_IN[0] * columns, PANEL_SIZE_IN[1] * rows), squeeze=False)
    for axis, (panel, lines) in zip(axes.flat, drawn):
        for label, (steps, values) in lines:
            if steps:
                axis.plot(steps, values, marker="o", markersize=3, label=label)
        axis.set_title(panel.title)
        axis.set_xlabel("step")
        axis.set_ylabel(panel.y_label)
        axis.legend()
    for axis in list(axes.flat)[len(drawn):]:
        axis.set_visible(False)
    figure.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=FIGURE_DPI)
    plt.close(figure)
    return [panel.title for panel, _ in drawn]
