"""The process-wide watcher hub: one Rust watcher thread serves every reloader on a loop.

This is the only module that imports watchfiles. ``watchfiles.awatch`` would hold a thread of
anyio's default limiter (shared with Starlette's sync endpoints) and an inotify instance per
reloader for as long as it watches; here one thread of our own runs one ``RustNotify`` over the
union of every reloader's directories, and events are routed to reloaders by path.

What each subscription watches (non-recursively) and why:

* the file's directory, for in-place writes, renames over the file and kubelet's ``..data``
  swap (which never touches ``config.yaml`` itself, so ``..``-prefixed names count too);
* that directory's parent, because when the directory itself is deleted or renamed away its
  own watch just goes quiet; the parent sees it go and come back;
* while the directory is missing, its nearest existing ancestor, until it is back;
* when the file is a symlink, the directory of every hop of the chain (each link it passes
  through and the final target), re-resolved on every event.

When the set of watched paths changes the hub starts a new watcher and stops the old one only
once the new one is running, so there is no gap; a subscription that was added is re-checked
once the watcher covering it is up (its first read happened before). A watcher that raises is
restarted with backoff, and every subscription is re-checked, because anything may have
changed while nothing was watching.

Polling (``force_polling``, or ``WATCHFILES_FORCE_POLLING`` as watchfiles reads it) is for file
systems where inotify sees nothing (NFS, CIFS, FUSE, Docker Desktop bind mounts). The Rust poll
watcher compares modification times in whole seconds, so a second write within the same second
goes unseen; each ``poll_delay_ms`` the watcher thread therefore also compares every watched
file's content digest and reports the files whose content changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from watchfiles import Change
from watchfiles._rust_notify import RustNotify

from ._backoff import backoff_delay
from ._logging import ContextLogger

__all__ = ["Subscription", "WatchHub", "hub_for", "polling_settings"]

_log = ContextLogger("hotreload.watch")

_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 5.0
#: Files larger than this are compared by their stat signature, not their content, in polling.
_DIGEST_MAX_BYTES = 4 << 20
_FORCE_POLLING_ENV = "WATCHFILES_FORCE_POLLING"
_POLL_DELAY_ENV = "WATCHFILES_POLL_DELAY_MS"


def polling_settings(force_polling: bool | None, poll_delay_ms: int) -> tuple[bool, int]:
    """``(force_polling, poll_delay_ms)`` as ``watchfiles.watch`` resolves them.

    ``force_polling=None`` follows ``WATCHFILES_FORCE_POLLING`` (set and not empty: on, unless
    ``false``/``disable``/``disabled``), else polls only on WSL; a decimal
    ``WATCHFILES_POLL_DELAY_MS`` overrides ``poll_delay_ms``, as it does in watchfiles.
    """
    if force_polling is None:
        env = os.environ.get(_FORCE_POLLING_ENV)
        force_polling = env.lower() not in {"false", "disable", "disabled"} if env else _on_wsl()
    delay = os.environ.get(_POLL_DELAY_ENV)
    if delay and delay.isdecimal():
        poll_delay_ms = int(delay)
    return force_polling, poll_delay_ms


def _on_wsl() -> bool:
    import platform  # noqa: PLC0415 - only when polling is left to the environment

    uname = platform.uname()
    return "microsoft-standard" in uname.release.lower() and uname.system.lower() == "linux"


def _fingerprint(path: str) -> tuple[object, ...] | None:
    """What a poll compares: the content's digest (the stat signature for a huge file)."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_size > _DIGEST_MAX_BYTES:
                return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            return (hashlib.sha256(f.read()).digest(),)
    except OSError:
        return None


@dataclass(eq=False, slots=True)
class Subscription:
    """One reloader's interest in one file. ``notify`` runs on the loop with a trigger name."""

    path: str
    notify: Callable[[str], None]
    on_watch_restart: Callable[[], None]
    directory: str = field(init=False)
    name: str = field(init=False)
    hops: tuple[str, ...] = field(init=False, default=())
    roots: tuple[str, ...] = field(init=False, default=())
    ready: asyncio.Future[None] | None = field(init=False, default=None)
    """Resolved once a running watcher covers this subscription."""

    def __post_init__(self) -> None:
        self.path = os.path.abspath(self.path)
        self.directory, self.name = os.path.split(self.path)


def _ancestors(path: str) -> list[str]:
    out: list[str] = []
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return out
        out.append(parent)
        path = parent


