"""`TaskSet` on its own: a failing task is logged and contained, close cancels and awaits
every task, and a caller cancelled while closing still waits for them."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from hotreload._logging import ContextLogger
from hotreload._tasks import TaskSet

Logs = list[MutableMapping[str, Any]]


async def test_a_task_that_raises_is_logged_by_name_and_contained(logs: Logs) -> None:
    tasks = TaskSet(ContextLogger("hotreload", config="t"))
    done = asyncio.Event()

    async def broken() -> None:
        done.set()
        raise KeyError("boom")

    tasks.spawn(broken, name="hotreload-worker[t]")
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == "hotreload-worker[t]"]
    await asyncio.wait([task])  # the set's own done-callback was registered first: it has run
    assert done.is_set()
    assert task not in tasks
    await tasks.aclose()
    [event] = [e for e in logs if e["event"] == "reloader_task_failed"]
    assert event["task"] == "hotreload-worker[t]"
    assert event["error"] == "KeyError('boom')"
    assert event["log_level"] == "error"
    assert event["config"] == "t"


async def test_a_set_that_went_idle_takes_new_tasks_and_still_closes_them() -> None:
    # Idle, the set drops its container (memory); the next spawn must track its task again.
    tasks = TaskSet(ContextLogger("hotreload"))
    finished = asyncio.Event()

    async def quick() -> None:
        finished.set()

    tasks.spawn(quick, name="quick")
    [first] = [t for t in asyncio.all_tasks() if t.get_name() == "quick"]
    await asyncio.wait([first])
    assert finished.is_set()
    assert first not in tasks
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    tasks.spawn(forever, name="again")
    await started.wait()
    [second] = [t for t in asyncio.all_tasks() if t.get_name() == "again"]
    assert second in tasks
    await tasks.aclose()
    assert second.cancelled()


async def test_close_cancels_and_awaits_every_task_and_refuses_new_ones(logs: Logs) -> None:
    tasks = TaskSet(ContextLogger("hotreload"))
    started = asyncio.Event()
    ended: list[str] = []

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("forever")

    tasks.spawn(forever, name="forever")
    await started.wait()
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == "forever"]
    assert task in tasks
    await tasks.aclose()
    assert ended == ["forever"]
    assert task.cancelled()
    assert task not in tasks
    assert not [e for e in logs if e["event"] == "reloader_task_failed"]  # cancelled: no error
    with pytest.raises(RuntimeError, match="closing"):
        tasks.spawn(forever, name="late")


async def test_a_caller_cancelled_while_closing_waits_for_the_tasks_then_is_cancelled() -> None:
    tasks = TaskSet(ContextLogger("hotreload"))
    started, release = asyncio.Event(), asyncio.Event()
    ended: list[str] = []

    async def slow_to_stop() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(release.wait())
            ended.append("slow")

    tasks.spawn(slow_to_stop, name="slow")
    await started.wait()
    closer = asyncio.ensure_future(tasks.aclose())
    await asyncio.sleep(0)  # sleep-ok: one tick, so the close is under way when cancelled
    closer.cancel()
    await asyncio.sleep(0)  # sleep-ok: one tick, the cancellation is delivered
    assert not closer.done()  # still waiting for the task
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await closer
    assert ended == ["slow"]
