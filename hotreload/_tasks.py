"""`TaskSet`: a reloader's tasks, started on demand, all cancelled and awaited at close.

Structured like a task group (nothing outlives ``async with HotReloader``), but holding no
cancel scope from ``__aenter__`` to ``__aexit__``: an anyio task group does, and then
reloaders opened in one task must be closed in reverse order by that same task, or closing
one cancels its caller. A service closes its reloaders in whatever order it likes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from ._logging import ContextLogger

__all__ = ["TaskSet"]


class TaskSet:
    """Tasks of one reloader. A task that raises is logged, never propagated: no bug in a
    reload may take the service's loop or the reloader down."""

    __slots__ = ("_closed", "_log", "_loop", "_tasks")

    def __init__(self, log: ContextLogger, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        """The loop the tasks run on (None: the running one, asked at each spawn)."""
        self._tasks: set[asyncio.Task[None]] | None = None  # an idle reloader runs no task
        self._closed = False
        self._log = log

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, None]], *, name: str) -> None:
        if self._closed:
            raise RuntimeError("the reloader is closing: no new task")
        task = (self._loop or asyncio.get_running_loop()).create_task(fn(), name=name)
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def __contains__(self, task: object) -> bool:
        return self._tasks is not None and task in self._tasks

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._tasks is not None:
            self._tasks.discard(task)
            if not self._tasks:  # idle again: a reloader with no work holds no set
                self._tasks = None
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._log.error("reloader_task_failed", task=task.get_name(), error=repr(exc))

    async def aclose(self) -> None:
        """Cancel every task and wait until all have ended, even if the caller is cancelled
        meanwhile (its cancellation is re-raised once they have)."""
        self._closed = True
        interrupted = False
        pending = [t for t in self._tasks or () if not t.done()]
        for task in pending:
            task.cancel()
        while pending:
            try:
                await asyncio.wait(pending)
            except asyncio.CancelledError:
                interrupted = True
            pending = [t for t in pending if not t.done()]
        if interrupted:
            raise asyncio.CancelledError
