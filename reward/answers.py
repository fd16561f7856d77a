"""Final-answer extraction and in-process answer equality: pure string functions, no processes, no threads.

What researchers tune when they change *what counts as the answer*; the grader (``reward/grader.py``)
calls it for every response, and data_prep (``data_prep/answers.py``) unboxes ground truth with the
same :func:`last_boxed`, so a reference is unboxed by the rule that grades answers against it.

1. **Final answer** (:func:`extract_final_answer`). The content of the last ``\\boxed{…}`` or
   ``\\fbox{…}`` (balanced braces, escaped ``\\{ \\}`` ignored; ``\\boxedfoo`` is another command),
   searched only in the part of the response that the grader's ``think_mode`` selects (by default the
   text after ``</think>``). No box, an empty box, a box cut off by the end of the response or a box
   longer than the limit → no final answer → wrong.
2. **Fast path** (:func:`unwrap_text_wrapper`, :func:`exact_verdict`). A text wrapper around a whole
   answer, ``\\textbf{(A)}``, ``\\text{(1, 2)}``, ``\\text{A}``, is removed on both sides (math-verify
   would read ``\\text{(1, 2)}`` as text, not as the interval). Both answers are canonicalised
   conservatively (:func:`canonical_answer`: whitespace, ``$``, ``\\left``/``\\right``, ``\\dfrac``);
   identical strings are equal, two plain integers are compared as integers. Anything else is left to
   math-verify in a worker process (``reward/grade_pool.py``, ``reward/grade_worker.py``).
3. **Reference answers** (:func:`reference_answer`): numbers become strings, a boxed reference is
   unboxed with :func:`last_boxed`, surrounding ``$`` are removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: Which part of a response may hold the final answer (the grader's ``think_mode`` setting documents them).
THINK_MODES = ("auto", "required", "ignore")

#: Default of the grader's ``max_answer_chars`` setting (documented in ``GraderConfig``).
DEFAULT_MAX_ANSWER_CHARS = 1000

#: Plain integers up to this many digits are compared in-process; longer digit strings go to
#: math-verify (Python refuses to convert very long digit strings to int).
MAX_FAST_INTEGER_DIGITS = 100

#: The commands whose argument is a final answer (in responses and in worked solutions alike).
BOX_COMMANDS = ("\\boxed", "\\fbox")

#: Text commands whose group around a whole answer is removed before comparing (``\\textbf{(A)}`` → ``(A)``).
_TEXT_WRAPPER_COMMANDS = ("text", "textbf", "textrm", "textit", "textnormal", "mathrm", "mbox")

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_BRACE_TOKEN = re.compile(r"\\[\\{}]|[{}]")  # \\ \{ \} are not grouping braces; { } are
_BRACELESS_ANSWER = re.compile(r"[^\s$]+")  # `\boxed 5$`: the answer runs to whitespace or `$`
_INTEGER = re.compile(rf"-?\d{{1,{MAX_FAST_INTEGER_DIGITS}}}")
_TEXT_WRAPPER = re.compile(r"\\(?:" + "|".join(_TEXT_WRAPPER_COMMANDS) + r")\s*(?=\{)")
_CHOICE_LETTER = re.compile(r"[A-Za-z]")


# ---------------------------------------------------------------------------------------------------
# Final-answer extraction
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Extraction:
    """What :func:`extract_final_answer` found: ``answer`` (None if unusable) and why (``reason``)."""

    answer: str | None
    reason: str  # "found", "no_answer" or "too_long"


def extract_final_answer(
    response: str, think_mode: str = "auto", max_chars: int = DEFAULT_MAX_ANSWER_CHARS
) -> Extraction:
    """Find the final answer: the content of the last ``\\boxed`` / ``\\fbox`` in the graded text.

    The graded text is chosen by ``think_mode`` (one of :data:`THINK_MODES`, documented with the
    grader's setting, ``reward.grader.GraderConfig.think_mode``). The *last occurrence* of
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
    for command in BOX_COMMANDS:
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


# ---------------------------------------------------------------------------------------------------
# The in-process fast path
# ---------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------
# Reference answers
# ---------------------------------------------------------------------------------------------------


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed`` / ``\\fbox`` anywhere in ``text`` (stripped), or None.

    :func:`extract_final_answer` with no reasoning-block rule (``think_mode="ignore"``) and no length
    limit (a box can never be longer than ``text``): for reference answers and worked solutions, which
    are trusted text, not model output. None when there is no box, or the last one is empty or unclosed.
    """
    return extract_final_answer(text, think_mode="ignore", max_chars=len(text)).answer


def reference_answer(ground_truth: Any) -> str | None:
    """The reference answer as a string: numbers are converted, a boxed reference is unboxed.

    Returns None for an unusable reference (empty, or not a string or number).
    """
    if isinstance(ground_truth, bool) or not isinstance(ground_truth, (str, int, float)):
        return None
    text = str(ground_truth).strip()
    if any(command in text for command in BOX_COMMANDS):
        text = last_boxed(text) or ""
    text = text.strip()
    while len(text) >= 2 and text[0] == "$" and text[-1] == "$":
        text = text[1:-1].strip()
    return text or None


__all__ = [
    "BOX_COMMANDS",
    "DEFAULT_MAX_ANSWER_CHARS",
    "MAX_FAST_INTEGER_DIGITS",
    "THINK_MODES",
    "Extraction",
    "canonical_answer",
    "exact_verdict",
    "extract_final_answer",
    "last_boxed",
    "reference_answer",
    "unwrap_text_wrapper",
]
