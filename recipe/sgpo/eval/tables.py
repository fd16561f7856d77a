"""Tables in the paper's layout: rows per model and method (and training stage), columns per benchmark + Avg.

Sources of rows:

* result files of ``eval score`` (``results.json``): one row per file, labelled by the protocol's ``model``
  label, ``method`` and checkpoint ``step``. Several checkpoints of one (model, method) become stages:
  sorted by step, the i-th (0-based) of m is STAGES[min(⌊3i/(m−1)⌋, 2)] = ``early`` / ``mid`` / ``late`` (one checkpoint: no stage);
* published reference numbers (``reference_numbers.json``): entries of a model in the table, and entries
  whose model is unnamed, shown below our rows with their source;
* training logs: ``val-core/<data_source>/acc/mean@N`` of every test step (verl's file-logger jsonl or
  tensorboard event files), one row per (run, step).

``Avg`` is the unweighted mean over the table's benchmark columns, shown only for a row that has all of them.
``SGPO − GRPO`` rows (percentage points) follow each (model, stage) that has both methods.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from recipe.sgpo.eval.scores import RecordsError, percent, read_results

#: The paper's benchmarks in column order, with the names its tables print.
BENCHMARK_COLUMNS: dict[str, str] = {
    "math500": "MATH500",
    "aime24": "AIME24",
    "aime25": "AIME25",
    "amc23": "AMC23",
    "minerva": "Minerva",
    "olympiadbench": "OlympiadBench",
    "hmmt_feb_2024": "HMMT24",
    "hmmt_feb_2025": "HMMT25",
}
#: The published numbers shown beside ours.
REFERENCE_NUMBERS = Path(__file__).with_name("reference_numbers.json")
#: Stage names by thirds of a run's evaluated checkpoints.
STAGES = ("early", "mid", "late")
#: Methods whose difference the tables show (minuend, subtrahend).
DIFFERENCE = ("SGPO", "GRPO")
#: Printed where a row has no value.
MISSING = "–"
#: The mean-over-benchmarks column.
AVERAGE_COLUMN = "Avg"
#: Prefix of the validation accuracy in verl's metrics: ``val-core/<data_source>/acc/mean@N``.
VAL_CORE_PREFIX = "val-core/"


@dataclass
class Row:
    """One table row: scores in percent keyed by benchmark name."""

    model: str
    method: str
    stage: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    source: str = "ours"
    step: int | None = None
    is_difference: bool = False
    published: bool = False


def rows_from_results(paths: Sequence[Path]) -> list[Row]:
    """One row per result file, stages assigned per (model, method)."""
    rows = []
    for path in paths:
        document = read_results(path)
        protocol = document["protocol"]
        rows.append(Row(
            model=str(protocol.get("model_label") or protocol.get("model")),
            method=str(protocol.get("method") or "?"),
            scores={name: score["avg"] for name, score in document["benchmarks"].items()},
            source=str(path),
            step=protocol.get("step"),
        ))
    assign_stages(rows)
    return rows


def stage_name(position: int, count: int) -> str:
    """``early``/``mid``/``late`` for the position-th (0-based) of count checkpoints; '' for a single one."""
    if count <= 1:
        return ""
    return STAGES[min(len(STAGES) * position // (count - 1), len(STAGES) - 1)]


def assign_stages(rows: list[Row]) -> None:
    """Label several checkpoints of one (model, method) with their stage and step."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.model, row.method), []).append(row)
    for members in groups.values():
        members.sort(key=lambda row: row.step if row.step is not None else -1)
        for position, row in enumerate(members):
            name = stage_name(position, len(members))
            row.stage = f"{name} (step {row.step})" if name and row.step is not None else name


def reference_rows(models: Iterable[str], path: Path = REFERENCE_NUMBERS) -> list[Row]:
    """Published rows for the given models plus those whose model is unnamed."""
    wanted = set(models)
    entries = json.loads(Path(path).read_text())["entries"]
    return [
        Row(model=entry["model"] or "(not named)", method=entry["method"], scores=dict(entry["scores"]),
            source=f"{entry['source']}; {entry['protocol']}", published=True)
        for entry in entries
        if entry["model"] is None or entry["model"] in wanted
    ]


def difference_rows(rows: Sequence[Row]) -> list[Row]:
    """``SGPO − GRPO`` per (model, stage) that has both, in percentage points, on shared benchmarks."""
    plus, minus = DIFFERENCE
    by_key = {(row.model, row.stage, row.method): row for row in rows if not row.is_difference}
    out = []
    for (model, stage, method), row in by_key.items():
        other = by_key.get((model, stage, minus))
        if method != plus or other is None:
            continue
        shared = [name for name in row.scores if name in other.scores]
        out.append(Row(model=model, method=f"{plus} − {minus}", stage=stage, is_difference=True,
                       scores={name: row.scores[name] - other.scores[name] for name in shared}))
    return out


def columns_of(rows: Sequence[Row]) -> list[str]:
    """Benchmarks any of our rows has, in the paper's order (unknown names last, sorted)."""
    present = {name for row in rows if not row.published for name in row.scores}
    known = [name for name in BENCHMARK_COLUMNS if name in present]
    return known + sorted(present - set(BENCHMARK_COLUMNS))


def row_average(row: Row, columns: Sequence[str]) -> float | None:
    """Mean over the table's columns, or None unless the row has every column."""
    if not columns or any(name not in row.scores for name in columns):
        return None
    return sum(row.scores[name] for name in columns) / len(columns)


