"""The killable pool of math-verify worker processes behind the outcome grader (``reward/grader.py``).

Why processes: math-verify can hang on pathological LaTeX (power towers, deep nesting), and its own
time-out uses ``signal.alarm``, which works only in a process's main thread — verl's reward workers call
scorers from threads of an asyncio Ray actor. So each comparison runs in one of a small pool of worker
processes (``reward/grade_worker.py``): both answers are parsed as ``\\boxed{…}`` LaTeX by math-verify
and compared with its ``verify``, gold first, except where math-verify is known to mark wrong answers
correct: number bases, unit exponents, and parses that lost part of an answer or merged symbols
differing only in case are decided by stricter rules (``rule`` ``base``, ``unit``, ``strict``; the
worker's docstring lists them). A comparison that is not finished after ``timeout_s`` has its worker
killed (SIGKILL) and replaced, and counts as **wrong** (outcome ``timeout``; the grader reports
``timed_out=True``, ``method="timeout"``).

Time bound: the comparison itself (from the moment a worker takes it to the verdict) never lasts
longer than ``timeout_s`` plus the time to kill the worker and wake the waiting thread (milliseconds).
Before it, a request may wait for a free worker (``queue_s``, FIFO; on the first call and after a kill
also for the worker to start), at most ``max_queue_s``: a request that has no running worker by then is
given up (outcome ``queue_timeout``). So ``latency_s - queue_s <= timeout_s + overhead`` and
``latency_s <= max_queue_s + timeout_s + overhead``. (Caching verdicts and time-outs, and sharing one
running comparison among identical requests, is the grader's job, not the pool's.)

Lifecycle: worker processes start lazily, on the first comparison that needs math-verify (0.4–1 s each:
a new interpreter importing math-verify; the grader's ``warm_up`` starts them ahead); a killed or crashed
worker is replaced on the next call; :meth:`WorkerPool.close` (the grader runs it from ``close``, from
the garbage collector and at interpreter exit) stops them all and reaps them (no zombies). Workers are
plain subprocesses, not ``multiprocessing`` children, so nothing depends on the parent's ``__main__`` or
start method, and they are safe to start from a multi-threaded Ray actor. They exit by themselves when
the parent dies (Linux ``PR_SET_PDEATHSIG``, end of their request pipe), so no worker outlives the
grader's process. (``PR_SET_PDEATHSIG`` fires when the *thread* that started the worker ends; each
worker is started by the pool thread that owns it, and those threads live until :meth:`WorkerPool.close`.)
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

#: Seconds a new worker may take to start and import math-verify before it is given up on (the call
#: that needed it then gets ``method="error"``). About 1 s on an idle 2-core machine; generous
#: because a node may be busy loading models when the first reward is computed.
WORKER_START_TIMEOUT_S = 120.0

#: Seconds to wait for a worker to exit after a polite stop (``close``) or after SIGKILL.
WORKER_EXIT_WAIT_S = 5.0

#: How often a comparison is retried on a fresh worker when its worker process died under it.
WORKER_DEATH_RETRIES = 1


class PoolCounters(Protocol):
    """Where the pool counts its events: ``worker_starts``, ``worker_kills``, ``worker_deaths``."""

    def add(self, name: str) -> None: ...


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
class ComparisonOutcome:
    """How one comparison ended; ``queue_s`` is the seconds it waited for a worker (or for one to start)."""

    status: str  # "ok", "timeout", "queue_timeout", "error" or "died" (the worker process is gone)
    correct: bool = False
    queue_s: float = 0.0
    rule: str = "math_verify"  # with "ok": the worker's rule that decided (grade_worker.answers_equal)


class ComparisonRequest:
    """One comparison, queued for or running in a pool thread; ``future`` receives its :class:`ComparisonOutcome`.

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
        self.future.set_result(ComparisonOutcome(status, queue_s=time.monotonic() - self.submitted))


class WorkerProcess:
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

    def compare(self, answer: str, reference: str, timeout_s: float) -> ComparisonOutcome:
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
                        return ComparisonOutcome("ok", correct=bool(correct), rule=rule)
                    logger.warning("[sgpo] grader: math-verify failed on an answer (%s); counted as wrong", value)
                    return ComparisonOutcome("error")
            return ComparisonOutcome("timeout")
        except (EOFError, OSError) as error:  # the worker died (killed from outside, out of memory)
            logger.warning("[sgpo] grader: worker process %s died (%s); it will be replaced", self.process.pid, error)
            return ComparisonOutcome("died")
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


#: Returned by ``WorkerPool._thread_worker`` when the queue deadline passed while the worker starts.
_STILL_STARTING = object()


class WorkerPool:
    """``num_workers`` threads, each owning one worker process; FIFO queue in front of them.

    A comparison runs in a pool thread, which blocks on its worker's pipe, so callers (event loop or
    any thread) never block on math-verify. Threads and processes are created lazily.
    """

    def __init__(self, num_workers: int, stats: PoolCounters) -> None:
        self._num_workers = num_workers
        self._stats = stats
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._workers: set[WorkerProcess] = set()
        self._owner_pid = os.getpid()
        self._generation = 0  # bumped by close(): work submitted before it must not start new workers

    def submit(self, answer: str, reference: str, timeout_s: float, max_queue_s: float) -> ComparisonRequest:
        """Schedule one comparison; its ``future`` gets an :class:`ComparisonOutcome`."""
        request = ComparisonRequest(answer, reference, timeout_s, max_queue_s)
        executor = self._get_executor()
        queued = executor.submit(self._run, request, self._generation)
        queued.add_done_callback(lambda done: request.drop() if done.cancelled() else None)  # close()
        return request

    def _run(self, request: ComparisonRequest, generation: int) -> None:
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

    def _compare(self, request: ComparisonRequest, generation: int) -> ComparisonOutcome:
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
                return ComparisonOutcome("error", queue_s=queue_s)
            waiting_since = time.monotonic()
            worker = self._thread_worker(request.queue_deadline)
            queue_s += time.monotonic() - (request.submitted if _attempt == 0 else waiting_since)
            if worker is None:
                return ComparisonOutcome("error", queue_s=queue_s)
            if worker is _STILL_STARTING:
                return ComparisonOutcome("queue_timeout", queue_s=queue_s)
            comparing_since = time.monotonic()
            outcome = worker.compare(request.answer, request.reference, timeout_s - compare_s)
            compare_s += time.monotonic() - comparing_since
            if outcome.status == "ok" or (outcome.status == "error" and worker.alive):
                return ComparisonOutcome(outcome.status, outcome.correct, queue_s, outcome.rule)
            self._discard(worker)  # still busy (time-out: kill it) or dead: replace it on the next call
            if outcome.status == "timeout":
                self._stats.add("worker_kills")
                return ComparisonOutcome("timeout", queue_s=queue_s)
            self._stats.add("worker_deaths")
            if compare_s >= timeout_s:
                return ComparisonOutcome("timeout", queue_s=queue_s)
        return ComparisonOutcome("error", queue_s=queue_s)

    def _thread_worker(self, queue_deadline: float) -> "WorkerProcess | None | object":
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
                worker = WorkerProcess()
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

    def _discard(self, worker: WorkerProcess) -> None:
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


__all__ = [
    "WORKER_DEATH_RETRIES",
    "WORKER_EXIT_WAIT_S",
    "WORKER_START_TIMEOUT_S",
    "ComparisonOutcome",
    "ComparisonRequest",
    "PoolCounters",
    "WorkerPool",
    "WorkerProcess",
]
