"""Verdict → Reasoning Trajectory Score (RTS) → graded value ``g``.

For a response of ``K`` steps whose first incorrect step is ``k`` (1-based):

    step RTS     RTS = (k − 1) / K                     (1 when no error was found)
    token RTS    RTS = Σ_{i<k} w_i / Σ_i w_i            (w_i: tokens of step i; 1 when no error was found)

    logistic     g = σ(β (RTS − γ)) = 1 / (1 + exp(−β (RTS − γ)))      increasing in RTS
    linear       g = RTS

``K`` counts every step of the response, also those past ``steps.max_judged_chars`` that the judge was not
shown: an error found at step ``k`` of the judged prefix scores ``(k − 1) / K`` against the whole response.

Defaults β = 5, γ = 0.5 are ours (the paper gives none): g runs from σ(−2.5) ≈ 0.076 at RTS 0 to
σ(2.5) ≈ 0.924 at RTS 1. The map is not rescaled to [0, 1]: only differences inside a group matter to the
estimator, which normalises them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def step_rts(first_error_step: int | None, num_steps: int) -> float:
    """``(k − 1) / K``, or 1 when ``first_error_step`` is None (no error found)."""
    if first_error_step is None:
        return 1.0
    if num_steps < 1 or not 1 <= first_error_step <= num_steps:
        raise ValueError(f"first error step {first_error_step} is outside 1..{num_steps}")
    return (first_error_step - 1) / num_steps


def weighted_rts(first_error_step: int | None, weights: Sequence[float]) -> float:
    """Share of the total weight that lies before step ``k``; 1 when no error was found.

    Falls back to :func:`step_rts` when all weights are zero (e.g. no token offsets fell in the part).
    """
    if first_error_step is None:
        return 1.0
    if not 1 <= first_error_step <= len(weights):
        raise ValueError(f"first error step {first_error_step} is outside 1..{len(weights)}")
    total = float(sum(weights))
    if total <= 0:
        return step_rts(first_error_step, len(weights))
    return float(sum(weights[: first_error_step - 1])) / total


def graded_value(rts: float, map_name: str = "logistic", beta: float = 5.0, gamma: float = 0.5) -> float:
    """``g = σ(β (RTS − γ))`` (``logistic``) or ``g = RTS`` (``linear``); ``RTS`` must lie in [0, 1]."""
    if not 0.0 <= rts <= 1.0:
        raise ValueError(f"RTS must lie in [0, 1], got {rts!r}")
    if map_name == "linear":
        return float(rts)
    if map_name == "logistic":
        return 1.0 / (1.0 + math.exp(-beta * (rts - gamma)))
    raise ValueError(f"unknown graded map {map_name!r}; expected logistic or linear")
