"""The judge-overhead step-time model (recipe/sgpo/overhead): its queueing core worked out by hand, the
schedules' judge-call counts, and the CLI on the shipped and on a broken input table."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from recipe.sgpo.overhead import (
    Request,
    ThroughputCurve,
    load_inputs,
    predict,
    prediction_table,
    serve,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

#: 10 tokens/s in total whatever the concurrency: processor sharing splits it evenly.
FLAT = ThroughputCurve((1.0,), (10.0,))


def test_processor_sharing_splits_the_throughput_between_requests_in_flight():
    # two requests at t=0, work 10 and 20 tokens: 5 tok/s each until t=2, then the second alone at 10 tok/s
    assert serve([Request(0.0, 10.0), Request(0.0, 20.0)], FLAT, replicas=1, max_in_flight=8) == pytest.approx([2.0, 3.0])


def test_a_queued_request_starts_when_a_cancelled_one_frees_its_slot():
    # one slot: the long request is cancelled at t=1 (its group turned out mixed), the short one then runs 1 s
    done = serve([Request(0.0, 100.0, cancel_s=1.0), Request(0.0, 10.0)], FLAT, replicas=1, max_in_flight=1)
    assert math.isnan(done[0]) and done[1] == pytest.approx(2.0)


def test_throughput_table_is_interpolated_and_flat_beyond_its_ends():
    curve = ThroughputCurve((1.0, 9.0), (100.0, 500.0))
    assert (curve.at(0.5), curve.at(5.0), curve.at(100.0)) == pytest.approx((50.0, 300.0, 500.0))
    with pytest.raises(ValueError, match="increasing concurrency"):
        ThroughputCurve((9.0, 1.0), (100.0, 500.0))


@pytest.fixture(scope="module")
def inputs():
    return load_inputs()


def test_after_group_judges_exactly_the_wrong_members_of_all_negative_groups(inputs):
    run, judge = inputs["runs"]["qwen2.5-7b"], inputs["judges"]["qwq-32b"]
    early = predict(run, judge, inputs["phases"]["early"], "after_group")
    groups = run["train_batch_size"] * inputs["phases"]["early"]["all_negative_share"]
    assert (early.judge_calls, early.wasted_calls) == (round(groups) * run["n"], 0)
    # no all-negative group: nothing judged, the step is a GRPO step
    none_negative = predict(run, judge, {"all_negative_share": 0.0, "other_accuracy": 0.5}, "after_group")
    assert none_negative.judge_calls == 0 and none_negative.ratio == pytest.approx(1.0)


def test_eager_adds_only_wasted_calls_and_never_lengthens_the_step(inputs):
    for run in inputs["runs"].values():
        for phase in inputs["phases"].values():
            after = predict(run, inputs["judges"]["qwq-32b"], phase, "after_group")
            eager = predict(run, inputs["judges"]["qwq-32b"], phase, "eager")
            assert eager.judge_calls - eager.wasted_calls == after.judge_calls
            assert eager.wasted_calls > 0  # mixed groups with a wrong member graded before a correct one
            assert eager.step_s <= after.step_s * 1.01  # 1 %: the wasted calls' share of the judge in flight


def test_a_reasoning_judge_costs_more_than_a_short_answer_judge(inputs):
    run, phase = inputs["runs"]["qwen2.5-7b"], inputs["phases"]["early"]
    qwq = predict(run, inputs["judges"]["qwq-32b"], phase, "after_group")
    small = predict(run, inputs["judges"]["small-instruct-7b"], phase, "after_group")
    assert qwq.ratio > 2.0 > small.ratio >= 1.0


def test_cli_prints_one_markdown_row_per_launch_script_and_judge(inputs):
    done = subprocess.run([sys.executable, "-m", "recipe.sgpo.overhead", "--markdown"], capture_output=True,
                          text=True, check=True)
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "launch script" not in line]
    assert len(rows) == len(inputs["runs"]) * len(inputs["judges"])
    assert len(prediction_table(inputs)) == len(rows) * 4  # x 2 phases x 2 schedules


def test_cli_names_a_broken_input_table_and_prints_no_table(tmp_path, inputs):
    broken = copy.deepcopy(inputs)
    del broken["runs"]["qwen2.5-7b"]["rollout_throughput"]
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps(broken))
    done = subprocess.run([sys.executable, "-m", "recipe.sgpo.overhead", "--inputs", str(path)], capture_output=True,
                          text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert str(path) in done.stderr and "rollout_throughput" in done.stderr


# --------------------------------------------------------------------------------------------------
# Calibration on measured policy timings (the CPU validation, tests/benchmarks/validate_overhead_cpu.py)
# --------------------------------------------------------------------------------------------------


def measured_run(**changes):
    """A run row with the measured policy side: 2 groups of 2, static batches of 2 responses."""
    run = {"train_batch_size": 2, "n": 2, "generation_s": 10.0, "static_batch_sequences": 2, "update_s": 3.0,
           "grade_s": 0.0, "response_mean_tokens": 20.0, "response_cv": 0.5, "max_response_length": 64.0,
           "wrong_length_factor": 1.0, "judged_tokens_mean": None}
    return {**run, **changes}


#: A judge whose work is exactly its output tokens (prefill folded into the measured rate), 10 tok/s.
FLAT_JUDGE = {"replicas": 1, "max_in_flight": 8, "output_tokens": 20.0, "prompt_overhead_tokens": 0.0,
              "prefill_cost": 0.0, "throughput": {"concurrency": [1.0], "tokens_per_s": [10.0]}}


def test_static_batches_complete_chunk_by_chunk_and_the_measured_update_is_added():
    from recipe.sgpo.overhead import generation_completions

    assert generation_completions(measured_run(), [5.0] * 4) == pytest.approx([5.0, 5.0, 10.0, 10.0])
    assert generation_completions(measured_run(static_batch_sequences=64), [5.0] * 4) == pytest.approx([10.0] * 4)
    grpo = predict(measured_run(), FLAT_JUDGE, {"all_negative_share": 0.5, "other_accuracy": 1.0}, "grpo")
    assert grpo.step_s == pytest.approx(13.0) and grpo.update_s == pytest.approx(3.0)
    with pytest.raises(ValueError, match="static_batch_sequences"):
        generation_completions(measured_run(static_batch_sequences=0), [5.0])


def test_measured_judging_adds_the_judge_servers_time_after_the_static_batch():
    # one static batch (all 4 responses at 10 s), both groups all wrong: 4 calls of 20 tokens at 10 tok/s in
    # total take 8 s after the batch, whatever the concurrency; the step adds the measured update (3 s)
    everything_wrong = {"all_negative_share": 1.0, "other_accuracy": 0.0}
    one_batch = measured_run(static_batch_sequences=64)
    for max_in_flight in (1, 8):
        step = predict(one_batch, {**FLAT_JUDGE, "max_in_flight": max_in_flight}, everything_wrong, "after_group")
        assert (step.judge_calls, step.wasted_calls) == (4, 0)
        assert (step.rollout_s, step.step_s, step.grpo_step_s) == pytest.approx((18.0, 21.0, 13.0))
    # eager sends each wrong response when it is graded: the same moment here, so the same step
    eager = predict(one_batch, FLAT_JUDGE, everything_wrong, "eager")
    assert eager.step_s == pytest.approx(21.0) and eager.wasted_calls == 0


def test_the_cpu_validation_feeds_the_baseline_timings_and_compares_used_calls():
    """tests/benchmarks/validate_overhead_cpu.py on hand-made metrics: update_s is the baseline step
    outside generation, validation and checkpoint; the SGPO step is compared without them too."""
    sys.path.insert(0, str(REPO_ROOT / "tests" / "benchmarks"))
    import validate_overhead_cpu as validation

    baseline = {1: {"timing_s/gen": 4.0, "timing_s/step": 9.0, "timing_s/testing": 1.5, "timing_s/save_checkpoint": 0.5}}
    sgpo = {1: {"timing_s/step": 30.0, "timing_s/testing": 2.0, "sgpo/groups/all_negative_share": 0.5,
                "sgpo/accuracy": 0.25, "response_length/mean": 12.0, "response_length/max": 40.0,
                "sgpo/judge/called": 4, "sgpo/judge/wasted": 0}}
    case = validation.Case("c", "b", batch_size=2, group_size=2, judge_concurrency=8)
    [row] = validation.compare(case, baseline, sgpo, FLAT_JUDGE, {"output_tokens": 20.0}, steps=1)
    # one of two groups all wrong: 2 calls x 20 tokens at 10 tok/s = 4 s after the 4 s batch; update 3 s
    assert row["grpo_step_s"] == pytest.approx(7.0) and row["measured_step_s"] == pytest.approx(28.0)
    assert row["predicted_step_s"] == pytest.approx(11.0, abs=1e-3)
    assert (row["predicted_calls"], row["measured_calls"]) == (2, 4)
    assert row["error"] == pytest.approx(11.0 / 28.0 - 1.0, abs=1e-4)
    assert "| c | 1 | 50 % | 20 |" in validation.markdown([row])
