"""Group rendezvous: lets each trajectory learn whether its whole group was wrong, before judging it.

SGPO only needs the judge for *all-negative* groups (every response to a prompt wrong), and the paper's
~10 % overhead claim rests on judging nothing else. But verl's reward loop scores one trajectory at a
time (``run_single``), on one of several reward-worker actors picked at random, as each trajectory
finishes generating. So the members of a group meet here, keyed by ``uid``:

* every member reports its outcome (correct or not) once graded, with its index in the group (verl
  0.9.1's V1 agent loop passes it as ``session_id``, 0…n−1); the rendezvous counts **distinct members**,
  so a trajectory that is retried and reported twice is counted once (its latest outcome stands; a
  retry that turned correct settles the group as ``mixed``). Reports without a member index (verl's
  legacy, non-V1 agent loop passes none) are each counted as a new member;
* a correct member settles the group as ``mixed`` at once — waiting wrong members are released and are
  not judged;
* a wrong member waits until all ``expected`` members have reported (then ``all_negative``) or until its
  wait bound expires (then ``incomplete``: not judged, so a group whose members never all arrive —
  aborted trajectories, partial rollouts — cannot hang a worker).

Trade-offs (docs/reward_manager.md, "Judge scheduling"): the judge starts only after the slowest member of an
all-negative group has been generated, so judge latency adds to the step instead of overlapping with
generation for those groups; the bound must exceed the spread of generation times inside a group or
early finishers go unjudged. ``judge_scope=all_wrong`` avoids both (no waiting) at the cost of judging
wrong answers of mixed groups too.

:class:`GroupRendezvous` is plain asyncio (one event loop). In a Ray job the reward workers share one
instance hosted by the named async actor :data:`RENDEZVOUS_ACTOR_NAME` (:func:`get_group_rendezvous`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

#: Group states returned by :meth:`GroupRendezvous.report`.
ALL_NEGATIVE = "all_negative"
MIXED = "mixed"
INCOMPLETE = "incomplete"

logger = logging.getLogger("sgpo.reward")

#: Name of the Ray actor that hosts the shared rendezvous in a training job.
RENDEZVOUS_ACTOR_NAME = "sgpo_group_rendezvous"

#: Settled groups are forgotten after this many wait bounds, so a late straggler of a settled group still
#: learns the group's state, while memory stays bounded over a long run.
SETTLED_RETENTION_BOUNDS = 4


@dataclass
class _Group:
    expected: int
    outcomes: dict[Any, bool] = field(default_factory=dict)  # member -> correct, latest report wins
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    state: str | None = None
    last_seen: float = field(default_factory=time.monotonic)
    size_mismatch_logged: bool = False


class GroupRendezvous:
    """Collects the outcomes of each group's members and tells wrong members whether all were wrong."""

    def __init__(self) -> None:
        self._groups: dict[str, _Group] = {}
        self._last_sweep = time.monotonic()
        self._anonymous = itertools.count()  # member keys for reports without a member index
        #: Running counts: ``duplicate_reports`` (a member reported again) and ``size_mismatches``.
        self.stats: dict[str, int] = {"duplicate_reports": 0, "size_mismatches": 0}

    async def report(self, uid: str, correct: bool, expected: int, wait_s: float, member: Any = None) -> str:
        """Record one member's outcome; wrong members wait for the group's verdict (at most ``wait_s``).

        Args:
            uid: the group id (verl's ``uid``, shared by the ``n`` responses to one prompt).
            correct: this member's outcome.
            expected: the group size ``n`` (``actor_rollout_ref.rollout.n``). The first report of a
                group fixes it; a later report that states another size is logged as a mismatch.
            wait_s: the longest a wrong member waits for its siblings, in seconds.
            member: the member's index in its group (verl's ``session_id``); a member reported again
                replaces its earlier outcome instead of counting twice. None: counted as a new member.

        Returns:
            ``mixed`` when some member was correct (always, for a correct member), ``all_negative`` when
            ``expected`` distinct members reported and none was correct, ``incomplete`` when the wait
            ran out.
        """
        self._sweep(wait_s)
        group = self._groups.get(uid)
        if group is None:
            group = self._groups[uid] = _Group(expected=max(1, int(expected)))
        elif int(expected) != group.expected:
            self._log_size_mismatch(uid, group, int(expected))
        group.last_seen = time.monotonic()
        key = ("anonymous", next(self._anonymous)) if member is None else ("member", str(member))
        if key in group.outcomes:
            self.stats["duplicate_reports"] += 1
        group.outcomes[key] = bool(correct)
        if correct:
            self._settle(group, MIXED)
            return MIXED
        if group.state is None and len(group.outcomes) >= group.expected and not any(group.outcomes.values()):
            self._settle(group, ALL_NEGATIVE)
        if group.state is None:
            try:
                await asyncio.wait_for(group.settled.wait(), timeout=wait_s)
            except asyncio.TimeoutError:
                return INCOMPLETE
        return group.state or INCOMPLETE

    def pending_groups(self) -> int:
        """Groups not yet settled (for diagnostics and tests)."""
        return sum(1 for group in self._groups.values() if group.state is None)

    def tracked_groups(self) -> int:
        return len(self._groups)

    def _log_size_mismatch(self, uid: str, group: _Group, stated: int) -> None:
        self.stats["size_mismatches"] += 1
        if not group.size_mismatch_logged:
            group.size_mismatch_logged = True
            logger.warning(
                "sgpo rendezvous: group %s was opened with size %d but a member reports size %d; "
                "keeping %d (every reward worker must see the same actor_rollout_ref.rollout.n)",
                uid, group.expected, stated, group.expected,
            )

    @staticmethod
    def _settle(group: _Group, state: str) -> None:
        if group.state is None:
            group.state = state
            group.settled.set()

    def _sweep(self, wait_s: float) -> None:
        """Forget groups idle for longer than the retention window (amortised: at most once per bound)."""
        now = time.monotonic()
        if now - self._last_sweep < wait_s:
            return
        retention = SETTLED_RETENTION_BOUNDS * wait_s
        self._last_sweep = now
        stale = [uid for uid, group in self._groups.items() if now - group.last_seen > retention]
        for uid in stale:
            del self._groups[uid]


