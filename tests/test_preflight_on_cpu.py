"""The shipped yaml composes with verl 0.9.1's ppo_trainer, and the fail-fast check catches bad configs."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from recipe.sgpo.preflight import compose_config, find_legacy_keys, run_checks

#: The minimum a real run adds to the shipped yaml for verl's own validate_config to pass.
RUNNABLE = [
    "data.train_batch_size=4",
    "actor_rollout_ref.actor.ppo_mini_batch_size=4",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2",
    "trainer.n_gpus_per_node=1",
]


@pytest.fixture(scope="module")
def composed():
    return compose_config(RUNNABLE)


def test_yaml_composes_with_verl_ppo_trainer_and_carries_our_keys(composed):
    assert composed.algorithm.adv_estimator == "sgpo"
    assert OmegaConf.to_container(composed.algorithm.sgpo) == {
        "reward_band": 0.5,
        "min_spread": 0.001,
        "negative_scale": 1.0,
        "apply_to": "all_negative",
        "epsilon": 1e-6,
    }
    assert composed.reward.reward_manager.source == "register"
    assert composed.reward.reward_manager.name == "sgpo"
    assert composed.actor_rollout_ref.rollout.n == 8
    # verl's own defaults are there underneath (the yaml holds only deltas)
    assert composed.algorithm.norm_adv_by_std_in_grpo is True
    assert composed.trainer.use_v1 is True
    assert "strategy" in composed.actor_rollout_ref.actor


def test_yaml_sets_no_legacy_keys(composed):
    assert find_legacy_keys(composed) == []


def test_legacy_keys_are_detected_by_name():
    config = compose_config([*RUNNABLE, "reward_model.enable=true", "custom_reward_function.path=/tmp/f.py"])
    assert find_legacy_keys(config) == ["reward_model.enable", "custom_reward_function.path"]
    report = run_checks(config)
    assert not report.ok
    assert any("reward_model.enable" in failure and "reward.reward_model" in failure for failure in report.failures)


def test_a_runnable_config_passes_every_check(composed):
    report = run_checks(composed)
    assert report.ok, report.render()
    assert len(report.passed) >= 6


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("algorithm.adv_estimator=sgpoo", "Unknown advantage estimator"),
        ("algorithm.sgpo.reward_band=1.2", "algorithm.sgpo.reward_band"),
        ("algorithm.sgpo.apply_to=everyone", "algorithm.sgpo.apply_to"),
        ("+algorithm.sgpo.min_sprad=0.1", "algorithm.sgpo.min_sprad"),
        ("algorithm.use_kl_in_reward=true", "algorithm.use_kl_in_reward"),
        ("actor_rollout_ref.rollout.n=1", "actor_rollout_ref.rollout.n=1"),
        ("reward.reward_manager.name=no_such_manager", "no_such_manager"),
        ("actor_rollout_ref.actor.ppo_mini_batch_size=8", "must be >= actor.ppo_mini_batch_size"),
    ],
)
def test_each_bad_setting_is_reported_with_its_key(override, message):
    report = run_checks(compose_config([*RUNNABLE, override]))
    assert not report.ok
    assert any(message in failure for failure in report.failures), report.render()


def test_cli_lists_every_failure_and_exits_1(repo_root):
    result = subprocess.run(
        [sys.executable, "-m", "recipe.sgpo.preflight", *RUNNABLE,
         "algorithm.sgpo.reward_band=0", "actor_rollout_ref.rollout.n=1"],
        capture_output=True, text=True, cwd=repo_root, timeout=300,
    )
    assert result.returncode == 1
    assert "preflight FAILED (2 problem(s))" in result.stderr
    assert "algorithm.sgpo.reward_band" in result.stderr and "rollout.n=1" in result.stderr


def test_cli_rejects_an_override_that_does_not_compose(repo_root):
    result = subprocess.run(
        [sys.executable, "-m", "recipe.sgpo.preflight", "algorithm.no_such_key=1"],
        capture_output=True, text=True, cwd=repo_root, timeout=300,
    )
    assert result.returncode == 1
    assert "does not compose" in result.stderr and "no_such_key" in result.stderr
