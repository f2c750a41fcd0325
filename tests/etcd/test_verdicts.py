"""The verdict store against real etcd: first writer wins, get/watch, resume after a restart."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import structlog

from hotreload._verdicts import Outcome, Verdict, VerdictError, VerdictFormatError, VerdictStore

from .servers import Admin, Gate, Member, free_port

WAIT = 10.0
_names = itertools.count()


def store(*endpoints: str, name: str | None = None, **options: Any) -> VerdictStore:
    """A store on its own config name (the package's etcd is shared), retrying quickly."""
    return VerdictStore(
        name or f"cfg{next(_names)}",
        prefix="/tests",
        endpoints=endpoints,
        max_backoff=0.2,
        **options,
    )


class Seen:
    """A running ``store.watch()``: the verdicts it delivered, awaited one by one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Verdict] = asyncio.Queue()

    async def next(self) -> Verdict:
        return await asyncio.wait_for(self.queue.get(), WAIT)

    def pending(self) -> list[Verdict]:
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out


@asynccontextmanager
async def watching(s: VerdictStore, start: int | None = None) -> AsyncIterator[Seen]:
    seen = Seen()
    task = asyncio.create_task(s.watch(seen.queue.put_nowait, start))
    try:
        yield seen
    finally:
        assert not task.done(), "watch() returned or raised on its own"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_first_writer_wins_among_concurrent_writers(etcd: Member) -> None:
    s = store(etcd.endpoint)
    outcomes: tuple[Outcome, Outcome] = ("good", "bad")
    results = await asyncio.gather(
        *(s.write("h1", outcomes[i % 2], [f"from {i}"], by=f"pod-{i}") for i in range(10))
    )
    winner = results[0]
    assert all(r == winner for r in results)  # every writer is told the one verdict in force
    i = int(winner.by.removeprefix("pod-"))
    assert (winner.verdict, winner.evidence) == (outcomes[i % 2], (f"from {i}",))
    assert await s.get("h1") == winner
    assert await store(etcd.endpoint, name=s.name).get("h1") == winner


async def test_get_and_snapshot(etcd: Member) -> None:
    s = store(etcd.endpoint)
    assert await s.get("nothing") is None
    good = await s.write("a", "good", by="canary-1")
    bad = await s.write("b", "bad", [{"dependency": "prometheus", "failures": 3}], by="canary-2")
    assert bad.evidence == ({"dependency": "prometheus", "failures": 3},)
    assert (await s.get("a"), await s.get("b")) == (good, bad)
    verdicts, revision = await s.snapshot()
    assert verdicts == {"a": good, "b": bad}
    assert revision >= bad.revision


async def test_watch_delivers_new_verdicts_from_a_revision(etcd: Member) -> None:
    s = store(etcd.endpoint)
    before = await s.write("old", "good", by="x")
    _, revision = await s.snapshot()
    missed = await s.write("between", "bad", by="x")  # after the snapshot, before the watch
    async with watching(s, revision + 1) as seen:
        assert await seen.next() == missed
        later = await s.write("later", "good", by="y")
        assert await seen.next() == later
        assert await s.write("later", "bad", by="z") == later  # refused: nothing new
        await s.write("last", "good", by="y")
        assert (await seen.next()).config_hash == "last"
        assert before not in seen.pending()


async def test_verdicts_iterator(etcd: Member) -> None:
    s = store(etcd.endpoint)
    _, revision = await s.snapshot()
    iterator = s.verdicts(revision + 1)
    written = [await s.write(f"h{n}", "good", by="c") for n in range(3)]
    got = [await asyncio.wait_for(anext(iterator), WAIT) for _ in range(3)]
    await iterator.aclose()  # type: ignore[attr-defined]
    assert got == written


async def test_a_value_that_is_not_a_verdict_is_never_one(etcd: Member, admin: Admin) -> None:
    s = store(etcd.endpoint)
    await admin.put(s.key("junk").decode(), "not json")
    with pytest.raises(VerdictFormatError, match="junk"):
        await s.get("junk")
    _, revision = await s.snapshot()
    async with watching(s, revision + 1) as seen:
        await admin.put(s.key("junk2").decode(), '{"verdict": "maybe", "by": "x", "at": "t"}')
        real = await s.write("real", "good", by="c")
        assert await seen.next() == real  # the junk was skipped, not delivered


async def test_watch_resumes_after_etcd_restarts_without_losing_or_inventing(
    own_etcd: Member,
) -> None:
    """One verdict lands while the watcher is cut off, one after etcd's restart: both are
    delivered once, in order, and nothing else."""
    async with Gate(own_etcd.client_port) as gate:
        s = store(gate.endpoint)
        direct = store(own_etcd.endpoint, name=s.name)
        _, revision = await direct.snapshot()
        async with watching(s, revision + 1) as seen:
            first = await direct.write("seen", "good", by="c")
            assert await seen.next() == first
            gate.pause()
            unseen = await direct.write("unseen", "bad", by="c")
            gate.sever()
            own_etcd.kill()
            await own_etcd.restart()
            after = await direct.write("after-restart", "good", by="c")
            assert seen.pending() == []  # nothing while it was away
            gate.resume()
            assert await seen.next() == unseen
            assert await seen.next() == after
            marker = await direct.write("marker", "good", by="c")
            assert await seen.next() == marker  # and nothing in between
            assert seen.pending() == []


async def test_watch_keeps_retrying_while_etcd_is_down(own_etcd: Member) -> None:
    s = store(own_etcd.endpoint)
    _, revision = await s.snapshot()
    own_etcd.kill()
    with structlog.testing.capture_logs() as logs:
        async with watching(s, revision + 1) as seen:
            with pytest.raises(VerdictError, match="no etcd endpoint answered"):
                await s.write("h", "good", by="c")
            await own_etcd.restart()
            written = await s.write("h", "good", by="c")
            assert await seen.next() == written
    assert any(e["event"] == "verdicts_watch_lost" for e in logs)


async def test_compaction_catches_up_from_a_listing(etcd: Member, admin: Admin) -> None:
    async with Gate(etcd.client_port) as gate:
        s = store(gate.endpoint)
        direct = store(etcd.endpoint, name=s.name)
        old = await direct.write("old", "good", by="c")
        async with watching(s, old.revision + 1) as seen:
            first = await direct.write("first", "good", by="c")
            assert await seen.next() == first
            gate.pause()
            gate.sever()
            missed = [await direct.write(f"m{n}", "bad", by="c") for n in range(3)]
            await admin.compact(missed[-1].revision)
            gate.resume()
            assert [await seen.next() for _ in missed] == missed
            after = await direct.write("after", "good", by="c")
            assert await seen.next() == after
            assert seen.pending() == []


def test_options_are_checked_and_secrets_hidden() -> None:
    with pytest.raises(ValueError, match="config name"):
        VerdictStore("a/b")
    with pytest.raises(ValueError, match="config_hash"):
        VerdictStore("a").key("x/y")
    s = VerdictStore("a", user="u", password="hunter2-secret")  # noqa: S106
    assert "hunter2" not in repr(s)
    assert "hunter2" not in repr(vars(s))


async def test_bad_arguments_to_write(etcd: Member) -> None:
    s = store(etcd.endpoint)
    with pytest.raises(ValueError, match="'good' or 'bad'"):
        await s.write("h", "meh", by="c")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="by"):
        await s.write("h", "good", by="")
    assert await s.get("h") is None


async def test_unreachable_etcd_is_a_verdict_error() -> None:
    s = VerdictStore("a", endpoints=[f"127.0.0.1:{free_port()}"], timeout=1)
    with pytest.raises(VerdictError, match="no etcd endpoint answered"):
        await s.get("h")
