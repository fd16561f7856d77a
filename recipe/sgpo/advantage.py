"""SGPO: Stepwise Guided Policy Optimization — the advantage estimator (`algorithm.adv_estimator=sgpo`).

This file is the whole SGPO change to GRPO. Everything else in the repository produces its input.

The problem. GRPO normalises rewards inside each group of ``n`` responses to one prompt,
``A_i = (r_i − mean(r)) / (std(r) + ε)``. With a binary verifier reward, a group where every response is
wrong (an *all-negative group*) has ``r = 0`` everywhere, so ``A = 0``: the group teaches nothing, and early
in training most groups look like that.

The fix. A step-wise judge reads each wrong response and finds its first incorrect step ``k`` of ``K``;
``RTS = (k − 1) / K`` (1 if no error was found) and the graded value ``g = σ(β (RTS − γ))`` (or
``g = RTS``). A wrong answer that went further before erring scores higher, so normalisation inside the
group now separates its members. Groups with at least one correct answer stay plain GRPO.

The reward manager encodes both facts in one scalar per response (``reward/encoding.py``):
``r = 1`` if correct, ``r = c · g`` if wrong and judged, ``r = 0`` if wrong and not judged, ``0 < c < 1``.
Per group ``G`` (same ``uid``), with ``o_i = [r_i ≥ 1]`` and ``v_i = r_i / c``:

    some o_i = 1 (mixed or all-correct):   x_i = o_i                 (apply_to=all_negative, the paper)
                                           x_i = min(r_i, 1)         (apply_to=all_incorrect, ablation)
                                           A_i = (x_i − mean_G x) / (std_G x + ε)
    all o_i = 0 (all-negative):            A_i = λ · (v_i − mean_G v) / (std_G v + ε)   if std_G v ≥ s_min
                                           A_i = 0                                      otherwise

``std`` is the unbiased group standard deviation (as in verl's ``grpo``); with
``algorithm.norm_adv_by_std_in_grpo=false`` the division is dropped in both branches (Dr. GRPO).
A group of one response follows verl's ``grpo`` (mean 0, std 1) when it is correct and gets 0 when it is
wrong (one sample has no spread). ``s_min`` is ``algorithm.sgpo.min_spread``, ``λ`` is
``algorithm.sgpo.negative_scale``. With binary rewards the result equals verl's ``grpo`` exactly.

The advantage of a response is broadcast over its tokens (times ``response_mask``); returns equal
advantages, as for every outcome-reward estimator in verl. The computation is vectorised over the
batch: one ``index_add`` per group statistic, no Python loop over samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from verl.trainer.ppo.core_algos import register_adv_est

from recipe.sgpo.config import SGPOConfig, norm_adv_by_std
from reward.encoding import decode_rewards

#: The name under which the estimator is registered with verl (`algorithm.adv_estimator`).
ESTIMATOR_NAME = "sgpo"


@register_adv_est(ESTIMATOR_NAME)
def compute_sgpo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    config: Any = None,
    **unused: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SGPO advantages; the signature is the one verl's ``compute_advantage`` uses for registered estimators.

    Args:
        token_level_rewards: ``(bs, response_length)``; their row sums are the encoded rewards.
        response_mask: ``(bs, response_length)``, 1 on response tokens.
        index: ``(bs,)`` group ids (verl's ``uid``); responses with the same id answer the same prompt.
        config: the trainer's ``algorithm`` section (reads ``sgpo.*`` and ``norm_adv_by_std_in_grpo``).
        **unused: other keyword arguments verl may pass (e.g. ``reward_baselines``).

    Returns:
        ``(advantages, returns)``, both ``(bs, response_length)`` and equal.
    """
    settings = SGPOConfig.from_algorithm_config(config)
    divide_by_std = norm_adv_by_std(config)
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        correct, graded = decode_rewards(scores, settings.reward_band)
        group = group_ids(index, device=scores.device)
        num_groups = int(group.max().item()) + 1 if group.numel() else 0
        group_size = torch.bincount(group, minlength=num_groups).to(scores.dtype)
        group_has_correct = torch.zeros(num_groups, dtype=scores.dtype, device=scores.device)
        group_has_correct.index_add_(0, group, correct.to(scores.dtype))
        in_mixed_group = group_has_correct[group] > 0
        singleton = group_size[group] == 1

        # --- SGPO: the values each branch normalises --------------------------------------------
        if settings.apply_to == "all_negative":
            mixed_values = correct.to(scores.dtype)  # binarised: plain GRPO
        else:
            mixed_values = torch.where(correct, torch.ones_like(scores), scores)  # graded wrong answers too
        values = torch.where(in_mixed_group, mixed_values, graded)  # graded = v = r / c when wrong
        # -------------------------------------------------------------------------------------------

        mean, std = group_mean_std(values, group, group_size)
        mean = torch.where(singleton, torch.zeros_like(mean), mean)  # verl's grpo: mean 0, std 1
        std = torch.where(singleton, torch.ones_like(std), std)
        advantages = values - mean
        if divide_by_std:
            advantages = advantages / (std + settings.epsilon)

        # --- SGPO: all-negative groups — no signal from noise, optional scale λ --------------------
        usable_spread = ~singleton & (std >= settings.min_spread)
        negative_advantages = torch.where(usable_spread, advantages * settings.negative_scale, 0.0)
        advantages = torch.where(in_mixed_group, advantages, negative_advantages)
        # -------------------------------------------------------------------------------------------

        advantages = advantages.unsqueeze(-1) * response_mask
    return advantages, advantages


def group_ids(index: np.ndarray, device: torch.device) -> torch.Tensor:
    """Dense integer group ids ``0..G-1`` for arbitrary (hashable, sortable) uid values."""
    _, inverse = np.unique(np.asarray(index), return_inverse=True)
    return torch.as_tensor(inverse.reshape(-1), dtype=torch.long, device=device)


def group_mean_std(
    values: torch.Tensor, group: torch.Tensor, group_size: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean and unbiased standard deviation of ``values`` over each sample's group.

    Two passes (mean, then squared deviations) for the same numerics as ``torch.std``. A group of one
    gets std 0 here; the caller decides what a singleton means.
    """
    num_groups = group_size.numel()
    sums = torch.zeros(num_groups, dtype=values.dtype, device=values.device).index_add_(0, group, values)
    mean = (sums / group_size)[group]
    squared = (values - mean) ** 2
    sq_sums = torch.zeros_like(sums).index_add_(0, group, squared)
    variance = sq_sums / (group_size - 1).clamp(min=1)
    return mean, variance.sqrt()[group]
