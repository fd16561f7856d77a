"""The SGPO reward manager inside verl's reward loop: loading, encoding, judge scheduling, faults.

The judge here is the real rule-based step verifier (exact for the arithmetic task), so which responses
were judged and what they scored is known by hand. Trajectories are built the way verl's agent loop
hands them to a reward worker (one-row DataProto with prompts, responses, attention mask and the row's
non-tensor fields).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from verl import DataProto

from recipe.sgpo.preflight import compose_config
from reward.encoding import decode_rewards
from reward.manager import EXTRA_INFO_KEYS, SGPORewardManager

PROBLEM = "Compute (3 + 4) * 5. Show each step on its own line as `a op b = c`, then finish with \\boxed{N}."
REFERENCE = "3 + 4 = 7\n7 * 5 = 35"
RESPONSES = {
    "correct": "3 + 4 = 7\n7 * 5 = 35\n\\boxed{35}",
    # two arithmetic lines and the answer's line (the rule verifier's answer step): K = 3
    "wrong_at_2": "3 + 4 = 7\n7 * 5 = 36\n\\boxed{36}",  # first error at step 2 of 3: RTS 1/3
    "wrong_at_1": "3 + 4 = 8\n8 * 5 = 40\n\\boxed{40}",  # first error at step 1 of 3: RTS 0
}
BETA, GAMMA, BAND = 5.0, 0.5, 0.5


def logistic(rts: float) -> float:
    return 1.0 / (1.0 + math.exp(-BETA * (rts - GAMMA)))


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    from recipe.cpu_backend.tiny_model import build_tiny_policy

    return build_tiny_policy(tmp_path_factory.mktemp("tiny-policy"))


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def trainer_config(model_dir: Path, *overrides: str):
    return compose_config(
        [
            f"actor_rollout_ref.model.path={model_dir}",
            "actor_rollout_ref.rollout.n=4",
            "reward.sgpo.judge.backend=rule",
            "reward.sgpo.group_wait_s=20",
            *overrides,
        ]
    )


def trajectory(
    tokenizer, response: str, uid: str, split: str = "train", ground_truth: str | None = "35", session_id=None
) -> DataProto:
    """One trajectory as verl's agent loop passes it to ``RewardLoopWorker.compute_score``.

    ``session_id`` is the member's index in its group, which verl 0.9.1's V1 agent loop adds to the row.
    """
    prompt_ids = torch.tensor(tokenizer.apply_chat_template([{"role": "user", "content": PROBLEM}], tokenize=True,
                                                            add_generation_prompt=True, return_dict=False))
    response_ids = torch.tensor(tokenizer.encode(response + tokenizer.eos_token, add_special_tokens=False))
    input_ids = torch.cat([prompt_ids, response_ids])
    reward_model = {"style": "rule"} if ground_truth is None else {"style": "rule", "ground_truth": ground_truth}
    fields = {
        "data_source": "sgpo/arith",
        "reward_model": reward_model,
        "extra_info": {"split": split, "index": 0, "problem": PROBLEM, "reference_solution": REFERENCE},
        "uid": uid,
        "raw_prompt": [{"role": "user", "content": PROBLEM}],
    }
    if session_id is not None:
        fields["session_id"] = session_id
    return DataProto.from_dict(
        tensors={
            "prompts": prompt_ids.unsqueeze(0),
            "responses": response_ids.unsqueeze(0),
            "input_ids": input_ids.unsqueeze(0),
            "attention_mask": torch.ones_like(input_ids).unsqueeze(0),
        },
        non_tensors={key: np.array([value], dtype=object) for key, value in fields.items()},
    )


def test_loaded_by_verls_load_reward_manager_and_scored_through_run_single(tiny_model_dir, tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    config = trainer_config(tiny_model_dir, "reward.sgpo.judge_scope=all_wrong")
    manager = load_reward_manager(config, tokenizer)
    assert isinstance(manager, SGPORewardManager)

    async def score_all():
        names = ["correct", "wrong_at_2", "wrong_at_1"]
        results = await asyncio.gather(*(manager.run_single(trajectory(tokenizer, RESPONSES[n], "u")) for n in names))
        return dict(zip(names, results))

    results = asyncio.run(score_all())
    for result in results.values():
        assert set(result["reward_extra_info"]) == set(EXTRA_INFO_KEYS)  # the same keys for every sample
    assert results["correct"]["reward_score"] == 1.0
    assert results["correct"]["reward_extra_info"]["judge_called"] == 0
    for name, rts in (("wrong_at_2", 1 / 3), ("wrong_at_1", 0.0)):
        info = results[name]["reward_extra_info"]
        assert (info["judged"], info["rts"], info["num_steps"]) == (1, pytest.approx(rts), 3)
        assert info["graded_value"] == pytest.approx(logistic(rts))
        assert results[name]["reward_score"] == pytest.approx(BAND * logistic(rts))
    # the estimator decodes exactly what the manager encoded
    scores = torch.tensor([results[n]["reward_score"] for n in ("correct", "wrong_at_2", "wrong_at_1")])
    correct, judged, graded = decode_rewards(scores, BAND)
    assert correct.tolist() == [True, False, False] and judged.tolist() == [False, True, True]
    assert graded[1].item() == pytest.approx(logistic(1 / 3), rel=1e-6)
    manager.grader.close()


def test_validation_rows_are_graded_but_never_judged(tiny_model_dir, tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    manager = load_reward_manager(trainer_config(tiny_model_dir, "reward.sgpo.judge_scope=all_wrong"), tokenizer)
    result = asyncio.run(manager.run_single(trajectory(tokenizer, RESPONSES["wrong_at_2"], "v", split="test")))
    info = result["reward_extra_info"]
    assert (result["reward_score"], info["acc"], info["judge_called"], info["group_state"]) == (0.0, 0.0, 0, "not_scheduled")
    assert info["pred"] == "36"
    manager.grader.close()


def test_a_malformed_row_is_scored_wrong_without_raising(tiny_model_dir, tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    manager = load_reward_manager(trainer_config(tiny_model_dir), tokenizer)
    result = asyncio.run(manager.run_single(trajectory(tokenizer, RESPONSES["correct"], "m", ground_truth=None)))
    assert result["reward_score"] == 0.0
    assert result["reward_extra_info"]["malformed_row"] == 1
    assert set(result["reward_extra_info"]) == set(EXTRA_INFO_KEYS)
    manager.grader.close()


def test_judge_scope_off_gives_binary_rewards(tiny_model_dir, tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    manager = load_reward_manager(trainer_config(tiny_model_dir, "reward.sgpo.judge_scope=off"), tokenizer)

    async def score():
        return await asyncio.gather(*(manager.run_single(trajectory(tokenizer, RESPONSES["wrong_at_2"], "g"))
                                      for _ in range(4)))

    results = asyncio.run(score())
    assert [r["reward_score"] for r in results] == [0.0] * 4
    assert all(r["reward_extra_info"]["judge_called"] == 0 for r in results)
    manager.grader.close()


def test_default_scope_judges_only_the_wrong_members_of_all_negative_groups(tiny_model_dir, tokenizer):
    # The default judge_scope in one process (a local rendezvous, no Ray): the wrong members of a mixed
    # group are never sent to the judge, those of an all-negative group all are.
    from verl.trainer.ppo.reward import load_reward_manager

    manager = load_reward_manager(trainer_config(tiny_model_dir), tokenizer)
    assert manager.settings.judge_scope == "all_negative_groups"
    jobs = [(uid, index, name) for uid in ("mixed", "all_negative") for index, name in enumerate(GROUPS[uid])]
    random.Random(1).shuffle(jobs)

    async def score():
        return await asyncio.gather(*(manager.run_single(trajectory(tokenizer, RESPONSES[name], uid, session_id=index))
                                      for uid, index, name in jobs))

    results = asyncio.run(score())
    manager.grader.close()
    for (uid, _, name), result in zip(jobs, results):
        info = result["reward_extra_info"]
        assert info["judge_called"] == int(uid == "all_negative"), (uid, name, info)
        assert info["group_state"] == ("mixed" if uid == "mixed" else "all_negative")
        if uid == "all_negative":
            assert info["judged"] == 1 and info["rts"] == pytest.approx(1 / 3 if name == "wrong_at_2" else 0.0)


def test_a_retried_member_does_not_complete_its_group_early(tiny_model_dir, tokenizer):
    # Member 1 of a group of 4 is reported twice (a retried trajectory). Counting reports, the group
    # would settle all-negative at the fourth report and be judged before its correct member arrives.
    from verl.trainer.ppo.reward import load_reward_manager

    manager = load_reward_manager(trainer_config(tiny_model_dir), tokenizer)

    async def score():
        wrong = [asyncio.create_task(manager.run_single(trajectory(tokenizer, RESPONSES["wrong_at_2"], "r",
                                                                   session_id=member)))
                 for member in (0, 1, 1, 2)]
        await asyncio.sleep(1.0)
        correct = await manager.run_single(trajectory(tokenizer, RESPONSES["correct"], "r", session_id=3))
        return await asyncio.gather(*wrong), correct

    wrong, correct = asyncio.run(score())
    manager.grader.close()
    assert correct["reward_score"] == 1.0
    for result in wrong:
        assert result["reward_extra_info"]["group_state"] == "mixed"
        assert result["reward_extra_info"]["judge_called"] == 0 and result["reward_score"] == 0.0


def test_a_response_cut_off_at_the_length_limit_earns_nothing_for_no_error_found(tiny_model_dir, tokenizer):
    # Cut off before its final answer, with no error in what it wrote: "no error found" must not earn the
    # best grade a wrong answer can get (RTS 1, g = 0.92). The same text ended on its own is judged so.
    from verl.trainer.ppo.reward import load_reward_manager

    unfinished = "3 + 4 = 7\n7 * 5 = 35\nso the answer is"
    length = len(tokenizer.encode(unfinished + tokenizer.eos_token, add_special_tokens=False))
    results = {}
    for limit in (length, length + 1):
        config = trainer_config(tiny_model_dir, "reward.sgpo.judge_scope=all_wrong",
                                f"actor_rollout_ref.rollout.response_length={limit}")
        manager = load_reward_manager(config, tokenizer)
        results[limit] = asyncio.run(manager.run_single(trajectory(tokenizer, unfinished, f"t{limit}")))
        manager.grader.close()
    cut, ended = results[length], results[length + 1]
    assert cut["reward_extra_info"]["truncated"] == 1 and ended["reward_extra_info"]["truncated"] == 0
    assert (cut["reward_score"], cut["reward_extra_info"]["judged"]) == (0.0, 0)
    assert (cut["reward_extra_info"]["judge_no_signal"], cut["reward_extra_info"]["judge_failed"]) == (1, 0)
    assert ended["reward_extra_info"]["rts"] == 1.0
    assert ended["reward_score"] == pytest.approx(BAND * logistic(1.0))


def test_an_error_in_a_cut_off_response_is_still_graded(tiny_model_dir, tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    length = len(tokenizer.encode(RESPONSES["wrong_at_2"] + tokenizer.eos_token, add_special_tokens=False))
    config = trainer_config(tiny_model_dir, "reward.sgpo.judge_scope=all_wrong",
                            f"actor_rollout_ref.rollout.response_length={length}")
    manager = load_reward_manager(config, tokenizer)
    result = asyncio.run(manager.run_single(trajectory(tokenizer, RESPONSES["wrong_at_2"], "e")))
    manager.grader.close()
    info = result["reward_extra_info"]
    assert (info["truncated"], info["judged"], info["rts"]) == (1, 1, pytest.approx(1 / 3))


def test_invalid_reward_settings_fail_at_start_up_naming_the_key(tiny_model_dir, tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    for override, key in (
        ("reward.sgpo.judge_scope=sometimes", "reward.sgpo.judge_scope"),
        ("reward.sgpo.group_wait_s=0", "reward.sgpo.group_wait_s"),
        ("reward.sgpo.grader.timeout_s=-1", "reward.sgpo.grader.timeout_s"),
        ("reward.sgpo.judge.grading.beta=-5", "reward.sgpo.judge.grading.beta"),
        ("+reward.sgpo.judge_scop=off", "reward.sgpo.judge_scop"),
        ("reward.sgpo.judge_schedule=early", "reward.sgpo.judge_schedule"),
        ("reward.sgpo.eager_min_all_negative_share=1.5", "reward.sgpo.eager_min_all_negative_share"),
    ):
        with pytest.raises(ValueError, match=key.replace(".", r"\.")):
            load_reward_manager(trainer_config(tiny_model_dir, override), tokenizer)


# ----------------------------------------------------------------------------------------------------
# judge_schedule=eager: judged while the group is open, verdict kept only for all-negative groups.

EAGER_GROUPS = {
    "mixed": ["wrong_at_2", "wrong_at_1", "wrong_at_2", "correct"],  # the correct member arrives last
    "all_negative": ["wrong_at_2", "wrong_at_1", "wrong_at_2", "wrong_at_1"],
}
#: Seconds the last member of each group arrives after the others: long enough for the rule judge (ms).
LAST_MEMBER_DELAY_S = 1.0


def record_judge_calls(manager: SGPORewardManager) -> list[tuple[float, str]]:
    """Wrap the manager's real judge so each call's start time and response are recorded (a spy, not a mock:
    the rule judge still answers)."""
    calls: list[tuple[float, str]] = []
    judge = manager._judge.judge

    async def recorded(request):
        calls.append((time.monotonic(), request.response))
        return await judge(request)

    manager._judge.judge = recorded
    return calls


def score_groups_last_member_late(manager: SGPORewardManager, tokenizer, groups: dict[str, list[str]]):
    """Score every group's first members at once and each group's last member LAST_MEMBER_DELAY_S later.

    Returns ({(uid, member): result}, the time the last members were sent)."""

    async def score():
        early = {(uid, index): asyncio.create_task(manager.run_single(trajectory(tokenizer,
                                                                                 RESPONSES[name], uid, session_id=index)))
                 for uid, names in groups.items() for index, name in enumerate(names[:-1])}
        await asyncio.sleep(LAST_MEMBER_DELAY_S)
        last_sent = time.monotonic()
        late = {(uid, len(names) - 1): asyncio.create_task(manager.run_single(
            trajectory(tokenizer, RESPONSES[names[-1]], uid, session_id=len(names) - 1)))
            for uid, names in groups.items()}
        results = {key: await task for key, task in {**early, **late}.items()}
        return results, last_sent

    return asyncio.run(score())


def test_eager_schedule_gives_exactly_the_after_group_rewards_and_counts_wasted_calls(tiny_model_dir, tokenizer):
    from verl.trainer.ppo.reward import load_reward_manager

    baseline_manager = load_reward_manager(trainer_config(tiny_model_dir), tokenizer)
    baseline, _ = score_groups_last_member_late(baseline_manager, tokenizer, EAGER_GROUPS)
    eager_manager = load_reward_manager(trainer_config(tiny_model_dir, "reward.sgpo.judge_schedule=eager"), tokenizer)
    calls = record_judge_calls(eager_manager)
    eager, last_sent = score_groups_last_member_late(eager_manager, tokenizer, EAGER_GROUPS)
    baseline_manager.grader.close(), eager_manager.grader.close()

    # the wrong members went to the judge before their group was complete: 3 per group, before the last member
    assert len([t for t, _ in calls if t < last_sent]) == 6
    for key, result in eager.items():
        expected = baseline[key]
        assert result["reward_score"] == expected["reward_score"], key  # exact, not approximate
        info, expected_info = dict(result["reward_extra_info"]), dict(expected["reward_extra_info"])
        wasted = info.pop("judge_wasted")
        assert expected_info.pop("judge_wasted") == 0
        info.pop("judge_latency_s"), expected_info.pop("judge_latency_s")  # wall time, differs run to run
        assert info == expected_info, key
        uid, member = key
        name = EAGER_GROUPS[uid][member]
        assert wasted == int(uid == "mixed" and name != "correct"), key
    judged = [r for (uid, _), r in eager.items() if uid == "all_negative"]
    assert all(r["reward_extra_info"]["judged"] == 1 and r["reward_score"] > 0 for r in judged)


def test_eager_schedule_waits_for_the_group_while_few_groups_are_all_negative(tiny_model_dir, tokenizer):
    # A settled mixed group drops the running all-negative share to 0 < 0.5: the next group's wrong members
    # must wait for their group as under after_group, i.e. no judge call before its last member arrives.
    from verl.trainer.ppo.reward import load_reward_manager

    manager = load_reward_manager(trainer_config(tiny_model_dir, "reward.sgpo.judge_schedule=eager",
                                                 "reward.sgpo.eager_min_all_negative_share=0.5"), tokenizer)
    calls = record_judge_calls(manager)

    # before anything settled the share counts as 1: this mixed group's 3 wrong members are judged early
    score_groups_last_member_late(manager, tokenizer, {"warm": EAGER_GROUPS["mixed"]})
    calls_while_share_unknown = len(calls)
    assert calls_while_share_unknown == 3
    results, last_sent = score_groups_last_member_late(manager, tokenizer, {"all_negative": EAGER_GROUPS["all_negative"]})
    manager.grader.close()
    later_calls = calls[calls_while_share_unknown:]
    assert later_calls and all(t >= last_sent for t, _ in later_calls)
    assert len(later_calls) == 4
    assert all(r["reward_extra_info"]["judged"] == 1 and r["reward_extra_info"]["judge_wasted"] == 0
               for r in results.values())


# ----------------------------------------------------------------------------------------------------
# Scheduling across verl's own reward workers (Ray actors), in random order.

GROUPS = {
    "mixed": ["correct", "wrong_at_2", "wrong_at_1", "wrong_at_2"],
    "all_positive": ["correct"] * 4,
    "all_negative": ["wrong_at_2", "wrong_at_1", "wrong_at_2", "wrong_at_1"],
    "incomplete": ["wrong_at_1", "wrong_at_2", "wrong_at_1"],  # the 4th member never arrives
}
GROUP_WAIT_S = 8


@pytest.mark.slow
def test_only_all_negative_groups_are_judged_across_concurrent_reward_workers(tiny_model_dir, tokenizer):
    import ray
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    config = trainer_config(tiny_model_dir, f"reward.sgpo.group_wait_s={GROUP_WAIT_S}")
    jobs = [(uid, index, name) for uid, names in GROUPS.items() for index, name in enumerate(names)]
    random.Random(0).shuffle(jobs)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        workers = [ray.remote(RewardLoopWorker).remote(config, None) for _ in range(3)]  # as verl creates them
        start = time.monotonic()
        refs = [
            workers[i % len(workers)].compute_score.remote(trajectory(tokenizer, RESPONSES[name], uid))
            for i, (uid, _, name) in enumerate(jobs)
        ]
        results = ray.get(refs, timeout=GROUP_WAIT_S + 120)
        elapsed = time.monotonic() - start
    finally:
        ray.shutdown()

    by_job = {(uid, index): (name, result) for (uid, index, name), result in zip(jobs, results)}
    for (uid, _), (name, result) in by_job.items():
        info = result["reward_extra_info"]
        should_judge = uid == "all_negative"
        assert info["judge_called"] == int(should_judge), (uid, name, info)
        if name == "correct":
            assert result["reward_score"] == 1.0
        elif should_judge:
            rts = 1 / 3 if name == "wrong_at_2" else 0.0
            assert info["group_state"] == "all_negative" and info["rts"] == pytest.approx(rts)
            assert result["reward_score"] == pytest.approx(BAND * logistic(rts))
        else:
            assert result["reward_score"] == 0.0
            assert info["group_state"] == ("incomplete" if uid == "incomplete" else "mixed")
    # the incomplete group is released by its bound, not held forever
    assert GROUP_WAIT_S <= elapsed < GROUP_WAIT_S + 90
    check_advantages_of_scored_groups(config, jobs, results)


def check_advantages_of_scored_groups(config, jobs, results) -> None:
    """The rewards the manager produced, through verl's ``compute_advantage`` with the ``sgpo`` estimator:
    all-negative advantages ordered like the graded values, not-judged members zero, mixed groups equal
    to verl's ``grpo`` on the binary outcomes."""
    from sgpo_batches import outcome_batch
    from verl.trainer.ppo.ray_trainer import compute_advantage

    rewards = [result["reward_score"] for result in results]
    uids = [uid for uid, _, _ in jobs]

    def advantages(estimator: str, scores: list[float]) -> torch.Tensor:
        token_rewards, mask, index = outcome_batch(scores, uids)
        batch = DataProto.from_dict(tensors={"token_level_rewards": token_rewards, "response_mask": mask},
                                    non_tensors={"uid": index})
        return compute_advantage(batch, adv_estimator=estimator, config=config.algorithm).batch["advantages"][:, 0]

    sgpo = advantages("sgpo", rewards)
    grpo_binary = advantages("grpo", [float(r >= 1.0) for r in rewards])
    for uid in GROUPS:
        rows = [i for i, (u, _, _) in enumerate(jobs) if u == uid]
        if uid == "all_negative":
            graded = [results[i]["reward_extra_info"]["graded_value"] for i in rows]
            order = sorted(range(len(rows)), key=lambda k: graded[k])
            assert all(sgpo[rows[a]] <= sgpo[rows[b]] for a, b in zip(order, order[1:]))
            assert sgpo[rows[order[-1]]] > 0 > sgpo[rows[order[0]]], "spread in the graded values must teach"
        elif uid == "incomplete":
            assert torch.all(sgpo[rows] == 0), "members that were not judged carry no signal"
        else:
            torch.testing.assert_close(sgpo[rows], grpo_binary[rows])


