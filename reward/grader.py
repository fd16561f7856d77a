"""The outcome grader: is a response's final answer equal to the reference answer?

One grader for training, validation and evaluation, so every benchmark is scored the same way
(the outcome ``o`` of the reward). This module holds its settings (:class:`GraderConfig`), its verdict
(:class:`GradeResult`), the verdict cache and counters, :class:`OutcomeGrader` and verl's
``compute_score`` adapter. For one response:

1. **Final answer** (``reward/answers.py``, pure): the content of the last ``\\boxed{…}`` or
   ``\\fbox{…}`` in the part of the response that :attr:`GraderConfig.think_mode` selects (by default
   the text after ``</think>``). No box, an empty box, a box cut off by the end of the response or a
   box longer than the limit → no final answer → wrong.
2. **Fast path, in-process** (``reward/answers.py``): text wrappers around a whole answer removed on
   both sides, conservative canonical forms compared, plain integers compared as integers. Verdicts
   already computed (and comparisons that timed out) are served from an LRU cache (here).
3. **math-verify, in a worker process with a hard time bound** (``reward/grade_pool.py``, the killable
   pool; ``reward/grade_worker.py``, the worker and the rules where math-verify's verdict is not
   trusted: ``method`` ``base``, ``unit``, ``strict``). A comparison that is not finished after
   ``timeout_s`` has its worker killed and replaced, and counts as **wrong**, with ``timed_out=True``
   (``method="timeout"``).

Time bound (the pool's docstring has the details): ``latency_s - queue_s <= timeout_s + overhead`` and
``latency_s <= max_queue_s + timeout_s + overhead``; the overhead (killing a worker, waking the waiting
thread) is milliseconds. A call that has no running worker within ``max_queue_s`` is given up, counts as
wrong and is reported as a time-out (``method="queue_timeout"``, ``timed_out=True``, not cached: the
answer is not at fault). A comparison that timed out is remembered (in the verdict cache) for its
(answer, reference) pair, so a pathological answer repeated in a group or a later step costs one
``timeout_s``, not one each time.

Worker processes start lazily (:meth:`OutcomeGrader.warm_up` starts them ahead);
:meth:`OutcomeGrader.close` (also run by the garbage collector and at interpreter exit) stops them all
and reaps them; they die with the grader's process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections import OrderedDict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from typing import Any, Mapping

from reward.answers import (
    DEFAULT_MAX_ANSWER_CHARS,
    THINK_MODES,
    exact_verdict,
    extract_final_answer,
    reference_answer,
    unwrap_text_wrapper,
)
from reward.grade_pool import WORKER_START_TIMEOUT_S, ComparisonOutcome, ComparisonRequest, WorkerPool
from reward.settings_base import require_int, require_number, build_settings

logger = logging.getLogger(__name__)

#: Where the grader's settings live in the trainer config; used in every error message.
CONFIG_PREFIX = "reward.sgpo.grader"

#: How many "bad reference answer" warnings are logged per process (then they are only counted).
MAX_BAD_INPUT_WARNINGS = 10


# ---------------------------------------------------------------------------------------------------
# Settings and result
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraderConfig:
    """Settings of the outcome grader (``reward.sgpo.grader.*`` in the trainer config).

    Attributes:
        timeout_s: Hard bound, in seconds, on one math-verify comparison (parsing both answers and
            comparing them), enforced by killing the worker process. A comparison that runs past it
            counts as wrong and is reported (``timed_out=True``). Default 5 s: math-verify's own
            per-operation default; the longest legitimate comparison we measured (the equivalence table
            in ``tests/test_grader_on_cpu.py``, the benchmark set) took 0.4 s, and 2 s on a 2-core
            machine at load average 10, while pathological LaTeX (power towers, deep nesting) runs
            for minutes. A timed-out comparison holds one
            worker for this long, so larger values slow a batch that contains hanging answers.
        num_workers: Worker processes for math-verify comparisons (per grader, i.e. per verl reward
            worker). Each holds about 100 MB (sympy). Comparisons are a few milliseconds each and the
            fast path needs none, so 2 keeps up with a reward worker's share of a batch while one
            worker is stuck on a timed-out answer.
        max_answer_chars: Longest box content, in characters beyond the reference answer's own
            length, that is accepted as a final answer; a longer box (or one whose closing brace is not
            found within that many characters) is no usable final answer → wrong (``method="too_long"``).
            It bounds the in-process extraction scan and keeps megabyte strings out of math-verify.
            Reference answers are short (MATH500's longest is under 100 characters), so 1000 is ample.
        think_mode: Which part of the response may hold the final answer when it has a reasoning block.
            ``auto`` (default): if the response contains ``</think>``, only the text after the last
            ``</think>``; a ``<think>`` that is never closed means the model never answered (no final
            answer); otherwise the whole response. ``required``: a response without ``</think>`` has no
            final answer — for chat templates that open ``<think>`` in the prompt (DeepSeek-R1-Distill),
            whose truncated responses would otherwise be graded on draft boxes inside the reasoning.
            ``ignore``: the whole response, tags included.
        exact_match_first: Decide in-process, without math-verify, when the canonicalised answers are
            identical or both are plain integers. Only ``False`` for checking that this path agrees with
            math-verify (the tests do); it never changes a verdict, only the speed.
        cache_size: Verdicts kept in an in-process LRU cache keyed by (answer, reference); a group of
            ``n`` responses often repeats the same wrong answer. Finished comparisons and comparisons
            that ran past ``timeout_s`` are cached; a cached time-out is served at once as wrong with
            ``timed_out=True`` (``method="cached_timeout"``), so metrics still count it as a time-out.
            Errors and queue time-outs are never cached (the answer is not at fault). Memory: at most
            ``cache_size`` entries of two strings each (answers are at most ``max_answer_chars`` plus
            the reference's length). Concurrent calls with the same pair share one running
            comparison. 0 disables all three (every boxed answer not decided by the fast path is compared).
        max_queue_s: Longest wait, in seconds, for a free worker (including a worker's start) before
            a call is given up: it then counts as wrong and is reported as a time-out
            (``method="queue_timeout"``, ``timed_out=True``), so a call never takes longer than
            ``max_queue_s + timeout_s``. Default 30 s: an ordinary comparison takes milliseconds (a
            reward worker's share of a batch queues well under a second), so only answers that hang
            fill the queue; 30 s lets six distinct hanging answers per worker time out at the default
            ``timeout_s`` before an ordinary answer behind them is given up. Raise it with
            ``num_workers=1``, a larger ``timeout_s`` or a heavily loaded node.
    """

    timeout_s: float = 5.0
    num_workers: int = 2
    max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS
    think_mode: str = "auto"
    exact_match_first: bool = True
    cache_size: int = 10_000
    max_queue_s: float = 30.0

    def __post_init__(self) -> None:
        require_number(self.timeout_s, f"{CONFIG_PREFIX}.timeout_s", minimum=0.0, exclusive=True)
        require_int(self.num_workers, f"{CONFIG_PREFIX}.num_workers", minimum=1)
        require_int(self.max_answer_chars, f"{CONFIG_PREFIX}.max_answer_chars", minimum=1)
        require_int(self.cache_size, f"{CONFIG_PREFIX}.cache_size", minimum=0)
        require_number(self.max_queue_s, f"{CONFIG_PREFIX}.max_queue_s", minimum=0.0, exclusive=True)
        if not isinstance(self.exact_match_first, bool):
            raise ValueError(f"{CONFIG_PREFIX}.exact_match_first must be true or false, got {self.exact_match_first!r}")
        if self.think_mode not in THINK_MODES:
            raise ValueError(
                f"{CONFIG_PREFIX}.think_mode must be one of {', '.join(THINK_MODES)}; got {self.think_mode!r}"
            )

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> "GraderConfig":
        """Build from the ``reward.sgpo.grader`` section (dict or OmegaConf DictConfig); None → defaults.

        Raises:
            ValueError: on an unknown key (a typo must not silently fall back to a default) or an invalid
                value; the message names the full key, e.g. ``reward.sgpo.grader.timeout_s``.
        """
        return build_settings(cls, mapping, CONFIG_PREFIX)


@dataclass(frozen=True)
class GradeResult:
    """The verdict on one response.

    Attributes:
        correct: the final answer equals the reference (``o = 1``).
        extracted_answer: the final answer as found in the response (box content, stripped); None when
            the response has no usable final answer (then ``correct`` is False).
        timed_out: no verdict within the time bound (counts as wrong): the comparison ran past
            ``timeout_s`` and was killed (``timeout``), it did so earlier for the same pair
            (``cached_timeout``), or no worker was free within ``max_queue_s`` (``queue_timeout``).
        method: how the verdict was reached: ``exact`` (fast path), ``cache``, ``math_verify``,
            ``strict`` / ``base`` / ``unit`` (in the worker, where math-verify is not trusted; see
            ``reward/grade_worker.py``), ``no_answer`` (no box, empty box, unclosed box or unfinished
            reasoning), ``too_long`` (box longer than the limit), ``timeout``, ``cached_timeout``,
            ``queue_timeout``, ``error`` (bad reference answer, a crashed or unstartable worker; counts
            as wrong).
        latency_s: wall-clock seconds from the call to the verdict, ``queue_s`` included.
        queue_s: seconds of ``latency_s`` spent waiting for a free worker (or for one to start); 0 when
            no worker was needed. ``latency_s - queue_s <= timeout_s`` and
            ``latency_s <= max_queue_s + timeout_s``, plus milliseconds.
    """

    correct: bool
    extracted_answer: str | None
    timed_out: bool
    method: str
    latency_s: float
    queue_s: float = 0.0


# ---------------------------------------------------------------------------------------------------
# Counters and the verdict cache
# ---------------------------------------------------------------------------------------------------


class _Stats:
    """Thread-safe counters (cumulative since the grader was created)."""

    NAMES = ("calls", "exact", "cache", "math_verify", "strict", "base", "unit", "no_answer", "too_long",
             "timeouts", "cached_timeouts", "queue_timeouts", "errors",
             "worker_starts", "worker_kills", "worker_deaths")  # fmt: skip

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.NAMES, 0)

    def add(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


@dataclass(frozen=True)
class _CachedVerdict:
    correct: bool
    timed_out: bool = False  # the comparison ran past timeout_s (then correct is False)


class _VerdictCache:
    """A thread-safe LRU of (answer, reference) → :class:`_CachedVerdict`."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str], _CachedVerdict] = OrderedDict()

    def get(self, key: tuple[str, str]) -> _CachedVerdict | None:
        if not self._size:
            return None
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: _CachedVerdict) -> None:
        if not self._size:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


# ---------------------------------------------------------------------------------------------------
# The grader
# ---------------------------------------------------------------------------------------------------

_METHOD_COUNTER = {"exact": "exact", "cache": "cache", "math_verify": "math_verify", "strict": "strict",
                   "base": "base", "unit": "unit", "no_answer": "no_answer", "too_long": "too_long",
                   "timeout": "timeouts", "cached_timeout": "cached_timeouts", "queue_timeout": "queue_timeouts",
                   "error": "errors"}  # fmt: skip
_TIMEOUT_METHODS = ("timeout", "cached_timeout", "queue_timeout")


@dataclass(frozen=True)
class _Pair:
    """What is compared for one response: ``extracted`` (reported) and the unwrapped forms compared."""

    extracted: str
    answer: str
    reference: str


class OutcomeGrader:
    """Grades responses against reference answers; safe to share between threads and coroutines.

    ``grade`` (blocking) and ``agrade`` (awaitable; never blocks the event loop on math-verify) never
    raise (except ``asyncio.CancelledError`` when the caller cancels ``agrade``) and never let a
    comparison run past ``config.timeout_s`` (module docstring: time bound). Use one grader per process
    (e.g. one per verl reward worker); :meth:`close` stops its worker processes (idempotent; a later
    call starts them again).
    """

    def __init__(self, config: GraderConfig | None = None) -> None:
        self.config = config or GraderConfig()
        self._stats = _Stats()
        self._cache = _VerdictCache(self.config.cache_size)
        self._pool = WorkerPool(self.config.num_workers, self._stats)
        self._bad_input_warnings = 0
        self._inflight: dict[tuple[str, str], ComparisonRequest] = {}
        self._inflight_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, WorkerPool.close, self._pool)

    # -- public API ------------------------------------------------------------------------------

    def grade(self, response: str, ground_truth: str) -> GradeResult:
        """Grade one response (blocking; safe from any thread)."""
        started = time.monotonic()
        try:
            prepared = self._prepare(response, ground_truth, started)
            if isinstance(prepared, GradeResult):
                return prepared
            request = self._submit(prepared.answer, prepared.reference)
            try:
                outcome = request.future.result(timeout=request.queue_time_left())
            except FutureTimeoutError:  # no worker took it in time (or it is running: then wait on)
                request.expire()
                outcome = request.future.result()
            return self._finish(prepared, outcome, started)
        except Exception as error:  # never raise into the reward loop
            return self._internal_error(error, started)

    async def agrade(self, response: str, ground_truth: str) -> GradeResult:
        """Grade one response without blocking the event loop (many may run concurrently)."""
        started = time.monotonic()
        try:
            prepared = self._prepare(response, ground_truth, started)
            if isinstance(prepared, GradeResult):
                return prepared
            request = self._submit(prepared.answer, prepared.reference)
            # shield: cancelling this caller must not cancel a comparison other callers share
            waiting = asyncio.wrap_future(request.future)
            try:
                outcome = await asyncio.wait_for(asyncio.shield(waiting), request.queue_time_left())
            except asyncio.TimeoutError:  # no worker took it in time (or it is running: then wait on)
                request.expire()
                outcome = await asyncio.shield(waiting)
            return self._finish(prepared, outcome, started)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            return self._internal_error(error, started)

    def warm_up(self) -> None:
        """Optionally start the worker processes now (blocking, about 1 s) instead of on first use."""
        requests = [self._pool.submit("1", "1", self.config.timeout_s, WORKER_START_TIMEOUT_S)
                    for _ in range(self.config.num_workers)]  # fmt: skip
        for request in requests:
            request.future.result()

    def stats(self) -> dict[str, int]:
        """Cumulative counts: calls, verdicts by method, time-outs, errors, worker starts, kills and deaths."""
        return self._stats.snapshot()

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes (for tests and diagnostics)."""
        return self._pool.worker_pids()

    def close(self) -> None:
        """Stop the worker processes (idempotent)."""
        self._pool.close()

    def __enter__(self) -> "OutcomeGrader":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- steps -----------------------------------------------------------------------------------

    def _prepare(self, response: str, ground_truth: Any, started: float) -> "GradeResult | _Pair":
        """Everything before math-verify: a finished result, or the pair to compare."""
        self._stats.add("calls")
        reference = reference_answer(ground_truth)
        if reference is None:
            self._warn_bad_input(f"unusable reference answer {ground_truth!r:.80}")
            return self._result(False, None, "error", started)
        if not isinstance(response, str):
            self._warn_bad_input(f"response is {type(response).__name__}, not str")
            return self._result(False, None, "error", started)
        found = extract_final_answer(
            response, self.config.think_mode, self.config.max_answer_chars + len(reference)
        )
        if found.answer is None:
            return self._result(False, None, found.reason, started)
        answer, reference = unwrap_text_wrapper(found.answer), unwrap_text_wrapper(reference)
        if self.config.exact_match_first:
            verdict = exact_verdict(answer, reference)
            if verdict is not None:
                return self._result(verdict, found.answer, "exact", started)
        cached = self._cache.get((answer, reference))
        if cached is not None:
            method = "cached_timeout" if cached.timed_out else "cache"
            return self._result(cached.correct, found.answer, method, started)
        return _Pair(found.answer, answer, reference)

    def _submit(self, answer: str, reference: str) -> ComparisonRequest:
        """Start a comparison, or join the identical one already running (unless the cache is off).

        In RL a group's responses often share an answer and are graded concurrently, before the first
        verdict can reach the cache; sharing the running comparison keeps them to one math-verify call.
        """
        settings = (self.config.timeout_s, self.config.max_queue_s)
        if not self.config.cache_size:
            return self._pool.submit(answer, reference, *settings)
        key = (answer, reference)
        with self._inflight_lock:
            request = self._inflight.get(key)
            if request is not None:
                return request
            request = self._inflight[key] = self._pool.submit(answer, reference, *settings)
        # the callback must not hold the request (future → callback → request → future would be a
        # reference cycle, and the grader's finalizer would wait for the cycle collector)
        request.future.add_done_callback(lambda done: self._forget_inflight(key, done))
        return request

    def _forget_inflight(self, key: tuple[str, str], done: Future) -> None:
        with self._inflight_lock:
            request = self._inflight.get(key)
            if request is not None and request.future is done:
                del self._inflight[key]

    def _finish(self, pair: "_Pair", outcome: ComparisonOutcome, started: float) -> GradeResult:
        key = (pair.answer, pair.reference)
        if outcome.status == "ok":
            self._cache.put(key, _CachedVerdict(outcome.correct))
            return self._result(outcome.correct, pair.extracted, outcome.rule, started, outcome.queue_s)
        if outcome.status == "timeout":
            self._cache.put(key, _CachedVerdict(False, timed_out=True))
            logger.warning("[sgpo] grader: math-verify took over %.1f s on answer %r; counted as wrong",
                           self.config.timeout_s, pair.answer[:80])  # fmt: skip
        if outcome.status == "queue_timeout":
            logger.warning("[sgpo] grader: no math-verify worker was free within max_queue_s=%.1f s; answer %r "
                           "counted as wrong", self.config.max_queue_s, pair.answer[:80])  # fmt: skip
        return self._result(False, pair.extracted, outcome.status, started, outcome.queue_s)

    def _result(self, correct: bool, answer: str | None, method: str, started: float, queue_s: float = 0.0):
        self._stats.add(_METHOD_COUNTER[method])
        return GradeResult(
            correct=correct,
            extracted_answer=answer,
            timed_out=method in _TIMEOUT_METHODS,
            method=method,
            latency_s=time.monotonic() - started,
            queue_s=queue_s,
        )

    def _internal_error(self, error: Exception, started: float) -> GradeResult:
        logger.exception("[sgpo] grader: internal error (%s); response counted as wrong", error)
        return self._result(False, None, "error", started)

    def _warn_bad_input(self, what: str) -> None:
        self._bad_input_warnings += 1
        if self._bad_input_warnings <= MAX_BAD_INPUT_WARNINGS:
            logger.warning(
                "[sgpo] grader: %s; the response is counted as wrong. Fix the dataset row "
                "(reward_model.ground_truth must be a non-empty string) with data_prep.", what
            )


# ---------------------------------------------------------------------------------------------------
# verl's custom_reward_function interface (evaluation scripts; the SGPO manager uses OutcomeGrader)
# ---------------------------------------------------------------------------------------------------

_shared_graders: dict[GraderConfig, OutcomeGrader] = {}
_shared_lock = threading.Lock()


def shared_grader(config: GraderConfig | None = None) -> OutcomeGrader:
    """One grader per process and configuration (its worker pool is shared by all callers)."""
    config = config or GraderConfig()
    with _shared_lock:
        grader = _shared_graders.get(config)
        if grader is None:
            grader = _shared_graders[config] = OutcomeGrader(config)
        return grader


def _score_dict(result: GradeResult) -> dict[str, Any]:
    return {
        "score": 1.0 if result.correct else 0.0,
        "acc": result.correct,
        "pred": result.extracted_answer or "",
        "timed_out": result.timed_out,
    }


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None, **grader_settings: Any
) -> dict[str, Any]:
    """verl ``custom_reward_function`` interface: the same verdict for every ``data_source``.

    Select it with ``reward.custom_reward_function.path=pkg://reward.grader`` and
    ``reward.custom_reward_function.name=compute_score`` (the ``pkg://`` form: verl loads a file path
    without registering the module, which breaks this module's dataclasses).

    Returns ``{"score": 1.0 | 0.0, "acc": bool, "pred": str, "timed_out": bool}`` (same keys for every
    sample, as verl requires). ``grader_settings`` (verl's ``reward_kwargs``) are ``GraderConfig`` fields.
    """
    grader = shared_grader(GraderConfig.from_mapping(grader_settings))
    return _score_dict(grader.grade(solution_str, ground_truth))


async def compute_score_async(
    data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None, **grader_settings: Any
) -> dict[str, Any]:
    """Async form of :func:`compute_score` (verl awaits coroutine scorers instead of using a thread)."""
    grader = shared_grader(GraderConfig.from_mapping(grader_settings))
    return _score_dict(await grader.agrade(solution_str, ground_truth))


__all__ = [
    "GraderConfig",
    "GradeResult",
    "OutcomeGrader",
    "compute_score",
    "compute_score_async",
    "shared_grader",
]
