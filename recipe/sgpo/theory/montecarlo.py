"""Monte-Carlo dynamics: sample real chains, score them with the estimators, take the policy-gradient step.

Each of ``R`` independent runs (seeds) holds its own logits ``θ_r``. Per iteration and run, ``G`` chains are
sampled (every step's option, also after the first error), the judge reports on the wrong ones, the
estimator turns the encoded rewards into advantages ``A_i`` and

    θ_r ← θ_r + η · (1/G) Σ_i A_i ∇_θ log π(chain_i),     ∇_θk log π = e_{a_ik} − π_k

(the GRPO/PPO surrogate at ratio 1, no clipping, no KL: plain REINFORCE with group-normalised advantages).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recipe.sgpo.theory.estimators import JUDGE_USED, distinct_group_advantages
from recipe.sgpo.theory.model import (
    CORRECT_CHAIN,
    NO_ERROR_FOUND,
    NOT_JUDGED,
    ModelSettings,
    accuracy,
    reported_reward,
    softmax,
    start_logits,
)


@dataclass(frozen=True)
class SampledRuns:
    """Monte-Carlo paths: ``accuracy`` ``(T + 1, R)`` and the measured/predicted all-negative shares ``(T,)``."""

    accuracy: np.ndarray
    measured_all_negative: np.ndarray  # share of the R groups with no correct chain, per iteration
    predicted_all_negative: np.ndarray  # mean over runs of (1 − p_r)^G at the same iteration


def reward_table(settings: ModelSettings, judge_on: bool) -> np.ndarray:
    """Encoded reward by report index: ``0..K−1`` first error at step 1..K, ``K`` "no error", ``K+1`` correct.

    With the judge off every wrong chain gets the not-judged reward whatever the report index.
    """
    wrong_reports = list(range(1, settings.num_steps + 1)) + [NO_ERROR_FOUND]
    if not judge_on:
        wrong_reports = [NOT_JUDGED] * len(wrong_reports)
    return np.array([reported_reward(settings, report) for report in wrong_reports + [CORRECT_CHAIN]])


def sample_chains(logits: np.ndarray, group_size: int, rng: np.random.Generator) -> np.ndarray:
    """Options chosen, ``(R, G, K)`` int, for logits ``(R, K, M)`` (Gumbel-max sampling of ``softmax(θ_k)``)."""
    runs, num_steps, num_options = logits.shape
    gumbel = rng.gumbel(size=(runs, group_size, num_steps, num_options))
    return np.argmax(logits[:, None] + gumbel, axis=-1)


def true_outcomes(choices: np.ndarray) -> np.ndarray:
    """Leading correct steps ``j`` per chain, ``(R, G)``; ``j = K`` is a correct chain."""
    return np.cumprod(choices == 0, axis=-1).sum(axis=-1)


def judge_reports(outcomes: np.ndarray, settings: ModelSettings, rng: np.random.Generator) -> np.ndarray:
    """Report index per chain (see :func:`reward_table`), with the imperfect judge of ``model.py``."""
    num_steps = settings.num_steps
    reports = np.where(outcomes == num_steps, num_steps + 1, outcomes)  # perfect: step j + 1 → index j
    wrong = outcomes < num_steps
    if num_steps > 1 and settings.judge_misplace_prob > 0:
        misplaced = wrong & (rng.random(outcomes.shape) < settings.judge_misplace_prob)
        shift = rng.integers(1, num_steps, size=outcomes.shape)  # another step, uniform among the K − 1
        reports = np.where(misplaced, (outcomes + shift) % num_steps, reports)
    says_no_error = wrong & (rng.random(outcomes.shape) < settings.judge_no_error_prob)
    return np.where(says_no_error, num_steps, reports)


def chain_updates(logits: np.ndarray, choices: np.ndarray, advantages: np.ndarray, learning_rate: float) -> np.ndarray:
    """``Δθ = η (1/G) Σ_i A_i (e_{a_i} − π)``, ``(R, K, M)``, for chains ``(R, G, K)`` and advantages ``(R, G)``."""
    probs = softmax(logits)
    num_options = logits.shape[-1]
    scores = np.eye(num_options)[choices] - probs[:, None]  # (R, G, K, M)
    return learning_rate * np.einsum("rg,rgkm->rkm", advantages, scores) / choices.shape[1]


def sampled_updates(
    logits: np.ndarray, settings: ModelSettings, estimator: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One sampled group per run: ``(Δθ (R, K, M), all_negative (R,) bool)``."""
    choices = sample_chains(logits, settings.group_size, rng)
    outcomes = true_outcomes(choices)
    rewards = reward_table(settings, JUDGE_USED[estimator])[judge_reports(outcomes, settings, rng)]
    advantages = distinct_group_advantages(estimator, rewards, settings.reward_band)
    all_negative = (outcomes < settings.num_steps).all(axis=1)
    return chain_updates(logits, choices, advantages, settings.learning_rate), all_negative


def sampled_dynamics(
    settings: ModelSettings, estimator: str, num_runs: int, num_iterations: int, seed: int,
    stop_at_accuracy: float | None = None,
) -> SampledRuns:
    """``num_runs`` independent training runs of ``num_iterations`` iterations from ``start_logits``.

    With ``stop_at_accuracy``, stops early once every run's accuracy has reached it (the paths are then
    shorter than ``num_iterations + 1``; first-passage times below it are unaffected).
    """
    rng = np.random.default_rng(seed)
    logits = np.repeat(start_logits(settings)[None], num_runs, axis=0)
    path, measured, predicted = [accuracy(logits)], [], []
    for _ in range(num_iterations):
        predicted.append(float(np.mean((1.0 - path[-1]) ** settings.group_size)))
        update, all_negative = sampled_updates(logits, settings, estimator, rng)
        measured.append(float(all_negative.mean()))
        logits = logits + update
        path.append(accuracy(logits))
        if stop_at_accuracy is not None and np.all(path[-1] >= stop_at_accuracy):
            break
    return SampledRuns(np.array(path), np.array(measured), np.array(predicted))
