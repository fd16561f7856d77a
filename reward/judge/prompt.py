"""The judge prompt (a versioned template file) and the parser of the judge's answer.

Rendering: :class:`PromptTemplate` fills ``reward/judge/prompts/step_judge_<version>.txt`` (format in
``prompts/README.md``) with the problem, the reference (solution and answer, the answer alone, or nothing)
and the response as numbered ``<step number="k">`` blocks. Every inserted text is escaped
(:func:`escape_quoted`) so it cannot open or close one of the template's tags: the response is quoted
data, and text in it that addresses the judge is not an instruction. Escaping also catches tags that only
*look* like the template's: a ``<``-like character (``<``, fullwidth ``＜``, small ``﹤``, ``‹``, ``〈``, …),
then any whitespace, ``/``-like characters and invisible characters (Unicode categories Cc, Cf, Mn, Me:
zero-width spaces and joiners, soft hyphens, combining marks), then a name that equals a tag name once it
is NFKD-normalised, stripped of invisible characters and case-folded (``＜/ｓｏｌｕｔｉｏｎ``,
``</sol\u200bution``). Only the ``<``-like character is replaced (by ``&lt;``); the rest stays verbatim,
and text that looks like no tag (``x < 3``) is not touched.

Parsing (:func:`parse_verdict`): the leading reasoning is removed (:func:`strip_reasoning`); then the last
non-empty line must be ``VERDICT: <k>`` or ``VERDICT: none`` (case-insensitive; Markdown emphasis,
a leading ``>``/``#`` and a trailing period are tolerated, as is ``step`` before the number). Anything else
is a ``parse_error``; a number outside ``1..K`` (however many digits it has) is ``out_of_range``. Taking
only the *final* line means a verdict that the judge quotes from the response (or writes mid-way and then
revises) never counts.

Reasoning rule: only reasoning at the *start* of the reply is reasoning.

* The judge opened it: the reply starts (after whitespace) with ``<think>``; the block ends at the first
  ``</think>`` after it. Blocks that follow one another at the start are all reasoning. A block that never
  closes means the judge ran out of tokens: the whole reply is reasoning, and there is no verdict.
* The chat template opened it: the reply does not start with ``<think>`` but contains ``</think>``; the
  text up to the first ``</think>`` is reasoning (then judge-opened blocks right after it, as above).

Everything after the leading reasoning is the answer, verbatim: a ``<think>`` or ``</think>`` quoted in it
(from the response, say) is text and cannot cut off the verdict line after it. Tags are matched
case-insensitively. Both functions are linear in the reply's length (1 MB, or 200 000 ``<think>`` tags,
take milliseconds).
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from reward.judge.failures import EMPTY_RESPONSE, OUT_OF_RANGE, PARSE_ERROR, JudgeFailure

#: Folder of the versioned templates.
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"

#: Tags of the template that inserted text must not be able to open or close (``<step number="k">`` is
#: written by :meth:`PromptTemplate.render`).
TAG_NAMES = frozenset({"solution", "step", "problem", "reference_solution"})
#: Characters read as ``<``: those whose NFKC form is ``<`` (``<``, U+FE64, U+FF1C) and the angle-bracket
#: look-alikes ‹ (U+2039), 〈 (U+2329), 〈 (U+3008), ⟨ (U+27E8), ˂ (U+02C2), ᐸ (U+1438), ❬ (U+276C),
#: ❮ (U+276E), ⧼ (U+29FC).
LESS_THAN_LIKE = "<\ufe64\uff1c\u2039\u2329\u3008\u27e8\u02c2\u1438\u276c\u276e\u29fc"
#: Characters read as ``/`` between ``<`` and a tag name: those whose NFKC form is ``/`` (``/``, U+FF0F)
#: and the look-alikes ⁄ (U+2044), ∕ (U+2215), ⧸ (U+29F8), ╱ (U+2571), ⟋ (U+27CB).
SLASH_LIKE = "/\uff0f\u2044\u2215\u29f8\u2571\u27cb"
#: Unicode categories of characters that are invisible or attach to the one before: controls, format
#: characters (zero-width space/joiners, soft hyphen, BOM, word joiner), nonspacing and enclosing marks.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Mn", "Me"})
#: Longest tail of an unparsable final line, and longest head of an out-of-range number, quoted in a
#: failure detail (characters).
QUOTE_CHARS = 80

_SECTION = re.compile(r"^=== (\w+) ===[ \t]*$", re.MULTILINE)
_REQUIRED_SECTIONS = ("user", "reference_solution", "reference_answer_only", "no_reference")
_PLACEHOLDER = re.compile(r"\{(problem|reference|steps|solution|answer)\}")
_THINK_OPEN_HERE = re.compile(r"\s*<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_VERDICT_LINE = re.compile(
    r"^[\s>#*_`]*verdict[\s*_`]*[:：][\s*_`]*(?:step\s*)?(none|\d+)[\s*_`.]*$", re.IGNORECASE
)


def _character_class(categories: frozenset[str]) -> str:
    """A regex character-class body (``\\Uxxxxxxxx-\\Uxxxxxxxx`` ranges) of every code point in ``categories``."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x110000):
        if unicodedata.category(chr(code)) in categories:
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(f"\\U{first:08x}-\\U{last:08x}" for first, last in ranges)


