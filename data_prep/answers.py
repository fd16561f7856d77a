"""Answer normalisation: one named rule per dataset turns the source's answer field into the
``ground_truth`` string our grader (math-verify) compares against.

Rules (the registry names one per dataset):

``exact``
    The string as given, outer whitespace removed. LaTeX is kept exactly (MATH500, Minerva, HMMT,
    DeepScaleR, OpenR1, DAPO): rewriting it could change its meaning, and math-verify parses LaTeX.
``integer``
    An integer answer (AIME: 0–999). Accepts an int, an integral float, or a string of digits wrapped
    in decorations sources use (``$…$``, a degree sign, leading zeros: ``"033"`` → ``"33"``). Anything
    else is a bad row: an AIME answer that is not an integer means the source changed.
``number``
    A numeric answer that some revisions store as a float (AMC23: ``27.0``). Integral floats become
    integers (``"27"``), other floats their shortest repr (``"0.5"``); strings are kept as ``exact``.
``latex_list``
    OlympiadBench's ``final_answer``: a list of LaTeX strings, each with its ``$…$`` delimiters
    stripped, joined with ``", "`` (a multi-part answer keeps every part).
``boxed_in_solution``
    The content of the last ``\\boxed{…}`` (or ``\\fbox{…}``) in the solution (MATH train has no answer
    column), found by the grader's own extractor (``reward.answers.last_boxed``: balanced braces with
    ``\\{ \\}`` escapes ignored, ``\\boxedfoo`` is another command, the brace-less ``\\boxed 5``), so
    ground truth is unboxed by the rule that grades answers against it.

A rule raises :class:`AnswerError` with the reason; the pipeline turns it into a bad-row error naming
the dataset and row.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from reward.answers import last_boxed  # pure string functions: no grader processes are imported


class AnswerError(ValueError):
    """The answer field cannot be normalised; the message says why."""


#: Decorations stripped around integer answers before parsing (degree marks, math delimiters).
_INTEGER_DECORATIONS = re.compile(r"^\$+|\$+$|\^\s*\{?\\circ\}?|°|\\,|\s")


def exact(value: Any) -> str:
    if not isinstance(value, str):
        raise AnswerError(f"answer is {type(value).__name__} {value!r}, expected a string")
    return value.strip()


def integer(value: Any) -> str:
    if isinstance(value, bool):
        raise AnswerError(f"answer is a boolean {value!r}, expected an integer")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        raise AnswerError(f"answer {value!r} is not an integer")
    if isinstance(value, str):
        text = _INTEGER_DECORATIONS.sub("", value)
        if re.fullmatch(r"-?\d+", text):
            return str(int(text))
        raise AnswerError(f"answer {value!r} is not an integer")
    raise AnswerError(f"answer is {type(value).__name__} {value!r}, expected an integer")


def number(value: Any) -> str:
    if isinstance(value, bool):
        raise AnswerError(f"answer is a boolean {value!r}, expected a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AnswerError(f"answer {value!r} is not a finite number")
        return str(int(value)) if value.is_integer() else repr(value)
    return exact(value)


def latex_list(value: Any) -> str:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise AnswerError(f"answer is {type(value).__name__} {value!r}, expected a non-empty list of strings")
    parts = []
    for part in value:
        if not isinstance(part, str):
            raise AnswerError(f"answer list holds {type(part).__name__} {part!r}, expected strings")
        stripped = part.strip().strip("$").strip()
        if not stripped:
            raise AnswerError(f"answer list {value!r} holds an empty part")
        parts.append(stripped)
    return ", ".join(parts)


def boxed_in_solution(solution: Any) -> str:
    if not isinstance(solution, str):
        raise AnswerError(f"solution is {type(solution).__name__}, expected a string with a \\boxed{{}} answer")
    content = last_boxed(solution)
    if content is None or not content.strip():
        raise AnswerError("solution has no complete \\boxed{...} answer")
    return content.strip()


#: The rules by name (what the registry's ``answer_rule`` takes).
ANSWER_RULES: dict[str, Callable[[Any], str]] = {
    "exact": exact,
    "integer": integer,
    "number": number,
    "latex_list": latex_list,
    "boxed_in_solution": boxed_in_solution,
}
