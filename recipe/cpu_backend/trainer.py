"""The ``cpu_sync`` trainer mode: verl's ``sync`` trainer with a gloo-initialised worker.

Registered through verl's ``register_trainer`` as ``cpu_sync``: plain verl ``sync`` on the CPU, nothing
of SGPO in it. The recipe layers its ``sgpo/...`` metrics on top the way it does for every GPU mode
(``recipe/sgpo/trainer.py`` registers ``sgpo_cpu_sync``, which ``platform=cpu`` selects). The one change
to verl's trainer: **the worker starts a gloo process group.** verl's ``TrainingWorker`` initialises
torch.distributed with ``"cpu:gloo,<device>:<backend>"``; with device ``cpu`` that is
``"cpu:gloo,cpu:gloo"``, which torch rejects (duplicate device type). :class:`CPUActorRolloutRefWorker`
initialises plain ``gloo`` first (verl skips its own call when a group exists); everything else is verl's
worker.

verl compares ``trainer.v1.trainer_mode`` with ``"sync"`` in several places (replay buffer, weight sync),
so the trainer writes ``sync`` back into the config before verl's ``__init__`` reads it.
"""

from __future__ import annotations

import logging

import ray
from omegaconf import open_dict
from verl.trainer.ppo.v1 import get_trainer_cls, register_trainer
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
from verl.utils.distributed import initialize_global_process_group_ray
from verl.workers.engine_workers import ActorRolloutRefWorker

from recipe.cpu_backend.platform import use_all_cores

logger = logging.getLogger("sgpo.cpu_backend.trainer")

#: ``trainer.v1.trainer_mode`` of this trainer, and verl's mode it extends.
TRAINER_MODE = "cpu_sync"
BASE_MODE = "sync"
#: The collective backend of the CPU worker's process group.
CPU_PROCESS_GROUP_BACKEND = "gloo"


class CPUActorRolloutRefWorker(ActorRolloutRefWorker):
    """verl's hybrid actor/rollout/ref worker, with a gloo process group started before verl's own call."""

    def __init__(self, *args, **kwargs):
        use_all_cores()
        initialize_global_process_group_ray(timeout_second=None, backend=CPU_PROCESS_GROUP_BACKEND)
        super().__init__(*args, **kwargs)


class CPUWorkerMixin:
    """Runs verl's actor/rollout/ref worker as :class:`CPUActorRolloutRefWorker`."""

    def _init_resource_pool_mgr(self):
        super()._init_resource_pool_mgr()
        for role, worker_cls in list(self.role_worker_mapping.items()):
            if getattr(worker_cls, "__ray_actor_class__", None) is ActorRolloutRefWorker:
                self.role_worker_mapping[role] = ray.remote(CPUActorRolloutRefWorker)


def _register_cpu_trainer() -> None:
    """Register ``cpu_sync``: verl's ``sync`` trainer with :class:`CPUWorkerMixin` (idempotent)."""
    if TRAINER_MODE in TRAINER_REGISTRY:
        return
    base = get_trainer_cls(BASE_MODE)

    def __init__(self, config, *args, **kwargs):
        with open_dict(config):
            config.trainer.v1.trainer_mode = BASE_MODE  # verl's code compares the mode string
        base.__init__(self, config, *args, **kwargs)

    trainer_cls = type("CPUSyncTrainer", (CPUWorkerMixin, base), {"__init__": __init__, "__module__": __name__})
    register_trainer(TRAINER_MODE)(trainer_cls)


_register_cpu_trainer()
