"""The sgpo V1 trainers read the step's rewards and reward extra info back from a real TransferQueue."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.slow
def test_sgpo_metrics_are_read_from_transfer_queue_as_the_trainer_does():
    import ray
    import transfer_queue as tq
    from transfer_queue import KVBatchMeta
    from verl.trainer.ppo.v1 import get_trainer_cls
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    from recipe.sgpo.preflight import compose_config

    config = compose_config(["transfer_queue.backend.SimpleStorage.num_data_storage_units=1"])
    scores = [1.0, 0.0, 0.0, 0.0] + [0.4, 0.1, 0.1, 0.0] + [0.0, 0.0]
    groups = ["mixed"] * 4 + ["graded"] * 4 + ["padding"] * 2
    rows = []
    for i, (score, uid) in enumerate(zip(scores, groups)):
        rm_scores = torch.zeros(3 + i)  # jagged, as the agent loop writes them
        rm_scores[-1] = score
        judged = uid == "graded" and score > 0
        extra = {"judge_called": int(uid == "graded"), "judged": int(judged), "graded_value": 2 * score if judged else None}
        # advantages as the trainer writes them back: constant over the response, here +-1 in "graded" only
        advantage = (1.0 if score > 0.1 else -1.0) if uid == "graded" else 0.5
        rows.append({"uid": uid, "rm_scores": rm_scores, "extra_fields": {"reward_extra_info": extra},
                     "advantages": torch.full((3 + i,), advantage), "response_mask": torch.ones(3 + i, dtype=torch.int64)})
    keys = [f"{uid}_{i}_0" for i, uid in enumerate(groups)]
    tags = [{"status": "success", "is_padding": uid == "padding"} for uid in groups]

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tq.init(config.transfer_queue)
        tq.kv_batch_put(keys=keys, fields=list_of_dict_to_tensordict(rows), tags=tags, partition_id="train")
        trainer = object.__new__(get_trainer_cls("sgpo_sync"))  # only the metrics path is exercised
        trainer.config = config
        metrics = trainer._sgpo_metrics(KVBatchMeta(keys=keys, tags=tags, partition_id="train"))
    finally:
        tq.close()
        ray.shutdown()

    assert metrics["sgpo/groups/all_negative_share"] == pytest.approx(0.5)  # padding rows are left out
    assert metrics["sgpo/accuracy"] == pytest.approx(1 / 8)
    assert metrics["sgpo/all_negative/usable_signal_share"] == 1.0
    assert metrics["sgpo/all_negative/graded_value/mean"] == pytest.approx(0.4)
    assert metrics["sgpo/judge/called"] == 4 and metrics["sgpo/judge/judged"] == 3
    # the all-negative group's four responses all carry a non-zero advantage of magnitude 1
    assert metrics["sgpo/advantage/all_negative_responses"] == 4
    assert metrics["sgpo/advantage/all_negative_nonzero_share"] == 1.0
    assert metrics["sgpo/advantage/all_negative_abs_mean"] == pytest.approx(1.0)
