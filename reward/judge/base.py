"""The judge's contract: what the reward manager asks (`JudgeRequest`) and what it gets back (`Verdict`).

:class:`reward.judge.core.StepJudge` implements :class:`Judge` for every backend (a backend itself only
locates the first error: ``reward.judge.core.Backend``). ``judge()`` never raises: a dead, slow or garbled backend gives
a `Verdict` with ``judged=False`` and a ``failure`` reason, within ``deadline_s`` plus
``reward.judge.core.DEADLINE_MARGIN_S``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class JudgeRequest:
    """One wrong response to grade.

    Attributes:
        problem: the problem statement, as shown to the policy (without chat template).
        reference_answer: the reference final answer (always present).
        response: the policy's full response text (the judge side segments it into steps).
        reference_solution: the reference solution, or None when the dataset has none (then the judge
            prompt falls back to the reference answer only).
        response_token_offsets: optional character offsets (start, end) of each response token, for the
            token-weighted RTS; None when the caller has no tokenizer output.
        steps: optional pre-segmented steps (labelled benchmarks such as ProcessBench); when given, the
            judge uses them as they are instead of segmenting ``response``.
        finished: False when the policy stopped at its length limit without ending the response (no final
            answer; often an unclosed ``<think>``). The judge then still locates a first error in what was
            written, but "no error found" is not a verdict (``failure='unfinished'``): running out of
            budget must not earn the best grade a wrong answer can get.
    """

    problem: str
    reference_answer: str
    response: str
    reference_solution: str | None = None
    response_token_offsets: tuple[tuple[int, int], ...] | None = None
    steps: tuple[str, ...] | None = None
    finished: bool = True


@dataclass(frozen=True)
class Verdict:
    """The judge's answer for one response, with everything the training log needs.

    Attributes:
        judged: True when the backend returned a usable verdict; False on any failure.
        first_error_step: 1-based index ``k`` of the first incorrect step; None when no error was found
            or when not judged.
        num_steps: ``K``, the number of steps the response was segmented into (0 if not segmented), also
            those past ``steps.max_judged_chars`` that the backend was not shown.
        rts: Reasoning Trajectory Score in [0, 1] (``(k − 1) / K`` over all ``K`` steps, or 1 when no error
            was found in a finished response the backend saw whole); None when not judged.
        graded_value: ``g`` in [0, 1] from the configured map (logistic or linear); None when not judged.
        latency_s: wall-clock seconds spent on this verdict (including retries), 0 for cache hits.
        backend: name of the backend that produced it (e.g. ``openai``, ``rule``, ``prm``).
        failure: None when judged; otherwise a short reason: ``timeout``, ``connection``, ``http_error``,
            ``parse_error``, ``out_of_range``, ``empty_response``, ``no_steps``, ``backend_error``,
            ``unfinished``, ``no_error_in_prefix`` (meanings in ``reward/judge/failures.py``).
        cached: True when served from the content cache.
        detail: a short human-readable explanation of a failure (never a secret); None when judged.
    """

    judged: bool
    first_error_step: int | None
    num_steps: int
    rts: float | None
    graded_value: float | None
    latency_s: float
    backend: str
    failure: str | None = None
    cached: bool = False
    detail: str | None = None

    @property
    def parse_failed(self) -> bool:
        return self.failure in ("parse_error", "out_of_range")

    @property
    def timed_out(self) -> bool:
        return self.failure == "timeout"

    @property
    def no_signal(self) -> bool:
        """The judge answered, but "no error found" carries no signal here (``NO_SIGNAL_REASONS``)."""
        from reward.judge.failures import NO_SIGNAL_REASONS

        return self.failure in NO_SIGNAL_REASONS


@runtime_checkable
class Judge(Protocol):
    """An async step-wise judge. Implementations must be safe to call concurrently from one event loop."""

    name: str

    async def judge(self, request: JudgeRequest) -> Verdict:
        """Grade one wrong response. Never raises; failures come back as ``Verdict(judged=False, ...)``."""
        ...

    async def aclose(self) -> None:
        """Release connections (idempotent)."""
        ...
