"""Judge-training data: solutions labelled with their first wrong step, rendered as the judge sees them.

``python -m data_prep write judge`` turns labelled solutions into supervised examples for a step-wise
judge: the **user message is the project's own judge prompt** (``reward/judge/prompts/step_judge_<v>.txt``,
:class:`reward.judge.prompt.PromptTemplate`) holding the steps of the project's **own segmentation**
(:func:`reward.judge.steps.segment_response` with the default :class:`reward.judge.config.StepsConfig`:
the steps the judge is shown during SGPO training), and the **assistant message is the verdict line**
``VERDICT: k`` (the first wrong step, 1-based) or ``VERDICT: none`` — alone (default) or after a short
rationale, one line per step up to the first wrong one (``--judge-rationale steps``,
:meth:`JudgeExample.answer`). A judge fine-tuned on these rows
answers in exactly the format :func:`reward.judge.prompt.parse_verdict` reads.

Sources (registry entries in ``data_prep/registry.py``, kind ``judge``; ProcessBench is kind
``judge_benchmark``, written for evaluation and for the contamination check only):

* ``judge_prm800k`` — PRM800K (human ratings of every step of MATH solutions). A solution follows each
  step's chosen completion (else the human completion); the **first step rated −1 is the first error**.
  Phase-2 rows carry the whole pre-generated solution: when the rated steps are its prefix, the judge sees
  the whole solution (steps after the first error included, as in a real response). Rows whose labelling
  did not finish (``finish_reason`` ``give_up`` / ``bad_problem``) are excluded. Reference: the row's
  ``ground_truth_answer`` and, when the row has none of its own, the MATH reference solution joined by
  problem from the prepared ``math_train`` and ``math500`` files (``python -m data_prep write math_train
  math500`` first; rows without one fall back to the answer-only reference section).
* ``judge_math_shepherd`` — Math-Shepherd (automatic step labels: ``ки`` tags in ``input``, ``+``/``-`` at
  the same places in ``label``); the first ``-`` is the first error. It has no reference field: the
  reference answer is the final answer (``The answer is: X``) of a solution of the same problem whose last
  step is labelled ``+`` (Math-Shepherd labels a step ``+`` when completions from it reach the gold
  answer), and problems without such a solution get the no-reference section. It has one split; a
  deterministic share of its *problems* (:data:`HOLDOUT_SHARE`, by a hash of the problem) is written as
  ``test``, so no problem is in both splits.
* ``judge_arith`` — the CPU main job's arithmetic task (``data_prep.arith_policy.task_config``), solved in
  the policy's own format with errors injected at known steps: a slip (a wrong result, the next steps
  continuing from it), a wrong final box after right lines, or a bare wrong guess ``\\boxed{N}``; or no
  error. Its labels equal the rule verifier's (tested).
* ``judge_processbench`` — ProcessBench (``Qwen/ProcessBench``, splits ``gsm8k``, ``math``,
  ``olympiadbench``, ``omnimath``): steps as given and no reference, as ProcessBench's protocol has it.

Mapping a label onto the project's steps: the dataset's steps are joined (blank ones dropped) with the
source's separator into one response, which is segmented with the project's rule. The first wrong
dataset step maps to the project step that contains it; when it is split across several project steps
(a step with a blank line inside) the row is **excluded as unmappable** (the error could be in any part).
A row is also excluded when its label falls outside the judged prefix (``steps.max_judged_chars``), or
when it has no error but does not fit the prefix whole (no verdict could be given). Every exclusion is
counted by reason in the manifest.

Balance: each ``train`` split keeps as many correct as erroneous solutions (the larger class is
sub-sampled, seeded; ``PrepareOptions.judge_balance=False`` keeps all); held-out splits keep their
natural mix. The manifest reports both classes before and after, and the first-error positions.

Row schema (:data:`JUDGE_ROW_SCHEMA`): ``messages`` (what verl's ``MultiTurnSFTDataset`` reads:
``data.messages_key=messages``), the label ``first_error_step`` (null: no error), the judged ``steps``,
the segmented ``response`` and ``steps_as_given``, ``problem``, ``reference_answer``,
``reference_solution`` (what ``python -m reward.judge.benchmark --dataset judge_file`` needs to judge a
held-out row with any backend, as SGPO training would: the judge segments ``response`` itself, or takes
the steps as given) and provenance (``source_id``, ``source_first_error``: the label in the dataset's own
0-based step numbering).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from data_prep.checks import problem_key
from data_prep.schema import MESSAGE_TYPE, BadRowError, Record, data_source_for

#: Verdict lines of the target (the format ``reward.judge.prompt.parse_verdict`` reads).
VERDICT_NONE = "VERDICT: none"
#: Targets: the verdict line alone, or after a one-line-per-step rationale (:meth:`JudgeExample.answer`).
RATIONALES = ("none", "steps")
#: Characters of a step quoted in the ``steps`` rationale.
RATIONALE_STEP_CHARS = 80
#: Share of a single-split source's problems written as the held-out ``test`` split.
HOLDOUT_SHARE = 0.02
#: Hash buckets the hold-out share is drawn in (a problem is held out when its bucket < share * buckets).
HOLDOUT_BUCKETS = 10_000
#: Math-Shepherd's step tag in ``input`` and the two labels that replace it in ``label``.
SHEPHERD_TAG = "ки"
SHEPHERD_GOOD, SHEPHERD_BAD = "+", "-"
_SHEPHERD_FIRST_STEP = re.compile(r"Step 1\s*:")
_SHEPHERD_ANSWER = re.compile(r"The answer is\s*:?\s*(.+?)\s*$", re.DOTALL)
#: PRM800K's step rating of a wrong step, and the finish reasons whose labels are incomplete.
PRM800K_WRONG = -1
PRM800K_UNFINISHED = frozenset({"give_up", "bad_problem"})

JUDGE_ROW_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("messages", pa.list_(MESSAGE_TYPE)),
        ("first_error_step", pa.int64()),
        ("steps", pa.list_(pa.string())),
        ("response", pa.string()),
        ("steps_as_given", pa.bool_()),
        ("problem", pa.string()),
        ("reference_answer", pa.string()),
        ("reference_solution", pa.string()),
        ("source_id", pa.string()),
        ("source_first_error", pa.int64()),
        ("split", pa.string()),
        ("index", pa.int64()),
        ("dataset", pa.string()),
    ]
)


class Excluded(Exception):
    """A valid source row that cannot become an example; ``reason`` is its manifest category."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LabelledSolution:
    """A solution in its dataset's own steps.

    Attributes:
        problem: the problem text.
        steps: the dataset's steps, in order.
        first_error: 0-based index into ``steps`` of the first wrong step; None when no step is wrong.
        reference_answer: the reference final answer, or None.
        reference_solution: a worked reference solution, or None.
        source_id: the row's id in its dataset.
    """

    problem: str
    steps: tuple[str, ...]
    first_error: int | None
    reference_answer: str | None
    reference_solution: str | None
    source_id: str


