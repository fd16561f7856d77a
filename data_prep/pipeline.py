"""The preparation pipeline: read → map fields and normalise answers → validate → de-duplicate →
contamination check → apply the prompt template → write parquet and a manifest.

Nothing is written until every chosen dataset has been read and checked, so a bad row, a broken local file
(``data_prep/source_files.py``) or an unreachable source stops the run with no partial output. A split left
with no rows (every row dropped under ``--drop-bad-rows``, excluded or removed) stops the run too
(:class:`EmptyOutputError`): a 0-row file is never written. Writing is all or nothing
(``data_prep/staged_output.py``): every file of the run is staged, then all are moved into place; a write
failure (:class:`OutputWriteError`) leaves the output root as it was, with no temporary file. Output layout
(``output_dir`` defaults to ``data/`` in the repository)::

    data/<name>/<split>.parquet          the rows (data_prep/schema.py)
    data/<name>/<split>.manifest.json    counts, template, source provenance, sha256 of the parquet
    data/contamination_report.json       benchmark problems found in training sets (when checked)

Re-running with the same inputs and options gives byte-identical files (no timestamps; deterministic
order; fixed parquet settings).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from data_prep import arith, judge_data
from data_prep.answers import ANSWER_RULES, AnswerError
from data_prep.checks import MAX_REPORTED_EXAMPLES, DedupResult, Overlap, deduplicate, find_overlaps, problem_key
from data_prep.registry import REGISTRY, DatasetSpec, resolve_names
from data_prep.schema import ROW_SCHEMA, BadRowError, Record, build_row, check_record
from data_prep.source_files import check_source_files
from data_prep.staged_output import OutputWriteError, StagedOutput
from data_prep.sources import (
    SourceLocation,
    SourceUnavailableError,
    input_file_hashes,
    load_split,
    local_data_files,
    locate,
    provenance,
    sha256_of,
)
from data_prep.templates import DEFAULT_TEMPLATE, PromptTemplate, get_template

#: Default output root: ``data/`` at the repository root (git-ignored).
DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parents[1] / "data"

#: Version of the conversion rules, recorded in every manifest; bump when output rows would change.
DATA_PREP_VERSION = "1"

#: Rows per parquet row group (and per progress-bar update while writing).
WRITE_CHUNK_ROWS = 1000

#: Rows fetched from a source at a time while converting.
READ_BATCH_ROWS = 1000

#: Name of the contamination report in the output root.
CONTAMINATION_REPORT = "contamination_report.json"

#: The split benchmark files are written as (contamination checks read it back from earlier runs).
BENCHMARK_SPLIT = "test"


class SourceSchemaError(ValueError):
    """A source lacks a column its registry entry reads; the message names both and the fix."""


@dataclass(frozen=True)
class PrepareOptions:
    """Settings of one run of the pipeline (the CLI's flags map one-to-one onto these).

    Attributes:
        output_dir: Output root; files go to ``<output_dir>/<name>/<split>.parquet``.
        template: Prompt template name (``data_prep/templates.py``).
        source_dir: Folder of local hub snapshots laid out as ``<source_dir>/<owner>/<name>/``.
        sources: Per-dataset local file or folder, overriding ``source_dir`` and the hub.
        revisions: Per-dataset hub revision (branch, tag or commit) to read.
        drop_bad_rows: Drop invalid rows (counted and reported) instead of stopping at the first.
        decontaminate: Remove training rows whose problem is also a benchmark problem.
        max_rows: Read at most this many rows per source split (quick trials); ``None`` reads all.
        cache_dir: ``datasets`` cache folder (``None``: its default, ``~/.cache/huggingface/datasets``).
        arith_seed: Seed of the synthetic arithmetic task.
        arith_train_size: Problems in ``arith`` train.
        arith_val_size: Problems in ``arith`` val.
        arith: Difficulty settings of the arithmetic generator.
        judge_prompt: Version of the judge prompt the judge-training examples are rendered with
            (``reward/judge/prompts/step_judge_<version>.txt``).
        judge_balance: Sub-sample each judge ``train`` split to as many correct as erroneous solutions.
        judge_rationale: The judge examples' answer: ``none`` (the verdict line) or ``steps`` (one line per
            step up to the first wrong one, then the verdict; ``data_prep.judge_data.JudgeExample.answer``).
        judge_seed: Seed of that sub-sampling and of the ``judge_arith`` examples.
        judge_arith_train_size: Solutions generated for ``judge_arith`` train (before balancing).
        judge_arith_test_size: Solutions generated for ``judge_arith`` test.
        show_progress: Show progress bars (stderr).
    """

    output_dir: Path = DEFAULT_OUTPUT_DIR
    template: str = DEFAULT_TEMPLATE
    source_dir: Path | None = None
    sources: dict[str, Path] = field(default_factory=dict)
    revisions: dict[str, str] = field(default_factory=dict)
    drop_bad_rows: bool = False
    decontaminate: bool = False
    max_rows: int | None = None
    cache_dir: str | None = None
    arith_seed: int = 0
    arith_train_size: int = 2000
    arith_val_size: int = 200
    arith: arith.ArithConfig = field(default_factory=arith.ArithConfig)
    judge_prompt: str = "v1"
    judge_balance: bool = True
    judge_rationale: str = "none"
    judge_seed: int = 0
    judge_arith_train_size: int = 4000
    judge_arith_test_size: int = 400
    show_progress: bool = True

    def __post_init__(self) -> None:
        get_template(self.template)
        if self.judge_rationale not in judge_data.RATIONALES:
            raise ValueError(f"judge_rationale {self.judge_rationale!r}; known: {', '.join(judge_data.RATIONALES)}")
        for key in (*self.sources, *self.revisions):
            if key not in REGISTRY:
                raise ValueError(f"--source/--revision name {key!r} is not a dataset; known: {', '.join(REGISTRY)}")
        if self.max_rows is not None and self.max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {self.max_rows}")


@dataclass
class SplitResult:
    """One converted split, before writing."""

    spec: DatasetSpec
    split: str
    records: list[Record]
    source: dict[str, Any]
    counts: dict[str, Any]
    dropped_examples: list[dict[str, Any]] = field(default_factory=list)
    duplicate_examples: list[tuple[str, str]] = field(default_factory=list)
    removed_as_contaminated: int = 0


@dataclass(frozen=True)
class WrittenFile:
    """One file the run wrote."""

    dataset: str
    split: str
    rows: int
    path: Path
    manifest: Path
    sha256: str


# --------------------------------------------------------------------------------------------------
# reading and converting
# --------------------------------------------------------------------------------------------------


def _get_path(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def to_record(spec: DatasetSpec, row: dict[str, Any], source_index: int, source_split: str) -> Record:
    """Map one source row to a :class:`Record`; raises :class:`BadRowError` naming the bad field."""
    where = (spec.name, source_index)
    problem = _get_path(row, spec.problem_field)
    if spec.problem_transform is not None:
        try:
            problem = spec.problem_transform(problem)
        except AnswerError as error:
            raise BadRowError(*where, "problem", str(error)) from None
    if isinstance(problem, str):
        problem = problem.strip()

    answer_source = spec.answer_field if spec.answer_field is not None else spec.solution_field
    try:
        answer = ANSWER_RULES[spec.answer_rule](_get_path(row, answer_source))
    except AnswerError as error:
        raise BadRowError(*where, "answer", str(error)) from None

    solution = _get_path(row, spec.solution_field) if spec.solution_field else None
    if isinstance(solution, str):
        solution = solution.strip() or None

    own_id = _get_path(row, spec.id_field) if spec.id_field else None
    source_id = str(own_id).strip() if own_id is not None and str(own_id).strip() else f"{source_split}:{source_index}"
    record = Record(
        problem=problem, answer=answer, reference_solution=solution, source_id=source_id, source_index=source_index
    )
    return check_record(record, spec.name)


def _iter_rows(dataset: Any, *, desc: str, show_progress: bool) -> Iterator[dict[str, Any]]:
    with tqdm(total=len(dataset), desc=desc, unit="row", disable=not show_progress) as bar:
        for batch in dataset.iter(batch_size=READ_BATCH_ROWS):
            columns = list(batch)
            size = len(batch[columns[0]]) if columns else 0
            for offset in range(size):
                yield {name: batch[name][offset] for name in columns}
            bar.update(size)


def _check_columns(spec: DatasetSpec, dataset: Any, location: SourceLocation) -> None:
    available = set(dataset.column_names)
    missing = [c for c in spec.source_columns if c not in available]
    if missing:
        raise SourceSchemaError(
            f"dataset {spec.name!r} read from {location.path} has no column(s) {', '.join(map(repr, missing))} "
            f"(it has: {', '.join(sorted(available))}). The registry entry in data_prep/registry.py expects "
            f"the schema of {spec.hf_id}; point --source {spec.name}=... at that dataset, or update the entry "
            "if the source changed its schema."
        )


def convert_source_split(
    spec: DatasetSpec, location: SourceLocation, source_split: str, split: str, options: PrepareOptions
) -> SplitResult:
    """Read one split of a hub/local dataset and turn it into checked, de-duplicated records."""
    check_source_files(spec.name, local_data_files(location), spec.source_columns, hf_id=spec.hf_id)
    input_hashes = input_file_hashes(location)
    dataset = load_split(
        location,
        source_split,
        name=spec.name,
        cache_dir=options.cache_dir,
        show_progress=options.show_progress,
        input_hashes=input_hashes,
    )
    _check_columns(spec, dataset, location)
    dataset = dataset.select_columns(list(spec.source_columns))
    source_rows = len(dataset)
    if options.max_rows is not None and options.max_rows < source_rows:
        dataset = dataset.select(range(options.max_rows))

    records: list[Record] = []
    excluded: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    dropped_examples: list[dict[str, Any]] = []
    rows = _iter_rows(dataset, desc=f"{spec.name}/{split}: converting", show_progress=options.show_progress)
    for source_index, row in enumerate(rows):
        reason = spec.exclusion(row) if spec.exclusion is not None else None
        if reason is not None:
            excluded[reason] += 1
            continue
        try:
            records.append(to_record(spec, row, source_index, source_split))
        except BadRowError as error:
            if not options.drop_bad_rows:
                raise
            dropped[error.field] += 1
            if len(dropped_examples) < MAX_REPORTED_EXAMPLES:
                dropped_examples.append({"source_index": error.index, "field": error.field, "reason": error.reason})

    deduped = deduplicate(records)
    counts = {
        "source_rows": source_rows,
        "rows_read": len(dataset),
        "excluded_by_rule": dict(sorted(excluded.items())),
        "bad_rows_dropped": dict(sorted(dropped.items())),
        **_dedup_counts(deduped),
    }
    source = provenance(location, input_hashes)
    result = SplitResult(spec, split, deduped.kept, source, counts, dropped_examples, deduped.examples)
    result.source["split"] = source_split
    return result


def _dedup_counts(deduped: DedupResult) -> dict[str, int]:
    return {"duplicates_removed": deduped.removed, "duplicates_with_different_answer": deduped.conflicting_answers}


def convert_arith(spec: DatasetSpec, options: PrepareOptions) -> list[SplitResult]:
    """Generate the ``arith`` splits (train first; val never repeats a train problem)."""
    sizes = {"train": options.arith_train_size, "val": options.arith_val_size}
    results, seen = [], set()
    for _, split in spec.splits:
        problems = arith.generate_problems(
            sizes[split], options.arith_seed, split=split, config=options.arith, exclude=seen
        )
        seen.update(p.expression for p in problems)
        records = [
            check_record(arith.to_record(p, i, split, options.arith_seed), spec.name) for i, p in enumerate(problems)
        ]
        deduped = deduplicate(records)
        source = {"origin": "generated", "seed": options.arith_seed, "config": asdict(options.arith)}
        counts = {"generated": len(problems), "excluded_by_rule": {}, "bad_rows_dropped": {}, **_dedup_counts(deduped)}
        results.append(SplitResult(spec, split, deduped.kept, source, counts, [], deduped.examples))
    return results


def convert(spec: DatasetSpec, options: PrepareOptions) -> list[SplitResult]:
    """All splits of one registry dataset, converted and checked (nothing written)."""
    if spec.kind in ("judge", "judge_benchmark"):
        return convert_judge(spec, options)
    if spec.generated:
        return convert_arith(spec, options)
    location = locate(
        spec.name,
        spec.hf_id,
        spec.hf_config,
        source_dir=options.source_dir,
        overrides=options.sources,
        revision=options.revisions.get(spec.name),
    )
    if location.origin == "local_file" and len(spec.splits) > 1:
        raise SourceUnavailableError(f"--source {spec.name}=<file>: {spec.name} has several splits; give a folder")
    return [convert_source_split(spec, location, source_split, split, options) for source_split, split in spec.splits]


# --------------------------------------------------------------------------------------------------
# judge-training examples (data_prep/judge_data.py)
# --------------------------------------------------------------------------------------------------


@dataclass
class JudgeSplitResult(SplitResult):
    """One split of judge examples; ``records[i]`` is ``examples[i]``'s problem (for the contamination check)."""

    examples: list[judge_data.JudgeExample] = field(default_factory=list)

    def set_examples(self, examples: list[judge_data.JudgeExample]) -> None:
        self.examples = examples
        self.records = [replace(example.record, source_index=i) for i, example in enumerate(examples)]

    def remove(self, positions: set[int]) -> None:
        """Remove the examples at ``positions`` (indices into the current list)."""
        self.set_examples([e for i, e in enumerate(self.examples) if i not in positions])


