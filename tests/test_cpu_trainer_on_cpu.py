"""verl 0.9.1's own trainer (``python -m verl.trainer.main_ppo``) running SGPO and GRPO on the CPU.

The end-to-end tests launch the real trainer — Ray, TransferQueue, the FSDP2 actor, the agent loop, the
transformers rollout server (recipe/cpu_backend) and the reward loop — on a tiny random Qwen2-shaped
policy and a small arithmetic parquet set, with the ``platform=cpu`` config group. To keep CI short they
share two launches (about 75 s each on 2 cores):

1. ``sgpo`` for 2 steps from scratch, validating and saving a checkpoint at step 2;
2. ``grpo`` resumed from that checkpoint for steps 3 and 4 (resume and the GRPO contrast in one launch).

The tiny policy never answers correctly, so every group is all-negative: the case the method is about.
The reward is the stand-in described in tests/cpu_trainer_inputs.py (graded for sgpo, binary for grpo).

The fast tests check the pieces in-process: the platform, the registrations, the rollout server's
batched generation and weight loading, and the advantage metrics.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cpu_trainer_inputs import write_arith_parquet

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
STAND_IN_REWARD = TESTS_DIR / "cpu_trainer_inputs.py"
#: Wall-clock bound of one trainer launch (Ray start-up is 60-90 s on 2 cores; 2 steps a few seconds).
LAUNCH_TIMEOUT_S = 900


def _cpu_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        VERL_PLATFORM="cpu",
        RAY_USAGE_STATS_ENABLED="0",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        RAY_DEDUP_LOGS="0",
    )
    env.update(extra or {})
    return env


def _launch(run_dir: Path, name: str, estimator: str, total_steps: int, inputs: dict[str, Path]) -> dict:
    """Run verl's main_ppo; return its per-step metrics (file logger), its output and checkpoint dir."""
    metrics_file = run_dir / f"{name}.metrics.jsonl"
    log_file = run_dir / f"{name}.log"
    overrides = [
        f"--config-path={REPO_ROOT / 'recipe' / 'sgpo' / 'config'}",
        "--config-name=sgpo_trainer",
        "+platform=cpu",
        f"algorithm.adv_estimator={estimator}",
        f"actor_rollout_ref.model.path={inputs['model']}",
        f"data.train_files={inputs['train']}",
        f"data.val_files={inputs['val']}",
        "data.max_prompt_length=128",
        "data.max_response_length=24",
        # verl's naive reward manager with the stand-in reward function (tests/cpu_trainer_inputs.py)
        "reward.reward_manager.source=register",
        "reward.reward_manager.name=naive",
        f"reward.custom_reward_function.path={STAND_IN_REWARD}",
        "reward.custom_reward_function.name=compute_score",
        f"+reward.custom_reward_function.reward_kwargs.graded={'true' if estimator == 'sgpo' else 'false'}",
        f"trainer.total_training_steps={total_steps}",
        "trainer.save_freq=2",
        "trainer.test_freq=2",
        "trainer.resume_mode=auto",
        f"trainer.default_local_dir={run_dir / 'checkpoints'}",
        "trainer.logger=[console,file]",
        f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH={metrics_file}",
    ]
    pythonpath = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(TESTS_DIR)]))
    overrides.append(f"+ray_kwargs.ray_init.runtime_env.env_vars.PYTHONPATH={pythonpath}")
    with open(log_file, "w") as log:
        completed = subprocess.run(
            [sys.executable, "-m", "verl.trainer.main_ppo", *overrides],
            cwd=run_dir,
            env=_cpu_env({"PYTHONPATH": pythonpath}),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=LAUNCH_TIMEOUT_S,
        )
    output = log_file.read_text(errors="replace")
    assert completed.returncode == 0, f"main_ppo ({name}) exited {completed.returncode}; last output:\n{output[-6000:]}"
    records = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    return {"metrics": {r["step"]: r["data"] for r in records}, "output": output, "checkpoints": run_dir / "checkpoints"}


@pytest.fixture(scope="module")
def trainer_inputs(tmp_path_factory) -> dict[str, Path]:
    from recipe.cpu_backend.tiny_model import build_tiny_policy

    root = tmp_path_factory.mktemp("cpu_trainer_inputs")
    train, val = write_arith_parquet(root / "data", train=8, val=4, seed=0)
    return {"model": build_tiny_policy(root / "tiny_policy"), "train": train, "val": val}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cpu_trainer_run")


