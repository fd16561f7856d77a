"""data_prep: every registry entry converted from committed fixtures in its source's hub schema, then
loaded by verl 0.9.1's own RLHFDataset; every bad-row path; de-duplication; the contamination report on a
planted overlap; byte-identical re-runs; prompt templates rendered by a real tokenizer; the arithmetic
generator checked step by step; our data_source names through verl's metric code.

The fixtures (tests/fixtures/data_prep/<owner>/<name>/, built by build_fixtures.py there) are laid out
as `hf download --local-dir` lays out the hub datasets, and are read with the same
`datasets.load_dataset` call that reads the hub. The tokenizer is a tiny word-level one built here
(no model hub); it carries the real chat templates under test.
"""

from __future__ import annotations

import json
import os
import operator
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from data_prep import arith
from data_prep.answers import AnswerError, boxed_in_solution, integer, latex_list, number
from data_prep.checks import deduplicate, problem_key
from data_prep.pipeline import CONTAMINATION_REPORT, PrepareOptions, SourceSchemaError, prepare
from data_prep.registry import GROUPS, REGISTRY
from data_prep.schema import EXTRA_INFO_KEYS, ROW_SCHEMA, BadRowError, Record, check_record
from data_prep.sources import SourceUnavailableError, sha256_of
from reward.answers import extract_final_answer, last_boxed, reference_answer
from data_prep.templates import (
    BOXED_INSTRUCTION,
    CHATML_CHAT_TEMPLATE,
    RAW_CHAT_TEMPLATE,
    TEMPLATES,
    get_template,
    hydra_override,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "data_prep"
#: The entries of the `all` group: benchmarks and RL training sets.
RL_SPECS = [REGISTRY[name] for name in GROUPS["all"]]
ARITH_TRAIN, ARITH_VAL = 40, 10
OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}
STEP_LINE = re.compile(r"^(-?\d+) ([+\-*]) (-?\d+) = (-?\d+)$")


def options(tmp: Path, **overrides) -> PrepareOptions:
    settings = dict(
        output_dir=tmp / "data",
        source_dir=FIXTURES,
        cache_dir=str(tmp / "hf_cache"),
        arith_train_size=ARITH_TRAIN,
        arith_val_size=ARITH_VAL,
        show_progress=False,
    )
    settings.update(overrides)
    return PrepareOptions(**settings)


def read_rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def manifest_of(path: Path) -> dict:
    return json.loads(path.with_name(path.name.replace(".parquet", ".manifest.json")).read_text())