def _judge_settings(options: PrepareOptions) -> judge_data.RenderSettings:
    return judge_data.RenderSettings.defaults(options.judge_prompt)


def _judge_split_result(spec: DatasetSpec, split: str, examples: list[judge_data.JudgeExample], source: dict[str, Any],
                        counts: dict[str, Any], dropped_examples: list[dict[str, Any]]) -> JudgeSplitResult:
    kept, duplicates = judge_data.deduplicate(examples)
    counts = {**counts, "duplicates_removed": duplicates, "before_balance": judge_data.class_counts(kept)}
    result = JudgeSplitResult(spec, split, [], source, counts, dropped_examples)
    result.set_examples(kept)
    return result


def convert_judge_arith(spec: DatasetSpec, options: PrepareOptions) -> list[SplitResult]:
    """``judge_arith``: generated solutions with known first errors (train, then a test split of other problems)."""
    settings, results = _judge_settings(options), []
    sizes = {"train": options.judge_arith_train_size, "test": options.judge_arith_test_size}
    generated = judge_data.arith_solutions({split: sizes[split] for _, split in spec.splits}, options.judge_seed)
    for split, solutions in generated.items():
        examples, excluded = [], Counter()
        for solution in solutions:
            try:
                examples.append(judge_data.render(solution, settings, "\n"))
            except judge_data.Excluded as exclusion:
                excluded[exclusion.reason] += 1
        source = {"origin": "generated", "seed": options.judge_seed, "kinds": judge_data.ARITH_KINDS,
                  "task": asdict(judge_data.arith_task_config())}
        counts = {"generated": len(solutions), "excluded_by_rule": dict(sorted(excluded.items())),
                  "bad_rows_dropped": {}}
        results.append(_judge_split_result(spec, split, examples, source, counts, []))
    return results