@dataclass(frozen=True)
class JudgeExample:
    """One rendered example: the judge prompt's steps and the label in the project's step numbering.

    Attributes:
        solution: the labelled solution it came from.
        steps: the steps the judge is shown (the judged prefix of the project's segmentation).
        first_error_step: the label, 1-based in ``steps``; None when no step is wrong.
        response: the text that was segmented (the dataset's steps joined by the source's separator).
        steps_as_given: the steps are the dataset's own (ProcessBench), not the project's segmentation.
    """

    solution: LabelledSolution
    steps: tuple[str, ...]
    first_error_step: int | None
    response: str = ""
    steps_as_given: bool = False

    @property
    def target(self) -> str:
        return VERDICT_NONE if self.first_error_step is None else f"VERDICT: {self.first_error_step}"

    def answer(self, rationale: str = "none") -> str:
        """The assistant turn: the verdict line, after a short rationale when ``rationale="steps"``.

        The ``steps`` rationale walks the judged steps up to the first wrong one (all of them when none is),
        one line each: ``Step k: <the step's first line, at most RATIONALE_STEP_CHARS characters> - correct``
        (or ``- incorrect``). A small judge learns the decision one step at a time from it; the parser reads
        only the final ``VERDICT:`` line.
        """
        if rationale == "none":
            return self.target
        if rationale != "steps":
            raise ValueError(f"unknown judge rationale {rationale!r}; known: {', '.join(RATIONALES)}")
        last = self.first_error_step or len(self.steps)
        lines = []
        for number, text in enumerate(self.steps[:last], start=1):
            quoted = text.strip().splitlines()[0][:RATIONALE_STEP_CHARS] if text.strip() else ""
            mark = "incorrect" if number == self.first_error_step else "correct"
            lines.append(f"Step {number}: {quoted} - {mark}")
        return "\n".join([*lines, self.target])

    @property
    def record(self) -> Record:
        """The problem as the contamination check compares it (``source_index`` set by the caller)."""
        return Record(self.solution.problem, self.solution.reference_answer or "", None,
                      self.solution.source_id, 0)


