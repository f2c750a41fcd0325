"""The reload worker: the only writer of a reloader's config.

Every trigger (a watcher event, the safety poll, ``reload()``, the failure actor, the last
session ending, the drain wait running out) goes into one list; one worker task drains it a
burst at a time, reads the source once for the burst, asks `_decide` what to do (commit, hold,
release, drop or keep) and does it. Being the only writer, it needs no lock: a commit assigns
``snapshot`` and then ``config``, each a single reference store, so a reader on any thread
sees one whole version or the other, never a mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from ._decide import Candidate, Commit, Verdict, broken_invariant
from ._derive import Derived, DerivedSet, _Held
from ._drain import DrainGate, Pending
from ._errors import ConfigApplyError, ConfigBuildError, ConfigError, ConfigRefusedError
from ._fields import FieldPolicy, Secrets, format_path
from ._gcpause import gc_paused
from ._lkg import Cached
from ._logging import ContextLogger, capped
from ._metrics import ReloaderMetrics
from ._outcome import ReloadOutcome, ReloadResult
from ._pipeline import Active, Evaluation, Pipeline, result_for, sha256_hex
from ._probation import QuarantineEntry
from ._rollback import Fallback
from ._snapshot import Snapshot
from ._source import Source
from ._tasks import TaskSet
from ._unknown import UnknownKey, UnknownKeys

__all__ = ["MSG_REJECTED", "MSG_RELOADED", "WORKER_SLOTS", "Worker"]

#: The state this part owns: slots of the `HotReloader` façade (a part has none of its own,
#: so parts stand side by side as bases instead of stacked in a chain).
WORKER_SLOTS = (
    "_active",
    "_empty_deferred",
    "_gate",
    "_in_force_read",
    "_last_eval",
    "_last_key",
    "_limiter",
    "_loop",
    "_may_be_mid_write",
    "_poll_timer",
    "_reads",
    "_refused",
    "_secrets",
    "_seen_key",
    "_settle",
    "_settle_since",
    "_settle_timer",
    "_spawn_worker",
    "_triggers",
    "_version",
    "_warned_restart",
    "_working",
    "config",
    "restart_required",
    "snapshot",
    "unknown_keys",
)

T = TypeVar("T")
R = TypeVar("R")

#: Documents up to this size are evaluated on the loop: their whole evaluation (hash, parse,
#: convert, unknown keys, diff) takes a few milliseconds at most, less than a thread hand-off
#: costs in latency under load. Larger ones are hashed and evaluated in a worker thread, so
#: what a commit holds the loop for does not grow with the document.
INLINE_BYTES = 16 * 1024

MSG_RELOADED = "Configuration hot-reloaded successfully"
MSG_REJECTED = "Failed to apply new configuration - keeping previous"

#: What a change without derived resources builds (shared, never written to).
_NOTHING_BUILT: Mapping[Any, Any] = {}

#: Triggers that come from watching, not from a caller waiting for an answer.
_WATCH_KINDS = frozenset({"watch", "rescan", "poll"})
#: How long an empty file (an in-place write between truncate and write) is given to fill.
_EMPTY_GRACE = 0.1

#: Triggers that only ask the worker to look at the drain gate again, not at the file.
_GATE_KINDS = frozenset({"session_end", "drain_timeout"})


@dataclass(slots=True)
class _Trigger:
    kind: str
    seen_at: float
    reply: asyncio.Future[ReloadOutcome] | None = None
    detail: object = None
    """What a ``rollback`` (the condemnation) or ``release`` (the hash) trigger carries."""


@dataclass(frozen=True, slots=True)
class _Change(Generic[T]):
    """A validated change on its way in: committed now, or held while sessions are open."""

    active: Active[T]
    changed: tuple[str, ...]
    trigger: str
    seen_at: float
    raw: bytes
    version: str | None = None
    read: int = 0
    """The number of the source read that found it (reads are numbered in order)."""


@dataclass(frozen=True, slots=True)
class _Found(Generic[T]):
    """What one look at the source found: the candidate for `decide`, the outcome to report
    if nothing is committed, and the change to commit or hold if it is a new config."""

    candidate: Candidate
    result: ReloadResult
    trigger: str
    change: _Change[T] | None = None
    error: ConfigError | None = None


class Worker(Generic[T]):
    """A mixin of the reloader: the triggers, the worker and everything it does."""

    if not TYPE_CHECKING:  # mypy would refuse assigning the façade's slots from here
        __slots__ = ()  # its state's slots are the façade's: see WORKER_SLOTS

    config: T
    snapshot: Snapshot[T]
    source: Source
    restart_required: tuple[str, ...]
    unknown_keys: tuple[str, ...]
    poll_interval: float
    _pipeline: Pipeline[T]
    _active: Active[T]
    _metrics: ReloaderMetrics
    _gate: DrainGate[_Change[T]]
    _tasks: TaskSet | None
    _may_be_mid_write: bool  # the source's `Wiring.empty_may_be_mid_write`
    _settle: float  # the source's `Wiring.settle`
    path: str
    policy: FieldPolicy
    lkg_path: str | None
    degraded: str | None
    _closed: bool
    _derived: DerivedSet
    _hooks: list[Any]
    _log: ContextLogger
    # What the worker calls in the other parts (the façade has them all):
    _build_derived: Callable[
        [Snapshot[T], Active[T], tuple[str, ...]],
        Coroutine[Any, Any, tuple[Mapping[Derived[Any], _Held[Any]], ConfigBuildError | None]],
    ]  # Hooks
    _run_hooks: Callable[
        [Snapshot[T], Snapshot[T], Active[T]], Coroutine[Any, Any, ConfigApplyError | None]
    ]  # Hooks
    _apply_log_level: Callable[[T], None]  # LogLevelSwitch
    _save_last_known_good: Callable[[Snapshot[T], bytes], None]  # LastKnownGood
    _recovered: Callable[[], None]  # LastKnownGood
    _publish_snapshot: Callable[[Snapshot[T]], None]  # Streams
    _publish: Callable[[ReloadOutcome], ReloadOutcome]  # Streams
    _quarantine: Mapping[str, QuarantineEntry]  # Probationer
    _fallback: Fallback[T] | None  # Probationer
    _fallback_hash: str | None  # Probationer
    _take_verdicts: Callable[[list[tuple[str, object]]], Coroutine[Any, Any, None]]
    _quarantine_refusal: Callable[[str], ConfigRefusedError]  # Probationer
    _restore_quarantine: Callable[[Cached | None], None]  # Probationer
    _log_rollback: Callable[[Snapshot[T], str, float], None]  # Probationer
    _after_commit: Callable[..., None]  # Probationer
    _awaiting: Callable[[str | None], frozenset[str]]  # Rollouts

    def _init_worker(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._triggers: list[_Trigger] = []
        self._working = False
        self._poll_timer: asyncio.TimerHandle | None = None
        self._settle_timer: asyncio.TimerHandle | None = None
        self._settle_since = 0.0
        self._spawn_worker: Callable[[], object] | None = None
        self._last_key: str | None = None
        self._seen_key: str | None = None
        self._last_eval: Evaluation[T] | None = None
        self._warned_restart: dict[tuple[str, ...], str] = {}
        self._version: str | None = None
        self._secrets = Secrets()
        self._empty_deferred = False
        self._reads = 0
        self._in_force_read = 0
        self._refused: tuple[str, ConfigApplyError] | None = None
        self._limiter: anyio.CapacityLimiter | None = None  # made on the first large file

    # -- triggers -------------------------------------------------------------------------------

    def _notify(self, kind: str) -> None:
        if not self._closed:
            self._put(_Trigger(kind, time.perf_counter()))

    def _watched(self, kind: str) -> None:
        """A watch event (``watch``, ``rescan``). With a quiet period (the source's
        ``settle_ms``) it only starts the wait again: the source is read once no event came
        for that long, so a burst of writes is one read. Callers' triggers never wait."""
        if not self._settle:
            self._notify(kind)
            return
        if self._closed or self._loop is None:
            return
        if self._settle_timer is None:
            self._settle_since = time.perf_counter()  # the burst's first event: its latency
        else:
            self._settle_timer.cancel()
        self._settle_timer = self._loop.call_later(self._settle, self._settled, kind)

    def _settled(self, kind: str) -> None:
        self._settle_timer = None
        if not self._closed:
            self._put(_Trigger(kind, self._settle_since))

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

    async def _request(self, kind: str, detail: object = None) -> ReloadOutcome:
        if self._closed:
            raise RuntimeError("the reloader is not running (use `async with`)")
        # The reloader's own loop (set before it opens): asking asyncio for the running loop
        # is a getpid() system call on 3.11, twice per reload with the worker's spawn.
        loop = self._loop or asyncio.get_running_loop()
        reply: asyncio.Future[ReloadOutcome] = loop.create_future()
        self._put(_Trigger(kind, time.perf_counter(), reply, detail))
        return await reply

    def _condemn_trigger(self, condemned: object) -> None:
        """Probation condemned the commit in force: the worker quarantines it and rolls back."""
        if not self._closed:
            self._put(_Trigger("rollback", time.perf_counter(), detail=condemned))

    def _poll(self) -> None:
        if self._closed or self._loop is None:
            return
        if self._settle_timer is None:  # else the read at the end of the quiet period does it
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
        """Re-check the source for this burst of triggers (unless it only asks about the
        gate), then do what `decide` says. Returns the outcome the burst's callers get (None:
        nothing to say)."""
        started = time.perf_counter()
        looks = [t for t in batch if t.kind not in _GATE_KINDS]
        verdicts = [(t.kind, t.detail) for t in looks if t.detail is not None]
        if verdicts:  # condemnations and releases change the quarantine: before the read
            await self._take_verdicts(verdicts)
        found = await self._look(looks) if looks else None
        candidate = None if found is None else found.candidate
        change = None if found is None else found.change
        kinds = [t.kind for t in looks]
        awaiting = (
            self._awaiting(None if change is None else change.active.config_hash)
            if found is not None
            else ()
        )
        verdict = self._gate.verdict(
            candidate,
            self._active.config_hash,
            kinds,
            quarantined=self._quarantine,
            fallback=self._fallback_hash,
            awaiting=awaiting,
        )
        if verdict is Verdict.ROLLBACK:
            self._drop_pending()
            change = self._rollback_change(batch)
            return await self._apply(change, started=started, batch=looks or batch)
        if verdict is Verdict.COMMIT:
            assert change is not None  # noqa: S101 - decide commits a new candidate only
            self._drop_pending()
            return await self._apply(change, started=started, batch=looks)
        if verdict is Verdict.HOLD:
            assert change is not None  # noqa: S101 - decide holds a new candidate only
            return self._hold(change, looks, started)
        outcome = None
        if found is not None:
            if verdict is Verdict.DROP:
                self._drop_pending()
                self._log.info(
                    "pending_reload_cancelled_config_reverted",
                    config_hash=self._active.config_hash,
                    detail="the source is back to the config in force",
                )
            outcome = self._record_outcome(
                found.result, looks, started, error=found.error, trigger=found.trigger
            )
        if verdict is Verdict.RELEASE:
            outcome = await self._release(batch, started) or outcome
        return outcome

    async def _look(self, batch: list[_Trigger]) -> _Found[T] | None:
        """Read and evaluate the source once for the burst; None while a write is half done."""
        active = self._active
        self._reads += 1
        try:
            revision = await self.source.read(self._pipeline.max_bytes)
            raw = revision.content
            version = revision.version
            if self._mid_write(raw, batch):
                return None
        except ConfigError as exc:
            version, raw = None, b""
            evaluation: Evaluation[T] = Evaluation(result_for(exc), "", error=exc)
            key = f"{exc.reason}:{exc.message}"
        else:
            last_key, last_eval = self._last_key, self._last_eval
            if len(raw) <= INLINE_BYTES:  # no coroutine either: `_off_loop` would run it here
                key, evaluation = self._evaluate(raw, active, last_key, last_eval)
            else:
                key, evaluation = await self._off_loop(
                    len(raw), self._evaluate, raw, active, last_key, last_eval
                )
        repeat = key == self._last_key
        if key != self._seen_key and _all_polls(batch):
            self._metrics.missed.inc()
            self._log.warning("watch_missed_event", detected_by="poll")
        self._seen_key = key
        trigger = _trigger_of(batch)
        new = evaluation.candidate
        if (
            evaluation.result is ReloadResult.CONFIG_CHANGED
            and new is not None
            and new.config_hash in self._quarantine
            and new.config_hash != active.config_hash
        ):
            # Condemned on probation: refused whoever asks, until released. Its evaluation
            # is kept, so the same bytes read again are a repeat (no new log line, no parse).
            self._last_key, self._last_eval = key, evaluation
            error = self._quarantine_refusal(new.config_hash)
            if not repeat:
                self._reject(error, ReloadResult.ERROR, trigger)
            return _Found(Candidate(new.config_hash), ReloadResult.ERROR, trigger, error=error)
        if evaluation.result is ReloadResult.CONFIG_CHANGED and new is not None:
            self._last_key, self._last_eval = None, None
            self._note_restart_required(evaluation)
            if new.config_hash != active.config_hash:
                return self._new(evaluation, new, trigger, batch, raw=raw, version=version)
            # Different bytes, the same config: never two commits with one config_hash.
            evaluation = Evaluation(ReloadResult.CONFIG_UNCHANGED, evaluation.content_sha256)
        self._last_key, self._last_eval = key, evaluation
        if evaluation.error is not None:
            if not repeat:
                self._reject(evaluation.error, evaluation.result, trigger)
            return _Found(Candidate(None), evaluation.result, trigger, error=evaluation.error)
        self._note_restart_required(evaluation)
        self._recovered()  # the source is valid again, and equal to what is in force
        if not repeat:
            self._metrics.last_ok.set(1)
            self._log.debug("config_unchanged", trigger=trigger, config_hash=active.config_hash)
        return _Found(Candidate(active.config_hash), evaluation.result, trigger)

    def _evaluate(
        self, raw: bytes, active: Active[T], last_key: str | None, last: Evaluation[T] | None
    ) -> tuple[str, Evaluation[T]]:
        """Hash ``raw`` and evaluate it against ``active``, unless it is the version evaluated
        last time (pure: it may run in a worker thread)."""
        key = sha256_hex(raw)
        if key == last_key and last is not None:
            return key, last
        return key, self._pipeline.evaluate(raw, active, key)

    async def _off_loop(self, size: int, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)``, in the reloader's one worker thread when ``size`` bytes of content
        would hold the loop longer than a few milliseconds, else right here."""
        if size <= INLINE_BYTES:
            return fn(*args)
        # The collector paused (see `_gcpause`: what a large document's nodes would otherwise
        # cost the loop in full collections), and resumed here, on the loop: resumed in the
        # thread, its first allocation would start the collection the pause put off, there.
        with gc_paused():
            result: R = await self._in_thread(fn, *args)
        # Cancelled while the thread ran (shutdown): drop the result, commit nothing.
        await anyio.lowlevel.checkpoint_if_cancelled()
        return result

    async def _in_thread(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)`` in the reloader's one worker thread (one at a time: versions are
        evaluated in order, and a burst never piles up threads)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def _load(self, raw: bytes) -> Active[T]:
        """The first version (start-up): the same rule as every later one, quarantine
        included (kept in the last-known-good file)."""
        # anyio loads its event-loop backend on first use (some 20 ms of imports, on the loop):
        # here, at start-up, rather than in the first commit large enough for a thread.
        await anyio.lowlevel.checkpoint()
        if self.lkg_path is not None:
            await self._in_thread(self._restore_quarantine, None)
        active = await self._off_loop(len(raw), self._pipeline.load, raw)
        if active.config_hash in self._quarantine:
            raise self._quarantine_refusal(active.config_hash)
        return active

    def _rollback_change(self, batch: list[_Trigger]) -> _Change[T]:
        """The config the condemned commit replaced, as a change: it counts as the read in
        force (a rollback is not an older read coming back)."""
        fallback = self._fallback
        assert fallback is not None  # noqa: S101 - decide rolls back only to a fallback
        seen_at = min((t.seen_at for t in batch), default=time.perf_counter())
        return _Change(
            fallback.active,
            fallback.changed,
            "rollback",
            seen_at,
            fallback.raw,
            fallback.version,
            self._in_force_read,
        )

    def _new(
        self,
        evaluation: Evaluation[T],
        new: Active[T],
        trigger: str,
        batch: list[_Trigger],
        *,
        raw: bytes,
        version: str | None,
    ) -> _Found[T]:
        """A valid version that differs from the config in force, as a change for `decide`."""
        seen_at = _first_seen(batch)
        change = _Change(new, evaluation.changed, trigger, seen_at, raw, version, self._reads)
        refused = self._refused
        if refused is None or refused[0] != new.config_hash:
            return _Found(Candidate(new.config_hash), ReloadResult.CONFIG_CHANGED, trigger, change)
        # A hook refused this very version: `decide` retries it for a caller only, and the
        # others get the hook's error again.
        found = Candidate(new.config_hash, refused=True)
        return _Found(found, ReloadResult.ERROR, trigger, change, error=refused[1])

    def _mid_write(self, raw: bytes, batch: list[_Trigger]) -> bool:
        """An empty file seen by the watcher is most often an in-place write caught between
        its truncate and its write: look again shortly instead of logging a failure. If it is
        still empty then (or a caller asked), it is refused like any other bad version."""
        if raw or not self._may_be_mid_write or self._empty_deferred:
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
        self._gate.hold(change, change.active.config_hash)
        self._metrics.pending.set(1)
        if previous is None or previous.config_hash != change.active.config_hash:
            self._log.info(
                "toolset_reload_queued_active_sessions",
                active_sessions=self._gate.sessions,
                config_hash=change.active.config_hash,
                changed=capped(change.changed),
                max_drain_wait=self._gate.max_wait,
            )
        outcome = self._outcome(
            ReloadResult.CONFIG_CHANGED,
            trigger=change.trigger,
            started=started,
            seen_at=_first_seen(batch),
            deferred=True,
            changed=change.changed,
        )
        if not self._gate.holding:  # the last session ended while we parked it
            self._notify("session_end")
        return outcome

    def _drop_pending(self) -> Pending[_Change[T]] | None:
        pending = self._gate.take()
        if pending is not None:
            self._metrics.pending.set(0)
        return pending

    async def _release(self, batch: list[_Trigger], started: float) -> ReloadOutcome | None:
        gate = self._gate
        timed_out = gate.sessions > 0
        pending = self._drop_pending()
        if pending is None:
            return None
        waited = round(gate.waited(pending), 3)
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
        broken = broken_invariant(
            Commit(old.generation, old.config_hash, self._in_force_read),
            Commit(new.generation, new.config_hash, change.read),
            self._quarantine,
        )
        if broken is not None:  # decide() never asks for it: a bug, refused and reported
            self._log.error("commit_refused", invariant=broken, config_hash=new.config_hash)
            return self._record_outcome(
                ReloadResult.CONFIG_UNCHANGED, batch, started, error=None, trigger=change.trigger
            )
        built: Mapping[Derived[Any], _Held[Any]] = _NOTHING_BUILT
        error: ConfigApplyError | None = None
        if self._derived.items:  # no coroutine per change for a reloader without resources
            built, error = await self._build_derived(new, change.active, change.changed)
        if error is None and self._hooks:
            try:
                error = await self._run_hooks(new, old, change.active)
            except BaseException:  # cancelled (shutdown): the new resources never go in force
                self._derived.discard(built)
                raise
            if error is not None:
                self._derived.discard(built)
        if error is not None:
            self._refused = (new.config_hash, error)
            self._reject(error, ReloadResult.ERROR, change.trigger)
            return self._record_outcome(
                ReloadResult.ERROR, batch, started, error=error, trigger=change.trigger
            )
        self._in_force_read = change.read
        return await self._commit(
            change.active,
            trigger=change.trigger,
            started=started,
            changed=change.changed,
            seen_at=change.seen_at,
            snapshot=new,
            raw=change.raw,
            built=built,
        )

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

    async def _commit(
        self,
        active: Active[T],
        *,
        trigger: str,
        started: float,
        changed: tuple[str, ...],
        seen_at: float,
        raw: bytes,
        snapshot: Snapshot[T] | None = None,
        built: Mapping[Derived[Any], _Held[Any]] | None = None,
    ) -> ReloadOutcome:
        initial = trigger == "initial"
        previous = None if initial else self.snapshot.config_hash
        old = None if initial else self._active
        old_version = None if initial else self.snapshot.version
        if snapshot is None:
            generation = 1 if initial else self.snapshot.generation + 1
            snapshot = self._snapshot_of(active, generation, self._version)
        generation = snapshot.generation
        self._refused = None
        # The swap: two reference stores, snapshot first, each atomic for any reader.
        self._active = active
        self._secrets = self.policy.secrets_of(active.builtins)  # worked out on first use
        self.snapshot = snapshot
        self.config = active.config
        if built:
            self._derived.swap(built)  # same tick as the snapshot: a pin sees both or neither
        self._apply_log_level(active.config)
        done = time.perf_counter()
        self._metrics.committed(generation, active.config_hash, snapshot.loaded_at.timestamp())
        if initial:
            self._log.info("config_loaded", generation=generation, config_hash=active.config_hash)
            self._metrics.quarantined.set(len(self._quarantine))
        elif trigger == "rollback":
            assert previous is not None  # noqa: S101 - not the first commit
            self._metrics.reload_total.inc()
            self._metrics.latency.observe(done - seen_at)
            self._log_rollback(snapshot, previous, round((done - started) * 1000, 3))
        else:
            self._metrics.reload_total.inc()
            self._metrics.latency.observe(done - seen_at)
            self._log.info(
                MSG_RELOADED,
                generation=generation,
                config_hash=active.config_hash,
                previous_config_hash=previous,
                changed=capped(changed),
                changed_count=len(changed),
                trigger=trigger,
                duration_ms=round((done - started) * 1000, 3),
            )
        self._after_commit(
            trigger, old=old, old_version=old_version, snapshot=snapshot, changed=changed, raw=raw
        )
        if not initial:
            self._recovered()
        if self.lkg_path is not None and (not initial or self.degraded is None):
            # A file write and an fsync: disk time, never the loop's. Before publishing, so
            # whoever waits for this generation finds the copy on disk; shielded, because the
            # swap above is done and its outcome must still be published.
            with anyio.CancelScope(shield=True):
                await self._in_thread(self._save_last_known_good, snapshot, raw)
        self._publish_snapshot(snapshot)
        return self._outcome(
            ReloadResult.CONFIG_CHANGED,
            trigger=trigger,
            started=started,
            seen_at=seen_at,
            applied=True,
            changed=changed,
            now=done,
        )

    def _record_outcome(
        self,
        result: ReloadResult,
        batch: list[_Trigger],
        started: float,
        *,
        error: ConfigError | None,
        trigger: str | None = None,
    ) -> ReloadOutcome:
        """The outcome of a burst that put nothing in force (unchanged, refused, failed)."""
        return self._outcome(
            result,
            trigger=trigger or batch[0].kind,
            started=started,
            seen_at=_first_seen(batch),
            error=error,
        )

    def _outcome(
        self,
        result: ReloadResult,
        *,
        trigger: str,
        started: float,
        seen_at: float,
        applied: bool = False,
        deferred: bool = False,
        changed: tuple[str, ...] = (),
        error: ConfigError | None = None,
        now: float | None = None,
    ) -> ReloadOutcome:
        """Every outcome is built and published here: what is in force (``snapshot``, the new
        one after a commit), how long the burst took and how late after the first trigger."""
        now = time.perf_counter() if now is None else now
        outcome = ReloadOutcome(
            at=time.time(),
            result=result,
            applied=applied,
            deferred=deferred,
            generation=self.snapshot.generation,
            trigger=trigger,
            duration=now - started,
            latency=now - seen_at,
            config_hash=self.snapshot.config_hash,
            changed=changed,
            error=error,
            restart_required=self.restart_required,
        )
        return self._publish(outcome)

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

    def _note_unknown(self, keys: tuple[UnknownKey, ...] | None) -> None:
        """Log a version's unknown keys once per new set (not on every re-check); None: the
        version was not parsed again (the same bytes), nothing new to say."""
        if keys is None:
            return
        if not isinstance(keys, UnknownKeys):  # () for none; any other made by hand
            keys = UnknownKeys(keys)
        if keys.names != self.unknown_keys:
            self.unknown_keys = keys.names
            if keys:
                self._log.warning(
                    "config_unknown_keys",
                    keys=keys.shown,
                    count=len(keys),
                    detail="ignored: not in the schema (strict=True refuses them)",
                )

    def _note_restart_required(self, evaluation: Evaluation[T]) -> None:
        """What a valid version asks for that is not applied: restart-required changes, and
        (logged here too, as every valid version passes here) keys the schema does not know."""
        self._note_unknown(evaluation.unknown)
        wanted = evaluation.restart_required
        if not wanted and not self._warned_restart:  # the common case: nothing to say
            self.restart_required = ()
            self._metrics.restart_required.set(0)
            return
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
        still = dict(wanted)
        for path in [p for p in self._warned_restart if p not in still]:
            del self._warned_restart[path]


def _first_seen(batch: list[_Trigger]) -> float:
    """When the burst's first trigger came (most bursts are one trigger)."""
    if len(batch) == 1:
        return batch[0].seen_at
    return min(t.seen_at for t in batch)


def _all_polls(batch: list[_Trigger]) -> bool:
    return all(trigger.kind == "poll" for trigger in batch)


def _trigger_of(batch: list[_Trigger]) -> str:
    """The trigger a burst is reported as: a caller's, if one asked, else the first one."""
    if len(batch) > 1:
        kinds = {t.kind for t in batch}
        for kind in ("manual", "signal", "auto_reload"):
            if kind in kinds:
                return kind
    return batch[0].kind