def _math_reference_solutions(options: PrepareOptions) -> tuple[dict[str, str], list[str]]:
    """Problem key -> MATH reference solution, from the prepared ``math_train`` and ``math500`` files."""
    solutions: dict[str, str] = {}
    used = []
    for name, split in (("math_train", "train"), ("math500", BENCHMARK_SPLIT)):
        path = Path(options.output_dir) / name / f"{split}.parquet"
        if not path.is_file():
            continue
        used.append(f"{path} (sha256 {sha256_of(path)})")
        for row in pq.read_table(path, columns=["extra_info"]).column("extra_info").to_pylist():
            if row["reference_solution"]:
                solutions.setdefault(problem_key(row["problem"]), row["reference_solution"])
    return solutions, used


def convert_judge(spec: DatasetSpec, options: PrepareOptions) -> list[SplitResult]:
    """All splits of a ``judge``/``judge_benchmark`` entry, rendered as judge examples (nothing written)."""
    if spec.generated:
        return convert_judge_arith(spec, options)
    source_rules = spec.judge_source
    location = locate(spec.name, spec.hf_id, spec.hf_config, source_dir=options.source_dir,
                      overrides=options.sources, revision=options.revisions.get(spec.name),
                      data_files=spec.data_files)
    if location.origin == "local_file" and len(spec.splits) > 1:
        raise SourceUnavailableError(f"--source {spec.name}=<file>: {spec.name} has several splits; give a folder")
    math_solutions, joined_from = _math_reference_solutions(options) if source_rules.join_math_solutions else ({}, [])
    results: list[SplitResult] = []
    for source_split, split in spec.splits:
        check_source_files(spec.name, local_data_files(location), spec.source_columns, hf_id=spec.hf_id)
        input_hashes = input_file_hashes(location)
        dataset = load_split(location, source_split, name=spec.name, cache_dir=options.cache_dir,
                             show_progress=options.show_progress, input_hashes=input_hashes)
        _check_columns(spec, dataset, location)
        dataset = dataset.select_columns(list(spec.source_columns))
        source_rows = len(dataset)
        if options.max_rows is not None and options.max_rows < source_rows:
            dataset = dataset.select(range(options.max_rows))
        answers = {}
        if source_rules.collect_answers is not None:
            answers = source_rules.collect_answers(
                _iter_rows(dataset, desc=f"{spec.name}/{split}: reference answers", show_progress=options.show_progress))
        dropped: Counter[str] = Counter()
        dropped_examples: list[dict[str, Any]] = []

        def drop(error: BadRowError) -> None:
            dropped[error.field] += 1
            if len(dropped_examples) < MAX_REPORTED_EXAMPLES:
                dropped_examples.append({"source_index": error.index, "field": error.field, "reason": error.reason})

        rows = _iter_rows(dataset, desc=f"{spec.name}/{split}: rendering", show_progress=options.show_progress)
        context = judge_data.RowContext(0, source_split, answers, math_solutions)
        pairs, excluded = judge_data.read_examples(rows, source_rules, _judge_settings(options), dataset=spec.name,
                                                   split=source_split, context=context,
                                                   drop_bad_rows=options.drop_bad_rows, on_bad_row=drop)
        source = provenance(location, input_hashes)
        source["split"] = source_split
        if joined_from:
            source["reference_solutions_joined_from"] = joined_from
        counts = {"source_rows": source_rows, "rows_read": len(dataset), "excluded_by_rule": dict(sorted(excluded.items())),
                  "bad_rows_dropped": dict(sorted(dropped.items()))}
        examples = [example for _, example in pairs]
        if source_rules.holdout_share:
            held = [judge_data.in_holdout(e.solution.problem, source_rules.holdout_share) for e in examples]
            for name, keep in ((split, False), ("test", True)):
                part = [e for e, is_held in zip(examples, held) if is_held == keep]
                results.append(_judge_split_result(spec, name, part, {**source, "holdout_share": source_rules.holdout_share},
                                                   dict(counts), dropped_examples))
        else:
            results.append(_judge_split_result(spec, split, examples, source, counts, dropped_examples))
    return results


