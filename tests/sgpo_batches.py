"""Builders for estimator inputs shaped the way verl's trainer hands them over."""

from __future__ import annotations

import numpy as np
import torch


def outcome_batch(
    rewards: list[float], uids: list[str], lengths: list[int] | None = None, width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """``(token_level_rewards, response_mask, index)`` with each reward on its last response token.

    ``lengths`` are the valid response lengths (padding after them), as verl's reward managers place
    the scalar on the last valid token (``RewardManagerBase.assemble_rm_scores``).
    """
    lengths = lengths or [4] * len(rewards)
    width = width or max(lengths) + 2
    mask = torch.zeros(len(rewards), width)
    token_rewards = torch.zeros(len(rewards), width)
    for row, (reward, length) in enumerate(zip(rewards, lengths)):
        mask[row, :length] = 1.0
        token_rewards[row, length - 1] = reward
    return token_rewards, mask, np.array(uids, dtype=object)


def random_batch(
    num_prompts: int, group_size: int, width: int, *, graded: bool, seed: int = 0, band: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """A shuffled batch of ``num_prompts × group_size`` responses with random lengths and outcomes.

    ``graded=False`` gives binary rewards (0/1). ``graded=True`` also gives judged wrong answers
    ``c·g`` and unjudged ones (0), in the SGPO encoding, and makes about half the groups all-negative.
    """
    gen = torch.Generator().manual_seed(seed)
    size = num_prompts * group_size
    uids = np.repeat(np.array([f"prompt-{i}" for i in range(num_prompts)], dtype=object), group_size)
    solve_rate = torch.rand(num_prompts, generator=gen).repeat_interleave(group_size)
    if graded:
        solve_rate = torch.where(torch.rand(size, generator=gen) < 0.5, torch.zeros(size), solve_rate)
    correct = torch.rand(size, generator=gen) < solve_rate
    rewards = correct.float()
    if graded:
        judged = torch.rand(size, generator=gen) < 0.9
        g = torch.rand(size, generator=gen) * 0.999
        rewards = torch.where(correct, rewards, torch.where(judged, band * g, torch.zeros(size)))
    lengths = torch.randint(1, width + 1, (size,), generator=gen)
    mask = (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).float()
    token_rewards = torch.zeros(size, width)
    token_rewards[torch.arange(size), lengths - 1] = rewards
    order = torch.randperm(size, generator=gen)
    return token_rewards[order], mask[order], uids[order.numpy()]
