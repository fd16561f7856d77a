"""The exact expected update, by enumerating every group of ``G`` sample categories.

A group is a multiset of ``G`` categories (``model.categories``), ``n_c`` members of category ``c``, with
multinomial probability ``w(n) = G! / Π_c n_c! · Π_c q_c^{n_c}``, ``q_c = P(j_c) · P(report_c | j_c)``.
The estimator's advantages depend only on the rewards, not on ``θ``, so it is called **once** on all
multisets; ``a_c(n)`` is the sum of the advantages of the category-``c`` members of multiset ``n``. Since the
judge's report depends on the chain only through its true outcome ``j``,

    E[Δθ] = η · (1/G) · Σ_c [Σ_n w(n) a_c(n)] · E[∇_θ log π(chain) | j_c]          (logit units)

exactly (``model.conditional_score`` gives the last factor). The number of multisets is
``C(G + C − 1, C − 1)`` for ``C`` categories; enumeration is refused above ``MAX_ENUMERATED_GROUPS``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from recipe.sgpo.theory.estimators import JUDGE_USED, group_advantages
from recipe.sgpo.theory.model import (
    ModelSettings,
    accuracy,
    categories,
    conditional_score,
    outcome_probabilities,
    reported_reward,
    start_logits,
)

#: Largest number of distinct groups enumerated (the estimator scores ``G`` rows each; verl's ``grpo``
#: takes about 20 µs a row, so this bounds one enumeration to about a minute on 2 cores).
MAX_ENUMERATED_GROUPS = 200_000


@dataclass(frozen=True)
class Enumeration:
    """Every group's category counts and per-category advantage sums, for one setting and estimator."""

    settings: ModelSettings
    true_outcomes: np.ndarray  # (C,) j of each category
    report_probs: np.ndarray  # (C,) P(report | j)
    counts: np.ndarray  # (S, C) n_c of each multiset
    log_coefficients: np.ndarray  # (S,) log G!/Π n_c!
    advantage_sums: np.ndarray  # (S, C) a_c(n)


def number_of_groups(group_size: int, num_categories: int) -> int:
    """``C(G + C − 1, C − 1)``, the number of multisets of ``G`` among ``C`` categories."""
    return math.comb(group_size + num_categories - 1, num_categories - 1)


def enumerate_groups(settings: ModelSettings, estimator: str) -> Enumeration:
    """Enumerate all groups and score them with ``estimator`` through verl's registry (one call)."""
    found, report_probs = categories(settings, JUDGE_USED[estimator])
    size = number_of_groups(settings.group_size, len(found))
    if size > MAX_ENUMERATED_GROUPS:
        raise ValueError(
            f"exact enumeration needs {size} groups (K={settings.num_steps}, G={settings.group_size}, "
            f"{len(found)} categories) > MAX_ENUMERATED_GROUPS={MAX_ENUMERATED_GROUPS}; use the Monte-Carlo "
            "dynamics for this setting, or a smaller K, G or a noise-free judge"
        )
    members = np.array(list(itertools.combinations_with_replacement(range(len(found)), settings.group_size)))
    rewards_by_category = np.array([reported_reward(settings, cat.reported_step) for cat in found])
    advantages = group_advantages(estimator, rewards_by_category[members], settings.reward_band)
    counts = np.zeros((len(members), len(found)))
    advantage_sums = np.zeros_like(counts)
    rows = np.repeat(np.arange(len(members)), settings.group_size)
    np.add.at(counts, (rows, members.reshape(-1)), 1.0)
    np.add.at(advantage_sums, (rows, members.reshape(-1)), advantages.reshape(-1))
    log_coefficients = math.lgamma(settings.group_size + 1) - _log_factorials(counts)
    return Enumeration(
        settings=settings,
        true_outcomes=np.array([cat.true_outcome for cat in found]),
        report_probs=report_probs,
        counts=counts,
        log_coefficients=log_coefficients,
        advantage_sums=advantage_sums,
    )


def _log_factorials(counts: np.ndarray) -> np.ndarray:
    """``Σ_c log n_c!`` per row."""
    return np.vectorize(math.lgamma)(counts + 1.0).sum(axis=1)


def group_probabilities(enumeration: Enumeration, logits: np.ndarray) -> np.ndarray:
    """``w(n)`` for every enumerated multiset at ``logits`` (sums to 1)."""
    category_probs = outcome_probabilities(logits)[enumeration.true_outcomes] * enumeration.report_probs
    log_weights = enumeration.log_coefficients + enumeration.counts @ np.log(category_probs)
    return np.exp(log_weights)


def expected_update(enumeration: Enumeration, logits: np.ndarray) -> np.ndarray:
    """``E[Δθ]`` of shape ``(K, M)`` at ``logits`` (formula in the module docstring)."""
    settings = enumeration.settings
    weights = group_probabilities(enumeration, logits)
    per_category = weights @ enumeration.advantage_sums / settings.group_size
    update = np.zeros_like(logits)
    for coefficient, outcome in zip(per_category, enumeration.true_outcomes):
        update += coefficient * conditional_score(logits, int(outcome))
    return settings.learning_rate * update


def expected_dynamics(
    enumeration: Enumeration, num_iterations: int, stop_at_accuracy: float | None = None
) -> np.ndarray:
    """Accuracy along ``θ_{t+1} = θ_t + E[Δθ(θ_t)]`` from ``start_logits``: shape ``(num_iterations + 1,)``.

    This is the deterministic expected-update (mean-field) path, not the mean of the random paths.
    With ``stop_at_accuracy`` the path ends early once it reaches that accuracy.
    """
    logits = start_logits(enumeration.settings)
    path = [accuracy(logits)]
    for _ in range(num_iterations):
        logits = logits + expected_update(enumeration, logits)
        path.append(accuracy(logits))
        if stop_at_accuracy is not None and path[-1] >= stop_at_accuracy:
            break
    return np.array(path)