def balance_judge_splits(results: list[SplitResult], options: PrepareOptions) -> None:
    """Balance every judge ``train`` split (when asked) and record the classes written."""
    for result in results:
        if not isinstance(result, JudgeSplitResult):
            continue
        if options.judge_balance and result.spec.kind == "judge" and result.split == "train":
            result.set_examples(judge_data.balance(result.examples, f"{options.judge_seed}:{result.spec.name}"))
        result.counts["balanced"] = options.judge_balance and result.spec.kind == "judge" and result.split == "train"
        result.counts["written_classes"] = judge_data.class_counts(result.examples)


# --------------------------------------------------------------------------------------------------
# contamination
# --------------------------------------------------------------------------------------------------


def _benchmark_records(
    results: list[SplitResult], options: PrepareOptions
) -> tuple[dict[str, list[Record]], dict[str, str]]:
    """Benchmark problems to check against: those converted in this run, else earlier runs' files."""
    in_run = {_benchmark_name(r): r.records for r in results if r.spec.kind in ("benchmark", "judge_benchmark")}
    origins = {name: "this run" for name in in_run}
    for spec in REGISTRY.values():
        if spec.kind == "benchmark":
            files = {spec.name: Path(options.output_dir) / spec.name / f"{BENCHMARK_SPLIT}.parquet"}
        elif spec.kind == "judge_benchmark":
            files = {f"{spec.name}/{split}": Path(options.output_dir) / spec.name / f"{split}.parquet"
                     for _, split in spec.splits}
        else:
            continue
        for name, path in files.items():
            if name not in in_run and path.is_file():
                in_run[name] = (_records_from_file(path) if spec.kind == "benchmark"
                                else _records_from_judge_file(path))
                origins[name] = f"{path} (sha256 {sha256_of(path)})"
    return in_run, origins