@dataclass
class Table:
    """A finished table: our rows, differences, then published rows; and the benchmark columns."""

    rows: list[Row]
    columns: list[str]

    def header(self) -> list[str]:
        return ["Model", "Method", "Stage"] + [BENCHMARK_COLUMNS.get(name, name) for name in self.columns] + [AVERAGE_COLUMN]

    def cells(self, row: Row) -> list[str]:
        values = [row.scores.get(name) for name in self.columns] + [row_average(row, self.columns)]
        shown = [MISSING if value is None else (f"{value:+.1f}" if row.is_difference else percent(value)) for value in values]
        return [row.model, row.method, row.stage] + shown


def build_table(our_rows: Sequence[Row], published: Sequence[Row] = ()) -> Table:
    """Our rows (ordered by model, method, step), SGPO − GRPO rows, and published rows below."""
    if not our_rows:
        raise RecordsError("no results to tabulate; give result files of `python -m recipe.sgpo.eval score`")
    columns = columns_of(our_rows)
    ordered = sorted(our_rows, key=lambda row: (row.model, row.method, row.step if row.step is not None else -1))
    return Table(rows=ordered + difference_rows(ordered) + list(published), columns=columns)


def to_markdown(table: Table) -> str:
    """GitHub Markdown; numbers right-aligned."""
    header = table.header()
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    lines += ["| " + " | ".join(table.cells(row)) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("−", "$-$"), ("–", "--")):
        text = text.replace(char, escaped)
    return text


def to_latex(table: Table) -> str:
    """A booktabs ``tabular``; a rule above the differences and above the published rows."""
    header = table.header()
    lines = [r"\begin{tabular}{lll" + "r" * (len(header) - 3) + "}", r"\toprule",
             " & ".join(_latex_escape(cell) for cell in header) + r" \\", r"\midrule"]
    previous_kind = None
    for row in table.rows:
        kind = "difference" if row.is_difference else ("published" if row.published else "ours")
        if previous_kind is not None and kind != previous_kind:
            lines.append(r"\midrule")
        previous_kind = kind
        lines.append(" & ".join(_latex_escape(cell) for cell in table.cells(row)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """CSV with raw numbers (full precision, empty where missing) and a source column."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.header() + ["source"])
    for row in table.rows:
        values = [row.scores.get(name) for name in table.columns] + [row_average(row, table.columns)]
        writer.writerow([row.model, row.method, row.stage] + ["" if v is None else repr(round(v, 6)) for v in values] + [row.source])
    return buffer.getvalue()


RENDERERS = {"md": to_markdown, "tex": to_latex, "csv": to_csv}


# ---------------------------------------------------------------------------------------------- training logs


def read_log_metrics(path: Path) -> dict[int, dict[str, float]]:
    """Metrics by step from verl's file-logger jsonl (``{"step": s, "data": {...}}``) or a tensorboard folder/file."""
    path = Path(path)
    if path.is_file() and path.suffix == ".jsonl":
        return _read_file_logger(path)
    if path.is_dir() or path.name.startswith("events.out.tfevents"):
        return _read_tensorboard(path)
    raise RecordsError(f"{path}: not a training log; give verl's file-logger metrics.jsonl or a tensorboard log folder")


def _read_file_logger(path: Path) -> dict[int, dict[str, float]]:
    metrics: dict[int, dict[str, float]] = {}
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            metrics.setdefault(int(record["step"]), {}).update(record["data"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise RecordsError(f"{path}:{line_number}: not a verl file-logger line ({{\"step\": ..., \"data\": {{...}}}})") from None
    return metrics


def _read_tensorboard(path: Path) -> dict[int, dict[str, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
    accumulator.Reload()
    metrics: dict[int, dict[str, float]] = {}
    for tag in accumulator.Tags().get("scalars", []):
        for event in accumulator.Scalars(tag):
            metrics.setdefault(int(event.step), {})[tag] = float(event.value)
    if not metrics:
        raise RecordsError(f"{path}: no tensorboard scalars found; give the run's tensorboard_log folder")
    return metrics


def validation_accuracy(metrics: dict[str, Any]) -> dict[str, float]:
    """``val-core/<data_source>/acc/mean@N`` → {benchmark: percent}; the benchmark is the data_source after ``sgpo/``."""
    out = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if key.startswith(VAL_CORE_PREFIX) and len(parts) >= 4 and parts[-2] == "acc" and parts[-1].startswith("mean@"):
            source = "/".join(parts[1:-2])
            out[source.removeprefix("sgpo/")] = 100.0 * float(value)
    return out


def rows_from_logs(runs: Sequence[tuple[str, Path]]) -> list[Row]:
    """One row per (run label, test step) with validation accuracy."""
    rows = []
    for label, path in runs:
        for step, metrics in sorted(read_log_metrics(path).items()):
            scores = validation_accuracy(metrics)
            if scores:
                rows.append(Row(model=label, method="validation", stage=f"step {step}", scores=scores, source=str(path), step=step))
    if not rows:
        raise RecordsError(f"no val-core/<source>/acc/mean@N metric in {[str(p) for _, p in runs]}; was validation on (trainer.test_freq)?")
    return rows


def log_table(runs: Sequence[tuple[str, Path]]) -> Table:
    """The validation accuracy of each test step of each run, in run then step order."""
    rows = rows_from_logs(runs)
    return Table(rows=rows, columns=columns_of(rows))
