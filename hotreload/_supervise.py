"""Watch supervision: a source's own ``watch`` kept running for as long as the reloader runs.

A file is watched through the hub without a task of its own; any other source (etcd, a
test's fake) runs its ``watch`` in a task that is restarted with backoff if it ever stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio

from ._backoff import backoff_delay
from ._logging import ContextLogger
from ._metrics import ReloaderMetrics
from ._source import Source

__all__ = ["SourceWatch"]

T = TypeVar("T")

_WATCH_READY_TIMEOUT = 5.0
_WATCH_RETRY_MIN, _WATCH_RETRY_MAX = 0.05, 5.0


class SourceWatch(Generic[T]):
    """A mixin of the reloader: the watch of a source that is not on the file hub."""

    __slots__ = ()

    source: Source
    _log: ContextLogger
    _metrics: ReloaderMetrics
    _watched: Callable[[str], None]  # Worker

    async def _watch(self, watching: asyncio.Future[None]) -> None:
        """Run a (non-file) source's watch for as long as the reloader runs; restart it if it
        stops. Each time the watch is up, the source is re-checked, so a change between the
        first read (or a disconnect) and the watch being established is never missed.
        """
        source = self.source

        def ready() -> None:
            if not watching.done():
                watching.set_result(None)
            self._watched("rescan")

        attempt = 0
        while True:
            try:
                await source.watch(self._watched, ready)
                problem = "returned"
            except Exception as exc:  # noqa: BLE001 - a source bug must not stop reloading
                problem = f"{type(exc).__name__}: {exc}"
            attempt += 1
            delay = backoff_delay(attempt, _WATCH_RETRY_MIN, _WATCH_RETRY_MAX)
            self._metrics.watch_restarts.inc()
            self._log.error("source_watch_failed", error=problem, retry_in_s=delay)
            await anyio.sleep(delay)

    async def _watching(self, watching: asyncio.Future[None]) -> None:
        """Return once the source is watched, so no change after ``async with`` is missed.

        Bounded: if no watch can start (an inotify limit, a server down), the reloader still
        runs on its safety poll, and says so, rather than hanging its caller.
        """
        with anyio.move_on_after(_WATCH_READY_TIMEOUT) as scope:
            await asyncio.shield(watching)
        if scope.cancelled_caught:
            self._log.warning(
                "watcher_not_ready",
                waited_s=_WATCH_READY_TIMEOUT,
                detail="changes are found by the safety poll until the watcher starts",
            )