# ----------------------------------------------------------------------------------------------------
# Faults: the judge server is down for the first part of the run, then comes up.


def test_judge_down_for_part_of_the_run_rewards_still_come_back(tiny_model_dir, tokenizer):
    from judge_endpoints import MisbehavingEndpoint
    from verl.trainer.ppo.reward import load_reward_manager

    server = MisbehavingEndpoint()  # its port is chosen now and stays closed until the server starts
    config = trainer_config(
        tiny_model_dir,
        "reward.sgpo.judge.backend=openai",
        f"reward.sgpo.judge.openai.base_url={server.url('step2')}",
        "reward.sgpo.judge.openai.max_retries=1",
        "reward.sgpo.judge.openai.backoff_s=0.1",
        "reward.sgpo.judge.deadline_s=10",
    )
    manager = load_reward_manager(config, tokenizer)

    async def all_negative_group(uid):
        names = GROUPS["all_negative"]
        return await asyncio.gather(*(manager.run_single(trajectory(tokenizer, RESPONSES[n], uid)) for n in names))

    down = asyncio.run(all_negative_group("while-down"))  # nothing listens on the port: a real closed port
    with server:
        up = asyncio.run(all_negative_group("while-up"))
    manager.grader.close()

    for result in down:
        info = result["reward_extra_info"]
        assert (result["reward_score"], info["judge_called"], info["judged"], info["judge_failed"]) == (0.0, 1, 0, 1)
    for result in up:
        info = result["reward_extra_info"]
        # the general segmentation splits on lines: K steps (the boxed answer line is one), error at step 2
        assert (info["judged"], info["first_error_step"]) == (1, 2)
        assert info["rts"] == pytest.approx(1 / info["num_steps"])
        assert result["reward_score"] == pytest.approx(BAND * logistic(info["rts"]))
    assert server.hits["step2"] == 2  # two distinct responses: the judge's content cache answers the repeats