def _benchmark_name(result: SplitResult) -> str:
    return result.spec.name if result.spec.kind == "benchmark" else f"{result.spec.name}/{result.split}"


def _records_from_judge_file(path: Path) -> list[Record]:
    rows = pq.read_table(path, columns=["problem", "source_id"]).to_pylist()
    return [Record(row["problem"], "", None, row["source_id"], i) for i, row in enumerate(rows)]


def _is_checked_training_split(result: SplitResult) -> bool:
    """Training sets, and the ``train`` split of judge examples, are checked for contamination."""
    return result.spec.kind == "train" or (result.spec.kind == "judge" and result.split == "train")


def _records_from_file(path: Path) -> list[Record]:
    extra = pq.read_table(path, columns=["extra_info", "reward_model"]).to_pylist()
    return [
        Record(
            problem=row["extra_info"]["problem"],
            answer=row["reward_model"]["ground_truth"],
            reference_solution=None,
            source_id=row["extra_info"]["source_id"],
            source_index=row["extra_info"]["index"],
        )
        for row in extra
    ]


def check_contamination(results: list[SplitResult], options: PrepareOptions) -> dict[str, Any] | None:
    """Find benchmark problems in the training sets of this run; remove them when asked.

    Returns the report (also written to the output root), or ``None`` when the run has no training set.
    """
    train_results = [r for r in results if _is_checked_training_split(r)]
    if not train_results:
        return None
    benchmarks, origins = _benchmark_records(results, options)
    report: dict[str, Any] = {
        "normalisation": "data_prep.checks.problem_key",
        "benchmarks_checked": origins,
        "decontaminated": options.decontaminate,
        "training_sets": {},
    }
    for result in train_results:
        overlaps: list[Overlap] = find_overlaps(result.spec.name, result.records, benchmarks)
        per_benchmark = Counter(o.benchmark for o in overlaps)
        contaminated = {o.train_source_index for o in overlaps}
        report["training_sets"][f"{result.spec.name}/{result.split}"] = {
            "rows_checked": len(result.records),
            "contaminated_rows": len(contaminated),
            "overlaps_per_benchmark": dict(sorted(per_benchmark.items())),
            "overlaps": [asdict(o) for o in overlaps],
        }
        if options.decontaminate and contaminated:
            before = len(result.records)
            if isinstance(result, JudgeSplitResult):
                result.remove(contaminated)
            else:
                result.records = [r for r in result.records if r.source_index not in contaminated]
            result.removed_as_contaminated = before - len(result.records)
    return report


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------


