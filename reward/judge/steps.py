"""Step segmentation: the default rule (one step per paragraph), with the character span of every step.

Rule (deterministic; settings in :class:`reward.judge.config.StepsConfig`):

1. **Judged part.** For a response with a ``<think>…</think>`` block, ``think_part`` picks the text after
   ``</think>`` (``answer``, default; falls back to the thinking when that is empty or the block never
   closes), the thinking (``think``) or everything (``all``).
2. **Protected blocks.** Display math (``$$…$$``, ``\\[…\\]``), every ``\\begin{env}…\\end{env}`` (nested
   environments of the same name counted) and fenced code (````` ``` ````` or ``~~~``) are never split.
   An unclosed block runs to the end of the text.
3. **Split** on blank lines outside protected blocks; when that gives one chunk, on single newlines.
4. **Merge short fragments**: a chunk shorter than ``min_step_chars`` characters (leading and trailing
   whitespace not counted) is merged into the following chunk (the last one into the preceding chunk).
   With the default 8, ``Step 1:`` joins the step it announces while ``17 + 5 = 22`` stands alone.
5. **Cap**: more than ``max_steps`` chunks are merged in order into ``max_steps`` groups whose sizes differ
   by at most one (the first ``n mod max_steps`` groups get the extra chunk).

Each :class:`Step` keeps ``start``/``end``: character offsets of its (stripped) text in the *full response*;
the text between steps is whitespace only, so no character of the judged part is lost.
:func:`step_token_spans` maps the spans onto the response's tokens, and :func:`step_weights` gives the
per-step token counts of the token-weighted RTS.

Cost: linear in the response length for every input shape (``tests/benchmarks/bench_judge_text.py``
prints seconds per KB from 1 KB to 1 MB). Each protected block is found by one forward scan that resumes
where the previous block ended, its closing marker by a scan that stops at that marker (nothing is
re-scanned or copied per block), and a split point is tested against the blocks by binary search.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

#: Think-block markers of reasoning models (DeepSeek-R1, QwQ, Qwen3).
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

_BLANK_LINE = re.compile(r"\n[ \t]*\n\s*")
_NEWLINE = re.compile(r"\n\s*")
# The opening of any protected block. One alternation, so that a single forward scan finds the earliest
# block of any kind (a fence and a math opener can never start at the same character).
_BLOCK_OPENER = re.compile(
    r"(?P<fence>^[ \t]*(?P<marker>`{3,}|~{3,}))"
    r"|(?P<dollars>\$\$)|(?P<bracket>\\\[)|(?P<begin>\\begin\{(?P<env>[^{}]+)\})",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Step:
    """One step of a response.

    Attributes:
        index: 1-based position.
        text: the step's text (leading/trailing whitespace removed).
        start: character offset of ``text`` in the full response.
        end: character offset one past its last character.
    """

    index: int
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Segmentation:
    """The steps of a response and which part of it was judged.

    Attributes:
        steps: the steps, in order (empty when the judged part is blank).
        part: ``all``, ``answer`` or ``think``: the part that was split (``all`` without a think block).
        part_start: character offset of the judged part in the response.
        part_end: one past its end.
    """

    steps: tuple[Step, ...]
    part: str
    part_start: int
    part_end: int

    @property
    def texts(self) -> list[str]:
        return [step.text for step in self.steps]


def judged_part(response: str, think_part: str = "answer") -> tuple[str, int, int]:
    """Return ``(part, start, end)``: which part of ``response`` is judged and its character range."""
    close = response.rfind(THINK_CLOSE)
    opened = response.find(THINK_OPEN)
    if close < 0 and opened < 0:
        return "all", 0, len(response)
    if think_part == "all":
        return "all", 0, len(response)
    think_start = opened + len(THINK_OPEN) if 0 <= opened and (close < 0 or opened < close) else 0
    if close < 0:  # the block never closed (truncated): there is no answer part, only thinking
        return "think", think_start, len(response)
    answer_start = close + len(THINK_CLOSE)
    if think_part == "answer" and response[answer_start:].strip():
        return "answer", answer_start, len(response)
    return "think", think_start, close


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Character ranges of display math, LaTeX environments and fenced code blocks (never split).

    The ranges are sorted and disjoint. A block opener inside an earlier block is part of that block.
    """
    spans: list[tuple[int, int]] = []
    position = 0
    while True:
        opener = _BLOCK_OPENER.search(text, position)
        if opener is None:
            return spans
        start = opener.start()
        end = _fence_end(text, opener) if opener.group("fence") else _math_end(text, opener)
        spans.append((start, end))
        position = max(end, start + 1)