@functools.cache
def _tag_like() -> re.Pattern[str]:
    # Built on first use (one pass over the Unicode database, ~0.2 s), not at import.
    invisible = _character_class(INVISIBLE_CATEGORIES)
    connectors = _character_class(frozenset({"Pc"}))  # _ and its look-alikes (fullwidth ＿, ﹍, …)
    # The name starts with a visible word character, so ``between`` and ``name`` never compete for a
    # character: a failed match costs one pass over the run after the ``<``, and the scan stays linear.
    return re.compile(
        f"[{re.escape(LESS_THAN_LIKE)}]"
        f"(?P<between>[\\s{re.escape(SLASH_LIKE)}{invisible}]*)"
        f"(?P<name>[\\w{connectors}][\\w{connectors}{invisible}]*)"
    )


def _folded_name(name: str) -> str:
    """``name`` as compared with :data:`TAG_NAMES`: NFKD, invisible characters removed, case-folded."""
    decomposed = unicodedata.normalize("NFKD", name)
    visible = "".join(char for char in decomposed if unicodedata.category(char) not in INVISIBLE_CATEGORIES)
    return unicodedata.normalize("NFKC", visible).casefold()


def escape_quoted(text: str) -> str:
    """Neutralise the template's tags and their look-alikes inside inserted text (``<step`` → ``&lt;step``,
    ``＜/solution`` → ``&lt;/solution``); see the module docstring for what counts as a tag."""
    def neutralise(match: re.Match[str]) -> str:
        if _folded_name(match.group("name")) in TAG_NAMES:
            return "&lt;" + match.group("between") + match.group("name")
        return match.group(0)

    return _tag_like().sub(neutralise, text)


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
        _tag_like()  # built here, when a judge is set up, so its first call never blocks the event loop
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


def _answer_start(output: str) -> int | None:
    """Index where the answer starts after the leading reasoning, or None when the reasoning never closes."""
    position = 0
    if _THINK_OPEN_HERE.match(output) is None:
        template_opened = _THINK_CLOSE.search(output)
        if template_opened is not None:
            position = template_opened.end()
    while (opened := _THINK_OPEN_HERE.match(output, position)) is not None:
        closed = _THINK_CLOSE.search(output, opened.end())
        if closed is None:
            return None
        position = closed.end()
    return position


def strip_reasoning(output: str) -> str:
    """The answer: ``output`` without its leading reasoning (the rule is in the module docstring); empty
    when the reasoning never closes. Linear in ``len(output)``."""
    start = _answer_start(output)
    return "" if start is None else output[start:]


def _step_number(digits: str, num_steps: int) -> int:
    """The step named by ``digits`` (any Unicode decimal digits), checked against ``1..num_steps``.

    Raises:
        JudgeFailure: ``out_of_range``, also for numbers too long to convert (thousands of digits).
    """
    significant = "".join(str(unicodedata.digit(char)) for char in digits).lstrip("0")
    if len(significant) > len(str(num_steps)):  # larger than num_steps without converting it
        shown = significant
        if len(shown) > QUOTE_CHARS:
            shown = f"{significant[:QUOTE_CHARS]}… ({len(significant)} digits)"
        raise JudgeFailure(OUT_OF_RANGE, f"step {shown} outside 1..{num_steps}")
    step = int(significant or "0")
    if not 1 <= step <= num_steps:
        raise JudgeFailure(OUT_OF_RANGE, f"step {step} outside 1..{num_steps}")
    return step


def parse_verdict(output: str | None, num_steps: int) -> int | None:
    """The first incorrect step ``k`` (1-based) named by the judge's final line, or None for ``none``.
    Linear in ``len(output)``.

    Raises:
        JudgeFailure: ``empty_response`` (no text), ``parse_error`` (no final verdict line),
            ``out_of_range`` (``k`` outside ``1..num_steps``).
    """
    if output is None or not output.strip():
        raise JudgeFailure(EMPTY_RESPONSE, "the judge returned no text")
    answer = strip_reasoning(output).rstrip()
    if not answer:
        raise JudgeFailure(PARSE_ERROR, "nothing after the reasoning block")
    last_line = answer.splitlines()[-1]  # non-empty: the answer ends in a non-space character
    match = _VERDICT_LINE.match(last_line)
    if match is None:
        raise JudgeFailure(PARSE_ERROR, f"last line is not a verdict: {last_line[-QUOTE_CHARS:]!r}")
    value = match.group(1)
    if value.lower() == "none":
        return None
    return _step_number(value, num_steps)
