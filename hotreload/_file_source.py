"""`FileSource`: a config file on a local or mounted file system, watched through the hub.

The default source: ``HotReloader("config.yaml", ...)`` is ``HotReloader(source=
FileSource("config.yaml"), ...)``. Watching goes through the process-wide `WatchHub` (one
Rust watcher thread for every file of the loop), which also re-checks the file once its
watch is up and after a watcher restart, so nothing between the first read and the watch
is missed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import anyio

from ._parsing import Format
from ._pipeline import read_file
from ._source import Revision
from ._watch import Subscription, WatchHub, hub_for, polling_settings

__all__ = ["FileSource"]


class FileSource:
    """A file, watched through its directory (so editors' renames and kubelet's ``..data``
    swaps are seen). ``debounce_ms`` and ``step_ms`` go to the Rust watcher.

    ``force_polling=True`` polls every ``poll_delay_ms`` instead of asking inotify, for file
    systems where inotify sees nothing (NFS, CIFS, FUSE, Docker Desktop bind mounts); ``None``
    follows ``WATCHFILES_FORCE_POLLING`` (and ``WATCHFILES_POLL_DELAY_MS``) as watchfiles does.
    The resolved values are ``self.force_polling`` and ``self.poll_delay_ms``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: Format | None = None,  # noqa: A002 - the natural name for it
        debounce_ms: int = 50,
        step_ms: int = 10,
        force_polling: bool | None = None,
        poll_delay_ms: int = 300,
    ) -> None:
        if debounce_ms <= 0 or step_ms <= 0 or poll_delay_ms <= 0:
            raise ValueError("debounce_ms, step_ms and poll_delay_ms must be > 0")
        self.path = os.fspath(path)
        self._format = format
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.force_polling, self.poll_delay_ms = polling_settings(force_polling, poll_delay_ms)
        self.on_watch_restart: Callable[[], None] = _nothing
        """Called on the loop each time the watcher thread had to be restarted."""

    @property
    def uri(self) -> str:
        return self.path

    @property
    def format(self) -> Format | None:
        return self._format

    async def read(self, max_bytes: int) -> Revision:
        # A bounded read of one regular file: microseconds, so done inline, not in a thread.
        return Revision(read_file(self.path, max_bytes, self.path))

    async def watch(self, notify: Callable[[str], None], ready: Callable[[], None]) -> None:
        hub = self._hub()
        # Late-bound on purpose: the reloader sets on_watch_restart after construction.
        sub = Subscription(self.path, notify, lambda: self.on_watch_restart())  # noqa: PLW0108
        hub.subscribe(sub)
        try:
            assert sub.ready is not None  # noqa: S101 - set by subscribe
            await asyncio.shield(sub.ready)
            ready()
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await hub.unsubscribe(sub)

    def _hub(self) -> WatchHub:
        """The running loop's watcher hub for this file's watch settings."""
        return hub_for(self.debounce_ms, self.step_ms, self.force_polling, self.poll_delay_ms)

    def __repr__(self) -> str:
        return f"FileSource({self.path!r})"


def _nothing() -> None:
    pass