@dataclass(frozen=True)
class RowContext:
    """What a source reader knows besides the row: its position, split and the joined references."""

    index: int
    split: str
    reference_answers: dict[str, str] = field(default_factory=dict)
    reference_solutions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JudgeSource:
    """How one source's rows become :class:`LabelledSolution` objects.

    Attributes:
        columns: top-level source columns read.
        parse: ``(row, context) -> LabelledSolution``; raises :class:`Excluded` or ``ValueError`` (a bad row).
        separator: text joining the dataset's steps into the response that is segmented.
        keep_source_steps: use the dataset's steps as they are (ProcessBench's protocol), not re-segment.
        collect_answers: optional first pass over the rows: problem key -> reference answer.
        join_math_solutions: join MATH reference solutions by problem (from the prepared MATH files).
        holdout_share: for a one-split source, the share of problems written as ``test`` (0: none).
    """

    columns: tuple[str, ...]
    parse: Callable[[dict[str, Any], RowContext], LabelledSolution]
    separator: str = "\n\n"
    keep_source_steps: bool = False
    collect_answers: Callable[[Iterable[dict[str, Any]]], dict[str, str]] | None = None
    join_math_solutions: bool = False
    holdout_share: float = 0.0


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} is {value!r:.80}, expected a non-empty string")
    return value.strip()


# -- PRM800K ---------------------------------------------------------------------------------------------------
def _prm800k_step(step: dict[str, Any], position: int, last: bool) -> tuple[str, int | None]:
    """The text and rating of the completion a PRM800K step continued with."""
    completions = step.get("completions") or []
    chosen = step.get("chosen_completion")
    if chosen is not None:
        if not 0 <= chosen < len(completions):
            raise ValueError(f"label.steps[{position}].chosen_completion {chosen} outside its {len(completions)} completions")
        completion = completions[chosen]
        return _text(completion.get("text"), f"label.steps[{position}] text"), completion.get("rating")
    human = step.get("human_completion")
    if human:
        return _text(human.get("text"), f"label.steps[{position}].human_completion text"), human.get("corrected_rating")
    wrong = [c for c in completions if c.get("rating") == PRM800K_WRONG]
    if last and wrong:  # labelling stopped at this step: every completion shown was wrong
        return _text(wrong[0].get("text"), f"label.steps[{position}] text"), PRM800K_WRONG
    raise Excluded("a step has no chosen, human or wrong-rated completion")


def prm800k_solution(row: dict[str, Any], context: RowContext) -> LabelledSolution:
    """A PRM800K row (``question``, ``label``) as a labelled solution; see the module docstring."""
    question, label = row.get("question") or {}, row.get("label") or {}
    finish = label.get("finish_reason")
    if finish in PRM800K_UNFINISHED:
        raise Excluded(f"finish_reason {finish} (labelling did not finish)")
    raw_steps = label.get("steps") or []
    if not raw_steps:
        raise Excluded("no labelled step")
    steps: list[str] = []
    first_error = None
    for position, step in enumerate(raw_steps):
        text, rating = _prm800k_step(step, position, last=position == len(raw_steps) - 1)
        steps.append(text)
        if rating == PRM800K_WRONG:
            first_error = position
            break
    if finish == "found_error" and first_error is None:
        raise Excluded("finish_reason found_error but no step rated -1")
    whole = [s.strip() for s in (question.get("pre_generated_steps") or []) if isinstance(s, str)]
    if whole and whole[: len(steps)] == steps and (first_error is not None or len(whole) == len(steps)):
        steps = whole
    problem = _text(question.get("problem"), "question.problem")
    solution = question.get("ground_truth_solution")
    if not (isinstance(solution, str) and solution.strip()):
        solution = context.reference_solutions.get(problem_key(problem))
    answer = question.get("ground_truth_answer")
    return LabelledSolution(problem, tuple(steps), first_error, answer.strip() if isinstance(answer, str) else None,
                            solution.strip() if isinstance(solution, str) else None,
                            f"{context.split}:{context.index}")