@pytest.fixture(scope="module")
def sgpo_run(run_dir, trainer_inputs) -> dict:
    return _launch(run_dir, "sgpo", "sgpo", total_steps=2, inputs=trainer_inputs)


@pytest.fixture(scope="module")
def grpo_resumed_run(run_dir, trainer_inputs, sgpo_run) -> dict:
    return _launch(run_dir, "grpo", "grpo", total_steps=4, inputs=trainer_inputs)


def _safetensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    tensors = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(file))
    assert tensors, f"no safetensors in {folder}"
    return tensors


@pytest.mark.slow
def test_sgpo_teaches_all_negative_groups_through_verls_trainer(sgpo_run, trainer_inputs):
    metrics = sgpo_run["metrics"]
    assert sorted(metrics) == [1, 2]
    for step, data in metrics.items():
        assert data["sgpo/advantage/all_negative_responses"] > 0, f"step {step}: no all-negative group to teach"
        # The claim of the method: responses of all-negative groups received non-zero advantages.
        assert data["sgpo/advantage/all_negative_nonzero_share"] > 0.5, data
        assert data["actor/grad_norm"] > 0
        # The rollout generated with the weights of the current step (the server tags each response).
        assert data["training/off_policy/trajectory_staleness/max"] == 0
    assert any(key.startswith("val-core/") for key in metrics[2]), "validation did not run at step 2"
    for step in (0, 1, 2):  # the initial sync, then after each training step
        assert f"loaded 27 weight tensors (step {step})" in sgpo_run["output"]

    checkpoint = sgpo_run["checkpoints"] / "global_step_2"
    assert (sgpo_run["checkpoints"] / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    assert (checkpoint / "actor" / "model_world_size_1_rank_0.pt").is_file()
    trained = _safetensors(checkpoint / "actor" / "huggingface")
    initial = _safetensors(trainer_inputs["model"])
    changed = [name for name, tensor in trained.items() if not np.allclose(tensor.float(), initial[name].float())]
    assert changed, "no weight changed after two SGPO steps"


@pytest.mark.slow
def test_grpo_resumes_the_checkpoint_and_leaves_all_negative_groups_untaught(grpo_resumed_run):
    metrics = grpo_resumed_run["metrics"]
    assert sorted(metrics) == [3, 4], "the run did not resume from the step-2 checkpoint"
    assert "Resuming from" in grpo_resumed_run["output"]
    for step, data in metrics.items():
        assert data["sgpo/advantage/all_negative_responses"] > 0
        # GRPO's blind spot: zero advantage for every response of an all-negative group.
        assert data["sgpo/advantage/all_negative_nonzero_share"] == 0.0, data
        assert data["sgpo/advantage/all_negative_abs_mean"] == 0.0
    assert (grpo_resumed_run["checkpoints"] / "global_step_4" / "actor").is_dir()


# ---------------------------------------------------------------------------------------------- fast


def test_cpu_platform_and_registrations_load_only_when_asked(repo_root):
    probe = (
        "import sys, verl\n"
        "from verl.plugin.platform import PlatformRegistry\n"
        "from verl.workers.rollout.replica import RolloutReplicaRegistry\n"
        "from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY\n"
        "from verl.utils.device import get_device_name, get_nccl_backend\n"
        "print(PlatformRegistry.get('cpu') is not None, 'transformers' in RolloutReplicaRegistry._registry,\n"
        "      'cpu_sync' in TRAINER_REGISTRY and 'sgpo_cpu_sync' in TRAINER_REGISTRY,\n"
        "      'recipe.cpu_backend.rollout' in sys.modules)\n"
        "if PlatformRegistry.get('cpu') is not None: print(get_device_name(), get_nccl_backend())\n"
    )
    assert _probe(probe, _cpu_env(), repo_root) == ["True", "True", "True", "True", "cpu", "gloo"]
    env = _cpu_env()
    env.pop("VERL_PLATFORM")
    assert _probe(probe, env, repo_root) == ["False", "False", "False", "False"]


def test_cpu_sync_is_plain_verl_sync_and_sgpo_layers_its_metrics_on_top(repo_root):
    probe = (
        "import verl\n"
        "from verl.trainer.ppo.v1 import get_trainer_cls\n"
        "from recipe.sgpo.trainer import SGPOMetricsMixin\n"
        "from recipe.cpu_backend.trainer import CPUWorkerMixin\n"
        "cpu, sgpo_cpu, sync = (get_trainer_cls(m) for m in ('cpu_sync', 'sgpo_cpu_sync', 'sync'))\n"
        "print(issubclass(cpu, sync), issubclass(cpu, CPUWorkerMixin), issubclass(cpu, SGPOMetricsMixin),\n"
        "      issubclass(sgpo_cpu, cpu), issubclass(sgpo_cpu, SGPOMetricsMixin))\n"
    )
    assert _probe(probe, _cpu_env(), repo_root) == ["True", "True", "False", "True", "True"]


def _probe(code: str, env: dict, cwd: Path) -> list[str]:
    """Run ``code`` in a fresh interpreter (registrations happen at import) and return its printed words."""
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()


def _server(model_dir: Path, response_length: int = 12):
    from omegaconf import OmegaConf

    from recipe.cpu_backend.rollout import TransformersServer

    config = OmegaConf.create({"prompt_length": 64, "response_length": response_length, "seed": 0})
    return TransformersServer(config=config, model_config=OmegaConf.create({"path": str(model_dir)}), replica_rank=0)


def test_rollout_server_batches_requests_and_loads_new_weights(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recipe.cpu_backend.tiny_model import build_tiny_policy

    model_dir = build_tiny_policy(tmp_path / "policy")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompts = [tokenizer(text)["input_ids"] for text in ("1 + 2 =", "a much longer prompt: 3 * 4 =")]
    server = _server(model_dir)
    greedy = {"temperature": 0.0, "top_p": 1.0, "top_k": -1, "logprobs": True}

    async def generate_all():
        return await asyncio.gather(*[server.generate(p, dict(greedy), request_id=str(i)) for i, p in enumerate(prompts)])

    before = asyncio.run(generate_all())
    assert server.batches == 1, "concurrent requests were not batched together"
    for output, prompt in zip(before, prompts):
        assert 1 <= len(output.token_ids) <= 12
        assert output.stop_reason in ("completed", "length")
        assert len(output.log_probs) == len(output.token_ids) and max(output.log_probs) <= 0
    # Left padding must not change a prompt's greedy continuation: compare with an unbatched transformers call.
    reference = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    alone = reference.generate(torch.tensor([prompts[0]]), max_new_tokens=12, do_sample=False,
                               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    assert before[0].token_ids == alone[0, len(prompts[0]):][: len(before[0].token_ids)].tolist()

    other = build_tiny_policy(tmp_path / "other_policy", seed=1)
    new_weights = AutoModelForCausalLM.from_pretrained(other, torch_dtype=torch.float32).state_dict()
    loaded = asyncio.run(server.update_weights(new_weights, global_steps=7))
    assert loaded == len(new_weights)
    after = asyncio.run(generate_all())
    assert after[0].extra_fields["global_steps"] == 7
    # A random tiny policy's greedy tokens may coincide; the log-probabilities of the same prompt cannot.
    assert after[0].log_probs[0] != pytest.approx(before[0].log_probs[0]), "new weights did not change generation"


def test_rollout_server_refuses_weights_it_cannot_place(tmp_path):
    import torch

    from recipe.cpu_backend.tiny_model import build_tiny_policy

    server = _server(build_tiny_policy(tmp_path / "policy"))
    with pytest.raises(KeyError, match="not_a_weight"):
        asyncio.run(server.update_weights({"not_a_weight": torch.zeros(1)}))
    with pytest.raises(ValueError, match="shape"):
        asyncio.run(server.update_weights({"model.norm.weight": torch.zeros(3)}))


def test_advantage_metrics_count_taught_responses_of_all_negative_groups():
    from recipe.sgpo.metrics import all_negative_advantage_metrics

    uids = ["a", "a", "b", "b", "c", "c"]
    rewards = torch.tensor([1.0, 0.0, 0.2, 0.4, 0.0, 0.0])  # a: mixed; b: all-negative, graded; c: all-negative, flat
    advantages = torch.tensor([0.7, -0.7, -0.7, 0.7, 0.0, 0.0])
    metrics = all_negative_advantage_metrics(uids, rewards, advantages)
    assert metrics["sgpo/advantage/all_negative_responses"] == 4
    assert metrics["sgpo/advantage/all_negative_nonzero_share"] == pytest.approx(0.5)
    assert metrics["sgpo/advantage/all_negative_abs_mean"] == pytest.approx(0.35)
