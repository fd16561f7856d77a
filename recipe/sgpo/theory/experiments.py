"""The reproduction's experiments: learning curves, acceleration tables, judge noise, all-negative share.

*Acceleration* is ``T_GRPO(target) / T_SGPO(target)``, where ``T(target)`` is the first iteration at which
the policy's accuracy ``p = Π_k π_k[0]`` reaches ``target``: from the expected-update path (exact), and the
median over Monte-Carlo runs (a run that never reaches it counts as ``∞``; a median of ``∞`` is reported
as ``> max_iterations``). A ratio above 1 means SGPO gets there in fewer iterations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from recipe.sgpo.theory.exact import enumerate_groups, expected_dynamics
from recipe.sgpo.theory.model import ModelSettings
from recipe.sgpo.theory.montecarlo import sampled_dynamics

#: Accuracies whose first-passage iterations define the acceleration.
TARGET_ACCURACIES = (0.5, 0.9)

#: The spread shown around Monte-Carlo medians (quantiles over runs).
SPREAD_QUANTILES = (0.1, 0.9)

#: SGPO's two graded maps, as curve labels.
SGPO_VARIANTS = {"sgpo (logistic)": "logistic", "sgpo (linear)": "linear"}


@dataclass(frozen=True)
class Grid:
    """Which settings are swept (``--grid full`` is the documented reproduction; ``small`` is for tests)."""

    base: ModelSettings  # the paper's case: K = 2, G = 8, starting accuracy 0.02
    start_accuracies: tuple[float, ...]
    group_sizes: tuple[int, ...]
    step_counts: tuple[int, ...]
    misplace_probs: tuple[float, ...]  # ε
    no_error_probs: tuple[float, ...]  # δ


GRIDS = {
    "full": Grid(
        base=ModelSettings(start_accuracy=0.02, learning_rate=0.1),
        start_accuracies=(0.005, 0.02, 0.1, 0.3),
        group_sizes=(4, 8, 16),
        step_counts=(2, 4, 8),
        misplace_probs=(0.0, 0.1, 0.25, 0.5, 0.75, 1.0),
        no_error_probs=(0.0, 0.25, 0.5, 0.9),
    ),
    "small": Grid(
        base=ModelSettings(start_accuracy=0.02, learning_rate=0.1),
        start_accuracies=(0.02, 0.3),
        group_sizes=(4,),
        step_counts=(3,),
        misplace_probs=(0.0, 1.0),
        no_error_probs=(0.0,),
    ),
}


def first_passage(path: np.ndarray, target: float) -> float:
    """First index ``t`` with ``path[t] ≥ target`` along axis 0 (``inf`` where never); ``path`` is ``(T+1, ...)``."""
    reached = path >= target
    return np.where(reached.any(axis=0), reached.argmax(axis=0), np.inf)


def median_passage(paths: np.ndarray, target: float) -> float:
    """Median over runs of :func:`first_passage` (``inf`` when more than half never reach ``target``)."""
    return float(np.median(first_passage(paths, target)))


def ratio(grpo_iterations: float, sgpo_iterations: float) -> float | None:
    """``T_GRPO / T_SGPO``; ``None`` when SGPO never reaches the target (or both start there)."""
    if not np.isfinite(sgpo_iterations) or sgpo_iterations == 0:
        return None
    return float(grpo_iterations / sgpo_iterations)  # inf when only GRPO never gets there


def compare(settings: ModelSettings, num_runs: int, num_iterations: int, seed: int, sampled: bool) -> dict:
    """GRPO vs SGPO at ``settings``: iterations to each target (exact, and Monte-Carlo when ``sampled``)."""
    row: dict = {"settings": settings.__dict__.copy()}
    last_target = max(TARGET_ACCURACIES)  # nothing after every path has passed it changes the table
    exact_paths = {est: expected_dynamics(enumerate_groups(settings, est), num_iterations, last_target)
                   for est in ("grpo", "sgpo")}
    for target in TARGET_ACCURACIES:
        exact = {est: float(first_passage(path, target)) for est, path in exact_paths.items()}
        row[f"exact_{target}"] = {**exact, "ratio": ratio(exact["grpo"], exact["sgpo"])}
    if sampled:
        paths = {est: sampled_dynamics(settings, est, num_runs, num_iterations, seed, last_target).accuracy
                 for est in ("grpo", "sgpo")}
        for target in TARGET_ACCURACIES:
            medians = {est: median_passage(paths[est], target) for est in paths}
            row[f"sampled_{target}"] = {**medians, "ratio": ratio(medians["grpo"], medians["sgpo"])}
    return row


def learning_curves(settings: ModelSettings, num_runs: int, num_iterations: int, seed: int) -> dict:
    """Expected-update paths and Monte-Carlo median/spread of accuracy, plus the all-negative share."""
    curves = {}
    variants = {"grpo": ("grpo", settings)} | {
        label: ("sgpo", replace(settings, graded_map=graded_map)) for label, graded_map in SGPO_VARIANTS.items()
    }
    for label, (estimator, variant) in variants.items():
        runs = sampled_dynamics(variant, estimator, num_runs, num_iterations, seed)
        low, high = np.quantile(runs.accuracy, SPREAD_QUANTILES, axis=1)
        curves[label] = {
            "exact": expected_dynamics(enumerate_groups(variant, estimator), num_iterations).tolist(),
            "median": np.median(runs.accuracy, axis=1).tolist(),
            "mean": runs.accuracy.mean(axis=1).tolist(),
            "low": low.tolist(),
            "high": high.tolist(),
            "all_negative_measured": runs.measured_all_negative.tolist(),
            "all_negative_predicted": runs.predicted_all_negative.tolist(),
        }
    return curves


def run_all(grid: Grid, num_runs: int, num_iterations: int, seed: int) -> dict:
    """Every experiment of the reproduction; returns a JSON-ready dict."""
    base = grid.base
    results: dict = {"base": base.__dict__.copy(), "runs": num_runs, "iterations": num_iterations, "seed": seed}
    results["curves"] = learning_curves(base, num_runs, num_iterations, seed)
    sweeps = {
        "start_accuracy": [replace(base, start_accuracy=p) for p in grid.start_accuracies],
        "group_size": [replace(base, group_size=g) for g in grid.group_sizes],
        "num_steps": [replace(base, num_steps=k) for k in grid.step_counts],
    }
    results["acceleration"] = {
        name: [compare(s, num_runs, num_iterations, seed, sampled=True) for s in settings_list]
        for name, settings_list in sweeps.items()
    }
    results["judge_noise"] = [
        compare(
            replace(base, judge_misplace_prob=eps, judge_no_error_prob=delta),
            num_runs, num_iterations, seed, sampled=(eps == 0.0 or delta == 0.0),
        )
        for delta in grid.no_error_probs
        for eps in grid.misplace_probs
    ]
    return results
