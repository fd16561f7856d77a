"""The SGPO reward manager: outcome grade + step-wise judge → one encoded reward per trajectory.

A verl 0.9.1 reward-loop manager (``RewardManagerBase``). verl's reward workers call ``run_single`` once
per trajectory, concurrently, as trajectories finish. For each one it

1. grades the final answer against the reference (reward/grader.py, hard time bound);
2. decides whether the response goes to the judge (``reward.sgpo.judge_scope``): by default only wrong
   responses of all-negative groups, found through the group rendezvous (reward/rendezvous.py); when
   (``reward.sgpo.judge_schedule``): after the whole group is known all-negative, or ``eager``ly while the
   group is still open, keeping the verdict only if the group turns out all-negative;
3. asks the step-wise judge (reward/judge/) for the first incorrect step → RTS → graded value ``g``;
4. returns ``encode_reward(correct, g, c)`` (reward/encoding.py) and the same extra-info keys for every
   trajectory (:data:`EXTRA_INFO_KEYS`), which the sgpo trainer metrics and verl's validation metrics read.

Nothing in here raises into verl for one bad trajectory: a malformed row, a grader timeout, a dead judge or
a lost group member all end as a wrong or not-judged response, counted in the extra info.

Select it with ``reward.reward_manager.name=sgpo`` (registered by the plugin) or
``reward.reward_manager.source=importlib reward.reward_manager.module.path=pkg://reward.manager
reward.reward_manager.name=SGPORewardManager``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from reward.encoding import encode_reward
from reward.grader import GradeResult, OutcomeGrader
from reward.judge import build_judge
from reward.judge.base import JudgeRequest, Verdict
from reward.rendezvous import ALL_NEGATIVE, MIXED, get_group_rendezvous, report_outcome
from reward.settings import RewardSettings
from reward.settings_base import config_get

logger = logging.getLogger("sgpo.reward")

#: Registered name (``reward.reward_manager.name``).
MANAGER_NAME = "sgpo"

#: ``group_state`` of a trajectory that did not go through the rendezvous (validation rows,
#: ``judge_scope`` ``all_wrong`` or ``off``, rows without a uid).
NOT_SCHEDULED = "not_scheduled"

#: Settled responses (group state ``all_negative`` or ``mixed``) over which ``judge_schedule=eager`` takes the
#: running share of all-negative groups that ``eager_min_all_negative_share`` is compared with: about one
#: step of a 7B launch script (128 prompts x 8 responses), so the switch follows the training phase, not
#: the last few groups. Before any response has settled the share counts as 1 (training starts with most
#: groups all-negative).
EAGER_SHARE_WINDOW = 1024

#: Extra-info keys returned for every trajectory, with their meaning. verl turns them into validation
#: metrics (``val-aux/<data_source>/<key>/...``; ``acc`` is the core accuracy, ``pred`` feeds maj@N) and the
#: sgpo trainer turns them into ``sgpo/...`` training metrics (recipe/sgpo/metrics.py).
EXTRA_INFO_KEYS = {
    "acc": "1.0 if the final answer equals the reference, else 0.0",
    "pred": "the extracted final answer ('' when there is none)",
    "grade_timeout": "1 if grading hit its time bound (counted as wrong)",
    "truncated": "1 if the response filled actor_rollout_ref.rollout.response_length (cut off, unfinished)",
    "malformed_row": "1 if the row lacked what grading needs (no ground truth); scored as wrong, not judged",
    "group_state": "all_negative | mixed | incomplete | not_scheduled (see reward/rendezvous.py)",
    "judge_called": "1 if the response was sent to the judge",
    "judged": "1 if the judge returned a usable verdict",
    "judge_failed": "1 if the judge call failed (any reason, timeouts and parse errors included)",
    "judge_no_signal": "1 if the judge found no error where that carries no signal (unfinished response, or "
    "only a prefix within reward.sgpo.judge.steps.max_judged_chars shown): not judged, not a failure",
    "judge_timeout": "1 if the judge call ran out of time",
    "judge_parse_error": "1 if the judge answered but not in the required format (or out of range)",
    "first_error_step": "1-based first incorrect step, None when no error was found or not judged",
    "num_steps": "number of steps the response was split into (0 when not judged)",
    "rts": "Reasoning Trajectory Score in [0, 1], None when not judged",
    "graded_value": "g in [0, 1], None when not judged",
    "judge_latency_s": "seconds spent on the judge call (0 when not called)",
    "judge_wasted": "1 if the response was sent to the judge early (reward.sgpo.judge_schedule=eager) and the "
    "verdict discarded because its group was not all-negative; judge_called is then 0, the reward unjudged",
}


@dataclass(frozen=True)
class JudgeOutcome:
    """What the judge scheduling decided for one trajectory."""

    verdict: Verdict | None
    group_state: str
    wasted: bool = False


@dataclass(frozen=True)
class Trajectory:
    """What the manager needs from one verl trajectory."""

    response: str
    ground_truth: str | None
    problem: str
    reference_solution: str | None
    uid: str | None
    member: str | None
    is_training: bool
    finished: bool


@register(MANAGER_NAME)
class SGPORewardManager(RewardManagerBase):
    """verl reward-loop manager for SGPO (see the module docstring)."""

    def __init__(
        self,
        config: Any,
        tokenizer: Any,
        compute_score: Any = None,
        reward_router_address: str | None = None,
        reward_model_tokenizer: Any = None,
        **unused: Any,
    ) -> None:
        super().__init__(config, tokenizer, compute_score)
        self.settings = RewardSettings.from_trainer_config(config)
        self.group_size = int(config_get(config, "actor_rollout_ref", "rollout", "n") or 1)
        #: A response with this many tokens hit the length limit: it is unfinished (see _read_trajectory).
        self.response_length = config_get(config, "actor_rollout_ref", "rollout", "response_length")
        self.grader = OutcomeGrader(self.settings.grader)
        # Built now so that a bad judge setting (missing API-key variable, router without an address)
        # fails at start-up, not per sample; it opens no connection until the first call.
        self._judge = (
            build_judge(self.settings.judge, reward_router_address=reward_router_address)
            if self.settings.judging
            else None
        )
        self._rendezvous = None
        self._warned_missing_split = False
        #: True/False per settled response: was its group all-negative (the eager schedule's running share)
        self._recent_all_negative: deque[bool] = deque(maxlen=EAGER_SHARE_WINDOW)

    async def run_single(self, data: DataProto) -> dict:
        trajectory = await self._read_trajectory(data)
        if trajectory.ground_truth is None:
            logger.error("sgpo reward: row without reward_model.ground_truth; scored as wrong (uid=%s)", trajectory.uid)
            return self._result(trajectory, None, JudgeOutcome(None, NOT_SCHEDULED), malformed=True)
        grade = await self.grader.agrade(trajectory.response, trajectory.ground_truth)
        try:
            outcome = await self._judge_if_needed(trajectory, grade.correct)
        except Exception:  # noqa: BLE001 - a scheduling fault must not stop training
            logger.exception("sgpo reward: judge scheduling failed (uid=%s); response not judged", trajectory.uid)
            outcome = JudgeOutcome(None, NOT_SCHEDULED)
        return self._result(trajectory, grade, outcome)

    # ----------------------------------------------------------------------------------------------

    async def _judge_if_needed(self, trajectory: Trajectory, correct: bool) -> JudgeOutcome:
        scope = self.settings.judge_scope
        if scope == "off" or not trajectory.is_training:
            return JudgeOutcome(None, NOT_SCHEDULED)
        if scope == "all_wrong":
            return JudgeOutcome(None if correct else await self._call_judge(trajectory), NOT_SCHEDULED)
        if trajectory.uid is None:
            return JudgeOutcome(None, NOT_SCHEDULED)
        if not correct and self._judge_early():
            return await self._judge_while_group_open(trajectory)
        state = await self._report_to_group(trajectory, correct)
        if correct or state != ALL_NEGATIVE:
            return JudgeOutcome(None, state)
        return JudgeOutcome(await self._call_judge(trajectory), state)

    async def _judge_while_group_open(self, trajectory: Trajectory) -> JudgeOutcome:
        """The eager schedule: the judge call runs while the group settles; its verdict counts only for an
        all-negative group, so every reward equals the ``after_group`` schedule's."""
        early_call = asyncio.ensure_future(self._call_judge(trajectory))
        try:
            state = await self._report_to_group(trajectory, correct=False)
        except BaseException:
            await _discard(early_call)
            raise
        if state == ALL_NEGATIVE:
            return JudgeOutcome(await early_call, state)
        await _discard(early_call)  # mixed or incomplete: not judged under after_group either
        return JudgeOutcome(None, state, wasted=True)

    def _judge_early(self) -> bool:
        """Whether a wrong response goes to the judge before its group has settled (see EAGER_SHARE_WINDOW)."""
        if self.settings.judge_schedule != "eager":
            return False
        recent = self._recent_all_negative
        share = sum(recent) / len(recent) if recent else 1.0
        return share >= self.settings.eager_min_all_negative_share

    async def _report_to_group(self, trajectory: Trajectory, correct: bool) -> str:
        state = await report_outcome(
            self._group_rendezvous(), trajectory.uid, correct, self.group_size, self.settings.group_wait_s,
            member=trajectory.member,
        )
        if state in (ALL_NEGATIVE, MIXED):
            self._recent_all_negative.append(state == ALL_NEGATIVE)
        return state

    async def _call_judge(self, trajectory: Trajectory) -> Verdict:
        return await self._judge.judge(judge_request(trajectory))

    def _group_rendezvous(self) -> Any:
        if self._rendezvous is None:
            self._rendezvous = get_group_rendezvous()
        return self._rendezvous

    async def _read_trajectory(self, data: DataProto) -> Trajectory:
        item = data[-1]  # multi-sequence outputs: the reward is for the last sequence, as in verl's managers
        response_ids = item.batch["responses"]
        valid_length = int(item.batch["attention_mask"][-response_ids.shape[-1]:].sum())
        valid_ids = response_ids[:valid_length]
        # the running loop, not the one captured at construction: callers may score from another loop
        response = await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.tokenizer.decode(valid_ids, skip_special_tokens=True)
        )
        fields = item.non_tensor_batch
        extra_info = fields.get("extra_info") or {}
        if _field(extra_info, "split") is None and not self._warned_missing_split:
            self._warned_missing_split = True
            logger.warning("sgpo reward: rows without extra_info.split are treated as training rows (judged)")
        return trajectory_from_row(
            response, fields, self.settings.train_splits,
            # verl stops generation at response_length tokens; a response that long never ended on its own
            finished=self.response_length is None or valid_length < int(self.response_length),
        )

    def _result(
        self,
        trajectory: Trajectory,
        grade: GradeResult | None,
        outcome: JudgeOutcome,
        malformed: bool = False,
    ) -> dict:
        return reward_result(trajectory, grade, outcome, self.settings.reward_band, malformed=malformed)


