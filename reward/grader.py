"""The outcome grader: is a response's final answer equal to the reference answer?

One grader for training, validation and evaluation, so every benchmark is scored the same way
(the outcome ``o`` of the reward). For one response:

1. **Final answer.** The content of the last ``\\boxed{…}`` or ``\\fbox{…}`` (balanced braces,
   escaped ``\\{ \\}`` ignored), searched only in the part of the response that
   :attr:`GraderConfig.think_mode` selects (by default the text after ``</think>``). No box, an empty
   box, a box cut off by the end of the response or a box longer than the limit → no final answer →
   wrong. See :func:`extract_final_answer`.
2. **Fast path, in-process.** A text wrapper around a whole answer, ``\\textbf{(A)}``, ``\\text{(1, 2)}``,
   ``\\text{A}``, is removed on both sides (math-verify would read ``\\text{(1, 2)}`` as text, not as the
   interval). Both answers are canonicalised conservatively (whitespace, ``$``,
   ``\\left``/``\\right``, ``\\dfrac``); identical strings are equal, two plain integers are compared as
   integers. Verdicts already computed (and comparisons that timed out) are served from an LRU cache.
3. **math-verify, in a worker process with a hard time bound.** Otherwise both answers are parsed as
   ``\\boxed{…}`` LaTeX by math-verify and compared with its ``verify`` (gold first), except where
   math-verify is known to mark wrong answers correct: number bases, unit exponents, and parses that lost
   part of an answer or merged symbols differing only in case are decided by stricter rules
   (``method`` ``base``, ``unit``, ``strict``; ``reward/grade_worker.py`` lists them). math-verify can
   hang on pathological LaTeX, and its own time-out uses ``signal.alarm``, which works only in a
   process's main thread — verl's reward workers call scorers from threads of an asyncio Ray actor.
   So comparisons run in a small pool of worker processes; a comparison that is not finished after
   ``timeout_s`` has its worker killed (SIGKILL) and replaced, and counts as **wrong**, with
   ``timed_out=True`` (``method="timeout"``).

Time bound: the comparison itself (from the moment a worker takes it to the verdict) never lasts
longer than ``timeout_s`` plus the time to kill the worker and wake the waiting thread (milliseconds).
Before it, a call may wait for a free worker (``GradeResult.queue_s``, FIFO; on the first call and
after a kill also for the worker to start), at most ``max_queue_s``: a call that has no running worker
by then is given up, counts as wrong and is reported as a time-out (``method="queue_timeout"``,
``timed_out=True``, not cached: the answer is not at fault). So
``latency_s - queue_s <= timeout_s + overhead`` and ``latency_s <= max_queue_s + timeout_s + overhead``.
A comparison that timed out is remembered (in the verdict cache) for its (answer, reference) pair, so a
pathological answer repeated in a group or a later step costs one ``timeout_s``, not one each time.

Worker pool lifecycle: worker processes start lazily, on the first comparison that needs math-verify
(0.4–1 s each: a new interpreter importing math-verify; :meth:`OutcomeGrader.warm_up` starts them
ahead); a killed or crashed worker is replaced on the next call; :meth:`OutcomeGrader.close` (also run
by the garbage collector and at interpreter exit) stops them all and reaps them (no zombies). Workers
are plain subprocesses (``reward/grade_worker.py``), not ``multiprocessing`` children, so nothing
depends on the parent's ``__main__`` or start method, and they are safe to start from a
multi-threaded Ray actor. They exit by themselves when the parent dies (Linux ``PR_SET_PDEATHSIG``,
end of their request pipe), so no worker outlives the grader's process. (``PR_SET_PDEATHSIG`` fires
when the *thread* that started the worker ends; each worker is started by the pool thread that owns
it, and those threads live until :meth:`OutcomeGrader.close`.)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import weakref
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Mapping

from reward.settings_base import require_int, require_number, settings_from_section

logger = logging.getLogger(__name__)

#: Where the grader's settings live in the trainer config; used in every error message.
CONFIG_PREFIX = "reward.sgpo.grader"

THINK_MODES = ("auto", "required", "ignore")

#: Seconds a new worker may take to start and import math-verify before it is given up on (the call
#: that needed it then gets ``method="error"``). About 1 s on an idle 2-core machine; generous
#: because a node may be busy loading models when the first reward is computed.
WORKER_START_TIMEOUT_S = 120.0

#: Seconds to wait for a worker to exit after a polite stop (``close``) or after SIGKILL.
WORKER_EXIT_WAIT_S = 5.0

#: How often a comparison is retried on a fresh worker when its worker process died under it.
WORKER_DEATH_RETRIES = 1

#: Plain integers up to this many digits are compared in-process; longer digit strings go to
#: math-verify (Python refuses to convert very long digit strings to int).
MAX_FAST_INTEGER_DIGITS = 100

#: How many "bad reference answer" warnings are logged per process (then they are only counted).
MAX_BAD_INPUT_WARNINGS = 10

#: Text commands whose group around a whole answer is removed before comparing (``\\textbf{(A)}`` → ``(A)``).
_TEXT_WRAPPER_COMMANDS = ("text", "textbf", "textrm", "textit", "textnormal", "mathrm", "mbox")

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_BRACE_TOKEN = re.compile(r"\\[\\{}]|[{}]")  # \\ \{ \} are not grouping braces; { } are
_BRACELESS_ANSWER = re.compile(r"[^\s$]+")  # `\boxed 5$`: the answer runs to whitespace or `$`
_INTEGER = re.compile(rf"-?\d{{1,{MAX_FAST_INTEGER_DIGITS}}}")
_TEXT_WRAPPER = re.compile(r"\\(?:" + "|".join(_TEXT_WRAPPER_COMMANDS) + r")\s*(?=\{)")
_CHOICE_LETTER = re.compile(r"[A-Za-z]")


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
    max_answer_chars: int = 1000
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
        return settings_from_section(cls, mapping, CONFIG_PREFIX)


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
# Final-answer extraction and the in-process fast path
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Extraction:
    """What :func:`extract_final_answer` found: ``answer`` (None if unusable) and why (``reason``)."""

    answer: str | None
    reason: str  # "found", "no_answer" or "too_long"


def extract_final_answer(response: str, think_mode: str = "auto", max_chars: int = 1000) -> Extraction:
    """Find the final answer: the content of the last ``\\boxed`` / ``\\fbox`` in the graded text.

    The graded text is chosen by ``think_mode`` (see :class:`GraderConfig`). The *last occurrence* of
    ``\\boxed`` or ``\\fbox`` (not followed by a letter) is the final answer — several boxes → the last;
    nested boxes → the innermost, which is the last occurrence. Its argument is ``{…}`` with balanced
    braces (``\\{``, ``\\}`` and ``\\\\`` do not count), or, LaTeX's brace-less form ``\\boxed 5``, the
    run of characters up to the next whitespace or ``$``. Only that one occurrence is considered:
    if it is empty or never closed (the response was cut off while answering) there is no final
    answer — an earlier box would be a draft, not the answer. Cost: C-speed searches over the
    response plus a Python scan of at most ``max_chars`` characters, whatever the response length.
    """
    text = _graded_text(response, think_mode)
    if text is None:
        return Extraction(None, "no_answer")
    start = _last_box_argument_start(text)
    if start is None:
        return Extraction(None, "no_answer")
    while start < len(text) and text[start].isspace():
        start += 1
    if start >= len(text):
        return Extraction(None, "no_answer")
    if text[start] != "{":
        match = _BRACELESS_ANSWER.match(text, start, min(len(text), start + max_chars + 1))
        answer = match.group(0) if match else ""
        if len(answer) > max_chars:
            return Extraction(None, "too_long")
        return _found(answer)
    depth = 0
    window_end = min(len(text), start + max_chars + 2)  # content plus its two braces
    for token in _BRACE_TOKEN.finditer(text, start, window_end):
        brace = token.group(0)
        if brace == "{":
            depth += 1
        elif brace == "}":
            depth -= 1
            if depth == 0:
                return _found(text[start + 1 : token.start()])
    return Extraction(None, "too_long" if window_end < len(text) else "no_answer")


def _found(answer: str) -> Extraction:
    answer = answer.strip()
    return Extraction(answer, "found") if answer else Extraction(None, "no_answer")


def _graded_text(response: str, think_mode: str) -> str | None:
    """The part of ``response`` that may hold the final answer, or None when it cannot hold one."""
    if think_mode == "ignore":
        return response
    close = response.rfind(_THINK_CLOSE)
    if close >= 0:
        return response[close + len(_THINK_CLOSE) :]
    if think_mode == "required" or _THINK_OPEN in response:
        return None  # reasoning never finished, so the model never gave its answer
    return response


def _last_box_argument_start(text: str) -> int | None:
    """Index just after the last ``\\boxed`` / ``\\fbox`` command in ``text`` (None if there is none)."""
    best = None
    for command in _BOX_COMMANDS:
        end = len(text)
        while True:
            at = text.rfind(command, 0, end)
            if at < 0:
                break
            after = at + len(command)
            if after >= len(text) or not text[after].isalpha():  # `\boxedfoo` is another command
                if best is None or after > best:
                    best = after
                break
            end = at
    return best


_SPACING_COMMANDS = re.compile(r"\\[,;:!> ]|\\q?quad(?![a-zA-Z])|~")
_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?![a-zA-Z])")
_FRAC_VARIANTS = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_DROPPABLE_SPACE = re.compile(r"(?<![0-9A-Za-z])\s+|\s+(?![0-9A-Za-z])")


def canonical_answer(answer: str) -> str:
    """Canonical form for the exact-match path; deliberately conservative.

    It only removes what cannot change a value: surrounding whitespace and ``$``, one trailing period,
    LaTeX spacing commands, ``\\left``/``\\right``, the ``\\dfrac``/``\\tfrac`` spellings of ``\\frac``,
    and whitespace unless it separates two letters or digits (``\\pi r`` and ``1 2`` keep theirs).
    """
    text = _strip_trailing_period(answer.strip())
    while len(text) >= 2 and text[0] == "$" and text[-1] == "$":
        text = _strip_trailing_period(text[1:-1].strip())
    text = _SPACING_COMMANDS.sub(" ", text)
    text = _LEFT_RIGHT.sub("", text)
    text = _FRAC_VARIANTS.sub(r"\\frac", text)
    text = re.sub(r"\s+", " ", text).strip()
    return _DROPPABLE_SPACE.sub("", text)


def _strip_trailing_period(text: str) -> str:
    return text[:-1].rstrip() if text.endswith(".") and not text.endswith("\\.") else text


def exact_verdict(answer: str, reference: str) -> bool | None:
    """The fast path: True/False when it can decide without math-verify, else None.

    Identical canonical strings are equal; two plain integers (up to ``MAX_FAST_INTEGER_DIGITS``
    digits, leading zeros allowed) are equal iff their values are. Everything else → None.
    """
    a, b = canonical_answer(answer), canonical_answer(reference)
    if a == b and a:
        return True
    if _INTEGER.fullmatch(a) and _INTEGER.fullmatch(b):
        return int(a) == int(b)
    return None


def unwrap_text_wrapper(answer: str) -> str:
    """``\\textbf{(A)}`` → ``(A)``, ``\\text{(1, 2)}`` → ``(1, 2)``, ``\\text{A}`` → ``A``; else unchanged.

    Only a text group (:data:`_TEXT_WRAPPER_COMMANDS`) that spans the whole answer and holds one letter
    or one parenthesised or bracketed group is removed: math-verify reads ``\\text{(1, 2)}`` as text and
    rejects the interval ``(1,2)``. Words stay wrapped, so ``\\text{east}`` is still compared as text,
    never as the product of the symbols e, a, s, t.
    """
    match = _TEXT_WRAPPER.match(answer)
    if match is None or _closing_brace(answer, match.end()) != len(answer) - 1:
        return answer
    content = answer[match.end() + 1 : -1].strip()
    inner = unwrap_text_wrapper(content)  # `\\textbf{\\text{(C)}}`
    enclosed = len(inner) >= 2 and inner[0] + inner[-1] in ("()", "[]")
    if inner != content or enclosed or _CHOICE_LETTER.fullmatch(inner):
        return inner
    return answer


def _closing_brace(text: str, opening: int) -> int | None:
    """Index of the ``}`` that closes the ``{`` at ``opening`` (escaped braces do not count)."""
    depth = 0
    for token in _BRACE_TOKEN.finditer(text, opening):
        if token.group(0) == "{":
            depth += 1
        elif token.group(0) == "}":
            depth -= 1
            if depth == 0:
                return token.start()
    return None


def reference_answer(ground_truth: Any) -> str | None:
    """The reference answer as a string: numbers are converted, a boxed reference is unboxed.

    Returns None for an unusable reference (empty, or not a string or number).
    """
    if isinstance(ground_truth, bool) or not isinstance(ground_truth, (str, int, float)):
        return None
    text = str(ground_truth).strip()
    if any(command in text for command in _BOX_COMMANDS):
        text = extract_final_answer(text, think_mode="ignore", max_chars=len(text)).answer or ""
    text = text.strip()
    while len(text) >= 2 and text[0] == "$" and text[-1] == "$":
        text = text[1:-1].strip()
    return text or None


# ---------------------------------------------------------------------------------------------------
# Worker processes (math-verify)
# ---------------------------------------------------------------------------------------------------


_WORKER_FILE = Path(__file__).with_name("grade_worker.py")

#: Runs in ``python -c``: load grade_worker.py by path (not through the ``reward`` package, whose
#: ``__init__`` may import heavy modules), with the parent's ``sys.path``, and run it.
_WORKER_BOOTSTRAP = (
    "import importlib.util, json, sys\n"
    "sys.path[:] = json.loads(sys.argv[2])\n"
    "spec = importlib.util.spec_from_file_location('sgpo_grade_worker', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "module.main()\n"
)


@dataclass(frozen=True)
class _Outcome:
    status: str  # "ok", "timeout", "queue_timeout", "error" or "died" (the worker process is gone)
    correct: bool = False
    queue_s: float = 0.0
    rule: str = "math_verify"  # with "ok": the worker's rule that decided (grade_worker.answers_equal)


class _Request:
    """One comparison, queued for or running in a pool thread; ``future`` receives its :class:`_Outcome`.

    It is queued until a pool thread :meth:`start`\\ s it, or until a waiting caller :meth:`expire`\\ s it
    after ``max_queue_s`` (then the outcome is ``queue_timeout`` and the pool thread skips it).
    """

    def __init__(self, answer: str, reference: str, timeout_s: float, max_queue_s: float) -> None:
        self.answer, self.reference, self.timeout_s = answer, reference, timeout_s
        self.submitted = time.monotonic()
        self.queue_deadline = self.submitted + max_queue_s
        self.future: Future = Future()
        self.future.set_running_or_notify_cancel()  # no caller can cancel a comparison others share
        self._lock = threading.Lock()
        self._state = "queued"  # -> "running" (a pool thread took it) or "settled" (expired, dropped)

    def queue_time_left(self) -> float:
        return max(0.0, self.queue_deadline - time.monotonic())

    def start(self) -> bool:
        """Claim the request for a pool thread; False if it was already given up."""
        with self._lock:
            if self._state != "queued":
                return False
            self._state = "running"
            return True

    def expire(self) -> None:
        """Give the request up as a queue time-out, unless a pool thread already took it."""
        self._settle_if_queued("queue_timeout")

    def drop(self) -> None:
        """Give the request up as an error (the pool was closed before a thread took it)."""
        self._settle_if_queued("error")

    def _settle_if_queued(self, status: str) -> None:
        with self._lock:
            if self._state != "queued":
                return
            self._state = "settled"
        self.future.set_result(_Outcome(status, queue_s=time.monotonic() - self.submitted))


class _Worker:
    """One math-verify worker process (reward/grade_worker.py) and the parent's ends of its pipes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_BOOTSTRAP, str(_WORKER_FILE), json.dumps(sys.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self._requests = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self._replies = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()
        self.process.stdout.close()
        self.started_at = time.monotonic()
        self.ready = False
        self.busy = False  # a comparison is in flight (read by close() from another thread)
        self._request_ids = itertools.count()

    def wait_ready(self, timeout_s: float) -> bool:
        try:
            if not self.ready and self._replies.poll(timeout_s):
                self.ready = self._replies.recv()[0] == "ready"
        except (EOFError, OSError):
            self.ready = False
        return self.ready

    def compare(self, answer: str, reference: str, timeout_s: float) -> _Outcome:
        """Send one comparison and wait at most ``timeout_s`` for the verdict. Never raises."""
        request_id = next(self._request_ids)
        self.busy = True
        try:
            self._requests.send((request_id, answer, reference))
            deadline = time.monotonic() + timeout_s
            while self._replies.poll(max(0.0, deadline - time.monotonic())):
                reply_id, status, value = self._replies.recv()
                if reply_id == request_id:
                    if status == "ok":
                        correct, rule = value
                        return _Outcome("ok", correct=bool(correct), rule=rule)
                    logger.warning("[sgpo] grader: math-verify failed on an answer (%s); counted as wrong", value)
                    return _Outcome("error")
            return _Outcome("timeout")
        except (EOFError, OSError) as error:  # the worker died (killed from outside, out of memory)
            logger.warning("[sgpo] grader: worker process %s died (%s); it will be replaced", self.process.pid, error)
            return _Outcome("died")
        finally:
            self.busy = False

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker and wait until it is gone (reaped: no zombie)."""
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(WORKER_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:  # not seen in practice: SIGKILL cannot be ignored
            logger.error("[sgpo] grader: worker process %s did not exit after SIGKILL", self.process.pid)
        self._requests.close()
        self._replies.close()

    def stop(self) -> None:
        """Ask an idle worker to exit; kill a busy one (its verdict has no one left to use it)."""
        if self.busy:
            self.kill()
            return
        try:
            self._requests.send(None)
            self.process.wait(WORKER_EXIT_WAIT_S if self.ready else 0)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        self.kill()


#: Returned by ``_WorkerPool._thread_worker`` when the queue deadline passed while the worker starts.
_STILL_STARTING = object()


class _WorkerPool:
    """``num_workers`` threads, each owning one worker process; FIFO queue in front of them.

    A comparison runs in a pool thread, which blocks on its worker's pipe, so callers (event loop or
    any thread) never block on math-verify. Threads and processes are created lazily.
    """

    def __init__(self, num_workers: int, stats: "_Stats") -> None:
        self._num_workers = num_workers
        self._stats = stats
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._workers: set[_Worker] = set()
        self._owner_pid = os.getpid()
        self._generation = 0  # bumped by close(): work submitted before it must not start new workers

    def submit(self, answer: str, reference: str, timeout_s: float, max_queue_s: float) -> _Request:
        """Schedule one comparison; its ``future`` gets an :class:`_Outcome`."""
        request = _Request(answer, reference, timeout_s, max_queue_s)
        executor = self._get_executor()
        queued = executor.submit(self._run, request, self._generation)
        queued.add_done_callback(lambda done: request.drop() if done.cancelled() else None)  # close()
        return request

    def _run(self, request: _Request, generation: int) -> None:
        if not request.start():
            return  # its caller gave it up (queue time-out)
        try:
            outcome = self._compare(request, generation)
        except BaseException as error:  # reaches the caller, which reports an internal error
            request.future.set_exception(error)
        else:
            request.future.set_result(outcome)

    def _get_executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._owner_pid != os.getpid():  # we are a forked copy: the workers belong to the parent
                self._executor, self._workers, self._owner_pid = None, set(), os.getpid()
                self._local = threading.local()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._num_workers, thread_name_prefix="sgpo-grader")
            return self._executor

    def _compare(self, request: _Request, generation: int) -> _Outcome:
        """Run one comparison in this thread's worker; at most ``timeout_s`` of comparing in all.

        A worker found dead when the request is sent or before it replies (killed from outside, out of
        memory) is replaced and the comparison retried once, with the time it has left; a second death
        is an error (the answer itself may crash math-verify). Time spent starting workers is queue
        time, not comparison time, and ends at the request's queue deadline (``queue_timeout``).
        """
        timeout_s = request.timeout_s
        queue_s = compare_s = 0.0
        for _attempt in range(WORKER_DEATH_RETRIES + 1):
            if generation != self._generation:  # close() ran since this was submitted
                return _Outcome("error", queue_s=queue_s)
            waiting_since = time.monotonic()
            worker = self._thread_worker(request.queue_deadline)
            queue_s += time.monotonic() - (request.submitted if _attempt == 0 else waiting_since)
            if worker is None:
                return _Outcome("error", queue_s=queue_s)
            if worker is _STILL_STARTING:
                return _Outcome("queue_timeout", queue_s=queue_s)
            comparing_since = time.monotonic()
            outcome = worker.compare(request.answer, request.reference, timeout_s - compare_s)
            compare_s += time.monotonic() - comparing_since
            if outcome.status == "ok" or (outcome.status == "error" and worker.alive):
                return _Outcome(outcome.status, outcome.correct, queue_s, outcome.rule)
            self._discard(worker)  # still busy (time-out: kill it) or dead: replace it on the next call
            if outcome.status == "timeout":
                self._stats.add("worker_kills")
                return _Outcome("timeout", queue_s=queue_s)
            self._stats.add("worker_deaths")
            if compare_s >= timeout_s:
                return _Outcome("timeout", queue_s=queue_s)
        return _Outcome("error", queue_s=queue_s)

    def _thread_worker(self, queue_deadline: float) -> "_Worker | None | object":
        """This pool thread's ready worker, started if there is none or it died.

        Waits for a starting worker until ``queue_deadline``; a worker still starting then is kept for
        the next request and :data:`_STILL_STARTING` returned. None: no worker could be started within
        ``WORKER_START_TIMEOUT_S`` of its start.
        """
        worker = getattr(self._local, "worker", None)
        if worker is not None and not worker.alive:
            self._discard(worker)
            worker = None
        if worker is None:
            try:
                worker = _Worker()
            except Exception as error:  # e.g. out of processes or memory
                logger.error("[sgpo] grader: could not start a math-verify worker process: %s", error)
                return None
            with self._lock:
                self._workers.add(worker)
            self._stats.add("worker_starts")
            self._local.worker = worker
        start_deadline = worker.started_at + WORKER_START_TIMEOUT_S
        if worker.wait_ready(max(0.0, min(queue_deadline, start_deadline) - time.monotonic())):
            return worker
        if time.monotonic() < start_deadline and worker.alive:
            return _STILL_STARTING
        logger.error(
            "[sgpo] grader: a math-verify worker process did not start within %.0f s; "
            "check that math-verify imports in this environment (python -c 'import math_verify')",
            WORKER_START_TIMEOUT_S,
        )
        self._discard(worker)
        return None

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._workers.discard(worker)
        if getattr(self._local, "worker", None) is worker:
            self._local.worker = None

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._workers]

    def close(self) -> None:
        """Stop all workers and threads; the pool starts again lazily if used afterwards."""
        with self._lock:
            self._generation += 1
            executor, self._executor = self._executor, None
            workers, self._workers = list(self._workers), set()
            self._local = threading.local()
            owned = self._owner_pid == os.getpid()
        if not owned:
            return
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.stop()


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
        self._pool = _WorkerPool(self.config.num_workers, self._stats)
        self._bad_input_warnings = 0
        self._inflight: dict[tuple[str, str], _Request] = {}
        self._inflight_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _WorkerPool.close, self._pool)

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

    def _submit(self, answer: str, reference: str) -> _Request:
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

    def _finish(self, pair: "_Pair", outcome: _Outcome, started: float) -> GradeResult:
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
    "extract_final_answer",
    "exact_verdict",
    "canonical_answer",
    "reference_answer",
    "shared_grader",
    "unwrap_text_wrapper",
]