def rows_for(result: SplitResult, template: PromptTemplate) -> list[dict[str, Any]]:
    """The verl rows of a converted split (index = position in the file)."""
    return [
        build_row(
            record,
            dataset=result.spec.name,
            split=result.split,
            index=index,
            prompt=template.messages(record.problem, answer_format_in_problem=result.spec.answer_format_in_problem),
        )
        for index, record in enumerate(result.records)
    ]


def write_parquet(rows: list[dict[str, Any]], path: Path, *, desc: str, show_progress: bool,
                  schema: pa.Schema = ROW_SCHEMA) -> None:
    """Write ``rows`` with ``schema`` (:data:`ROW_SCHEMA` by default) to ``path`` (a staged path: see
    :func:`write_results`)."""
    with tqdm(total=len(rows), desc=desc, unit="row", disable=not show_progress) as bar:
        with pq.ParquetWriter(path, schema, compression="snappy") as writer:
            for start in range(0, len(rows), WRITE_CHUNK_ROWS):
                chunk = rows[start : start + WRITE_CHUNK_ROWS]
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                bar.update(len(chunk))


def write_json(payload: Any, path: Path) -> None:
    """Write ``payload`` as stable, human-readable JSON (a staged path: see :func:`write_results`)."""
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _manifest(result: SplitResult, template: PromptTemplate, parquet: Path, options: PrepareOptions) -> dict[str, Any]:
    spec = result.spec
    without_solution = sum(1 for r in result.records if r.reference_solution is None)
    return {
        "data_prep_version": DATA_PREP_VERSION,
        "dataset": spec.name,
        "data_source": spec.data_source,
        "kind": spec.kind,
        "split": result.split,
        "file": parquet.name,
        "sha256": sha256_of(parquet),
        "rows": len(result.records),
        "has_reference_solutions": spec.has_reference_solutions,
        "rows_without_reference_solution": without_solution,
        "answer_rule": spec.answer_rule,
        "hf_id": spec.hf_id,
        "source": result.source,
        "template": template.manifest_entry(),
        "counts": {
            **result.counts,
            "removed_as_contaminated": result.removed_as_contaminated,
            "written": len(result.records),
        },
        "bad_row_examples": result.dropped_examples,
        "duplicate_examples": [list(pair) for pair in result.duplicate_examples],
        "options": {
            "drop_bad_rows": options.drop_bad_rows,
            "decontaminate": options.decontaminate,
            "max_rows": options.max_rows,
        },
    }


