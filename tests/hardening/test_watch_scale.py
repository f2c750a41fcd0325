"""The watch hub at scale (issue 23): adding or removing a watch costs the same however many
directories are watched.

Real files and the real watcher. The cost is counted, never timed: every ``RustNotify`` the hub
constructs is a real one wrapped to record how many paths it was asked to watch (each path is
one ``inotify_add_watch``; a watcher over every directory at every change is the quadratic
hub this replaced). Waits are on generations, outcomes and thread joins, never on sleeps.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from prometheus_client import CollectorRegistry
from watchfiles._rust_notify import RustNotify

import hotreload._watch
from hotreload import HotReloader
from hotreload._watch import _SHARD_CAPACITY, _STALE_MIN, WatchHub, hub_for
from hotreload.testing import write_atomic
from tests.hardening.conftest import SLOW_WAIT, WAIT, open_reloader
from tests.integration.conftest import Settings

DEBOUNCE_MS, STEP_MS = 50, 10  # HotReloader's defaults: the hub its reloaders share
SHARDS = len(_SHARD_CAPACITY)


@dataclass
class Builds:
    """Every watcher the hub constructed: the number of paths each was given."""

    sizes: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mark(self) -> tuple[int, int]:
        """(watchers built, paths watched by them) so far."""
        with self.lock:
            return len(self.sizes), sum(self.sizes)


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Builds:
    """The hub's `RustNotify`, counted: a real one, constructed with the same arguments."""
    seen = Builds()

    def counting(watch_paths: list[str], *args: Any, **kwargs: Any) -> RustNotify:
        with seen.lock:
            seen.sizes.append(len(watch_paths))
        return RustNotify(watch_paths, *args, **kwargs)

    monkeypatch.setattr(hotreload._watch, "RustNotify", counting)
    return seen