def _fence_end(text: str, fence: re.Match[str]) -> int:
    """End of a fenced code block: its closing line (same character, at least as long), else the text's end."""
    marker = fence.group("marker")
    line_end = text.find("\n", fence.end())
    if line_end < 0:
        return len(text)
    closing = re.compile(rf"^[ \t]*{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$", re.MULTILINE)
    match = closing.search(text, line_end + 1)
    return match.end() if match else len(text)


def _math_end(text: str, opener: re.Match[str]) -> int:
    """End of a display-math block or a ``\\begin{env}`` environment (same-name nesting counted)."""
    if opener.group("dollars"):
        close = text.find("$$", opener.end())
        return close + 2 if close >= 0 else len(text)
    if opener.group("bracket"):
        close = text.find("\\]", opener.end())
        return close + 2 if close >= 0 else len(text)
    markers = re.compile(rf"\\(begin|end)\{{{re.escape(opener.group('env'))}\}}")
    depth = 1
    for match in markers.finditer(text, opener.end()):  # scans in place: no copy of the rest of the text
        depth += 1 if match.group(1) == "begin" else -1
        if depth == 0:
            return match.end()
    return len(text)


def _inside(position: int, protected: list[tuple[int, int]], starts: list[int]) -> bool:
    """Whether ``position`` lies in one of the sorted, disjoint ``protected`` ranges (binary search)."""
    index = bisect.bisect_right(starts, position) - 1
    return index >= 0 and position < protected[index][1]