def _roots_for(sub: Subscription) -> tuple[str, ...]:
    roots: set[str] = set()
    directory = sub.directory
    if os.path.isdir(directory):
        roots.add(directory)
        parent = os.path.dirname(directory)
        if parent != directory and os.path.isdir(parent):
            roots.add(parent)
    else:
        existing = next((a for a in _ancestors(directory) if os.path.isdir(a)), None)
        if existing is not None:
            roots.add(existing)
    for hop in sub.hops:
        hop_dir = os.path.dirname(hop)
        if os.path.isdir(hop_dir):
            roots.add(hop_dir)
    return tuple(roots)  # kept per subscription: a tuple is a third of a set


#: Symlinks followed at most (the kernel's own limit is 40).
_MAX_HOPS = 40


def _hops(sub: Subscription) -> tuple[str, ...]:
    """Every path the file's symlink chain passes through after the file itself, as the
    watcher reports it (real directory + name), for ``config.yaml -> hop1/link -> real.yaml``:
    ``(<real hop1>/link, <real dir>/real.yaml)``. Each hop's directory is watched, and the
    chain is resolved again on every event, so re-pointing any link of it is seen.

    kubelet's targets live in ``..<timestamp>`` directories inside the file's directory:
    those are covered by the ``..data`` events already and change on every update, so they
    are left out.
    """
    real_dir = os.path.realpath(sub.directory)
    hops: list[str] = []
    path = sub.path
    for _ in range(_MAX_HOPS):
        try:
            target = os.readlink(path)
        except OSError:  # not a link (or gone): the chain ends here
            break
        directory, name = os.path.split(os.path.join(os.path.dirname(path), target))
        path = os.path.join(os.path.realpath(directory), name)
        if path in hops:  # a loop: reading the file will say so
            break
        if not _inside_kubelet_data(path, real_dir):
            hops.append(path)
    return tuple(hops)


def _inside_kubelet_data(path: str, real_dir: str) -> bool:
    if not path.startswith(real_dir + os.sep):
        return False
    return path[len(real_dir) + 1 :].startswith("..")


class _Watcher:
    """One RustNotify in one thread; delivers batches to the hub through the loop."""

    def __init__(self, hub: WatchHub, roots: frozenset[str]) -> None:
        self.roots = roots
        self.stop = threading.Event()
        self.done: asyncio.Future[None] = hub.loop.create_future()
        self.thread = threading.Thread(
            target=self._run, args=(hub,), name="hotreload-watch", daemon=True
        )
        self.thread.start()

    def _run(self, hub: WatchHub) -> None:
        loop = hub.loop
        error: BaseException | None = None
        polling, delay_ms = hub.force_polling, hub.poll_delay_ms
        timeout_ms = max(delay_ms, 1) if polling else 0
        try:
            with RustNotify(
                watch_paths=sorted(self.roots),
                debug=False,
                force_polling=polling,
                poll_delay_ms=delay_ms,
                recursive=False,
                ignore_permission_denied=True,
            ) as notify:
                _call(loop, hub._ready, self)
                next_poll = time.monotonic() + delay_ms / 1000
                while not self.stop.is_set():
                    batch = notify.watch(
                        debounce_ms=hub.debounce_ms,
                        step_ms=hub.step_ms,
                        timeout_ms=timeout_ms,
                        stop_event=self.stop,
                    )
                    if isinstance(batch, set) and batch:
                        _call(loop, hub._dispatch, self, batch)
                    if polling and time.monotonic() >= next_poll:
                        changed = hub._compare_contents()
                        if changed:
                            _call(loop, hub._content_changed, changed)
                        next_poll = time.monotonic() + delay_ms / 1000
        except BaseException as exc:  # noqa: BLE001 - reported to the loop, then restarted
            error = exc
        finally:
            _call(loop, hub._finished, self, error)


def _call(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: object) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to tell
        loop.call_soon_threadsafe(fn, *args)


