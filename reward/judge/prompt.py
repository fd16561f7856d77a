"""The judge prompt (a versioned template file) and the parser of the judge's answer.

Rendering: :class:`PromptTemplate` fills ``reward/judge/prompts/step_judge_<version>.txt`` (format in
``prompts/README.md``) with the problem, the reference (solution and answer, the answer alone, or nothing)
and the response as numbered ``<step number="k">`` blocks. Every inserted text is escaped so it cannot
open or close one of the template's tags: the response is quoted data, and text in it that addresses the
judge is not an instruction.

Parsing (:func:`parse_verdict`): reasoning blocks (``<think>…</think>``) are removed first; then the last
non-empty line must be ``VERDICT: <k>`` or ``VERDICT: none`` (case-insensitive; Markdown emphasis,
a leading ``>``/``#`` and a trailing period are tolerated, as is ``step`` before the number). Anything else
is a ``parse_error``; a number outside ``1..K`` is ``out_of_range``. Taking only the *final* line means a
verdict that the judge quotes from the response (or writes mid-way and then revises) never counts.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from reward.judge.failures import EMPTY_RESPONSE, OUT_OF_RANGE, PARSE_ERROR, JudgeFailure

#: Folder of the versioned templates.
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"

_SECTION = re.compile(r"^=== (\w+) ===[ \t]*$", re.MULTILINE)
_REQUIRED_SECTIONS = ("user", "reference_solution", "reference_answer_only", "no_reference")
_PLACEHOLDER = re.compile(r"\{(problem|reference|steps|solution|answer)\}")
# Tags of the template that inserted text must not be able to open or close.
_TAG = re.compile(r"<(\s*/?\s*)(solution|step|problem|reference_solution)\b", re.IGNORECASE)
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_VERDICT_LINE = re.compile(
    r"^[\s>#*_`]*verdict[\s*_`]*[:：][\s*_`]*(?:step\s*)?(none|\d+)[\s*_`.]*$", re.IGNORECASE
)


def escape_quoted(text: str) -> str:
    """Neutralise the template's own tags inside inserted text (``<step`` → ``&lt;step``)."""
    return _TAG.sub(lambda match: "&lt;" + match.group(1) + match.group(2), text)


def _fill(template: str, values: dict[str, str]) -> str:
    # One pass: text inserted for one placeholder is never scanned for another.
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), template)


@dataclass(frozen=True)
class PromptTemplate:
    """One version of the judge prompt.

    Attributes:
        version: the version name (``v1``) or the custom file's stem.
        sections: the template's sections by name.
        sha256: hash of the file, recorded in benchmark outputs so a result names its exact prompt.
    """

    version: str
    sections: dict[str, str]
    sha256: str

    @classmethod
    def load(cls, version: str = "v1", path: str | Path | None = None) -> PromptTemplate:
        """Load ``prompts/step_judge_<version>.txt`` or a custom ``path``.

        Raises:
            ValueError: the version does not exist or the file lacks a required section.
        """
        file = Path(path) if path is not None else PROMPTS_DIR / f"step_judge_{version}.txt"
        if not file.is_file():
            known = sorted(p.stem.removeprefix("step_judge_") for p in PROMPTS_DIR.glob("step_judge_*.txt"))
            raise ValueError(f"judge prompt {file} not found; known versions: {', '.join(known)}")
        raw = file.read_text(encoding="utf-8")
        names = _SECTION.findall(raw)
        bodies = _SECTION.split(raw)[2::2]
        sections = {name: body.strip("\n") for name, body in zip(names, bodies)}
        missing = [name for name in _REQUIRED_SECTIONS if name not in sections]
        if missing:
            raise ValueError(f"judge prompt {file} lacks the section(s) {', '.join(missing)} (see prompts/README.md)")
        name = version if path is None else file.stem
        return cls(name, sections, hashlib.sha256(raw.encode("utf-8")).hexdigest())

    def render(self, problem: str, steps: list[str], reference_answer: str | None,
               reference_solution: str | None) -> str:
        """The user message for one response."""
        answer = escape_quoted((reference_answer or "").strip())
        if reference_solution and reference_solution.strip():
            reference = _fill(self.sections["reference_solution"],
                              {"solution": escape_quoted(reference_solution.strip()), "answer": answer})
        elif answer:
            reference = _fill(self.sections["reference_answer_only"], {"answer": answer})
        else:
            reference = self.sections["no_reference"]
        blocks = "\n".join(
            f'<step number="{number}">\n{escape_quoted(text)}\n</step>' for number, text in enumerate(steps, start=1)
        )
        return _fill(self.sections["user"], {"problem": escape_quoted(problem.strip()), "reference": reference,
                                              "steps": blocks})


def strip_reasoning(output: str) -> str:
    """Remove reasoning: ``<think>…</think>`` blocks; text up to a lone ``</think>`` (the chat template
    opened the block); everything from an unclosed ``<think>`` on (the judge ran out of tokens)."""
    text = _THINK_BLOCK.sub("", output)
    lowered = text.lower()
    close = lowered.rfind("</think>")
    if close >= 0:
        text = text[close + len("</think>"):]
        lowered = text.lower()
    opened = lowered.find("<think>")
    if opened >= 0:
        text = text[:opened]
    return text


def parse_verdict(output: str | None, num_steps: int) -> int | None:
    """The first incorrect step ``k`` (1-based) named by the judge's final line, or None for ``none``.

    Raises:
        JudgeFailure: ``empty_response`` (no text), ``parse_error`` (no final verdict line),
            ``out_of_range`` (``k`` outside ``1..num_steps``).
    """
    if output is None or not output.strip():
        raise JudgeFailure(EMPTY_RESPONSE, "the judge returned no text")
    answer = strip_reasoning(output)
    lines = [line for line in answer.splitlines() if line.strip()]
    if not lines:
        raise JudgeFailure(PARSE_ERROR, "nothing after the reasoning block")
    match = _VERDICT_LINE.match(lines[-1])
    if match is None:
        raise JudgeFailure(PARSE_ERROR, f"last line is not a verdict: {lines[-1][-80:]!r}")
    value = match.group(1).lower()
    if value == "none":
        return None
    step = int(value)
    if not 1 <= step <= num_steps:
        raise JudgeFailure(OUT_OF_RANGE, f"step {step} outside 1..{num_steps}")
    return step
