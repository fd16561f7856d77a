"""Settings of the SGPO reward manager (`reward.sgpo.*` in the hydra config).

The yaml (`recipe/sgpo/config/sgpo_trainer.yaml`) carries the values a run uses; the defaults here apply
only to keys it leaves out. The band ``c`` of the reward encoding is read from
``algorithm.sgpo.reward_band`` — the estimator's key — so the two sides cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from reward.encoding import DEFAULT_REWARD_BAND, validate_band
from reward.settings_base import config_get, require_choice, require_number, section_values

CONFIG_PREFIX = "reward.sgpo"

#: Which wrong responses are sent to the step-wise judge.
JUDGE_SCOPES = ("all_negative_groups", "all_wrong", "off")

#: When a wrong response of scope ``all_negative_groups`` is sent to the judge (``reward.sgpo.judge_schedule``).
JUDGE_SCHEDULES = ("after_group", "eager")


@dataclass(frozen=True)
class RewardSettings:
    """What the SGPO reward manager does with each trajectory.

    Attributes:
        judge_scope: ``all_negative_groups`` (default; what the paper's cost claim rests on): only wrong
            responses of groups in which every response is wrong are judged, found through the group
            rendezvous (reward/rendezvous.py). ``all_wrong``: every wrong response is judged as soon as it
            is graded (no waiting; more judge calls — the wrong answers of mixed groups are judged for
            nothing unless ``algorithm.sgpo.apply_to=all_incorrect``). ``off``: no judge; the reward is
            the binary outcome (the GRPO baseline with the very same grader).
        group_wait_s: The longest, in seconds, a wrong response waits for the outcomes of the rest of its
            group. Must exceed the spread of generation times inside a group (a long response finishes
            minutes after a short one); a group still incomplete then is scored as not judged.
        train_splits: Rows whose ``extra_info.split`` is one of these are training rows and may be judged;
            other rows (validation benchmarks) are only graded. Rows without ``extra_info.split`` count as
            training rows. data_prep writes ``train`` for training sets and ``test`` for benchmarks.
        judge_schedule: When, under ``judge_scope=all_negative_groups``, a wrong response goes to the judge.
            ``after_group`` (default; the paper's cost-minimal schedule): only once every member of its group
            has been graded wrong, so the judge latency of the step's last groups adds to the step.
            ``eager``: as soon as it is graded wrong, while its group is still open; the verdict is kept if
            the group turns out all-negative and discarded otherwise (the call is then cancelled, which
            closes its request so the server stops working on it; counted as ``judge_wasted``), so the
            reward of every response is exactly the ``after_group`` reward. Trades extra judge calls (the
            wrong members of mixed groups) for overlapping judging with the rest of the generation;
            docs/judge_overhead.md models both.
        eager_min_all_negative_share: With ``judge_schedule=eager``: judge early only while the running
            share of all-negative groups (over the last :data:`reward.manager.EAGER_SHARE_WINDOW` settled
            responses this reward worker saw) is at least this; below it the response waits for its group
            as under ``after_group``. In [0, 1]; 0 (default) is always eager. Early in training most groups
            are all-negative (few wasted calls); late, few are (most early calls would be wasted).
        reward_band: The band ``c`` of the reward encoding; taken from ``algorithm.sgpo.reward_band``.
        grader: Outcome-grader settings (``reward.sgpo.grader.*``, reward/grader.py).
        judge: Step-wise judge settings (``reward.sgpo.judge.*``, reward/judge/).
    """

    judge_scope: str = "all_negative_groups"
    group_wait_s: float = 600.0
    judge_schedule: str = "after_group"
    eager_min_all_negative_share: float = 0.0
    train_splits: tuple[str, ...] = ("train",)
    reward_band: float = DEFAULT_REWARD_BAND
    grader: Any = None
    judge: Any = None

    def __post_init__(self) -> None:
        require_choice(self.judge_scope, f"{CONFIG_PREFIX}.judge_scope", JUDGE_SCOPES)
        require_choice(self.judge_schedule, f"{CONFIG_PREFIX}.judge_schedule", JUDGE_SCHEDULES)
        require_number(self.eager_min_all_negative_share, f"{CONFIG_PREFIX}.eager_min_all_negative_share", minimum=0.0)
        if self.eager_min_all_negative_share > 1.0:
            raise ValueError(
                f"{CONFIG_PREFIX}.eager_min_all_negative_share must be a share in [0, 1], "
                f"got {self.eager_min_all_negative_share}"
            )
        require_number(self.group_wait_s, f"{CONFIG_PREFIX}.group_wait_s", minimum=0.0, exclusive=True)
        if isinstance(self.train_splits, str) or not all(isinstance(s, str) for s in self.train_splits):
            raise ValueError(f"{CONFIG_PREFIX}.train_splits must be a list of split names, got {self.train_splits!r}")
        validate_band(self.reward_band)

    @property
    def judging(self) -> bool:
        return self.judge_scope != "off"

    @classmethod
    def from_trainer_config(cls, config: Any) -> "RewardSettings":
        """Read ``reward.sgpo.*`` and ``algorithm.sgpo.reward_band`` from the full trainer config."""
        from reward.grader import GraderConfig
        from reward.judge import JudgeConfig

        known = {f.name for f in fields(cls)} - {"reward_band"}
        values = section_values(config_get(config, "reward", "sgpo"), CONFIG_PREFIX, known)
        if "train_splits" in values:
            values["train_splits"] = tuple(values["train_splits"])
        values["grader"] = GraderConfig.from_mapping(values.get("grader"))
        values["judge"] = JudgeConfig.from_mapping(values.get("judge"))
        band = config_get(config, "algorithm", "sgpo", "reward_band")
        return cls(**values, reward_band=DEFAULT_REWARD_BAND if band is None else band)

