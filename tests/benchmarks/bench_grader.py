"""Grading throughput of our outcome grader against verl's bundled math-verify scorer, same inputs, same process.

    .venv/bin/python tests/benchmarks/bench_grader.py [--groups 32] [--rounds 4] [--repeats 3] [--timeout-s 5]
        [--save-verdicts FILE.json] [--compare-verdicts FILE.json]

Inputs: the equivalence table of tests/test_grader_on_cpu.py, plus ``groups × rounds`` groups of 8
responses (one prompt's group in RL) built around 32 typical reference answers (integers, fractions,
radicals, intervals, sets, expressions, choices); each response is about 1,500 characters of reasoning
and ends in the reference written identically, written in another equivalent form, a wrong answer, or
no box. Every input has a known expected verdict.

Scorers, each with 1 and 2 worker processes:
- ``verl``: ``verl.utils.reward_score.math_verify.compute_score`` (its module-level spawn pool is set to
  that many processes), called from a thread pool the size of asyncio's default executor, which is how
  verl's reward managers call a synchronous scorer (``loop.run_in_executor(None, …)``);
- ``ours``: ``OutcomeGrader`` defaults (fast path and cache on), from the same thread pool;
- ``ours, agrade``: the same grader through ``agrade`` and ``asyncio.gather`` (how the SGPO manager calls it);
- ``ours, math-verify only``: fast path and cache off, every boxed answer through a worker (the cost of
  the process machinery alone).

Prints responses/s (median of ``--repeats`` interleaved runs), the ratio to verl's, agreement with verl's verdicts and with the expected verdicts,
and the longest comparison (``latency_s - queue_s``) against the bound. Then a time-out check: a hanging
answer followed by an ordinary one, one process each, with verl's ``timeout`` set to the same bound.

``--save-verdicts`` writes our grader's verdicts (defaults, 1 process) as JSON; ``--compare-verdicts``
reads such a file from another version of the grader (same arguments) and prints how many verdicts
changed, and how, so a change to the grader's rules can be measured on the same inputs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for the equivalence table

from test_grader_on_cpu import EQUIVALENCE_TABLE, HANGING_ANSWERS  # noqa: E402

from reward.grader import GraderConfig, OutcomeGrader  # noqa: E402

#: Size of asyncio's default executor, which verl's reward managers use for synchronous scorers.
CALLER_THREADS = min(32, (os.cpu_count() or 1) + 4)

#: Generous bound for the untimed warm-up calls that start verl's pool (process spawn + imports).
WARM_UP_TIMEOUT_S = 120.0

#: Responses per prompt (RL group size).
GROUP_SIZE = 8

#: Approximate characters of reasoning before the final answer.
REASONING_CHARS = 1500

# (reference, an equivalent form, a wrong answer)
ANSWERS = [
    ("5", "5.0", "6"), ("12", "12", "21"), ("-3", "-3.0", "3"), ("100", "10^2", "1000"), ("204", "204", "240"),
    ("\\frac{3}{4}", "0.75", "\\frac{4}{3}"), ("\\frac{1}{2}", "\\dfrac{1}{2}", "\\frac{1}{3}"),
    ("\\frac{7}{2}", "3.5", "\\frac{2}{7}"), ("0.25", "\\frac14", "0.2"), ("\\frac{5}{12}", "5/12", "\\frac{7}{12}"),
    ("2\\sqrt{3}", "\\sqrt{12}", "3\\sqrt{2}"), ("\\sqrt{2}", "2^{1/2}", "\\sqrt{3}"),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}", "\\frac{\\sqrt{2}}{2}"), ("3\\pi", "3 \\pi", "\\pi"),
    ("\\frac{\\pi}{3}", "\\pi/3", "\\frac{\\pi}{6}"), ("(1, 2)", "\\left(1,2\\right)", "(1, 3)"),
    ("[2, 5)", "[2,5)", "(2, 5]"), ("(-\\infty, 0]", "(-\\infty,0]", "(-\\infty, 0)"),
    ("\\{1, 2\\}", "\\{2, 1\\}", "\\{1, 3\\}"), ("1, 3, 5", "5, 3, 1", "1, 3"),
    ("x^2+1", "1+x^2", "x^2-1"), ("2x+3", "3+2x", "2x-3"), ("(x-1)(x+2)", "x^2+x-2", "(x+1)(x-2)"),
    ("\\text{(B)}", "B", "\\text{(C)}"), ("\\text{Monday}", "\\text{Monday}", "\\text{Tuesday}"),
    ("45^\\circ", "45", "135"), ("4", "x = 4", "x = 5"), ("8\\sqrt{2}", "\\sqrt{128}", "8"),
    ("\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\-2\\end{pmatrix}",
     "\\begin{pmatrix} -1 \\\\ 2 \\end{pmatrix}"),
    ("1.5", "\\frac{3}{2}", "2.5"), ("60", "60", "30"), ("2^{10}", "1024", "2^{11}"),
]  # fmt: skip

FILLER_SENTENCES = [
    "Let us set up the problem carefully.", "We substitute $x = 2t$ and simplify the expression.",
    "By the triangle inequality, $|a + b| \\le |a| + |b|$.", "Squaring both sides gives $x^2 + 2x + 1 = 9$.",
    "Hence the two cases must be checked separately.", "The sum of the roots is $-\\frac{b}{a}$ by Vieta.",
    "We verify that this value satisfies the original equation.", "Counting the cases, we obtain $\\binom{5}{2}$.",
]  # fmt: skip

# how a group's responses end: identical reference, equivalent form, wrong answer, no box
ENDINGS = ("identical", "equivalent", "wrong", "no_box")
ENDING_WEIGHTS = (3, 2, 4, 1)


def build_inputs(groups: int, rounds: int, seed: int = 0) -> list[tuple[str, str, bool]]:
    """(response, ground truth, expected verdict) for the table and the synthetic groups."""
    rng = random.Random(seed)

    def reasoning() -> str:
        text = ""
        while len(text) < REASONING_CHARS:
            text += rng.choice(FILLER_SENTENCES) + " "
        return text

    inputs = [(reasoning() + "\n\n" + response, truth, expected) for response, truth, expected in EQUIVALENCE_TABLE]
    for _ in range(rounds):
        for reference, equivalent, wrong in (ANSWERS * (groups // len(ANSWERS) + 1))[:groups]:
            for ending in rng.choices(ENDINGS, ENDING_WEIGHTS, k=GROUP_SIZE):
                answer = {"identical": reference, "equivalent": equivalent, "wrong": wrong}.get(ending)
                tail = f"Therefore the answer is $\\boxed{{{answer}}}$." if answer else "I could not finish."
                inputs.append((reasoning() + "\n\n" + tail, reference, ending in ("identical", "equivalent")))
    return inputs


def use_verl_pool(processes: int):
    """Point verl's scorer at a pool of ``processes`` (its module keeps one global spawn pool of 4)."""
    import verl.utils.reward_score.math_verify as verl_math_verify

    if verl_math_verify._pool is not None:
        verl_math_verify._pool.shutdown(wait=True, cancel_futures=True)
    verl_math_verify._pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
    return verl_math_verify


