"""The dataset registry: every dataset the command knows is one :class:`DatasetSpec` entry here.

Adding a benchmark is one entry: its Hugging Face id, the split to read, which columns hold the problem,
answer, solution and id, and the answer rule (``data_prep/answers.py``). Field facts come from the
sources' own schemas on the hub; the committed fixtures under ``tests/fixtures/data_prep/`` hold a few
rows of each in that schema and the tests convert every entry from them.

Row counts in :attr:`DatasetSpec.expected_rows` are the sizes published for each source (before our
de-duplication); the command reports what it actually wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from data_prep.answers import ANSWER_RULES, AnswerError
from data_prep.judge_data import MATH_SHEPHERD, PRM800K, PROCESSBENCH, JudgeSource
from data_prep.schema import data_source_for

Kind = Literal["benchmark", "train", "judge", "judge_benchmark"]

#: DAPO-Math-17k wraps every problem in this prompt (its own "Answer:" format); we keep the bare problem.
DAPO_PROMPT_PREFIX = "Solve the following math problem step by step."
DAPO_PROMPT_SUFFIX = '\n\nRemember to put your answer on its own line after "Answer:".'

#: OpenR1-Math answers that are placeholders, not answers (proof problems, unextractable answers).
OPENR1_PLACEHOLDER_ANSWERS = frozenset({"notfound", "proof"})


def unwrap_dapo_prompt(prompt: Any) -> str:
    """The bare problem inside a DAPO-Math-17k ``prompt`` (a one-message chat list).

    DAPO's user message is ``<instruction paragraph>\\n\\n<problem>\\n\\nRemember to put your answer on its
    own line after "Answer:".``; anything else means the source changed, and is a bad row.
    """
    if not isinstance(prompt, (list, tuple)) or len(prompt) != 1 or not isinstance(prompt[0], dict):
        raise AnswerError(f"DAPO prompt is not a one-message chat list: {prompt!r:.200}")
    content = prompt[0].get("content")
    if not isinstance(content, str):
        raise AnswerError("DAPO prompt message has no string content")
    if not content.startswith(DAPO_PROMPT_PREFIX) or "\n\n" not in content:
        raise AnswerError(f"DAPO prompt does not start with {DAPO_PROMPT_PREFIX!r}")
    body = content.split("\n\n", 1)[1]
    if not body.endswith(DAPO_PROMPT_SUFFIX):
        raise AnswerError("DAPO prompt does not end with its 'Remember to put your answer ...' line")
    return body[: -len(DAPO_PROMPT_SUFFIX)].strip()


def openr1_exclusion(row: dict[str, Any]) -> str | None:
    """Why an OpenR1-Math row is excluded by rule (counted in the manifest), or ``None`` to keep it."""
    answer = row.get("answer")
    if isinstance(answer, str) and answer.strip().lower() in OPENR1_PLACEHOLDER_ANSWERS:
        return f"answer is the placeholder {answer.strip()!r} (proof or unextractable answer)"
    return None


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset the command can prepare.

    Attributes:
        name: Registry name: the output folder (``data/<name>/``), ``extra_info.dataset`` and, with the
            ``sgpo/`` prefix, ``data_source``.
        kind: ``benchmark`` (validation files), ``train`` (training files; checked for contamination
            against the benchmarks of the same run), ``judge`` (judge-training examples,
            ``data_prep/judge_data.py``; their ``train`` split is checked against the benchmarks and
            ProcessBench) or ``judge_benchmark`` (labelled judge-evaluation rows: ProcessBench).
        description: One line for ``python -m data_prep list``.
        hf_id: Hugging Face dataset id; ``None`` for a dataset generated locally.
        hf_config: Config (subset) name on the hub, or ``None`` for the default.
        splits: ``(source split, output split)`` pairs: benchmarks are written as ``test``, training
            sets as ``train`` whatever the source calls them.
        problem_field: Column with the problem text (dotted paths reach into structs).
        answer_field: Column with the answer; ``None`` when the answer rule reads the solution.
        answer_rule: Name of the answer normalisation rule (``data_prep/answers.py``).
        solution_field: Column with the worked solution, or ``None`` when the dataset has none.
        id_field: Column with the dataset's own id, or ``None``: then ``<source split>:<row>`` is used.
        has_reference_solutions: Whether rows carry a reference solution for the step-wise judge
            (``False``: ``extra_info.reference_solution`` is ``None`` and the judge falls back to the
            reference answer).
        answer_format_in_problem: The problem text already states the answer format, so templates add no
            instruction suffix.
        problem_transform: Turns the problem field into the bare problem (DAPO's wrapped prompt).
        exclusion: A documented rule excluding rows that are valid but unusable (counted, reported). It
            sees the row restricted to :attr:`source_columns`.
        expected_rows: Published source size per source split (informational).
        generated: Built by a local generator instead of read (``arith``, ``judge_arith``).
        judge_source: For ``judge``/``judge_benchmark`` entries read from a source: how its rows become
            labelled solutions (``data_prep/judge_data.py``); the field mapping above is then unused.
        data_files: ``{source split: file}`` read instead of the source's own split layout, when that
            layout cannot be read as a whole (PRM800K: its phase-1 and phase-2 files differ in schema).
    """

    name: str
    kind: Kind
    description: str
    hf_id: str | None
    splits: tuple[tuple[str, str], ...]
    problem_field: str = "problem"
    answer_field: str | None = "answer"
    answer_rule: str = "exact"
    solution_field: str | None = None
    id_field: str | None = None
    has_reference_solutions: bool = False
    hf_config: str | None = None
    answer_format_in_problem: bool = False
    problem_transform: Callable[[Any], str] | None = None
    exclusion: Callable[[dict[str, Any]], str | None] | None = None
    expected_rows: dict[str, int] = field(default_factory=dict)
    generated: bool = False
    judge_source: JudgeSource | None = None
    data_files: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.answer_rule not in ANSWER_RULES:
            raise ValueError(f"{self.name}: unknown answer rule {self.answer_rule!r}; known: {', '.join(ANSWER_RULES)}")
        if self.has_reference_solutions != (self.solution_field is not None) and not self.generated:
            raise ValueError(f"{self.name}: has_reference_solutions must match whether solution_field is set")

    @property
    def data_source(self) -> str:
        return data_source_for(self.name)

    @property
    def source_columns(self) -> tuple[str, ...]:
        """Top-level source columns the conversion reads (the rest are not loaded into Python)."""
        if self.judge_source is not None:
            return self.judge_source.columns
        names = [self.problem_field, self.answer_field, self.solution_field, self.id_field]
        return tuple(dict.fromkeys(n.split(".")[0] for n in names if n is not None))


