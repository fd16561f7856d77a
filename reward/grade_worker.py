"""The math-verify worker process of the outcome grader (reward/grader.py starts it; never import it).

It runs as a plain subprocess (``python -c`` loading this file by path), not through ``multiprocessing``:
no re-import of the parent's ``__main__`` (which breaks scripts without a ``__main__`` guard and costs a
Ray import inside Ray actors), no import of the ``reward`` package (whose ``__init__`` may grow heavy
imports), no global start-method state. Only the standard library and math-verify are imported.

Protocol (pickled messages over pipes; the reply pipe is the process's original stdout, and stdout is
redirected to stderr so that a stray ``print`` cannot corrupt it):

    parent → worker   (request_id, answer, reference)   or None to stop
    worker → parent   ("ready", pid)                     once, after math-verify is imported and warm
                      (request_id, "ok", bool)           math-verify's verdict
                      (request_id, "error", str)         math-verify raised; counts as wrong

The parent enforces the time bound by killing this process, so math-verify's own signal-based
time-outs are disabled here (they would also turn a time-out into a silent ``False``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from multiprocessing.connection import Connection

#: Parsed reference answers kept per worker; a batch has few distinct references, each repeated n times.
REFERENCE_CACHE_SIZE = 1024

#: Seconds between checks that the parent is alive (fallback where PR_SET_PDEATHSIG is unavailable).
ORPHAN_CHECK_INTERVAL_S = 1.0

#: Length limit of the error text sent back (the parent logs it).
MAX_ERROR_CHARS = 200

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

_reference_cache: OrderedDict[str, list] = OrderedDict()


def math_verify_equal(answer: str, reference: str) -> bool:
    """math-verify's verdict, both sides parsed as ``\\boxed{…}`` LaTeX, gold first (as verl parses gold)."""
    from math_verify import parse, verify
    from math_verify.parser import LatexExtractionConfig

    gold = _parse_reference(reference)
    if not gold:
        return False
    predicted = parse("\\boxed{" + answer + "}", (LatexExtractionConfig(),), parsing_timeout=None)
    if not predicted:
        return False
    return bool(verify(gold, predicted, timeout_seconds=None))


def _parse_reference(reference: str) -> list:
    parsed = _reference_cache.get(reference)
    if parsed is None:
        from math_verify import parse
        from math_verify.parser import LatexExtractionConfig

        parsed = parse("\\boxed{" + reference + "}", (LatexExtractionConfig(),), parsing_timeout=None)
        _reference_cache[reference] = parsed
        if len(_reference_cache) > REFERENCE_CACHE_SIZE:
            _reference_cache.popitem(last=False)
    return parsed


def _die_with_parent() -> None:
    """Exit when the parent exits, even while stuck in a long computation that holds the GIL."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)

    def exit_when_orphaned() -> None:  # fallback only: it needs the GIL
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_INTERVAL_S)
        os._exit(0)

    threading.Thread(target=exit_when_orphaned, name="orphan-check", daemon=True).start()


def main() -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent stops us
    replies = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # anything printed goes to stderr, never into the reply pipe
    requests = Connection(os.dup(0), writable=False)
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout is disabled": the parent enforces it
    math_verify_equal("1", "1")  # import and warm math-verify before reporting ready
    replies.send(("ready", os.getpid()))
    while True:
        try:
            message = requests.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if message is None:
            return
        request_id, answer, reference = message
        try:
            replies.send((request_id, "ok", math_verify_equal(answer, reference)))
        except Exception as error:  # a failure inside math-verify/sympy is a wrong answer, not a crash
            replies.send((request_id, "error", f"{type(error).__name__}: {str(error)[:MAX_ERROR_CHARS]}"))
