"""The shipped yaml composes with verl 0.9.1's ppo_trainer, and the fail-fast check catches bad configs."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from config_overrides import RUNNABLE
from omegaconf import OmegaConf

from recipe.sgpo.preflight import (
    check_context_length,
    check_reward_placement,
    check_token_budgets,
    compose_config,
    find_legacy_keys,
    run_checks,
)



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
    assert composed.trainer.v1.trainer_mode == "sgpo_sync"
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
        ("trainer.v1.trainer_mode=no_such_mode", "Unknown trainer 'no_such_mode'"),
        ("reward.sgpo.judge_scope=sometimes", "reward.sgpo.judge_scope"),
        ("reward.sgpo.judge.grading.map=cubic", "reward.sgpo.judge.grading.map"),
        ("actor_rollout_ref.actor.ppo_mini_batch_size=8", "must be >= actor.ppo_mini_batch_size"),
        ("algorithm.sgpo.apply_to=all_incorrect", "set reward.sgpo.judge_scope=all_wrong"),
    ],
)
def test_each_bad_setting_is_reported_with_its_key(override, message):
    report = run_checks(compose_config([*RUNNABLE, override]))
    assert not report.ok
    assert any(message in failure for failure in report.failures), report.render()


def test_the_all_incorrect_ablation_passes_with_every_wrong_answer_judged():
    report = run_checks(compose_config([*RUNNABLE, "algorithm.sgpo.apply_to=all_incorrect", "reward.sgpo.judge_scope=all_wrong"]))
    assert report.ok, report.render()


def test_cli_lists_every_failure_and_exits_1(repo_root):
    result = subprocess.run(
        [sys.executable, "-m", "recipe.sgpo.preflight", *RUNNABLE,
         "algorithm.sgpo.reward_band=0", "actor_rollout_ref.rollout.n=1"],
        capture_output=True, text=True, cwd=repo_root, timeout=300,
    )
    assert result.returncode == 1
    # the band is read by both the estimator and the reward manager, so both checks name it
    assert "preflight FAILED (3 problem(s))" in result.stderr
    assert "algorithm.sgpo.reward_band" in result.stderr and "rollout.n=1" in result.stderr


def yaml_header_commands(repo_root) -> list[str]:
    """The commands the yaml's header tells a user to run (lines ``#   python -m ...``)."""
    header = (repo_root / "recipe/sgpo/config/sgpo_trainer.yaml").read_text().split("\n\n", 1)[0]
    return [line.lstrip("# ").strip() for line in header.splitlines() if line.lstrip("# ").startswith("python -m")]


def test_the_commands_in_the_yaml_header_run_as_written(repo_root):
    commands = yaml_header_commands(repo_root)
    assert [c.split()[2] for c in commands] == ["recipe.sgpo.preflight", "verl.trainer.main_ppo"]
    overrides = " ".join(shlex.quote(o) for o in RUNNABLE)
    bin_dir = Path(sys.executable).parent
    for command in commands:
        # main_ppo with hydra's --cfg job composes and prints the config instead of training
        line = command.replace("<overrides>", overrides) + (" --cfg job" if "main_ppo" in command else "")
        result = subprocess.run(["bash", "-c", line], capture_output=True, text=True, cwd=repo_root, timeout=300,
                                env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
        assert result.returncode == 0, (line, result.stderr[-2000:])
        if "main_ppo" in command:
            assert "adv_estimator: sgpo" in result.stdout


def test_cli_rejects_an_override_that_does_not_compose(repo_root):
    result = subprocess.run(
        [sys.executable, "-m", "recipe.sgpo.preflight", "algorithm.no_such_key=1"],
        capture_output=True, text=True, cwd=repo_root, timeout=300,
    )
    assert result.returncode == 1
    assert "does not compose" in result.stderr and "no_such_key" in result.stderr


# --- judge placement, token budgets and context length (the launch scripts' fail-fast rules) ---------

#: The standalone judge exactly as run_scripts/common.sh places it (JUDGE_PLACEMENT=standalone).
STANDALONE_JUDGE = [
    "reward.reward_model.enable=True",
    "reward.reward_model.enable_resource_pool=True",
    "reward.reward_model.nnodes=1",
    "reward.reward_model.n_gpus_per_node=8",
    "reward.reward_model.model_path=/models/QwQ-32B",
    "reward.reward_model.rollout.name=vllm",
    "reward.reward_model.rollout.free_cache_engine=False",
    "reward.custom_reward_function.path=pkg://reward.grader",
    "reward.sgpo.judge.backend=router",
]


def _problem(check, overrides):
    """The message ``check`` raises for the composed config, or None when it passes."""
    try:
        check(compose_config(overrides))
    except ValueError as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 - e.g. a custom reward function that does not import
        return f"{type(error).__name__}: {error}"
    return None


def test_the_standalone_judge_and_no_judge_pass_the_placement_check():
    assert _problem(check_reward_placement, [*RUNNABLE, *STANDALONE_JUDGE]) is None
    assert _problem(check_reward_placement, RUNNABLE) is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # verl's reward loop would score with the judge as a discriminative model and skip our manager
        (["reward.custom_reward_function.path=null"], "never calls the reward manager"),
        # colocated under the V1 trainer: no reference, no uid reach the reward workers
        (["reward.reward_model.enable_resource_pool=False"], "colocated reward model"),
        (["reward.reward_model.nnodes=0"], "needs at least one node and one GPU"),
        # verl would put the judge to sleep after start-up and never wake it on its own pool
        (["reward.reward_model.rollout.free_cache_engine=True"], "never wakes it"),
        (["reward.custom_reward_function.path=pkg://reward.no_such_module"], "reward.no_such_module"),
        # the judge model verl starts would never be asked
        (["reward.sgpo.judge.backend=openai"], "never asks it"),
    ],
)
def test_each_unworkable_judge_placement_is_reported(overrides, message):
    problem = _problem(check_reward_placement, [*RUNNABLE, *STANDALONE_JUDGE, *overrides])
    assert problem is not None and message in problem, problem


