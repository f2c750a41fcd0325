"""`HotReloader`: one config file kept current, validated, and swapped in atomically.

This is the façade: construction, lifecycle and the public API. The rest is stacked under it
as mixins, one concern per module, each owning the slots of its state: sessions
(`_sessions`); a source's own watch (`_supervise`); the reload worker, the only writer
(`_worker`); streams and waits (`_streams`); apply hooks (`_hooks`); the last-known-good copy
(`_lkg`); the log-level switch (`_loglevel`). Two small API mixins sit beside them: derived
resources (`_derive.Deriving`) and failure reports (`_failures.FailureReporting`). What to
commit is decided in one pure place (`_decide`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry

from . import _sighup
from ._derive import DerivedSet, Deriving
from ._drain import DrainGate
from ._errors import ConfigBuildError, ConfigError
from ._failures import FailureActor, FailureLedger, FailureReporting, Mark
from ._fields import FieldPolicy
from ._hooks import HOOK_SLOTS, ApplyHook, Hooks
from ._layers import LayerItem, source_for
from ._lkg import LKG_SLOTS, LastKnownGood
from ._logging import ContextLogger
from ._loglevel import LOG_LEVEL_SLOTS, LogLevelSwitch
from ._metrics import ReloaderMetrics
from ._options import Failures, Fields, LogLevel, check_options
from ._outcome import ReloadOutcome
from ._parsing import format_for
from ._pipeline import Pipeline, Validator
from ._present import Explained, explain, to_builtins
from ._probation import Probation
from ._rollback import PROBATION_SLOTS, Probationer
from ._rollout import ROLLOUT_SLOTS, Rollout, Rollouts
from ._schema import schema_for
from ._sessions import Sessions
from ._snapshot import Snapshot
from ._source import Attached, Source, wiring_for
from ._streams import STREAM_SLOTS, Stream, Streams
from ._supervise import SourceWatch
from ._tasks import TaskSet
from ._worker import WORKER_SLOTS, Worker, _Change

__all__ = ["ApplyHook", "HotReloader", "Stream"]

T = TypeVar("T")


_FIELDS, _FAILURES, _LOG_LEVEL = Fields(), Failures(), LogLevel()

#: What `HotReloader` sets when it starts: read before then, an error that says so.
_LOADED_ON_START = frozenset({"config", "snapshot", "_active", "_metrics"})


class HotReloader(
    Sessions[T],
    SourceWatch[T],
    Worker[T],
    Streams[T],
    Hooks[T],
    LastKnownGood[T],
    LogLevelSwitch[T],
    Deriving[T],
    Probationer[T],
    Rollouts[T],
    FailureReporting,
):
    """Keeps ``config`` equal to the last valid version of ``source``.

    ``async with HotReloader("config.yaml", schema=Settings) as r:`` loads the file (an invalid
    file raises a `ConfigError` there and then), starts watching it, and stops everything when
    the block ends. ``r.config`` is the current config; ``r.snapshot`` adds its generation,
    hashes, load time and source. ``schema`` is a frozen msgspec Struct or dataclass, or a
    frozen pydantic v2 model (the ``pydantic`` extra); a mutable one is refused here.

    ``source`` is a path (a `FileSource`), a list (paths, `Layer` objects, other sources:
    deep-merged in order as one config, later ones winning), or any `Source` (`FileSource`,
    `Layers`, `EtcdSource`). How a file is watched (``debounce_ms``, ``step_ms``,
    ``force_polling``, ``settle_ms``, ``format``) is the source's business:
    ``FileSource(path, ...)``.
    ``env_prefix`` adds ``PREFIX_A__B`` environment variables on top (see `Layers`);
    ``explain()`` says where each value came from.

    Keywords: ``name`` labels metrics and logs; ``registry`` and ``namespace`` place the
    metrics; ``watch=False`` loads once and changes only on ``reload()``; ``poll_interval``
    (seconds, 0 disables) is the safety re-check that catches anything the watcher missed;
    ``max_bytes`` caps the document; ``validators`` are called with each candidate config and
    refuse it by raising; keys the schema does not declare (when it allows them) are named in
    ``unknown_keys``, and ``strict=True`` refuses a version that has any. ``fields``
    (`Fields`) adds restart-required, refused and secret path patterns to the schema's
    markers; ``failures`` (`Failures`): that many consecutive ``record_failure(name, ...)``
    force a re-check, at most once per cooldown per dependency; ``log_level`` (`LogLevel`)
    names the field applied to stdlib loggers (``None``: leave logging alone).

    Sessions: while a ``session()`` is open a valid change waits as ``pending``, for at most
    ``max_drain_wait`` seconds (0: sessions never hold changes). ``on_apply`` hooks,
    ``async def hook(new, old)``, run before a change is put in force (bounded by
    ``hook_timeout``); one that raises refuses it, and the hooks that already ran are called
    again as ``hook(old, new)`` to undo. A version a hook refused is tried again by
    ``reload()``, not by watch events or forced re-checks. `derive` keeps a resource built
    from the config (a client, a pool) in step with it. ``lkg_path`` keeps a copy of the last
    committed version to start from when the source is bad at start-up.

    ``probation`` (`Probation`) puts each commit on probation: a dependency healthy at the
    commit that reaches ``failures`` consecutive failures inside the window (or a ``check``
    that fails) rolls it back (trigger ``rollback``) and quarantines its ``config_hash``
    (``quarantined``; lifted by ``release``). Off by default.

    ``rollout`` (`Rollout`, with ``probation``) rolls each new ``config_hash`` out across a
    fleet through etcd: one canary proves it on probation and writes the verdict; the
    followers hold it until the verdict says ``good``, and quarantine it on ``bad``.
    """

    # Slots, not a __dict__: thousands of reloaders in one process should cost a few KB each.
    # The parts above stand side by side (none has slots of its own, so none must sit on
    # another); the façade holds the slots of the state each part owns, then its own.
    __slots__ = (
        *WORKER_SLOTS,
        *STREAM_SLOTS,
        *HOOK_SLOTS,
        *LKG_SLOTS,
        *LOG_LEVEL_SLOTS,
        *PROBATION_SLOTS,
        *ROLLOUT_SLOTS,
        "__weakref__",
        "_attached",
        "_closed",
        "_derived",
        "_failures",
        "_log",
        "_metrics",
        "_namespace",
        "_pipeline",
        "_registry",
        "_tasks",
        "name",
        "path",
        "policy",
        "poll_interval",
        "source",
        "watch",
    )

    config: T
    snapshot: Snapshot[T]

    def __init__(
        self,
        source: str | os.PathLike[str] | Sequence[LayerItem] | Source | None = None,
        *,
        schema: type[T],
        env_prefix: str | None = None,
        name: str = "default",
        registry: CollectorRegistry | None = None,
        namespace: str = "hotreload",
        watch: bool = True,
        poll_interval: float = 60.0,
        max_bytes: int = 1 << 20,
        validators: Sequence[Validator[T]] = (),
        strict: bool = False,
        fields: Fields = _FIELDS,
        failures: Failures = _FAILURES,
        log_level: LogLevel | None = _LOG_LEVEL,
        max_drain_wait: float = 30.0,
        on_apply: Sequence[ApplyHook[T]] = (),
        hook_timeout: float = 30.0,
        lkg_path: str | os.PathLike[str] | None = None,
        probation: Probation | None = None,
        rollout: Rollout | None = None,
    ) -> None:
        kind = schema_for(schema)  # refuses a mutable schema: readers share the config
        check_options(poll_interval=poll_interval, max_bytes=max_bytes, hook_timeout=hook_timeout)
        source = source_for(source, env_prefix=env_prefix)
        self.source: Source = source
        wiring = wiring_for(source)
        self._may_be_mid_write = wiring.empty_may_be_mid_write
        self._settle = wiring.settle
        self.path = source.uri
        """The source's ``uri``: the file path for a file."""
        self.name = name
        self.poll_interval = poll_interval
        self.watch = watch
        """False: load once, then change only on ``reload()`` (no watcher, no safety poll)."""
        self._registry = registry
        self._namespace = namespace
        self._loggers = () if log_level is None else tuple(log_level.loggers)
        self._log_level_field = (
            log_level.field if log_level is not None and kind.has_field(log_level.field) else None
        )
        checks: list[Validator[T]] = list(validators)
        if self._log_level_field is not None:
            checks.insert(0, self._check_log_level)
        self.policy = FieldPolicy(
            schema,
            restart_required=fields.restart_required,
            secrets=fields.secrets,
            refuse_changes=fields.refuse_changes,
        )
        self._pipeline: Pipeline[T] = Pipeline(
            schema,
            source=self.path,
            fmt=source.format or format_for(self.path),
            max_bytes=max_bytes,
            validators=checks,
            policy=self.policy,
            decode=wiring.decode,
            strict=strict,
        )
        self._log = ContextLogger("hotreload", config=name, source=self.path)
        self._hooks: list[ApplyHook[T]] = list(on_apply)
        self.lkg_path = None if lkg_path is None else os.fspath(lkg_path)
        self.degraded: str | None = None
        """Why the config in force is not the source's (started from the last-known-good
        copy, or without a ``fallible`` layer, because the source was invalid), or None.
        Cleared by the next valid version."""
        self._degrade = wiring.degrade
        self.hook_timeout = hook_timeout
        self._derived = DerivedSet(self._log, hook_timeout)
        self._gate: DrainGate[_Change[T]] = DrainGate(max_drain_wait, self._notify_threadsafe)
        self._failures = FailureActor(
            FailureLedger(failures.threshold, failures.cooldown),
            recheck=self._auto_reload,
            mark=self._mark,
            changed_since=self._changed_since,
            log=self._log,
            scrub=self._scrub,
            condemns=self._probation_failure,
        )
        self._init_probation(probation)
        self._init_rollout(rollout, probation)
        self._init_state()
        self.last_outcome: ReloadOutcome | None = None
        self.restart_required: tuple[str, ...] = ()
        """Restart-required fields whose new value in the file is not in force yet."""
        self.unknown_keys: tuple[str, ...] = ()
        """Keys of the source's latest valid version that the schema does not declare."""

    def _init_state(self) -> None:
        self._closed = True
        self._tasks: TaskSet | None = None
        self._attached: Attached | None = None
        self._applied_level: int | None = None
        self._init_worker()
        self._init_streams()

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> HotReloader[T]:
        if self._tasks is not None:
            raise RuntimeError("this HotReloader is already running")
        started = time.perf_counter()
        content: bytes | None = None
        try:
            first = await self.source.read(self._pipeline.max_bytes)
            content = first.content
            active = await self._load(content)  # fail fast: raises
            raw, self._version = content, first.version
        except ConfigError as exc:
            # Reading and checking the cached copy is disk and parse time: not the loop's.
            active, raw = await self._in_thread(self._last_known_good, exc, content)  # or raises
            self._version = None
        self._seen_key = active.content_sha256
        self._note_unknown(active.unknown)
        wiring = wiring_for(self.source)
        for event, detail in wiring.warnings():
            self._log.warning(event, detail=detail)
        self._triggers = []
        self._loop = asyncio.get_running_loop()
        built, failed = await self._derived.build(
            self._derived.items, active.config, 1, own_cancel=self._worker_cancelled
        )
        if failed is not None:  # fail fast, as for an invalid file
            failed_one, cause = failed
            message = self._failure_text(f"derived resource {failed_one.name}", cause, active)
            raise ConfigBuildError(self.path, message, resource=failed_one.name) from cause
        self._metrics = ReloaderMetrics(
            self.name, self._registry, self._namespace, rollout=self._fleet is not None
        )
        self._derived.metrics = self._metrics
        self._rollout_metrics(self._metrics)
        await self._commit(
            active,
            trigger="initial",
            started=started,
            changed=(),
            seen_at=started,
            raw=raw,
            built=built,
        )
        self._metrics.degraded.set(0 if self.degraded is None else 1)
        tasks = self._tasks = TaskSet(self._log, self._loop)
        self._closed = False
        _sighup.track(self)
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
            if self.poll_interval > 0 and self.watch:  # a timer, not a task: a few hundred bytes
                self._poll_timer = self._loop.call_later(self.poll_interval, self._poll)
            # watch=False: no watcher and no poll; only reload() and the failure actor's
            # re-check read the source.
            if self.watch and wiring.attach is not None:  # a direct subscription (the file hub)
                self._attached = wiring.attach(self._watched, self._metrics.watch_restarts.inc)
                await self._watching(self._attached.joined)
            elif self.watch:
                watching: asyncio.Future[None] = self._loop.create_future()
                tasks.spawn(lambda: self._watch(watching), name=f"hotreload-watch[{self.name}]")
                await self._watching(watching)
            self._start_rollout()
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._tasks is not None and asyncio.current_task() in self._tasks:
            # The close waits for the worker, which is waiting for this hook: it would hang.
            raise RuntimeError(
                "a HotReloader cannot be closed from inside its own apply hook: "
                "close it from the code that opened it, after the hook returns"
            )
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
        if self._settle_timer is not None:  # a quiet period under way: nothing reads now
            self._settle_timer.cancel()
            self._settle_timer = None
        _sighup.untrack(self)
        self._end_trial()
        self._gate.take()
        attached, self._attached = self._attached, None
        try:
            try:
                await self._stop_rollout()
            finally:
                if attached is not None:
                    await attached.detach()
        finally:  # also when cancelled: streams end, the name is released, waiters wake
            try:
                await self._derived.aclose(self._gate.max_wait)
            finally:
                self._release_all()

    def _release_all(self) -> None:
        triggers, self._triggers = self._triggers, []
        for trigger in triggers:
            pending = trigger.reply
            if pending is not None and not pending.done():
                pending.cancel()
        self._metrics.close()
        self._end_streams()

    # -- public API ---------------------------------------------------------------------------

    async def reload(self) -> ReloadOutcome:
        """Re-check the file now, through the same worker as every other trigger.

        A valid change found while sessions are open is held back: ``outcome.deferred``.
        """
        return await self._request("manual")

    async def _auto_reload(self) -> ReloadOutcome:
        return await self._request("auto_reload")

    def _scrub(self, text: str) -> str:
        """``text`` with the config's secret values masked (a tool error may quote a key)."""
        return self._secrets.scrub(text)

    def _mark(self) -> Mark:
        return Mark(self.snapshot.generation, self._gate.pending_seq)

    def _changed_since(self, mark: Mark) -> bool:
        pending = self._gate.pending
        return self.snapshot.generation > mark.generation or (
            pending is not None and pending.seq > mark.pending_seq
        )

    @property
    def registry(self) -> CollectorRegistry:
        """The prometheus registry this reloader's metrics are on."""
        return REGISTRY if self._registry is None else self._registry

    def explain(self) -> list[Explained]:
        """Every leaf of the config in force with where it came from: a file and line, an
        environment variable, or None for a schema default. Secret values are ``***``."""
        document = self._pipeline.document_of(self._active)
        return explain(to_builtins(self.snapshot.config), document, self.policy)

    def add_apply_hook(self, hook: ApplyHook[T]) -> ApplyHook[T]:
        """Register an ``on_apply`` hook (usable as a decorator); runs in registration order."""
        self._hooks.append(hook)
        return hook

    if not TYPE_CHECKING:  # for mypy, attributes stay checked: this only words the error

        def __getattr__(self, name: str) -> object:
            """Reached only for an attribute that is not set: before ``async with``, the
            config itself. Say how to start the reloader instead of a bare ``AttributeError``."""
            if name in _LOADED_ON_START:
                raise AttributeError(
                    f"{type(self).__name__}.{name} is not loaded yet: the config is read when "
                    f"the reloader starts, `async with reloader:` (or "
                    f"`await reloader.__aenter__()`)",
                    name=name,
                    obj=self,
                )
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}", name=name, obj=self
            )

    def __repr__(self) -> str:
        gen = self.snapshot.generation if hasattr(self, "snapshot") else None
        return f"<HotReloader {self.name!r} {self.path!r} generation={gen}>"
