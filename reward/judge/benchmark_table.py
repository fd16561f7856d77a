"""Side-by-side table of judge-benchmark runs (``run_scripts/judge_benchmark.sh`` writes ``metrics.jsonl``).

Usage::

    python -m reward.judge.benchmark_table before=outputs/judge_bench/before after=outputs/judge_bench/after
    python -m reward.judge.benchmark_table --metric exact before=... after=...

Each ``LABEL=DIR`` is one column; each row is one held-out set (the ``set`` field of the run's
``metrics.jsonl``), with the chosen metric (default ProcessBench's F1) and the set's sample count. A set
missing from a run shows as ``–``, never as a zero.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

METRICS = ("f1", "error_acc", "correct_acc", "exact", "not_judged")


def read_run(directory: Path) -> dict[str, dict]:
    """The metrics of one run by set name.

    Raises:
        ValueError: ``directory`` has no ``metrics.jsonl``, or a line of it is not a metrics object with a ``set``.
    """
    path = directory / "metrics.jsonl"
    if not path.is_file():
        raise ValueError(f"{path} not found: run run_scripts/judge_benchmark.sh with OUT_DIR={directory} first")
    rows = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "set" not in row or "f1" not in row:
            raise ValueError(f"{path}:{number} is not a judge-benchmark metrics line (needs 'set' and 'f1')")
        rows[row["set"]] = row
    return rows


def table(runs: dict[str, dict[str, dict]], metric: str = "f1") -> str:
    """A Markdown table: one row per set (in the order first seen), one column per run."""
    sets: list[str] = []
    for rows in runs.values():
        sets += [name for name in rows if name not in sets]
    lines = [f"| set ({metric}) | samples | " + " | ".join(runs) + " |", "|---|---:|" + "---:|" * len(runs)]
    for name in sets:
        samples = next(rows[name]["samples"] for rows in runs.values() if name in rows)
        cells = [f"{rows[name][metric]:.3f}" if name in rows else "–" for rows in runs.values()]
        lines.append(f"| {name} | {samples} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reward.judge.benchmark_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=DIR")
    parser.add_argument("--metric", choices=METRICS, default="f1")
    args = parser.parse_args(argv)
    try:
        runs = {}
        for spec in args.runs:
            label, sep, directory = spec.partition("=")
            if not sep or not label:
                raise ValueError(f"expected LABEL=DIR, got {spec!r}")
            runs[label] = read_run(Path(directory))
    except (ValueError, json.JSONDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table(runs, args.metric))
    return 0


if __name__ == "__main__":
    sys.exit(main())
