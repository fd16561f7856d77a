"""The ``cpu_sync`` trainer mode: the SGPO sync trainer with a gloo-initialised worker.

Selected with ``trainer.v1.trainer_mode=cpu_sync`` (registered through verl's ``register_trainer``; the
``platform=cpu`` config sets it). It is the recipe's ``sgpo_sync`` (``recipe/sgpo/trainer.py``: verl's
``sync`` trainer plus the ``sgpo/...`` metrics) with one addition: **the worker starts a gloo process
group.** verl's ``TrainingWorker`` initialises torch.distributed with ``"cpu:gloo,<device>:<backend>"``;
with device ``cpu`` that is ``"cpu:gloo,cpu:gloo"``, which torch rejects (duplicate device type).
:class:`CPUActorRolloutRefWorker` initialises plain ``gloo`` first (verl skips its own call when a group
exists); everything else is verl's worker.

verl compares ``trainer.v1.trainer_mode`` with ``"sync"`` in several places (replay buffer, weight sync);
``sgpo_sync``'s ``__init__``, inherited here, writes ``sync`` back into the config before verl reads it.
"""

from __future__ import annotations

import logging

import ray
from verl.trainer.ppo.v1 import get_trainer_cls, register_trainer
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
from verl.utils.distributed import initialize_global_process_group_ray
from verl.workers.engine_workers import ActorRolloutRefWorker

from recipe.cpu_backend.platform import use_all_cores

logger = logging.getLogger("sgpo.cpu_backend.trainer")

#: ``trainer.v1.trainer_mode`` of this trainer, and the recipe's sync mode it extends.
TRAINER_MODE = "cpu_sync"
SGPO_SYNC_MODE = "sgpo_sync"
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
    """Register ``cpu_sync`` on top of the recipe's ``sgpo_sync`` (recipe/sgpo/trainer.py)."""
    if TRAINER_MODE in TRAINER_REGISTRY:
        return
    import recipe.sgpo.trainer  # noqa: F401  registers sgpo_sync

    # sgpo_sync's __init__ already writes verl's "sync" back into trainer.v1.trainer_mode
    trainer_cls = type("CPUSyncTrainer", (CPUWorkerMixin, get_trainer_cls(SGPO_SYNC_MODE)), {})
    trainer_cls.__module__ = __name__
    register_trainer(TRAINER_MODE)(trainer_cls)


_register_cpu_trainer()