def time_threads(score, inputs) -> tuple[float, list]:
    with ThreadPoolExecutor(CALLER_THREADS) as callers:
        start = time.perf_counter()
        outputs = list(callers.map(lambda row: score(row[0], row[1]), inputs))
        return time.perf_counter() - start, outputs


def run_verl(inputs, processes: int, timeout_s: float) -> tuple[float, list[bool]]:
    verl_math_verify = use_verl_pool(processes)

    def score(response, truth):
        return verl_math_verify.compute_score(response, truth, timeout=timeout_s) == 1.0

    def warm(response, truth):  # start the pool and import math-verify in every process, untimed
        return verl_math_verify.compute_score(response, truth, timeout=WARM_UP_TIMEOUT_S)

    time_threads(warm, inputs[: 4 * processes])
    seconds, verdicts = time_threads(score, inputs)
    return seconds, verdicts


def run_ours(inputs, processes: int, timeout_s: float, use_async: bool, fast: bool):
    config = GraderConfig(timeout_s=timeout_s, num_workers=processes, exact_match_first=fast,
                          cache_size=GraderConfig().cache_size if fast else 0)  # fmt: skip
    with OutcomeGrader(config) as grader:
        grader.warm_up()
        if use_async:

            async def grade_all():
                return await asyncio.gather(*(grader.agrade(response, truth) for response, truth, _ in inputs))

            start = time.perf_counter()
            results = asyncio.run(grade_all())
            seconds = time.perf_counter() - start
        else:
            seconds, results = time_threads(grader.grade, inputs)
    return seconds, results


def agreement(a: list[bool], b: list[bool]) -> float:
    return sum(x == y for x, y in zip(a, b)) / len(a)


def save_verdicts(path: str, inputs, results) -> None:
    rows = [{"ground_truth": truth, "expected": expected, "correct": result.correct, "method": result.method,
             "answer": result.extracted_answer} for (_, truth, expected), result in zip(inputs, results)]  # fmt: skip
    Path(path).write_text(json.dumps(rows, indent=0))


def compare_verdicts(path: str, inputs, results) -> None:
    """Print how many of our verdicts differ from those saved in ``path`` (same inputs required)."""
    before = json.loads(Path(path).read_text())
    if len(before) != len(inputs) or any(b["ground_truth"] != row[1] for b, row in zip(before, inputs)):
        raise SystemExit(f"{path} holds verdicts on other inputs; run both versions with the same arguments")
    changed = [(b, row, r) for b, row, r in zip(before, inputs, results) if b["correct"] != r.correct]
    fixed = sum(r.correct == row[2] for _, row, r in changed)
    print(f"{'':<4}verdicts changed vs {path}: {len(changed)} of {len(inputs)} ({fixed} now as expected, "
          f"{len(changed) - fixed} no longer as expected)")  # fmt: skip
    for b, (_, truth, expected), r in changed:
        print(f"{'':<8}{b['answer']!r} vs {truth!r}: {b['correct']} ({b['method']}) -> {r.correct} ({r.method}), "
              f"expected {expected}")  # fmt: skip