class EmptyOutputError(ValueError):
    """A split has no row left to write (all dropped, excluded or removed); the message gives the counts,
    the first dropped rows and the fix."""


def refuse_empty_splits(results: list[SplitResult]) -> None:
    """Raise :class:`EmptyOutputError` for the first split with no rows: a 0-row file is never written."""
    for result in results:
        if not result.records:
            raise EmptyOutputError(_empty_split_message(result))


def _empty_split_message(result: SplitResult) -> str:
    counts = result.counts
    read = counts.get("rows_read", counts.get("generated", 0))
    dropped = sum(counts["bad_rows_dropped"].values())
    excluded = sum(counts["excluded_by_rule"].values())
    examples = "; ".join(
        f"source row {e['source_index']}: {e['field']}: {e['reason']}" for e in result.dropped_examples
    )
    source = result.source.get("path", result.source.get("origin"))
    share = result.source.get("holdout_share")
    holdout = (f" (the {result.split!r} split holds {share:.0%} of the problems, chosen by a hash of the problem: "
               "too few problems were read for it to get one)" if share else "")
    return (
        f"dataset {result.spec.name!r} split {result.split!r} (read from {source}): no row is left to write - "
        f"{read} rows read, {dropped} dropped as bad, {excluded} excluded by rule, "
        f"{counts['duplicates_removed']} duplicates, {result.removed_as_contaminated} removed as contaminated"
        f"{f' (dropped: {examples})' if examples else ''}{holdout}\n"
        f"Fix: correct those rows in the source file or point --source {result.spec.name}=<path> at the right "
        "data; a file with no rows is never written."
    )


def write_results(
    results: list[SplitResult], options: PrepareOptions, report: dict[str, Any] | None = None
) -> list[WrittenFile]:
    """Write every split (parquet + manifest) and the contamination report, all or nothing.

    Every file is written to a staging folder first and moved into place only when all were written
    (``data_prep/staged_output.py``); any failure raises :class:`OutputWriteError` and leaves the output
    root as it was.
    """
    template = get_template(options.template)
    output_dir = Path(options.output_dir)
    written = []
    run = ", ".join(dict.fromkeys(r.spec.name for r in results))
    with StagedOutput(output_dir, run=run) as output:
        for result in results:
            stage = _stage_judge_split if isinstance(result, JudgeSplitResult) else _stage_split
            written.append(stage(result, template, options, output))
        if report is not None:
            target = output_dir / CONTAMINATION_REPORT
            _write_staged(lambda path: write_json(report, path), output, target, owner=run)
        output.commit()
    return written


