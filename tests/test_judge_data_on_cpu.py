"""Judge-training data (data_prep/judge_data.py): every source converted from committed fixtures in its
published schema, labels mapped onto the project's own steps, the rows exactly what the judge is sent at
training time, balance, exclusions and contamination counted, and the held-out files judged by the benchmark.

Fixtures: tests/fixtures/data_prep/{tasksource/PRM800K, peiyi9979/Math-Shepherd, Qwen/ProcessBench}
(built by build_fixtures.py there; what each row is for is written beside it).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_prep import judge_data
from data_prep.judge_data import Excluded, LabelledSolution, RenderSettings, render
from data_prep.pipeline import EmptyOutputError, PrepareOptions, prepare
from data_prep.schema import BadRowError
from reward.judge import JudgeConfig, JudgeRequest
from reward.judge.backends.openai_chat import OpenAIChatBackend
from reward.judge.backends.rule import RuleBackend
from reward.judge.benchmark import judge_file_samples, run_benchmark
from reward.judge.prompt import PromptTemplate, parse_verdict
from reward.judge.steps import judged_prefix

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "data_prep"
ARITH_TRAIN, ARITH_TEST = 120, 40


def options(tmp: Path, **overrides) -> PrepareOptions:
    settings = dict(output_dir=tmp / "data", source_dir=FIXTURES, cache_dir=str(tmp / "hf_cache"),
                    judge_arith_train_size=ARITH_TRAIN, judge_arith_test_size=ARITH_TEST, show_progress=False)
    settings.update(overrides)
    return PrepareOptions(**settings)


def rows(out: Path, name: str, split: str) -> list[dict]:
    return pq.read_table(out / name / f"{split}.parquet").to_pylist()


def manifest(out: Path, name: str, split: str) -> dict:
    return json.loads((out / name / f"{split}.manifest.json").read_text())


@pytest.fixture(scope="module")
def unbalanced(tmp_path_factory):
    """Every judge source (MATH files first, for PRM800K's joined solutions), nothing sub-sampled."""
    tmp = tmp_path_factory.mktemp("judge_data")
    prepare(["math_train", "math500"], options(tmp))
    prepare(["judge"], options(tmp, judge_balance=False))
    return tmp / "data"


# -- PRM800K ------------------------------------------------------------------------------------------------------
def test_prm800k_first_rated_minus_one_step_is_the_label_on_the_whole_solution(unbalanced):
    by_problem = {row["problem"]: row for row in rows(unbalanced, "judge_prm800k", "train")}
    divisors = by_problem["How many positive divisors does 12 have?"]
    # the third step was rated -1; the judge sees all four pre-generated steps, not only the rated ones
    assert divisors["first_error_step"] == 3 and divisors["source_first_error"] == 2
    assert len(divisors["steps"]) == 4 and divisors["steps"][2] == "So 12 has 5 positive divisors."
    assert divisors["messages"][1] == {"role": "assistant", "content": "VERDICT: 3"}
    assert divisors["reference_answer"] == "6" and divisors["reference_solution"] is None  # not a MATH problem
    continuous = next(row for problem, row in by_problem.items() if "piecewise function" in problem)
    assert continuous["first_error_step"] is None and continuous["messages"][1]["content"] == "VERDICT: none"
    # no solution of its own: MATH's reference solution, joined by problem, is in the prompt
    assert continuous["reference_solution"].startswith("For the piecewise function to be continuous")
    assert "<reference_solution>" in continuous["messages"][0]["content"]


def test_prm800k_unfinished_and_unmappable_rows_are_excluded_and_counted(unbalanced):
    counts = manifest(unbalanced, "judge_prm800k", "train")["counts"]
    assert counts["rows_read"] == 5 and counts["written"] == 3
    assert counts["excluded_by_rule"] == {
        "finish_reason give_up (labelling did not finish)": 1,
        "the first wrong step is split across several project steps (unmappable)": 1,
    }


def test_prm800k_reads_phase_2_only():
    # its phase-1 file has another schema; the registry names the phase-2 files of each split
    from data_prep.registry import REGISTRY

    assert REGISTRY["judge_prm800k"].data_files == {"train": "phase2_train.jsonl", "test": "phase2_test.jsonl"}


def test_without_prepared_math_files_prm800k_falls_back_to_the_answer(tmp_path):
    prepare(["judge_prm800k"], options(tmp_path, judge_balance=False))
    written = rows(tmp_path / "data", "judge_prm800k", "train")
    assert all(row["reference_solution"] is None for row in written)
    assert "Reference answer" in written[0]["messages"][0]["content"]
    assert manifest(tmp_path / "data", "judge_prm800k", "train")["rows_without_reference_solution"] == len(written)


# -- Math-Shepherd ------------------------------------------------------------------------------------------------
def test_math_shepherd_labels_reference_answers_and_held_out_problems(unbalanced):
    train = rows(unbalanced, "judge_math_shepherd", "train")
    test = rows(unbalanced, "judge_math_shepherd", "test")
    labels = sorted((row["first_error_step"] or 0, row["reference_answer"]) for row in train)
    # ducks: right (none) and wrong from step 2, both with the answer of the solution ending in '+'; Tom:
    # wrong from step 1 and no solution ending in '+', so no reference
    assert labels == [(0, "18"), (1, None), (2, "18")]
    assert "No reference is available" in next(r for r in train if r["reference_answer"] is None)["messages"][0]["content"]
    assert [row["problem"] for row in test] == [p for p in (r["problem"] for r in test) if "variant" in p]
    assert len(test) == 1 and not {r["problem"] for r in test} & {r["problem"] for r in train}


@pytest.mark.parametrize("label, reason", [
    ("Q? Step 1: a. +\nStep 2: b. ?", "tag 2 is labelled '?'"),
    ("Q? Step 1: a. +\nStep 2: c. -", "label does not match input before tag 2"),
])
def test_a_math_shepherd_row_whose_label_does_not_line_up_is_a_bad_row(tmp_path, label, reason):
    source = tmp_path / "shepherd.jsonl"
    source.write_text(json.dumps({"input": "Q? Step 1: a. ки\nStep 2: b. ки", "label": label, "task": "GSM8K"}) + "\n")
    with pytest.raises(BadRowError, match=reason) as caught:
        prepare(["judge_math_shepherd"], options(tmp_path, sources={"judge_math_shepherd": source}))
    assert caught.value.dataset == "judge_math_shepherd" and caught.value.index == 0
    assert not (tmp_path / "data").exists()
    # under --drop-bad-rows it is counted; with no held-out problem the test split would be empty: refused
    good = {"input": "Q? Step 1: a. ки\nStep 2: b. ки", "label": "Q? Step 1: a. +\nStep 2: b. -", "task": "GSM8K"}
    source.write_text(source.read_text() + json.dumps(good) + "\n")
    dropping = options(tmp_path, sources={"judge_math_shepherd": source}, drop_bad_rows=True, judge_balance=False)
    with pytest.raises(EmptyOutputError, match="holds 2% of the problems"):
        prepare(["judge_math_shepherd"], dropping)
    held_out = {key: value.replace("Q?", held_out_problem()) for key, value in good.items()}
    source.write_text(source.read_text() + json.dumps(held_out) + "\n")
    prepare(["judge_math_shepherd"], dropping)
    counts = manifest(tmp_path / "data", "judge_math_shepherd", "train")["counts"]
    assert counts["bad_rows_dropped"] == {"label": 1} and counts["written"] == 1
    assert manifest(tmp_path / "data", "judge_math_shepherd", "test")["counts"]["written"] == 1


def held_out_problem() -> str:
    return next(f"Q{n}?" for n in range(10_000) if judge_data.in_holdout(f"Q{n}?", judge_data.HOLDOUT_SHARE))


# -- ProcessBench -------------------------------------------------------------------------------------------------
def test_processbench_keeps_its_steps_and_has_no_reference(unbalanced):
    math = rows(unbalanced, "judge_processbench", "math")[0]
    assert math["steps"] == ["$r = 3$.", "$\\theta = \\pi$."] and math["steps_as_given"]
    assert math["first_error_step"] == 2 and math["reference_answer"] is None
    assert rows(unbalanced, "judge_processbench", "gsm8k")[0]["first_error_step"] is None
    assert manifest(unbalanced, "judge_processbench", "math")["counts"]["balanced"] is False


# -- the arithmetic task --------------------------------------------------------------------------------------------
def test_arith_labels_equal_the_rule_verifiers_and_splits_never_share_a_problem(unbalanced):
    backend = RuleBackend(JudgeConfig.from_mapping({"backend": "rule"}))
    train, test = rows(unbalanced, "judge_arith", "train"), rows(unbalanced, "judge_arith", "test")
    for row in train + test:
        request = JudgeRequest(problem=row["problem"], reference_answer=row["reference_answer"],
                               response=row["response"], reference_solution=row["reference_solution"])
        assert backend.locate(request, backend.segment(request)) == row["first_error_step"], row["steps"]
    assert len(train) == ARITH_TRAIN and len(test) == ARITH_TEST
    assert not {r["problem"] for r in train} & {r["problem"] for r in test}
    steps = [row["first_error_step"] for row in train]
    # every error kind occurs: slips at several steps, a wrong box after right lines, bare guesses
    assert None in steps and len({s for s in steps if s is not None}) >= 3
    assert any(len(row["steps"]) == 1 and row["first_error_step"] == 1 for row in train)  # a bare guess
    assert any(row["first_error_step"] == len(row["steps"]) > 1 for row in train)  # the box is the error


def test_arith_examples_are_deterministic_per_seed():
    first = judge_data.arith_solutions({"train": 30}, seed=3)
    assert first == judge_data.arith_solutions({"train": 30}, seed=3)
    assert first != judge_data.arith_solutions({"train": 30}, seed=4)


# -- the rows are what the judge is sent ---------------------------------------------------------------------------
def test_every_row_is_the_prompt_the_judge_sends_and_its_target_parses_to_the_label(unbalanced):
    config = JudgeConfig()
    template = PromptTemplate.load(config.prompt_version)
    backend = OpenAIChatBackend(config, template, name="openai", base_url="http://127.0.0.1:9/v1", model="judge",
                                api_key=None)
    checked = 0
    for name, splits in (("judge_prm800k", ("train", "test")), ("judge_math_shepherd", ("train", "test")),
                         ("judge_arith", ("train", "test")), ("judge_processbench", ("math", "gsm8k"))):
        for split in splits:
            for row in rows(unbalanced, name, split):
                request = JudgeRequest(problem=row["problem"], reference_answer=row["reference_answer"] or "",
                                       response=row["response"], reference_solution=row["reference_solution"],
                                       steps=tuple(row["steps"]) if row["steps_as_given"] else None)
                judged = judged_prefix(backend.segment(request), config.steps.max_judged_chars)
                assert [step.text for step in judged.steps] == row["steps"]
                assert backend.prompt(request, judged) == row["messages"][0]["content"]
                assert parse_verdict(row["messages"][1]["content"], len(row["steps"])) == row["first_error_step"]
                checked += 1
    assert checked > ARITH_TRAIN + ARITH_TEST


# -- rendering rules ---------------------------------------------------------------------------------------------------
def solution(steps, first_error):
    return LabelledSolution("Find x.", tuple(steps), first_error, "1", None, "t:0")


def test_a_short_wrong_step_merged_into_the_next_maps_to_that_step():
    # "x = 2." is under min_step_chars: it joins the following step, which is therefore the first wrong one
    example = render(solution(["We start from the equation.", "x = 2.", "Check: 2 works."], 1), RenderSettings())
    assert example.steps == ("We start from the equation.", "x = 2.\n\nCheck: 2 works.")
    assert example.first_error_step == 2


@pytest.mark.parametrize("steps, first_error, settings, reason", [
    (["Intro line here.", "Part one.\n\nPart two."], 1, RenderSettings(), "split across several project steps"),
    (["A" * 50, "B" * 50], 1, RenderSettings(max_judged_chars=60), "beyond the judged prefix"),
    (["A" * 50, "B" * 50], None, RenderSettings(max_judged_chars=60), "longer than the judged prefix"),
    (["A" * 80], 0, RenderSettings(max_judged_chars=60), "beyond the judged prefix"),  # the step itself is cut
    (["A first step.", "   "], 1, RenderSettings(), "blank"),
])
def test_labels_that_cannot_be_mapped_are_excluded_with_their_reason(steps, first_error, settings, reason):
    with pytest.raises(Excluded, match=reason):
        render(solution(steps, first_error), settings)


def test_an_error_inside_the_judged_prefix_is_kept_when_later_steps_do_not_fit():
    example = render(solution(["A" * 50, "B" * 50], 0), RenderSettings(max_judged_chars=60))
    assert example.first_error_step == 1 and example.steps == ("A" * 50,)


# -- balance and contamination ---------------------------------------------------------------------------------------
def test_train_splits_are_balanced_and_the_balance_is_reported(tmp_path):
    prepare(["judge_arith"], options(tmp_path))
    out = tmp_path / "data"
    train, counts = rows(out, "judge_arith", "train"), manifest(out, "judge_arith", "train")["counts"]
    correct = sum(row["first_error_step"] is None for row in train)
    assert correct == len(train) - correct == counts["written_classes"]["correct"] == counts["written_classes"]["erroneous"]
    before = counts["before_balance"]
    assert before["correct"] + before["erroneous"] == ARITH_TRAIN and len(train) == 2 * min(before["correct"], before["erroneous"])
    assert sum(counts["written_classes"]["first_error_step"].values()) == len(train) - correct
    test_counts = manifest(out, "judge_arith", "test")["counts"]
    assert test_counts["balanced"] is False and test_counts["written"] == ARITH_TEST


def test_contamination_with_benchmarks_and_processbench_is_reported_and_can_be_removed(tmp_path):
    prepare(["math500", "judge_processbench"], options(tmp_path))
    result = prepare(["judge_prm800k"], options(tmp_path, judge_balance=False))
    entry = result.contamination["training_sets"]["judge_prm800k/train"]
    assert entry["contaminated_rows"] == 1
    assert entry["overlaps_per_benchmark"] == {"judge_processbench/math": 1, "math500": 1}
    assert "judge_prm800k/test" not in result.contamination["training_sets"]  # held-out rows are not training data
    prepare(["judge_prm800k"], options(tmp_path, judge_balance=False, decontaminate=True))
    out = tmp_path / "data"
    problems = [row["problem"] for row in rows(out, "judge_prm800k", "train")]
    assert len(problems) == 2 and not any("(0,3)" in p for p in problems)
    assert manifest(out, "judge_prm800k", "train")["counts"]["removed_as_contaminated"] == 1


# -- the benchmark judges the held-out files -------------------------------------------------------------------------------
def test_the_benchmark_reads_a_judge_file_and_the_rule_verifier_scores_it_exactly(unbalanced):
    config = JudgeConfig.from_mapping({"backend": "rule"})
    samples = judge_file_samples(unbalanced / "judge_arith" / "test.parquet", config)
    metrics = asyncio.run(run_benchmark(samples, config, concurrency=8, progress=False))
    assert metrics["samples"] == ARITH_TEST and metrics["erroneous"] == sum(s.label is not None for s in samples)
    assert metrics["f1"] == 1.0 and metrics["not_judged"] == 0.0


def test_the_benchmark_refuses_a_judge_file_written_with_other_step_settings(unbalanced, tmp_path):
    for name in ("test.parquet", "test.manifest.json"):
        shutil.copy(unbalanced / "judge_arith" / name, tmp_path / name)
    with pytest.raises(ValueError, match="step settings"):
        judge_file_samples(tmp_path / "test.parquet", JudgeConfig.from_mapping({"steps": {"max_steps": 5}}))
    with pytest.raises(ValueError, match="not a judge-example file"):
        judge_file_samples(unbalanced / "math500" / "test.parquet", JudgeConfig())


def test_the_steps_rationale_walks_the_steps_to_the_first_error_and_ends_with_the_verdict(tmp_path):
    prepare(["judge_arith"], options(tmp_path, judge_rationale="steps", judge_balance=False))
    written = rows(tmp_path / "data", "judge_arith", "test")
    for row in written:
        *walk, verdict = row["messages"][1]["content"].splitlines()
        label = row["first_error_step"]
        assert len(walk) == (label or len(row["steps"]))
        assert walk[-1].endswith(" - incorrect" if label else " - correct")
        assert all(line.endswith(" - correct") for line in walk[:-1])
        assert all(line.startswith(f"Step {k}: {row['steps'][k - 1].splitlines()[0][:80]}") for k, line in enumerate(walk, 1))
        assert parse_verdict(row["messages"][1]["content"], len(row["steps"])) == label
    assert manifest(tmp_path / "data", "judge_arith", "test")["options"]["judge_rationale"] == "steps"
    with pytest.raises(ValueError, match="judge_rationale"):
        options(tmp_path, judge_rationale="long")
