"""The watcher hub: a few Rust watcher threads (one per shard, at most four) serve every
reloader on a loop.

This is the only module that imports watchfiles. ``watchfiles.awatch`` would hold a thread of
anyio's default limiter (shared with Starlette's sync endpoints) and an inotify instance per
reloader for as long as it watches; here threads of our own each run one ``RustNotify`` over a
shard of the union of every reloader's directories (see `WatchHub`), and events are routed to
reloaders by path.

What each subscription watches (non-recursively) and why:

* the file's directory, for in-place writes, renames over the file and kubelet's ``..data``
  swap (which never touches ``config.yaml`` itself, so ``..``-prefixed names count too);
* that directory's parent, because when the directory itself is deleted or renamed away its
  own watch just goes quiet; the parent sees it go and come back;
* while the directory is missing, its nearest existing ancestor, until it is back;
* when the file is a symlink, the directory of every hop of the chain (each link it passes
  through and the final target), re-resolved on every event.

When a shard's set of watched paths changes the hub starts a new watcher for it and stops the
old one only once the new one is running, so there is no gap; a subscription that was added is
re-checked once the watcher covering it is up (its first read happened before). A watcher that
raises is restarted with backoff, and every subscription is re-checked, because anything may
have changed while nothing was watching.

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
    joined: asyncio.Future[None] | None = field(init=False, default=None)
    """What a start waits for: ``ready`` itself in a quiet hub; in a busy one (see `_BUSY`),
    already resolved: the next build covers it, and it is re-checked once that is up."""

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


#: Roots a shard holds at most before it is merged into the next one; the last has no bound.
#: Each shard is one watcher (one thread, one inotify instance) once it holds a root: one
#: watcher up to 16 directories, at most four however many.
_SHARD_CAPACITY: tuple[int | None, ...] = (16, 128, 1024, None)
#: A hub holding this many subscriptions is busy: a new one joins the next build (scheduled,
#: or queued behind the one in flight) instead of waiting for a watcher of its own to be up,
#: and every root that piled up meanwhile goes into that one build. A thousand reloaders
#: started one after another then share a few builds instead of one each.
#: Nothing is missed meanwhile: the subscription is re-checked (``rescan``) once covered, so
#: a write made before its watch was up is read then. A quiet hub (a few reloaders, most
#: applications and tests) keeps the stronger promise: a start returns once watched.
_BUSY = 16
#: Roots nobody wants any more stay watched (their events reach nobody) until they outnumber
#: the live ones, and are more than this: then the shards holding them are rebuilt without.
_STALE_MIN = 16


class _StopSignal:
    """The stop event RustNotify polls at each of its steps (``is_set``).

    ``set`` stops the watcher at its next step, dropping any changes it holds (RustNotify
    clears them): for shutdown. ``retire`` stops it only once it has delivered every change it
    held when told: for a watcher whose successor is up. A change seen only by the old watcher
    (made before the new one's watch existed) would otherwise be lost with it. RustNotify
    returns what it holds within ``debounce_ms / step_ms + 1`` steps, so ``retire`` gives it
    that many and one more, counted in its own steps (not wall time, which a busy machine
    stretches).
    """

    __slots__ = ("_event", "_left", "_steps")

    def __init__(self, debounce_ms: int, step_ms: int) -> None:
        self._event = threading.Event()
        self._steps = -(-debounce_ms // max(step_ms, 1)) + 2
        self._left: int | None = None

    def set(self) -> None:
        self._event.set()

    def retire(self) -> None:
        if self._left is None:
            self._left = self._steps

    @property
    def requested(self) -> bool:
        """Told to stop, or to retire (any thread)."""
        return self._event.is_set() or self._left is not None

    @property
    def done(self) -> bool:
        """Stopped, or retired with nothing left to deliver (the watcher's thread)."""
        return self._event.is_set() or self._left == 0

    def is_set(self) -> bool:
        """RustNotify's question, once per step, from the watcher's thread only."""
        if self._left is not None and self._left > 0:
            self._left -= 1
        return self.done


class _Watcher:
    """One RustNotify in one thread; delivers batches to the hub through the loop."""

    def __init__(
        self, hub: WatchHub, roots: frozenset[str], epoch: int, replaces: list[_Watcher]
    ) -> None:
        self.roots = roots
        self.epoch = epoch
        """When it was started: it covers a root only if the root was placed before."""
        self.replaces = replaces
        """Stopped once this one is up (if it is still its shard's newest then)."""
        self.up = False
        self.stale = False
        """It may hold a watch on a directory that was replaced since: it covers nothing."""
        self.stop = _StopSignal(hub.debounce_ms, hub.step_ms)
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
                while not self.stop.done:
                    batch = notify.watch(
                        debounce_ms=hub.debounce_ms,
                        step_ms=hub.step_ms,
                        timeout_ms=timeout_ms,
                        stop_event=self.stop,
                    )
                    if isinstance(batch, set) and batch:
                        _call(loop, hub._dispatch, self, batch)
                    if polling:
                        changed = hub._compare_contents_if_due()
                        if changed:
                            _call(loop, hub._content_changed, changed)
        except BaseException as exc:  # noqa: BLE001 - reported to the loop, then restarted
            error = exc
        finally:
            _call(loop, hub._finished, self, error)


class _Shard:
    """A part of the watched set and the watchers covering it.

    ``current`` is the newest watcher that is up, ``starting`` the one being started (one at a
    time: changes made meanwhile only mark the shard ``dirty``, and it is rebuilt once more
    when that one is up), ``handoff`` the watchers of the shards merged into this one, kept
    until a watcher of this shard covering their roots is up.
    """

    __slots__ = ("capacity", "current", "dirty", "handoff", "level", "roots", "starting")

    def __init__(self, level: int, capacity: int | None) -> None:
        self.level = level
        self.capacity = capacity
        self.roots: set[str] = set()
        self.current: _Watcher | None = None
        self.starting: _Watcher | None = None
        self.handoff: list[_Watcher] = []
        self.dirty = False

    def watchers(self) -> list[_Watcher]:
        return [w for w in (self.current, self.starting, *self.handoff) if w is not None]


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def _call(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: object) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to tell
        loop.call_soon_threadsafe(fn, *args)


def _under(path: str, roots: frozenset[str]) -> bool:
    prefix = path if path.endswith(os.sep) else path + os.sep
    return any(r == path or r.startswith(prefix) for r in roots)


class WatchHub:
    """Watches every subscribed file of one event loop, with a few watcher threads.

    The watched directories ("roots") are split into shards of growing capacity (16, 128,
    1,024, then unbounded), one watcher each. A new root goes into the first shard, so adding
    a watch rebuilds a watcher over at most 16 directories; a full shard is merged into the
    next one, so a root is rebuilt over a few times in its life, not once per later watch.
    A root nobody wants any more is not unwatched at once: it stays (its events are dropped)
    until stale roots outnumber live ones, so removing a watch costs nothing until then.
    """

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
        # Polling only: the files the watcher threads fingerprint and what they saw last time,
        # shared with those threads under the lock, and when the next comparison is due.
        self._files: tuple[str, ...] = ()
        self._by_file: dict[str, set[Subscription]] = {}
        self._fingerprints: dict[str, tuple[object, ...] | None] = {}
        self._fingerprint_lock = threading.Lock()
        self._next_poll = 0.0
        self._subs: set[Subscription] = set()
        self._by_dir: dict[str, set[Subscription]] = {}
        self._by_path: dict[str, set[Subscription]] = {}
        self._by_target: dict[str, set[Subscription]] = {}
        self._shards = [_Shard(level, cap) for level, cap in enumerate(_SHARD_CAPACITY)]
        self._refs: dict[str, int] = {}
        """Live roots: how many subscriptions want each."""
        self._placed: dict[str, tuple[int, int]] = {}
        """Live roots: the shard holding each, and the epoch it was placed at."""
        self._entries = 0
        """Roots held by the shards, stale ones included."""
        self._epoch = 0
        self._unchecked: set[Subscription] = set()
        self._fresh: set[Subscription] = set()
        self._rebuild_scheduled = False
        self._failures = 0
        self._retry: asyncio.TimerHandle | None = None
        self._retired: list[_Watcher] = []
        self.builds = 0
        """Watchers started so far (one RustNotify each), for tests and diagnostics."""

    @property
    def watched(self) -> frozenset[str]:
        """Paths a running watcher covers for a subscription (for tests and diagnostics)."""
        return frozenset(r for r in self._placed if self._covered(r))

    @property
    def watching(self) -> frozenset[str]:
        """Every path the running watchers watch, stale ones included (for tests)."""
        return frozenset().union(*(w.roots for s in self._shards for w in s.watchers() if w.up))

    @property
    def settled(self) -> bool:
        """No watcher is starting or due to be (for tests)."""
        return self._retry is None and not any(s.starting or s.dirty for s in self._shards)

    def live_watchers(self) -> list[_Watcher]:
        """The watchers not told to stop (for tests)."""
        return [w for s in self._shards for w in s.watchers()]

    def subscribe(self, sub: Subscription) -> None:
        sub.ready = self.loop.create_future()
        if len(self._subs) >= _BUSY:  # it joins the next build, whenever that runs
            sub.joined = self.loop.create_future()
            sub.joined.set_result(None)
        else:
            sub.joined = sub.ready
        self._subs.add(sub)
        self._unchecked.add(sub)
        self._fresh.add(sub)
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
        """Stop routing to ``sub``; the last one out stops the watchers and waits for them."""
        if sub not in self._subs:
            return
        self._subs.discard(sub)
        self._unchecked.discard(sub)
        self._fresh.discard(sub)
        for waited in (sub.ready, sub.joined):
            if waited is not None and not waited.done():
                waited.cancel()
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
            if self._too_stale():
                self._schedule_rebuild()
            return
        _hubs.pop(self._key, None)
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        watchers = [*self.live_watchers(), *self._retired]
        self._shards = [_Shard(level, cap) for level, cap in enumerate(_SHARD_CAPACITY)]
        self._entries = 0
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
        self._route(sub)
        for root in sub.roots:
            self._ref(root)

    def _remove(self, sub: Subscription) -> None:
        self._unroute(sub)
        roots, sub.roots = sub.roots, ()
        for root in roots:
            self._unref(root)

    def _reroute(self, sub: Subscription) -> None:
        """Resolve ``sub`` again; a root it keeps keeps its watcher."""
        old = sub.roots
        self._unroute(sub)
        self._route(sub)
        for root in sub.roots:
            self._ref(root)
        for root in old:
            self._unref(root)

    def _route(self, sub: Subscription) -> None:
        sub.hops = _hops(sub)
        sub.roots = _roots_for(sub)
        self._by_dir.setdefault(sub.directory, set()).add(sub)
        for hop in sub.hops:
            self._by_target.setdefault(hop, set()).add(sub)
        for path in (sub.directory, *_ancestors(sub.directory)):
            self._by_path.setdefault(path, set()).add(sub)

    def _unroute(self, sub: Subscription) -> None:
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
        replaced: set[str] = set()
        for change, path in batch:
            directory, name = os.path.split(path)
            for sub in self._by_dir.get(directory, ()):
                if name == sub.name or name.startswith(".."):
                    hit.add(sub)
            hit.update(self._by_target.get(path, ()))
            # The directory itself or one of its ancestors came, went or was replaced: a
            # running watcher may hold a watch on a directory that is gone (even if a new one
            # took its name, and maybe its inode number), so new watchers must start.
            subs = self._by_path.get(path, ())
            moved.update(subs)
            if subs and change != Change.modified:
                replaced.add(path)
        hit |= moved
        # A link of the chain may now point somewhere else: follow it.
        moved.update(s for s in hit if _hops(s) != s.hops)
        for path in replaced:
            self._invalidate(path)
        if moved:
            for sub in moved:
                self._reroute(sub)
            # Re-check them once a watcher covering their new state runs: a change made
            # between this event and that moment would otherwise be seen by nobody.
            self._unchecked |= moved
            self._fresh |= moved
            self._schedule_rebuild()
        for sub in hit:
            sub.notify("watch")

    @property
    def _key(self) -> _HubKey:
        return (self.loop, self.debounce_ms, self.step_ms, self.force_polling, self.poll_delay_ms)

    # -- polling -------------------------------------------------------------------------------

    def _compare_contents_if_due(self) -> list[str]:
        """In a watcher thread: the files whose fingerprint changed since the last poll, if
        one is due (whichever watcher thread comes first does it)."""
        changed: list[str] = []
        with self._fingerprint_lock:
            now = time.monotonic()
            if now < self._next_poll:
                return changed
            self._next_poll = now + self.poll_delay_ms / 1000
            seen = self._fingerprints
            for path in self._files:
                fingerprint = _fingerprint(path)
                if seen.get(path, fingerprint) != fingerprint:
                    changed.append(path)
                seen[path] = fingerprint
        return changed

    def _content_changed(self, paths: list[str]) -> None:
        for path in paths:
            for sub in list(self._by_file.get(path, ())):
                sub.notify("watch")

    # -- the watched set -------------------------------------------------------------------

    def _ref(self, root: str) -> None:
        count = self._refs.get(root, 0)
        self._refs[root] = count + 1
        if count == 0:
            self._place(root)

    def _unref(self, root: str) -> None:
        count = self._refs[root] - 1
        if count:
            self._refs[root] = count
            return
        # Left in its shard, watched for nobody, until that shard is rebuilt anyway or stale
        # roots dominate (`_too_stale`).
        del self._refs[root], self._placed[root]

    def _place(self, root: str) -> None:
        """A root that became wanted goes to the first shard (a stale entry for it elsewhere
        stays stale: the watch it had may be on a directory replaced since)."""
        first = self._shards[0]
        if first.capacity is not None and len(first.roots) >= first.capacity:
            self._merge(0)
        self._epoch += 1
        self._placed[root] = (0, self._epoch)
        if root not in first.roots:
            first.roots.add(root)
            self._entries += 1
        first.dirty = True

    def _merge(self, level: int) -> None:
        """Move every root of shard ``level`` into the next shard; its watchers keep watching
        until one of the next shard's covers them."""
        src, dst = self._shards[level], self._shards[level + 1]
        for root in src.roots:
            placed = self._placed.get(root)
            if placed is not None and placed[0] == level and root not in dst.roots:
                self._placed[root] = (level + 1, placed[1])
                dst.roots.add(root)
            else:  # stale, or a stale entry for it is there already
                if placed is not None and placed[0] == level:
                    self._placed[root] = (level + 1, placed[1])
                self._entries -= 1
        dst.handoff += src.watchers()
        src.roots, src.current, src.starting, src.handoff = set(), None, None, []
        src.dirty = False
        dst.dirty = True
        if dst.capacity is not None and len(dst.roots) > dst.capacity:
            self._merge(level + 1)

    def _too_stale(self) -> bool:
        stale = self._entries - len(self._refs)
        return stale > max(len(self._refs), _STALE_MIN)

    def _compact(self) -> None:
        """Drop every stale root: each shard holding one is rebuilt over its live ones."""
        for shard in self._shards:
            live = {r for r in shard.roots if self._placed.get(r, (-1, 0))[0] == shard.level}
            if len(live) != len(shard.roots):
                self._entries -= len(shard.roots) - len(live)
                shard.roots = live
                shard.dirty = True

    def _invalidate(self, path: str) -> None:
        """``path`` was replaced: watchers holding it (or anything under it) cover nothing."""
        for shard in self._shards:
            for w in shard.watchers():
                if not w.stale and _under(path, w.roots):
                    w.stale = True
                    shard.dirty = True

    def _covered(self, root: str) -> bool:
        placed = self._placed.get(root)
        if placed is None:
            return False
        level, epoch = placed
        shard = self._shards[level]
        return any(
            w.up and not w.stale and w.epoch > epoch and root in w.roots
            for w in (shard.current, *shard.handoff)
            if w is not None
        )

    # -- watcher lifecycle -------------------------------------------------------------------

    def _schedule_rebuild(self) -> None:
        if not self._rebuild_scheduled:
            self._rebuild_scheduled = True
            self.loop.call_soon(self._rebuild)

    def _rebuild(self) -> None:
        self._rebuild_scheduled = False
        if not self._subs or self._retry is not None:
            return
        if self._too_stale():
            self._compact()
        for shard in self._shards:
            if shard.dirty and shard.starting is None:
                self._start(shard)
        fresh, self._fresh = self._fresh, set()
        self._recheck(fresh)

    def _start(self, shard: _Shard) -> None:
        """Start a watcher over the shard's live roots; the ones it replaces stop once it is
        up. With no live root left, the shard's watchers stop now (they cover nobody)."""
        shard.dirty = False
        live = {r for r in shard.roots if self._placed.get(r, (-1, 0))[0] == shard.level}
        self._entries -= len(shard.roots) - len(live)
        shard.roots = live
        if not live:
            for w in shard.watchers():
                self._stop(w)
            shard.current, shard.handoff = None, []
            return
        self._epoch += 1
        self.builds += 1
        shard.starting = _Watcher(self, frozenset(live), self._epoch, shard.watchers())

    def _stop(self, watcher: _Watcher) -> None:
        """Stop ``watcher``, which covers nobody."""
        watcher.stop.set()
        if not watcher.done.done():
            self._retired.append(watcher)

    def _retire(self, watcher: _Watcher) -> None:
        """Stop ``watcher``, whose successor is up, once it has delivered what it holds."""
        watcher.stop.retire()
        if not watcher.done.done():
            self._retired.append(watcher)

    def _recheck(self, subs: set[Subscription]) -> None:
        """Re-check each of ``subs`` whose roots are all covered by a running watcher."""
        for sub in subs:
            if sub not in self._unchecked:
                continue
            if sub in self._subs and all(self._covered(r) for r in sub.roots):
                self._unchecked.discard(sub)
                sub.notify("rescan")
                _resolve(sub.ready)
                _resolve(sub.joined)

    def _ready(self, watcher: _Watcher) -> None:
        if watcher.stop.requested:
            return
        watcher.up = True
        shard = next((s for s in self._shards if s.starting is watcher), None)
        if shard is not None:
            # The newest of its shard: what it replaces is covered by it now.
            shard.starting, shard.current = None, watcher
            replaced, watcher.replaces = watcher.replaces, []
            for w in replaced:
                self._retire(w)
            shard.handoff = [w for w in shard.handoff if w not in replaced]
            self._failures = 0
            if shard.dirty:
                self._schedule_rebuild()
        self._recheck(set(self._unchecked))

    def _finished(self, watcher: _Watcher, error: BaseException | None) -> None:
        if not watcher.done.done():
            watcher.done.set_result(None)
        if watcher in self._retired:
            self._retired.remove(watcher)
        if watcher.stop.requested or not self._subs:
            return
        # It ended without being asked: the Rust side raised (or a root went away at start).
        for shard in self._shards:
            if watcher in shard.watchers():
                shard.dirty = True
                if shard.current is watcher:
                    shard.current = None
                if shard.starting is watcher:
                    shard.starting = None
                shard.handoff = [w for w in shard.handoff if w is not watcher]
        self._failures += 1
        delay = backoff_delay(self._failures, _BACKOFF_FIRST, _BACKOFF_MAX)
        _log.warning(
            "watcher_restarting",
            error=f"{type(error).__name__}: {error}" if error else "stopped",
            attempt=self._failures,
            delay_s=delay,
        )
        # Anything may have changed while nothing watched the roots it held: re-resolve the
        # subscriptions that rely on them, and re-check them once a watcher covers them.
        affected = [s for s in self._subs if not watcher.roots.isdisjoint(s.roots)]
        for sub in affected:
            sub.on_watch_restart()
            self._reroute(sub)
        self._unchecked.update(affected)
        self._fresh.update(affected)
        if self._retry is not None:
            self._retry.cancel()
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