_SPECS = (
    # ---- benchmarks (written as split "test") ----
    DatasetSpec(
        name="math500",
        kind="benchmark",
        description="MATH500: 500 MATH test problems (the PRM800K split)",
        hf_id="HuggingFaceH4/MATH-500",
        splits=(("test", "test"),),
        solution_field="solution",
        id_field="unique_id",
        has_reference_solutions=True,
        expected_rows={"test": 500},
    ),
    DatasetSpec(
        name="aime24",
        kind="benchmark",
        description="AIME 2024 I and II",
        hf_id="HuggingFaceH4/aime_2024",
        splits=(("train", "test"),),
        answer_rule="integer",
        solution_field="solution",
        id_field="id",
        has_reference_solutions=True,
        expected_rows={"train": 30},
    ),
    DatasetSpec(
        name="aime25",
        kind="benchmark",
        description="AIME 2025 I and II",
        hf_id="math-ai/aime25",
        splits=(("test", "test"),),
        answer_rule="integer",
        id_field="id",
        expected_rows={"test": 30},
    ),
    DatasetSpec(
        name="amc23",
        kind="benchmark",
        description="AMC 2023 (answers stored as numbers)",
        hf_id="math-ai/amc23",
        splits=(("test", "test"),),
        problem_field="question",
        answer_rule="number",
        expected_rows={"test": 40},
    ),
    DatasetSpec(
        name="minerva",
        kind="benchmark",
        description="Minerva Math (OCWCourses)",
        hf_id="math-ai/minervamath",
        splits=(("test", "test"),),
        problem_field="question",
        expected_rows={"test": 272},
    ),
    DatasetSpec(
        name="olympiadbench",
        kind="benchmark",
        description="OlympiadBench, English text-only maths (final_answer lists)",
        hf_id="math-ai/olympiadbench",
        splits=(("test", "test"),),
        problem_field="question",
        answer_field="final_answer",
        answer_rule="latex_list",
        expected_rows={"test": 675},
    ),
    DatasetSpec(
        name="hmmt_feb_2024",
        kind="benchmark",
        description="HMMT February 2024 (MathArena)",
        hf_id="MathArena/hmmt_feb_2024",
        splits=(("train", "test"),),
        id_field="problem_idx",
        expected_rows={"train": 30},
    ),
    DatasetSpec(
        name="hmmt_feb_2025",
        kind="benchmark",
        description="HMMT February 2025 (MathArena)",
        hf_id="MathArena/hmmt_feb_2025",
        splits=(("train", "test"),),
        id_field="problem_idx",
        expected_rows={"train": 30},
    ),
    # ---- training sets (written as split "train") ----
    DatasetSpec(
        name="math_train",
        kind="train",
        description="MATH train (lighteval); answer = last \\boxed{} of the solution",
        hf_id="DigitalLearningGmbH/MATH-lighteval",
        hf_config="default",
        splits=(("train", "train"),),
        answer_field=None,
        answer_rule="boxed_in_solution",
        solution_field="solution",
        has_reference_solutions=True,
        expected_rows={"train": 7500},
    ),
    DatasetSpec(
        name="deepscaler",
        kind="train",
        description="DeepScaleR-Preview (AIME/AMC/Omni-MATH/STILL)",
        hf_id="agentica-org/DeepScaleR-Preview-Dataset",
        splits=(("train", "train"),),
        solution_field="solution",
        has_reference_solutions=True,
        expected_rows={"train": 40315},
    ),
    DatasetSpec(
        name="openr1_math",
        kind="train",
        description="OpenR1-Math-220k default split; placeholder answers ('proof', 'notfound') excluded",
        hf_id="open-r1/OpenR1-Math-220k",
        hf_config="default",
        splits=(("train", "train"),),
        solution_field="solution",
        id_field="uuid",
        has_reference_solutions=True,
        exclusion=openr1_exclusion,
        expected_rows={"train": 93733},
    ),
    DatasetSpec(
        name="dapo_math_17k",
        kind="train",
        description="DAPO-Math-17k, de-duplicated; no reference solutions (judge uses the answer)",
        hf_id="BytedTsinghua-SIA/DAPO-Math-17k",
        splits=(("train", "train"),),
        problem_field="prompt",
        problem_transform=unwrap_dapo_prompt,
        answer_field="reward_model.ground_truth",
        id_field="extra_info.index",
        expected_rows={"train": 1791700},
    ),
    DatasetSpec(
        name="arith",
        kind="train",
        description="synthetic multi-step integer arithmetic, generated with a seed (the CPU demo's task)",
        hf_id=None,
        splits=(("train", "train"), ("val", "val")),
        has_reference_solutions=True,
        answer_format_in_problem=True,
        generated=True,
    ),
    # ---- judge-training examples and the judge benchmark (data_prep/judge_data.py) ----
    DatasetSpec(
        name="judge_prm800k",
        kind="judge",
        description="PRM800K phase 2: human step ratings of MATH solutions (first step rated -1 = first error)",
        hf_id="tasksource/PRM800K",
        splits=(("train", "train"), ("test", "test")),
        # Phase 1 (about 1 % of the rows: several completions per step) has another schema than phase 2,
        # so the hub layout cannot be read as one dataset; phase 2 is the part PRM work trains on.
        data_files={"train": "phase2_train.jsonl", "test": "phase2_test.jsonl"},
        answer_field=None,
        judge_source=PRM800K,
    ),
    DatasetSpec(
        name="judge_math_shepherd",
        kind="judge",
        description="Math-Shepherd automatic step labels (GSM8K/MATH; first '-' step = first error)",
        hf_id="peiyi9979/Math-Shepherd",
        splits=(("train", "train"),),
        answer_field=None,
        judge_source=MATH_SHEPHERD,
        expected_rows={"train": 444655},
    ),
    DatasetSpec(
        name="judge_arith",
        kind="judge",
        description="the CPU main job's arithmetic task with errors injected at known steps (generated)",
        hf_id=None,
        splits=(("train", "train"), ("test", "test")),
        answer_field=None,
        has_reference_solutions=True,
        generated=True,
    ),
    DatasetSpec(
        name="judge_processbench",
        kind="judge_benchmark",
        description="ProcessBench: earliest wrong step of model solutions (steps as given, no reference)",
        hf_id="Qwen/ProcessBench",
        splits=(("gsm8k", "gsm8k"), ("math", "math"), ("olympiadbench", "olympiadbench"), ("omnimath", "omnimath")),
        answer_field=None,
        judge_source=PROCESSBENCH,
        expected_rows={"gsm8k": 400, "math": 1000, "olympiadbench": 1000, "omnimath": 1000},
    ),
)

REGISTRY: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}

#: Names the CLI accepts for groups of datasets.
GROUPS: dict[str, tuple[str, ...]] = {
    "benchmarks": tuple(s.name for s in _SPECS if s.kind == "benchmark"),
    "train": tuple(s.name for s in _SPECS if s.kind == "train"),
    "judge": tuple(s.name for s in _SPECS if s.kind in ("judge", "judge_benchmark")),
    "all": tuple(s.name for s in _SPECS if s.kind in ("benchmark", "train")),
}


def resolve_names(names: list[str] | tuple[str, ...]) -> list[DatasetSpec]:
    """Registry entries for dataset and group names, in registry order, each once."""
    wanted: set[str] = set()
    for name in names:
        if name in GROUPS:
            wanted.update(GROUPS[name])
        elif name in REGISTRY:
            wanted.add(name)
        else:
            raise ValueError(
                f"unknown dataset {name!r}; known datasets: {', '.join(REGISTRY)}; groups: {', '.join(GROUPS)}"
            )
    return [spec for spec in _SPECS if spec.name in wanted]
