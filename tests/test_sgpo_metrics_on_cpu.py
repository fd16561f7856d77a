"""The per-step `sgpo/...` training metrics (recipe/sgpo/metrics.py), worked out by hand."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from recipe.sgpo.config import SGPOConfig
from recipe.sgpo.metrics import all_negative_advantage_metrics, sgpo_step_metrics
from reward.encoding import encode_reward


def info(judged_g=None, called=False, failure=None, state="not_scheduled", latency=0.0, grade_timeout=0,
         malformed=0):
    return {
        "judge_called": int(called),
        "judged": int(judged_g is not None),
        "judge_failed": int(failure is not None),
        "judge_timeout": int(failure == "timeout"),
        "judge_parse_error": int(failure == "parse_error"),
        "graded_value": judged_g,
        "judge_latency_s": latency,
        "group_state": state,
        "grade_timeout": grade_timeout,
        "malformed_row": malformed,
    }


def test_metrics_of_a_hand_built_step():
    uids = ["mixed"] * 4 + ["graded"] * 4 + ["flat"] * 4 + ["solved"] * 2
    scores = torch.tensor([1, 0, 0, 0] + [0.4, 0.1, 0.1, 0.0] + [0.0] * 4 + [1, 1], dtype=torch.float32)
    infos = (
        [info(), info(state="mixed"), info(state="mixed"), info(state="mixed")]
        + [info(0.8, True, latency=2.0), info(0.2, True, latency=1.0), info(0.2, True, latency=1.0),
           info(None, True, failure="timeout", latency=4.0)]
        + [info(None, True, failure="parse_error", latency=1.0)] + [info(state="incomplete")] * 3
        + [info(), info()]
    )
    metrics = sgpo_step_metrics(uids, scores, infos, SGPOConfig())
    assert metrics["sgpo/accuracy"] == pytest.approx(3 / 14)
    assert metrics["sgpo/groups/all_negative_share"] == pytest.approx(0.5)
    assert metrics["sgpo/groups/all_positive_share"] == pytest.approx(0.25)
    assert metrics["sgpo/all_negative/usable_signal_share"] == pytest.approx(0.5)  # "graded" yes, "flat" no
    assert metrics["sgpo/all_negative/graded_value/mean"] == pytest.approx(0.4)
    # v = r / c of the judged members: "graded" [0.8, 0.2, 0.2] (its timed-out member is left out) has
    # std sqrt(0.12); "flat" has no judged member and is not averaged in
    assert metrics["sgpo/all_negative/graded_value/group_std_mean"] == pytest.approx(math.sqrt(0.12), rel=1e-5)
    assert metrics["sgpo/all_negative/judged_share"] == pytest.approx(3 / 8)
    assert metrics["sgpo/all_negative/not_judged_responses"] == 5
    assert metrics["sgpo/judge/called"] == 5
    assert metrics["sgpo/judge/judged"] == 3
    assert metrics["sgpo/judge/failures"] == 2
    assert metrics["sgpo/judge/timeouts"] == 1
    assert metrics["sgpo/judge/parse_failures"] == 1
    assert metrics["sgpo/judge/latency_s/mean"] == pytest.approx(9.0 / 5)
    assert metrics["sgpo/judge/latency_s/max"] == pytest.approx(4.0)
    assert metrics["sgpo/groups/incomplete_responses"] == 3


def test_binary_rewards_give_no_usable_signal():
    uids = ["a"] * 3 + ["b"] * 3
    scores = torch.tensor([0, 0, 0, 1, 0, 0], dtype=torch.float32)
    metrics = sgpo_step_metrics(uids, scores, [{}] * 6, SGPOConfig())
    assert metrics["sgpo/groups/all_negative_share"] == pytest.approx(0.5)
    assert metrics["sgpo/all_negative/usable_signal_share"] == 0.0
    assert metrics["sgpo/judge/called"] == 0


def test_usable_signal_needs_min_spread_and_two_judged_members():
    g = lambda value: encode_reward(False, value, 0.5)  # noqa: E731
    uids = ["tiny"] * 3 + ["lone"] * 3 + ["real"] * 2
    # "tiny": spread of v 1e-4 < min_spread 1e-3; "lone": one judged member; "real": v = [0.2, 0.8]
    scores = torch.tensor([g(0.2), g(0.2 + 0.5e-4), g(0.2 - 0.5e-4)] + [g(0.9), 0.0, 0.0] + [g(0.2), g(0.8)])
    metrics = sgpo_step_metrics(uids, scores, [{}] * 8, SGPOConfig())
    assert metrics["sgpo/all_negative/usable_signal_share"] == pytest.approx(1 / 3)
    assert metrics["sgpo/all_negative/judged_share"] == pytest.approx(6 / 8)
    loose = sgpo_step_metrics(uids, scores, [{}] * 8, SGPOConfig(min_spread=1e-5))
    assert loose["sgpo/all_negative/usable_signal_share"] == pytest.approx(2 / 3)


def test_grading_time_outs_and_malformed_rows_are_counted():
    infos = [info(grade_timeout=1), info(grade_timeout=1), info(malformed=1), {**info(), "judge_no_signal": 1}]
    metrics = sgpo_step_metrics(["a"] * 4, torch.zeros(4), infos, SGPOConfig())
    assert metrics["sgpo/grade/timeouts"] == 2
    assert metrics["sgpo/rows/malformed"] == 1
    assert metrics["sgpo/judge/no_signal"] == 1 and metrics["sgpo/judge/failures"] == 0


def test_advantage_metrics_count_what_all_negative_groups_received():
    uids = ["n"] * 3 + ["m"] * 2
    scores = torch.tensor([0.4, 0.1, 0.0, 1.0, 0.0])
    advantages = torch.tensor([0.9, -0.9, 0.0, 0.7, -0.7])
    metrics = all_negative_advantage_metrics(uids, scores, advantages)
    assert metrics["sgpo/advantage/all_negative_responses"] == 3
    assert metrics["sgpo/advantage/all_negative_nonzero_share"] == pytest.approx(2 / 3)
    assert metrics["sgpo/advantage/all_negative_abs_mean"] == pytest.approx(0.6)
    # advantages at float-noise level are not a signal
    noise = all_negative_advantage_metrics(uids, scores, torch.tensor([1e-8, -1e-8, 0.0, 0.7, -0.7]))
    assert noise["sgpo/advantage/all_negative_nonzero_share"] == 0.0
    empty = all_negative_advantage_metrics(["m"] * 2, torch.tensor([1.0, 0.0]), torch.tensor([0.7, -0.7]))
    assert empty["sgpo/advantage/all_negative_responses"] == 0.0


def test_wasted_early_judge_calls_are_counted_apart_from_used_ones():
    # judge_schedule=eager: two wrong members of a mixed group were judged early and their verdicts dropped
    uids = ["mixed"] * 3 + ["judged"] * 2
    scores = torch.tensor([1, 0, 0, 0.4, 0.1], dtype=torch.float32)
    wasted = {**info(state="mixed"), "judge_wasted": 1}
    infos = [info(state="mixed"), wasted, wasted, info(0.8, True, state="all_negative"),
             info(0.2, True, state="all_negative")]
    metrics = sgpo_step_metrics(uids, scores, infos, SGPOConfig())
    assert metrics["sgpo/judge/wasted"] == 2
    assert metrics["sgpo/judge/called"] == 2  # only the verdicts that were used


def test_a_step_without_judged_members_reports_zeros_not_errors():
    # one group, all-negative, nobody judged (grpo, or every judge call failed): shares over one group
    metrics = sgpo_step_metrics(["only"] * 3, torch.zeros(3), [{}] * 3, SGPOConfig())
    assert metrics["sgpo/groups/all_negative_share"] == 1.0
    assert metrics["sgpo/all_negative/usable_signal_share"] == 0.0
    assert metrics["sgpo/all_negative/graded_value/mean"] == 0.0
    assert metrics["sgpo/all_negative/graded_value/group_std_mean"] == 0.0
    assert metrics["sgpo/judge/latency_s/mean"] == 0.0 and metrics["sgpo/judge/latency_s/max"] == 0.0
    # every group solved: nothing all-negative to take a share of
    solved = sgpo_step_metrics(["s"] * 2, torch.ones(2), [{}] * 2, SGPOConfig())
    assert solved["sgpo/all_negative/judged_share"] == 0.0 and solved["sgpo/all_negative/usable_signal_share"] == 0.0


def test_the_usable_share_of_a_single_group_is_one_when_it_has_spread():
    g = lambda value: encode_reward(False, value, 0.5)  # noqa: E731
    metrics = sgpo_step_metrics(["one"] * 2, torch.tensor([g(0.2), g(0.8)]), [{}] * 2, SGPOConfig())
    assert metrics["sgpo/all_negative/usable_signal_share"] == 1.0
    assert metrics["sgpo/all_negative/judged_share"] == 1.0


def test_a_spread_exactly_at_min_spread_is_usable():
    g = lambda value: encode_reward(False, value, 0.5)  # noqa: E731
    scores = torch.tensor([g(0.25), g(0.75)])
    spread = sgpo_step_metrics(["a"] * 2, scores, [{}] * 2, SGPOConfig())["sgpo/all_negative/graded_value/group_std_mean"]
    assert spread > 0
    at_threshold = sgpo_step_metrics(["a"] * 2, scores, [{}] * 2, SGPOConfig(min_spread=spread))
    assert at_threshold["sgpo/all_negative/usable_signal_share"] == 1.0  # ">= min_spread", as the estimator does


def test_a_judge_call_without_a_latency_counts_zero_seconds():
    infos = [info(0.5, True, latency=2.0), {"judge_called": 1, "judged": 1, "graded_value": 0.1}]
    metrics = sgpo_step_metrics(["a"] * 2, torch.tensor([0.25, 0.05]), infos, SGPOConfig())
    assert metrics["sgpo/judge/latency_s/mean"] == pytest.approx(1.0)
    assert metrics["sgpo/judge/latency_s/max"] == pytest.approx(2.0)


def test_the_judge_failure_warning_fires_above_its_share_only(caplog):
    from recipe.sgpo.metrics import JUDGE_FAILURE_WARNING_SHARE, warn_on_judge_failures

    assert JUDGE_FAILURE_WARNING_SHARE == 0.2
    with caplog.at_level(logging.WARNING, logger="recipe.sgpo.metrics"):
        assert warn_on_judge_failures(0, 0, 0, 0) is False  # no call, no share
        assert warn_on_judge_failures(10, 2, 1, 1) is False  # exactly the share is not above it
        assert warn_on_judge_failures(10, 1, 0, 1) is False
        assert not caplog.records
        assert warn_on_judge_failures(1, 1, 1, 0) is True  # a single failed call is 100 %
        assert warn_on_judge_failures(4, 3, 1, 2) is True
    message = caplog.records[-1].getMessage()
    assert message.startswith("[sgpo] JUDGE FAILING: 3 of 4 judge calls this step failed (75 % > 20 %; "
                              "1 time-outs, 2 without a verdict): those responses get zero advantage. ")
    assert message.endswith("Check the judge server's load and its max_tokens / timeout_s "
                            "(JUDGE_FAMILY, reward/judge/config.py JUDGE_FAMILIES).")


def test_the_step_metrics_warn_with_the_steps_own_failure_counts(caplog):
    infos = ([info(None, True, failure="timeout")] * 2 + [info(None, True, failure="parse_error")]
             + [info(0.5, True), info(0.2, True)])
    with caplog.at_level(logging.WARNING, logger="recipe.sgpo.metrics"):
        sgpo_step_metrics(["a"] * 5, torch.tensor([0.0, 0.0, 0.0, 0.25, 0.1]), infos, SGPOConfig())
    assert "3 of 5 judge calls this step failed (60 % > 20 %; 2 time-outs, 1 without a verdict)" in caplog.text


def test_advantage_metrics_of_a_step_without_all_negative_groups_are_zero():
    mixed = all_negative_advantage_metrics(["m"] * 2, torch.tensor([1.0, 0.0]), torch.tensor([0.7, -0.7]))
    assert mixed == {"sgpo/advantage/all_negative_nonzero_share": 0.0, "sgpo/advantage/all_negative_abs_mean": 0.0,
                     "sgpo/advantage/all_negative_responses": 0.0}
    assert all_negative_advantage_metrics([], torch.zeros(0), torch.zeros(0))["sgpo/advantage/all_negative_responses"] == 0.0
    # one all-negative response (a group of one) is counted, not mistaken for none
    single = all_negative_advantage_metrics(["lone", "m", "m"], torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.5, 0.7, -0.7]))
    assert single["sgpo/advantage/all_negative_nonzero_share"] == 1.0
    assert single["sgpo/advantage/all_negative_abs_mean"] == pytest.approx(0.5)


def test_an_advantage_at_the_zero_tolerance_counts_as_zero():
    from recipe.sgpo.metrics import ZERO_ADVANTAGE_TOLERANCE

    at = all_negative_advantage_metrics(["n"] * 2, torch.zeros(2), torch.tensor([ZERO_ADVANTAGE_TOLERANCE, 0.0]))
    assert at["sgpo/advantage/all_negative_nonzero_share"] == 0.0
