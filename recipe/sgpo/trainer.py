"""verl V1 trainers that add the ``sgpo/...`` metrics (recipe/sgpo/metrics.py) to every training step's log.

verl 0.9.1's V1 trainers log reward extra info only for validation; training steps get verl's own
metrics (``critic/advantages/*`` over the whole batch, not per kind of group). The documented way to
change a V1 trainer is its registry (``register_trainer``, selected by ``trainer.v1.trainer_mode``), so
we register, for each of verl's modes, a subclass whose ``_compute_metrics`` also reads the step's group
ids, encoded rewards, reward extra info and advantages from TransferQueue and logs the SGPO metrics::

    trainer.v1.trainer_mode=sgpo_sync            (the yaml's default; also sgpo_colocate_async, sgpo_separate_async)
    trainer.v1.trainer_mode=sgpo_cpu_sync        (platform=cpu: the CPU backend's cpu_sync, when it is loaded)

verl compares ``trainer_mode`` with ``"sync"`` in many places, so each subclass writes its base mode back
into the config before verl's ``__init__`` reads it: the run behaves exactly like verl's own mode.
A failure while computing these metrics is logged and never stops training.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import open_dict

logger = logging.getLogger("sgpo.trainer")

#: verl's V1 trainer modes we wrap, and the prefix of our registered names.
BASE_TRAINER_MODES = ("sync", "colocate_async", "separate_async")
#: Modes wrapped when something registered them before this module was imported (the CPU backend's).
OPTIONAL_BASE_MODES = ("cpu_sync",)
TRAINER_MODE_PREFIX = "sgpo_"

#: TransferQueue fields the metrics need (written by verl's agent loop, reward loop and advantage step).
METRIC_FIELDS = ["uid", "rm_scores", "extra_fields", "advantages", "response_mask"]


class SGPOMetricsMixin:
    """Adds the ``sgpo/...`` metrics after verl's own in ``_compute_metrics`` (never stops training)."""

    def _compute_metrics(self, batch: Any, metrics: dict, timing_raw: dict, global_steps: int, epoch: int) -> None:
        super()._compute_metrics(batch, metrics, timing_raw, global_steps=global_steps, epoch=epoch)
        try:
            metrics.update(self._sgpo_metrics(batch))
        except Exception:  # noqa: BLE001 - metrics must never stop a training run
            logger.exception("sgpo metrics could not be computed for step %s; continuing", global_steps)

    def _sgpo_metrics(self, batch: Any) -> dict[str, float]:
        """Reads the step's rows back from TransferQueue once (verl clears them only after logging)."""
        import transfer_queue as tq

        from recipe.sgpo.config import SGPOConfig
        from recipe.sgpo.metrics import all_negative_advantage_metrics, sgpo_step_metrics

        dump_dir = self.config.trainer.get(ADVANTAGE_DIR_KEY)
        fields = METRIC_FIELDS + (DUMP_TOKEN_FIELDS if dump_dir else [])
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        keep = [i for i, tag in enumerate(batch.tags) if not tag.get("is_padding", False)]
        # Non-tensor fields come back as a list subclass, a NonTensorStack or an array depending on the
        # TransferQueue backend; list(...) normalises all of them (as verl's own trainer does).
        all_uids, all_extra_fields = list(data["uid"]), list(data["extra_fields"])
        uids = [str(all_uids[i]) for i in keep]
        infos = [_reward_extra_info(all_extra_fields[i]) for i in keep]
        scores = data["rm_scores"].to_padded_tensor(0.0).sum(dim=-1)[keep]
        # an outcome advantage is constant over a response's masked tokens: read it at the first one
        mask = data["response_mask"].to_padded_tensor(0).bool()
        first = mask.float().argmax(dim=-1, keepdim=True)
        advantages = (data["advantages"].to_padded_tensor(0.0).gather(1, first).squeeze(1) * mask.any(-1))[keep]
        settings = SGPOConfig.from_algorithm_config(self.config.algorithm)
        if dump_dir:
            digests = [token_digests(data["prompts"], i, data["responses"]) for i in keep]
            write_advantage_dump(Path(dump_dir) / f"{self.global_steps}.jsonl", uids, scores, infos, advantages, digests)
        return {
            **sgpo_step_metrics(uids, scores, infos, settings),
            **all_negative_advantage_metrics(uids, scores, advantages),
        }


#: ``trainer.<key>``: folder of the per-step advantage dump (null: none).
ADVANTAGE_DIR_KEY = "sgpo_advantage_dir"
#: Reward extra-info keys copied into each dump row beside the group id, reward and advantage.
ADVANTAGE_DUMP_FIELDS = ("acc", "judged", "judge_called", "graded_value", "first_error_step", "num_steps",
                         "group_state", "truncated")


#: TransferQueue fields read only for the dump: the token ids trained on (as digests).
DUMP_TOKEN_FIELDS = ["prompts", "responses"]


def ids_digest(ids: Any) -> str:
    """sha256 of a token-id sequence (its decimal ids joined by commas): equal digests, equal sequences."""
    return hashlib.sha256(",".join(str(int(i)) for i in ids).encode()).hexdigest()


def token_digests(prompts: Any, index: int, responses: Any) -> tuple[str, str]:
    """Digests of row ``index``'s prompt and response ids as TransferQueue holds them (one unpadded
    tensor per row: verl stores each trajectory at its own length)."""
    return ids_digest(_row_tensor(prompts, index).tolist()), ids_digest(_row_tensor(responses, index).tolist())


def _row_tensor(field: Any, index: int) -> Any:
    if getattr(field, "is_nested", False):
        return field.unbind()[index]
    return field[index]


def write_advantage_dump(path: Path, uids: list[str], scores: Any, infos: list[dict], advantages: Any,
                         digests: list[tuple[str, str]] | None = None) -> None:
    """One JSON line per response: ``uid``, encoded ``reward``, ``advantage``, :data:`ADVANTAGE_DUMP_FIELDS`
    and, when given, ``prompt_sha256`` / ``response_sha256`` of the token ids trained on (:func:`ids_digest`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for i, (uid, score, info, advantage) in enumerate(zip(uids, scores.tolist(), infos, advantages.tolist())):
            row = {"uid": uid, "reward": score, "advantage": advantage}
            row.update({key: info.get(key) for key in ADVANTAGE_DUMP_FIELDS})
            if digests is not None:
                row["prompt_sha256"], row["response_sha256"] = digests[i]
            out.write(json.dumps(row) + "\n")


def _reward_extra_info(extra_field: Any) -> dict:
    if isinstance(extra_field, dict):
        return extra_field.get("reward_extra_info") or {}
    return {}


def _register_sgpo_trainers() -> None:
    from verl.trainer.ppo.v1 import get_trainer_cls, register_trainer
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY

    present = [mode for mode in OPTIONAL_BASE_MODES if mode in TRAINER_REGISTRY]
    for base_mode in (*BASE_TRAINER_MODES, *present):
        name = TRAINER_MODE_PREFIX + base_mode
        if name in TRAINER_REGISTRY:
            continue
        base = get_trainer_cls(base_mode)
        register_trainer(name)(_subclass(base, base_mode))


def _subclass(base: type, base_mode: str) -> type:
    def __init__(self, config, *args, **kwargs):
        with open_dict(config):
            config.trainer.v1.trainer_mode = base_mode  # verl's code compares the mode string
        base.__init__(self, config, *args, **kwargs)

    return type(f"SGPO{base.__name__}", (SGPOMetricsMixin, base), {"__init__": __init__, "__module__": __name__})


_register_sgpo_trainers()
