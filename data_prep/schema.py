"""The verl row schema every prepared dataset is written in, and the checks each row must pass.

One row per prompt, as verl 0.9.1's ``RLHFDataset`` reads it::

    data_source   str    "sgpo/<registry name>", e.g. "sgpo/math500" — routes the row to our grader;
                         never a name verl's default scorer knows (e.g. anything starting with "aime",
                         which it would send to math_dapo)
    prompt        list   chat messages [{"role": ..., "content": ...}], built by a prompt template
    ability       str    "math"
    reward_model  struct {"style": "rule", "ground_truth": <normalised answer string>}
    extra_info    struct {"split": str, "index": int, "problem": str, "reference_solution": str | None,
                          "source_id": str, "dataset": str}

``extra_info`` is what the reward manager and the step-wise judge read: ``problem`` is the bare problem
text (no template), ``reference_solution`` the dataset's worked solution (``None`` when the dataset has
none — the judge then falls back to the reference answer), ``source_id`` the dataset's own id (or a
stable derived one), ``index`` the row's position in its file.

Every file uses exactly the same Arrow schema (:data:`ROW_SCHEMA`), so verl can concatenate any mix of
prepared files (``data.train_files=[a,b]``) without a feature mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

#: Prefix of every ``data_source`` we write. Our names are routed to our own grader; verl's
#: ``default_compute_score`` knows none of them (it raises rather than silently picking a scorer).
DATA_SOURCE_PREFIX = "sgpo/"

#: verl's ``ability`` column; informational in verl 0.9.1.
ABILITY = "math"

#: ``reward_model.style``: the answer is checked by a rule (math-verify), not a learned reward model.
REWARD_STYLE = "rule"

#: Keys every row's ``extra_info`` carries, in this order (the reward manager relies on them).
EXTRA_INFO_KEYS = ("split", "index", "problem", "reference_solution", "source_id", "dataset")

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])

#: The one Arrow schema of every prepared file.
ROW_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(MESSAGE_TYPE)),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        (
            "extra_info",
            pa.struct(
                [
                    ("split", pa.string()),
                    ("index", pa.int64()),
                    ("problem", pa.string()),
                    ("reference_solution", pa.string()),
                    ("source_id", pa.string()),
                    ("dataset", pa.string()),
                ]
            ),
        ),
    ]
)


def data_source_for(dataset_name: str) -> str:
    """The ``data_source`` of a registry dataset: ``sgpo/<name>``."""
    return f"{DATA_SOURCE_PREFIX}{dataset_name}"


#: The fields a bad row can be bad in (the manifest counts dropped rows per field).
ROW_FIELDS = ("problem", "answer", "reference_solution", "source_id")


class BadRowError(ValueError):
    """A source row that cannot become a valid verl row. Names the dataset, the row, the field and why.

    Attributes:
        dataset: Registry name of the dataset.
        index: Position of the row in its source split.
        field: Which of :data:`ROW_FIELDS` is bad.
        reason: Why, in words (with the offending value where short).
    """

    def __init__(self, dataset: str, index: int, field: str, reason: str):
        self.dataset = dataset
        self.index = index
        self.field = field
        self.reason = reason
        super().__init__(f"dataset {dataset!r}, source row {index}: {field}: {reason}")


@dataclass(frozen=True)
class Record:
    """One problem after field mapping and answer normalisation, before a template is applied.

    Attributes:
        problem: The bare problem text (no instruction, no template).
        answer: The normalised reference answer (``reward_model.ground_truth``).
        reference_solution: The dataset's worked solution, or ``None`` when it has none.
        source_id: The dataset's own id for the problem, or a stable derived one.
        source_index: Position of the row in the source split (for error messages and reports).
    """

    problem: str
    answer: str
    reference_solution: str | None
    source_id: str
    source_index: int


def check_record(record: Record, dataset: str) -> Record:
    """Raise :class:`BadRowError` unless every field has the right type and the texts are non-empty."""
    where = (dataset, record.source_index)
    if not isinstance(record.problem, str):
        raise BadRowError(*where, "problem", f"is {type(record.problem).__name__}, expected a string")
    if not record.problem.strip():
        raise BadRowError(*where, "problem", "is empty")
    if not isinstance(record.answer, str):
        raise BadRowError(*where, "answer", f"is {type(record.answer).__name__}, expected a string")
    if not record.answer.strip():
        raise BadRowError(*where, "answer", "is empty")
    if record.reference_solution is not None and not isinstance(record.reference_solution, str):
        raise BadRowError(
            *where, "reference_solution", f"is {type(record.reference_solution).__name__}, expected a string"
        )
    if not isinstance(record.source_id, str) or not record.source_id:
        raise BadRowError(*where, "source_id", f"{record.source_id!r} is not a non-empty string")
    return record


def build_row(
    record: Record,
    *,
    dataset: str,
    split: str,
    index: int,
    prompt: list[dict[str, str]],
) -> dict[str, Any]:
    """The verl row of ``record`` (see the module docstring for the schema)."""
    return {
        "data_source": data_source_for(dataset),
        "prompt": prompt,
        "ability": ABILITY,
        "reward_model": {"style": REWARD_STYLE, "ground_truth": record.answer},
        "extra_info": {
            "split": split,
            "index": index,
            "problem": record.problem,
            "reference_solution": record.reference_solution,
            "source_id": record.source_id,
            "dataset": dataset,
        },
    }
