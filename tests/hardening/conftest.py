"""Hardening fixtures: a reloader on a real file with the real watcher, and the instruments
that turn "memory bounded" and "the loop never held" into assertions.

The memory bound is generous on purpose: a correctness check (a bomb that expands), not a
performance assertion. How long the loop was held is never compared with a number of seconds:
it is compared with how long an ordinary document holds it, measured in the same test, and it
is counted in the loop thread's CPU time, which a busy machine does not inflate.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
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
from hotreload.testing import write_atomic
from tests.integration.conftest import Settings

WAIT = 5.0
#: Directory removal and recreation needs a watcher rebuild (or two): allow more.
SLOW_WAIT = 10.0
#: A generous bound: a correctness check, not a benchmark.
MAX_PEAK_BYTES = 50 * 1024 * 1024
#: Documents up to this size are checked on the loop (the reloader's ``INLINE_BYTES``);
#: larger ones in a worker thread.
INLINE_PARSE_BYTES = 16 * 1024
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
    options.setdefault("schema", Settings)
    async with HotReloader[Settings](
        path,
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
class LoopHold:
    """The longest the event loop was held while the block ran: the CPU time its thread spent
    between two 5 ms ticks. Time the thread spent descheduled (a busy machine) does not count;
    work done on the loop (a parse that should not be there) does."""

    worst: float = 0.0
    since: float = 0.0
    """The loop thread's CPU clock at the last tick."""

    def tick(self) -> None:
        now = time.thread_time()
        self.worst = max(self.worst, now - self.since)
        self.since = now


@contextlib.asynccontextmanager
async def loop_hold() -> AsyncIterator[LoopHold]:
    """Measure how long the loop is held: a ticker task asks to run every 5 ms and records the
    loop thread's CPU time since its last turn. A parse that held the loop shows up whole, even
    when it is the block's last act (the gap still open at the end counts too)."""
    gc.collect()  # a full collection owed by earlier tests is not this block's work
    hold = LoopHold(since=time.thread_time())

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.005)  # sleep-ok: the instrument itself, not a wait
            hold.tick()

    task = asyncio.create_task(ticker(), name="loop-hold-ticker")
    try:
        yield hold
    finally:
        hold.tick()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def ordinary_document(size: int = INLINE_PARSE_BYTES - 1024) -> bytes:
    """Plain YAML of ``size`` bytes or a little less (flow maps, lists, scalars): the most an
    ordinary document may hold the loop, since larger ones are parsed in a thread."""
    lines = ["model: gpt-5"]
    total = len(lines[0]) + 1
    while True:
        i = len(lines)
        line = f"key_{i}: {{name: item-{i}, values: [1, 2.5, three], enabled: true}}"
        if total + len(line) + 1 > size:
            return ("\n".join(lines) + "\n").encode()
        lines.append(line)
        total += len(line) + 1


async def ordinary_hold(r: HotReloader[Any], path: Path, *, traced: bool = False) -> float:
    """The baseline: how long ``r`` holds the loop to check an ordinary document just under the
    inline-parse size (refused by `Settings` for its unknown keys, after a full parse).
    ``traced``: under `peak_memory`, like a measurement it is compared with (tracemalloc
    slows every allocation several times)."""
    document = ordinary_document()  # the test's own work, not the reloader's
    with peak_memory() if traced else contextlib.nullcontext():
        async with loop_hold() as hold:
            write_atomic(path, document)
            await r.wait_for_outcome(lambda o: o.error is not None, timeout=WAIT)
    assert hold.worst > 0
    return hold.worst


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