def copy_source(tmp: Path, hf_id: str) -> Path:
    """A writable copy of one fixture source (same layout), to plant bad rows or overlaps in."""
    target = tmp / "sources" / hf_id
    shutil.copytree(FIXTURES / hf_id, target)
    return target


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def tiny_tokenizer(chat_template: str):
    """A real fast tokenizer (word level, built here) carrying ``chat_template``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "[PAD]", "<|im_start|>", "<|im_end|>", "system", "user", "assistant", "Please", "reason"]
    core = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]")
    tokenizer.chat_template = chat_template
    return tokenizer


def rlhf_dataset(files: list[Path], tokenizer, tmp: Path):
    from verl.utils.dataset.rl_dataset import RLHFDataset

    config = OmegaConf.create(
        {
            "prompt_key": "prompt",
            "max_prompt_length": 4096,
            "filter_overlong_prompts": True,
            "filter_overlong_prompts_workers": 1,
            "cache_dir": str(tmp / "verl_cache"),
        }
    )
    return RLHFDataset(data_files=[str(f) for f in files], tokenizer=tokenizer, config=config)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prepared")
    result = prepare(["all"], options(tmp))
    return tmp / "data", result


# ------------------------------------------------------------------------------------------------
# every registry entry, in verl's schema
# ------------------------------------------------------------------------------------------------


def test_every_registry_entry_is_written_in_the_verl_schema(prepared):
    out, result = prepared
    written = {(w.dataset, w.split) for w in result.written}
    # `all` is every benchmark and training set; the judge sets are the `judge` group (tests/test_judge_data_on_cpu.py)
    assert written == {(spec.name, split) for spec in RL_SPECS for _, split in spec.splits}
    for item in result.written:
        spec = REGISTRY[item.dataset]
        assert item.path == out / spec.name / f"{item.split}.parquet"
        assert pq.read_schema(item.path).equals(ROW_SCHEMA, check_metadata=False)
        rows = read_rows(item.path)
        assert rows and len(rows) == item.rows
        manifest = manifest_of(item.path)
        assert manifest["sha256"] == sha256_of(item.path) == item.sha256
        assert manifest["rows"] == len(rows) and manifest["template"]["name"] == "boxed"
        assert manifest["data_source"] == spec.data_source == f"sgpo/{spec.name}"
        for position, row in enumerate(rows):
            assert row["data_source"] == spec.data_source
            assert row["ability"] == "math"
            assert row["reward_model"]["style"] == "rule" and row["reward_model"]["ground_truth"].strip()
            info = row["extra_info"]
            assert tuple(info) == EXTRA_INFO_KEYS
            assert info["split"] == item.split and info["index"] == position and info["dataset"] == spec.name
            assert info["problem"].strip() and info["source_id"]
            assert [m["role"] for m in row["prompt"]] == ["user"]
            assert row["prompt"][0]["content"].startswith(info["problem"])
            if not spec.has_reference_solutions:
                assert info["reference_solution"] is None


def test_answers_and_fields_are_mapped_per_dataset(prepared):
    out, _ = prepared

    def column(name, split, key):
        rows = read_rows(out / name / f"{split}.parquet")
        return [row["reward_model"]["ground_truth"] if key == "answer" else row["extra_info"][key] for row in rows]

    assert column("aime24", "test", "answer") == ["204", "25"]  # AIME integers: "025" -> "25"
    assert column("aime24", "test", "source_id") == ["60", "61"]
    assert column("amc23", "test", "answer") == ["27", "36"]  # stored as float64 on the hub
    assert column("olympiadbench", "test", "answer") == [
        "2",
        "(0,2),(0,-2),(4,23),(4,-23)",
        "(1,2,3), (1,3,2), (2,1,3)",
    ]
    assert column("math500", "test", "answer")[0] == "\\left( 3, \\frac{\\pi}{2} \\right)"  # LaTeX kept exact
    assert column("math500", "test", "source_id")[0] == "test/precalculus/807.json"
    assert column("hmmt_feb_2025", "test", "answer")[1] == "\\sqrt{23}-2\\sqrt{3}"
    assert column("minerva", "test", "answer") == ["1.6", "4.5e33"]
    assert column("minerva", "test", "source_id") == ["test:0", "test:1"]  # no id column: derived
    assert column("math_train", "train", "answer") == ["0", "4", "17"]  # last \boxed{} of the solution
    assert column("math_train", "train", "reference_solution")[0].endswith("$a+b=-3+3=\\boxed{0}$.")

    deepscaler = manifest_of(out / "deepscaler" / "train.parquet")
    assert column("deepscaler", "train", "reference_solution")[1] is None  # empty solution in the source
    assert deepscaler["rows_without_reference_solution"] == 1 and deepscaler["has_reference_solutions"]

    openr1 = manifest_of(out / "openr1_math" / "train.parquet")
    assert column("openr1_math", "train", "source_id") == [
        "586fd646-76d6-5070-8c81-9993ab9d8559",
        "bc0e7e39-4e7d-5a1c-a7d5-6ed6a5b0a4e2",
    ]
    assert sum(openr1["counts"]["excluded_by_rule"].values()) == 1  # the "proof" row, counted

    dapo = manifest_of(out / "dapo_math_17k" / "train.parquet")
    problems = column("dapo_math_17k", "train", "problem")
    assert problems[0].startswith("In triangle $ABC$") and problems[0].endswith("find $a + b + c$.")
    assert not any("Answer:" in p for p in problems)
    assert dapo["counts"]["duplicates_removed"] == 1 and dapo["rows"] == 2
    assert dapo["has_reference_solutions"] is False and dapo["rows_without_reference_solution"] == 2
    assert dapo["source"]["files_sha256"] == {
        "data/dapo-math-17k.parquet": sha256_of(FIXTURES / "BytedTsinghua-SIA/DAPO-Math-17k/data/dapo-math-17k.parquet")
    }


# ------------------------------------------------------------------------------------------------
# verl 0.9.1 reads the files
# ------------------------------------------------------------------------------------------------


def test_every_file_loads_in_verls_rlhf_dataset(prepared, tmp_path):
    out, result = prepared
    tokenizer = tiny_tokenizer(CHATML_CHAT_TEMPLATE)
    for item in result.written:
        dataset = rlhf_dataset([item.path], tokenizer, tmp_path)
        # RLHFDataset drops rows its chat template fails on (it scores them as too long): none may be lost
        assert len(dataset) == item.rows, item.path
        rows = read_rows(item.path)
        for position in (0, len(dataset) - 1):
            sample = dataset[position]
            assert sample["raw_prompt"] == rows[position]["prompt"]
            assert sample["index"] == position
            assert sample["data_source"] == REGISTRY[item.dataset].data_source
            assert sample["reward_model"]["ground_truth"] == rows[position]["reward_model"]["ground_truth"]
            assert set(EXTRA_INFO_KEYS) <= set(sample["extra_info"])


def test_all_training_files_and_all_benchmarks_concatenate_in_one_rlhf_dataset(prepared, tmp_path):
    _, result = prepared
    tokenizer = tiny_tokenizer(CHATML_CHAT_TEMPLATE)
    for kind in ("train", "benchmark"):
        files = [w for w in result.written if REGISTRY[w.dataset].kind == kind]
        dataset = rlhf_dataset([w.path for w in files], tokenizer, tmp_path)
        assert len(dataset) == sum(w.rows for w in files)
        assert {dataset[i]["data_source"] for i in range(len(dataset))} == {
            REGISTRY[w.dataset].data_source for w in files
        }


def test_our_data_source_names_pass_through_verls_validation_metrics():
    """Names with a slash make well-formed metric keys; verl's default scorer claims none of them."""
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer
    from verl.utils.reward_score import default_compute_score

    sources = np.array(["sgpo/aime24"] * 4 + ["sgpo/hmmt_feb_2025"] * 2, dtype=object)
    uids = np.array(["a", "a", "b", "b", "c", "c"], dtype=object)
    infos = {"acc": [1.0, 0.0, 1.0, 1.0, 0.0, 0.0], "reward": [1.0, 0.0, 1.0, 1.0, 0.0, 0.0]}
    metrics = PPOTrainer._val_metrics_update(None, sources, uids, infos, [])  # verl's own code; self unused
    assert metrics["val-core/sgpo/aime24/acc/mean@2"] == pytest.approx(0.75)
    assert metrics["val-core/sgpo/hmmt_feb_2025/acc/mean@2"] == pytest.approx(0.0)
    for spec in REGISTRY.values():
        with pytest.raises(NotImplementedError):
            default_compute_score(spec.data_source, "\\boxed{1}", "1")


