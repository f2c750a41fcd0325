"""Starts in a busy hub join the next watcher build (issue 23), and miss nothing meanwhile.

Once the hub holds `_BUSY` subscriptions, ``async with HotReloader(...)`` no longer waits for
a watcher of its own to be up: it joins the next build, so reloaders started one after another
share a few builds instead of one each. The promise that stays: a write made after ``async
with`` returned is never missed. Here watcher construction is held back (a real
``RustNotify``, built only once the test lets it), so the start provably returns before its
file is watched, and the write lands in that gap. Real files, the real watcher; waits are on
outcomes and events, never sleeps.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from watchfiles._rust_notify import RustNotify

import hotreload._watch
from hotreload import HotReloader
from hotreload._watch import _BUSY, _SHARD_CAPACITY, hub_for
from hotreload.testing import write_atomic
from tests.hardening.conftest import SLOW_WAIT, WAIT, watcher_up
from tests.hardening.test_watch_scale import make_configs, open_all
from tests.integration.conftest import Settings

DEBOUNCE_MS, STEP_MS = 50, 10  # HotReloader's defaults: the hub its reloaders share


class Gate:
    """The hub's `RustNotify`, built only while the gate is open; counts the builds."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.lock = threading.Lock()
        self.builds = 0

    def __call__(self, *args: Any, **kwargs: Any) -> RustNotify:
        with self.lock:
            self.builds += 1
        assert self.open.wait(SLOW_WAIT), "the test never opened the gate"
        return RustNotify(*args, **kwargs)

    @contextlib.contextmanager
    def closed(self) -> Iterator[None]:
        self.open.clear()
        try:
            yield
        finally:
            self.open.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    g = Gate()
    monkeypatch.setattr(hotreload._watch, "RustNotify", g)
    return g


def plain(path: Path, registry: CollectorRegistry, name: str) -> HotReloader[Settings]:
    """A reloader entered as an application would (no wait for its rescan), no safety poll."""
    return HotReloader(path, schema=Settings, name=name, registry=registry, poll_interval=0)


@pytest.mark.parametrize("how", ["atomic", "in_place"])
async def test_a_write_right_after_a_start_that_joined_a_build_is_not_missed(
    tmp_path: Path, registry: CollectorRegistry, gate: Gate, how: str
) -> None:
    """The hub is busy; the next start returns while the watcher that will cover its file is
    still being built. A write made then, before any inotify watch exists on its directory,
    is read by the re-check that follows the watcher coming up: the new version commits."""
    paths = make_configs(tmp_path, _BUSY + 1)
    async with contextlib.AsyncExitStack() as stack:
        await open_all(stack, paths[:_BUSY], registry)  # each waits for its watcher
        last = paths[-1]
        with gate.closed():
            r = await stack.enter_async_context(plain(last, registry, "joined"))
            attached = r._attached
            assert attached is not None
            # The start returned, and its file is not watched yet: the gap under test.
            assert not attached.ready.done()
            assert str(last.parent) not in hub_for(DEBOUNCE_MS, STEP_MS).watched
            if how == "atomic":
                write_atomic(last, "model: after-start\n")
            else:
                with open(last, "w") as f:
                    f.write("model: after-start\n")
                    f.flush()
                    os.fsync(f.fileno())
            assert r.config.model == f"m{_BUSY}"
        snapshot = await r.wait_for_generation(2, timeout=WAIT)
        assert snapshot.config.model == "after-start"
        assert attached.ready.done()
        # And from then on the watcher itself sees changes.
        write_atomic(last, "model: later\n")
        assert (await r.wait_for_generation(3, timeout=WAIT)).config.model == "later"


async def test_a_quiet_hub_start_still_returns_once_watched(
    tmp_path: Path, registry: CollectorRegistry, gate: Gate
) -> None:
    """Below `_BUSY` subscriptions the stronger promise holds: ``async with`` returns only
    once a running watcher covers the file."""
    (path,) = make_configs(tmp_path, 1)
    async with plain(path, registry, "quiet") as r:
        assert r._attached is not None
        assert r._attached.ready.done()
        assert str(path.parent) in hub_for(DEBOUNCE_MS, STEP_MS).watched


async def test_starts_one_after_another_in_a_busy_hub_share_builds(
    tmp_path: Path, registry: CollectorRegistry, gate: Gate
) -> None:
    """While builds are held back, 4 x `_BUSY` more reloaders start one after another: they
    pile into the builds already under way (a few: one more each time the first shard fills),
    not one build per start. Once the builds run, every one of them is watched and
    sees its own next write."""
    quiet = _BUSY
    busy = 4 * _BUSY
    paths = make_configs(tmp_path, quiet + busy)
    async with contextlib.AsyncExitStack() as stack:
        await open_all(stack, paths[:quiet], registry)
        before = gate.builds
        with gate.closed():
            joined = [
                await stack.enter_async_context(plain(p, registry, f"j{i:03d}"))
                for i, p in enumerate(paths[quiet:])
            ]
            during = gate.builds - before
        # Builds grow with the starts over the first shard's capacity, not with the starts:
        # each time the first shard fills, its roots (and its build in flight) move on to the
        # second, and one new build starts over the roots that come next; the second shard
        # builds once, the rest queue behind that build. Five here; the old hub, and this one
        # in a quiet hub, build once per start: 64.
        first = _SHARD_CAPACITY[0]
        assert first is not None
        assert during <= 1 + busy // first + 1, during
        for i, (r, path) in enumerate(zip(joined, paths[quiet:], strict=True)):
            await watcher_up(r)
            write_atomic(path, f"model: v2-{i}\n")
        for i, r in enumerate(joined):
            assert (await r.wait_for_generation(2, timeout=WAIT)).config.model == f"v2-{i}"
        hub = hub_for(DEBOUNCE_MS, STEP_MS)
        assert hub.watched >= {str(p.parent) for p in paths}
        # After the gate opened: the queued rebuilds, a few, not one per start.
        assert gate.builds - before <= 3 * len(_SHARD_CAPACITY), gate.builds - before
