"""The main job (``bash run_scripts/cpu_demo.sh`` → ``recipe/sgpo/cpu_demo.py``): its options, the trainer
config it builds (checked by the real preflight), its progress figures, and one real run on the tiny
policy through verl's trainer with the SGPO reward manager and the rule-based step verifier, and one on a
policy that is right about half the time (mixed groups, where SGPO must be verl's GRPO).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recipe.sgpo.cpu_demo import (
    MODEL_PROFILES,
    DemoOptions,
    StepRow,
    parse_args,
    prepare_data,
    render_row,
    trainer_overrides,
    validation_accuracy,
)


def test_options_parse_and_bad_values_are_named():
    options = parse_args(["--estimator", "grpo", "--steps", "3", "--", "trainer.val_before_train=false"])
    assert (options.estimator, options.steps, options.extra_overrides) == ("grpo", 3, ["trainer.val_before_train=false"])
    with pytest.raises(ValueError, match="--group-size must be at least 2"):
        DemoOptions(group_size=1).validate()
    with pytest.raises(ValueError, match="--train-size .* must be at least --batch-size"):
        DemoOptions(train_size=2, batch_size=4).validate()
    with pytest.raises(ValueError, match=r"--max-ops \(1\) must be at least --min-ops \(3\)"):
        DemoOptions(min_ops=3, max_ops=1).validate()
    with pytest.raises(ValueError, match="--model must be one of arith, smollm2, tiny"):
        DemoOptions(model="gpt2").validate()
    assert parse_args(["--judge", "llm", "--judge-url", "http://127.0.0.1:8000/v1"]).judge_url == "http://127.0.0.1:8000/v1"
    with pytest.raises(ValueError, match="--judge-url is for --judge llm"):
        DemoOptions(judge_url="http://127.0.0.1:8000/v1").validate()
    with pytest.raises(ValueError, match="--judge-url must be an http"):
        DemoOptions(judge="llm", judge_url="127.0.0.1:8000").validate()


def test_a_relative_run_dir_is_made_absolute(tmp_path, monkeypatch):
    # the trainer runs inside the run folder: a relative path handed on to it would point below itself
    monkeypatch.chdir(tmp_path)
    options = parse_args(["--run-dir", "outputs/run"])
    assert options.folder == tmp_path / "outputs" / "run"
    assert parse_args([]).folder.is_absolute()


def test_each_model_takes_its_profile_and_command_line_values_win():
    arith, smollm2 = MODEL_PROFILES["arith"], MODEL_PROFILES["smollm2"]
    default = parse_args([])
    assert default.model == "arith"
    assert (default.steps, default.lr, default.prompt_length, default.val_samples) == (
        arith.steps, arith.lr, arith.prompt_length, arith.val_samples)
    chosen = parse_args(["--model", "smollm2", "--lr", "3e-5"])
    assert (chosen.lr, chosen.steps, chosen.prompt_length) == (3e-5, smollm2.steps, smollm2.prompt_length)


def test_sampled_validation_is_asked_of_verl_only_for_several_samples(tmp_path):
    def val_overrides(samples: int) -> list[str]:
        options = DemoOptions(run_dir=tmp_path, val_samples=samples)
        return [o for o in trainer_overrides(options, tmp_path, tmp_path, tmp_path, None) if ".val_kwargs." in o]

    assert val_overrides(1) == []  # verl's greedy default
    assert sorted(val_overrides(4)) == sorted([
        "actor_rollout_ref.rollout.val_kwargs.n=4", "actor_rollout_ref.rollout.val_kwargs.do_sample=true",
        "actor_rollout_ref.rollout.val_kwargs.temperature=1.0",
    ])
    assert validation_accuracy({"val-aux/sgpo/arith/correct/mean@4": 0.25, "val-core/sgpo/arith/reward/mean@4": 0.4}) == 0.25


@pytest.mark.parametrize(
    "estimator, judge, expected",
    [
        ("sgpo", "rule", "reward.sgpo.judge.backend=rule"),
        ("grpo", "rule", "reward.sgpo.judge_scope=off"),
        ("sgpo", "llm", "reward.sgpo.judge.openai.base_url=http://127.0.0.1:8123/v1"),
    ],
)
def test_trainer_config_passes_the_preflight(tmp_path, repo_root, estimator, judge, expected):
    from recipe.sgpo.cpu_demo import cpu_env
    from recipe.sgpo.preflight import compose_config

    options = DemoOptions(estimator=estimator, judge=judge, run_dir=tmp_path, steps=3)
    model, train, val = tmp_path / "model", tmp_path / "train.parquet", tmp_path / "val.parquet"
    overrides = trainer_overrides(options, model, train, val, "http://127.0.0.1:8123/v1" if judge == "llm" else None)
    assert expected in overrides
    config = compose_config(overrides)
    assert config.algorithm.adv_estimator == estimator
    assert config.trainer.device == "cpu" and config.actor_rollout_ref.rollout.name == "transformers"
    assert config.trainer.total_training_steps == 3 and config.trainer.save_freq == 3
    # The real preflight CLI in a process of its own, with the CPU backend loaded as in the main job.
    checked = subprocess.run(
        [sys.executable, "-m", "recipe.sgpo.preflight", *overrides], cwd=repo_root, env=cpu_env(),
        capture_output=True, text=True,
    )
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "preflight passed" in checked.stdout


def test_step_line_and_validation_accuracy_come_from_verls_metric_names():
    row = StepRow.from_metrics(
        2,
        {
            "critic/score/mean": 0.25, "sgpo/accuracy": 0.125, "sgpo/groups/all_negative_share": 0.5,
            "sgpo/judge/called": 12, "sgpo/advantage/all_negative_nonzero_share": 0.75, "timing_s/step": 41.5,
            "val-core/sgpo/arith/reward/mean@1": 0.3, "val-aux/sgpo/arith/correct/mean@1": 0.2,
        },
    )
    assert render_row(row).split() == ["2", "0.250", "12.5%", "50.0%", "12", "75.0%", "41.5"]
    assert validation_accuracy(row.validation) == pytest.approx(0.2)


@pytest.mark.slow
def test_main_job_runs_sgpo_on_the_tiny_policy(tiny_main_job):
    # The main job on the tiny policy, judged over real HTTP by a loopback judge whose verdicts vary by
    # response (the session fixture tiny_main_job, tests/conftest.py), so all-negative groups get graded
    # values with spread and some members are not judged. The advantages verl's trainer computed (the sgpo
    # trainer's per-step dump) must be ordered like the graded values, and zero for every member without a
    # verdict. (The tiny policy is never right, so every group is all-negative; mixed groups: the next test.)
    completed, run_dir = tiny_main_job["completed"], tiny_main_job["run_dir"]
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    out = completed.stdout
    assert "validation accuracy before training" in out and "validation accuracy after step 1" in out
    step_line = next(line for line in out.splitlines() if line.split()[:1] == ["1"])
    assert len(step_line.split()) == 7, step_line
    assert "[sgpo] sgpo on the CPU: 1 steps" in out
    metrics = [json.loads(line) for line in (run_dir / "logs" / "metrics.jsonl").read_text().splitlines()]
    step = next(m["data"] for m in metrics if m["step"] == 1)
    assert step["sgpo/judge/called"] > 0 and step["sgpo/groups/all_negative_share"] == 1.0
    assert step["actor/grad_norm"] > 0
    # The rollout generated with the weights of the current step (the CPU rollout server tags each response),
    # and the trainer pushed its weights to the server at the start and after the step.
    assert step["training/off_policy/trajectory_staleness/max"] == 0
    trainer_log = (run_dir / "logs" / "trainer.log").read_text(errors="replace")
    assert "SGPO plugin failed" not in trainer_log  # registered in every process of the run (driver and actors)
    for synced in (0, 1):
        assert f"weight tensors (step {synced})" in trainer_log
    assert any((run_dir / "rollouts").glob("*.jsonl"))
    checkpoint = run_dir / "checkpoints" / "global_step_1" / "actor"
    assert (checkpoint / "model_world_size_1_rank_0.pt").is_file()
    trained, initial = safetensors_of(checkpoint / "huggingface"), safetensors_of(run_dir / "tiny_policy")
    assert any(not np.allclose(tensor.float(), initial[name].float()) for name, tensor in trained.items()), \
        "no weight changed after an SGPO step"
    check_advantages_follow_graded_values(tiny_main_job["dump_dir"] / "1.jsonl")


@pytest.mark.slow
def test_main_job_resumes_its_checkpoint_and_grpo_leaves_all_negative_groups_untaught(tiny_main_job, tmp_path):
    # The main job's --resume on a copy of the shared run: verl's trainer loads the step-1 checkpoint (FSDP2 on
    # the CPU backend) and runs step 2 with GRPO, whose advantage in an all-negative group is zero everywhere.
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_main_job["run_dir"], run_dir)
    command = [sys.executable, "-m", "recipe.sgpo.cpu_demo", "--model", "tiny", "--estimator", "grpo", "--resume",
               "--steps", "2", "--response-length", "32", "--train-size", "8", "--val-size", "2", "--run-dir", str(run_dir),
               "--", "trainer.val_before_train=false"]
    completed = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    assert "Resuming from" in (run_dir / "logs" / "trainer.log").read_text(errors="replace")
    metrics = {m["step"]: m["data"] for m in map(json.loads, (run_dir / "logs" / "metrics.jsonl").read_text().splitlines())}
    trained_steps = sorted(step for step, data in metrics.items() if "timing_s/step" in data)
    assert trained_steps == [2], "the run did not resume from the step-1 checkpoint"
    assert metrics[2]["sgpo/advantage/all_negative_responses"] > 0
    assert metrics[2]["sgpo/advantage/all_negative_nonzero_share"] == 0.0  # GRPO's blind spot
    assert metrics[2]["sgpo/advantage/all_negative_abs_mean"] == 0.0
    assert (run_dir / "checkpoints" / "global_step_2" / "actor").is_dir()


def safetensors_of(folder: Path) -> dict:
    from safetensors.torch import load_file

    tensors = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(file))
    assert tensors, f"no safetensors in {folder}"
    return tensors


def check_advantages_follow_graded_values(dump: Path) -> None:
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["uid"], []).append(row)
    assert len(rows) == 16 and all(len(members) == 4 for members in groups.values())
    taught = 0
    for members in groups.values():
        judged = [m for m in members if m["judged"]]
        for m in members:
            if not m["judged"]:
                assert m["advantage"] == 0.0, m  # no verdict, no signal
        by_value = sorted(judged, key=lambda m: m["graded_value"])
        for low, high in zip(by_value, by_value[1:]):
            assert low["advantage"] <= high["advantage"] + 1e-6, (low, high)
            if high["graded_value"] > low["graded_value"] + 1e-3:
                assert high["advantage"] > low["advantage"], (low, high)
        if len({round(m["graded_value"], 6) for m in judged}) >= 2:
            taught += 1
            assert by_value[0]["advantage"] < 0 < by_value[-1]["advantage"]
        else:
            assert all(m["advantage"] == 0.0 for m in members)  # fewer than 2 values: no fake signal
    assert taught >= 1, "no all-negative group had graded values with spread: the test proves nothing"
    assert any(not row["judged"] for row in rows), "no member without a verdict: the zero rule went untested"


@pytest.mark.slow
def test_main_job_gives_mixed_groups_grpos_advantages(tmp_path, repo_root):
    # A tiny policy that memorised the 8 training answers and boxes the right one or one more, about half
    # the time each (tests/cpu_trainer_inputs.py build_coin_policy), so most groups are mixed. The real
    # reward manager (grader, rendezvous, rule verifier) must leave their wrong members unjudged with
    # reward 0, and the advantages verl's trainer computed with the sgpo estimator must be verl's own grpo
    # advantages of the binary outcomes there.
    import pandas as pd
    import torch
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    from cpu_trainer_inputs import build_coin_policy

    run_dir, dump_dir = tmp_path / "run", tmp_path / "advantages"
    sizes = ["--train-size", "8", "--val-size", "2", "--min-ops", "1", "--max-ops", "1"]
    train, _ = prepare_data(parse_args(["--model", "tiny", *sizes, "--run-dir", str(run_dir)]))
    policy = build_coin_policy(tmp_path / "coin", pd.read_parquet(train).to_dict("records"))
    command = [sys.executable, "-m", "recipe.sgpo.cpu_demo", "--model", "tiny", "--steps", "1", *sizes,
               "--response-length", "16", "--run-dir", str(run_dir), "--",
               f"actor_rollout_ref.model.path={policy}", f"trainer.sgpo_advantage_dir={dump_dir}"]
    completed = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]

    rows = [json.loads(line) for line in (dump_dir / "1.jsonl").read_text().splitlines()]
    correct = [row["reward"] >= 1.0 for row in rows]
    assert [bool(row["acc"]) for row in rows] == correct
    by_group: dict[str, list[bool]] = {}
    for row, right in zip(rows, correct):
        by_group.setdefault(row["uid"], []).append(right)
    mixed = {uid for uid, outcomes in by_group.items() if any(outcomes) and not all(outcomes)}
    assert mixed, f"no mixed group in {by_group}: the test proves nothing"
    for row, right in zip(rows, correct):
        if row["uid"] in mixed and not right:
            assert row["reward"] == 0.0 and not row["judge_called"], row  # judged only in all-negative groups
    grpo, _ = compute_grpo_outcome_advantage(
        torch.tensor([[float(c)] for c in correct]), torch.ones(len(rows), 1),
        np.array([row["uid"] for row in rows], dtype=object))
    for row, expected in zip(rows, grpo[:, 0].tolist()):
        if any(by_group[row["uid"]]):  # mixed or all-correct groups: plain GRPO
            assert row["advantage"] == pytest.approx(expected, abs=1e-5), row