def trajectory_from_row(response: str, fields: Any, train_splits: Any, finished: bool) -> Trajectory:
    """A :class:`Trajectory` from a response's decoded text and its dataset row's fields (``reward_model``,
    ``extra_info``, ``raw_prompt``, and verl's ``uid`` and ``session_id`` when present)."""
    reward_model = fields.get("reward_model") or {}
    ground_truth = _field(reward_model, "ground_truth")
    extra_info = fields.get("extra_info") or {}
    split = _field(extra_info, "split")
    uid, member = fields.get("uid"), fields.get("session_id")  # session_id: index in the group (V1)
    return Trajectory(
        response=response,
        ground_truth=None if ground_truth is None else str(ground_truth),
        problem=str(_field(extra_info, "problem") or _last_user_message(fields.get("raw_prompt"))),
        reference_solution=_field(extra_info, "reference_solution") or None,
        uid=None if uid is None else str(uid),
        member=None if member is None else str(member),
        is_training=split is None or str(split) in train_splits,
        finished=finished,
    )


def _field(mapping: Any, key: str) -> Any:
    return mapping.get(key) if hasattr(mapping, "get") else None


def judge_request(trajectory: Trajectory) -> JudgeRequest:
    """What the step-wise judge is asked about one trajectory (online and offline alike)."""
    return JudgeRequest(
        problem=trajectory.problem,
        reference_answer=trajectory.ground_truth or "",
        response=trajectory.response,
        reference_solution=trajectory.reference_solution,
        finished=trajectory.finished,
    )


