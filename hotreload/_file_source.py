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
from ._watch import Subscription, hub_for

__all__ = ["HARD_LINK_DETAIL", "FileSource", "hard_links"]

HARD_LINK_DETAIL = (
    "the file has other hard links: an edit made through a name in another directory is not "
    "reported by inotify here, and is seen only by the safety poll (poll_interval)"
)


class FileSource:
    """A file, watched through its directory (so editors' renames and kubelet's ``..data``
    swaps are seen). ``debounce_ms`` and ``step_ms`` go to the Rust watcher."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: Format | None = None,  # noqa: A002 - the natural name for it
        debounce_ms: int = 50,
        step_ms: int = 10,
    ) -> None:
        if debounce_ms <= 0 or step_ms <= 0:
            raise ValueError("debounce_ms and step_ms must be > 0")
        self.path = os.fspath(path)
        self._format = format
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
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
        hub = hub_for(self.debounce_ms, self.step_ms)
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

    def __repr__(self) -> str:
        return f"FileSource({self.path!r})"


def hard_links(path: str) -> int:
    """How many names the file (after symlinks) has; 0 when it cannot be read."""
    try:
        return os.stat(path).st_nlink
    except OSError:
        return 0


def _nothing() -> None:
    pass