# ------------------------------------------------------------------------------------------------
# checks: bad rows, schema, duplicates, contamination, provenance, re-runs
# ------------------------------------------------------------------------------------------------

GOOD_AIME25 = {"problem": "Find $1+1$.", "answer": "2", "id": "0"}


@pytest.mark.parametrize(
    "bad_row, field, reason",
    [
        ({"problem": "", "answer": "2", "id": "1"}, "problem", "is empty"),
        ({"problem": "  \n ", "answer": "2", "id": "1"}, "problem", "is empty"),
        ({"problem": None, "answer": "2", "id": "1"}, "problem", "is NoneType, expected a string"),
        ({"problem": "Find x.", "answer": "", "id": "1"}, "answer", "'' is not an integer"),
        ({"problem": "Find x.", "answer": None, "id": "1"}, "answer", "NoneType"),
        ({"problem": "Find x.", "answer": "x+1", "id": "1"}, "answer", "'x+1' is not an integer"),
    ],
)
def test_a_bad_row_stops_the_run_naming_dataset_row_and_reason_and_nothing_is_written(tmp_path, bad_row, field, reason):
    source = copy_source(tmp_path, "math-ai/aime25")
    write_jsonl(source / "test.jsonl", [GOOD_AIME25, bad_row])
    run = options(tmp_path, sources={"aime25": source})
    with pytest.raises(BadRowError) as caught:
        prepare(["math500", "aime25"], run)
    assert (caught.value.dataset, caught.value.index, caught.value.field) == ("aime25", 1, field)
    assert reason in caught.value.reason and "dataset 'aime25', source row 1" in str(caught.value)
    assert not run.output_dir.exists(), "no partial output: math500 must not be written either"


def test_bad_rows_are_dropped_counted_and_reported_only_under_the_flag(tmp_path):
    source = copy_source(tmp_path, "math-ai/aime25")
    rows = [
        GOOD_AIME25,
        {"problem": "", "answer": "3", "id": "1"},
        {"problem": "Find y.", "answer": "y", "id": "2"},
        {"problem": "Find z.", "answer": "", "id": "3"},
    ]
    write_jsonl(source / "test.jsonl", rows)
    result = prepare(["aime25"], options(tmp_path, sources={"aime25": source}, drop_bad_rows=True))
    (item,) = result.written
    assert [r["extra_info"]["source_id"] for r in read_rows(item.path)] == ["0"]
    manifest = manifest_of(item.path)
    assert manifest["counts"]["bad_rows_dropped"] == {"answer": 2, "problem": 1}
    assert [(e["source_index"], e["field"]) for e in manifest["bad_row_examples"]] == [
        (1, "problem"),
        (2, "answer"),
        (3, "answer"),
    ]
    assert manifest["options"]["drop_bad_rows"] is True


@pytest.mark.parametrize(
    "name, hf_id, filename, rows, field, reason",
    [
        (
            "math_train",
            "DigitalLearningGmbH/MATH-lighteval",
            "data/train-00000-of-00001.parquet",
            {"problem": ["Find x."], "level": ["Level 1"], "type": ["Algebra"], "solution": ["So x is 2."]},
            "answer",
            "no complete \\boxed{...} answer",
        ),
        (
            "math_train",
            "DigitalLearningGmbH/MATH-lighteval",
            "data/train-00000-of-00001.parquet",
            {"problem": ["Find x."], "level": ["Level 1"], "type": ["Algebra"], "solution": ["So $\\boxed{2$."]},
            "answer",
            "no complete \\boxed{...} answer",
        ),
        (
            "dapo_math_17k",
            "BytedTsinghua-SIA/DAPO-Math-17k",
            "data/dapo-math-17k.parquet",
            {
                "data_source": ["math_dapo"],
                "prompt": [[{"content": "What is 1+1?", "role": "user"}]],
                "ability": ["MATH"],
                "reward_model": [{"ground_truth": "2", "style": "rule"}],
                "extra_info": [{"index": "u1"}],
            },
            "problem",
            "does not start with",
        ),
        (
            "olympiadbench",
            "math-ai/olympiadbench",
            "test.jsonl",
            [{"question": "Find x.", "final_answer": []}],
            "answer",
            "expected a non-empty list",
        ),
        (
            "olympiadbench",
            "math-ai/olympiadbench",
            "test.jsonl",
            [{"question": "Find x.", "final_answer": ["$ $"]}],
            "answer",
            "holds an empty part",
        ),
    ],
)
def test_dataset_specific_bad_rows(tmp_path, name, hf_id, filename, rows, field, reason):
    source = copy_source(tmp_path, hf_id)
    if filename.endswith(".jsonl"):
        write_jsonl(source / filename, rows)
    else:
        pq.write_table(pa.table(rows), source / filename)
    with pytest.raises(BadRowError) as caught:
        prepare([name], options(tmp_path, sources={name: source}))
    assert (caught.value.dataset, caught.value.index, caught.value.field) == (name, 0, field)
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    "record, field",
    [
        (Record(7, "1", None, "id", 0), "problem"),
        (Record("p", 1, None, "id", 0), "answer"),
        (Record("p", " ", None, "id", 0), "answer"),
        (Record("p", "1", ["a list"], "id", 0), "reference_solution"),
        (Record("p", "1", None, "", 0), "source_id"),
    ],
)
def test_row_type_checks(record, field):
    with pytest.raises(BadRowError) as caught:
        check_record(record, "demo")
    assert caught.value.field == field