def reward_result(
    trajectory: Trajectory,
    grade: GradeResult | None,
    outcome: JudgeOutcome,
    reward_band: float,
    malformed: bool = False,
) -> dict:
    """verl's reward-loop result for one trajectory: the encoded reward and :data:`EXTRA_INFO_KEYS`.

    ``reward_score = encode_reward(correct, g, c)`` (reward/encoding.py): 1 when correct, ``c · g`` when
    judged wrong, 0 when wrong and not judged. Offline SGPO (recipe/sgpo/offline) stores exactly this dict.
    """
    verdict, group_state = outcome.verdict, outcome.group_state
    correct = bool(grade and grade.correct)
    judged = bool(verdict and verdict.judged)
    graded_value = verdict.graded_value if judged else None
    reward = encode_reward(correct, graded_value, reward_band)
    extra = {
        "acc": 1.0 if correct else 0.0,
        "pred": (grade.extracted_answer or "") if grade else "",
        "grade_timeout": int(bool(grade and grade.timed_out)),
        "truncated": int(not trajectory.finished),
        "malformed_row": int(malformed),
        "group_state": group_state,
        "judge_called": int(verdict is not None),
        "judged": int(judged),
        "judge_failed": int(verdict is not None and not verdict.judged and not verdict.no_signal),
        "judge_no_signal": int(bool(verdict and verdict.no_signal)),
        "judge_timeout": int(bool(verdict and verdict.timed_out)),
        "judge_parse_error": int(bool(verdict and verdict.parse_failed)),
        "first_error_step": verdict.first_error_step if judged else None,
        "num_steps": verdict.num_steps if judged else 0,
        "rts": verdict.rts if judged else None,
        "graded_value": graded_value,
        "judge_latency_s": float(verdict.latency_s) if verdict else 0.0,
        "judge_wasted": int(outcome.wasted),
    }
    return {"reward_score": reward, "reward_extra_info": extra}


async def _discard(call: asyncio.Future) -> None:
    """Cancel a judge call whose verdict is no longer wanted (it frees the server's slot) and wait for it."""
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await call


def _last_user_message(raw_prompt: Any) -> str:
    try:
        users = [m["content"] for m in raw_prompt if m.get("role") == "user"]
    except (TypeError, AttributeError, KeyError):
        return ""
    return str(users[-1]) if users else ""

