"""The judge the reward manager calls: segmentation, a backend, the cache, time bounds, verdicts.

:class:`StepJudge` implements the :class:`reward.judge.base.Judge` contract for every backend:

1. segment the response (the backend's rule; ``JudgeRequest.steps`` when given);
2. answer from the content-keyed cache when this exact input was judged before (``cached=True``, latency 0);
   identical requests in flight at the same time share one backend call;
3. ask the backend for the first incorrect step, bounded by ``deadline_s`` (queueing included);
4. turn ``k`` into RTS and the graded value (:mod:`reward.judge.grading`).

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
from dataclasses import asdict, dataclass
from typing import Protocol

from reward.judge.base import JudgeRequest, Verdict
from reward.judge.config import JudgeConfig
from reward.judge.failures import BACKEND_ERROR, NO_STEPS, OUT_OF_RANGE, TIMEOUT, JudgeFailure
from reward.judge.grading import graded_value, step_rts, weighted_rts
from reward.steps import Segmentation, segment_response, segmentation_from_steps, step_weights

logger = logging.getLogger(__name__)


class Backend(Protocol):
    """What :class:`StepJudge` needs from a backend.

    Attributes:
        name: reported in ``Verdict.backend`` (``openai``, ``router``, ``prm``, ``rule``).
        fingerprint: everything that changes the backend's answer for the same input (endpoint, model,
            prompt hash, sampling settings); part of the cache key.
        empty_policy: ``zero`` (a response without steps is one wrong step) or ``not_judged``.
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
    """Mixin: the default segmentation rule of :mod:`reward.steps` with the configured settings."""

    def __init__(self, config: JudgeConfig) -> None:
        self._steps = config.steps

    def segment(self, request: JudgeRequest) -> Segmentation:
        if request.steps is not None:
            return segmentation_from_steps(request.steps)[1]
        return segment_response(request.response, self._steps.max_steps, self._steps.min_step_chars,
                                self._steps.think_part)


@dataclass(frozen=True)
class _Outcome:
    first_error_step: int | None
    segmentation: Segmentation


class StepJudge:
    """The step-wise judge (see the module docstring). Safe for concurrent calls from one event loop.

    Args:
        backend: the backend that locates first errors.
        config: the judge settings (grading, deadline, cache size).
    """

    def __init__(self, backend: Backend, config: JudgeConfig) -> None:
        self.backend = backend
        self.name = backend.name
        self.config = config
        self._cache: OrderedDict[str, _Outcome] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[_Outcome]] = {}
        #: Running counts: ``calls``, ``judged``, ``cache_hits`` and one entry per failure reason.
        self.stats: Counter[str] = Counter()
        settings = {"steps": asdict(config.steps), "fingerprint": backend.fingerprint}
        self._key_prefix = json.dumps(settings, sort_keys=True)

    def cache_key(self, request: JudgeRequest) -> str:
        """Content key: backend fingerprint, segmentation settings and every text the verdict depends on."""
        content = [self._key_prefix, request.problem, request.reference_answer, request.reference_solution,
                   request.response, list(request.steps) if request.steps is not None else None]
        return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode("utf-8")).hexdigest()

    async def judge(self, request: JudgeRequest) -> Verdict:
        """Grade one wrong response. Never raises; failures come back as ``Verdict(judged=False, ...)``."""
        started = time.perf_counter()
        self.stats["calls"] += 1
        try:
            key = self.cache_key(request)
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.stats["cache_hits"] += 1
                return self._verdict(cached, request, latency_s=0.0, cached=True)
            outcome = await asyncio.wait_for(asyncio.shield(self._shared_call(key, request)),
                                             timeout=self.config.deadline_s)
            self.stats["judged"] += 1
            return self._verdict(outcome, request, latency_s=time.perf_counter() - started)
        except JudgeFailure as failure:
            return self._failed(failure.reason, failure.detail, request, started)
        except asyncio.TimeoutError:
            return self._failed(TIMEOUT, f"no verdict within deadline_s={self.config.deadline_s:g}", request, started)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug or an unexpected backend state must not reach the trainer
            logger.warning("judge backend %s raised %s: %s", self.name, type(error).__name__, error)
            return self._failed(BACKEND_ERROR, f"{type(error).__name__}: {error}"[:200], request, started)

    def _shared_call(self, key: str, request: JudgeRequest) -> asyncio.Future[_Outcome]:
        future = self._in_flight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._compute(request))
            self._in_flight[key] = future
            future.add_done_callback(lambda done: self._finish(key, done))
        return future

    def _finish(self, key: str, future: asyncio.Future[_Outcome]) -> None:
        self._in_flight.pop(key, None)
        if future.cancelled() or future.exception() is not None or self.config.cache_size == 0:
            return
        self._cache[key] = future.result()
        while len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)

    async def _compute(self, request: JudgeRequest) -> _Outcome:
        segmentation = self.backend.segment(request)
        if not segmentation.steps:
            if self.backend.empty_policy == "not_judged":
                raise JudgeFailure(NO_STEPS, "the response has no steps")
            return _Outcome(1, segmentation)
        # The backend's own attempts are bounded; this bound also covers a backend that hangs.
        first_error = await asyncio.wait_for(self.backend.first_error(request, segmentation),
                                             timeout=self.config.deadline_s)
        if first_error is not None and not 1 <= first_error <= len(segmentation.steps):
            raise JudgeFailure(OUT_OF_RANGE, f"step {first_error} outside 1..{len(segmentation.steps)}")
        return _Outcome(first_error, segmentation)

    def _verdict(self, outcome: _Outcome, request: JudgeRequest, latency_s: float, cached: bool = False) -> Verdict:
        grading = self.config.grading
        segmentation, k = outcome.segmentation, outcome.first_error_step
        if not segmentation.steps:  # no steps: one wrong step
            num_steps, rts = 1, 0.0
        elif grading.rts == "token":
            num_steps = len(segmentation.steps)
            rts = weighted_rts(k, step_weights(segmentation, request.response_token_offsets))
        else:
            num_steps = len(segmentation.steps)
            rts = step_rts(k, num_steps)
        value = graded_value(rts, grading.map, grading.beta, grading.gamma)
        return Verdict(judged=True, first_error_step=k, num_steps=num_steps, rts=rts, graded_value=value,
                       latency_s=latency_s, backend=self.name, cached=cached)

    def _failed(self, reason: str, detail: str, request: JudgeRequest, started: float) -> Verdict:
        self.stats[reason] += 1
        try:
            num_steps = len(self.backend.segment(request).steps)
        except Exception:  # segmentation itself failed: report 0 steps
            num_steps = 0
        logger.debug("judge %s: not judged (%s: %s)", self.name, reason, detail)
        return Verdict(judged=False, first_error_step=None, num_steps=num_steps, rts=None, graded_value=None,
                       latency_s=time.perf_counter() - started, backend=self.name, failure=reason,
                       detail=detail or None)

    async def aclose(self) -> None:
        """Release the backend's connections (idempotent)."""
        await self.backend.aclose()
