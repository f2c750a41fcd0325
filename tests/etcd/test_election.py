"""The canary election against real etcd: one canary of N, take-over, etcd lost."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any

import pytest
import structlog

from hotreload._election import Election

from .servers import Admin, Gate, Member, b64

WAIT = 15.0
TTL = 2
_names = itertools.count()


class Fleet:
    """Contenders for one config name, and every change of their canary state, in order."""

    def __init__(self) -> None:
        self.name = f"cfg{next(_names)}"
        self.members: list[Election] = []
        self.timeline: list[tuple[str, bool]] = []

    def contender(self, identity: str, *endpoints: str, **options: Any) -> Election:
        def changed(canary: bool) -> None:
            self.timeline.append((identity, canary))

        election = Election(
            self.name,
            identity,
            prefix="/tests",
            ttl=TTL,
            on_change=changed,
            endpoints=endpoints,
            max_backoff=0.2,
            **options,
        )
        self.members.append(election)
        return election

    def canaries(self) -> list[str]:
        return [m.identity for m in self.members if m.is_canary]

    def never_two(self) -> None:
        """At no point of the timeline did two contenders claim canary at once."""
        claiming: set[str] = set()
        for identity, canary in self.timeline:
            if canary:
                claiming.add(identity)
                assert len(claiming) == 1, self.timeline
            else:
                claiming.discard(identity)


async def first_canary(*contenders: Election) -> Election:
    waits = {asyncio.ensure_future(c.wait_for(True)): c for c in contenders}
    try:
        done, _ = await asyncio.wait(waits, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
    assert done, "no contender became canary"
    return waits[done.pop()]


async def until(election: Election, predicate: Callable[[], bool]) -> None:
    await asyncio.wait_for(election.wait_until(predicate), WAIT)


@asynccontextmanager
async def started(*contenders: Election) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for contender in contenders:
            await stack.enter_async_context(contender)
        yield


@contextmanager
def spying(processor: Any) -> Iterator[None]:
    """structlog's events through ``processor`` only, while in the block."""
    previous = structlog.get_config()["processors"]
    structlog.configure(processors=[processor])
    try:
        yield
    finally:
        structlog.configure(processors=previous)


async def test_of_n_contenders_exactly_one_is_canary(etcd: Member) -> None:
    fleet = Fleet()
    contenders = [fleet.contender(f"pod-{i}", etcd.endpoint) for i in range(5)]
    async with started(*contenders):
        winner = await first_canary(*contenders)
        for c in contenders:  # every one learns who the canary is
            await until(c, lambda c=c: c.holder == winner.identity)  # type: ignore[misc]
        assert fleet.canaries() == [winner.identity]
    assert fleet.canaries() == []
    fleet.never_two()


async def test_the_lease_is_kept_alive_past_its_ttl(etcd: Member, admin: Admin) -> None:
    """Four refreshes a third of the TTL apart: longer than the TTL, and still the canary."""
    fleet = Fleet()
    contender = fleet.contender("steady", etcd.endpoint)
    refreshed = 0
    four = asyncio.Event()

    def spy(_: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        nonlocal refreshed
        if event.get("event") == "canary_lease_refreshed" and contender.is_canary:
            refreshed += 1
            if refreshed == 4:
                four.set()
        raise structlog.DropEvent

    with spying(spy):
        async with started(contender):
            await asyncio.wait_for(contender.wait_for(True), WAIT)
            await asyncio.wait_for(four.wait(), WAIT)
            assert contender.is_canary
            reply = await admin.call("/v3/kv/range", {"key": b64(contender.key)})
            assert int(reply["kvs"][0]["lease"]) == contender._lease
    assert fleet.timeline == [("steady", True), ("steady", False)]


async def test_closing_the_canary_hands_over(etcd: Member, admin: Admin) -> None:
    fleet = Fleet()
    contenders = [fleet.contender(f"pod-{i}", etcd.endpoint) for i in range(3)]
    async with started(*contenders):
        winner = await first_canary(*contenders)
        lease = winner._lease
        await winner.close()  # resigns: revokes its lease, the key goes
        assert not winner.is_canary
        reply = await admin.call("/v3/lease/timetolive", {"ID": str(lease)})
        assert int(reply["TTL"]) == -1  # gone now, not at the end of its TTL
        rest = [c for c in contenders if c is not winner]
        successor = await first_canary(*rest)
        for c in rest:
            await until(c, lambda c=c: c.holder == successor.identity)  # type: ignore[misc]
        assert fleet.canaries() == [successor.identity]
        assert winner.holder is None
    fleet.never_two()


async def test_a_revoked_lease_ends_the_canary_and_another_is_elected(
    etcd: Member, admin: Admin
) -> None:
    fleet = Fleet()
    contenders = [fleet.contender(f"pod-{i}", etcd.endpoint) for i in range(3)]
    async with started(*contenders):
        winner = await first_canary(*contenders)
        lease = winner._lease
        await admin.call("/v3/lease/revoke", {"ID": str(lease)})
        await asyncio.wait_for(winner.wait_for(False), WAIT)
        again = await first_canary(*contenders)  # may be any, the old one on a new lease
        assert again._lease != lease
        for c in contenders:
            await until(c, lambda c=c: c.holder == again.identity)  # type: ignore[misc]
        assert fleet.canaries() == [again.identity]
    fleet.never_two()


async def test_a_contender_that_loses_etcd_stops_claiming_before_another_takes_over(
    etcd: Member,
) -> None:
    fleet = Fleet()
    async with Gate(etcd.client_port) as gate:
        cut = fleet.contender("cut-off", gate.endpoint, timeout=1.0)
        other = fleet.contender("other", etcd.endpoint)
        async with started(cut):
            await asyncio.wait_for(cut.wait_for(True), WAIT)
            async with started(other):
                await until(other, lambda: other.holder == "cut-off")
                gate.pause()  # cut-off's keep-alives go unanswered from here on
                await asyncio.wait_for(cut.wait_for(False), WAIT)
                await asyncio.wait_for(other.wait_for(True), WAIT)  # once the lease expired
                assert not cut.is_canary
                gate.resume()
                await until(cut, lambda: cut.holder == "other")
                assert fleet.canaries() == ["other"]
    assert fleet.timeline[:3] == [("cut-off", True), ("cut-off", False), ("other", True)]
    fleet.never_two()


async def test_a_contender_without_etcd_never_claims(own_etcd: Member) -> None:
    fleet = Fleet()
    own_etcd.kill()
    contender = fleet.contender("lonely", own_etcd.endpoint, timeout=1.0)
    lost = asyncio.Event()

    def spy(_: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        if event.get("event") == "canary_session_lost":
            lost.set()
        raise structlog.DropEvent

    with spying(spy):
        async with started(contender):
            await asyncio.wait_for(lost.wait(), WAIT)  # it tried, and failed
            assert not contender.is_canary
            await own_etcd.restart()
            await asyncio.wait_for(contender.wait_for(True), WAIT)
    assert fleet.timeline == [("lonely", True), ("lonely", False)]


def test_options_are_checked_and_secrets_hidden() -> None:
    with pytest.raises(ValueError, match="ttl"):
        Election("a", "me", ttl=0)
    with pytest.raises(ValueError, match="identity"):
        Election("a", "")
    with pytest.raises(ValueError, match="config name"):
        Election("a/b", "me")
    e = Election("a", "me", user="u", password="hunter2-secret")  # noqa: S106
    assert e.key == b"/hotreload/a/canary"
    assert "hunter2" not in repr(e)
    assert "hunter2" not in repr(vars(e))
