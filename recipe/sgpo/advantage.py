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
``r = 1`` if correct, ``0 < r = c · g < c`` if wrong and judged, ``r = 0`` if wrong and **not judged**
(judge failure or time-out, incomplete group, not sent to the judge), ``0 < c < 1``. Per group ``G``
(same ``uid``), with ``o_i = [r_i ≥ 1]``, ``j_i = [0 < r_i < 1]`` (judged) and ``v_i = r_i / c``:

    some o_i = 1 (mixed or all-correct):   x_i = o_i,  P = G            (apply_to=all_negative, the paper)
                                           x_i = r_i,  P = {o_i ∨ j_i}  (apply_to=all_incorrect, ablation)
                                           A_i = (x_i − mean_P x) / (std_P x + ε)      for i ∈ P
    all o_i = 0 (all-negative):            x_i = v_i,  P = {j_i}       (the judged members only)
                                           A_i = λ · (v_i − mean_P v) / (std_P v + ε)  for i ∈ P,
                                                 if |P| ≥ 2 and std_P v ≥ s_min
    otherwise:                             A_i = 0

``P`` are the members that take part in their group's statistics. **A member outside ``P`` — a wrong
response without a verdict wherever the graded value is the signal — gets zero advantage and does not
enter its group's mean or std**, so a judge failure is never read as a low grade (a penalty) nor lifts
its siblings. In the paper's mode every member of a mixed group takes part with its binary outcome (no
graded value is used there, so nothing is missing).

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
        correct, judged, graded = decode_rewards(scores, settings.reward_band)
        group = group_ids(index, device=scores.device)
        group_size = torch.bincount(group).to(scores.dtype)
        correct_count = torch.zeros_like(group_size).index_add_(0, group, correct.to(scores.dtype))
        in_mixed_group = correct_count[group] > 0
        singleton = group_size[group] == 1

        # --- SGPO: the values each branch normalises, and who takes part -------------------------
        if settings.apply_to == "all_negative":
            mixed_values, mixed_members = correct.to(scores.dtype), torch.ones_like(correct)  # plain GRPO
        else:
            mixed_values, mixed_members = torch.where(correct, 1.0, scores), correct | judged  # graded too
        values = torch.where(in_mixed_group, mixed_values, graded)  # graded = v = r / c when judged
        members = torch.where(in_mixed_group, mixed_members, judged)  # not judged: left out, advantage 0
        # -------------------------------------------------------------------------------------------

        mean, std, count = group_mean_std(values, group, members)
        mean = torch.where(singleton, torch.zeros_like(mean), mean)  # verl's grpo: mean 0, std 1
        std = torch.where(singleton, torch.ones_like(std), std)
        advantages = values - mean
        if divide_by_std:
            advantages = advantages / (std + settings.epsilon)
        compared = members & ((count >= 2) | singleton)
        advantages = torch.where(compared, advantages, 0.0)

        # --- SGPO: all-negative groups — no signal from noise, optional scale λ --------------------
        usable_spread = ~singleton & (std >= settings.min_spread)
        negative_advantages = torch.where(usable_spread, advantages * settings.negative_scale, 0.0)
        advantages = torch.where(in_mixed_group, advantages, negative_advantages)
        # -------------------------------------------------------------------------------------------

        advantages = advantages.unsqueeze(-1) * response_mask
    return advantages, advantages


# Registered after the definition rather than with the decorator: mutmut (docs/mutation_testing.md) does
# not mutate decorated functions, and this is the function whose mutants matter most.
register_adv_est(ESTIMATOR_NAME)(compute_sgpo_outcome_advantage)


def group_ids(index: np.ndarray, device: torch.device) -> torch.Tensor:
    """Dense integer group ids ``0..G-1`` for arbitrary (hashable, sortable) uid values."""
    _, inverse = np.unique(np.asarray(index), return_inverse=True)
    return torch.as_tensor(inverse.reshape(-1), dtype=torch.long, device=device)


def group_mean_std(
    values: torch.Tensor, group: torch.Tensor, members: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample mean, unbiased standard deviation and size of each sample's group, over its ``members``.

    Args:
        values: ``(bs,)`` values to summarise.
        group: ``(bs,)`` dense group ids (:func:`group_ids`).
        members: ``(bs,)`` bool, the samples that take part (default: all); the others are ignored
            in the statistics but still receive their group's (broadcast) mean, std and size.

    Returns:
        ``(mean, std, count)``, each ``(bs,)``: ``mean = Σ_P x / |P|``, ``std = sqrt(Σ_P (x − mean)² /
        (|P| − 1))`` and ``count = |P|`` of the sample's group ``P``. Two passes (mean, then squared
        deviations) for the same numerics as ``torch.std``. A group with fewer than two members gets
        std 0 (and mean 0 when it has none); the caller decides what that means.
    """
    weight = torch.ones_like(values) if members is None else members.to(values.dtype)
    num_groups = int(group.max().item()) + 1 if group.numel() else 0
    count = torch.zeros(num_groups, dtype=values.dtype, device=values.device).index_add_(0, group, weight)
    sums = torch.zeros_like(count).index_add_(0, group, values * weight)
    mean = (sums / count.clamp(min=1))[group]
    squared = weight * (values - mean) ** 2
    sq_sums = torch.zeros_like(count).index_add_(0, group, squared)
    variance = sq_sums / (count - 1).clamp(min=1)
    return mean, variance.sqrt()[group], count[group]
