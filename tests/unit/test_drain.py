"""`DrainGate` on its own: sessions from other threads, the wake-up when the last one ends, the
timer that bounds the wait, and the count of changes held (a failure streak's mark). A real
loop; the decision itself is `_decide`'s, tested exhaustively in test_decide.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from hotreload._decide import Gate
from hotreload._drain import DrainGate


class Wakes:
    """The worker's side: what the gate asked it to look at again, as it arrives."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.arrived = asyncio.Event()

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)
        self.arrived.set()


async def test_the_last_session_out_with_a_change_pending_wakes_the_worker() -> None:
    wakes = Wakes()
    gate: DrainGate[str] = DrainGate(3600.0, wakes)
    assert gate.open("a")
    assert not gate.open("a")  # idempotent
    assert gate.open("b")
    gate.hold("v2", "h2")
    assert gate.close("a")
    assert wakes.reasons == []  # "b" is still open
    assert not gate.close("a")
    assert gate.close("b")
    assert wakes.reasons == ["session_end"]
    assert gate.sessions == 0
    assert gate.take() is not None


async def test_the_last_session_out_with_nothing_pending_wakes_no_one() -> None:
    wakes = Wakes()
    gate: DrainGate[str] = DrainGate(3600.0, wakes)
    gate.open("a")
    assert gate.close("a")
    assert not gate.close("never-opened")
    assert wakes.reasons == []


async def test_sessions_may_come_and_go_on_other_threads() -> None:
    wakes = Wakes()
    gate: DrainGate[int] = DrainGate(3600.0, wakes)

    def churn(base: int) -> None:
        for i in range(500):
            assert gate.open(base + i)
        for i in range(500):
            assert gate.close(base + i)

    threads = [threading.Thread(target=churn, args=(n * 1000,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gate.sessions == 0


async def test_the_wait_running_out_releases_the_change() -> None:
    wakes = Wakes()
    gate: DrainGate[str] = DrainGate(0.01, wakes)
    gate.open("stuck")
    gate.hold("v2", "h2")
    await asyncio.wait_for(wakes.arrived.wait(), 5.0)
    assert wakes.reasons == ["drain_timeout"]
    assert gate.due
    assert not gate.holding
    pending = gate.take()
    assert pending is not None
    assert pending.change == "v2"


async def test_one_timer_from_the_first_change_held_cancelled_by_take() -> None:
    wakes = Wakes()
    gate: DrainGate[str] = DrainGate(3600.0, wakes)
    gate.open("s")
    gate.hold("v2", "h2")
    timer = gate._timer
    assert timer is not None
    gate.hold("v3", "h3")  # replaces the change, keeps the wait (and the timer) of the first
    assert gate._timer is timer
    assert not timer.cancelled()
    assert gate.take() is not None
    assert timer.cancelled()
    assert gate._timer is None
    gate.hold("v4", "h4")  # a new wait: a new timer
    assert gate._timer is not None
    assert gate._timer is not timer
    gate.take()


def plain_gate() -> Gate[str]:
    return Gate(30.0, wall=lambda: 1.7e9)


def drain_gate() -> Gate[str]:
    gate: DrainGate[str] = DrainGate(30.0, lambda _: None)
    gate._wall = lambda: 1.7e9
    return gate


@pytest.mark.parametrize("make", [plain_gate, drain_gate])
async def test_every_change_held_is_numbered_in_order(make: Callable[[], Gate[str]]) -> None:
    """``pending_seq`` counts the changes ever held; a failure streak compares it with its
    mark, so it must only ever go up, by one per change."""
    gate = make()
    assert gate.pending_seq == 0
    assert gate.take() is None  # nothing held: nothing to take, no timer to cancel
    first = gate.hold("v1", "h1")
    assert (first.seq, first.change, first.config_hash, first.since_unix) == (1, "v1", "h1", 1.7e9)
    second = gate.hold("v2", "h2")
    assert (second.seq, second.change, second.config_hash) == (2, "v2", "h2")
    assert (second.since, second.since_unix) == (first.since, first.since_unix)
    assert gate.pending_seq == 2
    gate.take()
    assert gate.pending_seq == 2  # taking a change does not un-count it
    assert gate.hold("v3", "h3").seq == 3
    gate.take()
