"""The group rendezvous that lets only all-negative groups reach the judge (reward/rendezvous.py)."""

from __future__ import annotations

import asyncio
import time

from reward.rendezvous import (
    ALL_NEGATIVE,
    INCOMPLETE,
    MIXED,
    GroupRendezvous,
    GroupRendezvousActor,
    get_group_rendezvous,
    report_outcome,
)


def run(coroutine):
    return asyncio.run(coroutine)


def test_all_wrong_members_learn_all_negative_when_the_last_arrives():
    async def scenario():
        rendezvous = GroupRendezvous()
        first = asyncio.create_task(rendezvous.report("g", False, expected=3, wait_s=30))
        second = asyncio.create_task(rendezvous.report("g", False, expected=3, wait_s=30))
        await asyncio.sleep(0.05)
        assert not first.done() and not second.done()  # they wait for the third member
        third = await rendezvous.report("g", False, expected=3, wait_s=30)
        return [await first, await second, third], rendezvous.pending_groups()

    states, pending = run(scenario())
    assert states == [ALL_NEGATIVE] * 3
    assert pending == 0


def test_a_correct_member_releases_waiting_wrong_members_at_once():
    async def scenario():
        rendezvous = GroupRendezvous()
        waiting = asyncio.create_task(rendezvous.report("g", False, expected=4, wait_s=30))
        await asyncio.sleep(0.05)
        start = time.monotonic()
        correct_state = await rendezvous.report("g", True, expected=4, wait_s=30)
        wrong_state = await waiting
        late_state = await rendezvous.report("g", False, expected=4, wait_s=30)  # a straggler after settling
        return correct_state, wrong_state, late_state, time.monotonic() - start

    correct_state, wrong_state, late_state, elapsed = run(scenario())
    assert (correct_state, wrong_state, late_state) == (MIXED, MIXED, MIXED)
    assert elapsed < 1.0


def test_a_group_that_never_completes_times_out_within_the_bound():
    async def scenario():
        rendezvous = GroupRendezvous()
        start = time.monotonic()
        states = await asyncio.gather(*(rendezvous.report("g", False, expected=4, wait_s=0.3) for _ in range(3)))
        return states, time.monotonic() - start

    states, elapsed = run(scenario())
    assert states == [INCOMPLETE] * 3
    assert 0.3 <= elapsed < 2.0


def test_groups_are_independent_and_forgotten_after_retention():
    async def scenario():
        rendezvous = GroupRendezvous()
        assert await rendezvous.report("a", True, expected=2, wait_s=0.05) == MIXED
        b = asyncio.create_task(rendezvous.report("b", False, expected=2, wait_s=5))
        assert await rendezvous.report("b", False, expected=2, wait_s=5) == ALL_NEGATIVE
        assert await b == ALL_NEGATIVE
        tracked_before = rendezvous.tracked_groups()
        await asyncio.sleep(0.3)  # > retention (4 bounds of 0.05 s)
        await rendezvous.report("c", True, expected=2, wait_s=0.05)  # triggers the sweep
        return tracked_before, rendezvous.tracked_groups()

    tracked_before, tracked_after = run(scenario())
    assert tracked_before == 2
    assert tracked_after == 1  # only "c" is left


def test_a_member_reported_twice_is_counted_once():
    # A retried wrong member (same session_id) reported twice must not settle a group of four as
    # all-negative before its correct member arrives.
    async def scenario():
        rendezvous = GroupRendezvous()
        waiting = [
            asyncio.create_task(rendezvous.report("g", False, expected=4, wait_s=30, member=m)) for m in (0, 1, 1, 2)
        ]
        await asyncio.sleep(0.05)
        premature = [task for task in waiting if task.done()]
        correct_state = await rendezvous.report("g", True, expected=4, wait_s=30, member=3)
        return premature, correct_state, await asyncio.gather(*waiting), rendezvous.stats

    premature, correct_state, states, stats = run(scenario())
    assert premature == [], "the group settled before its fourth distinct member reported"
    assert correct_state == MIXED and states == [MIXED] * 4
    assert stats["duplicate_reports"] == 1


def test_four_distinct_members_settle_all_negative_even_with_a_duplicate():
    async def scenario():
        rendezvous = GroupRendezvous()
        tasks = [asyncio.create_task(rendezvous.report("g", False, expected=4, wait_s=30, member=m))
                 for m in (0, 0, 1, 2, 3)]
        return await asyncio.gather(*tasks)

    assert run(scenario()) == [ALL_NEGATIVE] * 5


def test_a_retry_that_turned_correct_settles_the_group_mixed():
    async def scenario():
        rendezvous = GroupRendezvous()
        first = asyncio.create_task(rendezvous.report("g", False, expected=2, wait_s=30, member=0))
        await asyncio.sleep(0.05)
        retried = await rendezvous.report("g", True, expected=2, wait_s=30, member=0)
        return await first, retried

    assert run(scenario()) == (MIXED, MIXED)


