"""Tests of the outcome grader (reward/grader.py) with real math-verify, real worker processes and Ray.

The equivalence table below is the grader's specification: every row is graded twice, once with the
in-process fast path (the default) and once with every boxed answer sent to math-verify, and both must
give the expected verdict — so the fast path can never change a verdict. Its last sections are the
classes where math-verify alone marks a wrong answer correct (or a right one wrong), each with the
false positive that must stay wrong and the true equivalences that must stay right.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from grading_cases import EQUIVALENCE_TABLE, HANGING_ANSWERS, WORKER_METHODS
from omegaconf import OmegaConf

from reward.answers import Extraction, canonical_answer, exact_verdict, extract_final_answer, unwrap_text_wrapper
from reward.grader import GraderConfig, GradeResult, OutcomeGrader, compute_score, compute_score_async

#: Time bound used by the tests that make math-verify hang (short, to keep the suite fast).
TEST_TIMEOUT_S = 1.0

#: Allowance for waking the waiting thread and killing the worker on a loaded 2-core CI machine. The
#: grader's own overhead is milliseconds; this only absorbs scheduler noise from parallel test runs.
OVERHEAD_ALLOWANCE_S = 1.0

#: Queue bound used by the tests that fill every worker with hanging answers (well under TEST_TIMEOUT_S,
#: so a call given up at the queue bound is told apart from one that waited for a time-out).
TEST_MAX_QUEUE_S = 0.3


@pytest.fixture(scope="module")
def grader():
    with OutcomeGrader() as default_grader:
        yield default_grader


@pytest.fixture(scope="module")
def math_verify_only_grader():
    """Every boxed answer goes to math-verify: no fast path, no cache."""
    with OutcomeGrader(GraderConfig(exact_match_first=False, cache_size=0)) as slow_grader:
        yield slow_grader


@pytest.fixture
def short_timeout_grader():
    with OutcomeGrader(GraderConfig(timeout_s=TEST_TIMEOUT_S, num_workers=1)) as bounded:
        bounded.warm_up()
        yield bounded


def _row_id(row):
    from conftest import readable_id

    response, truth, expected = row
    return readable_id(f"{response[:40]}|{truth}|{expected}")


# --------------------------------------------------------------------------------------------------
# The equivalence table
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("response, ground_truth, expected", EQUIVALENCE_TABLE, ids=map(_row_id, EQUIVALENCE_TABLE))
def test_equivalence_table(grader, math_verify_only_grader, response, ground_truth, expected):
    result = grader.grade(response, ground_truth)
    assert result.correct is expected, result
    assert not result.timed_out
    reference = math_verify_only_grader.grade(response, ground_truth)
    assert reference.correct is expected, reference
    assert reference.method in (*WORKER_METHODS, "no_answer"), reference


def test_fast_path_is_used_for_identical_answers_and_integers(grader):
    assert grader.grade("so \\boxed{ \\dfrac{1}{2} }.", "\\frac{1}{2}").method == "exact"
    wrong_integer = grader.grade("\\boxed{41}", "42")
    assert (wrong_integer.correct, wrong_integer.method, wrong_integer.extracted_answer) == (False, "exact", "41")
    # everything else reaches math-verify once, then the cache
    first = grader.grade("\\boxed{0.0625}", "\\frac{1}{16}")  # a pair no other test grades
    second = grader.grade("\\boxed{0.0625}", "\\frac{1}{16}")
    assert (first.method, second.method) == ("math_verify", "cache")
    assert first.correct and second.correct


def test_answers_without_a_box_never_reach_math_verify():
    with OutcomeGrader() as fresh:
        results = [fresh.grade(r, "5") for r in ("The answer is 5.", "\\boxed{}", "\\boxed{5", "\\boxed{5}")]
        assert [r.method for r in results] == ["no_answer", "no_answer", "no_answer", "exact"]
        assert [r.extracted_answer for r in results] == [None, None, None, "5"]
        assert fresh.worker_pids() == []  # lazy: no worker process was needed
        assert fresh.stats()["worker_starts"] == 0


# --------------------------------------------------------------------------------------------------
# Extraction and canonical forms
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response, answer",
    [
        ("\\boxed{\\frac{a}{\\{b\\}}}", "\\frac{a}{\\{b\\}}"),  # escaped braces do not close the box
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("\\boxed {7}", "7"),  # space before the brace
        ("\\boxed{a \\\\ b}", "a \\\\ b"),  # a LaTeX line break is not an escaped brace
        ("$\\boxed\\frac{1}{2}$", "\\frac{1}{2}"),  # brace-less: runs to `$`
        ("\\boxed{3}\\boxedanswer{4}", "3"),  # \boxedanswer is another command
        ("\\boxed{1}\n\n\\boxed{ 2 }", "2"),
    ],
)
def test_extract_final_answer(response, answer):
    assert extract_final_answer(response).answer == answer


#: What the pure extraction module must not load (it runs in data_prep and in every reward call).
PROCESS_MODULES = ("reward.grader", "reward.grade_pool", "threading", "subprocess", "multiprocessing")


def test_answer_extraction_is_pure():
    """reward.answers imports no process pool, threads or subprocesses (data_prep imports it)."""
    probe = f"import sys, reward.answers; print([m for m in {PROCESS_MODULES!r} if m in sys.modules])"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"


def test_think_modes():
    response = "reasoning \\boxed{3}</think> so \\boxed{5}"
    assert extract_final_answer(response, think_mode="auto").answer == "5"
    assert extract_final_answer(response, think_mode="ignore").answer == "5"
    assert extract_final_answer("no think block \\boxed{5}", think_mode="required").answer is None
    assert extract_final_answer("no think block \\boxed{5}", think_mode="auto").answer == "5"
    assert extract_final_answer("<think>\\boxed{5}", think_mode="ignore").answer == "5"
    assert extract_final_answer("<think>\\boxed{5}", think_mode="auto").reason == "no_answer"


def test_too_long_box_is_not_an_answer():
    assert extract_final_answer("\\boxed{" + "1" * 50 + "}", max_chars=49).reason == "too_long"
    assert extract_final_answer("\\boxed{" + "1" * 49 + "}", max_chars=49).answer == "1" * 49
    with OutcomeGrader(GraderConfig(max_answer_chars=10)) as small:
        result = small.grade("\\boxed{" + "x+" * 20 + "1}", "1")
        assert (result.method, result.correct, result.extracted_answer) == ("too_long", False, None)
        # the limit counts beyond the reference's own length, so a long correct answer still counts
        long_reference = "+".join(["x"] * 20)
        assert small.grade(f"\\boxed{{{long_reference}}}", long_reference).correct


def test_canonical_answer_is_conservative():
    assert canonical_answer(" $\\dfrac{1}{2}$. ") == "\\frac{1}{2}"
    assert canonical_answer("\\left( 1 ,\\, 2 \\right)") == "(1,2)"
    assert canonical_answer("\\pi r") != canonical_answer("\\pir")  # a space after a command word matters
    assert exact_verdict("1 2", "12") is None  # digits separated by a space: math-verify decides
    assert exact_verdict("0.50", "0.5") is None
    assert exact_verdict("-0", "0") is True
    assert exact_verdict("1" * 200, "1" * 200) is True  # identical strings
    assert exact_verdict("1" * 200, "1" * 199 + "2") is None  # too long for the integer path


def test_extraction_reports_found_and_never_reads_past_the_text():
    assert extract_final_answer("so \\boxed{5}.") == Extraction("5", "found")
    for cut_off in ("so \\boxed", "so \\boxed  ", "so \\fbox\n"):  # the command, then nothing
        assert extract_final_answer(cut_off) == Extraction(None, "no_answer"), repr(cut_off)


def test_a_braceless_answer_is_bounded_by_max_chars_and_may_be_empty():
    assert extract_final_answer("\\boxed 77777 is it", max_chars=5) == Extraction("77777", "found")
    assert extract_final_answer("\\boxed 777777 is it", max_chars=5) == Extraction(None, "too_long")
    assert extract_final_answer("\\boxed 7777777", max_chars=5) == Extraction(None, "too_long")
    assert extract_final_answer("so $\\boxed$5") == Extraction(None, "no_answer"), "a dollar ends it at once"


def test_the_default_think_mode_is_auto():
    """auto: only the text after ``</think>`` counts, and a reasoning block that never closes has no answer."""
    assert extract_final_answer("<think>\\boxed{3}</think> so \\boxed{5}").answer == "5"
    assert extract_final_answer("<think>so \\boxed{5}") == extract_final_answer("<think>so \\boxed{5}", "auto")
    assert extract_final_answer("<think>so \\boxed{5}").answer is None
    # only the text after the last </think> counts, and nothing of the tag's own neighbourhood
    assert extract_final_answer("r</think> so \\boxed{5} </think> not sure") == Extraction(None, "no_answer")
    assert extract_final_answer("<think>\\fbox 3</think> no answer here") == Extraction(None, "no_answer")


def test_canonical_answer_strips_dollars_and_periods_only_where_they_frame_the_answer():
    assert canonical_answer("$5$ .") == "5", "a period after the closing dollar, then the dollars"
    assert canonical_answer("$$5$$") == "5" and canonical_answer("$$") == ""
    assert canonical_answer("5$") == "5$" and canonical_answer("$5") == "$5", "an unpaired dollar is content"
    assert canonical_answer("5\\.") == "5\\.", "an escaped period is content"
    assert canonical_answer("1\t\n 2") == "1 2", "any run of whitespace between digits is one space"


@pytest.mark.parametrize(
    "answer, unwrapped",
    [
        ("\\textbf{(A)}", "(A)"),
        ("\\text{ (1, \\frac{1}{2}) }", "(1, \\frac{1}{2})"),  # nested braces inside
        ("\\mbox{[0, 1]}", "[0, 1]"),
        ("\\text{A}", "A"),
        ("\\textbf{\\text{(C)}}", "(C)"),
        ("\\text{Evelyn}", "\\text{Evelyn}"),  # a word stays text
        ("\\text{(A)} 5", "\\text{(A)} 5"),  # the wrapper is not the whole answer
        ("\\text{(A)}\\text{(B)}", "\\text{(A)}\\text{(B)}"),
        ("\\mathbf{(A)}", "\\mathbf{(A)}"),  # bold math is math, not a wrapper
    ],
)
def test_unwrap_text_wrapper(answer, unwrapped):
    assert unwrap_text_wrapper(answer) == unwrapped


def test_one_answer_against_two_references_in_a_row():
    """The cache is keyed by (answer, reference): the second reference must get its own verdict."""
    with OutcomeGrader() as fresh:
        halves = fresh.grade("\\boxed{0.5}", "\\frac12")
        thirds = fresh.grade("\\boxed{0.5}", "\\frac13")
        halves_again = fresh.grade("\\boxed{0.5}", "\\frac12")
    assert (halves.correct, halves.method) == (True, "math_verify")
    assert (thirds.correct, thirds.method) == (False, "math_verify")
    assert (halves_again.correct, halves_again.method) == (True, "cache")


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


def test_config_defaults_and_mapping():
    assert GraderConfig.from_mapping(None) == GraderConfig()
    section = OmegaConf.create({"timeout_s": 2.5, "num_workers": 1, "think_mode": "required"})
    config = GraderConfig.from_mapping(section)
    assert (config.timeout_s, config.num_workers, config.think_mode) == (2.5, 1, "required")
    assert config.max_answer_chars == GraderConfig().max_answer_chars


@pytest.mark.parametrize(
    "section, key",
    [
        ({"timeot_s": 1}, "reward.sgpo.grader.timeot_s"),
        ({"timeout_s": 0}, "reward.sgpo.grader.timeout_s"),
        ({"timeout_s": float("nan")}, "reward.sgpo.grader.timeout_s"),
        ({"timeout_s": float("inf")}, "reward.sgpo.grader.timeout_s"),
        ({"timeout_s": "5"}, "reward.sgpo.grader.timeout_s"),
        ({"num_workers": 0}, "reward.sgpo.grader.num_workers"),
        ({"num_workers": 1.5}, "reward.sgpo.grader.num_workers"),
        ({"max_answer_chars": 0}, "reward.sgpo.grader.max_answer_chars"),
        ({"cache_size": -1}, "reward.sgpo.grader.cache_size"),
        ({"think_mode": "strip"}, "reward.sgpo.grader.think_mode"),
        ({"exact_match_first": "yes"}, "reward.sgpo.grader.exact_match_first"),
        ({"max_queue_s": 0}, "reward.sgpo.grader.max_queue_s"),
        ({"max_queue_s": float("inf")}, "reward.sgpo.grader.max_queue_s"),
    ],
)
def test_config_errors_name_the_full_key(section, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        GraderConfig.from_mapping(section)


# --------------------------------------------------------------------------------------------------
# Bad input never raises
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("response, ground_truth", [(None, "5"), ("\\boxed{5}", None), ("\\boxed{5}", ""),
                                                    ("\\boxed{5}", ["5"]), (b"\\boxed{5}", "5")])  # fmt: skip
def test_bad_input_is_wrong_not_an_exception(grader, response, ground_truth):
    result = grader.grade(response, ground_truth)
    assert (result.correct, result.method) == (False, "error")


def test_numeric_reference_is_accepted(grader):
    assert grader.grade("\\boxed{42}", 42).correct
    assert grader.grade("\\boxed{0.5}", 0.5).correct


# --------------------------------------------------------------------------------------------------
# Pathological inputs: each call ends within its bound
# --------------------------------------------------------------------------------------------------


def _assert_within_bound(result: GradeResult, timeout_s: float) -> None:
    assert result.latency_s - result.queue_s <= timeout_s + OVERHEAD_ALLOWANCE_S, result


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HANGING_ANSWERS))
def test_hanging_math_verify_is_killed_at_the_bound(short_timeout_grader, name):
    grader = short_timeout_grader
    before = grader.worker_pids()
    started = time.monotonic()
    result = grader.grade(f"Therefore \\boxed{{{HANGING_ANSWERS[name]}}}", "1")
    elapsed = time.monotonic() - started
    assert (result.correct, result.timed_out, result.method) == (False, True, "timeout")
    assert elapsed <= TEST_TIMEOUT_S + OVERHEAD_ALLOWANCE_S
    _assert_within_bound(result, TEST_TIMEOUT_S)
    assert grader.stats()["timeouts"] == 1 and grader.stats()["worker_kills"] == 1
    for pid in before:
        assert _process_gone(pid)  # killed and reaped
    # the worker is replaced and the next answer is graded normally
    follow_up = grader.grade("\\boxed{0.5}", "\\frac12")
    assert (follow_up.correct, follow_up.method) == (True, "math_verify")
    assert grader.worker_pids() and grader.worker_pids() != before


@pytest.mark.slow
def test_deeply_nested_braces_finish_within_the_bound(short_timeout_grader):
    nested = "{" * 450 + "1" + "}" * 450  # fits max_answer_chars; math-verify needs seconds for it
    result = short_timeout_grader.grade(f"\\boxed{{{nested}}}", "1")
    assert result.correct is False and result.method in ("timeout", "math_verify")
    _assert_within_bound(result, TEST_TIMEOUT_S)
    # deeper than the answer limit: refused in-process, without a worker
    deeper = "{" * 5000 + "1" + "}" * 5000
    result = short_timeout_grader.grade(f"\\boxed{{{deeper}}}", "1")
    assert (result.method, result.correct) == ("too_long", False)
    assert result.latency_s < TEST_TIMEOUT_S


def test_a_timed_out_pair_is_remembered(short_timeout_grader):
    """The same hanging (answer, reference) again: wrong and timed out at once, without a worker."""
    grader = short_timeout_grader
    hanging = f"\\boxed{{{HANGING_ANSWERS['power tower']}}}"
    first = grader.grade(hanging, "1")
    second = grader.grade(hanging, "1")
    assert (first.correct, first.timed_out, first.method) == (False, True, "timeout")
    assert (second.correct, second.timed_out, second.method) == (False, True, "cached_timeout")
    assert second.latency_s < TEST_TIMEOUT_S / 10
    assert second.extracted_answer == first.extracted_answer == HANGING_ANSWERS["power tower"]
    stats = grader.stats()
    assert (stats["timeouts"], stats["cached_timeouts"], stats["worker_kills"]) == (1, 1, 1)


def _queue_bounded_grader() -> OutcomeGrader:
    grader = OutcomeGrader(GraderConfig(timeout_s=TEST_TIMEOUT_S, num_workers=2, max_queue_s=TEST_MAX_QUEUE_S))
    grader.warm_up()
    return grader


def _assert_given_up_at_the_queue_bound(result: GradeResult) -> None:
    assert (result.correct, result.timed_out, result.method) == (False, True, "queue_timeout"), result
    assert result.queue_s >= TEST_MAX_QUEUE_S * 0.9, result
    assert result.latency_s < TEST_TIMEOUT_S, result  # it did not wait for the hanging answers
    assert result.latency_s <= TEST_MAX_QUEUE_S + OVERHEAD_ALLOWANCE_S, result


def test_queue_wait_is_bounded_behind_hanging_answers():
    """Two distinct hanging answers hold both workers; an ordinary answer behind them is given up at
    ``max_queue_s`` as a (counted, uncached) time-out, and graded normally once a worker is free."""
    hanging = [f"\\boxed{{{HANGING_ANSWERS[name]}}}" for name in ("power tower", "nested fractions")]
    ordinary = ("\\boxed{0.5}", "\\frac12")
    with _queue_bounded_grader() as grader:
        blockers = [threading.Thread(target=grader.grade, args=(answer, "1")) for answer in hanging]
        for blocker in blockers:
            blocker.start()
        time.sleep(0.1)  # both comparisons are running
        queued = grader.grade(*ordinary)
        for blocker in blockers:
            blocker.join()
        _assert_given_up_at_the_queue_bound(queued)
        assert grader.stats()["queue_timeouts"] == 1 and grader.stats()["timeouts"] == 2
        grader.warm_up()  # the killed workers' replacements start (that start would count as queue time)
        later = grader.grade(*ordinary)
        assert (later.correct, later.method) == (True, "math_verify")  # a queue time-out is not cached


@pytest.mark.slow
def test_queue_wait_is_bounded_for_agrade():
    hanging = [f"\\boxed{{{HANGING_ANSWERS[name]}}}" for name in ("power tower", "factorial of a huge number")]

    async def run(grader):
        return await asyncio.gather(*(grader.agrade(answer, "1") for answer in hanging),
                                    grader.agrade("\\boxed{0.5}", "\\frac12"))  # fmt: skip

    with _queue_bounded_grader() as grader:
        *blocked, queued = asyncio.run(run(grader))
    assert [r.method for r in blocked] == ["timeout", "timeout"]
    _assert_given_up_at_the_queue_bound(queued)


def test_a_worker_still_starting_at_the_queue_bound_is_kept():
    """The first call finds no worker yet: it is given up at ``max_queue_s``, but the worker goes on
    starting and serves the next call (not started again)."""
    with OutcomeGrader(GraderConfig(num_workers=1, max_queue_s=0.01)) as grader:
        first = grader.grade("\\boxed{0.5}", "\\frac12")
        assert first.method == "queue_timeout" and first.latency_s < TEST_TIMEOUT_S
        deadline = time.monotonic() + 60
        while (result := grader.grade("\\boxed{0.5}", "\\frac12")).method == "queue_timeout":
            assert time.monotonic() < deadline, "the worker never became ready"
            time.sleep(0.2)
        assert (result.correct, result.method) == (True, "math_verify")
        assert grader.stats()["worker_starts"] == 1


@pytest.mark.parametrize(
    "response, method",
    [
        ("Step. " * 17_000 + "So the answer is \\boxed{5}.", "exact"),  # 100,000 characters of reasoning
        ("\\boxed{" * 15_000, "no_answer"),  # 100,000 characters of unclosed boxes
        ("{" * 100_000, "no_answer"),  # 100,000 unbalanced braces, no box
        ("\\boxed{" + "{" * 100_000 + "5", "too_long"),  # one box that never closes
        ("<think>" + "x " * 50_000 + "</think>\\boxed{5}", "exact"),
        ("\\boxed{5}" + "\\" * 100_000, "exact"),  # a tail of backslashes
    ],
    ids=["long-reasoning", "unclosed-boxes", "braces", "unclosed-giant-box", "long-think", "backslashes"],
)
def test_100k_character_responses_are_graded_in_process_quickly(response, method):
    assert len(response) >= 100_000
    with OutcomeGrader(GraderConfig(timeout_s=TEST_TIMEOUT_S)) as fresh:
        result = fresh.grade(response, "5")
        assert (result.method, result.correct) == (method, method == "exact")
        assert result.latency_s < TEST_TIMEOUT_S  # in-process work is bounded by the answer limit
        assert fresh.worker_pids() == []


# --------------------------------------------------------------------------------------------------
# Async use (verl's reward loop) and threads
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_agrade_runs_concurrently_without_blocking_the_event_loop():
    responses = [(f"so \\boxed{{{i}/4}}", f"{i * 0.25}") for i in range(40)]
    responses += [(f"\\boxed{{{HANGING_ANSWERS[name]}}}", "1") for name in ("power tower", "nested fractions")]

    async def run(grader):
        longest_gap = 0.0
        done = asyncio.Event()

        async def ticker():
            nonlocal longest_gap
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                longest_gap = max(longest_gap, now - last)
                last = now

        tick = asyncio.create_task(ticker())
        results = await asyncio.gather(*(grader.agrade(r, t) for r, t in responses))
        done.set()
        await tick
        return results, longest_gap

    with OutcomeGrader(GraderConfig(timeout_s=TEST_TIMEOUT_S, num_workers=2)) as grader:
        results, longest_gap = asyncio.run(run(grader))
    assert [r.correct for r in results[:40]] == [True] * 40
    assert [r.method for r in results[40:]] == ["timeout", "timeout"]
    for result in results:
        _assert_within_bound(result, TEST_TIMEOUT_S)
    assert longest_gap < 0.5  # the loop kept running while both workers were stuck


@pytest.mark.slow
def test_concurrent_identical_answers_share_one_comparison():
    """A group repeating one (here: hanging) answer costs one comparison, and one caller's
    cancellation does not cancel the comparison the others wait for."""
    hanging = (f"\\boxed{{{HANGING_ANSWERS['power tower']}}}", "1")

    async def run(grader):
        tasks = [asyncio.ensure_future(grader.agrade(*hanging)) for _ in range(8)]
        await asyncio.sleep(0.2)
        tasks[0].cancel()
        return await asyncio.gather(*tasks[1:])

    with OutcomeGrader(GraderConfig(timeout_s=TEST_TIMEOUT_S, num_workers=1)) as grader:
        grader.warm_up()
        started = time.monotonic()
        results = asyncio.run(run(grader))
        elapsed = time.monotonic() - started
        assert [r.method for r in results] == ["timeout"] * 7
        assert grader.stats()["worker_kills"] == 1
    assert elapsed < 2 * TEST_TIMEOUT_S + OVERHEAD_ALLOWANCE_S  # one bound, not seven in a row


def test_grade_is_thread_safe(grader):
    rows = [(r, t, e) for r, t, e in EQUIVALENCE_TABLE if "\\boxed" in r] * 3
    verdicts: list[tuple[bool, bool]] = []
    lock = threading.Lock()

    def work(chunk):
        for response, truth, expected in chunk:
            got = grader.grade(response, truth).correct
            with lock:
                verdicts.append((got, expected))

    threads = [threading.Thread(target=work, args=(rows[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(verdicts) == len(rows)
    assert all(got == expected for got, expected in verdicts)


# --------------------------------------------------------------------------------------------------
# Worker lifecycle
# --------------------------------------------------------------------------------------------------


def _process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie that is not ours to reap)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return True
    state, parent = fields[0], int(fields[1])
    return state == "Z" and parent != os.getpid()


def _wait_gone(pids, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(_process_gone(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def test_close_reaps_workers_and_the_pool_restarts_lazily():
    grader = OutcomeGrader(GraderConfig(num_workers=2))
    grader.warm_up()
    pids = grader.worker_pids()
    assert len(pids) == 2
    grader.close()
    grader.close()  # idempotent
    assert grader.worker_pids() == []
    assert all(_process_gone(pid) for pid in pids)  # reaped at once: no zombies
    assert grader.grade("\\boxed{0.5}", "\\frac12").method == "math_verify"  # restarts on demand
    new_pids = grader.worker_pids()
    assert new_pids and not set(new_pids) & set(pids)
    del grader  # the finalizer stops the workers
    assert _wait_gone(new_pids)


def test_close_during_a_hanging_comparison_returns_at_once_and_leaves_no_worker():
    grader = OutcomeGrader(GraderConfig(timeout_s=60, num_workers=1))
    grader.warm_up()
    (pid,) = grader.worker_pids()
    results: list[GradeResult] = []
    caller = threading.Thread(target=lambda: results.append(grader.grade("\\boxed{9^{9^{9^{9}}}}", "1")))
    caller.start()
    time.sleep(0.5)  # the comparison is running
    started = time.monotonic()
    grader.close()
    caller.join(timeout=10)
    assert not caller.is_alive() and time.monotonic() - started < 10  # not the 60 s bound
    assert (results[0].correct, results[0].method) == (False, "error")
    assert grader.worker_pids() == [] and _process_gone(pid)


def test_a_worker_killed_from_outside_is_replaced():
    """A real fault: the worker process is SIGKILLed (as the OOM killer would) between calls."""
    with OutcomeGrader(GraderConfig(num_workers=1)) as grader:
        grader.warm_up()
        (pid,) = grader.worker_pids()
        os.kill(pid, signal.SIGKILL)
        result = grader.grade("\\boxed{0.5}", "\\frac12")
        assert (result.correct, result.method) == (True, "math_verify")
        assert grader.worker_pids() != [pid]
        assert _process_gone(pid)


@pytest.mark.slow
def test_workers_die_with_their_parent(tmp_path):
    """The grader's process is SIGKILLed (no clean-up runs); its workers must not outlive it."""
    script = (
        "import sys, time\n"
        "from reward.grader import OutcomeGrader, GraderConfig\n"
        "g = OutcomeGrader(GraderConfig(num_workers=2, timeout_s=600))\n"
        "g.warm_up()\n"
        "print(' '.join(map(str, g.worker_pids())), flush=True)\n"
        # one worker busy in a hanging computation, one idle
        "g.grade('\\\\boxed{9^{9^{9^{9}}}}', '1')\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        pids = [int(p) for p in child.stdout.readline().split()]
        assert len(pids) == 2
        time.sleep(0.5)  # let the hanging comparison start
        assert not any(_process_gone(pid) for pid in pids)
    finally:
        child.kill()
        child.wait()
    assert _wait_gone(pids), "worker processes outlived their parent"


@pytest.mark.slow
def test_grader_inside_a_ray_actor():
    """verl's reward workers are async Ray actors: grade there, time out there, and clean up with the actor."""
    import ray

    @ray.remote(num_cpus=1)
    class RewardWorkerLike:
        def __init__(self):
            self.grader = OutcomeGrader(GraderConfig(timeout_s=TEST_TIMEOUT_S, num_workers=2))

        async def grade_all(self, rows):
            results = await asyncio.gather(*(self.grader.agrade(r, t) for r, t in rows))
            return [(r.correct, r.method) for r in results], self.grader.worker_pids()

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        actor = RewardWorkerLike.remote()
        rows = [("\\boxed{0.5}", "\\frac12"), ("\\boxed{3}", "3"), ("\\boxed{9^{9^{9^{9}}}}", "1"), ("none", "1")]
        verdicts, pids = ray.get(actor.grade_all.remote(rows), timeout=120)
        assert verdicts == [(True, "math_verify"), (True, "exact"), (False, "timeout"), (False, "no_answer")]
        assert pids
        ray.kill(actor)
        assert _wait_gone(pids), "worker processes outlived the Ray actor"
    finally:
        ray.shutdown()


# --------------------------------------------------------------------------------------------------
# verl's custom_reward_function interface
# --------------------------------------------------------------------------------------------------


def test_compute_score_through_verls_loader():
    """verl loads the function from the config exactly as a run would, with reward_kwargs passed on.

    The ``pkg://`` form is required: verl loads a file path without registering the module, which
    breaks any module that defines dataclasses.
    """
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create(
        {"reward": {"custom_reward_function": {"path": "pkg://reward.grader",
                                               "name": "compute_score",
                                               "reward_kwargs": {"timeout_s": 3.0}}}}  # fmt: skip
    )
    score = get_custom_reward_fn(config)
    correct = score(data_source="sgpo/aime24", solution_str="\\boxed{0.5}", ground_truth="\\frac12", extra_info={})
    no_box = score(data_source="aime24", solution_str="Answer: 0.5", ground_truth="\\frac12", extra_info=None)
    assert correct == {"score": 1.0, "acc": True, "pred": "0.5", "timed_out": False}
    assert no_box == {"score": 0.0, "acc": False, "pred": "", "timed_out": False}  # same keys, any data source
    with pytest.raises(ValueError, match=r"reward\.sgpo\.grader\.timeout"):
        compute_score("sgpo/x", "\\boxed{1}", "1", timeout=3)


def test_compute_score_async():
    result = asyncio.run(compute_score_async("sgpo/math500", "\\boxed{\\dfrac{3}{6}}", "0.5"))
    assert result["acc"] is True and result["score"] == 1.0


def test_reference_answers_are_normalised_as_datasets_store_them():
    # Survivors of mutation testing (docs/mutation_testing.md): dollar-wrapped, empty and boxed references.
    from reward.answers import reference_answer

    assert reference_answer("$5$") == "5" and reference_answer("$$x^2$$") == "x^2"
    assert reference_answer("$5") == "$5"  # one dollar sign is not a wrapper
    assert reference_answer("$$") is None and reference_answer("  ") is None
    assert reference_answer("The answer is \\boxed{12}.") == "12"
    assert reference_answer("\\boxed{}") is None  # an empty box is no reference, not some other text
    assert reference_answer(7) == "7" and reference_answer(2.5) == "2.5"
    assert reference_answer(True) is None and reference_answer(None) is None and reference_answer(["5"]) is None


def test_last_boxed_takes_the_last_box_anywhere_whatever_its_length():
    # A reference solution's box is read with no think rule and no length cap (unlike a response's answer).
    from reward.answers import DEFAULT_MAX_ANSWER_CHARS, last_boxed

    assert last_boxed("<think>\\boxed{4}") == "4"
    assert last_boxed("\\boxed{3}</think> then \\boxed{4}") == "4"
    long_answer = "1" * (2 * DEFAULT_MAX_ANSWER_CHARS)
    assert last_boxed(f"\\boxed{{{long_answer}}}") == long_answer
    assert last_boxed("no box here") is None


def test_a_text_wrapper_around_empty_parentheses_is_removed():
    from reward.answers import unwrap_text_wrapper

    assert unwrap_text_wrapper("\\text{()}") == "()" and unwrap_text_wrapper("\\textbf{[]}") == "[]"
    assert unwrap_text_wrapper("\\text{east}") == "\\text{east}"