def test_a_source_without_an_expected_column_is_refused_with_the_fix(tmp_path):
    wrong = tmp_path / "minerva.jsonl"
    write_jsonl(wrong, [{"problem": "Find x.", "answer": "2"}])  # Minerva's column is "question"
    with pytest.raises(SourceSchemaError, match=r"no column\(s\) 'question'.*it has: answer, problem"):
        prepare(["minerva"], options(tmp_path, sources={"minerva": wrong}))


def test_an_unreachable_hub_names_the_dataset_and_the_download_command(tmp_path):
    with pytest.raises(
        SourceUnavailableError, match=r"(?s)'aime25' \(math-ai/aime25.*hf download math-ai/aime25 --repo-type dataset"
    ):
        prepare(["aime25"], options(tmp_path, source_dir=None))
    mirror = tmp_path / "mirror"
    with pytest.raises(SourceUnavailableError, match=f"no local copy at {mirror}/math-ai/aime25"):
        prepare(["aime25"], options(tmp_path, source_dir=mirror))
    assert not (tmp_path / "data").exists()


def test_a_single_local_file_and_a_snapshot_revision_are_recorded(tmp_path):
    source = copy_source(tmp_path, "math-ai/aime25")
    metadata = source / ".cache" / "huggingface" / "download" / "test.jsonl.metadata"
    metadata.parent.mkdir(parents=True)
    metadata.write_text("0123456789abcdef0123456789abcdef01234567\nsome-etag\n1700000000.0\n")
    result = prepare(["aime25"], options(tmp_path, sources={"aime25": source}))
    manifest = manifest_of(result.written[0].path)
    assert manifest["source"]["revision"] == "0123456789abcdef0123456789abcdef01234567"
    assert list(manifest["source"]["files_sha256"]) == ["test.jsonl"]  # the hidden .cache folder is not data
    assert manifest["rows"] == 2

    single = prepare(["aime25"], options(tmp_path / "single", sources={"aime25": source / "test.jsonl"}))
    assert read_rows(single.written[0].path) == read_rows(result.written[0].path)
    assert manifest_of(single.written[0].path)["source"]["origin"] == "local_file"


def test_duplicates_after_normalisation_are_removed_and_counted():
    records = [
        Record("What is $1+1$?", "2", None, "a", 0),
        Record("what is  1 + 1 ?", "2", None, "b", 1),
        Record("What is $\\dfrac{1}{2}+\\left(1\\right)$?", "1.5", None, "c", 2),
        Record("What is $\\frac{1}{2} + (1)$?", "3/2", None, "d", 3),
        Record("What is $1+2$?", "3", None, "e", 4),
    ]
    result = deduplicate(records)
    assert [r.source_id for r in result.kept] == ["a", "c", "e"]
    assert result.removed == 2 and result.conflicting_answers == 1  # "1.5" vs "3/2": kept first, counted
    assert result.examples == [("a", "b"), ("c", "d")]
    assert problem_key("Find $x$.") != problem_key("Find $y$.")


def planted_math_train(tmp_path: Path) -> Path:
    """MATH train fixture plus one row that is MATH500's test/algebra/2592.json with other spacing."""
    source = copy_source(tmp_path, "DigitalLearningGmbH/MATH-lighteval")
    path = source / "data/train-00000-of-00001.parquet"
    table = pq.read_table(path).to_pylist()
    table.insert(
        1,
        {
            "problem": "What is the value of  $513^2-487^2$ ?",
            "level": "Level 1",
            "type": "Algebra",
            "solution": "$(513+487)(513-487) = \\boxed{26000}$.",
        },
    )
    pq.write_table(pa.Table.from_pylist(table), path)
    return source