def make_configs(root: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        directory = root / f"d{i:03d}"
        directory.mkdir()
        path = directory / "config.yaml"
        path.write_text(f"model: m{i}\n")
        paths.append(path)
    return paths


async def open_all(
    stack: contextlib.AsyncExitStack,
    paths: list[Path],
    registry: CollectorRegistry,
    prefix: str = "r",
) -> list[HotReloader[Settings]]:
    """One reloader per path, started one after another (each with its watcher up)."""
    return [
        await stack.enter_async_context(open_reloader(path, registry, name=f"{prefix}{i:03d}"))
        for i, path in enumerate(paths)
    ]


async def join_threads(threads: list[threading.Thread]) -> None:
    """Wait (an event wait, off the loop) for watcher threads the hub told to stop."""
    for thread in threads:
        await anyio.to_thread.run_sync(thread.join, SLOW_WAIT)
        assert not thread.is_alive(), f"{thread.name} still running"


async def test_two_hundred_reloaders_cost_linear_builds_and_all_stay_watched(
    tmp_path: Path, registry: CollectorRegistry, builds: Builds
) -> None:
    """Started one after another, 200 reloaders in 200 directories: each start builds one
    small watcher (plus a merge now and then), so the paths watched over every build grow
    linearly, not as 200 watchers over 1..200 directories (~20,000 paths). Closing them all
    rebuilds a few watchers over the live directories only, not one per close."""
    n = 200
    paths = make_configs(tmp_path, n)
    roots = n + 1  # each directory, and their shared parent
    async with contextlib.AsyncExitStack() as stack:
        reloaders = await open_all(stack, paths, registry)
        built, watched_paths = builds.mark()
        # A root is in at most 16 builds of the first shard (one per root placed while it is
        # there), then 128 / 16 = 8 of the second (one per merge into it) and 1,024 / 128 = 8
        # of the third: 32 in all, whatever n (below the unbounded shard). Measured: ~12.
        # The old hub, one watcher over every directory per start: ~n²/2 = 20,000 paths.
        assert watched_paths <= 32 * roots, (built, watched_paths)
        assert built <= n + n // 8, built  # one per start, a merge every 16 starts
        hub = hub_for(DEBOUNCE_MS, STEP_MS)
        assert hub.builds == built
        assert hub.watched == frozenset({str(tmp_path), *(str(p.parent) for p in paths)})

        # Every reloader is still watched: the first one started (its root merged along the
        # shards since) and the last one (still in the first shard) both see a new version.
        first, last = reloaders[0], reloaders[-1]
        write_atomic(paths[0], "model: first-v2\n")
        write_atomic(paths[-1], "model: last-v2\n")
        assert (await first.wait_for_generation(2, timeout=WAIT)).config.model == "first-v2"
        assert (await last.wait_for_generation(2, timeout=WAIT)).config.model == "last-v2"
        assert [r.snapshot.generation for r in reloaders[1:-1]] == [1] * (n - 2)
    total_built, total_paths = builds.mark()
    closing_built, closing_paths = total_built - built, total_paths - watched_paths
    # Removing a watch rebuilds nothing until stale directories outnumber live ones; then each
    # shard holding a stale one is rebuilt over its live ones: at most every shard, about
    # log2(n) times (the live set halves in between), over fewer paths each time.
    assert closing_built <= SHARDS * math.ceil(math.log2(roots)), closing_built
    assert closing_paths <= 2 * roots, closing_paths
    assert hub.live_watchers() == []


def stale_closes_to_compact(live_roots: int) -> int:
    """How many of ``live_roots`` roots must become stale before the hub drops them: stale
    roots outnumber the live ones, and ``_STALE_MIN``."""
    k = 0
    while k <= max(live_roots - k, _STALE_MIN):
        k += 1
    return k


def holders(hub: WatchHub, directories: set[str]) -> list[threading.Thread]:
    """Threads of the live watchers that watch any of ``directories``."""
    return [w.thread for w in hub.live_watchers() if not w.roots.isdisjoint(directories)]


async def test_replaced_directory_still_delivers_and_unwanted_ones_are_dropped(
    tmp_path: Path, registry: CollectorRegistry, builds: Builds
) -> None:
    """A directory in a merged shard, deleted and recreated at once (the running watcher holds
    a watch on the deleted inode), delivers later edits; directories nobody wants any more
    stay watched only until they outnumber the live ones, then stop being watched."""
    n = 40
    paths = make_configs(tmp_path, n)
    to_close = stale_closes_to_compact(n + 1)  # the directories and their parent: 21
    async with contextlib.AsyncExitStack() as staying:
        closing = contextlib.AsyncExitStack()
        async with closing:
            await open_all(closing, paths[:to_close], registry, prefix="closed")
            kept = await open_all(staying, paths[to_close:], registry, prefix="kept")
            hub = hub_for(DEBOUNCE_MS, STEP_MS)
            assert hub.watched == frozenset({str(tmp_path), *(str(p.parent) for p in paths)})
        gone = {str(p.parent) for p in paths[:to_close]}
        assert gone.isdisjoint(hub.watched)
        # The last close made stale directories outnumber live ones: the shards holding them
        # are rebuilt without them, and their old watchers stop once the new ones are up.
        await join_threads(holders(hub, gone))
        assert gone.isdisjoint(hub.watching)
        assert hub.watching == hub.watched

        # The first kept directory is out of the first shard by now (merged along): replace
        # it at once, before the hub hears of the deletion, so the watcher holding it holds a
        # watch on a deleted inode.
        r, target = kept[0], paths[to_close]
        assert hub._placed[str(target.parent)][0] > 0  # not in the first shard
        shutil.rmtree(target.parent)
        target.parent.mkdir()
        write_atomic(target, "model: recreated\n")
        snap = await r.wait_for_generation(2, timeout=SLOW_WAIT)
        assert snap.config.model == "recreated"
        write_atomic(target, "model: recreated-v2\n")
        snap = await r.wait_for_generation(3, timeout=SLOW_WAIT)
        assert snap.config.model == "recreated-v2"
        # Its shard-mates and the newest reloader still deliver too.
        for i in (1, len(kept) - 1):
            write_atomic(paths[to_close + i], f"model: kept-{i}\n")
            snap = await kept[i].wait_for_generation(2, timeout=WAIT)
            assert snap.config.model == f"kept-{i}"
