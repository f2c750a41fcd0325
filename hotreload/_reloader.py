"""`HotReloader`: one config file kept current, validated, and swapped in atomically.

Every trigger (a watcher event, the safety poll, ``reload()``, the failure actor, the last
session ending) goes into one queue; one worker task drains it, runs the pipeline once for the
whole burst and commits. Being the only writer, it needs no lock: a commit assigns
``snapshot`` and then ``config``, each a single reference store, so a reader on any thread
sees one whole version or the other, never a mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from types import TracebackType
from typing import Generic, TypeVar

import anyio
from prometheus_client import REGISTRY, CollectorRegistry

from . import _lkg as lkg
from ._drain import DrainGate
from ._errors import ConfigApplyError, ConfigError, ConfigValidationError
from ._failures import FailureActor, FailureLedger, Mark, ToolsetFailureRecord
from ._fields import FieldPolicy, format_path
from ._file_source import FileSource
from ._kube import is_file_mount
from ._logging import ContextLogger, apply_log_level, level_number
from ._metrics import ReloaderMetrics
from ._outcome import ReloadOutcome, ReloadResult
from ._parsing import Format, format_for
from ._pipeline import Active, Evaluation, Pipeline, Validator, result_for, sha256_hex
from ._schema import schema_for
from ._snapshot import Snapshot
from ._source import Source
from ._tasks import TaskSet
from ._watch import Subscription, WatchHub, hub_for

__all__ = ["ApplyHook", "HotReloader", "Stream"]

T = TypeVar("T")
X = TypeVar("X")

#: Documents larger than this are parsed in a worker thread so the loop never stalls on them.
_INLINE_PARSE_BYTES = 64 * 1024
_OUTCOME_HISTORY = 256
_WATCH_READY_TIMEOUT = 5.0
_WATCH_RETRY_MIN, _WATCH_RETRY_MAX = 0.05, 5.0

MSG_RELOADED = "Configuration hot-reloaded successfully"
MSG_REJECTED = "Failed to apply new configuration - keeping previous"

#: Triggers that come from watching, not from a caller waiting for an answer.
_WATCH_KINDS = frozenset({"watch", "rescan", "poll"})
#: How long an empty file (an in-place write between truncate and write) is given to fill.
_EMPTY_GRACE = 0.1

#: Triggers that only ask the worker to look at the drain gate again, not at the file.
_GATE_KINDS = frozenset({"session_end", "drain_timeout"})

ApplyHook = Callable[["Snapshot[T]", "Snapshot[T]"], Awaitable[None]]
"""``async def hook(new, old)``: runs before a change is put in force; raising refuses it."""


@dataclass(slots=True)
class _Trigger:
    kind: str
    seen_at: float
    reply: asyncio.Future[ReloadOutcome] | None = None


@dataclass(frozen=True, slots=True)
class _Change(Generic[T]):
    """A validated change on its way in: committed now, or held while sessions are open."""

    active: Active[T]
    changed: tuple[str, ...]
    trigger: str
    seen_at: float
    preview: Snapshot[T]
    raw: bytes
    version: str | None = None


class Stream(Generic[X]):
    """An async iterator subscribed from the moment it is created, so nothing published after
    that is missed however late the first ``__anext__`` comes. Ends when the reloader closes;
    ``aclose()`` (or ``async with``) unsubscribes early.
    """

    def __init__(self, streams: weakref.WeakSet[Stream[X]], closed: bool) -> None:
        self._queue: asyncio.Queue[X | None] = asyncio.Queue()
        self._streams = streams
        if closed:
            self._queue.put_nowait(None)
        else:
            streams.add(self)

    def _put(self, item: X | None) -> None:
        self._queue.put_nowait(item)

    def __aiter__(self) -> Stream[X]:
        return self

    async def __anext__(self) -> X:
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        self._end()

    def _end(self) -> None:
        self._streams.discard(self)
        self._queue.put_nowait(None)

    async def __aenter__(self) -> Stream[X]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class HotReloader(Generic[T]):
    """Keeps ``config`` equal to the last valid version of ``path``.

    ``async with HotReloader("config.yaml", schema=Settings) as r:`` loads the file (an invalid
    file raises a `ConfigError` there and then), starts watching it, and stops everything when
    the block ends. ``r.config`` is the current config; ``r.snapshot`` adds its generation,
    hashes, load time and source. ``schema`` is a frozen msgspec Struct or dataclass, or a
    frozen pydantic v2 model (the ``pydantic`` extra); a mutable one is refused here.

    Keywords: ``name`` labels metrics and logs; ``registry`` and ``namespace`` place the metrics;
    ``poll_interval`` (seconds, 0 disables) is the safety re-check that catches anything the
    watcher missed; ``validators`` are called with each candidate config and refuse it by
    raising; ``max_bytes`` caps the file size; ``debounce_ms`` and ``step_ms`` are passed to the
    Rust watcher (a change is seen one to two ``step_ms`` after it happens, a burst is grouped
    for at most ``debounce_ms``); ``format`` overrides the suffix (``yaml``, ``json``,
    ``toml``); ``restart_required`` and ``secrets`` add dotted path patterns to what the schema
    marks with `RestartRequired` and `Secret`; ``log_level_field`` names the field whose value
    is applied to the stdlib ``loggers`` (root by default) on load and on every change.

    Failures (BR-HAPI-190): ``record_failure(toolset, ...)`` counts; ``failure_threshold``
    consecutive failures force a re-check, at most once per ``failure_cooldown`` seconds per
    toolset. Sessions (BR-HAPI-191): while a ``session()`` is open a valid change waits as
    ``pending``, for at most ``max_drain_wait`` seconds (0: sessions never hold changes).
    ``on_apply`` hooks, ``async def hook(new, old)``, run before a change is put in force
    (bounded by ``hook_timeout``); one that raises refuses it, and the hooks that already ran
    are called again as ``hook(old, new)`` to undo.
    """

    # Slots, not a __dict__: thousands of reloaders in one process should cost a few KB each.
    __slots__ = (
        "__weakref__",
        "_active",
        "_applied_level",
        "_closed",
        "_empty_deferred",
        "_event",
        "_failures",
        "_gate",
        "_hooks",
        "_hub",
        "_last_eval",
        "_last_key",
        "_limiter",
        "_log",
        "_log_level_field",
        "_loggers",
        "_loop",
        "_metrics",
        "_namespace",
        "_outcome_streams",
        "_outcomes",
        "_pipeline",
        "_poll_timer",
        "_registry",
        "_secrets",
        "_seen_key",
        "_seq",
        "_snapshot_streams",
        "_spawn_worker",
        "_sub",
        "_tasks",
        "_triggers",
        "_version",
        "_warned_restart",
        "_working",
        "config",
        "debounce_ms",
        "degraded",
        "hook_timeout",
        "last_outcome",
        "lkg_path",
        "name",
        "path",
        "policy",
        "poll_interval",
        "restart_required",
        "snapshot",
        "source",
        "step_ms",
    )

    config: T
    snapshot: Snapshot[T]

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        schema: type[T],
        source: Source | None = None,
        name: str = "default",
        registry: CollectorRegistry | None = None,
        namespace: str = "hotreload",
        poll_interval: float = 60.0,
        validators: Sequence[Validator[T]] = (),
        max_bytes: int = 1 << 20,
        debounce_ms: int = 50,
        step_ms: int = 10,
        format: Format | None = None,  # noqa: A002 - the natural name for it
        restart_required: Sequence[str] = (),
        secrets: Sequence[str] = (),
        log_level_field: str | None = "log_level",
        loggers: Sequence[str] = ("",),
        failure_threshold: int = 3,
        failure_cooldown: float = 60.0,
        max_drain_wait: float = 30.0,
        on_apply: Sequence[ApplyHook[T]] = (),
        hook_timeout: float = 30.0,
        lkg_path: str | os.PathLike[str] | None = None,
    ) -> None:
        kind = schema_for(schema)  # refuses a mutable schema: readers share the config
        if poll_interval < 0 or max_bytes <= 0 or debounce_ms <= 0 or step_ms <= 0:
            raise ValueError("poll_interval must be >= 0; max_bytes, debounce_ms, step_ms > 0")
        if hook_timeout <= 0:
            raise ValueError(f"hook_timeout must be > 0 seconds, got {hook_timeout!r}")
        source = _source_for(path, source, debounce_ms, step_ms)
        self.source: Source = source
        self.path = source.uri
        """The source's ``uri``: the file path for a file."""
        self.name = name
        self.poll_interval = poll_interval
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self._registry = registry
        self._namespace = namespace
        self._loggers = tuple(loggers)
        self._log_level_field = (
            log_level_field if log_level_field and kind.has_field(log_level_field) else None
        )
        checks: list[Validator[T]] = list(validators)
        if self._log_level_field is not None:
            checks.insert(0, self._check_log_level)
        self.policy = FieldPolicy(schema, restart_required=restart_required, secrets=secrets)
        self._pipeline: Pipeline[T] = Pipeline(
            schema,
            source=self.path,
            fmt=format or source.format or format_for(self.path),
            max_bytes=max_bytes,
            validators=checks,
            policy=self.policy,
        )
        self._log = ContextLogger("hotreload", config=name, source=self.path)
        self._hooks: list[ApplyHook[T]] = list(on_apply)
        self.lkg_path = None if lkg_path is None else os.fspath(lkg_path)
        self.degraded: str | None = None
        """Why the config in force is not the source's (started from the last-known-good
        copy because the source was invalid), or None. Cleared by the next valid version."""
        self.hook_timeout = hook_timeout
        self._gate: DrainGate[_Change[T]] = DrainGate(max_drain_wait, self._notify_threadsafe)
        self._failures = FailureActor(
            FailureLedger(failure_threshold, failure_cooldown),
            recheck=self._auto_reload,
            mark=self._mark,
            changed_since=self._changed_since,
            log=self._log,
            scrub=self._scrub,
        )
        self._init_state()
        self.last_outcome: ReloadOutcome | None = None
        self.restart_required: tuple[str, ...] = ()
        """Restart-required fields whose new value in the file is not in force yet."""

    def _init_state(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = True
        # Lean on purpose (a reloader should cost a few KB): plain lists, and the wake-up
        # future, event and stream sets only exist while something waits on them.
        self._triggers: list[_Trigger] = []
        self._working = False
        self._spawn_worker: Callable[[], object] | None = None
        self._tasks: TaskSet | None = None
        self._poll_timer: asyncio.TimerHandle | None = None
        self._snapshot_streams: weakref.WeakSet[Stream[Snapshot[T]]] | None = None
        self._outcome_streams: weakref.WeakSet[Stream[ReloadOutcome]] | None = None
        self._outcomes: list[tuple[int, ReloadOutcome]] = []
        self._seq = 0
        self._event: asyncio.Event | None = None
        self._last_key: str | None = None
        self._seen_key: str | None = None
        self._last_eval: Evaluation[T] | None = None
        self._warned_restart: dict[tuple[str, ...], str] = {}
        self._applied_level: int | None = None
        self._version: str | None = None
        self._secrets: list[str] = []
        self._empty_deferred = False
        self._hub: WatchHub | None = None
        self._sub: Subscription | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> HotReloader[T]:
        if self._tasks is not None:
            raise RuntimeError("this HotReloader is already running")
        started = time.perf_counter()
        try:
            first = await self.source.read(self._pipeline.max_bytes)
            active = self._pipeline.load(first.content)  # fail fast: raises
            raw, self._version = first.content, first.version
        except ConfigError as exc:
            active, raw = self._last_known_good(exc)  # or raises exc
            self._version = None
        self._seen_key = active.content_sha256
        if isinstance(self.source, FileSource) and is_file_mount(self.path):
            self._log.warning(
                "config_file_is_a_subpath_mount",
                detail="kubelet never updates a subPath mount: mount the directory instead",
            )
        self._triggers = []
        self._loop = asyncio.get_running_loop()
        self._limiter: anyio.CapacityLimiter | None = None  # made on the first large file
        self._metrics = ReloaderMetrics(self.name, self._registry, self._namespace)
        self._commit(
            active, trigger="initial", started=started, changed=(), seen_at=started, raw=raw
        )
        self._metrics.degraded.set(0 if self.degraded is None else 1)
        tasks = self._tasks = TaskSet(self._log)
        self._closed = False
        try:
            # Tasks exist only while there is work: the worker starts with a burst of triggers
            # and ends when it is drained, the failure actor starts with the first failure.
            # An idle reloader holds no task at all, so it costs a few KB, not tens.
            self._spawn_worker = lambda: tasks.spawn(
                self._worker, name=f"hotreload-worker[{self.name}]"
            )
            self._failures.attach(
                self._loop,
                lambda: tasks.spawn(
                    lambda: self._failures.run(
                        lambda fn: tasks.spawn(fn, name=f"hotreload-auto-reload[{self.name}]"),
                        self._metrics.toolsets,
                    ),
                    name=f"hotreload-failures[{self.name}]",
                ),
            )
            if self.poll_interval > 0:  # a timer, not a task: a few hundred bytes, not KBs
                self._poll_timer = self._loop.call_later(self.poll_interval, self._poll)
            source = self.source
            if isinstance(source, FileSource):  # the hub's subscription: no task needed
                self._hub = hub_for(source.debounce_ms, source.step_ms)
                self._sub = Subscription(self.path, self._notify, self._metrics.watch_restarts.inc)
                self._hub.subscribe(self._sub)
                assert self._sub.ready is not None  # noqa: S101 - set by subscribe
                await self._watching(self._sub.ready)
            else:
                watching: asyncio.Future[None] = self._loop.create_future()
                tasks.spawn(lambda: self._watch(watching), name=f"hotreload-watch[{self.name}]")
                await self._watching(watching)
        except BaseException:
            await self._close()
            raise
        return self

    async def _watch(self, watching: asyncio.Future[None]) -> None:
        """Run a (non-file) source's watch for as long as the reloader runs; restart it if it
        stops. Each time the watch is up, the source is re-checked, so a change between the
        first read (or a disconnect) and the watch being established is never missed.
        """
        source = self.source

        def ready() -> None:
            if not watching.done():
                watching.set_result(None)
            self._notify("rescan")

        delay = _WATCH_RETRY_MIN
        while True:
            try:
                await source.watch(self._notify, ready)
                problem = "returned"
            except Exception as exc:  # noqa: BLE001 - a source bug must not stop reloading
                problem = f"{type(exc).__name__}: {exc}"
            self._metrics.watch_restarts.inc()
            self._log.error("source_watch_failed", error=problem, retry_in_s=delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, _WATCH_RETRY_MAX)

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

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        tasks, self._tasks = self._tasks, None
        if tasks is None:
            return
        self._spawn_worker = None
        if self._poll_timer is not None:
            self._poll_timer.cancel()
            self._poll_timer = None
        self._failures.detach()
        try:
            await tasks.aclose()
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        self._closed = True
        self._gate.take()
        hub, sub, self._hub, self._sub = self._hub, self._sub, None, None
        try:
            if hub is not None and sub is not None:
                await hub.unsubscribe(sub)
        finally:  # also when cancelled: streams end, the name is released, waiters wake
            self._release_all()

    def _release_all(self) -> None:
        for snapshots in list(self._snapshot_streams or ()):
            snapshots._end()
        for outcomes in list(self._outcome_streams or ()):
            outcomes._end()
        triggers, self._triggers = self._triggers, []
        for trigger in triggers:
            pending = trigger.reply
            if pending is not None and not pending.done():
                pending.cancel()
        self._metrics.close()
        if self._event is not None:
            self._event.set()

    # -- public API ---------------------------------------------------------------------------

    async def reload(self) -> ReloadOutcome:
        """Re-check the file now, through the same worker as every other trigger.

        A valid change found while sessions are open is held back: ``outcome.deferred``.
        """
        return await self._request("manual")

    def changes(self) -> Stream[Snapshot[T]]:
        """Each snapshot committed from now on, in order. Ends when the reloader closes."""
        if self._snapshot_streams is None:
            self._snapshot_streams = weakref.WeakSet()
        return Stream(self._snapshot_streams, self._closed)

    def outcomes(self) -> Stream[ReloadOutcome]:
        """Each re-check's outcome from now on (changed, unchanged or rejected), in order."""
        if self._outcome_streams is None:
            self._outcome_streams = weakref.WeakSet()
        return Stream(self._outcome_streams, self._closed)

    async def wait_for_generation(
        self, generation: int, *, timeout: float | None = None
    ) -> Snapshot[T]:
        """Wait until ``snapshot.generation >= generation``; TimeoutError after ``timeout`` s."""
        with anyio.fail_after(timeout):
            while self.snapshot.generation < generation:
                self._check_open()
                await self._next_event()
        return self.snapshot

    async def wait_for_outcome(
        self,
        match: ReloadResult | Callable[[ReloadOutcome], bool] | None = None,
        *,
        timeout: float | None = None,
    ) -> ReloadOutcome:
        """The next outcome from now on that is ``match`` (a result, or a predicate)."""
        seen = self._seq
        with anyio.fail_after(timeout):
            while True:
                for seq, outcome in self._outcomes:
                    if seq > seen:
                        seen = seq
                        if _matches(match, outcome):
                            return outcome
                self._check_open()
                await self._next_event()

    # -- failures (BR-HAPI-190) ------------------------------------------------------------------

    def record_failure(
        self, toolset: str, error_type: str | None = None, error_message: str | None = None
    ) -> None:
        """Count a failure of ``toolset``; from the loop or any thread, never blocks.

        ``failure_threshold`` consecutive failures force a re-check (unless the toolset's
        cooldown is active); only a config change resets the count.
        """
        self._failures.record_failure(toolset, error_type, error_message)

    def record_success(self, toolset: str) -> None:
        """``toolset`` worked: reset its consecutive failures (never its total)."""
        self._failures.record_success(toolset)

    @property
    def failures(self) -> Mapping[str, ToolsetFailureRecord]:
        """Read-only view, toolset name → its record, as of the last message handled."""
        return self._failures.ledger.view

    async def failures_settled(self) -> None:
        """Wait until every failure and success recorded so far has been handled, and any
        re-check they forced has finished. For tests and orderly shutdowns."""
        await self._failures.settled()

    async def _auto_reload(self) -> ReloadOutcome:
        return await self._request("auto_reload")

    def _scrub(self, text: str) -> str:
        """``text`` with the config's secret values masked (a tool error may quote a key)."""
        for value in self._secrets:
            text = text.replace(value, "***")
        return text

    def _mark(self) -> Mark:
        return Mark(self.snapshot.generation, self._gate.pending_seq)

    def _changed_since(self, mark: Mark) -> bool:
        pending = self._gate.pending
        return self.snapshot.generation > mark.generation or (
            pending is not None and pending.seq > mark.pending_seq
        )

    # -- sessions (BR-HAPI-191) ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def session(self, session_id: Hashable | None = None) -> AsyncIterator[Snapshot[T]]:
        """Pin the snapshot in force for one long unit of work, and hold changes back.

        While any session is open a valid change waits as ``pending``; it is committed when
        the last session ends, or ``max_drain_wait`` after it started waiting. The session
        keeps the snapshot it was given either way. For one snapshot per web request without
        holding anything back, read ``reloader.snapshot`` once instead.
        """
        key: Hashable = object() if session_id is None else session_id
        if not self.register_session(key):
            raise RuntimeError(f"session {session_id!r} is already open")
        try:
            yield self.snapshot
        finally:
            self.unregister_session(key)

    def register_session(self, session_id: Hashable) -> bool:
        """Open a session by id (any thread); False if it was open already."""
        if self._closed:
            raise RuntimeError("the reloader is not running: sessions need `async with`")
        opened = self._gate.open(session_id)
        if opened:
            self._metrics.active_sessions.set(self._gate.sessions)
            self._log.debug("session_registered", active_sessions=self._gate.sessions)
        return opened

    def unregister_session(self, session_id: Hashable) -> bool:
        """Close a session (any thread); False if it was not open. Safe after shutdown."""
        closed = self._gate.close(session_id)
        if closed and not self._closed:
            self._metrics.active_sessions.set(self._gate.sessions)
            self._log.debug("session_unregistered", active_sessions=self._gate.sessions)
        return closed

    @property
    def pending_since(self) -> datetime | None:
        """When the pending change started waiting (UTC), or None."""
        pending = self._gate.pending
        return None if pending is None else datetime.fromtimestamp(pending.since_unix, timezone.utc)

    @property
    def registry(self) -> CollectorRegistry:
        """The prometheus registry this reloader's metrics are on."""
        return REGISTRY if self._registry is None else self._registry

    @property
    def active_sessions(self) -> int:
        """How many sessions are open."""
        return self._gate.sessions

    @property
    def pending(self) -> Snapshot[T] | None:
        """The valid change waiting for sessions to end (as it will be committed), or None."""
        pending = self._gate.pending
        return None if pending is None else pending.change.preview

    def add_apply_hook(self, hook: ApplyHook[T]) -> ApplyHook[T]:
        """Register an ``on_apply`` hook (usable as a decorator); runs in registration order."""
        self._hooks.append(hook)
        return hook

    # -- triggers -------------------------------------------------------------------------------

    def _notify(self, kind: str) -> None:
        if not self._closed:
            self._put(_Trigger(kind, time.perf_counter()))

    def _put(self, trigger: _Trigger) -> None:
        self._triggers.append(trigger)
        if not self._working and self._spawn_worker is not None:
            self._working = True
            self._spawn_worker()

    def _notify_threadsafe(self, kind: str) -> None:
        loop = self._loop
        if loop is None or self._closed:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._notify(kind)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing to wake
                loop.call_soon_threadsafe(self._notify, kind)

    async def _request(self, kind: str) -> ReloadOutcome:
        if self._closed:
            raise RuntimeError("the reloader is not running (use `async with`)")
        reply: asyncio.Future[ReloadOutcome] = asyncio.get_running_loop().create_future()
        self._put(_Trigger(kind, time.perf_counter(), reply))
        return await reply

    def _poll(self) -> None:
        if self._closed or self._loop is None:
            return
        self._notify("poll")
        self._poll_timer = self._loop.call_later(self.poll_interval, self._poll)

    async def _worker(self) -> None:
        """The only writer: drains the triggers a burst at a time, then ends (``_put`` starts
        a new one for the next burst; there is never more than one)."""
        try:
            while self._triggers:
                batch, self._triggers = self._triggers, []
                try:
                    outcome = await self._check(batch)
                except Exception as exc:  # noqa: BLE001 - a bug must not stop reloading
                    self._log.exception("reload_worker_error", error=repr(exc))
                    error = ConfigError(self.path, f"internal error: {type(exc).__name__}: {exc}")
                    outcome = self._record_outcome(
                        ReloadResult.ERROR, batch, time.perf_counter(), error=error
                    )
                for trig in batch:
                    if trig.reply is not None and not trig.reply.done():
                        assert outcome is not None  # noqa: S101 - replies come with file checks
                        trig.reply.set_result(outcome)
        finally:
            self._working = False

    # -- one check -----------------------------------------------------------------------------

    async def _check(self, batch: list[_Trigger]) -> ReloadOutcome | None:
        """Re-check the file for this burst of triggers, then release a pending change if
        the gate allows. Returns the outcome the burst's callers get (None: nothing to say)."""
        started = time.perf_counter()
        outcome = None
        if any(t.kind not in _GATE_KINDS for t in batch):
            outcome = await self._check_file(
                [t for t in batch if t.kind not in _GATE_KINDS], started
            )
        if self._gate.pending is not None and not self._gate.holding:
            outcome = await self._release(batch, started) or outcome
        return outcome

    async def _check_file(self, batch: list[_Trigger], started: float) -> ReloadOutcome | None:
        active = self._active
        try:
            revision = await self.source.read(self._pipeline.max_bytes)
            raw = revision.content
            version = revision.version
            if self._mid_write(raw, batch):
                return None
        except ConfigError as exc:
            version = None
            evaluation: Evaluation[T] = Evaluation(result_for(exc), "", error=exc)
            key = f"{exc.reason}:{exc.message}"
        else:
            key = sha256_hex(raw)
            if key == self._last_key and self._last_eval is not None:
                evaluation = self._last_eval
            elif len(raw) > _INLINE_PARSE_BYTES:
                if self._limiter is None:
                    self._limiter = anyio.CapacityLimiter(1)
                evaluation = await anyio.to_thread.run_sync(
                    self._pipeline.evaluate, raw, active, key, limiter=self._limiter
                )
                # Cancelled while the thread ran (shutdown): drop the result, commit nothing.
                await anyio.lowlevel.checkpoint_if_cancelled()
            else:
                evaluation = self._pipeline.evaluate(raw, active, key)
        repeat = key == self._last_key
        if key != self._seen_key and all(t.kind == "poll" for t in batch):
            self._metrics.missed.inc()
            self._log.warning("watch_missed_event", detected_by="poll")
        self._seen_key = key
        kinds = [t.kind for t in batch]
        trigger = next((k for k in ("manual", "auto_reload") if k in kinds), kinds[0])
        seen_at = min(t.seen_at for t in batch)
        if evaluation.result is ReloadResult.CONFIG_CHANGED and evaluation.candidate is not None:
            self._last_key, self._last_eval = None, None
            self._note_restart_required(evaluation)
            change = _Change(
                evaluation.candidate,
                evaluation.changed,
                trigger,
                seen_at,
                self._snapshot_of(evaluation.candidate, self.snapshot.generation + 1, version),
                raw,
                version,
            )
            if self._gate.holding:
                return self._hold(change, batch, started)
            return await self._apply(change, started=started, batch=batch)
        self._last_key, self._last_eval = key, evaluation
        if evaluation.error is not None:
            if not repeat:
                self._reject(evaluation.error, evaluation.result, trigger)
        else:
            self._note_restart_required(evaluation)
            self._recovered()  # the source is valid again, and equal to what is in force
            if self._gate.pending is not None:
                self._gate.take()
                self._metrics.pending.set(0)
                self._log.info(
                    "pending_reload_cancelled_config_reverted",
                    config_hash=active.config_hash,
                    detail="the source is back to the config in force",
                )
            if not repeat:
                self._metrics.last_ok.set(1)
                self._log.debug("config_unchanged", trigger=trigger, config_hash=active.config_hash)
        return self._record_outcome(
            evaluation.result, batch, started, error=evaluation.error, trigger=trigger
        )

    def _mid_write(self, raw: bytes, batch: list[_Trigger]) -> bool:
        """An empty file seen by the watcher is most often an in-place write caught between
        its truncate and its write: look again shortly instead of logging a failure. If it is
        still empty then (or a caller asked), it is refused like any other bad version."""
        if raw or not isinstance(self.source, FileSource) or self._empty_deferred:
            self._empty_deferred = False
            return False
        if any(t.kind not in _WATCH_KINDS for t in batch) or self._loop is None:
            return False
        self._empty_deferred = True
        self._loop.call_later(_EMPTY_GRACE, self._notify, "watch")
        return True

    # -- the drain gate ------------------------------------------------------------------------

    def _hold(self, change: _Change[T], batch: list[_Trigger], started: float) -> ReloadOutcome:
        previous = self._gate.pending
        self._gate.hold(change)
        self._metrics.pending.set(1)
        if previous is None or previous.change.active.config_hash != change.active.config_hash:
            self._log.info(
                "toolset_reload_queued_active_sessions",
                active_sessions=self._gate.sessions,
                config_hash=change.active.config_hash,
                changed=list(change.changed),
                max_drain_wait=self._gate.max_wait,
            )
        now = time.perf_counter()
        outcome = ReloadOutcome(
            at=time.time(),
            result=ReloadResult.CONFIG_CHANGED,
            applied=False,
            deferred=True,
            generation=self.snapshot.generation,
            trigger=change.trigger,
            duration=now - started,
            latency=now - min(t.seen_at for t in batch),
            config_hash=self.snapshot.config_hash,
            changed=change.changed,
            restart_required=self.restart_required,
        )
        self._publish(outcome)
        if not self._gate.holding:  # the last session ended while we parked it
            self._notify("session_end")
        return outcome

    async def _release(self, batch: list[_Trigger], started: float) -> ReloadOutcome | None:
        gate = self._gate
        timed_out = gate.sessions > 0
        pending = gate.take()
        self._metrics.pending.set(0)
        if pending is None:
            return None
        assert self._loop is not None  # noqa: S101 - running
        waited = round(self._loop.time() - pending.since, 3)
        if timed_out:
            self._log.warning(
                "pending_reload_applied_after_max_drain_wait",
                active_sessions=gate.sessions,
                waited_s=waited,
                detail="open sessions keep the snapshot they pinned",
            )
        else:
            self._log.info("last_session_completed_applying_pending_reload", waited_s=waited)
        change = dataclasses.replace(
            pending.change, trigger="drain_timeout" if timed_out else "session_end"
        )
        return await self._apply(change, started=started, batch=batch)

    # -- commit ------------------------------------------------------------------------------------

    async def _apply(
        self, change: _Change[T], *, started: float, batch: list[_Trigger]
    ) -> ReloadOutcome:
        """Run the apply hooks, then swap; a hook that raises keeps the previous config."""
        old = self.snapshot
        new = self._snapshot_of(change.active, old.generation + 1, change.version)
        error = await self._run_hooks(new, old, change.active)
        if error is not None:
            self._reject(error, ReloadResult.ERROR, change.trigger)
            return self._record_outcome(
                ReloadResult.ERROR, batch, started, error=error, trigger=change.trigger
            )
        return self._commit(
            change.active,
            trigger=change.trigger,
            started=started,
            changed=change.changed,
            seen_at=change.seen_at,
            snapshot=new,
            raw=change.raw,
        )

    async def _run_hooks(
        self, new: Snapshot[T], old: Snapshot[T], active: Active[T]
    ) -> ConfigApplyError | None:
        done: list[ApplyHook[T]] = []
        for hook in list(self._hooks):
            try:
                with anyio.fail_after(self.hook_timeout):
                    await hook(new, old)
            except Exception as exc:  # noqa: BLE001 - any hook failure refuses the change
                name = _hook_name(hook)
                text = "timed out" if isinstance(exc, TimeoutError) else f"{exc}"
                message = self.policy.scrub(
                    self.policy.scrub(
                        f"apply hook {name} failed: {type(exc).__name__}: {text}", active.builtins
                    ),
                    self._active.builtins,
                )
                self._log.error(
                    "apply_hook_failed",
                    hook=name,
                    error_type=type(exc).__name__,
                    rolled_back=len(done),
                    config_hash=new.config_hash,
                )
                for undo in reversed(done):
                    try:
                        with anyio.fail_after(self.hook_timeout):
                            await undo(old, new)
                    except Exception as undo_exc:  # noqa: BLE001 - best effort, reported
                        self._log.error(
                            "apply_hook_rollback_failed",
                            hook=_hook_name(undo),
                            error_type=type(undo_exc).__name__,
                        )
                return ConfigApplyError(self.path, message, hook=name)
            done.append(hook)
        return None

    def _snapshot_of(self, active: Active[T], generation: int, version: str | None) -> Snapshot[T]:
        return Snapshot(
            config=active.config,
            generation=generation,
            config_hash=active.config_hash,
            content_sha256=active.content_sha256,
            loaded_at=datetime.fromtimestamp(time.time(), timezone.utc),
            source=self.path,
            version=version,
        )

    def _commit(
        self,
        active: Active[T],
        *,
        trigger: str,
        started: float,
        changed: tuple[str, ...],
        seen_at: float,
        raw: bytes,
        snapshot: Snapshot[T] | None = None,
    ) -> ReloadOutcome:
        initial = trigger == "initial"
        previous = None if initial else self.snapshot.config_hash
        if snapshot is None:
            generation = 1 if initial else self.snapshot.generation + 1
            snapshot = self._snapshot_of(active, generation, self._version)
        generation = snapshot.generation
        # The swap: two reference stores, snapshot first, each atomic for any reader.
        self._active = active
        self._secrets = sorted(self.policy.secret_values(active.builtins), key=len, reverse=True)
        self.snapshot = snapshot
        self.config = active.config
        self._apply_log_level(active.config)
        done = time.perf_counter()
        self._metrics.committed(generation, active.config_hash, snapshot.loaded_at.timestamp())
        if initial:
            self._log.info("config_loaded", generation=generation, config_hash=active.config_hash)
        else:
            self._metrics.reload_total.inc()
            self._metrics.latency.observe(done - seen_at)
            self._log.info(
                MSG_RELOADED,
                generation=generation,
                config_hash=active.config_hash,
                previous_config_hash=previous,
                changed=list(changed),
                trigger=trigger,
                duration_ms=round((done - started) * 1000, 3),
            )
        if not initial:
            self._recovered()
        if self.lkg_path is not None and (not initial or self.degraded is None):
            self._save_last_known_good(snapshot, raw)
        for stream in list(self._snapshot_streams or ()):
            stream._put(snapshot)
        outcome = ReloadOutcome(
            at=time.time(),
            result=ReloadResult.CONFIG_CHANGED,
            applied=True,
            generation=generation,
            trigger=trigger,
            duration=done - started,
            latency=done - seen_at,
            config_hash=active.config_hash,
            changed=changed,
            restart_required=self.restart_required,
        )
        return self._publish(outcome)

    def _record_outcome(
        self,
        result: ReloadResult,
        batch: list[_Trigger],
        started: float,
        *,
        error: ConfigError | None,
        trigger: str | None = None,
    ) -> ReloadOutcome:
        now = time.perf_counter()
        outcome = ReloadOutcome(
            at=time.time(),
            result=result,
            applied=False,
            generation=self.snapshot.generation,
            trigger=trigger or batch[0].kind,
            duration=now - started,
            latency=now - min(t.seen_at for t in batch),
            config_hash=self.snapshot.config_hash,
            error=error,
            restart_required=self.restart_required,
        )
        return self._publish(outcome)

    def _publish(self, outcome: ReloadOutcome) -> ReloadOutcome:
        self.last_outcome = outcome
        self._seq += 1
        self._outcomes.append((self._seq, outcome))
        if len(self._outcomes) > _OUTCOME_HISTORY:
            del self._outcomes[: _OUTCOME_HISTORY // 2]
        for stream in list(self._outcome_streams or ()):
            stream._put(outcome)
        event, self._event = self._event, None
        if event is not None:
            event.set()
        return outcome

    def _reject(self, error: ConfigError, result: ReloadResult, trigger: str) -> None:
        self._metrics.failure(error.reason)
        self._log.error(
            MSG_REJECTED,
            result=result.value,
            reason=error.reason,
            error=str(error),
            file=error.source,
            line=getattr(error, "line", None),
            column=getattr(error, "column", None),
            field_path=getattr(error, "field_path", None),
            trigger=trigger,
            config_hash=self.snapshot.config_hash,
            generation=self.snapshot.generation,
        )

    def _note_restart_required(self, evaluation: Evaluation[T]) -> None:
        wanted = evaluation.restart_required
        self.restart_required = tuple(format_path(path) for path, _ in wanted)
        self._metrics.restart_required.set(len(wanted))
        for path, digest in wanted:
            if self._warned_restart.get(path) != digest:
                self._warned_restart[path] = digest
                self._log.warning(
                    "config_restart_required_field_changed",
                    field=format_path(path),
                    detail="the running value stays in force until the process restarts",
                )
        for path in [p for p in self._warned_restart if p not in dict(wanted)]:
            del self._warned_restart[path]

    # -- last known good -----------------------------------------------------------------------

    def _last_known_good(self, error: ConfigError) -> tuple[Active[T], bytes]:
        """Start on the cached copy when the source is invalid; re-raise ``error`` otherwise."""
        if self.lkg_path is None:
            raise error
        try:
            cached = lkg.load(self.lkg_path)
            raw = cached.content.encode()
            active = self._pipeline.load(raw)
        except FileNotFoundError:
            raise error from None
        except (OSError, ValueError, ConfigError) as exc:  # msgspec errors are ValueErrors
            self._log.error(
                "last_known_good_unusable", path=self.lkg_path, error=type(exc).__name__
            )
            raise error from None
        self.degraded = f"started from the last-known-good copy: the source is invalid: {error}"
        self._log.error(
            "config_started_from_last_known_good",
            error=str(error),
            reason=error.reason,
            lkg_path=self.lkg_path,
            cached_generation=cached.generation,
            cached_config_hash=cached.config_hash,
            saved_at=cached.saved_at.isoformat(),
        )
        return active, raw

    def _save_last_known_good(self, snapshot: Snapshot[T], raw: bytes) -> None:
        assert self.lkg_path is not None  # noqa: S101 - checked by the caller
        try:
            cached = lkg.Cached(
                source=self.path,
                content=raw.decode(),
                content_sha256=snapshot.content_sha256,
                config_hash=snapshot.config_hash,
                generation=snapshot.generation,
                saved_at=snapshot.loaded_at,
            )
            lkg.save(self.lkg_path, cached)
        except (OSError, ValueError) as exc:  # a safety net: never fail a commit over it
            self._log.warning("last_known_good_write_failed", path=self.lkg_path, error=str(exc))

    def _recovered(self) -> None:
        if self.degraded is not None:
            self.degraded = None
            self._metrics.degraded.set(0)
            self._log.info("config_recovered_from_last_known_good")

    # -- log level -------------------------------------------------------------------------------

    def _check_log_level(self, config: T) -> None:
        value = getattr(config, self._log_level_field or "", None)
        if value is None:
            return
        try:
            level_number(value)
        except ValueError as exc:
            raise ConfigValidationError(
                self.path, str(exc), field_path=self._log_level_field or "", reason="validator"
            ) from None

    def _apply_log_level(self, config: T) -> None:
        if self._log_level_field is None:
            return
        value = getattr(config, self._log_level_field, None)
        if value is None:
            return
        level = level_number(value)
        if level != self._applied_level:
            apply_log_level(level, self._loggers)
            if self._applied_level is not None:
                self._log.info("log_level_applied", new_level=logging.getLevelName(level))
            self._applied_level = level

    # -- helpers -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the reloader closed while waiting")

    async def _next_event(self) -> None:
        if self._event is None:
            self._event = asyncio.Event()
        await self._event.wait()

    def __repr__(self) -> str:
        gen = self.snapshot.generation if hasattr(self, "snapshot") else None
        return f"<HotReloader {self.name!r} {self.path!r} generation={gen}>"


def _source_for(
    path: str | os.PathLike[str] | None, source: Source | None, debounce_ms: int, step_ms: int
) -> Source:
    if source is None:
        if path is None:
            raise TypeError("give HotReloader a path or a source=, one of them")
        return FileSource(path, debounce_ms=debounce_ms, step_ms=step_ms)
    if path is not None:
        raise TypeError("give HotReloader a path or a source=, not both")
    if not isinstance(source, Source):
        raise TypeError(f"source must implement hotreload.Source, got {source!r}")
    return source


def _hook_name(hook: Callable[..., object]) -> str:
    return getattr(hook, "__qualname__", None) or repr(hook)


def _matches(
    match: ReloadResult | Callable[[ReloadOutcome], bool] | None, outcome: ReloadOutcome
) -> bool:
    if match is None:
        return True
    if isinstance(match, ReloadResult):
        return outcome.result is match
    return bool(match(outcome))