def test_contamination_report_finds_a_planted_benchmark_problem_and_can_remove_it(tmp_path):
    source = planted_math_train(tmp_path)
    kept = prepare(["math500", "math_train"], options(tmp_path / "kept", sources={"math_train": source}))
    entry = kept.contamination["training_sets"]["math_train/train"]
    assert entry["contaminated_rows"] == 1 and entry["overlaps_per_benchmark"] == {"math500": 1}
    assert entry["overlaps"] == [
        {
            "train_dataset": "math_train",
            "train_source_id": "train:1",
            "train_source_index": 1,
            "benchmark": "math500",
            "benchmark_source_id": "test/algebra/2592.json",
        }
    ]
    on_disk = json.loads((tmp_path / "kept" / "data" / CONTAMINATION_REPORT).read_text())
    assert on_disk == kept.contamination
    assert len(read_rows(tmp_path / "kept/data/math_train/train.parquet")) == 4

    removed = prepare(
        ["math500", "math_train"], options(tmp_path / "removed", sources={"math_train": source}, decontaminate=True)
    )
    assert removed.contamination["decontaminated"] is True
    rows = read_rows(tmp_path / "removed/data/math_train/train.parquet")
    assert [r["extra_info"]["source_id"] for r in rows] == ["train:0", "train:2", "train:3"]
    assert [r["extra_info"]["index"] for r in rows] == [0, 1, 2]
    assert manifest_of(tmp_path / "removed/data/math_train/train.parquet")["counts"]["removed_as_contaminated"] == 1

    # a later run of the training set alone checks against the benchmark file written before
    later = prepare(["math_train"], options(tmp_path / "kept", sources={"math_train": source}))
    assert later.contamination["training_sets"]["math_train/train"]["contaminated_rows"] == 1
    assert "math500/test.parquet (sha256 " in later.contamination["benchmarks_checked"]["math500"]


