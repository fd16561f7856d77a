"""The stylized-model reproduction of the paper's theory (recipe/sgpo/theory/, docs/theory.md).

Everything runs the shipped estimators through verl's registry (``grpo`` from verl 0.9.1, ``sgpo`` from
recipe/sgpo/advantage.py) and the project's grading/encoding functions; nothing is mocked.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from recipe.sgpo.theory.__main__ import main
from recipe.sgpo.theory.estimators import JUDGE_USED, distinct_group_advantages, group_advantages
from recipe.sgpo.theory.exact import enumerate_groups, expected_update
from recipe.sgpo.theory.model import ModelSettings, softmax, start_logits
from recipe.sgpo.theory.montecarlo import chain_updates, judge_reports, reward_table, sampled_updates, true_outcomes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PLOT_BYTES = 200_000


def test_exact_update_matches_hand_computed_two_step_case():
    """K = 2 steps, M = 2 options, G = 2, θ = 0 (every π = (½, ½)), η = 1.

    Outcomes j (leading correct steps): P(0) = ½, P(1) = ¼, P(2) = ¼. E[∇ log π | j] per step, as
    (correct logit) components (the wrong logit is the negative): j=0: (−½, 0); j=1: (+½, −½); j=2: (+½, +½).
    A group of two different rewards gets advantages ±(½/(1/√2)) = ±1/√2 (std unbiased), equal ones 0.

    GRPO (binary): {0,2} w = 2·½·¼ = ¼, update ½·(1/√2)·[g(2) − g(0)] = (1/√2)·(½, ¼);
                   {1,2} w = 2·¼·¼ = ⅛, update ½·(1/√2)·[g(2) − g(1)] = (1/√2)·(0, ½).
                   E = ¼·(1/√2)(½, ¼) + ⅛·(1/√2)(0, ½) = (1/(8√2), 1/(8√2)).
    SGPO adds the all-negative group {0,1} (g = σ(−2.5) < σ(0), w = 2·½·¼ = ¼):
                   ½·(1/√2)·[g(1) − g(0)] = (1/√2)(½, −¼), weighted: (1/(8√2), −1/(16√2)).
                   E = (1/(4√2), 1/(16√2)): the first step learns twice as fast, the second slower.
    """
    settings = ModelSettings(num_steps=2, num_options=2, group_size=2, learning_rate=1.0)
    logits = np.zeros((2, 2))
    root2 = math.sqrt(2.0)
    expected_correct_logit = {"grpo": [1 / (8 * root2), 1 / (8 * root2)], "sgpo": [1 / (4 * root2), 1 / (16 * root2)]}
    for estimator, correct_logit in expected_correct_logit.items():
        update = expected_update(enumerate_groups(settings, estimator), logits)
        # Tolerance: verl divides by (std + 1e-6) and the estimators compute in float32.
        np.testing.assert_allclose(update[:, 0], correct_logit, atol=1e-5, err_msg=estimator)
        np.testing.assert_allclose(update[:, 1], -np.array(correct_logit), atol=1e-5, err_msg=estimator)


ALL_NEGATIVE_CHAINS = np.array([[[1, 0], [0, 2], [3, 1], [0, 0 + 3]]])  # errors at steps 1, 2, 1, 2


def _group_update(estimator: str, settings: ModelSettings, logits: np.ndarray, chains: np.ndarray) -> np.ndarray:
    outcomes = true_outcomes(chains)
    rewards = reward_table(settings, JUDGE_USED[estimator])[judge_reports(outcomes, settings, np.random.default_rng(0))]
    advantages = group_advantages(estimator, rewards, settings.reward_band)
    return chain_updates(logits, chains, advantages, settings.learning_rate)


def test_sgpo_update_in_all_negative_group_raises_correct_first_step():
    """Four wrong chains, two wrong at step 1 and two at step 2: SGPO's step raises π_1[correct]."""
    settings = ModelSettings(num_steps=2, num_options=4, group_size=4)
    logits = start_logits(settings)[None]
    update = _group_update("sgpo", settings, logits, ALL_NEGATIVE_CHAINS)
    before, after = softmax(logits)[0, 0, 0], softmax(logits + update)[0, 0, 0]
    assert after > before + 1e-3, (before, after)


def test_grpo_update_in_all_negative_group_is_zero():
    """The same group under GRPO (binary reward): every advantage and the whole update are exactly 0."""
    settings = ModelSettings(num_steps=2, num_options=4, group_size=4)
    update = _group_update("grpo", settings, start_logits(settings)[None], ALL_NEGATIVE_CHAINS)
    assert np.all(update == 0.0)
    # and in the enumeration: every group without a correct chain has zero advantage sums under GRPO
    enumeration = enumerate_groups(ModelSettings(num_steps=2, num_options=4, group_size=4), "grpo")
    correct_column = enumeration.true_outcomes == 2
    all_negative = enumeration.counts[:, correct_column].sum(axis=1) == 0
    assert all_negative.sum() > 1 and np.all(enumeration.advantage_sums[all_negative] == 0.0)


