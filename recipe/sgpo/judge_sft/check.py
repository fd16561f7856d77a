"""Fail-fast check of a judge-SFT launch: compose ``judge_sft.yaml`` with the launch's overrides (as verl's
``sft_trainer`` will) and refuse settings that cannot work, before any GPU is touched. A few seconds; no
model, no GPU. Used by ``run_scripts/judge_sft_<model>.sh`` (always, not only in a dry run).

Refused, with the reason and the fix:

* ``data.train_files`` unset, or (``--require-files``) naming a file that does not exist;
* ``data.train_batch_size`` not a multiple of the GPUs (verl splits the batch evenly over data-parallel ranks);
* ``checkpoint.save_contents`` without ``hf_model`` (the checkpoint would have no servable judge folder);
* ``data.messages_key`` other than ``messages`` (the column data_prep writes);
* ``trainer.total_training_steps`` larger than ``total_epochs`` allow (verl would stop early, without a
  checkpoint), when the training files exist and their row count is known.

CLI::

    python -m recipe.sgpo.judge_sft.check [--gpus N] [--require-files] <hydra overrides>
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
CONFIG_NAME = "judge_sft"


def compose(overrides: Sequence[str]) -> Any:
    """The composed judge-SFT config (verl's ``sft_trainer_engine`` with ``judge_sft.yaml`` and ``overrides``)."""
    from recipe.sgpo.preflight import compose_config

    return compose_config(overrides, CONFIG_DIR, CONFIG_NAME)


def _files(value: Any) -> list[str]:
    return [str(value)] if isinstance(value, str) else [str(item) for item in value]


def problems(config: Any, gpus: int, require_files: bool) -> list[str]:
    """What cannot work in ``config`` on ``gpus`` data-parallel ranks (empty: it can)."""
    import pyarrow.parquet as pq
    from omegaconf import OmegaConf

    found = []
    if OmegaConf.is_missing(config.data, "train_files") or config.data.train_files is None:
        return ["data.train_files is not set: give the fitted judge examples (python -m recipe.sgpo.judge_sft.fit)"]
    files = _files(config.data.train_files)
    missing = [f for f in files if not Path(f).is_file()]
    if require_files and missing:
        found.append(f"data.train_files: {', '.join(missing)} not found (write them with python -m data_prep write "
                     "judge_..., then fit them with python -m recipe.sgpo.judge_sft.fit)")
    if config.data.train_batch_size % gpus:
        found.append(f"data.train_batch_size={config.data.train_batch_size} is not a multiple of the {gpus} GPUs")
    if "hf_model" not in config.checkpoint.save_contents:
        found.append("checkpoint.save_contents lacks hf_model: the checkpoint would hold no folder vLLM can serve")
    if config.data.messages_key != "messages":
        found.append(f"data.messages_key={config.data.messages_key}: data_prep writes the column 'messages'")
    steps = config.trainer.total_training_steps
    if steps is not None and not missing:
        rows = sum(pq.read_metadata(f).num_rows for f in files)
        per_epoch = rows // config.data.train_batch_size
        if per_epoch * config.trainer.total_epochs < steps:
            found.append(f"trainer.total_training_steps={steps} needs {math.ceil(steps / max(per_epoch, 1))} epochs of "
                         f"{per_epoch} steps; trainer.total_epochs={config.trainer.total_epochs} would stop verl early")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipe.sgpo.judge_sft.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=1, help="data-parallel ranks (GPUs) of the launch")
    parser.add_argument("--require-files", action="store_true", help="refuse training files that do not exist")
    args, overrides = parser.parse_known_args(argv)
    try:
        config = compose(overrides)
    except Exception as error:  # hydra reports unknown keys and bad values with many exception types
        print(f"[judge-sft check] the config does not compose: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    found = problems(config, args.gpus, args.require_files)
    for problem in found:
        print(f"[judge-sft check] refused: {problem}", file=sys.stderr)
    if not found:
        print(f"[judge-sft check] ok: {len(_files(config.data.train_files))} training file(s), "
              f"batch {config.data.train_batch_size} over {args.gpus} GPU(s), lr {config.optim.lr}", file=sys.stderr)
    return 2 if found else 0


if __name__ == "__main__":
    sys.exit(main())