def test_rerunning_gives_byte_identical_files(tmp_path):
    def snapshot(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    first = options(tmp_path / "a")
    prepare(["all"], first)
    before = snapshot(first.output_dir)
    prepare(["all"], first)
    assert snapshot(first.output_dir) == before
    second = options(tmp_path / "b")
    prepare(["all"], second)
    assert snapshot(second.output_dir) == before
    assert len([k for k in before if k.endswith(".parquet")]) == sum(len(s.splits) for s in RL_SPECS)


# ------------------------------------------------------------------------------------------------
# answer rules
# ------------------------------------------------------------------------------------------------


def test_answer_rules():
    assert [integer(v) for v in (204, "025", " 70 ", 36.0, "$336^\\circ$", "336^{\\circ}")] == [
        "204",
        "25",
        "70",
        "36",
        "336",
        "336",
    ]
    for bad in ("x", "1.5", 1.5, True, None, "", ["1"]):
        with pytest.raises(AnswerError):
            integer(bad)
    assert [number(v) for v in (27.0, 0.5, 3, " \\frac{1}{2} ")] == ["27", "0.5", "3", "\\frac{1}{2}"]
    assert latex_list(["$x=1$", "$x=2$"]) == "x=1, x=2" and latex_list("$5$") == "5"
    assert last_boxed("a \\boxed{1} then \\boxed{\\frac{1}{\\sqrt{2}}}.") == "\\frac{1}{\\sqrt{2}}"
    assert last_boxed("so \\fbox{7}") == "7" and last_boxed("so $\\boxed 5$.") == "5"
    assert last_boxed("\\boxed{unclosed") is None and last_boxed("none") is None



#: (worked solution, the ground truth it must give). Each is a case where data_prep's former brace
#: counter and the grader's extractor disagreed, or a rule both must keep.
TRICKY_SOLUTIONS = [
    # an escaped brace is a literal, not a group: data_prep's counter never closed this box
    ("The set is $\\boxed{\\left\\{ x \\mid x > 0 \\right.}$.", "\\left\\{ x \\mid x > 0 \\right."),
    ("So $S = \\boxed{\\{1, 2\\}}$.", "\\{1, 2\\}"),
    # `\boxedsum` is another command, so the last box is the one before it (data_prep found no box)
    ("Hence \\boxed{3}, where \\boxedsum{n} denotes the boxed sum.", "3"),
    ("\\boxed {7}", "7"),  # a space before the brace (data_prep returned `{7}`)
    ("\\boxed{ 5 }", "5"),
    ("$\\boxed{\\frac{1}{\\sqrt{2}}}$", "\\frac{1}{\\sqrt{2}}"),  # nested braces
    ("First \\boxed{1}, then \\boxed{2}.", "2"),  # several boxes: the last
    ("\\boxed{1} and finally \\fbox{7}", "7"),
    ("\\fbox{7} and finally \\boxed{8}", "8"),
    ("so $\\boxed 5$.", "5"),  # brace-less
]

#: Worked solutions without a usable final box: a bad row for data_prep, no answer for the grader.
UNBOXABLE_SOLUTIONS = ["no box", "\\boxed{}", "\\boxed{5", "only \\boxedsum{5}", "$\\boxed $"]


@pytest.mark.parametrize("solution, ground_truth", TRICKY_SOLUTIONS)
def test_ground_truth_is_unboxed_by_the_graders_rule(solution, ground_truth):
    """data_prep's `boxed_in_solution` gives exactly what the grader reads from the same text."""
    assert boxed_in_solution(solution) == ground_truth
    assert extract_final_answer(solution, think_mode="ignore", max_chars=len(solution)).answer == ground_truth
    assert reference_answer(solution) == ground_truth  # a boxed reference given to the grader as is


@pytest.mark.parametrize("solution", UNBOXABLE_SOLUTIONS)
def test_solutions_without_a_final_box_are_bad_rows_for_both(solution):
    with pytest.raises(AnswerError, match="no complete"):
        boxed_in_solution(solution)
    assert last_boxed(solution) is None


def test_data_prep_answers_does_not_import_the_graders_process_pool():
    probe = "import sys, data_prep.answers; print(*sorted(m for m in sys.modules if m.startswith('reward.')))"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert imported.stdout.split() == ["reward.answers"]  # the pure extractor only


# ------------------------------------------------------------------------------------------------
# prompt templates
# ------------------------------------------------------------------------------------------------


def test_templates_render_the_intended_prompts_with_a_real_tokenizer():
    problem = "What is $2+3$?"
    boxed = get_template("boxed").messages(problem)
    assert boxed == [{"role": "user", "content": f"{problem}\n\n{BOXED_INSTRUCTION}"}]

    qwen = get_template("qwen_math")
    rendered = tiny_tokenizer(qwen.chat_template).apply_chat_template(
        qwen.messages(problem), tokenize=False, add_generation_prompt=True
    )
    # understand-r1-zero's / Qwen2.5-Math's qwen_math prompt, character for character
    assert rendered == (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        f"<|im_start|>user\n{problem}<|im_end|>\n<|im_start|>assistant\n"
    )
    none = get_template("none")
    raw = tiny_tokenizer(none.chat_template).apply_chat_template(
        none.messages(problem), tokenize=False, add_generation_prompt=True
    )
    assert raw == problem and none.chat_template_required

    # a problem that states its own answer format gets no second instruction
    assert get_template("boxed").messages(problem, answer_format_in_problem=True) == [
        {"role": "user", "content": problem}
    ]


def test_hydra_overrides_parse_back_to_the_chat_templates():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for template in TEMPLATES.values():
        override = hydra_override(template)
        if template.chat_template is None:
            assert override is None
            continue
        parsed = parser.parse_override(override)
        assert parsed.key_or_group == "actor_rollout_ref.model.custom_chat_template"
        assert parsed.value() == template.chat_template
    assert RAW_CHAT_TEMPLATE in hydra_override(TEMPLATES["none"])


def test_the_chosen_template_is_written_and_recorded(tmp_path):
    result = prepare(["aime25", "arith"], options(tmp_path, template="none"))
    for item in result.written:
        manifest = manifest_of(item.path)
        assert manifest["template"]["name"] == "none" and manifest["template"]["chat_template"] == RAW_CHAT_TEMPLATE
        assert manifest["template"]["hydra_override"] == hydra_override(TEMPLATES["none"])
        for row in read_rows(item.path):
            assert row["prompt"] == [{"role": "user", "content": row["extra_info"]["problem"]}]
    dataset = rlhf_dataset([result.written[0].path], tiny_tokenizer(RAW_CHAT_TEMPLATE), tmp_path)
    assert len(dataset) == result.written[0].rows


def test_unknown_template_and_dataset_names_are_refused():
    with pytest.raises(ValueError, match="unknown prompt template 'chatml'.*boxed, qwen_math, none"):
        PrepareOptions(template="chatml")
    with pytest.raises(ValueError, match="unknown dataset 'aime2024'"):
        prepare(["aime2024"], PrepareOptions(show_progress=False))


# ------------------------------------------------------------------------------------------------
# the synthetic arithmetic task
# ------------------------------------------------------------------------------------------------


def check_solution(problem: str, solution: str, answer: str, config: arith.ArithConfig) -> int:
    """Verify a reference solution exactly, as the rule-based step verifier will; returns the step count."""
    expression = re.match(r"Compute (.+)\.\n", problem).group(1)
    literals = [int(n) for n in re.findall(r"\d+", expression)]
    previous = None
    lines = solution.split("\n")
    for position, line in enumerate(lines):
        a, op, b, c = STEP_LINE.match(line).groups()
        a, b, c = int(a), int(b), int(c)
        assert c == OPS[op](a, b), line
        assert a == (literals[0] if position == 0 else previous), "each step continues from the previous result"
        assert b == literals[position + 1]
        assert config.min_operand <= b <= config.max_operand and 0 <= c <= config.max_value
        previous = c
    assert str(previous) == answer
    assert config.min_ops <= len(lines) <= config.max_ops
    return len(lines)


def test_arith_reference_solutions_check_exactly_and_respect_the_difficulty_knobs():
    config = arith.ArithConfig(min_ops=1, max_ops=5, max_operand=12, max_value=200)
    rows = arith.generate(300, seed=7, config=config)
    step_counts = set()
    for row in rows:
        info = row["extra_info"]
        step_counts.add(
            check_solution(info["problem"], info["reference_solution"], row["reward_model"]["ground_truth"], config)
        )
        assert arith.STEP_INSTRUCTION in info["problem"] and row["data_source"] == "sgpo/arith"
        assert row["prompt"] == [{"role": "user", "content": info["problem"]}]  # no second instruction
    assert step_counts == {1, 2, 3, 4, 5}
    assert len({r["extra_info"]["problem"] for r in rows}) == 300


def test_arith_is_deterministic_per_seed_and_splits_never_share_a_problem(prepared):
    assert arith.generate(20, seed=3) == arith.generate(20, seed=3)
    assert arith.generate(20, seed=3) != arith.generate(20, seed=4)
    example = arith.ArithProblem("((17 + 5) * 3) - 8", ((17, "+", 5, 22), (22, "*", 3, 66), (66, "-", 8, 58)), 58)
    assert example.solution == "17 + 5 = 22\n22 * 3 = 66\n66 - 8 = 58"
    out, _ = prepared
    train = read_rows(out / "arith/train.parquet")
    val = read_rows(out / "arith/val.parquet")
    assert (len(train), len(val)) == (ARITH_TRAIN, ARITH_VAL)
    assert not {r["extra_info"]["problem"] for r in train} & {r["extra_info"]["problem"] for r in val}
    assert manifest_of(out / "arith/train.parquet")["source"] == {
        "origin": "generated",
        "seed": 0,
        "config": {
            "min_ops": 2,
            "max_ops": 4,
            "min_operand": 1,
            "max_operand": 20,
            "max_value": 999,
            "operations": ["+", "-", "*"],
        },
    }


def test_arith_settings_are_validated():
    with pytest.raises(ValueError, match="min_ops"):
        arith.ArithConfig(min_ops=3, max_ops=2)
    with pytest.raises(ValueError, match="operations"):
        arith.ArithConfig(operations=("/",))
    with pytest.raises(ValueError, match="distinct problems"):
        arith.generate_problems(50, seed=0, config=arith.ArithConfig(min_ops=1, max_ops=1, max_operand=2, max_value=10))


# ------------------------------------------------------------------------------------------------
# the command line
# ------------------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "data_prep", *args], capture_output=True, text=True, timeout=300)


def test_cli_lists_writes_and_prints_paths(tmp_path):
    listing = run_cli("list")
    assert listing.returncode == 0
    for spec in REGISTRY.values():
        assert spec.name in listing.stdout and spec.data_source in listing.stdout
    assert all(group in listing.stdout for group in GROUPS) and all(t in listing.stdout for t in TEMPLATES)

    out = tmp_path / "data"
    common = ["--out", str(out), "--source-dir", str(FIXTURES), "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    written = run_cli(
        "write", "aime24", "arith", "--arith-train-size", "8", "--arith-val-size", "2", "--arith-max-ops", "2", *common
    )
    assert written.returncode == 0, written.stderr
    for path in (out / "aime24/test.parquet", out / "arith/train.parquet", out / "arith/val.parquet"):
        assert f"wrote {path} (" in written.stdout
    assert len(read_rows(out / "arith/train.parquet")) == 8
    assert "contamination: arith/train: 0 of 8 rows" in written.stdout

    source = copy_source(tmp_path, "math-ai/aime25")
    write_jsonl(source / "test.jsonl", [GOOD_AIME25, {"problem": "Find x.", "answer": "many", "id": "1"}])
    failed = run_cli("write", "aime25", "--source", f"aime25={source}", *common[:2], "--quiet")
    assert failed.returncode == 2
    assert "dataset 'aime25', source row 1: answer: answer 'many' is not an integer" in failed.stderr
    assert "--drop-bad-rows" in failed.stderr and "nothing was written" in failed.stderr
    assert not (out / "aime25").exists()

    override = run_cli("chat-template", "none", "--hydra-override")
    assert override.stdout.strip() == hydra_override(TEMPLATES["none"])


# ------------------------------------------------------------------------------------------------
# robustness: broken sources and failed writes stop the run with exit 2, a message that names the
# dataset, the file, the row and the fix, and nothing written (the output folder is as it was)
# ------------------------------------------------------------------------------------------------


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too: staging folders, ``.tmp`` files) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def cli_write(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("write", *args, "--out", str(tmp / "data"), "--cache-dir", str(tmp / "cache"), "--quiet")


def assert_refused(run: subprocess.CompletedProcess, out: Path, before: dict[str, bytes], *fragments: str) -> None:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    for fragment in (*fragments, "Fix:", "nothing was written"):
        assert fragment in run.stderr, f"{fragment!r} not in:\n{run.stderr}"
    assert (tree_bytes(out) if out.exists() else {}) == before, "the output folder must be as it was"


@pytest.mark.parametrize(
    "answers, field, row",
    [
        (["1", ["2", "3"], 5], "'final_answer'", "row 2"),  # datasets reads "1" as 1 and blamed row 0
        ([["1"], ["2", 3]], "'final_answer[]'", "row 2"),
    ],
)
def test_a_mixed_type_json_column_is_refused_naming_its_row_and_field(tmp_path, answers, field, row):
    source = copy_source(tmp_path, "math-ai/olympiadbench")
    write_jsonl(source / "test.jsonl", [{"question": f"Q{i}", "final_answer": a} for i, a in enumerate(answers)])
    run = cli_write(tmp_path, "olympiadbench", "--source", f"olympiadbench={source}")
    assert_refused(run, tmp_path / "data", {}, "dataset 'olympiadbench'", f"{source / 'test.jsonl'}, {row}:", field)
    assert "one JSON type in every row" in run.stderr


@pytest.mark.parametrize(
    "content, fragments",
    [
        (b'{"problem": "Q", "answer": "2", "id": "0"}\n\n{"problem": "Q\xff", "answer": "3", "id": "1"}\n',
         ("row 2: line 3: byte", "not valid UTF-8", "re-encode the file as UTF-8")),
        (b"", ("the file is empty", "hf download math-ai/aime25")),
        (b'{"problem": "Q", "answer": "2", "id": "0"}\n{"problem": "Q2", "ans\n',
         ("row 2: line 2 is not valid JSON", "repair the file")),
        (b'[{"problem": "Q", "answer": "2", "id": "0"}, 7]', ("row 2: array item 2 is a number, not a row object",)),
    ],
    ids=["invalid-utf8", "empty", "corrupt-json", "json-array-non-object"],
)
def test_a_broken_local_json_file_is_refused_naming_dataset_file_row_and_fix(tmp_path, content, fragments):
    source = copy_source(tmp_path, "math-ai/aime25")
    (source / "test.jsonl").write_bytes(content)
    run = cli_write(tmp_path, "aime25", "--source", f"aime25={source}")
    assert_refused(run, tmp_path / "data", {}, f"dataset 'aime25', file {source / 'test.jsonl'}", *fragments)


def test_a_truncated_or_non_utf8_parquet_file_is_refused_naming_the_file_and_row(tmp_path):
    source = copy_source(tmp_path, "HuggingFaceH4/aime_2024")
    shard = source / "data" / "train-00000-of-00001.parquet"
    table = pq.read_table(shard)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    truncated = cli_write(tmp_path, "aime24", "--source", f"aime24={source}")
    assert_refused(truncated, tmp_path / "data", {}, f"dataset 'aime24', file {shard}:", "not a readable parquet")

    # Parquet writers need not check UTF-8 (pyarrow does not): plant invalid bytes in the second row.
    problems = [p.encode() for p in table.column("problem").to_pylist()]
    problems[1] = b"Find \xff."
    bad_text = pa.array(problems, pa.binary()).view(pa.string())
    pq.write_table(table.set_column(table.schema.get_field_index("problem"), "problem", bad_text), shard)
    invalid = cli_write(tmp_path, "aime24", "--source", f"aime24={source}")
    assert_refused(invalid, tmp_path / "data", {}, f"dataset 'aime24', file {shard}, row 2:", "not valid UTF-8")


def test_drop_bad_rows_that_drops_every_row_writes_nothing(tmp_path):
    source = copy_source(tmp_path, "math-ai/aime25")
    assert cli_write(tmp_path, "aime25", "--source", f"aime25={source}").returncode == 0
    before = tree_bytes(tmp_path / "data")  # an earlier good run must survive untouched
    write_jsonl(source / "test.jsonl", [{"problem": "", "answer": "2", "id": "0"}, {"problem": "Q", "answer": "x"}])
    run = cli_write(tmp_path, "aime25", "--source", f"aime25={source}", "--drop-bad-rows")
    assert_refused(
        run, tmp_path / "data", before, f"dataset 'aime25' split 'test' (read from {source})",
        "no row is left to write - 2 rows read, 2 dropped as bad",
        "source row 0: problem: is empty; source row 1: answer: answer 'x' is not an integer",
    )


def test_a_write_failure_on_the_second_dataset_keeps_the_first_as_it_was_and_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "data"
    assert cli_write(tmp_path, "math500", "--source-dir", str(FIXTURES)).returncode == 0
    blocker = out / "aime25" / "test.parquet"
    blocker.mkdir(parents=True)  # a real fault: a folder where aime25's file must go
    before = tree_bytes(out)
    # qwen_math changes math500's bytes, so a math500 left half-replaced would show.
    run = cli_write(tmp_path, "math500", "aime25", "--source-dir", str(FIXTURES), "--template", "qwen_math")
    assert_refused(run, out, before, "dataset 'aime25'", f"could not write {blocker}", "--out another folder")
    assert sorted(p.name for p in out.iterdir()) == ["aime25", "math500"], "no staging folder left"


def test_an_output_root_below_a_file_is_refused_with_the_fix(tmp_path):
    in_the_way = tmp_path / "data"
    in_the_way.write_text("not a folder")
    run = run_cli(
        "write", "aime25", "--source-dir", str(FIXTURES), "--out", str(in_the_way / "sub"), "--quiet",
        "--cache-dir", str(tmp_path / "cache"),
    )
    assert_refused(run, tmp_path / "none", {}, "dataset 'aime25'", f"could not write {in_the_way / 'sub'}")
    assert in_the_way.read_text() == "not a folder"


def test_a_same_size_edit_with_its_mtime_restored_is_read_afresh(tmp_path):
    source = copy_source(tmp_path, "math-ai/aime25")
    data = source / "test.jsonl"
    write_jsonl(data, [{"problem": "Find 1+1.", "answer": "2", "id": "0"}])
    assert cli_write(tmp_path, "aime25", "--source", f"aime25={source}").returncode == 0
    stat = data.stat()
    write_jsonl(data, [{"problem": "Find 2+2.", "answer": "4", "id": "0"}])  # same size
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert data.stat().st_size == stat.st_size and data.stat().st_mtime_ns == stat.st_mtime_ns
    assert cli_write(tmp_path, "aime25", "--source", f"aime25={source}").returncode == 0
    written = tmp_path / "data" / "aime25" / "test.parquet"
    (row,) = read_rows(written)
    assert (row["extra_info"]["problem"], row["reward_model"]["ground_truth"]) == ("Find 2+2.", "4")
    assert manifest_of(written)["source"]["files_sha256"] == {"test.jsonl": sha256_of(data)}
