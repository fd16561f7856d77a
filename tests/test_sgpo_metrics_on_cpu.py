"""The per-step `sgpo/...` training metrics (recipe/sgpo/metrics.py), worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from recipe.sgpo.config import SGPOConfig
from recipe.sgpo.metrics import sgpo_step_metrics


def info(judged_g=None, called=False, failure=None, state="not_scheduled", latency=0.0):
    return {
        "judge_called": int(called),
        "judged": int(judged_g is not None),
        "judge_failed": int(failure is not None),
        "judge_timeout": int(failure == "timeout"),
        "judge_parse_error": int(failure == "parse_error"),
        "graded_value": judged_g,
        "judge_latency_s": latency,
        "group_state": state,
        "grade_timeout": 0,
        "malformed_row": 0,
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
    # v = r / c: "graded" [0.8, 0.2, 0.2, 0] has std sqrt(0.12); "flat" 0
    assert metrics["sgpo/all_negative/graded_value/group_std_mean"] == pytest.approx(math.sqrt(0.12) / 2, rel=1e-5)
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