def _split(text: str, separator: re.Pattern[str], protected: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Ranges between separators that do not start inside a protected span."""
    starts = [start for start, _ in protected]
    cuts = [(match.start(), match.end()) for match in separator.finditer(text)
            if not _inside(match.start(), protected, starts)]
    ranges, position = [], 0
    for cut_start, cut_end in cuts:
        ranges.append((position, cut_start))
        position = cut_end
    ranges.append((position, len(text)))
    return [(start, end) for start, end in ranges if not _blank(text, start, end)]


def _blank(text: str, start: int, end: int) -> bool:
    return not text[start:end].strip()


def _weight(text: str) -> int:
    return len(text.strip())


def _merge_short(ranges: list[tuple[int, int]], text: str, min_chars: int) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    pending_start: int | None = None
    for start, end in ranges:
        if pending_start is not None:
            start, pending_start = pending_start, None
        if _weight(text[start:end]) < min_chars:
            pending_start = start
            continue
        merged.append((start, end))
    if pending_start is not None:  # a short tail joins the previous step (or stays alone if it is all)
        if merged:
            merged[-1] = (merged[-1][0], ranges[-1][1])
        else:
            merged.append((pending_start, ranges[-1][1]))
    return merged


def _cap(ranges: list[tuple[int, int]], max_steps: int) -> list[tuple[int, int]]:
    if len(ranges) <= max_steps:
        return ranges
    base, extra = divmod(len(ranges), max_steps)
    grouped, position = [], 0
    for group in range(max_steps):
        size = base + (1 if group < extra else 0)
        grouped.append((ranges[position][0], ranges[position + size - 1][1]))
        position += size
    return grouped


def split_steps(text: str, max_steps: int = 30, min_step_chars: int = 8, offset: int = 0) -> list[Step]:
    """Split ``text`` into steps by the rule above; offsets are shifted by ``offset``."""
    protected = protected_spans(text)
    ranges = _split(text, _BLANK_LINE, protected)
    if len(ranges) <= 1:
        ranges = _split(text, _NEWLINE, protected)
    ranges = _cap(_merge_short(ranges, text, min_step_chars), max_steps)
    steps = []
    for index, (start, end) in enumerate(ranges, start=1):
        chunk = text[start:end]
        lead = len(chunk) - len(chunk.lstrip())
        stripped = chunk.strip()
        steps.append(Step(index, stripped, offset + start + lead, offset + start + lead + len(stripped)))
    return steps


def segment_response(response: str, max_steps: int = 30, min_step_chars: int = 8,
                     think_part: str = "answer") -> Segmentation:
    """Segment a policy response: choose the judged part, then :func:`split_steps` it."""
    part, start, end = judged_part(response, think_part)
    steps = split_steps(response[start:end], max_steps, min_step_chars, offset=start)
    return Segmentation(tuple(steps), part, start, end)


def judged_prefix(segmentation: Segmentation, max_chars: int) -> Segmentation:
    """The leading steps whose texts add up to at most ``max_chars`` characters (what a judge is shown).

    At least one step is kept: a first step longer than ``max_chars`` is cut to its first ``max_chars``
    characters. Returns ``segmentation`` itself (the same object) when every step fits, so callers can tell
    with ``is`` whether the judge saw the whole response. Step indices stay those of the full segmentation.
    """
    total, count = 0, 0
    for step in segmentation.steps:
        total += len(step.text)
        if total > max_chars:
            break
        count += 1
    if count == len(segmentation.steps):
        return segmentation
    if count == 0:
        first = segmentation.steps[0]
        text = first.text[:max_chars].rstrip()
        kept: tuple[Step, ...] = (Step(first.index, text, first.start, first.start + len(text)),)
    else:
        kept = segmentation.steps[:count]
    return Segmentation(kept, segmentation.part, segmentation.part_start, kept[-1].end)


def segmentation_from_steps(steps: Sequence[str], separator: str = "\n\n") -> tuple[str, Segmentation]:
    """Build a response text and its segmentation from given steps (ProcessBench-style data)."""
    pieces, built, position = [], [], 0
    for index, text in enumerate(steps, start=1):
        if pieces:
            pieces.append(separator)
            position += len(separator)
        pieces.append(text)
        built.append(Step(index, text, position, position + len(text)))
        position += len(text)
    response = "".join(pieces)
    return response, Segmentation(tuple(built), "all", 0, len(response))


def _owned_ranges(segmentation: Segmentation) -> list[tuple[int, int]]:
    """Character range each step owns: from its start to the next step's start (the last: the part's end)."""
    bounds = [step.start for step in segmentation.steps[1:]] + [segmentation.part_end]
    return [(step.start, end) for step, end in zip(segmentation.steps, bounds)]


def step_token_spans(segmentation: Segmentation, token_offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Token span ``[first, last)`` of each step: the tokens whose start character lies in the step's owned
    range (``token_offsets`` are the response tokens' character offsets, in order)."""
    token_starts = [start for start, _ in token_offsets]
    return [(bisect.bisect_left(token_starts, start), bisect.bisect_left(token_starts, end))
            for start, end in _owned_ranges(segmentation)]


def step_weights(segmentation: Segmentation, token_offsets: Sequence[tuple[int, int]] | None) -> list[float]:
    """Weight of each step for the token-weighted RTS.

    A step owns the tokens whose start lies in ``[step.start, next_step.start)`` (the last step: up to the
    judged part's end), so the separators count with the step before them. Without token offsets the
    weights are the same ranges' character counts.
    """
    if token_offsets is None:
        return [float(end - start) for start, end in _owned_ranges(segmentation)]
    ordered = sorted(token_offsets)
    return [float(last - first) for first, last in step_token_spans(segmentation, ordered)]