# -- Math-Shepherd ------------------------------------------------------------------------------------------------
def shepherd_steps(text: str, label: str) -> tuple[str, list[str], list[str]]:
    """Problem, steps and per-step labels of a Math-Shepherd row (``input`` with ``ки`` tags, ``label``
    with ``+``/``-`` in their places). Raises ``ValueError`` when the two texts do not line up."""
    start = _SHEPHERD_FIRST_STEP.search(text)
    if start is None:
        raise ValueError("input has no 'Step 1:'")
    pieces = text.split(SHEPHERD_TAG)
    marks, position = [], 0
    for piece in pieces[:-1]:
        if label[position: position + len(piece)] != piece:
            raise ValueError(f"label does not match input before tag {len(marks) + 1}")
        mark = label[position + len(piece): position + len(piece) + 1]
        if mark not in (SHEPHERD_GOOD, SHEPHERD_BAD):
            raise ValueError(f"tag {len(marks) + 1} is labelled {mark!r}, expected '+' or '-'")
        marks.append(mark)
        position += len(piece) + 1
    if not marks:
        raise ValueError(f"input has no {SHEPHERD_TAG!r} step tag")
    problem = text[: start.start()].strip()
    steps = [pieces[0][start.start():].strip(), *(piece.strip() for piece in pieces[1:-1])]
    return problem, steps, marks


def _shepherd_answer(step: str) -> str | None:
    found = _SHEPHERD_ANSWER.search(step)
    return found.group(1).strip() if found else None


