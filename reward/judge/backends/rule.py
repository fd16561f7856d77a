"""The rule-based step verifier of the synthetic multi-step arithmetic task (exact; no model).

Steps are the lines of the judged part that contain ``a op b = c`` (integers; ``op`` one of ``+``, ``-``,
``*``, ``×``, ``x``, ``·``; a minus sign may be ``-`` or ``−``). Other lines are not steps; for the
token-weighted RTS their text counts with the step before them (as separators do in :mod:`reward.judge.steps`),
and text before the first step counts with none. A step is wrong when any of its equations is false, or — with
``rule.check_reference_values`` (default) — when its result is not one of the reference solution's
intermediate values (the right arithmetic on the wrong numbers). With ``rule.answer_step`` (default) the
line of the final answer (the last ``\\boxed{}``) is a step too, the last one, wrong when the answer is not
the reference answer: a wrong answer after right lines is an error in the answer, not "no error found".
Text such as ``VERDICT: none`` inside the response is just a non-step line: the verifier reads nothing but
arithmetic.
"""

from __future__ import annotations

import asyncio
import re

from reward.answers import BOX_COMMANDS, canonical_answer, extract_final_answer
from reward.judge.base import JudgeRequest
from reward.judge.config import JudgeConfig
from reward.judge.steps import Segmentation, Step, judged_part, segmentation_from_steps

_NUMBER = r"[-−]?\d+"
#: One equation ``a op b = c``. The look-behind keeps a match from starting inside a number: otherwise
#: every position of a long digit run restarts the greedy ``\d+`` and a line of n digits costs n² steps
#: (a match found from inside a number is never one the number's own start would miss).
EQUATION = re.compile(rf"(?<!\d)({_NUMBER})\s*([+\-−*×x·])\s*({_NUMBER})\s*=\s*({_NUMBER})")


def _int(text: str) -> int:
    return int(text.replace("−", "-"))


def equations(line: str) -> list[tuple[int, str, int, int]]:
    """Every ``(a, op, b, c)`` on a line; ``op`` normalised to ``+``, ``-`` or ``*``."""
    found = []
    for a, op, b, c in EQUATION.findall(line):
        op = {"−": "-", "×": "*", "x": "*", "·": "*"}.get(op, op)
        found.append((_int(a), op, _int(b), _int(c)))
    return found


def _value(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def reference_values(reference_solution: str | None) -> set[int] | None:
    """Results of the reference solution's equations (None when it has none)."""
    values = {c for line in (reference_solution or "").splitlines() for (_, _, _, c) in equations(line)}
    return values or None


class RuleBackend:
    """Checks every arithmetic line exactly (see the module docstring)."""

    name = "rule"

    def __init__(self, config: JudgeConfig) -> None:
        self._steps = config.steps
        self._rule = config.rule
        self.empty_policy = "zero" if config.rule.no_steps == "zero" else "not_judged"
        self.fingerprint = (f"rule:check_reference_values={self._rule.check_reference_values}"
                            f":answer_step={self._rule.answer_step}")

    def segment(self, request: JudgeRequest) -> Segmentation:
        if request.steps is not None:
            text, full = segmentation_from_steps(request.steps)
            arithmetic = [step for step in full.steps if equations(step.text)]
            return Segmentation(tuple(Step(i, s.text, s.start, s.end) for i, s in enumerate(arithmetic, 1)),
                                "all", 0, len(text))
        part, start, end = judged_part(request.response, self._steps.think_part)
        steps = []
        answer_line = self._answer_line_start(request.response[start:end])
        for match in re.finditer(r"[^\n]+", request.response[start:end]):
            if equations(match.group(0)) or match.start() == answer_line:
                line = match.group(0)
                lead = len(line) - len(line.lstrip())
                stripped = line.strip()
                first = start + match.start() + lead
                steps.append(Step(len(steps) + 1, stripped, first, first + len(stripped)))
        return Segmentation(tuple(steps), part, start, end)

    def _answer_line_start(self, part: str) -> int | None:
        """Offset in ``part`` of the line holding the last box, when the answer is a step; else None."""
        if not self._rule.answer_step:
            return None
        box = max(part.rfind(command) for command in BOX_COMMANDS)
        return None if box < 0 else part.rfind("\n", 0, box) + 1

    def answer_is_wrong(self, text: str, reference_answer: str) -> bool:
        """Whether the step holding the final answer states another answer than the reference."""
        if not self._rule.answer_step or not any(command in text for command in BOX_COMMANDS):
            return False
        answer = extract_final_answer(text, think_mode="ignore").answer
        return answer is None or canonical_answer(answer) != canonical_answer(reference_answer)

    def step_is_wrong(self, text: str, allowed: set[int] | None) -> bool:
        for a, op, b, c in equations(text):
            if _value(a, op, b) != c:
                return True
            if allowed is not None and self._rule.check_reference_values and c not in allowed:
                return True
        return False

    def locate(self, request: JudgeRequest, segmentation: Segmentation) -> int | None:
        allowed = reference_values(request.reference_solution)
        last = len(segmentation.steps)
        for step in segmentation.steps:
            if self.step_is_wrong(step.text, allowed):
                return step.index
            if step.index == last and self.answer_is_wrong(step.text, request.reference_answer):
                return step.index
        return None

    async def first_error(self, request: JudgeRequest, segmentation: Segmentation) -> int | None:
        # off the event loop: a long response is CPU work that would stall every other coroutine
        return await asyncio.to_thread(self.locate, request, segmentation)

    async def aclose(self) -> None:
        return None
