"""Mutation score of the SGPO core, one module at a time (docs/mutation_testing.md).

    .venv/bin/python tests/benchmarks/mutation_score.py                  # every core module
    .venv/bin/python tests/benchmarks/mutation_score.py reward.encoding  # one (or several) modules
    .venv/bin/python tests/benchmarks/mutation_score.py --report-only    # table from the last runs
    .venv/bin/python tests/benchmarks/mutation_score.py --rerun-not-killed reward.rendezvous  # after new tests
    .venv/bin/python tests/benchmarks/mutation_score.py --max-children 2 ...   # an otherwise idle machine

For each module it runs `mutmut run --max-children N "<module>.*"` from the repository root (N = 1 by
default: the CPU is shared; 2 on an idle 2-core machine), using the [tool.mutmut] section of pyproject.toml, then prints one table row
per module from the verdicts mutmut stored under mutants/:

    score = (killed + timeout) / (mutants - not checked - runner errors)        in percent

A timeout counts as killed (the mutant made a test exceed its CPU-time limit, which the suite reports as a
failure). Mutants of a module that mutmut already judged are not rerun unless the module or its tests
changed; delete mutants/ for a clean measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MUTMUT = Path(sys.executable).with_name("mutmut")

#: The core modules (dotted name as mutmut names their mutants), in the order they are run: cheapest first.
CORE_MODULES = (
    "recipe.sgpo.advantage",
    "reward.encoding",
    "reward.judge.grading",
    "recipe.sgpo.metrics",
    "reward.rendezvous",
    "reward.judge.prompt",
    "reward.answers",
    "reward.grade_worker",
)

#: mutmut's exit code of a mutant run -> verdict (mutmut.stats.status_by_exit_code, restated so that the
#: report needs no mutmut import). Codes not listed are "suspicious".
VERDICT_BY_EXIT_CODE = {
    1: "killed", 3: "killed", 37: "killed",
    0: "survived",
    5: "no tests", 33: "no tests",
    34: "skipped",
    36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout",
    # mutmut 3.8.1 also labels 255 "timeout", but it is its test runner failing (an exception, e.g. pytest's
    # exit 4 for a test id that no longer exists in stale mutmut-stats.json): no test ran, nothing was detected.
    255: "runner error",
    -11: "segfault", -9: "segfault",
    None: "not checked",
}
DETECTED = ("killed", "timeout", "segfault")

#: Environment variables that set the thread count of torch's math libraries (OpenMP, MKL, OpenBLAS).
THREAD_COUNT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def module_meta_path(module: str) -> Path:
    """mutants/<module path>.py.meta, where mutmut stores each mutant's exit code."""
    return REPO_ROOT / "mutants" / (module.replace(".", "/") + ".py.meta")


def verdicts(module: str) -> dict[str, str]:
    """Mutant name -> verdict for one module; a clear error if the module was never run."""
    meta = module_meta_path(module)
    if not meta.exists():
        raise SystemExit(f"no mutmut results for {module} ({meta} missing): run this script with {module}")
    exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
    return {name: VERDICT_BY_EXIT_CODE.get(code, "suspicious") for name, code in exit_codes.items()}


#: Mutant workers mutmut runs at once (``--max-children``).
max_children = 1


def run_module(module: str) -> int:
    """Run mutmut over one module's mutants with one worker; its exit status. mutmut skips mutants it has a
    verdict for, so the module's runner errors are then run again by name (mutmut re-runs named mutants)."""
    status = run_mutants([f"{module}.*"])
    retry = [name for name, verdict in verdicts(module).items() if verdict == "runner error"]
    return run_mutants(retry) if retry else status


def run_mutants(names: list[str]) -> int:
    command = [str(MUTMUT), "run", "--max-children", str(max_children), *names]
    print("$", " ".join(command[:6]), "..." if len(command) > 6 else "", flush=True)
    return subprocess.run(command, cwd=REPO_ROOT, env=single_threaded_environment(), check=False).returncode


def single_threaded_environment() -> dict[str, str]:
    """This environment with torch's math libraries on one thread each.

    One thread is what the shared CPU allows, and a process without a running thread pool can fork
    mutant workers without the deadlocks that would read as (false) timeouts.
    """
    return {**os.environ, **{variable: "1" for variable in THREAD_COUNT_VARIABLES}}


def report(modules: list[str]) -> None:
    """One markdown row per module: counts per verdict, score in percent, surviving mutant names."""
    print("| module | mutants | killed | timeout | survived | not checked | other | score |")
    print("|---|---|---|---|---|---|---|---|")
    survivors: list[str] = []
    for module in modules:
        by_mutant = verdicts(module)
        counts = Counter(by_mutant.values())
        # a runner error ran no test: unknown, like "not checked" (listed below, to be re-run)
        checked = len(by_mutant) - counts["not checked"] - counts["runner error"]
        detected = sum(counts[v] for v in DETECTED)
        other = checked - detected - counts["survived"] + counts["runner error"]
        score = f"{100 * detected / checked:.1f} %" if checked else "n/a"
        print(f"| {module} | {len(by_mutant)} | {counts['killed']} | {counts['timeout']} | {counts['survived']}"
              f" | {counts['not checked']} | {other} | {score} |")
        survivors += [name for name, verdict in sorted(by_mutant.items()) if verdict not in DETECTED + ("not checked",)]
    if survivors:
        print("\nnot killed (inspect with `.venv/bin/mutmut show NAME`):")
        print("\n".join(f"  {name}" for name in survivors))


def rerun_not_killed(module: str) -> int:
    """Run again every mutant of ``module`` that no test has detected so far (after tests were added)."""
    names = [name for name, verdict in verdicts(module).items() if verdict not in DETECTED]
    return run_mutants(names) if names else 0


def main() -> None:
    global max_children
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help=f"core modules to run (default: all of {', '.join(CORE_MODULES)})")
    parser.add_argument("--report-only", action="store_true", help="print the table from the stored verdicts")
    parser.add_argument("--rerun-not-killed", action="store_true",
                        help="run only the mutants not detected so far (survivors, no tests, not checked, errors)")
    parser.add_argument("--max-children", type=int, default=1, help="mutant workers at once (default 1)")
    args = parser.parse_args()
    if args.max_children < 1:
        raise SystemExit(f"--max-children must be at least 1, got {args.max_children}")
    max_children = args.max_children
    unknown = sorted(set(args.modules) - set(CORE_MODULES))
    if unknown:
        raise SystemExit(f"not a core module: {unknown}; choose from {list(CORE_MODULES)}")
    modules = args.modules or list(CORE_MODULES)
    if not args.report_only:
        for module in modules:
            rerun_not_killed(module) if args.rerun_not_killed else run_module(module)
    report([m for m in modules if module_meta_path(m).exists()] if args.report_only else modules)


if __name__ == "__main__":
    main()