def test_a_router_judge_without_verls_reward_model_is_reported_unless_the_judge_is_off():
    problem = _problem(check_reward_placement, [*RUNNABLE, "reward.sgpo.judge.backend=router"])
    assert problem is not None and "which is not enabled" in problem
    judge_off = [*RUNNABLE, "reward.sgpo.judge.backend=router", "reward.sgpo.judge_scope=off"]
    assert _problem(check_reward_placement, judge_off) is None


def test_the_placement_check_is_part_of_every_preflight():
    report = run_checks(compose_config([*RUNNABLE, *STANDALONE_JUDGE, "reward.reward_model.enable_resource_pool=False"]))
    assert any(failure.startswith("judge placement") and "colocated" in failure for failure in report.failures)


def _long_run(*overrides):
    return [*RUNNABLE, "data.max_prompt_length=1024", "data.max_response_length=16384",
            "actor_rollout_ref.actor.use_dynamic_bsz=True", *overrides]


def test_a_token_budget_below_the_longest_sequence_is_reported_with_the_minimum():
    problem = _problem(check_token_budgets, _long_run(
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=8192",
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=32768",
    ))
    assert problem is not None
    assert "ppo_max_token_len_per_gpu=8192" in problem and "at least 17408" in problem
    assert "log_prob_max_token_len_per_gpu" not in problem


def test_sequence_parallelism_multiplies_the_token_budget():
    assert _problem(check_token_budgets, _long_run(
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=8192",
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=8192",
        "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=4",
    )) is None


@pytest.fixture
def math_model_folder(tmp_path):
    """A local model folder whose config.json has Qwen2.5-Math-7B's 4,096 positions."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2", "max_position_embeddings": 4096}))
    return tmp_path


def test_a_response_longer_than_a_local_models_context_is_reported(math_model_folder):
    problem = _problem(check_context_length, [*RUNNABLE, f"actor_rollout_ref.model.path={math_model_folder}",
                                              "data.max_prompt_length=1024", "data.max_response_length=8192"])
    assert problem is not None and "9216 tokens" in problem and "at most 4096" in problem


def test_lengths_within_the_context_or_an_extended_context_pass(math_model_folder):
    fits = [*RUNNABLE, f"actor_rollout_ref.model.path={math_model_folder}",
            "data.max_prompt_length=1024", "data.max_response_length=3072"]
    assert _problem(check_context_length, fits) is None
    extended = [*fits, "data.max_response_length=8192",
                "+actor_rollout_ref.model.override_config.max_position_embeddings=16384"]
    assert _problem(check_context_length, extended) is None