def test_a_size_mismatch_is_logged_and_the_first_size_kept(caplog):
    async def scenario():
        rendezvous = GroupRendezvous()
        first = asyncio.create_task(rendezvous.report("g", False, expected=2, wait_s=30, member=0))
        await asyncio.sleep(0.05)
        second = await rendezvous.report("g", False, expected=8, wait_s=30, member=1)
        return await first, second, rendezvous.stats

    with caplog.at_level("WARNING", logger="sgpo.reward"):
        first, second, stats = run(scenario())
    assert (first, second) == (ALL_NEGATIVE, ALL_NEGATIVE)  # size 2 kept: two members complete it
    assert stats["size_mismatches"] == 1
    assert any("opened with size 2" in r.getMessage() and "size 8" in r.getMessage() for r in caplog.records)


def test_a_group_of_one_wrong_member_is_all_negative_at_once():
    async def scenario():
        rendezvous = GroupRendezvous()
        start = time.monotonic()
        state = await rendezvous.report("solo", False, expected=1, wait_s=5)
        return state, time.monotonic() - start

    state, elapsed = run(scenario())
    assert state == ALL_NEGATIVE and elapsed < 1.0


def test_waiting_groups_are_counted_as_pending():
    async def scenario():
        rendezvous = GroupRendezvous()
        waiting = asyncio.create_task(rendezvous.report("g", False, expected=2, wait_s=30))
        await asyncio.sleep(0.05)
        pending = rendezvous.pending_groups()
        await rendezvous.report("g", True, expected=2, wait_s=30)
        await waiting
        return pending, rendezvous.pending_groups()

    assert run(scenario()) == (1, 0)


def test_duplicates_and_size_mismatches_are_counted_each_time_and_logged_once(caplog):
    async def scenario():
        rendezvous = GroupRendezvous()
        tasks = [asyncio.create_task(rendezvous.report("g", False, expected=size, wait_s=30, member=member))
                 for member, size in ((0, 3), (0, 3), (0, 5), (1, 6))]
        await asyncio.sleep(0.05)
        await rendezvous.report("g", True, expected=3, wait_s=30, member=2)
        await asyncio.gather(*tasks)
        return rendezvous.stats

    with caplog.at_level("WARNING", logger="sgpo.reward"):
        stats = run(scenario())
    assert stats == {"duplicate_reports": 2, "size_mismatches": 2}
    warnings = [r.getMessage() for r in caplog.records if "rendezvous" in r.getMessage()]
    assert warnings == [
        "sgpo rendezvous: group g was opened with size 3 but a member reports size 5; keeping 3 "
        "(every reward worker must see the same actor_rollout_ref.rollout.n)"
    ]


def test_a_sweep_keeps_recently_seen_groups_and_later_reports_still_work():
    async def scenario():
        rendezvous = GroupRendezvous()
        await rendezvous.report("recent", True, expected=2, wait_s=0.1)
        await asyncio.sleep(0.15)  # past one bound (a sweep runs) but inside the retention of 4 bounds
        await rendezvous.report("next", True, expected=2, wait_s=0.1)
        kept = rendezvous.tracked_groups()
        await asyncio.sleep(0.15)
        await rendezvous.report("after", True, expected=2, wait_s=0.1)  # a second sweep
        return kept, rendezvous.tracked_groups()

    kept, later = run(scenario())
    assert kept == 2  # "recent" was seen 0.15 s ago: within retention, kept
    assert later == 3


# --------------------------------------------------------------------------------------------------
# The Ray host and the helpers the reward manager calls (get_group_rendezvous, report_outcome)
# --------------------------------------------------------------------------------------------------


def test_the_actor_class_forwards_every_argument_and_reports_the_rendezvous_counts():
    """The class Ray hosts, called directly: the member index and group size reach the rendezvous (a
    duplicate is counted, a size mismatch is counted) and ``stats`` reports pending and tracked groups."""

    async def scenario():
        actor = GroupRendezvousActor()
        first = asyncio.create_task(actor.report("g", False, 2, 30, member=0))
        await asyncio.sleep(0.05)
        waiting = await actor.stats()
        again = asyncio.create_task(actor.report("g", False, 2, 30, member=0))  # a retry of member 0
        await asyncio.sleep(0.05)
        after_retry = await actor.stats()
        last = await actor.report("g", False, 3, 30, member=1)  # states another size: counted, first kept
        settled = await actor.stats()
        return waiting, after_retry, settled, [await first, await again, last]

    waiting, after_retry, settled, states = run(scenario())
    assert waiting == {"pending": 1, "tracked": 1, "duplicate_reports": 0, "size_mismatches": 0}
    assert after_retry == {"pending": 1, "tracked": 1, "duplicate_reports": 1, "size_mismatches": 0}
    assert settled == {"pending": 0, "tracked": 1, "duplicate_reports": 1, "size_mismatches": 1}
    assert states == [ALL_NEGATIVE] * 3