def _stage_split(
    result: SplitResult, template: PromptTemplate, options: PrepareOptions, output: StagedOutput
) -> WrittenFile:
    name = result.spec.name
    directory = Path(options.output_dir) / name
    parquet, manifest = directory / f"{result.split}.parquet", directory / f"{result.split}.manifest.json"
    rows = rows_for(result, template)
    desc = f"{name}/{result.split}: writing"

    def write_rows(path: Path) -> None:
        write_parquet(rows, path, desc=desc, show_progress=options.show_progress)

    staged_parquet = _write_staged(write_rows, output, parquet, owner=name)
    payload = _manifest(result, template, staged_parquet, options)
    _write_staged(lambda path: write_json(payload, path), output, manifest, owner=name)
    return WrittenFile(name, result.split, len(rows), parquet, manifest, payload["sha256"])


def _stage_judge_split(result: JudgeSplitResult, _: PromptTemplate, options: PrepareOptions,
                       output: StagedOutput) -> WrittenFile:
    from reward.judge.prompt import PromptTemplate as JudgePrompt

    name = result.spec.name
    judge_prompt = JudgePrompt.load(options.judge_prompt)
    rows = [judge_data.example_row(example, judge_prompt, dataset=name, split=result.split, index=index,
                                   rationale=options.judge_rationale)
            for index, example in enumerate(result.examples)]
    directory = Path(options.output_dir) / name
    parquet, manifest = directory / f"{result.split}.parquet", directory / f"{result.split}.manifest.json"
    desc = f"{name}/{result.split}: writing"

    def write_rows(path: Path) -> None:
        write_parquet(rows, path, desc=desc, show_progress=options.show_progress, schema=judge_data.JUDGE_ROW_SCHEMA)

    staged_parquet = _write_staged(write_rows, output, parquet, owner=name)
    settings = _judge_settings(options)
    payload = {
        "data_prep_version": DATA_PREP_VERSION,
        "dataset": name,
        "data_source": result.spec.data_source,
        "kind": result.spec.kind,
        "split": result.split,
        "file": parquet.name,
        "sha256": sha256_of(staged_parquet),
        "rows": len(rows),
        "hf_id": result.spec.hf_id,
        "source": result.source,
        "judge_prompt": {"version": judge_prompt.version, "sha256": judge_prompt.sha256},
        "steps": asdict(settings),
        "counts": {**result.counts, "removed_as_contaminated": result.removed_as_contaminated, "written": len(rows)},
        "rows_without_reference_answer": sum(1 for e in result.examples if not e.solution.reference_answer),
        "rows_without_reference_solution": sum(1 for e in result.examples if not e.solution.reference_solution),
        "bad_row_examples": result.dropped_examples,
        "options": {"drop_bad_rows": options.drop_bad_rows, "decontaminate": options.decontaminate,
                    "max_rows": options.max_rows, "judge_balance": options.judge_balance,
                    "judge_rationale": options.judge_rationale,
                    "judge_seed": options.judge_seed},
    }
    _write_staged(lambda path: write_json(payload, path), output, manifest, owner=name)
    return WrittenFile(name, result.split, len(rows), parquet, manifest, payload["sha256"])


def _write_staged(write: Callable[[Path], None], output: StagedOutput, target: Path, *, owner: str) -> Path:
    """Run ``write`` on the staged path of ``target``; an ``OSError`` becomes :class:`OutputWriteError`."""
    staged = output.stage(target, owner=owner)
    try:
        write(staged)
    except OSError as error:
        raise OutputWriteError(owner, target, error) from None
    return staged


@dataclass(frozen=True)
class PrepareResult:
    """What :func:`prepare` did.

    Attributes:
        written: The files written, in registry order.
        contamination: The contamination report (also in ``<output_dir>/contamination_report.json``), or
            ``None`` when the run prepared no training set.
    """

    written: list[WrittenFile]
    contamination: dict[str, Any] | None


def prepare(names: list[str] | tuple[str, ...], options: PrepareOptions | None = None) -> PrepareResult:
    """Prepare the named datasets (or groups: ``benchmarks``, ``train``, ``all``) and write them.

    Every dataset is read and checked before anything is written, and the writing is all or nothing.
    """
    options = options or PrepareOptions()
    specs = resolve_names(names)
    if not specs:
        raise ValueError("no dataset named; give dataset names or a group (benchmarks, train, all)")
    results = [result for spec in specs for result in convert(spec, options)]
    report = check_contamination(results, options)
    balance_judge_splits(results, options)
    refuse_empty_splits(results)
    written = write_results(results, options, report)
    return PrepareResult(written, report)
