"""The group rendezvous that lets only all-negative groups reach the judge (reward/rendezvous.py)."""

from __future__ import annotations

import asyncio
import time

from reward.rendezvous import ALL_NEGATIVE, INCOMPLETE, MIXED, GroupRendezvous


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
