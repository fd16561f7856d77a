"""The ``cpu_sync`` trainer mode: the SGPO sync trainer with a gloo-initialised worker, plus advantage
metrics per group.

Selected with ``trainer.v1.trainer_mode=cpu_sync`` (registered through verl's ``register_trainer``; the
``platform=cpu`` config sets it). It is verl's ``sync`` trainer — through the recipe's ``sgpo_sync``
subclass when that is registered (``recipe/sgpo/trainer.py``: the ``sgpo/...`` reward-side metrics) —
with two additions:

1. **The worker starts a gloo process group.** verl's ``TrainingWorker`` initialises torch.distributed
   with ``"cpu:gloo,<device>:<backend>"``; with device ``cpu`` that is ``"cpu:gloo,cpu:gloo"``, which
   torch rejects (duplicate device type). :class:`CPUActorRolloutRefWorker` initialises plain ``gloo``
   first (verl skips its own call when a group exists); everything else is verl's worker.
2. **Advantage metrics of all-negative groups** (groups of one ``uid`` without a response whose reward
   reaches 1), computed from the advantages verl just wrote to TransferQueue:

   ==============================================  =======================================================
   ``sgpo/advantage/all_negative_nonzero_share``   share of the responses in all-negative groups whose
                                                   advantage is non-zero: what SGPO adds, 0 for ``grpo``
   ``sgpo/advantage/all_negative_abs_mean``        mean |advantage| of those responses
   ``sgpo/advantage/all_negative_responses``       how many responses are in all-negative groups
   ==============================================  =======================================================

verl compares ``trainer.v1.trainer_mode`` with ``"sync"`` in several places (replay buffer, weight sync),
so the trainer writes ``sync`` back into the config before verl's ``__init__`` reads it.
"""

from __future__ import annotations

import logging

import numpy as np
import ray
import torch
import transfer_queue as tq
from omegaconf import open_dict
from verl.protocol import DataProto
from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls, register_trainer
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
from verl.utils.distributed import initialize_global_process_group_ray
from verl.workers.engine_workers import ActorRolloutRefWorker

from recipe.cpu_backend.platform import use_all_cores

logger = logging.getLogger("sgpo.cpu_backend.trainer")

#: ``trainer.v1.trainer_mode`` of this trainer, the verl mode it runs as, and the recipe's sync mode it extends.
TRAINER_MODE = "cpu_sync"
BASE_MODE = "sync"
SGPO_SYNC_MODE = "sgpo_sync"
#: A response is correct when its reward reaches this (SGPO's encoding: correct 1, wrong c·g < 1, or 0).
CORRECT_REWARD = 1.0
#: Advantages smaller than this in magnitude count as zero (float noise of the normalisation).
ZERO_ADVANTAGE_TOLERANCE = 1e-6
#: The collective backend of the CPU worker's process group.
CPU_PROCESS_GROUP_BACKEND = "gloo"


class CPUActorRolloutRefWorker(ActorRolloutRefWorker):
    """verl's hybrid actor/rollout/ref worker, with a gloo process group started before verl's own call."""

    def __init__(self, *args, **kwargs):
        use_all_cores()
        initialize_global_process_group_ray(timeout_second=None, backend=CPU_PROCESS_GROUP_BACKEND)
        super().__init__(*args, **kwargs)


def group_advantage_metrics(uids: np.ndarray, rewards: np.ndarray, advantages: np.ndarray) -> dict[str, float]:
    """The ``sgpo/advantage/*`` metrics of one batch.

    Args:
        uids: group id (prompt) of each response, shape ``(N,)``.
        rewards: scalar reward of each response (sum of its token rewards), shape ``(N,)``.
        advantages: advantage of each response (its first response token's), shape ``(N,)``.
    """
    correct = rewards >= CORRECT_REWARD
    _, group_of = np.unique(uids.astype(str), return_inverse=True)
    group_has_correct = np.zeros(group_of.max() + 1 if group_of.size else 0, dtype=bool)
    np.logical_or.at(group_has_correct, group_of, correct)
    negative_advantages = np.abs(advantages[~group_has_correct[group_of]])
    has_negative = negative_advantages.size > 0
    return {
        "sgpo/advantage/all_negative_nonzero_share": float((negative_advantages > ZERO_ADVANTAGE_TOLERANCE).mean())
        if has_negative
        else 0.0,
        "sgpo/advantage/all_negative_abs_mean": float(negative_advantages.mean()) if has_negative else 0.0,
        "sgpo/advantage/all_negative_responses": float(negative_advantages.size),
    }


class CPUWorkerMixin:
    """Runs verl's actor/rollout/ref worker as :class:`CPUActorRolloutRefWorker`."""

    def _init_resource_pool_mgr(self):
        super()._init_resource_pool_mgr()
        for role, worker_cls in list(self.role_worker_mapping.items()):
            if getattr(worker_cls, "__ray_actor_class__", None) is ActorRolloutRefWorker:
                self.role_worker_mapping[role] = ray.remote(CPUActorRolloutRefWorker)


class AdvantageMetricsMixin:
    """Adds ``sgpo/advantage/*`` after verl computed the step's advantages (never stops training)."""

    def _compute_advantage(self, batch, metrics: dict):
        batch = super()._compute_advantage(batch, metrics=metrics)
        try:
            metrics.update(self._advantage_metrics(batch))
        except Exception:  # noqa: BLE001 - metrics must never stop a training run
            logger.exception("sgpo/advantage metrics could not be computed; continuing")
        return batch

    def _advantage_metrics(self, batch) -> dict[str, float]:
        fields = ["uid", "rm_scores", "advantages", "response_mask"]
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        uids = np.array([str(uid) for uid in list(data.pop("uid"))], dtype=object)
        data = DataProto(batch=data.to_padded_tensor())
        mask = data.batch["response_mask"].bool()
        rewards = (data.batch["rm_scores"] * mask).sum(-1)
        first_token = mask.float().argmax(-1, keepdim=True)
        advantages = torch.gather(data.batch["advantages"], 1, first_token).squeeze(1) * mask.any(-1)
        real = np.array([not tag.get("is_padding", False) for tag in batch.tags], dtype=bool)
        return group_advantage_metrics(uids[real], rewards.numpy()[real], advantages.float().numpy()[real])


def _register_cpu_trainer() -> None:
    """Register ``cpu_sync`` on top of ``sgpo_sync`` (recipe/sgpo/trainer.py) or, without it, verl's ``sync``."""
    if TRAINER_MODE in TRAINER_REGISTRY:
        return
    base = get_trainer_cls(SGPO_SYNC_MODE) if SGPO_SYNC_MODE in TRAINER_REGISTRY else PPOTrainerSync

    def __init__(self, config, *args, **kwargs):
        with open_dict(config):
            config.trainer.v1.trainer_mode = BASE_MODE  # verl's code compares the mode string with "sync"
        base.__init__(self, config, *args, **kwargs)

    trainer_cls = type("CPUSyncTrainer", (CPUWorkerMixin, AdvantageMetricsMixin, base), {"__init__": __init__})
    trainer_cls.__module__ = __name__
    register_trainer(TRAINER_MODE)(trainer_cls)


_register_cpu_trainer()