def test_monte_carlo_mean_update_converges_to_exact_expectation():
    """Mean of 20 000 sampled group updates = exact expectation within 4 standard errors (+1e-4 float slack).

    With an imperfect judge (ε = 0.2, δ = 0.1), so the noise model of the sampler and of the enumeration
    are checked against each other. Power: the perfect-judge expectation lies outside that tolerance.
    """
    settings = ModelSettings(num_steps=2, num_options=3, group_size=4, start_accuracy=0.1,
                             judge_misplace_prob=0.2, judge_no_error_prob=0.1)
    num_groups = 20_000
    logits = start_logits(settings)
    for estimator in ("grpo", "sgpo"):
        updates, _ = sampled_updates(np.repeat(logits[None], num_groups, axis=0), settings, estimator,
                                     np.random.default_rng(1))
        mean, standard_error = updates.mean(axis=0), updates.std(axis=0, ddof=1) / math.sqrt(num_groups)
        exact = expected_update(enumerate_groups(settings, estimator), logits)
        assert np.all(np.abs(mean - exact) <= 4 * standard_error + 1e-4), (estimator, mean, exact, standard_error)
        assert np.abs(exact).max() > 10 * standard_error.max()  # the test resolves the update
    perfect_judge = ModelSettings(num_steps=2, num_options=3, group_size=4, start_accuracy=0.1)
    noise_free = expected_update(enumerate_groups(perfect_judge, "sgpo"), logits)
    assert np.any(np.abs(mean - noise_free) > 4 * standard_error + 1e-4)


def test_distinct_group_scoring_equals_direct_estimator_call():
    """Deduplicating sampled groups before calling the estimator changes no advantage.

    Up to float32 rounding (1e-6): the sorted group is summed in another order by the estimators.
    """
    rng = np.random.default_rng(2)
    settings = ModelSettings(num_steps=3)
    table = reward_table(settings, judge_on=True)
    rewards = table[rng.integers(0, len(table), size=(300, 8))]
    for estimator in ("grpo", "sgpo"):
        direct = group_advantages(estimator, rewards, settings.reward_band)
        deduplicated = distinct_group_advantages(estimator, rewards, settings.reward_band)
        np.testing.assert_allclose(deduplicated, direct, rtol=0, atol=1e-6)
        assert np.abs(direct).max() > 0.5


def test_bad_settings_are_refused_with_the_flag_to_fix():
    with pytest.raises(ValueError, match="start_accuracy.*--start-accuracy"):
        ModelSettings(start_accuracy=1.0)
    with pytest.raises(ValueError, match="MAX_ENUMERATED_GROUPS.*Monte-Carlo"):
        enumerate_groups(ModelSettings(num_steps=8, group_size=8, judge_misplace_prob=0.5), "sgpo")


def test_cli_writes_tables_json_and_plots(tmp_path, capsys):
    """The CLI on the small grid: results agree with the model's known facts, plots are small PNGs."""
    assert main(["--plot-dir", str(tmp_path / "plots"), "--data-dir", str(tmp_path / "data"),
                 "--runs", "4", "--iterations", "170", "--grid", "small"]) == 0
    results = json.loads((tmp_path / "data" / "theory_results.json").read_text())
    assert set(results["curves"]) == {"grpo", "sgpo (logistic)", "sgpo (linear)"}
    grpo = results["curves"]["grpo"]
    assert len(grpo["median"]) == 171 and grpo["exact"][0] == pytest.approx(0.02)
    assert grpo["all_negative_predicted"][0] == pytest.approx(0.98 ** 8)
    start_rows = {row["settings"]["start_accuracy"]: row for row in results["acceleration"]["start_accuracy"]}
    assert start_rows[0.02]["exact_0.5"]["ratio"] > 1.2  # SGPO helps from a low start (158 vs 101)
    assert start_rows[0.3]["exact_0.5"]["ratio"] == pytest.approx(1.0, abs=0.1)  # and not from a high one
    noise_rows = {row["settings"]["judge_misplace_prob"]: row for row in results["judge_noise"]}
    reversed_judge = noise_rows[1.0]["exact_0.5"]  # ε = 1 with K = 2 swaps the two positions
    assert reversed_judge["sgpo"] is None or reversed_judge["sgpo"] > reversed_judge["grpo"]
    tables = (tmp_path / "data" / "theory_tables.md").read_text()
    assert "| p₀ | exact GRPO→0.5 |" in tables and "**Imperfect judge**" in tables
    assert "| 0.02 | " in tables and "| 3 | " in tables  # a p₀ row and the K = 3 row
    for name in ("curves", "acceleration", "judge_noise"):
        png = (tmp_path / "plots" / f"theory_{name}.png").read_bytes()
        assert png.startswith(PNG_SIGNATURE) and 10_000 < len(png) < MAX_PLOT_BYTES, name
    assert "theory_results.json" in capsys.readouterr().out
