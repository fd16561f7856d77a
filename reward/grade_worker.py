"""The math-verify worker process of the outcome grader (reward/grade_pool.py starts it; the grader never
imports it, tests/test_grade_worker_on_cpu.py does, to check its rules in-process).

It runs as a plain subprocess (``python -c`` loading this file by path), not through ``multiprocessing``:
no re-import of the parent's ``__main__`` (which breaks scripts without a ``__main__`` guard and costs a
Ray import inside Ray actors), no import of the ``reward`` package (whose ``__init__`` may grow heavy
imports), no global start-method state. Only the standard library and math-verify are imported.

Protocol (pickled messages over pipes; the reply pipe is the process's original stdout, and stdout is
redirected to stderr so that a stray ``print`` cannot corrupt it):

    parent → worker   (request_id, answer, reference)   or None to stop
    worker → parent   ("ready", pid)                     once, after math-verify is imported and warm
                      (request_id, "ok", (bool, rule))   the verdict and the rule that decided it
                      (request_id, "error", str)         math-verify raised; counts as wrong

The parent enforces the time bound by killing this process, so math-verify's own signal-based
time-outs are disabled here (they would also turn a time-out into a silent ``False``).

**Where math-verify's verdict is not trusted** (:func:`answers_equal`). math-verify (0.9, with
latex2sympy2_extended 1.11) marks some wrong answers correct; a false positive is the worst error a reward
can make, since the policy learns to write the wrong form. Each class is caught here, where the grader
calls math-verify, and decided by a stricter rule (the ``rule`` in the reply):

- ``base`` — number-base subscripts are dropped by math-verify (``41_7`` parses as 41, equal to ``41_8``).
  A base written on the answer must be the reference's (base 10 if the reference writes none);
  otherwise wrong. An answer that writes no base is read in the reference's base (math-verify decides).
- ``unit`` — units are dropped with their exponents (``5\\text{cm}^3`` equals ``5\\text{cm}^2``). When
  both answers name units (``\\text{…}``, ``\\mathrm{…}``, ``\\mbox{…}``), their unit exponents other
  than 1 (``^2``, ``^{2}`` or ``²``) must be the same multiset; otherwise wrong. An answer without units
  is still accepted (``5`` equals ``5\\text{ cm}``, math-verify's choice).
- ``strict`` — the parse of either answer is not faithful to its LaTeX: it *lost content* (a letter or
  subscripted symbol of the text appears in no symbol of the parsed expression, e.g.
  ``\\frac{1}{3}\\mathbf{a}_{1} + \\frac{2}{3}\\mathbf{a}_{2}`` parses as ``1/3``, or ``… + \\cdots``
  as its last term), or it *merged symbols* (the text uses two identifiers that differ only in case,
  ``K = k + 1``, and math-verify reads every letter as lower case). Then the verdict is equality of the
  two answers' strict normal forms (:func:`strict_form`): it can reject a correct answer written
  another way, but never accepts such a fragment.
- ``math_verify`` — otherwise, math-verify's ``verify`` (gold first).
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
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

#: The base math-verify assumes for a number written without a subscript.
DEFAULT_NUMBER_BASE = "10"

#: The exponent of a unit written without one (``\\text{cm}``).
DEFAULT_UNIT_EXPONENT = "1"

_reference_cache: OrderedDict[str, list] = OrderedDict()

# -- number bases: `41_7`, `1011_{2}`, `A3_{16}` (a run of digits/capitals with at least one digit)
_NUMBER_BASE = re.compile(r"(?<![A-Za-z0-9\\])[0-9A-F]*[0-9][0-9A-F]*\s*_\s*(?:\{\s*(\d+)\s*\}|(\d))")

# -- units: `\text{ cm}^2`, `\mathrm{m^{3}}`, `\mbox{cm}`, `\text{cm²}`; group 1 the name (with a Unicode
#    exponent if written so), 2/3 an inner/outer exponent
_UNIT = re.compile(
    r"\\(?:text|textrm|mathrm|mbox|rm)\s*\{\s*([A-Za-z][A-Za-z \u00b2\u00b3]*?)\s*(?:\^\s*(\{[^{}]*\}|\d))?\s*\}"
    r"(?:\s*\^\s*(\{[^{}]*\}|\d))?"
)
_UNICODE_EXPONENTS = {"\u00b2": "2", "\u00b3": "3"}  # `\text{cm²}`

# -- identifiers a faithful parse must keep
#: Groups holding prose or unit names, whose letters math-verify may rightly drop (`5\text{ cm}` = 5).
_PROSE_GROUP = re.compile(r"\\(?:text|textrm|textit|textnormal|mathrm|mbox|operatorname)\s*\{(?:[^{}]|\{[^{}]*\})*\}")
_ENVIRONMENT_NAME = re.compile(r"\\(?:begin|end)\s*\{[^{}]*\}")
_ESCAPED_SYMBOL = re.compile(r"\\[^A-Za-z]")  # \{ \} \, \\ \% \$
_COMMAND_NAME = re.compile(r"\\[A-Za-z]+")  # its arguments stay: \mathbf{a} keeps a, \frac{1}{x} keeps x
_SINGLE_LETTER_GROUP = re.compile(r"\{\s*([A-Za-z])\s*\}")
_IDENTIFIER = re.compile(r"([A-Za-z])(?:\s*_\s*(\{[^{}]*\}|[A-Za-z0-9]))?")
_SYMBOL_NAME_NOISE = re.compile(r"[{}\\\s]")

# -- strict normal form
_SPACING_COMMANDS = re.compile(r"\\[,;:!> ]|\\q?quad(?![a-zA-Z])|~")
_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?![a-zA-Z])")
_FRAC_VARIANTS = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_TEXT_VARIANTS = re.compile(r"\\(?:textbf|textrm|textit|textnormal|mathrm|mbox)(?![a-zA-Z])")
_TEXT_GROUP = re.compile(r"\\text\s*\{([^{}]*)\}")
_SINGLE_TOKEN_GROUP = re.compile(r"(?<!\\)\{([A-Za-z0-9])\}")
_DROPPABLE_SPACE = re.compile(r"(?<![0-9A-Za-z])\s+|\s+(?![0-9A-Za-z])")


def answers_equal(answer: str, reference: str) -> tuple[bool, str]:
    """The verdict on ``answer`` against ``reference`` and the rule that decided it.

    Rules, in order (module docstring): ``base``, ``unit``, ``strict``, ``math_verify``. Both sides
    are parsed as ``\\boxed{…}`` LaTeX, gold first (as verl parses gold).
    """
    from math_verify import parse, verify
    from math_verify.parser import LatexExtractionConfig

    if not number_bases_agree(answer, reference):
        return False, "base"
    if not unit_exponents_agree(answer, reference):
        return False, "unit"
    gold = _parse_reference(reference)
    predicted = parse("\\boxed{" + answer + "}", (LatexExtractionConfig(),), parsing_timeout=None)
    if not (parse_is_faithful(reference, gold) and parse_is_faithful(answer, predicted)):
        return strict_form(answer) == strict_form(reference), "strict"
    if not gold or not predicted:
        return False, "math_verify"
    return bool(verify(gold, predicted, timeout_seconds=None)), "math_verify"


def math_verify_equal(answer: str, reference: str) -> bool:
    """The verdict of :func:`answers_equal` alone."""
    return answers_equal(answer, reference)[0]


def number_bases_agree(answer: str, reference: str) -> bool:
    """False when the answer writes a number base the reference does not (``41_7`` for ``41_8``).

    The reference's bases are those it writes, or ``[10]`` if it writes none; an answer that writes no
    base agrees with any reference (it is read in the reference's base).
    """
    answer_bases = _number_bases(answer)
    if not answer_bases:
        return True
    reference_bases = _number_bases(reference) or [DEFAULT_NUMBER_BASE] * len(answer_bases)
    return answer_bases == reference_bases


def _number_bases(latex: str) -> list[str]:
    return sorted(str(int(braced or bare)) for braced, bare in _NUMBER_BASE.findall(latex))


def unit_exponents_agree(answer: str, reference: str) -> bool:
    """False when both answers name units and their exponents other than 1 differ (cm³ for cm²)."""
    answer_units, reference_units = _unit_exponents(answer), _unit_exponents(reference)
    if answer_units is None or reference_units is None:
        return True  # a side without units: math-verify's choice (units are ignored)
    return answer_units == reference_units


def _unit_exponents(latex: str) -> list[str] | None:
    """Sorted exponents (other than 1) of the units named in ``latex``; None if it names no unit."""
    found = _UNIT.findall(latex)
    if not found:
        return None
    exponents = []
    for name, inner, outer in found:
        exponent = (outer or inner).strip("{} ") or DEFAULT_UNIT_EXPONENT
        for character, power in _UNICODE_EXPONENTS.items():
            if character in name:
                exponent = power
        if exponent != DEFAULT_UNIT_EXPONENT:
            exponents.append(exponent)
    return sorted(exponents)


def parse_is_faithful(latex: str, parsed: list) -> bool:
    """False when math-verify's parse of ``latex`` lost an identifier or merged two of them.

    ``parsed`` is math-verify's ``parse`` result (its first element the sympy expression). An
    identifier is a letter outside prose and unit groups, with its subscript if any (``a_{1}`` →
    ``a_1``). *Lost*: an identifier that is in no symbol or undefined-function name of the expression
    (compared lower-case, braces and backslashes dropped: ``\\vec{a}_1`` is ``veca_1``); ``e`` and ``i``
    may also be Euler's number and the imaginary unit. *Merged*: two identifiers that differ only in
    case (math-verify reads both as the lower-case one). A parse that is not a sympy expression (a
    plain string, compared as text by math-verify) or an empty parse is faithful: nothing was merged.
    """
    import sympy

    identifiers = latex_identifiers(latex)
    if len({name.lower() for name in identifiers}) < len(identifiers):
        return False  # merged: `K` and `k`
    expression = parsed[0] if parsed else None
    if not isinstance(expression, sympy.Basic):
        return True
    names = _expression_names(expression)
    for identifier in sorted(identifiers):  # sorted: the same verdict path in every process
        wanted = identifier.lower()
        if any(wanted in name for name in names):
            continue
        if wanted == "e" and (expression.has(sympy.E) or expression.atoms(sympy.exp)):
            continue
        if wanted == "i" and expression.has(sympy.I):
            continue
        return False  # lost
    return True


def latex_identifiers(latex: str) -> set[str]:
    """The identifiers of ``latex`` (case kept): letters outside prose, unit and command names, each
    with its subscript (``\\frac{1}{3}\\mathbf{a}_{1}`` → ``{"a_1"}``, ``K = k + 1`` → ``{"K", "k"}``)."""
    text = _PROSE_GROUP.sub(" ", latex)
    text = _ENVIRONMENT_NAME.sub(" ", text)
    text = _ESCAPED_SYMBOL.sub(" ", text)
    text = _COMMAND_NAME.sub(" ", text)
    text = _SINGLE_LETTER_GROUP.sub(r"\1", text)
    identifiers = set()
    for letter, subscript in _IDENTIFIER.findall(text):
        subscript = _SYMBOL_NAME_NOISE.sub("", subscript)
        identifiers.add(f"{letter}_{subscript}" if subscript else letter)
    return identifiers


def _expression_names(expression) -> list[str]:
    from sympy import Symbol
    from sympy.core.function import AppliedUndef

    names = [symbol.name for symbol in expression.atoms(Symbol)]  # bound ones too (sums, limits)
    names += [type(function).__name__ for function in expression.atoms(AppliedUndef)]
    return [_SYMBOL_NAME_NOISE.sub("", name).lower() for name in names]


def strict_form(latex: str) -> str:
    """A normal form compared by plain string equality where math-verify's parse is not trusted.

    It removes only what never changes a value: surrounding ``$`` and whitespace, spacing commands,
    ``\\left``/``\\right``, the ``\\dfrac``/``\\tfrac`` spellings, braces around a single character
    (``a_{1}`` → ``a_1``, ``\\frac{1}{3}`` → ``\\frac13``), text-font wrappers (``\\textbf{x}`` → ``x``),
    and whitespace unless it separates two letters or digits.
    """
    text = latex.strip().strip("$").strip()
    text = _SPACING_COMMANDS.sub(" ", text)
    text = _LEFT_RIGHT.sub("", text)
    text = _FRAC_VARIANTS.sub(r"\\frac", text)
    text = _TEXT_VARIANTS.sub(r"\\text", text)
    text = _TEXT_GROUP.sub(r"\1", text)
    previous = None
    while previous != text:  # `{{1}}` → `1`
        previous, text = text, _SINGLE_TOKEN_GROUP.sub(r"\1", text)
    text = re.sub(r"\s+", " ", text).strip()
    return _DROPPABLE_SPACE.sub("", text)


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
    answers_equal("1", "1")  # import and warm math-verify before reporting ready
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
            replies.send((request_id, "ok", answers_equal(answer, reference)))
        except Exception as error:  # a failure inside math-verify/sympy is a wrong answer, not a crash
            replies.send((request_id, "error", f"{type(error).__name__}: {str(error)[:MAX_ERROR_CHARS]}"))
