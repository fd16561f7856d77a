"""The judge the reward manager calls: segmentation, a backend, the cache, time bounds, verdicts.

:class:`StepJudge` implements the :class:`reward.judge.base.Judge` contract for every backend:

1. answer from the content-keyed cache when this exact input was judged before (``cached=True``, latency 0);
   identical requests in flight at the same time share one backend call;
2. segment the response once (the backend's rule; ``JudgeRequest.steps`` when given), in a worker thread;
3. send the leading steps that fit ``steps.max_judged_chars`` to the backend, which names the first
   incorrect step ``k`` or finds none;
4. turn ``k`` into RTS over *all* ``K`` steps and the graded value (:mod:`reward.judge.grading`).

Time bound: the whole call (hashing, segmentation, queueing, the backend, retries) returns within
``deadline_s + DEADLINE_MARGIN_S`` seconds for any input. Text work (hashing, segmentation) runs in a small
thread pool, never on the event loop, so other coroutines of the reward worker keep running meanwhile.

"No error found" is a verdict (``RTS = 1``) only when the backend saw the whole response *and* the policy
finished it (``JudgeRequest.finished``). Otherwise it carries no signal and becomes "not judged" with
reason ``unfinished`` (the response hit the length limit) or ``no_error_in_prefix`` (the judged-text cap
cut it): running out of budget must not outrank finishing with a wrong answer. An error found in the
judged prefix is an ordinary verdict.

``judge()`` never raises (cancellation of the caller aside): every failure becomes
``Verdict(judged=False, failure=<reason>)`` with a reason from :mod:`reward.judge.failures`.
A response with no steps at all (blank, or no arithmetic line for the rule verifier) is judged as one
wrong step: ``k = K = 1``, ``RTS = 0`` — it got nowhere (``rule.no_steps=not_judged`` changes that).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Protocol, TypeVar

from reward.judge.base import JudgeRequest, Verdict
from reward.judge.config import JudgeConfig
from reward.judge.failures import (
    BACKEND_ERROR,
    NO_ERROR_IN_PREFIX,
    NO_STEPS,
    OUT_OF_RANGE,
    TIMEOUT,
    UNFINISHED,
    JudgeFailure,
)
from reward.judge.grading import graded_value, step_rts, weighted_rts
from reward.judge.steps import Segmentation, judged_prefix, segment_response, segmentation_from_steps, step_weights

#: Seconds ``judge()`` may return after ``deadline_s``. The deadline timer fires on the event loop, which
#: then needs the GIL back from the text worker threads. CPython hands it over every 5 ms of bytecode; a
#: single C-level step (one linear regex scan, one JSON encoding of the request) holds it a few ms per MB
#: of response (tests/benchmarks/bench_judge_text.py: segmentation is about 0.1 s per MB in all), so
#: 0.5 s is ample headroom on a loaded machine and far below any deadline a run would set.
DEADLINE_MARGIN_S = 0.5

#: Threads of each judge's text pool (hashing and segmentation). They share the GIL, so more threads would
#: not segment faster; two let a short response be segmented while a long one still is.
TEXT_WORKERS = 2

_Result = TypeVar("_Result")

logger = logging.getLogger(__name__)


class Backend(Protocol):
    """What :class:`StepJudge` needs from a backend.

    Attributes:
        name: reported in ``Verdict.backend`` (``openai``, ``router``, ``prm``, ``rule``).
        fingerprint: everything that changes the backend's answer for the same input (endpoint, model,
            prompt hash, sampling settings); part of the cache key.
        empty_policy: ``zero`` (a response without steps is one wrong step) or ``not_judged``.

    ``segment`` runs in a worker thread of the judge (CPU-bound text work, kept off the event loop), so it
    must be a pure function of the request. ``first_error`` receives only the judged prefix of the steps
    (``steps.max_judged_chars``) and answers with an index into it.
    """

    name: str
    fingerprint: str
    empty_policy: str

    def segment(self, request: JudgeRequest) -> Segmentation: ...

    async def first_error(self, request: JudgeRequest, segmentation: Segmentation) -> int | None:
        """1-based first incorrect step, or None; raises :class:`JudgeFailure`."""
        ...

    async def aclose(self) -> None: ...


class DefaultSegmenter:
    """Mixin: the default segmentation rule of :mod:`reward.judge.steps` with the configured settings."""

    def __init__(self, config: JudgeConfig) -> None:
        self._steps = config.steps

    def segment(self, request: JudgeRequest) -> Segmentation:
        if request.steps is not None:
            return segmentation_from_steps(request.steps)[1]
        return segment_response(request.response, self._steps.max_steps, self._steps.min_step_chars,
                                self._steps.think_part)


@dataclass(frozen=True)
class _Outcome:
    """What the backend said about one segmented response (cached; the verdict is derived from it).

    Attributes:
        first_error_step: ``k`` (an index into all steps), or None when no error was found.
        segmentation: every step of the response.
        judged_steps: how many leading steps the backend saw (``steps.max_judged_chars``); 0 without steps.
        saw_whole: whether those were all the steps, uncut.
    """

    first_error_step: int | None
    segmentation: Segmentation
    judged_steps: int
    saw_whole: bool


@dataclass
class _Attempt:
    """One computation for a cache key, shared by the identical calls in flight at the same time."""

    task: asyncio.Future[_Outcome] | None = None
    #: Set as soon as the response is segmented, so a failure reports ``K`` without segmenting again.
    segmentation: Segmentation | None = None
    #: ``judge()`` calls waiting for this attempt. When the last one gives up (its deadline, or its caller
    #: cancelled it: the eager schedule's discarded calls), the attempt is cancelled, which closes its HTTP
    #: request, so the judge server stops generating an answer nobody will read.
    waiters: int = 0


@dataclass
class _Call:
    """One ``judge()`` call's view of its attempt (None while hashing or serving from the cache)."""

    attempt: _Attempt | None = None

    @property
    def num_steps(self) -> int:
        segmentation = self.attempt.segmentation if self.attempt is not None else None
        return len(segmentation.steps) if segmentation is not None else 0


