"""Is the judge's text work linear? Seconds per KB of step segmentation and verdict parsing, 1 KB to 1 MB.

    .venv/bin/python tests/benchmarks/bench_judge_text.py [--sizes-kb 1 10 100 1000] [--budget-s 20]
        [--steps-file PATH]

Functions timed (the real ones, imported):
- ``segment``: ``reward.judge.steps.segment_response`` with the default settings;
- ``strip``: ``reward.judge.prompt.strip_reasoning`` (the judge's reasoning blocks removed);
- ``parse``: ``reward.judge.prompt.parse_verdict`` on the same text followed by a ``VERDICT: 3`` line (a
  ``parse_error``, as for text inside an unclosed ``<think>``, is an ordinary outcome and timed the same).

Input shapes (each built by repeating one unit up to the size; units are listed in ``SHAPES``): plain prose
steps, inline math, display math (``$$``/``\\[``), ``\\begin..\\end`` environments (nested), code fences,
many ``<think>`` tags (closed pairs with stray ones; openings only), and one unclosed block in front of
prose (every split point lies inside it). The table gives seconds per KB at each size and the ratio of the per-KB time at the
largest size to that at 10 KB: about 1 for linear work, about 100 for quadratic work.

A function is not run at a size (``-``) where even linear growth from the previous size would pass
``--budget-s`` seconds per call: quadratic code would take hours at 1 MB. ``--steps-file`` times another version of ``reward/judge/steps.py`` (for example
an earlier one: ``git show <commit>:reward/judge/steps.py > /tmp/old_steps.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from reward.judge.failures import JudgeFailure  # noqa: E402
from reward.judge.prompt import parse_verdict, strip_reasoning  # noqa: E402

#: Bytes per KB in the size column.
KB = 1024

#: Each measurement repeats its call until this many seconds have passed (the fastest run is reported).
MIN_MEASURE_S = 0.2

#: Most repetitions of one measurement.
MAX_REPEATS = 50

#: Steps the verdict line names (any in-range value; ``parse_verdict`` is told there are more).
VERDICT_STEP = 3

#: Shape name → (unit repeated to the size, prefix written once in front).
SHAPES: dict[str, tuple[str, str]] = {
    "prose": ("We add the two numbers and carry the one to the next column.\n\n", ""),
    "inline_math": ("Then $x_1 + x_2 = 7$ and $x_1 x_2 = 12$, so $x \\in \\{3, 4\\}$.\n\n", ""),
    "display_math": ("So we get\n\n$$\na^2 + b^2\n\n= c^2\n$$\n\nand\n\n\\[\nx = 1\n\\]\n\n", ""),
    "environments": ("\\begin{align}\nx &= 1 \\\\\n\\begin{cases} a \\\\\n\n b \\end{cases}\n\\end{align}\n\n"
                     "\\begin{equation}\n\\begin{equation} y \\end{equation}\n\\end{equation}\n\n", ""),
    "fences": ("```python\ndef f(x):\n\n    return x + 1\n```\n\nText between the fences.\n\n~~~\ncode\n~~~\n\n", ""),
    "think_tags": ("<think>a short thought</think> then <think> an unclosed one and </think> words\n\n", ""),
    "open_think_tags": ("<think> one more thought, never closed\n\n", ""),
    "unclosed_block": ("We add the two numbers and carry the one to the next column.\n\n", "$$\n"),
}


def load_steps(path: str | None) -> ModuleType:
    """``reward.judge.steps``, or the version of it in the file ``path``."""
    if path is None:
        import reward.judge.steps

        return reward.judge.steps
    spec = importlib.util.spec_from_file_location("steps_under_test", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--steps-file {path!r} is not a Python file; pass a copy of reward/judge/steps.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def build(shape: str, size_kb: int) -> str:
    """A text of about ``size_kb`` KB of the given shape."""
    unit, prefix = SHAPES[shape]
    target = size_kb * KB
    return prefix + unit * max(1, (target - len(prefix)) // len(unit))


def seconds(call: Callable[[], object]) -> float:
    """Fastest of repeated calls (at least one, until ``MIN_MEASURE_S`` passed or ``MAX_REPEATS`` runs)."""
    best, spent, repeats = float("inf"), 0.0, 0
    while repeats < 1 or (spent < MIN_MEASURE_S and repeats < MAX_REPEATS):
        started = time.perf_counter()
        call()
        took = time.perf_counter() - started
        best, spent, repeats = min(best, took), spent + took, repeats + 1
    return best


def parse(text: str) -> int | str | None:
    """``parse_verdict`` of ``text`` plus a verdict line; a failure's reason is returned, not raised."""
    try:
        return parse_verdict(f"{text}\nVERDICT: {VERDICT_STEP}", VERDICT_STEP)
    except JudgeFailure as failure:
        return failure.reason


def functions(steps: ModuleType) -> dict[str, Callable[[str], object]]:
    return {"segment": steps.segment_response, "strip": strip_reasoning, "parse": parse}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-kb", type=int, nargs="+", default=[1, 10, 100, 1000],
                        help="input sizes in KB (the ratio column needs 10 and the largest)")
    parser.add_argument("--budget-s", type=float, default=20.0,
                        help="skip a size where one call would take longer than this (linear extrapolation)")
    parser.add_argument("--steps-file", default=None, help="time this copy of reward/judge/steps.py instead")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--functions", nargs="+", default=["segment", "strip", "parse"],
                        choices=["segment", "strip", "parse"])
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes_kb)
    timed = functions(load_steps(args.steps_file))
    header = f"{'shape':<15} {'function':<8} " + " ".join(f"{f'{size} KB':>11}" for size in sizes)
    print("seconds per KB (fastest run); ratio = per-KB time at the largest size / at 10 KB")
    print(header + f" {'ratio':>7}")
    for shape in args.shapes:
        for name in args.functions:
            per_kb: dict[int, float] = {}
            for size in sizes:
                if per_kb and per_kb[max(per_kb)] * size > args.budget_s:  # linear extrapolation
                    break
                text = build(shape, size)
                took = seconds(lambda: timed[name](text))
                per_kb[size] = took / (len(text) / KB)
            cells = " ".join(f"{per_kb[size]:>11.2e}" if size in per_kb else f"{'-':>11}" for size in sizes)
            largest = max(per_kb)
            ratio = f"{per_kb[largest] / per_kb[10]:>7.1f}" if 10 in per_kb and largest > 10 else f"{'-':>7}"
            print(f"{shape:<15} {name:<8} {cells} {ratio}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