class GroupRendezvousActor:
    """Ray async-actor host of one :class:`GroupRendezvous`, shared by all reward workers of a job."""

    def __init__(self) -> None:
        self._rendezvous = GroupRendezvous()

    async def report(self, uid: str, correct: bool, expected: int, wait_s: float, member: Any = None) -> str:
        return await self._rendezvous.report(uid, correct, expected, wait_s, member)

    async def stats(self) -> dict[str, int]:
        return {"pending": self._rendezvous.pending_groups(), "tracked": self._rendezvous.tracked_groups(),
                **self._rendezvous.stats}


#: Concurrent ``report`` calls the actor serves; every waiting member holds one slot while it waits.
RENDEZVOUS_MAX_CONCURRENCY = 100_000


def get_group_rendezvous() -> Any:
    """The job's shared rendezvous actor (created by the first caller), or a local one outside Ray.

    Returns an object with an async ``report(uid, correct, expected, wait_s)``: the Ray actor handle's
    method is awaited through :func:`report_outcome`, which hides the difference.
    """
    import ray

    if not ray.is_initialized():
        return GroupRendezvous()
    actor_class = ray.remote(num_cpus=0, max_concurrency=RENDEZVOUS_MAX_CONCURRENCY)(GroupRendezvousActor)
    return actor_class.options(name=RENDEZVOUS_ACTOR_NAME, get_if_exists=True).remote()


async def report_outcome(
    rendezvous: Any, uid: str, correct: bool, expected: int, wait_s: float, member: Any = None
) -> str:
    """Await ``report`` on either a local :class:`GroupRendezvous` or the Ray actor handle."""
    if isinstance(rendezvous, GroupRendezvous):
        return await rendezvous.report(uid, correct, expected, wait_s, member)
    return await rendezvous.report.remote(uid, correct, expected, wait_s, member)
