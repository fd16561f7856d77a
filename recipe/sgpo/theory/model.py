"""The stylized K-step reasoning model: policy, outcomes, judge, rewards and score-function gradients.

What is modelled (one prompt; a set of prompts is a set of independent copies, see ``docs/theory.md``):

* A chain is ``K`` steps. At step ``k`` the policy picks one of ``M`` options with probabilities
  ``π_k = softmax(θ_k)``, ``θ ∈ R^{K×M}``; option 0 is the correct one. The steps' choices are independent
  (step ``k``'s distribution does not depend on what was chosen before): a tabular policy.
* The final answer is correct iff every step is correct: accuracy ``p = Π_k π_k[0]``.
* A chain's *outcome* is its number of leading correct steps ``j ∈ {0..K}``; ``j = K`` is a correct chain,
  ``j < K`` a wrong one whose first error is step ``k = j + 1``:
  ``P(j) = (Π_{i≤j} π_i[0]) · (1 − π_{j+1}[0])`` for ``j < K`` and ``P(K) = p``.
* The judge reads a wrong chain and reports a first-error step. It is perfect by default; the imperfect
  judge says "no error" with probability ``δ`` and otherwise, with probability ``ε``, reports one of the
  other ``K − 1`` steps uniformly at random (it *misplaces* the first error). Correct chains are not judged.
* GRPO runs without the judge (binary reward: a wrong chain is "not judged", encoded 0); SGPO with it.
* Rewards are the project's: ``reward/judge/grading.py`` maps the reported step to RTS and ``g``,
  ``reward/encoding.py`` encodes ``(correct, g)`` into the scalar the estimators read.

A (true outcome, reported verdict) pair is a *category*; the estimators see only the category's reward,
the gradient depends only on the true outcome. Categories are the sufficient statistics of a sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reward.encoding import encode_reward
from reward.judge.grading import graded_value, step_rts

#: Index of the correct option at every step.
CORRECT_OPTION = 0

#: Reported verdict "the judge found no error" (``step_rts(None, K) = 1``).
NO_ERROR_FOUND = None

#: Reported verdict of a correct chain (it is never judged).
CORRECT_CHAIN = "correct"

#: Reported verdict of a wrong chain when the judge is off (GRPO's binary reward: encoded as 0).
NOT_JUDGED = "not judged"

GRADED_MAPS = ("logistic", "linear")


@dataclass(frozen=True)
class ModelSettings:
    """The stylized model's settings (CLI flags of ``python -m recipe.sgpo.theory`` set them).

    Attributes:
        num_steps: ``K``, steps per chain (2 is the paper's case). At least 1.
        num_options: ``M``, options per step, one correct. At least 2.
        group_size: ``G``, chains sampled per prompt and iteration. At least 2.
        start_accuracy: ``p₀`` in (0, 1): every step starts at the same ``π_k[0] = p₀^{1/K}``, the wrong
            options share the rest equally.
        learning_rate: ``η`` of the update ``θ ← θ + η · (1/G) Σ_i A_i ∇_θ log π(chain_i)`` (logit units).
        judge_misplace_prob: ``ε`` in [0, 1], the chance the judge reports another step as the first error.
        judge_no_error_prob: ``δ`` in [0, 1], the chance the judge says "no error" on a wrong chain.
        graded_map: ``logistic`` (``g = σ(β (RTS − γ))``) or ``linear`` (``g = RTS``).
        beta, gamma: the logistic map's slope and midpoint (``reward/judge/grading.py``'s defaults).
        reward_band: ``c`` of the reward encoding, ``0 < c < 1`` (the estimator's default 0.5).
    """

    num_steps: int = 2
    num_options: int = 4
    group_size: int = 8
    start_accuracy: float = 0.05
    learning_rate: float = 1.0
    judge_misplace_prob: float = 0.0
    judge_no_error_prob: float = 0.0
    graded_map: str = "logistic"
    beta: float = 5.0
    gamma: float = 0.5
    reward_band: float = 0.5

    def __post_init__(self) -> None:
        checks = [
            (self.num_steps >= 1, "num_steps (K) must be at least 1", "--steps"),
            (self.num_options >= 2, "num_options (M) must be at least 2", "--options"),
            (self.group_size >= 2, "group_size (G) must be at least 2", "--group-size"),
            (0.0 < self.start_accuracy < 1.0, "start_accuracy must lie in (0, 1)", "--start-accuracy"),
            (self.learning_rate > 0.0, "learning_rate must be positive", "--learning-rate"),
            (0.0 <= self.judge_misplace_prob <= 1.0, "judge_misplace_prob (ε) must lie in [0, 1]", "--epsilon"),
            (0.0 <= self.judge_no_error_prob <= 1.0, "judge_no_error_prob (δ) must lie in [0, 1]", "--delta"),
            (self.graded_map in GRADED_MAPS, f"graded_map must be one of {GRADED_MAPS}", "--graded-map"),
        ]
        for ok, message, flag in checks:
            if not ok:
                raise ValueError(f"{message}; got {self!r}. Fix the setting (CLI flag {flag}).")


@dataclass(frozen=True)
class Category:
    """One sufficient statistic of a sample: true outcome ``j`` and what the judge reported."""

    true_outcome: int  # j, leading correct steps; K = correct
    reported_step: int | None | str  # first-error step 1..K, NO_ERROR_FOUND, NOT_JUDGED or CORRECT_CHAIN


def start_logits(settings: ModelSettings) -> np.ndarray:
    """``θ₀`` of shape ``(K, M)``: ``π_k[0] = p₀^{1/K}`` at every step, wrong options equal.

    ``θ_k[0] = log(q (M − 1) / (1 − q))`` with ``q = p₀^{1/K}``, the wrong options' logits 0.
    """
    step_accuracy = settings.start_accuracy ** (1.0 / settings.num_steps)
    logits = np.zeros((settings.num_steps, settings.num_options))
    logits[:, CORRECT_OPTION] = np.log(step_accuracy * (settings.num_options - 1) / (1.0 - step_accuracy))
    return logits


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (options), shifted by the max for stability."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def accuracy(logits: np.ndarray) -> np.ndarray:
    """``p = Π_k π_k[0]`` for logits of shape ``(..., K, M)``; returns shape ``(...)``."""
    return softmax(logits)[..., CORRECT_OPTION].prod(axis=-1)


def outcome_probabilities(logits: np.ndarray) -> np.ndarray:
    """``P(j)`` for ``j = 0..K`` (last axis), logits ``(..., K, M)`` → ``(..., K + 1)``.

    ``P(j) = Π_{i≤j} π_i[0] · (1 − π_{j+1}[0])`` for ``j < K``, ``P(K) = Π_i π_i[0]``.
    """
    step_correct = softmax(logits)[..., CORRECT_OPTION]
    ones = np.ones(step_correct.shape[:-1] + (1,))
    leading = np.cumprod(np.concatenate([ones, step_correct], axis=-1), axis=-1)  # Π_{i≤j}, j = 0..K
    fail_next = np.concatenate([1.0 - step_correct, ones], axis=-1)
    return leading * fail_next


def verdict_distribution(
    settings: ModelSettings, true_outcome: int, judge_on: bool
) -> list[tuple[int | None | str, float]]:
    """The judge's reports for a chain with ``true_outcome`` and their probabilities (zero ones dropped)."""
    num_steps = settings.num_steps
    if true_outcome == num_steps:
        return [(CORRECT_CHAIN, 1.0)]
    if not judge_on:
        return [(NOT_JUDGED, 1.0)]
    delta, epsilon = settings.judge_no_error_prob, settings.judge_misplace_prob
    if num_steps == 1:
        epsilon = 0.0  # there is no other step to misplace the error on
    true_step = true_outcome + 1
    reports: list[tuple[int | None | str, float]] = [(NO_ERROR_FOUND, delta), (true_step, (1 - delta) * (1 - epsilon))]
    others = [step for step in range(1, num_steps + 1) if step != true_step]
    reports += [(step, (1 - delta) * epsilon / len(others)) for step in others]
    return [(report, prob) for report, prob in reports if prob > 0.0]


def categories(settings: ModelSettings, judge_on: bool) -> tuple[list[Category], np.ndarray]:
    """All categories with non-zero probability and ``P(report | true outcome)`` for each."""
    found, report_probs = [], []
    for true_outcome in range(settings.num_steps + 1):
        for report, prob in verdict_distribution(settings, true_outcome, judge_on):
            found.append(Category(true_outcome, report))
            report_probs.append(prob)
    return found, np.asarray(report_probs)


def reported_reward(settings: ModelSettings, reported_step: int | None | str) -> float:
    """The encoded reward the estimators see, from the project's grading and encoding functions."""
    if reported_step == CORRECT_CHAIN:
        return encode_reward(True, None, settings.reward_band)
    if reported_step == NOT_JUDGED:
        return encode_reward(False, None, settings.reward_band)
    rts = step_rts(reported_step, settings.num_steps)
    value = graded_value(rts, settings.graded_map, settings.beta, settings.gamma)
    return encode_reward(False, value, settings.reward_band)


def conditional_score(logits: np.ndarray, true_outcome: int) -> np.ndarray:
    """``E[∇_θ log π(chain) | j]`` of shape ``(K, M)`` for outcome ``j`` (steps after the error average out).

    Step ``k ≤ j`` chose option 0: ``e₀ − π_k``. Step ``k = j + 1`` chose a wrong option, distributed as
    ``π_k`` restricted to the wrong options: ``π_k·1[wrong] / (1 − π_k[0]) − π_k``. Steps ``k > j + 1`` are
    unconstrained: ``E[e_a − π_k] = 0``.
    """
    probs = softmax(logits)
    score = np.zeros_like(probs)
    for step in range(min(true_outcome, len(probs))):
        score[step] = -probs[step]
        score[step, CORRECT_OPTION] += 1.0
    if true_outcome < len(probs):
        wrong = probs[true_outcome].copy()
        wrong[CORRECT_OPTION] = 0.0
        score[true_outcome] = wrong / wrong.sum() - probs[true_outcome]
    return score