class WatchHub:
    """Watches every subscribed file of one event loop with one watcher thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        debounce_ms: int,
        step_ms: int,
        force_polling: bool = False,
        poll_delay_ms: int = 300,
    ) -> None:
        self.loop = loop
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.force_polling = force_polling
        self.poll_delay_ms = poll_delay_ms
        # Polling only: the files the watcher thread fingerprints and what it saw last time,
        # shared with that thread under the lock.
        self._files: tuple[str, ...] = ()
        self._by_file: dict[str, set[Subscription]] = {}
        self._fingerprints: dict[str, tuple[object, ...] | None] = {}
        self._fingerprint_lock = threading.Lock()
        self._subs: set[Subscription] = set()
        self._by_dir: dict[str, set[Subscription]] = {}
        self._by_path: dict[str, set[Subscription]] = {}
        self._by_target: dict[str, set[Subscription]] = {}
        self._current: _Watcher | None = None
        self._starting: _Watcher | None = None
        self._unchecked: set[Subscription] = set()
        self._rebuild_scheduled = False
        self._force_new_watcher = False
        self._failures = 0
        self._retry: asyncio.TimerHandle | None = None
        self._retired: list[_Watcher] = []

    @property
    def watched(self) -> frozenset[str]:
        """Paths the running watcher covers (for tests and diagnostics)."""
        return self._current.roots if self._current else frozenset()

    def subscribe(self, sub: Subscription) -> None:
        sub.ready = self.loop.create_future()
        self._subs.add(sub)
        self._unchecked.add(sub)
        self._add(sub)
        if self.force_polling:
            # The baseline is taken now, after the reloader's first read and before the rescan
            # that follows the watcher being up: a change at any moment is seen by one of them.
            with self._fingerprint_lock:
                if sub.path not in self._fingerprints:
                    self._fingerprints[sub.path] = _fingerprint(sub.path)
                self._by_file.setdefault(sub.path, set()).add(sub)
                self._files = tuple(self._by_file)
        self._schedule_rebuild()

    async def unsubscribe(self, sub: Subscription) -> None:
        """Stop routing to ``sub``; the last one out stops the watcher and waits for its thread."""
        if sub not in self._subs:
            return
        self._subs.discard(sub)
        self._unchecked.discard(sub)
        if sub.ready is not None and not sub.ready.done():
            sub.ready.cancel()
        self._remove(sub)
        same_file = self._by_file.get(sub.path)
        if same_file is not None:
            same_file.discard(sub)
            if not same_file:
                with self._fingerprint_lock:
                    del self._by_file[sub.path]
                    self._fingerprints.pop(sub.path, None)
                    self._files = tuple(self._by_file)
        if self._subs:
            self._schedule_rebuild()
            return
        _hubs.pop(self._key, None)
        if self._retry is not None:
            self._retry.cancel()
        watchers = [w for w in (self._current, self._starting, *self._retired) if w is not None]
        self._current = self._starting = None
        for w in watchers:
            w.stop.set()
        try:
            await asyncio.shield(asyncio.gather(*(w.done for w in watchers)))
        except asyncio.CancelledError:
            # Cancelled while waiting (the task group around `async with` was cancelled): the
            # threads were told to stop and end within one step, so wait for them here rather
            # than leave them running past the context manager.
            for w in watchers:
                w.thread.join()
            raise
        for w in watchers:  # `done` is set in the thread's last step: this join is immediate
            w.thread.join()

    # -- routing ---------------------------------------------------------------------------
    # Incremental, so that a thousand reloaders cost a thousand small updates, not a million.

    def _add(self, sub: Subscription) -> None:
        sub.hops = _hops(sub)
        sub.roots = _roots_for(sub)
        self._by_dir.setdefault(sub.directory, set()).add(sub)
        for hop in sub.hops:
            self._by_target.setdefault(hop, set()).add(sub)
        for path in (sub.directory, *_ancestors(sub.directory)):
            self._by_path.setdefault(path, set()).add(sub)

    def _remove(self, sub: Subscription) -> None:
        keyed = [(self._by_dir, sub.directory)]
        keyed += [(self._by_path, p) for p in (sub.directory, *_ancestors(sub.directory))]
        keyed += [(self._by_target, hop) for hop in sub.hops]
        for index, key in keyed:
            subs = index.get(key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del index[key]
        sub.hops = ()

    def _dispatch(self, watcher: _Watcher, batch: set[tuple[int, str]]) -> None:
        hit: set[Subscription] = set()
        moved: set[Subscription] = set()
        for change, path in batch:
            directory, name = os.path.split(path)
            for sub in self._by_dir.get(directory, ()):
                if name == sub.name or name.startswith(".."):
                    hit.add(sub)
            hit.update(self._by_target.get(path, ()))
            # The directory itself or one of its ancestors came, went or was replaced: the
            # running watcher may hold a watch on a directory that is gone (even if a new one
            # took its name, and maybe its inode number), so a new watcher must start.
            subs = self._by_path.get(path, ())
            moved.update(subs)
            if subs and change != Change.modified:
                self._force_new_watcher = True
        hit |= moved
        # A link of the chain may now point somewhere else: follow it.
        moved.update(s for s in hit if _hops(s) != s.hops)
        if moved:
            for sub in moved:
                self._remove(sub)
                self._add(sub)
            # Re-check them once a watcher covering their new state runs: a change made
            # between this event and that moment would otherwise be seen by nobody.
            self._unchecked |= moved
            self._schedule_rebuild()
        for sub in hit:
            sub.notify("watch")

    @property
    def _key(self) -> _HubKey:
        return (self.loop, self.debounce_ms, self.step_ms, self.force_polling, self.poll_delay_ms)

    # -- polling -------------------------------------------------------------------------------

    def _compare_contents(self) -> list[str]:
        """In the watcher thread: the files whose fingerprint changed since the last poll."""
        changed: list[str] = []
        with self._fingerprint_lock:
            seen = self._fingerprints
            for path in self._files:
                now = _fingerprint(path)
                if seen.get(path, now) != now:
                    changed.append(path)
                seen[path] = now
        return changed

    def _content_changed(self, paths: list[str]) -> None:
        for path in paths:
            for sub in list(self._by_file.get(path, ())):
                sub.notify("watch")

    # -- watcher lifecycle -------------------------------------------------------------------

    def _schedule_rebuild(self) -> None:
        if not self._rebuild_scheduled:
            self._rebuild_scheduled = True
            self.loop.call_soon(self._rebuild)

    def _rebuild(self) -> None:
        self._rebuild_scheduled = False
        if not self._subs or self._retry is not None:
            return
        # Identity, not just path: a directory deleted and recreated under the same name is a
        # new inode, and the running watcher still watches the old one.
        roots = frozenset().union(*(s.roots for s in self._subs))
        running = self._starting or self._current
        force, self._force_new_watcher = self._force_new_watcher, False
        if running is not None and running.roots == roots and not force:
            self._recheck_unchecked_if_ready()
            return
        if self._starting is not None:
            self._starting.stop.set()
            self._retired.append(self._starting)
        self._starting = _Watcher(self, roots)

    def _recheck_unchecked_if_ready(self) -> None:
        if self._starting is None and self._current is not None:
            unchecked, self._unchecked = self._unchecked, set()
            for sub in unchecked:
                if sub in self._subs:
                    sub.notify("rescan")
                    if sub.ready is not None and not sub.ready.done():
                        sub.ready.set_result(None)

    def _ready(self, watcher: _Watcher) -> None:
        if watcher is not self._starting:
            return
        if self._current is not None:
            self._current.stop.set()
            self._retired.append(self._current)
        self._current, self._starting = watcher, None
        self._failures = 0
        self._recheck_unchecked_if_ready()

    def _finished(self, watcher: _Watcher, error: BaseException | None) -> None:
        if not watcher.done.done():
            watcher.done.set_result(None)
        if watcher in self._retired:
            self._retired.remove(watcher)
        if watcher.stop.is_set() or not self._subs:
            return
        # It ended without being asked: the Rust side raised (or the root went away at start).
        if watcher is self._current:
            self._current = None
        if watcher is self._starting:
            self._starting = None
        self._failures += 1
        delay = backoff_delay(self._failures, _BACKOFF_FIRST, _BACKOFF_MAX)
        _log.warning(
            "watcher_restarting",
            error=f"{type(error).__name__}: {error}" if error else "stopped",
            attempt=self._failures,
            delay_s=delay,
        )
        for sub in self._subs:
            sub.on_watch_restart()
            self._remove(sub)
            self._add(sub)
        self._unchecked |= self._subs
        self._retry = self.loop.call_later(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        self._rebuild()


_HubKey = tuple[asyncio.AbstractEventLoop, int, int, bool, int]
_hubs: dict[_HubKey, WatchHub] = {}


def hub_for(
    debounce_ms: int, step_ms: int, force_polling: bool = False, poll_delay_ms: int = 300
) -> WatchHub:
    """The hub of the running loop for these settings, created on first use."""
    loop = asyncio.get_running_loop()
    key = (loop, debounce_ms, step_ms, force_polling, poll_delay_ms)
    hub = _hubs.get(key)
    if hub is None:
        hub = _hubs[key] = WatchHub(loop, debounce_ms, step_ms, force_polling, poll_delay_ms)
    return hub
