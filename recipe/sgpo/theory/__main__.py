"""CLI: ``python -m recipe.sgpo.theory [--plot-dir docs] [--data-dir outputs/theory] [--runs 200] ...``.

Runs every experiment of ``docs/theory.md``; writes ``theory_curves.png``, ``theory_acceleration.png`` and
``theory_judge_noise.png`` into ``--plot-dir`` and ``theory_results.json`` (every number) and
``theory_tables.md`` (the tables of ``docs/theory.md``) into ``--data-dir``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from recipe.sgpo.theory.experiments import GRIDS, run_all
from recipe.sgpo.theory.report import write_outputs

#: Monte-Carlo runs (seeds) per setting and estimator in the documented reproduction.
DEFAULT_RUNS = 200

#: Iterations per run; a target not reached by then is reported as ``> iterations``.
DEFAULT_ITERATIONS = 600


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m recipe.sgpo.theory", description=__doc__)
    parser.add_argument("--plot-dir", type=Path, default=Path("docs"), help="where the PNGs go (default docs)")
    parser.add_argument("--data-dir", type=Path, default=Path("outputs/theory"),
                        help="where the JSON and Markdown tables go (default outputs/theory)")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="Monte-Carlo runs per setting")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS, help="iterations per run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Monte-Carlo runs")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="full", help="settings swept (small: for tests)")
    args = parser.parse_args(argv)
    if args.runs < 2 or args.iterations < 1:
        parser.error(f"--runs must be ≥ 2 and --iterations ≥ 1; got --runs {args.runs} --iterations {args.iterations}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the reproduction; prints the files written and the time taken."""
    args = parse_args(argv)
    started = time.perf_counter()
    results = run_all(GRIDS[args.grid], args.runs, args.iterations, args.seed)
    for path in write_outputs(results, args.plot_dir, args.data_dir):
        print(f"wrote {path}")
    print(f"theory reproduction ({args.grid} grid, {args.runs} runs, {args.iterations} iterations) took "
          f"{time.perf_counter() - started:.1f} s after imports")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
