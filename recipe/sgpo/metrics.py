"""Per-step SGPO training metrics, under stable ``sgpo/...`` names for wandb / tensorboard / console.

Computed from what a training step already holds: the encoded rewards (the estimator's input), the group
ids, and the SGPO reward manager's extra info per response (reward/manager.py ``EXTRA_INFO_KEYS``).
Group statistics use the estimator's own helpers, so "usable signal" here means exactly what the
estimator does with a group.

==============================================  =====================================================
name                                            meaning (per training step)
==============================================  =====================================================
sgpo/accuracy                                   share of responses whose final answer is correct
sgpo/groups/all_negative_share                  share of groups in which every response is wrong
sgpo/groups/all_positive_share                  share of groups in which every response is correct
sgpo/all_negative/usable_signal_share           share of all-negative groups with at least two judged
                                                responses whose graded values spread by at least
                                                ``algorithm.sgpo.min_spread`` (the groups SGPO teaches
                                                from; GRPO: none)
sgpo/all_negative/graded_value/mean             mean ``g`` of the judged responses of those groups
sgpo/all_negative/graded_value/group_std_mean   mean within-group std of ``v = r / c`` over the judged
                                                members of all-negative groups with two or more judged
sgpo/all_negative/judged_share                  share of the responses of all-negative groups that
                                                carry a verdict; the others (judge failures, time-outs,
                                                incomplete groups) get zero advantage and stay out of
                                                their group's mean and std
sgpo/all_negative/not_judged_responses          how many responses of all-negative groups have none
sgpo/judge/called                               responses sent to the judge
sgpo/judge/judged                               ... that came back with a usable verdict
sgpo/judge/failures                             ... that failed (any reason)
sgpo/judge/timeouts                             ... that ran out of time
sgpo/judge/parse_failures                       ... whose answer had no valid verdict
sgpo/judge/no_signal                            ... that found no error where that carries no signal
                                                (response cut off at the length limit, or only its
                                                leading steps shown): not judged, not a failure
sgpo/judge/latency_s/mean, .../max              seconds per judge call (called responses)
sgpo/judge/wasted                               judge calls made early (``reward.sgpo.judge_schedule=eager``)
                                                whose verdict was discarded: the group was not
                                                all-negative (extra judge load, no reward change)
sgpo/grade/timeouts                             gradings that hit their time bound (scored wrong)
sgpo/groups/incomplete_responses                wrong responses whose group never completed in time
sgpo/rows/malformed                             rows without a ground truth (scored wrong)
sgpo/advantage/all_negative_nonzero_share       share of the responses of all-negative groups whose
                                                advantage is non-zero: what SGPO adds (0 for grpo)
sgpo/advantage/all_negative_abs_mean            mean |advantage| of those responses
sgpo/advantage/all_negative_responses           how many responses are in all-negative groups
==============================================  =====================================================

The ``sgpo/advantage/*`` metrics are read from the advantages the trainer computed
(:func:`all_negative_advantage_metrics`); the others from rewards and extra info (:func:`sgpo_step_metrics`).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from recipe.sgpo.advantage import group_ids, group_mean_std
from recipe.sgpo.config import SGPOConfig
from reward.encoding import CORRECT_REWARD, decode_rewards
from reward.rendezvous import INCOMPLETE

logger = logging.getLogger(__name__)

#: Share of a step's judge calls that failed (``judge_failed`` / ``judge_called``: time-outs, parse
#: failures, errors) above which :func:`sgpo_step_metrics` logs a warning. Those responses get zero
#: advantage, so past a fifth SGPO's graded signal is thin; 0.2 is our threshold (not from the paper).
JUDGE_FAILURE_WARNING_SHARE = 0.2


def sgpo_step_metrics(
    uids: Sequence[Any],
    scores: torch.Tensor,
    extra_infos: Sequence[Mapping[str, Any] | None],
    settings: SGPOConfig,
) -> dict[str, float]:
    """The ``sgpo/...`` metrics of one training step (see the module docstring for each name).

    Args:
        uids: group id of each response.
        scores: ``(bs,)`` encoded rewards (row sums of ``token_level_scores``).
        extra_infos: the reward manager's extra info of each response (missing keys count as absent).
        settings: the estimator's settings (band and minimum spread).
    """
    scores = scores.detach().float().cpu()
    correct, judged, graded = decode_rewards(scores, settings.reward_band)
    group = group_ids(np.asarray(uids, dtype=object), device=scores.device)
    size = torch.bincount(group).to(scores.dtype)
    correct_count = torch.zeros_like(size).index_add_(0, group, correct.to(scores.dtype))
    all_negative = correct_count == 0
    all_positive = correct_count == size
    # the estimator's own statistics: over the judged members of each group (reward/encoding.py)
    _, std, judged_count = group_mean_std(graded, group, judged)
    group_std, group_judged = _per_group(std, group, size), _per_group(judged_count, group, size)
    comparable = all_negative & (group_judged >= 2)
    usable = comparable & (group_std >= settings.min_spread)
    negative_responses = size[all_negative].sum()

    infos = [info or {} for info in extra_infos]
    in_all_negative = all_negative[group].tolist()
    judged_g = [
        float(info["graded_value"])
        for info, negative in zip(infos, in_all_negative)
        if negative and info.get("graded_value") is not None
    ]
    latencies = [float(info.get("judge_latency_s", 0.0)) for info in infos if info.get("judge_called")]
    warn_on_judge_failures(_count(infos, "judge_called"), _count(infos, "judge_failed"),
                           _count(infos, "judge_timeout"), _count(infos, "judge_parse_error"))
    return {
        "sgpo/accuracy": correct.float().mean().item(),
        "sgpo/groups/all_negative_share": all_negative.float().mean().item(),
        "sgpo/groups/all_positive_share": all_positive.float().mean().item(),
        "sgpo/all_negative/usable_signal_share": _share(usable.sum(), all_negative.sum()),
        "sgpo/all_negative/graded_value/mean": float(np.mean(judged_g)) if judged_g else 0.0,
        "sgpo/all_negative/graded_value/group_std_mean": (
            group_std[comparable].mean().item() if bool(comparable.any()) else 0.0
        ),
        "sgpo/all_negative/judged_share": _share(group_judged[all_negative].sum(), negative_responses),
        "sgpo/all_negative/not_judged_responses": float(negative_responses - group_judged[all_negative].sum()),
        "sgpo/judge/called": _count(infos, "judge_called"),
        "sgpo/judge/judged": _count(infos, "judged"),
        "sgpo/judge/failures": _count(infos, "judge_failed"),
        "sgpo/judge/timeouts": _count(infos, "judge_timeout"),
        "sgpo/judge/parse_failures": _count(infos, "judge_parse_error"),
        "sgpo/judge/no_signal": _count(infos, "judge_no_signal"),
        "sgpo/judge/latency_s/mean": float(np.mean(latencies)) if latencies else 0.0,
        "sgpo/judge/latency_s/max": float(np.max(latencies)) if latencies else 0.0,
        "sgpo/judge/wasted": _count(infos, "judge_wasted"),
        "sgpo/grade/timeouts": _count(infos, "grade_timeout"),
        "sgpo/groups/incomplete_responses": float(sum(info.get("group_state") == INCOMPLETE for info in infos)),
        "sgpo/rows/malformed": _count(infos, "malformed_row"),
    }


def warn_on_judge_failures(called: float, failed: float, timeouts: float, parse_failures: float) -> bool:
    """Log a loud warning when ``failed / called > JUDGE_FAILURE_WARNING_SHARE``; True when it did."""
    if called <= 0 or failed / called <= JUDGE_FAILURE_WARNING_SHARE:
        return False
    logger.warning(
        "[sgpo] JUDGE FAILING: %d of %d judge calls this step failed (%.0f %% > %.0f %%; %d time-outs, %d without a "
        "verdict): those responses get zero advantage. Check the judge server's load and its max_tokens / "
        "timeout_s (JUDGE_FAMILY, reward/judge/config.py JUDGE_FAMILIES).",
        failed, called, 100 * failed / called, 100 * JUDGE_FAILURE_WARNING_SHARE, timeouts, parse_failures,
    )
    return True


#: Advantages smaller than this in magnitude count as zero (float noise of the normalisation).
ZERO_ADVANTAGE_TOLERANCE = 1e-6


def all_negative_advantage_metrics(
    uids: Sequence[Any], scores: torch.Tensor, advantages: torch.Tensor
) -> dict[str, float]:
    """The ``sgpo/advantage/*`` metrics: how much advantage the responses of all-negative groups received.

    Args:
        uids: group id of each response.
        scores: ``(bs,)`` reward of each response (sum of its token rewards); correct ⇔ ``≥ 1``.
        advantages: ``(bs,)`` advantage of each response (its value on the response's tokens).
    """
    scores = scores.detach().float().cpu()
    group = group_ids(np.asarray(uids, dtype=object), device=scores.device)
    correct_count = torch.zeros(int(group.max()) + 1 if group.numel() else 0).index_add_(
        0, group, (scores >= CORRECT_REWARD).float()
    )
    negative = advantages.detach().float().cpu()[correct_count[group] == 0].abs()
    if negative.numel() == 0:
        return {
            "sgpo/advantage/all_negative_nonzero_share": 0.0,
            "sgpo/advantage/all_negative_abs_mean": 0.0,
            "sgpo/advantage/all_negative_responses": 0.0,
        }
    return {
        "sgpo/advantage/all_negative_nonzero_share": (negative > ZERO_ADVANTAGE_TOLERANCE).float().mean().item(),
        "sgpo/advantage/all_negative_abs_mean": negative.mean().item(),
        "sgpo/advantage/all_negative_responses": float(negative.numel()),
    }


def _per_group(per_sample: torch.Tensor, group: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Undo the per-sample broadcast of a group statistic (every member holds the same value)."""
    return torch.zeros_like(size).scatter_(0, group, per_sample)


def _count(infos: Sequence[Mapping[str, Any]], key: str) -> float:
    return float(sum(bool(info.get(key)) for info in infos))


def _share(part: torch.Tensor, whole: torch.Tensor) -> float:
    return float(part) / float(whole) if float(whole) > 0 else 0.0