class StepJudge:
    """The step-wise judge (see the module docstring). Safe for concurrent calls from one event loop.

    Args:
        backend: the backend that locates first errors.
        config: the judge settings (grading, deadline, cache size, judged-text cap).
    """

    def __init__(self, backend: Backend, config: JudgeConfig) -> None:
        self.backend = backend
        self.name = backend.name
        self.config = config
        self._cache: OrderedDict[str, _Outcome] = OrderedDict()
        self._in_flight: dict[str, _Attempt] = {}
        self._text_pool: ThreadPoolExecutor | None = None
        #: Running counts: ``calls``, ``judged``, ``cache_hits`` and one entry per failure reason.
        self.stats: Counter[str] = Counter()
        settings = {"steps": asdict(config.steps), "fingerprint": backend.fingerprint}
        self._key_prefix = json.dumps(settings, sort_keys=True)

    def cache_key(self, request: JudgeRequest) -> str:
        """Content key: backend fingerprint, segmentation settings and every input the verdict depends on
        (texts, given steps, and whether the response was finished)."""
        content = [self._key_prefix, request.problem, request.reference_answer, request.reference_solution,
                   request.response, list(request.steps) if request.steps is not None else None,
                   request.finished]
        return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode("utf-8")).hexdigest()

    async def judge(self, request: JudgeRequest) -> Verdict:
        """Grade one wrong response within ``deadline_s + DEADLINE_MARGIN_S`` seconds.

        Never raises; failures come back as ``Verdict(judged=False, ...)``.
        """
        started = time.perf_counter()
        self.stats["calls"] += 1
        call = _Call()
        try:
            return await asyncio.wait_for(self._judge(request, call, started), timeout=self.config.deadline_s)
        except JudgeFailure as failure:
            return self._failed(failure.reason, failure.detail, call, started)
        except asyncio.TimeoutError:
            return self._failed(TIMEOUT, f"no verdict within deadline_s={self.config.deadline_s:g}", call, started)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug or an unexpected backend state must not reach the trainer
            logger.warning("judge backend %s raised %s: %s", self.name, type(error).__name__, error)
            return self._failed(BACKEND_ERROR, f"{type(error).__name__}: {error}"[:200], call, started)

    async def _judge(self, request: JudgeRequest, call: _Call, started: float) -> Verdict:
        key = await self._off_loop(self.cache_key, request)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.stats["cache_hits"] += 1
            return self._verdict(cached, request, latency_s=0.0, cached=True)
        call.attempt = attempt = self._shared_attempt(key, request)
        attempt.waiters += 1
        try:
            # Shielded: a caller that gives up does not cancel the computation other callers share ...
            outcome = await asyncio.shield(attempt.task)
        finally:
            attempt.waiters -= 1
            if attempt.waiters == 0 and not attempt.task.done():
                # ... but the last one does: nobody is left to read the verdict. It leaves the in-flight
                # table first, so an identical call arriving while it winds down starts afresh instead of
                # joining a computation that will end cancelled.
                if self._in_flight.get(key) is attempt:
                    del self._in_flight[key]
                attempt.task.cancel()
        return self._verdict(outcome, request, latency_s=time.perf_counter() - started)

    async def _off_loop(self, function: Callable[..., _Result], *args: object) -> _Result:
        """Run CPU-bound text work in the judge's thread pool, so the event loop stays responsive."""
        if self._text_pool is None:
            self._text_pool = ThreadPoolExecutor(max_workers=TEXT_WORKERS, thread_name_prefix="sgpo-judge-text")
        return await asyncio.get_running_loop().run_in_executor(self._text_pool, function, *args)

    def _shared_attempt(self, key: str, request: JudgeRequest) -> _Attempt:
        attempt = self._in_flight.get(key)
        if attempt is None:
            attempt = _Attempt()
            attempt.task = asyncio.ensure_future(self._compute(request, attempt))
            self._in_flight[key] = attempt
            attempt.task.add_done_callback(lambda done: self._finish(key, done))
        return attempt

    def _finish(self, key: str, future: asyncio.Future[_Outcome]) -> None:
        current = self._in_flight.get(key)
        if current is not None and current.task is future:  # not a newer attempt for the same key
            del self._in_flight[key]
        if future.cancelled() or future.exception() is not None or self.config.cache_size == 0:
            return
        self._cache[key] = future.result()
        while len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)

    async def _compute(self, request: JudgeRequest, attempt: _Attempt) -> _Outcome:
        segmentation = await self._off_loop(self.backend.segment, request)
        attempt.segmentation = segmentation
        if not segmentation.steps:
            if self.backend.empty_policy == "not_judged":
                raise JudgeFailure(NO_STEPS, "the response has no steps")
            return _Outcome(1, segmentation, judged_steps=0, saw_whole=True)
        judged = judged_prefix(segmentation, self.config.steps.max_judged_chars)
        # The backend's own attempts are bounded; this bound is a second guard (the attempt is also cancelled
        # when its last caller gives up).
        first_error = await asyncio.wait_for(self.backend.first_error(request, judged),
                                             timeout=self.config.deadline_s)
        if first_error is not None and not 1 <= first_error <= len(judged.steps):
            raise JudgeFailure(OUT_OF_RANGE, f"step {first_error} outside 1..{len(judged.steps)}")
        return _Outcome(first_error, segmentation, judged_steps=len(judged.steps),
                        saw_whole=judged is segmentation)

    def _verdict(self, outcome: _Outcome, request: JudgeRequest, latency_s: float, cached: bool = False) -> Verdict:
        segmentation, k = outcome.segmentation, outcome.first_error_step
        if k is None and not (request.finished and outcome.saw_whole):
            return self._no_signal(outcome, request, latency_s, cached)
        grading = self.config.grading
        if not segmentation.steps:  # no steps: one wrong step
            num_steps, rts = 1, 0.0
        elif grading.rts == "token":
            num_steps = len(segmentation.steps)
            rts = weighted_rts(k, step_weights(segmentation, request.response_token_offsets))
        else:
            num_steps = len(segmentation.steps)
            rts = step_rts(k, num_steps)
        if not cached:
            self.stats["judged"] += 1
        value = graded_value(rts, grading.map, grading.beta, grading.gamma)
        return Verdict(judged=True, first_error_step=k, num_steps=num_steps, rts=rts, graded_value=value,
                       latency_s=latency_s, backend=self.name, cached=cached)

    def _no_signal(self, outcome: _Outcome, request: JudgeRequest, latency_s: float, cached: bool) -> Verdict:
        """"No error found" in an unfinished response or in a capped prefix: not judged (see the module doc)."""
        num_steps = len(outcome.segmentation.steps)
        if not request.finished:
            reason = UNFINISHED
            detail = "no error found, but the response stopped at the length limit without finishing"
        else:
            reason = NO_ERROR_IN_PREFIX
            detail = (f"no error found in the judged {outcome.judged_steps} of {num_steps} steps "
                      f"(steps.max_judged_chars={self.config.steps.max_judged_chars})")
        self.stats[reason] += 1
        return Verdict(judged=False, first_error_step=None, num_steps=num_steps, rts=None, graded_value=None,
                       latency_s=latency_s, backend=self.name, failure=reason, cached=cached, detail=detail)

    def _failed(self, reason: str, detail: str, call: _Call, started: float) -> Verdict:
        self.stats[reason] += 1
        logger.debug("judge %s: not judged (%s: %s)", self.name, reason, detail)
        return Verdict(judged=False, first_error_step=None, num_steps=call.num_steps, rts=None,
                       graded_value=None, latency_s=time.perf_counter() - started, backend=self.name,
                       failure=reason, detail=detail or None)

    async def aclose(self) -> None:
        """Release the backend's connections and the text threads (idempotent)."""
        if self._text_pool is not None:
            self._text_pool.shutdown(wait=False, cancel_futures=True)
            self._text_pool = None
        await self.backend.aclose()
