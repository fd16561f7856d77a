"""The synthetic multi-step arithmetic task (``sgpo/arith``): the CPU demo's task, whose steps can be
checked exactly.

A problem applies ``k`` operations (``+``, ``-``, ``*``) left to right, starting from two literals::

    Compute ((17 + 5) * 3) - 8.

and its reference solution is one line per operation, each applying one operation to the previous
result (the first to the two literals)::

    17 + 5 = 22
    22 * 3 = 66
    66 - 8 = 58

with reference answer ``58``. The problem text tells the model to write exactly those lines and to end
with ``\\boxed{58}``, so a rule-based step verifier can check every ``a op b = c`` line and find the first
wrong one — the step-wise judge's job, done exactly.

Difficulty knobs (:class:`ArithConfig`): the number of operations per problem and the operand range.
Every intermediate value stays within ``[0, max_value]`` (subtractions never go negative, a product that
would leave the range is replaced by another operation), so short problems are within reach of a tiny
model. Generation is deterministic for a seed; each split draws from its own stream derived from the seed
(``"<seed>:<split>"``), and problems already in an earlier split are skipped, so train and val never share
a problem.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from data_prep.schema import Record, build_row
from data_prep.templates import DEFAULT_TEMPLATE, get_template

#: Registry name of the task (``data_source`` is ``sgpo/arith``).
DATASET_NAME = "arith"

#: Operations and how they combine two integers.
OPERATIONS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}

#: The answer-format instruction that is part of every arithmetic problem's text.
STEP_INSTRUCTION = (
    "Show each step on its own line as `a op b = c`, applying one operation to the previous result, "
    "then finish with \\boxed{N}, where N is the final result."
)

#: Draws per problem before giving up on finding a new one (the space is too small for the request).
MAX_DRAWS_PER_PROBLEM = 1000


@dataclass(frozen=True)
class ArithConfig:
    """Settings of the generator.

    Attributes:
        min_ops: Fewest operations in a problem (≥ 1). One operation is one solution line.
        max_ops: Most operations in a problem (≥ ``min_ops``). The count is drawn uniformly.
        min_operand: Smallest literal operand (≥ 0).
        max_operand: Largest literal operand.
        max_value: Every intermediate result stays within ``[0, max_value]``.
        operations: The operations drawn from (a subset of ``+ - *``).
    """

    min_ops: int = 2
    max_ops: int = 4
    min_operand: int = 1
    max_operand: int = 20
    max_value: int = 999
    operations: tuple[str, ...] = field(default=("+", "-", "*"))

    def __post_init__(self) -> None:
        if self.min_ops < 1 or self.max_ops < self.min_ops:
            raise ValueError(f"need 1 <= min_ops <= max_ops; got min_ops={self.min_ops}, max_ops={self.max_ops}")
        if self.min_operand < 0 or self.max_operand < self.min_operand:
            raise ValueError(f"need 0 <= min_operand <= max_operand; got {self.min_operand}, {self.max_operand}")
        if self.max_value < 2 * self.max_operand:
            raise ValueError(f"max_value ({self.max_value}) must be at least 2 * max_operand ({2 * self.max_operand})")
        unknown = set(self.operations) - set(OPERATIONS)
        if not self.operations or unknown:
            raise ValueError(f"operations must be a non-empty subset of {sorted(OPERATIONS)}; got {self.operations}")


@dataclass(frozen=True)
class ArithProblem:
    """One generated problem.

    Attributes:
        expression: The fully parenthesised expression, e.g. ``((17 + 5) * 3) - 8``.
        steps: ``(a, op, b, c)`` per operation, in order; ``c`` of one step is ``a`` of the next.
        answer: The final result (``c`` of the last step).
    """

    expression: str
    steps: tuple[tuple[int, str, int, int], ...]
    answer: int

    @property
    def problem(self) -> str:
        """The problem text (with its answer-format instruction)."""
        return f"Compute {self.expression}.\n{STEP_INSTRUCTION}"

    @property
    def solution(self) -> str:
        """The reference solution: one ``a op b = c`` line per step."""
        return "\n".join(f"{a} {op} {b} = {c}" for a, op, b, c in self.steps)


def _draw_problem(rng: random.Random, config: ArithConfig) -> ArithProblem:
    num_ops = rng.randint(config.min_ops, config.max_ops)
    value = rng.randint(config.min_operand, config.max_operand)
    expression = str(value)
    steps = []
    for position in range(num_ops):
        op, operand, result = _draw_step(rng, config, value)
        steps.append((value, op, operand, result))
        expression = f"{expression} {op} {operand}" if position == 0 else f"({expression}) {op} {operand}"
        value = result
    return ArithProblem(expression=expression, steps=tuple(steps), answer=value)


def _draw_step(rng: random.Random, config: ArithConfig, value: int) -> tuple[str, int, int]:
    """One operation on ``value`` whose result stays in ``[0, max_value]``."""
    for _ in range(MAX_DRAWS_PER_PROBLEM):
        op = rng.choice(config.operations)
        operand = rng.randint(config.min_operand, config.max_operand)
        result = OPERATIONS[op](value, operand)
        if 0 <= result <= config.max_value:
            return op, operand, result
    raise ValueError(f"no operation in {config.operations} keeps {value} within [0, {config.max_value}]")


def generate_problems(
    num_problems: int,
    seed: int,
    *,
    split: str = "train",
    config: ArithConfig | None = None,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[ArithProblem]:
    """``num_problems`` distinct problems for ``split``, deterministic for ``seed``.

    ``exclude`` holds expressions that must not appear (those of earlier splits).
    """
    if num_problems < 0:
        raise ValueError(f"num_problems must be >= 0, got {num_problems}")
    config = config or ArithConfig()
    rng = random.Random(f"{seed}:{split}")
    problems: list[ArithProblem] = []
    seen = set(exclude)
    draws = 0
    while len(problems) < num_problems:
        draws += 1
        if draws > MAX_DRAWS_PER_PROBLEM * max(num_problems, 1):
            raise ValueError(
                f"could only find {len(problems)} distinct problems of {num_problems} with {config}; "
                "widen the operand range or the operation count"
            )
        problem = _draw_problem(rng, config)
        if problem.expression not in seen:
            seen.add(problem.expression)
            problems.append(problem)
    return problems


def to_record(problem: ArithProblem, index: int, split: str, seed: int) -> Record:
    """The pipeline record of a generated problem (source id ``arith-s<seed>-<split>-<index>``)."""
    return Record(
        problem=problem.problem,
        answer=str(problem.answer),
        reference_solution=problem.solution,
        source_id=f"{DATASET_NAME}-s{seed}-{split}-{index}",
        source_index=index,
    )


def generate(
    num_problems: int,
    seed: int,
    *,
    split: str = "train",
    config: ArithConfig | None = None,
    template: str = DEFAULT_TEMPLATE,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """verl rows (``data_prep/schema.py``) of ``num_problems`` generated problems for ``split``."""
    prompt_template = get_template(template)
    rows = []
    for index, problem in enumerate(generate_problems(num_problems, seed, split=split, config=config, exclude=exclude)):
        record = to_record(problem, index, split, seed)
        prompt = prompt_template.messages(record.problem, answer_format_in_problem=True)
        rows.append(build_row(record, dataset=DATASET_NAME, split=split, index=index, prompt=prompt))
    return rows
