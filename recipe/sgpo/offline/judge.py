"""Grade and judge an offline set once, with the online reward manager's own grader, judge and rules.

Every setting is the training config's ``reward.sgpo.*`` (sgpo_trainer.yaml plus the hydra overrides given),
and every response gets exactly the result the online manager (reward/manager.py) would give it:
``reward_result`` of its trajectory, grade and judge outcome. The one difference is the group rendezvous:
here every group is complete before grading starts, so no response waits for its siblings.

=============================  ====================================================================
``reward.sgpo.judge_scope``    which wrong responses are judged (``group_state`` in the extra info)
=============================  ====================================================================
``all_negative_groups``        the wrong responses of groups with no correct answer (``all_negative``;
                               other groups are ``mixed``); the paper's method and the default
``all_wrong``                  every wrong response (``not_scheduled``)
``off``                        none (``not_scheduled``): binary rewards, the GRPO baseline
=============================  ====================================================================

``judge_schedule`` has no effect offline: it only decides *when* an online response is judged, never its
reward. Rows whose ``extra_info.split`` is not in ``reward.sgpo.train_splits`` are graded, never judged.

Results are appended to ``judge/results.jsonl`` one group at a time, so an interrupted run resumes with the
groups not yet done; a re-run with a different judge protocol is refused. When every group is done the
command writes ``members.arrow``, ``train.parquet`` and ``judge/stats.json`` (recipe/sgpo/offline/store.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from recipe.sgpo.offline import store
from recipe.sgpo.offline.store import OfflineSetError
from reward.manager import (
    NOT_SCHEDULED,
    JudgeOutcome,
    Trajectory,
    judge_request,
    reward_result,
    trajectory_from_row,
)
from reward.rendezvous import ALL_NEGATIVE, MIXED
from reward.settings import RewardSettings

#: Groups graded and judged at once (each judge backend also bounds its own requests in flight).
DEFAULT_GROUP_CONCURRENCY = 64


def judge_protocol(settings: RewardSettings) -> dict[str, Any]:
    """Everything that decides the stored rewards: backend, model, prompt version and sha256, all settings."""
    judge = settings.judge
    protocol: dict[str, Any] = {"backend": judge.backend, "reward_settings": _plain(asdict(settings))}
    if judge.backend in ("openai", "router"):
        from reward.judge.prompt import PromptTemplate

        template = PromptTemplate.load(judge.prompt_version, judge.prompt_file)
        protocol.update(model=judge.openai.model if judge.backend == "openai" else judge.openai.router_model,
                        base_url=judge.openai.base_url if judge.backend == "openai" else None,
                        prompt_version=template.version, prompt_sha256=template.sha256)
    elif judge.backend == "prm":
        protocol.update(model=judge.prm.model)
    else:
        protocol.update(model="rule verifier (reward/judge/backends/rule.py)")
    return protocol


def _plain(value: Any) -> Any:
    """JSON-safe copy (tuples to lists), so a protocol read back compares equal to a new one."""
    return json.loads(json.dumps(value, default=str))


async def grade_group(trajectories: Sequence[Trajectory], settings: RewardSettings, grader: Any,
                      judge: Any) -> list[dict[str, Any]]:
    """The reward-loop result of every member of one complete group (see the module docstring)."""
    if trajectories[0].ground_truth is None:  # one row: every member shares its ground truth
        return [reward_result(t, None, JudgeOutcome(None, NOT_SCHEDULED), settings.reward_band, malformed=True)
                for t in trajectories]
    grades = await asyncio.gather(*[grader.agrade(t.response, t.ground_truth) for t in trajectories])
    scope = settings.judge_scope
    state = NOT_SCHEDULED
    if scope == "all_negative_groups" and trajectories[0].is_training:
        state = MIXED if any(g.correct for g in grades) else ALL_NEGATIVE
    judged = [judge is not None and trajectories[0].is_training and not g.correct
              and (scope == "all_wrong" or (scope == "all_negative_groups" and state == ALL_NEGATIVE))
              for g in grades]

    async def verdict(trajectory: Trajectory, wanted: bool):
        return await judge.judge(judge_request(trajectory)) if wanted else None

    verdicts = await asyncio.gather(*[verdict(t, w) for t, w in zip(trajectories, judged)])
    return [reward_result(t, g, JudgeOutcome(v, state), settings.reward_band)
            for t, g, v in zip(trajectories, grades, verdicts)]


def group_trajectories(row_fields: dict[str, Any], members: Sequence[dict[str, Any]], tokenizer: Any,
                       settings: RewardSettings, response_length: int) -> list[Trajectory]:
    """The trajectories the online manager would read for one stored group (decoded as it decodes)."""
    fields = {"reward_model": row_fields.get("reward_model"), "extra_info": row_fields.get("extra_info"),
              "raw_prompt": row_fields.get("prompt")}
    return [trajectory_from_row(tokenizer.decode(m["response_ids"], skip_special_tokens=True),
                                {**fields, "session_id": m["member"]}, settings.train_splits,
                                finished=len(m["response_ids"]) < response_length)
            for m in members]


def read_results(path: Path) -> dict[int, list[dict[str, Any]]]:
    """Groups done so far (offline_row → member results); a torn last line is skipped."""
    done: dict[int, list[dict[str, Any]]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[int(record[store.ROW_COLUMN])] = record["results"]
    return done


def check_protocol(judge_dir: Path, protocol: dict[str, Any]) -> None:
    from recipe.sgpo.eval.run import differing_keys

    path = judge_dir / store.JUDGE_PROTOCOL_NAME
    if path.is_file():
        previous = json.loads(path.read_text())
        changed = differing_keys(previous, protocol)
        if changed:
            raise OfflineSetError(f"{path}: this set was judged with another protocol (differs in {changed}); delete "
                                  f"{judge_dir} to judge it again, or generate a new set")
        return
    store.write_json(path, protocol)


def set_statistics(results: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per-set statistics of the stored rewards (shares are over responses unless they say groups)."""
    infos = [r["reward_extra_info"] for group in results.values() for r in group]
    groups = list(results.values())
    total = len(infos)

    def count(key: str) -> int:
        return int(sum(int(bool(info.get(key))) for info in infos))

    all_negative = [g for g in groups if all(r["reward_extra_info"]["acc"] == 0.0 for r in g)]
    return {
        "groups": len(groups),
        "responses": total,
        "accuracy": sum(info["acc"] for info in infos) / total,
        "all_negative_group_share": len(all_negative) / len(groups),
        "judge_called": count("judge_called"),
        "judged": count("judged"),
        "judge_failed": count("judge_failed"),
        "judge_timeout": count("judge_timeout"),
        "judge_parse_error": count("judge_parse_error"),
        "judge_no_signal": count("judge_no_signal"),
        "grade_timeout": count("grade_timeout"),
        "malformed_row": count("malformed_row"),
        "truncated": count("truncated"),
        "mean_reward": sum(r["reward_score"] for g in groups for r in g) / total,
    }


