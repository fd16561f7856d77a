"""The pieces of the CPU backend (recipe/cpu_backend) that verl 0.9.1's own trainer runs on, checked in-process:
the platform and the registrations, the trainer mode, the rollout server's batched generation and weight
loading, and the advantage metrics.

The trainer itself (``python -m verl.trainer.main_ppo`` on the CPU: Ray, TransferQueue, the FSDP2 actor, the
agent loop, the transformers rollout server and the reward loop) is launched end to end by the main-job tests
(tests/test_cpu_demo_on_cpu.py: an SGPO step with its checkpoint, then a GRPO step resumed from it), the
evaluation test and the offline test; each launch costs 60-100 s of Ray start-up on 2 cores, so they share
one session run (tests/conftest.py ``tiny_main_job``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent


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


@pytest.mark.parametrize("role", ["actor", "ref"])
def test_the_cpu_platform_trains_and_scores_in_float32(role):
    """verl's FSDP engine takes its compute precision from ``fsdp_config.mixed_precision`` alone (without it:
    bf16 parameters under bf16 autocast, whatever ``dtype`` says), so the cpu platform must set it."""
    from verl.utils.config import omega_conf_to_dataclass
    from verl.utils.torch_dtypes import PrecisionType
    from verl.workers.config import FSDPEngineConfig

    from recipe.sgpo.preflight import compose_config

    config = compose_config(["+platform=cpu"])
    engine = omega_conf_to_dataclass(config.actor_rollout_ref[role].fsdp_config)  # its _target_, as verl builds it
    assert isinstance(engine, FSDPEngineConfig)
    assert engine.mixed_precision is not None, "without mixed_precision verl's FSDP engine computes in bf16"
    for field in ("param_dtype", "reduce_dtype", "buffer_dtype"):
        assert PrecisionType.to_dtype(engine.mixed_precision[field]) is torch.float32, field


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
