"""verl 0.9.1's own SFT trainer (``verl.trainer.sft_trainer.SFTTrainer``) on the CPU, in one process.

verl's entry point ``run_sft`` starts torch.distributed with the backend ``"cpu:gloo,<device>:<backend>"``,
which on the ``cpu`` platform is ``"cpu:gloo,cpu:gloo"``: torch rejects it (duplicate device type). This
entry point does the rest of ``run_sft`` unchanged: it starts a plain ``gloo`` group (a single process
needs no ``torchrun``: the rank variables default to one process on this machine), then runs verl's
``SFTTrainer`` on the composed config, whose ``TrainingWorker`` sees the group and skips its own start-up.
Everything else — dataset, engine (FSDP2, registered for ``cpu`` by this backend), optimizer, loss,
checkpoints — is verl's.

Usage (the config is ``recipe/sgpo/config/judge_sft.yaml`` with the CPU settings of
``sft_platform/cpu.yaml``; hydra overrides as for verl's ``sft_trainer``)::

    python -m recipe.cpu_backend.sft +sft_platform=cpu model.path=... data.train_files=... <overrides>
"""

from __future__ import annotations

import os
from datetime import timedelta

from recipe.cpu_backend import PLATFORM_ENV, PLATFORM_NAME

#: Rank variables of a single-process run (``torchrun`` sets them otherwise).
SINGLE_PROCESS_ENV = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
#: Seconds a collective may wait (verl's own default for SFT).
PROCESS_GROUP_TIMEOUT_S = 36000
#: The SGPO config folder (``judge_sft.yaml``) and the config's name.
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "recipe", "sgpo", "config")
CONFIG_NAME = "judge_sft"


def start_process_group() -> None:
    """A plain gloo group for this process (one process unless ``torchrun`` set the rank variables)."""
    import torch.distributed

    from reward.judge.cpu_server import free_port

    for key, value in SINGLE_PROCESS_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    torch.distributed.init_process_group(backend="gloo", timeout=timedelta(seconds=PROCESS_GROUP_TIMEOUT_S),
                                         init_method=os.environ.get("DIST_INIT_METHOD"))


def run(config) -> None:
    """Train with verl's ``SFTTrainer`` on ``config`` (verl's ``run_sft`` with a gloo process group)."""
    from verl.trainer.sft_trainer import SFTTrainer
    from verl.utils.distributed import destroy_global_process_group

    from recipe.cpu_backend.platform import use_all_cores

    use_all_cores()
    start_process_group()
    try:
        SFTTrainer(config=config).fit()
    finally:
        destroy_global_process_group()


def main() -> None:
    os.environ.setdefault(PLATFORM_ENV, PLATFORM_NAME)  # before verl is imported: it selects the platform
    import hydra

    hydra.main(config_path=CONFIG_DIR, config_name=CONFIG_NAME, version_base=None)(run)()


if __name__ == "__main__":
    main()