def write_outputs(set_dir: Path, results: dict[int, list[dict[str, Any]]]) -> None:
    """members.arrow (responses + rewards, as two added columns) and train.parquet (rows naming the
    sgpo_offline agent loop)."""
    responses = store.read_arrow(set_dir / store.RESPONSES_NAME)
    keys = zip(responses.column(store.ROW_COLUMN).to_pylist(), responses.column("member").to_pylist())
    chosen = [results[row][member] for row, member in keys]
    members = responses.append_column("reward_score", pa.array([float(r["reward_score"]) for r in chosen], pa.float64()))
    members = members.append_column("reward_extra_info", pa.array([json.dumps(r["reward_extra_info"]) for r in chosen], pa.string()))
    store.write_arrow(set_dir / store.MEMBERS_NAME, members.cast(store.MEMBERS_SCHEMA))
    prompts = pq.read_table(set_dir / store.PROMPTS_NAME)
    agents = prompts.schema.get_field_index(store.AGENT_COLUMN)
    train = prompts.set_column(agents, store.AGENT_COLUMN, pa.array([store.OFFLINE_AGENT] * prompts.num_rows, pa.string()))
    with store.replacing(set_dir / store.TRAIN_NAME) as temporary:
        pq.write_table(train, temporary)


async def judge_set_async(set_dir: Path, settings: RewardSettings, concurrency: int = DEFAULT_GROUP_CONCURRENCY,
                          progress: bool = True) -> dict[str, Any]:
    """Grade and judge every group not done yet, then write the outputs; returns the statistics."""
    from tqdm import tqdm
    from transformers import AutoTokenizer

    from reward.grader import OutcomeGrader
    from reward.judge import build_judge

    set_dir = Path(set_dir).resolve()
    manifest = store.read_manifest(set_dir)
    if not manifest.get("complete") or not (set_dir / store.RESPONSES_NAME).is_file():
        raise OfflineSetError(f"{set_dir / store.RESPONSES_NAME}: missing; generation of this set has not finished. "
                              f"Run `python -m recipe.sgpo.offline generate` with the same --out again")
    judge_dir = set_dir / store.JUDGE_DIR
    judge_dir.mkdir(exist_ok=True)
    protocol = judge_protocol(settings)
    check_protocol(judge_dir, protocol)
    results_path = judge_dir / store.JUDGE_RESULTS_NAME
    done = read_results(results_path)
    tokenizer = AutoTokenizer.from_pretrained(manifest["model"])
    rows = pq.read_table(set_dir / store.PROMPTS_NAME).to_pylist()
    # the responses stay memory-mapped; a group's token ids are read only while it is graded
    responses = store.read_arrow(set_dir / store.RESPONSES_NAME)
    groups: dict[int, list[int]] = {}
    for position, row in enumerate(responses.column(store.ROW_COLUMN).to_pylist()):
        groups.setdefault(row, []).append(position)
    pending = [row for row in sorted(groups) if row not in done]

    grader = OutcomeGrader(settings.grader)
    judge = build_judge(settings.judge) if settings.judging else None
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(groups), initial=len(groups) - len(pending), desc=f"grading and judging ({settings.judge.backend})",
               unit="group", disable=not progress, file=sys.stderr)
    response_length = int(manifest["max_response_length"])

    async def one(row: int, handle: Any) -> None:
        async with gate:
            members = sorted(responses.take(pa.array(groups[row])).to_pylist(), key=lambda m: m["member"])
            trajectories = group_trajectories(rows[row], members, tokenizer, settings, response_length)
            results = await grade_group(trajectories, settings, grader, judge)
        handle.write(json.dumps({store.ROW_COLUMN: row, "results": results}) + "\n")
        handle.flush()
        done[row] = results
        bar.update(1)

    try:
        with results_path.open("a") as handle:
            await asyncio.gather(*[one(row, handle) for row in pending])
    finally:
        bar.close()
        grader.close()
        if judge is not None:
            await judge.aclose()
    stats = {**set_statistics(done), "protocol": protocol}
    write_outputs(set_dir, done)
    store.write_json(judge_dir / store.JUDGE_STATS_NAME, stats)
    return stats


def settings_from_overrides(overrides: Sequence[str] = ()) -> RewardSettings:
    """The ``reward.sgpo.*`` settings of the training config (sgpo_trainer.yaml) plus hydra ``overrides``,
    validated, with the judge built once so that a bad judge setting (a missing API-key variable) fails now."""
    from recipe.sgpo.preflight import compose_config
    from reward.judge import build_judge

    settings = RewardSettings.from_trainer_config(compose_config(list(overrides)))
    if settings.judging:
        build_judge(settings.judge)
    return settings


def judge_set(set_dir: Path, overrides: Sequence[str] = (), concurrency: int = DEFAULT_GROUP_CONCURRENCY,
              progress: bool = True) -> dict[str, Any]:
    """:func:`judge_set_async` with :func:`settings_from_overrides`."""
    store.read_manifest(Path(set_dir))  # not a set: fail before composing the config
    return asyncio.run(judge_set_async(set_dir, settings_from_overrides(overrides), concurrency, progress))