def test_the_actor_class_keeps_groups_apart_and_settles_a_correct_member_at_once():
    """The uid and the outcome reach the rendezvous: a correct member of another group returns ``mixed``
    at once and leaves a waiting group open."""

    async def scenario():
        actor = GroupRendezvousActor()
        waiting = asyncio.create_task(actor.report("g", False, 2, 30, member=0))
        await asyncio.sleep(0.05)
        other = await asyncio.wait_for(actor.report("h", True, 2, 30, member=0), timeout=5)
        still_open = (await actor.stats())["pending"]
        last = await actor.report("g", False, 2, 30, member=1)
        return other, still_open, [await waiting, last]

    other, still_open, states = run(scenario())
    assert other == MIXED
    assert still_open == 1
    assert states == [ALL_NEGATIVE, ALL_NEGATIVE]


def test_report_outcome_keeps_groups_apart():
    async def scenario():
        rendezvous = GroupRendezvous()
        waiting = asyncio.create_task(report_outcome(rendezvous, "g", False, 2, 30, member=0))
        await asyncio.sleep(0.05)
        other = await asyncio.wait_for(report_outcome(rendezvous, "h", True, 2, 30, member=0), timeout=5)
        last = await report_outcome(rendezvous, "g", False, 2, 30, member=1)
        return other, [await waiting, last]

    other, states = run(scenario())
    assert (other, states) == (MIXED, [ALL_NEGATIVE, ALL_NEGATIVE])


def test_outside_ray_each_caller_gets_its_own_local_rendezvous():
    import ray

    assert not ray.is_initialized()
    first, second = get_group_rendezvous(), get_group_rendezvous()
    assert isinstance(first, GroupRendezvous) and isinstance(second, GroupRendezvous)
    assert first is not second


def test_report_outcome_passes_the_member_index_to_a_local_rendezvous():
    """Two reports of member 0 in a group of two are one member: the group stays open until member 1."""

    async def scenario():
        rendezvous = GroupRendezvous()
        first = asyncio.create_task(report_outcome(rendezvous, "g", False, 2, 30, member=0))
        retry = asyncio.create_task(report_outcome(rendezvous, "g", False, 2, 30, member=0))
        await asyncio.sleep(0.05)
        still_open = rendezvous.pending_groups()
        last = await report_outcome(rendezvous, "g", False, 2, 30, member=1)
        return still_open, [await first, await retry, last]

    still_open, states = run(scenario())
    assert still_open == 1
    assert states == [ALL_NEGATIVE] * 3


def test_report_outcome_with_a_mixed_group_returns_at_once_for_the_correct_member():
    async def scenario():
        rendezvous = GroupRendezvous()
        return await asyncio.wait_for(report_outcome(rendezvous, "g", True, 4, 30, member=2), timeout=5)

    assert run(scenario()) == MIXED


def test_in_a_ray_job_every_reward_worker_shares_one_named_actor():
    """With Ray started, two callers (two reward workers) get the same named actor: members reported
    through either handle settle one group, a retried member is counted once, more members than a Ray
    async actor's default concurrency (1,000) wait at once (a 7B launch script's batch is 128 × 8 = 1,024
    responses), and the actor is placed on a node without CPUs. Not marked slow on purpose: a local
    Ray starts in about 5 s here, and this is the only fast test of the path a training job takes
    (mutation testing runs the fast tests only)."""
    import ray

    # A node without CPUs, like a cluster's head node started with --num-cpus=0: Ray's default actor
    # (one CPU for scheduling) can never be placed there; the rendezvous asks for none.
    ray.init(num_cpus=0, include_dashboard=False, log_to_driver=False)
    try:
        first, second = get_group_rendezvous(), get_group_rendezvous()
        assert not isinstance(first, GroupRendezvous)
        assert ray.get(first.stats.remote(), timeout=30)["tracked"] == 0
        size = 1_100

        async def scenario():
            handles = [first, second]
            waiting = [asyncio.create_task(report_outcome(handles[i % 2], "g", False, size, 120, member=i))
                       for i in range(size - 1)]
            retry = asyncio.create_task(report_outcome(first, "g", False, size, 120, member=0))
            await asyncio.sleep(1.0)
            last = await report_outcome(second, "g", False, size, 120, member=size - 1)
            mixed = await report_outcome(first, "h", True, size, 120, member=0)
            return [await task for task in waiting] + [await retry, last], mixed

        states, mixed = asyncio.run(asyncio.wait_for(scenario(), timeout=150))
        assert states == [ALL_NEGATIVE] * (size + 1)
        assert mixed == MIXED
        stats = ray.get(first.stats.remote(), timeout=30)
        assert stats == {"pending": 0, "tracked": 2, "duplicate_reports": 1, "size_mismatches": 0}
    finally:
        ray.shutdown()
