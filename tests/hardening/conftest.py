"""Hardening fixtures: a reloader on a real file with the real watcher, and the instruments
that turn "memory bounded" and "the loop never blocked" into assertions.

The bounds are generous on purpose: they are correctness checks (a bomb that expands, a parse
that holds the loop for seconds), not performance assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from hotreload import HotReloader, ReloadOutcome
from tests.integration.conftest import Settings

WAIT = 5.0
#: Directory removal and recreation needs a watcher rebuild (or two): allow more.
SLOW_WAIT = 10.0
#: Generous bounds: a correctness check, not a benchmark.
MAX_PEAK_BYTES = 50 * 1024 * 1024
MAX_LOOP_LAG = 0.5
FAILURES = "hotreload_config_reload_failures_total"


async def watcher_up(r: HotReloader[Any]) -> None:
    """Return once the watcher covering ``r`` runs (its first ``rescan`` outcome)."""
    last = r.last_outcome
    if last is not None and last.trigger == "rescan":
        return
    await r.wait_for_outcome(lambda o: o.trigger == "rescan", timeout=WAIT)


@contextlib.asynccontextmanager
async def open_reloader(
    path: Path, registry: CollectorRegistry, name: str = "hard", **options: object
) -> AsyncIterator[HotReloader[Settings]]:
    """A reloader without the safety poll (unless asked), with its watcher already up."""
    options.setdefault("poll_interval", 0)
    async with HotReloader(
        path,
        schema=Settings,
        name=name,
        registry=registry,
        **options,  # type: ignore[arg-type]
    ) as r:
        await watcher_up(r)
        yield r


async def next_commit(r: HotReloader[Any], timeout: float = WAIT) -> ReloadOutcome:
    """The next applied outcome (call right after making the change: nothing yields before)."""
    return await r.wait_for_outcome(lambda o: o.applied, timeout=timeout)


def failures_by_reason(registry: CollectorRegistry, config: str) -> dict[str, float]:
    """Every ``reason`` of the failure counter for one reloader, with its value."""
    return {
        s.labels["reason"]: s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == FAILURES and s.labels.get("config") == config
    }


@dataclass
class LoopLag:
    """The longest the event loop was late for a 5 ms tick while the block ran."""

    worst: float = 0.0


@contextlib.asynccontextmanager
async def loop_lag() -> AsyncIterator[LoopLag]:
    """Measure how long the loop stays blocked: a ticker task asks to run every 5 ms and
    records how late it woke. A parse that held the loop would show up as one long gap."""
    lag = LoopLag()
    interval = 0.005

    async def tick() -> None:
        while True:
            expected = time.perf_counter() + interval
            await asyncio.sleep(interval)  # sleep-ok: the instrument itself, not a wait
            lag.worst = max(lag.worst, time.perf_counter() - expected)

    task = asyncio.create_task(tick(), name="loop-lag-ticker")
    await asyncio.sleep(0)  # sleep-ok: let the ticker start
    try:
        yield lag
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class Peak:
    """Peak Python heap growth (bytes) seen by tracemalloc while the block ran."""

    bytes: int = 0


@contextlib.contextmanager
def peak_memory() -> Iterator[Peak]:
    """tracemalloc's peak over the block, relative to where it started (libyaml's own C
    buffers are not traced, but every Python object a document expands to is)."""
    peak = Peak()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        yield peak
        _, top = tracemalloc.get_traced_memory()
        peak.bytes = top - base
    finally:
        tracemalloc.stop()


def inotify_fds() -> int:
    """inotify instances this process holds (each watcher is one)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                count += 1
    return count


async def inotify_fds_settle(expected: int, timeout: float = 2.0) -> int:
    """The inotify count once it is back to ``expected`` (or after ``timeout``).

    The one polled wait in these tests, and why: the notify crate closes its inotify fd from
    its own Rust thread ("notify-rs inotify loop") once our watcher thread has dropped it.
    Python cannot join that thread and nothing signals the close, so the count is re-read
    every few milliseconds; our own thread has already been joined by then.
    """
    deadline = time.perf_counter() + timeout
    while (count := inotify_fds()) != expected and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)  # sleep-ok: see the docstring
    return count


def our_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("hotreload") and t.is_alive()]