def shepherd_reference_answers(rows: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Problem key -> the final answer of the first solution whose last step is labelled ``+``."""
    answers: dict[str, str] = {}
    for row in rows:
        try:
            problem, steps, marks = shepherd_steps(row.get("input") or "", row.get("label") or "")
        except ValueError:
            continue  # reported when the row itself is read
        answer = _shepherd_answer(steps[-1])
        if marks[-1] == SHEPHERD_GOOD and answer:
            answers.setdefault(problem_key(problem), answer)
    return answers


def math_shepherd_solution(row: dict[str, Any], context: RowContext) -> LabelledSolution:
    """A Math-Shepherd row (``input``, ``label``) as a labelled solution."""
    problem, steps, marks = shepherd_steps(_text(row.get("input"), "input"), _text(row.get("label"), "label"))
    if not problem:
        raise ValueError("input has no problem text before 'Step 1:'")
    first_error = marks.index(SHEPHERD_BAD) if SHEPHERD_BAD in marks else None
    return LabelledSolution(problem, tuple(steps), first_error, context.reference_answers.get(problem_key(problem)),
                            None, f"{context.split}:{context.index}")


# -- ProcessBench ---------------------------------------------------------------------------------------------------
def processbench_solution(row: dict[str, Any], context: RowContext) -> LabelledSolution:
    """A ProcessBench row (``id``, ``problem``, ``steps``, ``label``: 0-based earliest error or -1)."""
    steps = row.get("steps")
    if not isinstance(steps, (list, tuple)) or not steps or not all(isinstance(s, str) for s in steps):
        raise ValueError(f"steps is {steps!r:.80}, expected a list of strings")
    label = row.get("label")
    if not isinstance(label, int) or not -1 <= label < len(steps):
        raise ValueError(f"label {label!r} is not -1 or a step index below {len(steps)}")
    own_id = row.get("id")
    return LabelledSolution(_text(row.get("problem"), "problem"), tuple(steps), None if label < 0 else label, None,
                            None, str(own_id) if own_id is not None else f"{context.split}:{context.index}")


PRM800K = JudgeSource(columns=("question", "label"), parse=prm800k_solution, join_math_solutions=True)
MATH_SHEPHERD = JudgeSource(columns=("input", "label"), parse=math_shepherd_solution, separator="\n",
                            collect_answers=shepherd_reference_answers, holdout_share=HOLDOUT_SHARE)
PROCESSBENCH = JudgeSource(columns=("id", "problem", "steps", "label"), parse=processbench_solution,
                           keep_source_steps=True)


# -- the synthetic arithmetic task ----------------------------------------------------------------------------------
#: Kinds of arithmetic solutions and their shares: the three error kinds the main job's policy makes, and none.
ARITH_KINDS = {"correct": 0.5, "slip": 0.3, "wrong_box": 0.1, "guess": 0.1}


def arith_task_config() -> Any:
    """The main job's arithmetic task settings (``data_prep.arith_policy.task_config``: one source of truth)."""
    from data_prep.arith_policy import task_config

    return task_config()


def arith_solutions(sizes: dict[str, int], seed: int) -> dict[str, list[LabelledSolution]]:
    """Solutions of the main job's arithmetic task in the policy's format, errors at known steps, per split.

    Problems come from ``data_prep.arith`` with the main job's task settings (stream
    ``"<seed>:judge-<split>"``; a later split never repeats an earlier split's problem). Each solution is
    of a kind drawn with the shares of :data:`ARITH_KINDS`; a slip moves one step's result by 1..9 as the
    policy's pre-training slips do (``data_prep.arith_policy``) and the next steps continue from it.
    """
    from data_prep import arith
    from data_prep.arith_policy import ArithPolicyConfig

    config, max_error, seen = arith_task_config(), ArithPolicyConfig().max_error, set()
    by_split = {}
    for split, size in sizes.items():
        problems = arith.generate_problems(size, seed, split=f"judge-{split}", config=config, exclude=seen)
        seen.update(problem.expression for problem in problems)
        rng = random.Random(f"{seed}:judge-{split}:errors")
        by_split[split] = [
            _arith_solution(problem, rng.choices(list(ARITH_KINDS), list(ARITH_KINDS.values()))[0], rng, max_error,
                            config.max_value, f"judge_arith-s{seed}-{split}-{index}")
            for index, problem in enumerate(problems)
        ]
    return by_split


def _near(value: int, rng: random.Random, max_error: int, max_value: int) -> int:
    """A value other than ``value`` within ``max_error`` of it, inside ``[0, max_value]``."""
    return rng.choice([v for v in range(max(0, value - max_error), min(max_value, value + max_error) + 1) if v != value])


def _arith_solution(problem: Any, kind: str, rng: random.Random, max_error: int, max_value: int,
                    source_id: str) -> LabelledSolution:
    from data_prep.arith_policy import _wrong_result

    operations = [(op, operand) for _, op, operand, _ in problem.steps]
    lines, value, first_error = [], problem.steps[0][0], None
    slip_at = rng.randrange(len(operations)) if kind == "slip" else -1
    for position, (op, operand) in enumerate(operations):
        result = value + operand if op == "+" else value - operand
        if position == slip_at:
            wrong = _wrong_result(result, operations[position + 1:], rng, max_error, max_value)
            first_error = position if wrong != result else None  # no in-range slip: the solution stays right
            result = wrong
        lines.append(f"{value} {op} {operand} = {result}")
        value = result
    if kind == "wrong_box":
        value, first_error = _near(value, rng, max_error, max_value), len(lines)
    elif kind == "guess":
        lines, value, first_error = [], _near(problem.answer, rng, max_error, max_value), 0
    return LabelledSolution(problem.problem, (*lines, f"\\boxed{{{value}}}"), first_error, str(problem.answer),
                            problem.solution, source_id)


# -- rendering ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderSettings:
    """The judge prompt and step settings the examples are rendered with (recorded in the manifest)."""

    prompt_version: str = "v1"
    max_steps: int = 30
    min_step_chars: int = 8
    max_judged_chars: int = 24_000
    think_part: str = "answer"

    @classmethod
    def defaults(cls, prompt_version: str = "v1") -> RenderSettings:
        """The judge's default step settings (``reward.judge.config.StepsConfig``: one source of truth)."""
        from reward.judge.config import StepsConfig

        steps = StepsConfig()
        return cls(prompt_version, steps.max_steps, steps.min_step_chars, steps.max_judged_chars, steps.think_part)


def render(solution: LabelledSolution, settings: RenderSettings, separator: str = "\n\n",
           keep_source_steps: bool = False) -> JudgeExample:
    """The example of ``solution``: its project steps (the judged prefix) and its label mapped onto them.

    Raises :class:`Excluded` when the label cannot be mapped (see the module docstring).
    """
    from reward.judge.steps import judged_prefix, segment_response, segmentation_from_steps

    kept = [(position, text.strip()) for position, text in enumerate(solution.steps) if text.strip()]
    if solution.first_error is not None and solution.first_error not in {position for position, _ in kept}:
        raise Excluded("the first wrong step is blank")
    response, source = segmentation_from_steps([text for _, text in kept], separator)
    if keep_source_steps:
        segmentation = source
    else:
        segmentation = segment_response(response, settings.max_steps, settings.min_step_chars, settings.think_part)
    judged = judged_prefix(segmentation, settings.max_judged_chars)
    label = None
    if solution.first_error is not None:
        wrong = source.steps[[position for position, _ in kept].index(solution.first_error)]
        covering = [step.index for step in segmentation.steps if step.start < wrong.end and step.end > wrong.start]
        if len(covering) != 1:
            raise Excluded("the first wrong step is split across several project steps (unmappable)")
        label = covering[0]
        cut = judged.steps[-1].text != segmentation.steps[len(judged.steps) - 1].text  # a first step cut short
        if label > len(judged.steps) or (label == len(judged.steps) and cut):
            raise Excluded("the first wrong step lies beyond the judged prefix (steps.max_judged_chars)")
    elif judged is not segmentation:
        raise Excluded("no error, but the solution is longer than the judged prefix (no verdict possible)")
    return JudgeExample(solution, tuple(step.text for step in judged.steps), label, response, keep_source_steps)


def example_row(example: JudgeExample, template: Any, *, dataset: str, split: str, index: int,
                rationale: str = "none") -> dict[str, Any]:
    """The parquet row of an example (:data:`JUDGE_ROW_SCHEMA`); ``template`` is a ``PromptTemplate``."""
    solution = example.solution
    prompt = template.render(solution.problem, list(example.steps), solution.reference_answer,
                             solution.reference_solution)
    return {
        "data_source": data_source_for(dataset),
        "messages": [{"role": "user", "content": prompt},
                     {"role": "assistant", "content": example.answer(rationale)}],
        "first_error_step": example.first_error_step,
        "steps": list(example.steps),
        "response": example.response,
        "steps_as_given": example.steps_as_given,
        "problem": solution.problem,
        "reference_answer": solution.reference_answer,
        "reference_solution": solution.reference_solution,
        "source_id": solution.source_id,
        "source_first_error": solution.first_error,
        "split": split,
        "index": index,
        "dataset": dataset,
    }


# -- splits, de-duplication and balance -------------------------------------------------------------------------
def in_holdout(problem: str, share: float) -> bool:
    """Whether a problem belongs to the held-out split (a stable hash of its normalised text)."""
    digest = hashlib.sha256(problem_key(problem).encode()).digest()
    return int.from_bytes(digest[:8], "big") % HOLDOUT_BUCKETS < share * HOLDOUT_BUCKETS


def deduplicate(examples: list[JudgeExample]) -> tuple[list[JudgeExample], int]:
    """Keep the first example of each (problem, judged steps); returns the kept ones and the count removed."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    kept = []
    for example in examples:
        key = (problem_key(example.solution.problem), example.steps)
        if key not in seen:
            seen.add(key)
            kept.append(example)
    return kept, len(examples) - len(kept)


def class_counts(examples: Iterable[JudgeExample]) -> dict[str, Any]:
    """Correct and erroneous solutions, and how many have their first error at each step."""
    examples = list(examples)
    positions = Counter(e.first_error_step for e in examples if e.first_error_step is not None)
    erroneous = sum(positions.values())
    return {"correct": len(examples) - erroneous, "erroneous": erroneous,
            "first_error_step": {str(step): count for step, count in sorted(positions.items())}}


def balance(examples: list[JudgeExample], seed: str) -> list[JudgeExample]:
    """As many correct as erroneous examples: the larger class sub-sampled (seeded), the order kept."""
    correct = [i for i, e in enumerate(examples) if e.first_error_step is None]
    wrong = [i for i, e in enumerate(examples) if e.first_error_step is not None]
    smaller = min(len(correct), len(wrong))
    keep = set(random.Random(seed).sample(correct, smaller)) | set(random.Random(seed).sample(wrong, smaller))
    return [example for i, example in enumerate(examples) if i in keep]


def read_examples(rows: Iterator[dict[str, Any]], source: JudgeSource, settings: RenderSettings, *, dataset: str,
                  split: str, context: RowContext, drop_bad_rows: bool,
                  on_bad_row: Callable[[BadRowError], None]) -> tuple[list[tuple[int, JudgeExample]], Counter[str]]:
    """Parse and render every row; returns ``(source index, example)`` pairs and the exclusions by reason.

    A bad row raises :class:`BadRowError` (field ``label``), or is passed to ``on_bad_row`` with
    ``drop_bad_rows``.
    """
    examples, excluded = [], Counter()
    for index, row in enumerate(rows):
        row_context = RowContext(index, split, context.reference_answers, context.reference_solutions)
        try:
            solution = source.parse(row, row_context)
            examples.append((index, render(solution, settings, source.separator, source.keep_source_steps)))
        except Excluded as exclusion:
            excluded[exclusion.reason] += 1
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            bad = BadRowError(dataset, index, "label", f"{type(error).__name__}: {error}")
            if not drop_bad_rows:
                raise bad from None
            on_bad_row(bad)
    return examples, excluded
