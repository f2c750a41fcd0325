"""`FileSource`: a config file on a local or mounted file system, watched through the hub.

The default source: ``HotReloader("config.yaml", ...)`` is ``HotReloader(source=
FileSource("config.yaml"), ...)``. Watching goes through the loop's `WatchHub` (a Rust
watcher thread per shard of directories, at most four, for every file of the loop), which
also re-checks the file once its
watch is up and after a watcher restart, so nothing between the first read and the watch
is missed. Reading a file (bounded, never blocking on a FIFO) lives here too.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from ._errors import ConfigNotFoundError, ConfigReadError
from ._kube import is_file_mount
from ._mounts import first_warning_for
from ._options import settle_seconds
from ._parsing import Format
from ._source import Revision, Wiring
from ._watch import Subscription, WatchHub, hub_for, polling_settings

__all__ = ["Attachment", "FileSource", "read_file"]


@dataclass(frozen=True, slots=True)
class Attachment:
    """A reloader's subscription to the hub: no task of its own, which keeps idle reloaders
    cheap. ``ready`` resolves once a running watcher covers the file."""

    hub: WatchHub
    sub: Subscription

    @property
    def ready(self) -> asyncio.Future[None]:
        assert self.sub.ready is not None  # noqa: S101 - set by subscribe
        return self.sub.ready

    @property
    def joined(self) -> asyncio.Future[None]:
        """What a start waits for: ``ready``, or in a busy hub a build under way (the file
        is re-checked once that watcher is up, so no change made meanwhile is missed)."""
        assert self.sub.joined is not None  # noqa: S101 - set by subscribe
        return self.sub.joined

    async def detach(self) -> None:
        await self.hub.unsubscribe(self.sub)


class FileSource:
    """A file, watched through its directory (so editors' renames and kubelet's ``..data``
    swaps are seen). ``debounce_ms`` and ``step_ms`` go to the Rust watcher.

    ``force_polling=True`` polls every ``poll_delay_ms`` instead of asking inotify, for file
    systems where inotify sees nothing (NFS, CIFS, FUSE, Docker Desktop bind mounts); ``None``
    follows ``WATCHFILES_FORCE_POLLING`` (and ``WATCHFILES_POLL_DELAY_MS``) as watchfiles does.
    The resolved values are ``self.force_polling`` and ``self.poll_delay_ms``.

    ``settle_ms`` (off by default) is a quiet period: the reloader reads the file only once
    no watch event has come for that long, each new one starting it again, so a burst of
    writes is one commit (``debounce_ms`` groups the events of one batch only). A caller's
    ``reload()``, SIGHUP and forced re-checks are never delayed by it.

    ``path`` is kept as given (it names the file in logs, errors and snapshots); the file
    read and watched is that path made absolute once, here, so a later ``chdir`` of the
    process cannot make the reloader serve another directory's file.
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
        settle_ms: float | None = None,
    ) -> None:
        if debounce_ms <= 0 or step_ms <= 0 or poll_delay_ms <= 0:
            raise ValueError("debounce_ms, step_ms and poll_delay_ms must be > 0")
        self._settle = settle_seconds(settle_ms)
        self.settle_ms = settle_ms
        self.path = os.fspath(path)
        self.resolved = os.path.abspath(self.path)
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
        return Revision(read_file(self.resolved, max_bytes, self.path))

    async def watch(self, notify: Callable[[str], None], ready: Callable[[], None]) -> None:
        # Late-bound on purpose: the reloader sets on_watch_restart after construction.
        attached = self.attach(notify, lambda: self.on_watch_restart())  # noqa: PLW0108
        try:
            await asyncio.shield(attached.ready)
            ready()
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await attached.detach()

    def attach(self, notify: Callable[[str], None], on_restart: Callable[[], None]) -> Attachment:
        """Subscribe to the hub directly (what the reloader does instead of a `watch` task)."""
        hub = hub_for(self.debounce_ms, self.step_ms, self.force_polling, self.poll_delay_ms)
        sub = Subscription(self.resolved, notify, on_restart)
        hub.subscribe(sub)
        return Attachment(hub, sub)

    def _wiring(self) -> Wiring:
        # An empty read may be an in-place write caught between its truncate and its write.
        return Wiring(
            attach=self.attach,
            warnings=self.warnings,
            empty_may_be_mid_write=True,
            settle=self._settle,
        )

    def warnings(self) -> list[tuple[str, str]]:
        """Known ways this file will not be kept current, as (event, detail) pairs."""
        found = []
        if is_file_mount(self.resolved):
            found.append(
                (
                    "config_file_is_a_subpath_mount",
                    "kubelet never updates a subPath mount: mount the directory instead",
                )
            )
        blind = None if self.force_polling else first_warning_for(self.resolved)
        if blind is not None:  # once per mount point and process
            found.append(
                (
                    "config_on_filesystem_without_inotify",
                    f"{blind.mount_point} is {blind.fstype}: changes made elsewhere raise no "
                    "inotify event; use FileSource(path, force_polling=True) (or set "
                    "WATCHFILES_FORCE_POLLING=1), "
                    "until then only the safety poll sees them",
                )
            )
        links = hard_links(self.resolved)
        if links > 1:
            found.append(
                (
                    "config_file_has_hard_links",
                    f"the file has {links} names (hard links): an edit made through a name in "
                    "another directory is not reported by inotify here, and is seen only by "
                    "the safety poll (poll_interval)",
                )
            )
        return found

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


def read_file(path: str, max_bytes: int, source: str) -> bytes:
    """A file's bytes, at most ``max_bytes``; never blocks on a FIFO, never follows a loop.

    Errors are `ConfigReadError` naming ``source``: ``missing`` (a `ConfigNotFoundError`, also
    a `FileNotFoundError`), ``read`` or ``too_large``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigNotFoundError(source) from None
    except OSError as exc:
        raise ConfigReadError(source, _describe(exc)) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigReadError(source, "is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigReadError(source, "not a regular file")
        # Ask for the size the file has (+1 to see it grow past the cap), not for the cap: a
        # cap-sized buffer shrunk to a small config pins heap pages for as long as the bytes
        # live (about 4 KB of RSS per reloader, measured at 1,000 reloaders).
        # Plain os.read, no buffered file object around the descriptor: one allocation and one
        # or two syscalls for a whole config.
        want = min(info.st_size, max_bytes) + 1
        data = _read_upto(fd, want, info.st_size)
        if len(data) == want <= max_bytes:
            data += _read_upto(fd, max_bytes + 1 - len(data))  # it grew since fstat (or /proc)
    except OSError as exc:
        raise ConfigReadError(source, _describe(exc)) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ConfigReadError(
            source,
            f"file is larger than the {max_bytes}-byte limit",
            reason="too_large",
        )
    return data


def _read_upto(fd: int, size: int, whole: int = -1) -> bytes:
    """Up to ``size`` bytes from ``fd``: fewer only at the end of the file. ``whole``: the
    size ``fstat`` gave; a first read that returns exactly that many bytes has the whole file
    as it was then, and asking again only to be told it ended is one more system call per
    reload."""
    data = os.read(fd, size)
    if len(data) in (0, size, whole):
        return data
    parts = [data]
    got = len(data)
    while got < size and (chunk := os.read(fd, size - got)):
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    return exc.strerror or type(exc).__name__
