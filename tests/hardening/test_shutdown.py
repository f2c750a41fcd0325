"""Cancellation and shutdown: a cancelled reload leaves the previous snapshot whole, and
nothing of ours (task, thread, inotify instance) outlives ``async with``, however it ends.

"Mid-reload" is made deterministic, not timed: the document is over the 64 KiB inline limit,
so it is parsed and validated in a worker thread, and a validator there tells the test it is
running and then holds until the test releases it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from prometheus_client import CollectorRegistry

import hotreload
from hotreload import HotReloader, ReloadResult
from hotreload.testing import write_atomic
from tests.hardening.conftest import (
    WAIT,
    failures_by_reason,
    inotify_fds,
    inotify_fds_settle,
    our_threads,
    watcher_up,
)
from tests.integration.conftest import Settings

pytestmark = pytest.mark.timeout(30)

PACKAGE_DIR = os.path.dirname(hotreload.__file__)
PADDING = ("# " + "x" * 200 + "\n") * 400  # ~80 KB of comments: parsed off the loop


class Gate:
    """A validator that, for one model name, signals the loop and waits to be released."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.loop = asyncio.get_running_loop()
        self.entered: asyncio.Future[str] = self.loop.create_future()
        self.release = threading.Event()
        self.refuse = False

    def __call__(self, config: Settings) -> None:
        if config.model != self.model:
            return
        self.loop.call_soon_threadsafe(_set, self.entered, threading.current_thread().name)
        if not self.release.wait(WAIT * 2):
            raise TimeoutError("the test never released the validator")
        if self.refuse:
            raise ValueError("refused after the wait")


def _set(future: asyncio.Future[str], value: str) -> None:
    if not future.done():
        future.set_result(value)


def our_tasks() -> list[asyncio.Task[Any]]:
    """Tasks running code of the hotreload package (by name or by any frame of their stack)."""
    found = []
    for task in asyncio.all_tasks():
        if task is asyncio.current_task() or task.done():
            continue
        in_package = any(
            f.f_code.co_filename.startswith(PACKAGE_DIR) for f in task.get_stack(limit=50)
        )
        if task.get_name().startswith("hotreload") or in_package:
            found.append(task)
    return found


@contextlib.asynccontextmanager
async def nothing_left_behind() -> AsyncIterator[None]:
    """Asserts that the block leaves no task, thread or inotify instance of ours running."""
    assert our_threads() == []
    # With none of our watcher threads left, an inotify instance still open is the previous
    # test's, still being closed by the notify crate's own thread (late on a busy machine):
    # the baseline is the count once it is gone, or else whatever stays.
    fds = await inotify_fds_settle(0)
    yield
    assert our_tasks() == []
    assert our_threads() == []
    assert await inotify_fds_settle(fds) == fds


def reloader(path: Path, registry: CollectorRegistry, gate: Gate) -> HotReloader[Settings]:
    return HotReloader(
        path, schema=Settings, name="cancel", registry=registry, poll_interval=0, validators=(gate,)
    )


async def test_cancelling_a_caller_mid_reload_keeps_the_previous_snapshot(
    config_path: Path, registry: CollectorRegistry
) -> None:
    """The caller gives up; the check it asked for is the worker's and finishes on its own."""
    config_path.write_text(PADDING + "model: gpt-4\n")
    gate = Gate("gpt-5")
    async with nothing_left_behind(), reloader(config_path, registry, gate) as r:
        await watcher_up(r)
        before = r.snapshot
        config_path.write_text(PADDING + "model: gpt-5\n")
        caller = asyncio.create_task(r.reload())
        with anyio.fail_after(WAIT):
            thread = await gate.entered
        assert not thread.startswith("MainThread")  # parsed and validated off the loop
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        # Mid-reload, and after the cancellation: the previous version, whole.
        assert r.snapshot is before
        assert r.config is before.config
        assert r.config.model == "gpt-4"

        gate.release.set()
        snap = await r.wait_for_generation(2, timeout=WAIT)
        assert snap.config == r.config == Settings(model="gpt-5")
        # And it keeps working: a forced re-check and a new change.
        assert (await r.reload()).result is ReloadResult.CONFIG_UNCHANGED
        write_atomic(config_path, "model: gpt-6\n")
        assert (await r.wait_for_generation(3, timeout=WAIT)).config.model == "gpt-6"


