"""De-duplication and the contamination report, both on a normalised form of the problem text.

:func:`problem_key` is the comparison key: two problems are "the same" when their keys are equal. The key
undoes differences that do not change a problem — Unicode forms, letter case, whitespace, ``$``
delimiters, LaTeX spacing commands and ``\\left``/``\\right``, ``\\dfrac``/``\\tfrac`` for ``\\frac`` — and
nothing else, so different problems never share a key by accident. (Paraphrased copies are not found;
that would need fuzzy matching, which this report does not claim.)
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from data_prep.schema import Record

#: LaTeX commands that only change spacing or bracket sizing, removed before comparing.
_LATEX_NOISE = re.compile(r"\\left|\\right|\\[,;:! ]|\\quad|\\qquad")
_FRAC_VARIANTS = re.compile(r"\\[dt]frac")
_WHITESPACE_AND_DOLLARS = re.compile(r"[\s$]+")


def problem_key(text: str) -> str:
    """The normalised form of a problem text used for de-duplication and contamination checks."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _FRAC_VARIANTS.sub(r"\\frac", text)
    text = _LATEX_NOISE.sub("", text)
    return _WHITESPACE_AND_DOLLARS.sub("", text)


@dataclass
class DedupResult:
    """Outcome of :func:`deduplicate`.

    Attributes:
        kept: The first occurrence of every problem, in source order.
        removed: How many later copies were removed.
        conflicting_answers: How many removed copies had a different answer from the kept one (the first
            occurrence's answer is kept; a high count means the source is inconsistent).
        examples: A few ``(kept source_id, removed source_id)`` pairs for the manifest.
    """

    kept: list[Record]
    removed: int = 0
    conflicting_answers: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)


#: How many examples the manifest lists per check (counts are always complete).
MAX_REPORTED_EXAMPLES = 20


def deduplicate(records: list[Record]) -> DedupResult:
    """Keep the first record of each :func:`problem_key`; count the rest."""
    first_by_key: dict[str, Record] = {}
    result = DedupResult(kept=[])
    for record in records:
        key = problem_key(record.problem)
        first = first_by_key.get(key)
        if first is None:
            first_by_key[key] = record
            result.kept.append(record)
            continue
        result.removed += 1
        if first.answer != record.answer:
            result.conflicting_answers += 1
        if len(result.examples) < MAX_REPORTED_EXAMPLES:
            result.examples.append((first.source_id, record.source_id))
    return result


@dataclass(frozen=True)
class Overlap:
    """A training problem that is also a benchmark problem (after normalisation)."""

    train_dataset: str
    train_source_id: str
    train_source_index: int
    benchmark: str
    benchmark_source_id: str


def find_overlaps(train_dataset: str, train: list[Record], benchmarks: dict[str, list[Record]]) -> list[Overlap]:
    """Every (training row, benchmark row) pair with equal problem keys, in training-set order."""
    benchmark_index: dict[str, list[tuple[str, str]]] = {}
    for benchmark, records in benchmarks.items():
        for record in records:
            benchmark_index.setdefault(problem_key(record.problem), []).append((benchmark, record.source_id))
    overlaps = []
    for record in train:
        for benchmark, benchmark_id in benchmark_index.get(problem_key(record.problem), ()):
            overlaps.append(Overlap(train_dataset, record.source_id, record.source_index, benchmark, benchmark_id))
    return overlaps