def timeout_check(timeout_s: float) -> None:
    hanging = f"so \\boxed{{{HANGING_ANSWERS['power tower']}}}"
    ordinary = ("so \\boxed{0.5}", "\\frac12")
    print(f"\ntime-out check (1 process, bound {timeout_s:g} s): a hanging answer, then an ordinary one")
    verl_math_verify = use_verl_pool(1)
    verl_math_verify.compute_score(*ordinary, timeout=60)  # start and warm the worker
    for label, response, truth in (("hanging", hanging, "1"), ("ordinary", *ordinary)):
        start = time.perf_counter()
        score = verl_math_verify.compute_score(response, truth, timeout=timeout_s)
        print(f"  verl  {label:9} score {score:.0f}  {time.perf_counter() - start:6.2f} s")
    verl_math_verify._pool.shutdown(wait=False, cancel_futures=True)
    for process in multiprocessing.active_children():  # verl never stops its hung worker; we must
        process.kill()
    verl_math_verify._pool = None
    with OutcomeGrader(GraderConfig(timeout_s=timeout_s, num_workers=1)) as grader:
        grader.warm_up()
        for label, response, truth in (("hanging", hanging, "1"), ("ordinary", *ordinary)):
            result = grader.grade(response, truth)
            print(f"  ours  {label:9} score {result.correct:d}  {result.latency_s:6.2f} s  method {result.method}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=32, help="prompts per round (8 responses each)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds over the groups")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per scorer (median reported)")
    parser.add_argument("--timeout-s", type=float, default=GraderConfig().timeout_s, help="bound for both")
    parser.add_argument("--save-verdicts", metavar="FILE", help="write our verdicts (defaults, 1 process) as JSON")
    parser.add_argument("--compare-verdicts", metavar="FILE", help="count verdicts that differ from FILE's")
    args = parser.parse_args()

    inputs = build_inputs(args.groups, args.rounds)
    expected = [row[2] for row in inputs]
    table = slice(0, len(EQUIVALENCE_TABLE))
    print(f"{len(inputs)} responses ({len(EQUIVALENCE_TABLE)} table rows + {len(inputs) - len(EQUIVALENCE_TABLE)} "
          f"in groups of {GROUP_SIZE}), {os.cpu_count()} CPUs, {CALLER_THREADS} caller threads, "
          f"bound {args.timeout_s:g} s")  # fmt: skip
    header = (f"{'scorer':<26}{'procs':>6}{'resp/s':>9}{'vs verl':>9}{'agree verl':>12}{'expected':>10}"
              f"{'table':>8}{'max cmp s':>11}{'max lat s':>11}")  # fmt: skip
    print(header)
    scorers = (("verl math_verify", None, None), ("ours", False, True), ("ours, agrade", True, True),
               ("ours, math-verify only", False, False))  # fmt: skip
    for processes in (1, 2):
        seconds: dict[str, list[float]] = {label: [] for label, _, _ in scorers}
        verdicts: dict[str, list[bool]] = {}
        results: dict[str, list] = {}
        for _ in range(args.repeats):  # interleaved, so that load from other processes hits all alike
            for label, use_async, fast in scorers:
                if use_async is None:
                    elapsed, verdicts[label] = run_verl(inputs, processes, args.timeout_s)
                else:
                    elapsed, results[label] = run_ours(inputs, processes, args.timeout_s, use_async, fast)
                    verdicts[label] = [r.correct for r in results[label]]
                seconds[label].append(elapsed)
        verl_rate = len(inputs) / statistics.median(seconds["verl math_verify"])
        verl_verdicts = verdicts["verl math_verify"]
        for label, _, _ in scorers:
            rate = len(inputs) / statistics.median(seconds[label])
            got = verdicts[label]
            if label in results:
                longest = (f"{max(r.latency_s - r.queue_s for r in results[label]):>11.3f}"
                           f"{max(r.latency_s for r in results[label]):>11.3f}")  # fmt: skip
            else:
                longest = f"{'-':>11}{'-':>11}"
            print(f"{label:<26}{processes:>6}{rate:>9.0f}{rate / verl_rate:>9.2f}"
                  f"{agreement(got, verl_verdicts):>12.3f}{agreement(got, expected):>10.3f}"
                  f"{agreement(got[table], expected[table]):>8.3f}{longest}")  # fmt: skip
        if processes == 1:
            ours = verdicts["ours"]
            differ = [i for i, (x, y) in enumerate(zip(ours, verl_verdicts)) if x != y]
            kinds: dict[str, int] = {}
            for i in differ:
                key = f"ours {ours[i]} ({results['ours'][i].method}) / verl {verl_verdicts[i]}"
                kinds[key] = kinds.get(key, 0) + 1
            print(f"{'':<4}disagreements with verl: {len(differ)}: {kinds}")
            if args.save_verdicts:
                save_verdicts(args.save_verdicts, inputs, results["ours"])
            if args.compare_verdicts:
                compare_verdicts(args.compare_verdicts, inputs, results["ours"])
    timeout_check(min(args.timeout_s, 2.0))


if __name__ == "__main__":
    main()