async def test_cancelling_a_caller_of_a_refused_reload_counts_one_failure(
    config_path: Path, registry: CollectorRegistry
) -> None:
    config_path.write_text(PADDING + "model: gpt-4\n")
    gate = Gate("gpt-5")
    gate.refuse = True
    async with reloader(config_path, registry, gate) as r:
        await watcher_up(r)
        config_path.write_text(PADDING + "model: gpt-5\n")
        caller = asyncio.create_task(r.reload())
        with anyio.fail_after(WAIT):
            await gate.entered
        caller.cancel()
        gate.release.set()
        with pytest.raises(asyncio.CancelledError):
            await caller
        outcome = await r.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=WAIT)
        assert outcome.generation == 1
        assert r.config.model == "gpt-4"
        assert failures_by_reason(registry, "cancel") == {"validator": 1.0}
        assert (await r.reload()).result is ReloadResult.VALIDATION_FAILED
        assert failures_by_reason(registry, "cancel") == {"validator": 1.0}


async def cancel_service_mid_reload(
    config_path: Path, registry: CollectorRegistry
) -> HotReloader[Settings]:
    """Run a service whose task group is cancelled while a reload is in its worker thread;
    return its (closed) reloader."""
    config_path.write_text(PADDING + "model: gpt-4\n")
    gate = Gate("gpt-5")
    seen: list[HotReloader[Settings]] = []
    async with anyio.create_task_group() as tg:

        async def service() -> None:
            async with reloader(config_path, registry, gate) as r:
                seen.append(r)
                await watcher_up(r)
                config_path.write_text(PADDING + "model: gpt-5\n")
                await anyio.sleep_forever()

        tg.start_soon(service)
        with anyio.fail_after(WAIT):
            await gate.entered
        tg.cancel_scope.cancel()
        gate.release.set()  # the thread cannot be interrupted; it returns into a cancel
    return seen[0]


async def test_cancelling_the_task_group_mid_reload_leaves_nothing(
    config_path: Path, registry: CollectorRegistry
) -> None:
    async with nothing_left_behind():
        r = await cancel_service_mid_reload(config_path, registry)
    # One whole version or the other, never a mix.
    assert (r.snapshot.generation, r.config.model) in ((1, "gpt-4"), (2, "gpt-5"))
    assert r.config is r.snapshot.config
    with pytest.raises(RuntimeError, match="not running"):
        await r.reload()


async def test_cancelling_the_task_group_mid_reload_commits_nothing(
    config_path: Path, registry: CollectorRegistry
) -> None:
    """Once the service is being cancelled, the evaluation that was in flight is dropped:
    committing it would run apply hooks and log a reload during shutdown."""
    r = await cancel_service_mid_reload(config_path, registry)
    assert r.snapshot.generation == 1
    assert r.config == Settings(model="gpt-4")


async def test_cancelled_mid_reload_the_name_is_free_and_streams_end(
    config_path: Path, registry: CollectorRegistry
) -> None:
    """A cancelled shutdown must still release the reloader's name on the registry and end
    its streams (a consumer of ``changes()`` would otherwise wait forever)."""
    config_path.write_text(PADDING + "model: gpt-4\n")
    gate = Gate("gpt-5")
    streams: list[Any] = []
    async with anyio.create_task_group() as tg:

        async def service() -> None:
            async with reloader(config_path, registry, gate) as r:
                streams.append(r.changes())
                await watcher_up(r)
                config_path.write_text(PADDING + "model: gpt-5\n")
                await anyio.sleep_forever()

        tg.start_soon(service)
        with anyio.fail_after(WAIT):
            await gate.entered
        tg.cancel_scope.cancel()
        gate.release.set()
    config_path.write_text("model: gpt-4\n")
    async with HotReloader(config_path, schema=Settings, name="cancel", registry=registry) as r:
        assert r.config.model == "gpt-4"
    with anyio.fail_after(1):
        async for _ in streams[0]:
            pass  # ends once the reloader has closed its streams


async def test_an_exception_inside_the_block_leaves_nothing(
    config_path: Path, registry: CollectorRegistry
) -> None:
    async def service() -> None:
        async with HotReloader(
            config_path, schema=Settings, name="boom", registry=registry, poll_interval=0.5
        ) as r:
            await watcher_up(r)
            assert our_threads() != []
            assert inotify_fds() >= 1
            _ = 1 / 0

    async with nothing_left_behind():
        with pytest.raises(ZeroDivisionError):
            await service()


async def test_an_exception_inside_the_block_propagates_as_itself(
    config_path: Path, registry: CollectorRegistry
) -> None:
    """``try: async with reloader: ... except ValueError:`` must keep working."""
    with pytest.raises(ZeroDivisionError):
        async with HotReloader(config_path, schema=Settings, name="raw", registry=registry):
            _ = 1 / 0


async def test_repeated_open_and_close_leaves_nothing(
    config_path: Path, registry: CollectorRegistry
) -> None:
    async with nothing_left_behind():
        for _ in range(5):
            async with HotReloader(
                config_path, schema=Settings, name="again", registry=registry
            ) as r:
                await watcher_up(r)
                assert len(our_threads()) == 1
