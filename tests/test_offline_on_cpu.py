"""Offline SGPO (recipe/sgpo/offline): a set generated once, graded and judged once with the online reward
manager's grader, judge and rules, then trained on through verl's trainer with the ``sgpo_offline`` agent loop.

The fast tests build sets from written responses (the real tokenizer of the tiny policy, the real grader,
the real rule verifier) and check the judge rules, resumption, the statistics and every refusal. The slow
test runs the whole chain as a user would: generate with verl's CPU rollout, judge, train 3 steps (two epochs), and checks
that the trainer trained on exactly the stored token ids with the sgpo estimator's advantages of the stored
rewards.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from data_prep.arith import ArithConfig, generate as arith_rows
from recipe.sgpo.offline import store
from offline_sets import N, RESPONSE_LENGTH, make_set, settings_for, solution_with_error, write_source
from recipe.sgpo.offline.generate import GenerationSettings, pending_rows, prepare, read_records
from recipe.sgpo.offline.judge import grade_group, group_trajectories, judge_set_async, set_statistics
from recipe.sgpo.offline.store import OfflineSetError, training_problems
from reward.settings import RewardSettings

@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Path:
    from recipe.cpu_backend.tiny_model import build_tiny_policy

    return build_tiny_policy(tmp_path_factory.mktemp("tiny") / "policy", seed=0)


@pytest.fixture(scope="module")
def tokenizer(policy):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(policy)


def reward_settings(**overrides) -> RewardSettings:
    from recipe.sgpo.preflight import compose_config

    return RewardSettings.from_trainer_config(compose_config(
        ["reward.sgpo.judge.backend=rule", "reward.sgpo.grader.num_workers=1",
         *[f"reward.sgpo.{k}={v}" for k, v in overrides.items()]]))


async def judged_group(row: dict, texts: list[str], tokenizer, settings: RewardSettings) -> list[dict]:
    from reward.grader import OutcomeGrader
    from reward.judge import build_judge

    members = [{"member": m, "response_ids": tokenizer.encode(t, add_special_tokens=False)} for m, t in enumerate(texts)]
    grader, judge = OutcomeGrader(settings.grader), build_judge(settings.judge) if settings.judging else None
    try:
        return await grade_group(group_trajectories(row, members, tokenizer, settings, RESPONSE_LENGTH), settings, grader, judge)
    finally:
        grader.close()


ROWS = arith_rows(6, seed=3, config=ArithConfig(min_ops=3, max_ops=3))


def test_an_all_negative_group_is_judged_and_graded_by_how_far_each_got(tokenizer):
    settings = reward_settings()
    results = asyncio.run(judged_group(ROWS[0], [solution_with_error(ROWS[0], k) for k in (1, 2, 3, 3)], tokenizer, settings))
    infos = [r["reward_extra_info"] for r in results]
    assert [i["group_state"] for i in infos] == ["all_negative"] * 4
    assert [i["first_error_step"] for i in infos] == [1, 2, 3, 3] and all(i["judged"] for i in infos)
    scores = [r["reward_score"] for r in results]
    assert 0 < scores[0] < scores[1] < scores[2] == scores[3] < 0.5  # c·g, increasing in how far it got
    assert scores == pytest.approx([0.5 * i["graded_value"] for i in infos])


def test_a_mixed_group_leaves_its_wrong_members_unjudged(tokenizer):
    settings = reward_settings()
    results = asyncio.run(judged_group(ROWS[1], [solution_with_error(ROWS[1], k) for k in (None, 2, None, 1)], tokenizer, settings))
    assert [r["reward_score"] for r in results] == [1.0, 0.0, 1.0, 0.0]
    assert [r["reward_extra_info"]["judge_called"] for r in results] == [0, 0, 0, 0]
    assert {r["reward_extra_info"]["group_state"] for r in results} == {"mixed"}


def test_judge_scope_all_wrong_and_off_and_validation_rows(tokenizer):
    texts = [solution_with_error(ROWS[2], k) for k in (None, 2, 2, 1)]
    all_wrong = asyncio.run(judged_group(ROWS[2], texts, tokenizer, reward_settings(judge_scope="all_wrong")))
    assert [r["reward_extra_info"]["judge_called"] for r in all_wrong] == [0, 1, 1, 1]
    assert {r["reward_extra_info"]["group_state"] for r in all_wrong} == {"not_scheduled"}
    off = asyncio.run(judged_group(ROWS[2], texts, tokenizer, reward_settings(judge_scope="off")))
    assert [r["reward_score"] for r in off] == [1.0, 0.0, 0.0, 0.0]
    validation_row = {**ROWS[3], "extra_info": {**ROWS[3]["extra_info"], "split": "test"}}
    graded_only = asyncio.run(judged_group(validation_row, [solution_with_error(ROWS[3], 1)] * 4, tokenizer, reward_settings()))
    assert [r["reward_extra_info"]["judge_called"] for r in graded_only] == [0] * 4


def test_a_row_without_ground_truth_is_malformed_and_never_judged(tokenizer):
    row = {**ROWS[4], "reward_model": {"style": "rule", "ground_truth": None}}
    results = asyncio.run(judged_group(row, [solution_with_error(ROWS[4], 1)] * 4, tokenizer, reward_settings()))
    assert [(r["reward_score"], r["reward_extra_info"]["malformed_row"], r["reward_extra_info"]["judge_called"])
            for r in results] == [(0.0, 1, 0)] * 4


def test_records_resume_by_whole_groups_and_skip_a_torn_line(tmp_path, policy, tokenizer):
    from recipe.sgpo.offline.generate import complete_groups

    rows = ROWS[:3]
    set_dir = make_set(tmp_path, policy, tokenizer, rows, [[solution_with_error(r, 1)] * N for r in rows])
    first = {(r[store.ROW_COLUMN], r["member"]): r for r in read_records(set_dir, N)}
    assert complete_groups(set_dir, N) == {0: 0, 1: 0, 2: 0} and len(first) == 3 * N
    # generating a finished set again with the same settings is accepted (its outputs are not settings)
    assert prepare(set_dir, tmp_path / "source" / "train.parquet", settings_for(policy), "cpu")["complete"]
    # a later launch that regenerated row 1 does not replace the first complete group; a half group and a
    # torn line (a process killed mid-write) are ignored
    later = set_dir / store.GENERATION_DIR / "launch-1" / "records-x.jsonl"
    later.parent.mkdir()

    def record(row: int, member: int, response: list[int]) -> str:
        return json.dumps({store.ROW_COLUMN: row, "member": member, "prompt_ids": [1], "response_ids": response,
                           "response_logprobs": None}) + "\n"

    later.write_text(record(1, 0, [2]) + '{"offline_row": 1, "mem')
    assert {(r[store.ROW_COLUMN], r["member"]): r for r in read_records(set_dir, N)} == first
    assert pending_rows(set_dir, store.read_manifest(set_dir)) == []
    # row 2 loses a member in launch 0: the group is redone whole, and a complete group of launch 1 replaces
    # all of launch 0's members of that row
    launch_0 = set_dir / store.GENERATION_DIR / "launch-0" / "records-test.jsonl"
    launch_0.write_text("".join(line + "\n" for line in launch_0.read_text().splitlines()
                                if (json.loads(line)[store.ROW_COLUMN], json.loads(line)["member"]) != (2, 3)))
    assert pending_rows(set_dir, store.read_manifest(set_dir)) == [2]
    with later.open("a") as handle:
        handle.write("\n" + "".join(record(2, m, [7, m]) for m in range(N)))
    assert complete_groups(set_dir, N)[2] == 1
    row_2 = sorted((r["member"], r["response_ids"]) for r in read_records(set_dir, N, rows={2}))
    assert row_2 == [(m, [7, m]) for m in range(N)]


def test_prepare_leaves_out_overlong_prompts_and_refuses_other_settings_on_resume(tmp_path, policy):
    long_row = {**ROWS[0], "prompt": [{"role": "user", "content": "x" * 400}]}
    source = write_source(tmp_path / "source", [ROWS[0], long_row, ROWS[1]])
    manifest = prepare(tmp_path / "set", source, settings_for(policy), "cpu")
    assert (manifest["rows"], manifest["overlong_rows"]) == (2, [1])
    kept = pq.read_table(tmp_path / "set" / store.PROMPTS_NAME).to_pylist()
    assert [r[store.ROW_COLUMN] for r in kept] == [0, 1] and [r[store.AGENT_COLUMN] for r in kept] == ["sgpo_record"] * 2
    assert kept[1]["extra_info"]["index"] == ROWS[1]["extra_info"]["index"]
    other = GenerationSettings(**{**settings_for(policy).as_dict(), "temperature": 0.6})
    with pytest.raises(OfflineSetError, match=r"other settings \(differs in \['temperature'\]\)"):
        prepare(tmp_path / "set", source, other, "cpu")


def test_judging_resumes_writes_members_and_train_rows_and_statistics(tmp_path, policy, tokenizer):
    rows = ROWS[:3]
    texts = [[solution_with_error(rows[0], k) for k in (1, 2, 3, 1)],  # all-negative
             [solution_with_error(rows[1], k) for k in (None, 1, None, 2)],  # mixed
             [solution_with_error(rows[2], None)] * N]  # all correct
    set_dir = make_set(tmp_path, policy, tokenizer, rows, texts)
    settings = reward_settings()
    # an earlier, interrupted run finished group 2 (a marker reward shows it is kept, not judged again)
    judge_dir = set_dir / store.JUDGE_DIR
    judge_dir.mkdir()
    from recipe.sgpo.offline.judge import judge_protocol

    store.write_json(judge_dir / store.JUDGE_PROTOCOL_NAME, judge_protocol(settings))
    kept = asyncio.run(judged_group(rows[2], texts[2], tokenizer, settings))
    kept[0]["reward_extra_info"]["pred"] = "kept"
    (judge_dir / store.JUDGE_RESULTS_NAME).write_text(json.dumps({store.ROW_COLUMN: 2, "results": kept}) + "\n")

    stats = asyncio.run(judge_set_async(set_dir, settings, progress=False))
    assert stats["groups"] == 3 and stats["responses"] == 12
    assert stats["accuracy"] == pytest.approx(6 / 12) and stats["all_negative_group_share"] == pytest.approx(1 / 3)
    assert (stats["judge_called"], stats["judged"], stats["judge_failed"]) == (4, 4, 0)
    members = store.MemberStore(set_dir)
    assert members.get(2, 0).reward_extra_info["pred"] == "kept"
    assert [members.get(0, m).reward_extra_info["first_error_step"] for m in range(N)] == [1, 2, 3, 1]
    assert members.get(1, 0).reward_score == 1.0 and members.get(1, 1).reward_score == 0.0
    responses = store.read_arrow(set_dir / store.RESPONSES_NAME).to_pylist()
    assert members.get(0, 2).response_ids == responses[2]["response_ids"]  # ids stored untouched
    train = pq.read_table(set_dir / store.TRAIN_NAME).to_pylist()
    assert [r[store.AGENT_COLUMN] for r in train] == ["sgpo_offline"] * 3
    assert json.loads((judge_dir / store.JUDGE_STATS_NAME).read_text())["judged"] == 4
    # another judge protocol is refused: the stored rewards would mix two judges
    with pytest.raises(OfflineSetError, match="another protocol"):
        asyncio.run(judge_set_async(set_dir, reward_settings(judge_scope="all_wrong"), progress=False))


def test_statistics_count_failures_and_truncations():
    def result(acc, **info):
        return {"reward_score": acc, "reward_extra_info": {"acc": acc, **info}}

    stats = set_statistics({0: [result(0.0, judge_called=1, judge_failed=1, judge_timeout=1), result(0.0, truncated=1)],
                            1: [result(1.0), result(0.0, grade_timeout=1)]})
    assert (stats["judge_failed"], stats["judge_timeout"], stats["truncated"], stats["grade_timeout"]) == (1, 1, 1, 1)
    assert stats["all_negative_group_share"] == 0.5 and stats["accuracy"] == 0.25


def test_training_refuses_a_set_that_does_not_match_the_run(tmp_path, policy, tokenizer):
    set_dir = make_set(tmp_path, policy, tokenizer, ROWS[:1], [[solution_with_error(ROWS[0], 1)] * N])
    train_files = [str(set_dir / store.TRAIN_NAME)]

    def problems(**kwargs):
        arguments = dict(group_size=N, tokenizer=tokenizer, prompt_length=256, response_length=RESPONSE_LENGTH,
                         train_files=train_files)
        return training_problems(set_dir, **{**arguments, **kwargs})

    assert any("no judge results" in p for p in problems())
    asyncio.run(judge_set_async(set_dir, reward_settings(), progress=False))
    assert problems() == []
    assert "actor_rollout_ref.rollout.n=4" in problems(group_size=8)[0]
    assert "data.max_response_length" in problems(response_length=4)[0]
    assert "data.max_prompt_length" in problems(prompt_length=4)[0]
    assert "data.train_files" in problems(train_files=["other.parquet"])[0]
    from transformers import AutoTokenizer

    other = AutoTokenizer.from_pretrained(policy)
    other.chat_template = "{{ messages[0]['content'] }}"
    assert "differs from the policy's" in problems(tokenizer=other)[0]
    with pytest.raises(OfflineSetError, match="member=7"):
        store.MemberStore(set_dir).get(0, 7)
    assert "not an offline set" in training_problems(tmp_path, group_size=N, tokenizer=None, prompt_length=None,
                                                     response_length=None)[0]


def test_the_offline_agent_loop_returns_the_stored_member(tmp_path, policy, tokenizer):
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap

    from recipe.sgpo.offline.agent_loops import OfflineAgentLoop
    from recipe.sgpo.preflight import compose_config

    set_dir = make_set(tmp_path, policy, tokenizer, ROWS[:1], [[solution_with_error(ROWS[0], k) for k in (1, 2, 3, 1)]])
    asyncio.run(judge_set_async(set_dir, reward_settings(), progress=False))
    config = compose_config([f"sgpo_offline.set_dir={set_dir}"])
    loop = OfflineAgentLoop(trainer_config=DictConfigWrap(config), server_manager=None, tokenizer=tokenizer,
                            processor=None, dataset_cls=None, data_config=DictConfigWrap(OmegaConf.create({})))
    output = asyncio.run(loop.run({}, offline_row=np.int64(0), session_id=2))
    stored = store.MemberStore(set_dir).get(0, 2)
    assert output.response_ids == stored.response_ids and output.prompt_ids == stored.prompt_ids
    assert output.reward_score == stored.reward_score > 0 and output.response_mask == [1] * len(stored.response_ids)
    assert output.extra_fields["reward_extra_info"]["first_error_step"] == 3
    assert output.response_logprobs == pytest.approx([-0.5] * len(stored.response_ids))


def test_cli_refuses_bad_input_with_the_fix_and_writes_nothing(tmp_path, repo_root):
    bad = tmp_path / "notes.parquet"
    bad.write_text("not parquet")
    out = tmp_path / "set"
    completed = subprocess.run([sys.executable, "-m", "recipe.sgpo.offline", "generate", "--platform", "cpu",
                                "--data", str(bad), "--out", str(out)], cwd=repo_root, capture_output=True, text=True)
    assert completed.returncode == 2 and "not a parquet file" in completed.stderr and "data_prep write" in completed.stderr
    assert not out.exists()
    completed = subprocess.run([sys.executable, "-m", "recipe.sgpo.offline", "judge", "--set", str(tmp_path)],
                               cwd=repo_root, capture_output=True, text=True)
    assert completed.returncode == 2 and "not an offline set" in completed.stderr
    completed = subprocess.run([sys.executable, "-m", "recipe.sgpo.offline", "judge", "--set", str(tmp_path), "--concurrency", "0"],
                               cwd=repo_root, capture_output=True, text=True)
    assert completed.returncode == 2 and "--concurrency must be at least 1" in completed.stderr


@pytest.mark.slow
def test_generate_judge_and_train_on_the_stored_responses(tmp_path, repo_root):
    # The whole chain as the README runs it, on the CPU: a coin policy (right about half the time on 4 prompts:
    # mixed groups; on the other 4 always wrong, at step 1 or 2: all-negative groups with graded values that
    # differ) generates 4 responses for each of 8 prompts through verl's CPU rollout;
    # the rule verifier judges; verl's trainer trains 3 steps on the set (the third in a second epoch). The trainer's per-step dump must
    # show exactly the stored token ids, the stored rewards, and the sgpo estimator's advantages of them.
    import pandas as pd
    import torch

    from cpu_trainer_inputs import build_coin_policy
    from recipe.sgpo.advantage import compute_sgpo_outcome_advantage
    from recipe.sgpo.cpu_demo import parse_args, prepare_data
    from recipe.sgpo.trainer import ids_digest

    sizes = ["--train-size", "8", "--val-size", "2", "--min-ops", "1", "--max-ops", "1"]
    train, val = prepare_data(parse_args(["--model", "tiny", *sizes, "--run-dir", str(tmp_path / "data")]))
    policy = build_coin_policy(tmp_path / "coin", pd.read_parquet(train).to_dict("records"), wrong_rows=frozenset(range(4)))
    common = [f"actor_rollout_ref.model.path={policy}", f"actor_rollout_ref.rollout.n={N}",
              "data.max_response_length=48", "data.max_prompt_length=256"]
    set_dir = tmp_path / "set"
    from recipe.sgpo.cpu_demo import cpu_env

    # VERL_PLATFORM=cpu (cpu_env) loads the CPU backend, whose trainer mode the check resolves
    run = lambda *args: subprocess.run([sys.executable, "-m", "recipe.sgpo.offline", *args], cwd=repo_root, env=cpu_env(),
                                       capture_output=True, text=True, timeout=900)
    generated = run("generate", "--platform", "cpu", "--data", str(train), "--out", str(set_dir), "--", *common)
    assert generated.returncode == 0, generated.stdout[-3000:] + generated.stderr[-3000:]
    judged = run("judge", "--set", str(set_dir), "--no-progress", "--", "reward.sgpo.judge.backend=rule")
    assert judged.returncode == 0, judged.stdout[-3000:] + judged.stderr[-3000:]
    stats = json.loads(judged.stdout.splitlines()[0])
    assert stats["groups"] == 8 and 0 < stats["accuracy"] < 1 and stats["judged"] > 0

    from recipe.sgpo.eval.run import trainer_command

    dump = tmp_path / "advantages"
    overrides = ["+platform=cpu", *common, f"data.train_files=[{set_dir / store.TRAIN_NAME}]", f"data.val_files={val}",
                 f"sgpo_offline.set_dir={set_dir}", "reward.sgpo.judge.backend=rule", "trainer.total_epochs=2", "trainer.total_training_steps=3",
                 "trainer.test_freq=-1", "trainer.save_freq=-1", "data.train_batch_size=4",
                 "actor_rollout_ref.actor.ppo_mini_batch_size=4", f"trainer.sgpo_advantage_dir={dump}",
                 f"trainer.default_local_dir={tmp_path / 'checkpoints'}",
                 # verl's rollout correction on the stored sampling log-probs (truncated importance weights)
                 "algorithm.rollout_correction.rollout_is=token", "trainer.logger=[console,file]",
                 f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH={tmp_path / 'metrics.jsonl'}"]
    checked = run("check", "--set", str(set_dir), "--", "+platform=cpu", *common)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    trained = subprocess.run(trainer_command(overrides), cwd=tmp_path, env=cpu_env(), capture_output=True, text=True,
                             timeout=900)
    assert trained.returncode == 0, trained.stdout[-4000:] + trained.stderr[-4000:]

    members = store.read_arrow(set_dir / store.MEMBERS_NAME).to_pylist()
    stored = {(ids_digest(m["prompt_ids"]), ids_digest(m["response_ids"])): m for m in members}
    seen, taught = [], 0
    for step in (1, 2, 3):
        rows = [json.loads(line) for line in (dump / f"{step}.jsonl").read_text().splitlines()]
        assert len(rows) == 4 * N
        by_uid: dict[str, list[dict]] = {}
        for row in rows:
            member = stored[(row["prompt_sha256"], row["response_sha256"])]  # token for token a stored member
            assert row["reward"] == pytest.approx(member["reward_score"])
            by_uid.setdefault(row["uid"], []).append(row)
        for group in by_uid.values():
            assert len({stored[(r["prompt_sha256"], r["response_sha256"])][store.ROW_COLUMN] for r in group}) == 1
        from recipe.sgpo.preflight import compose_config

        algorithm = compose_config(overrides).algorithm
        advantages, _ = compute_sgpo_outcome_advantage(
            torch.tensor([[r["reward"]] for r in rows]), torch.ones(len(rows), 1),
            np.array([r["uid"] for r in rows], dtype=object), config=algorithm)
        assert [r["advantage"] for r in rows] == pytest.approx(advantages[:, 0].tolist(), abs=1e-5)
        seen.append({stored[(r["prompt_sha256"], r["response_sha256"])][store.ROW_COLUMN] for r in rows})
        taught += sum(1 for r in rows if r["reward"] < 1.0 and r["group_state"] == "all_negative" and r["advantage"] != 0)
    assert seen[0] | seen[1] == set(range(8)) and not seen[0] & seen[1]  # epoch 1: the whole set, each group once
    assert seen[2] <= set(range(8)) and len(seen[2]) == 4  # step 3 starts epoch 2 on the same stored set
    assert taught > 0, "no all-negative member got an advantage: the graded path went untested"
    assert json.loads((set_dir / store.MANIFEST_NAME).read_text())["has_logprobs"]
    metrics = {m["step"]: m["data"] for m in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())}
    assert sorted(metrics) == [1, 2, 3]
    assert any(key.startswith("rollout_corr/") for key in metrics[1]), sorted(metrics[1])  # the stored log-probs were used


def test_the_progress_counter_reads_only_what_was_appended(tmp_path):
    from recipe.sgpo.offline.generate import RecordCounter

    counter = RecordCounter(tmp_path)
    assert counter.update() == 0
    first = tmp_path / "records-a-1.jsonl"
    first.write_text('{"a": 1}\n{"a": 2}\n{"a": 3')  # a line still being written is not counted
    assert counter.update() == 2
    with first.open("a") as handle:
        handle.write('}\n')
    (tmp_path / "records-b-2.jsonl").write_text('{"b": 1}\n')
    assert counter.update() == 4 and counter.update() == 4
