"""The failure-counter actor: a dependency that keeps failing forces a re-check.

Two layers. `FailureLedger` holds every counter and makes every decision; it is pure and
synchronous, with an injected clock, so its rules are unit-tested without a loop or a file.
`FailureActor` owns a ledger in one of the reloader's tasks and is fed through an inbox
that any thread may append to: ``record_failure`` never blocks (a lock is taken once, to
start the task), and nothing but the actor task ever touches the ledger.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import threading
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from ._logging import ContextLogger
from ._metrics import FailureMetrics
from ._outcome import ReloadOutcome, ReloadResult

__all__ = [
    "Action",
    "FailureActor",
    "FailureLedger",
    "FailureReporting",
    "Mark",
    "ToolsetFailureRecord",
]

#: Messages handled before the actor yields to the loop, so a flood cannot stall it.
_BATCH = 256
#: Error messages are cut to this many characters in records and logs (as the spec does).
_MESSAGE_CHARS = 200


@dataclass(frozen=True, slots=True)
class ToolsetFailureRecord:
    """One toolset's failure history. ``consecutive_failures`` is reset by a success or a
    config change; ``total_failures`` never is. ``last_failure_time`` is Unix time."""

    toolset_name: str
    consecutive_failures: int
    total_failures: int
    last_failure_time: float
    last_error_type: str
    last_error_message: str


class Mark(NamedTuple):
    """Where the config stood when a failure streak began: the generation in force and how
    many pending (deferred) changes had been seen. A later value of either means the config
    changed since."""

    generation: int
    pending_seq: int


class Action(enum.Enum):
    """What the ledger decided for one failure."""

    COUNTED = "counted"  # below the threshold
    TRIGGER = "trigger"  # start a forced re-check
    JOINED = "joined"  # a re-check is already running: its result counts for this toolset
    COOLDOWN = "cooldown"  # blocked: this toolset's last forced re-check is too recent
    CHANGED_SINCE = "changed_since"  # the config changed since the streak began: reset
    CONDEMNED = "condemned"  # probation: this failure condemned the commit in force


@dataclass(slots=True)
class _Streak:
    mark: Mark
    last_forced: float | None = None
    cooldown_logged: float | None = None


@dataclass(slots=True)
class Settled:
    """What a finished re-check (or a change seen since the streak began) did to a toolset."""

    toolset: str
    result: ReloadResult
    consecutive: int
    reset: bool


_NO_RECORDS: Mapping[str, ToolsetFailureRecord] = types.MappingProxyType({})


@dataclass(slots=True)
class FailureLedger:
    """Every counter and every decision; no I/O, no loop, an injected monotonic clock."""

    threshold: int
    cooldown: float
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    _records: dict[str, ToolsetFailureRecord] = field(default_factory=dict)
    _streaks: dict[str, _Streak] = field(default_factory=dict)
    _joined: dict[str, int] = field(default_factory=dict)
    running: bool = False
    view: Mapping[str, ToolsetFailureRecord] = field(init=False)

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or self.threshold < 1:
            raise ValueError(f"failure_threshold must be an integer >= 1, got {self.threshold!r}")
        if self.cooldown < 0:
            raise ValueError(f"failure_cooldown must be >= 0 seconds, got {self.cooldown!r}")
        self.view = _NO_RECORDS

    def record(self, toolset: str) -> ToolsetFailureRecord | None:
        return self._records.get(toolset)

    def failure(
        self,
        toolset: str,
        error_type: str,
        error_message: str,
        *,
        mark: Mark,
        changed_since: Callable[[Mark], bool],
        condemns: Callable[[ToolsetFailureRecord], bool] | None = None,
    ) -> Action:
        """Count one failure and decide what it sets off. ``condemns(record)`` is probation's
        say, asked first: a failure that condemns the commit in force sets off its rollback,
        not a re-check (which would only find the same content, then a quarantined one)."""
        old = self._records.get(toolset)
        streak = self._streaks.setdefault(toolset, _Streak(mark))
        if old is None or old.consecutive_failures == 0:
            streak.mark = mark  # a new streak starts from the config in force now
        rec = ToolsetFailureRecord(
            toolset_name=toolset,
            consecutive_failures=(old.consecutive_failures if old else 0) + 1,
            total_failures=(old.total_failures if old else 0) + 1,
            last_failure_time=self.wall(),
            last_error_type=error_type,
            last_error_message=error_message,
        )
        self._set(rec)
        if condemns is not None and condemns(rec):
            return Action.CONDEMNED
        if rec.consecutive_failures < self.threshold:
            return Action.COUNTED
        if toolset in self._joined:  # the running re-check settles it, whatever it finds
            return Action.JOINED
        if changed_since(streak.mark):
            return Action.CHANGED_SINCE
        now = self.clock()
        if self.running:
            if toolset not in self._joined:
                self._joined[toolset] = rec.consecutive_failures
                streak.last_forced = now
            return Action.JOINED
        if streak.last_forced is not None and now - streak.last_forced < self.cooldown:
            return Action.COOLDOWN
        streak.last_forced = now
        self.running = True
        self._joined = {toolset: rec.consecutive_failures}
        return Action.TRIGGER

    def settle_changed_since(self, toolset: str) -> Settled:
        """The config changed after this toolset's streak began: that is the fix it waited for."""
        consecutive = self._reset(toolset)
        return Settled(toolset, ReloadResult.CONFIG_CHANGED, consecutive, reset=True)

    def recheck_done(
        self, result: ReloadResult, changed_since: Callable[[Mark], bool]
    ) -> list[Settled]:
        """Apply a forced re-check's result to every toolset that triggered or joined it.

        Only a change resets a counter: ``config_changed`` (applied or deferred), or a change
        committed since the toolset's streak began, which the watcher may have applied before
        the threshold was reached.
        """
        joined, self._joined, self.running = self._joined, {}, False
        settled = []
        for toolset, consecutive in joined.items():
            streak = self._streaks[toolset]
            if result is ReloadResult.CONFIG_CHANGED or changed_since(streak.mark):
                self._reset(toolset)
                settled.append(Settled(toolset, ReloadResult.CONFIG_CHANGED, consecutive, True))
            else:
                settled.append(Settled(toolset, result, consecutive, reset=False))
        return settled

    def success(self, toolset: str) -> int:
        """Reset the consecutive count; returns what it was (0: nothing to reset)."""
        rec = self._records.get(toolset)
        if rec is None or rec.consecutive_failures == 0:
            return 0
        return self._reset(toolset)

    def reset(self, toolsets: Iterable[str]) -> dict[str, int]:
        """Reset these toolsets' consecutive failures (a rollback undid what broke them);
        returns the counts that were reset."""
        done = {}
        for toolset in toolsets:
            rec = self._records.get(toolset)
            if rec is not None and rec.consecutive_failures:
                done[toolset] = self._reset(toolset)
        return done

    def cooldown_log_due(self, toolset: str) -> bool:
        """Log a cooldown block once per cooldown window per toolset; the metric counts all."""
        streak = self._streaks[toolset]
        now = self.clock()
        if streak.cooldown_logged is not None and now - streak.cooldown_logged < self.cooldown:
            return False
        streak.cooldown_logged = now
        return True

    def since_forced(self, toolset: str) -> float:
        forced = self._streaks[toolset].last_forced
        return float("inf") if forced is None else self.clock() - forced

    def _reset(self, toolset: str) -> int:
        rec = self._records[toolset]
        self._set(replace(rec, consecutive_failures=0))
        return rec.consecutive_failures

    def _set(self, rec: ToolsetFailureRecord) -> None:
        # Copy on write: readers on other threads iterate a dict nobody mutates any more.
        records = dict(self._records)
        records[rec.toolset_name] = rec
        self._records = records
        self.view = types.MappingProxyType(records)


@dataclass(slots=True)
class _Failure:
    toolset: str
    error_type: str
    error_message: str


@dataclass(slots=True)
class _Success:
    toolset: str


@dataclass(slots=True)
class _Reset:
    toolsets: tuple[str, ...]


@dataclass(slots=True)
class _Done:
    outcome: ReloadOutcome | None
    duration: float


_Message = _Failure | _Success | _Reset | _Done
Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], object]


class FailureActor:
    """Runs the ledger as a task; ``record_*`` may be called from any thread.

    The inbox is a deque (appends are atomic) plus a wake-up scheduled on the loop only when
    none is already on its way, so a flood of calls costs one wake-up per batch, not per call.
    A forced re-check runs as its own task and reports back through the same inbox, so the
    actor keeps counting (and lets failures join) while the re-check is in flight.
    """

    __slots__ = (
        "_changed_since",
        "_condemns",
        "_drained",
        "_home",
        "_inbox",
        "_log",
        "_loop",
        "_mark",
        "_metrics",
        "_recheck",
        "_scrub",
        "_spawn",
        "_start",
        "_starting",
        "_wake",
        "_wake_due",
        "closed",
        "ledger",
    )

    def __init__(
        self,
        ledger: FailureLedger,
        *,
        recheck: Callable[[], Awaitable[ReloadOutcome]],
        mark: Callable[[], Mark],
        changed_since: Callable[[Mark], bool],
        log: ContextLogger,
        scrub: Callable[[str], str] = str,
        condemns: Callable[[ToolsetFailureRecord], bool] | None = None,
    ) -> None:
        self.ledger = ledger
        self._condemns = condemns
        self._recheck = recheck
        self._mark = mark
        self._changed_since = changed_since
        self._scrub = scrub
        self._metrics: FailureMetrics | None = None
        self._log = log
        self._inbox: collections.deque[_Message] | None = None  # made by the first message
        self._loop: asyncio.AbstractEventLoop | None = None  # set while the task runs
        self._wake: asyncio.Event | None = None
        self._wake_due = False
        self._drained: asyncio.Event | None = None  # made when someone waits on it
        self._spawn: Spawn | None = None
        self._home: asyncio.AbstractEventLoop | None = None  # set while the reloader runs
        self._start: Callable[[], object] | None = None
        self._starting = threading.Lock()
        self.closed = True

    # -- any thread ------------------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop, start: Callable[[], object]) -> None:
        """The reloader is running on ``loop``; ``start()`` (called there) starts the task."""
        self._home, self._start, self.closed = loop, start, False

    def detach(self) -> None:
        self._home = self._start = None
        self.closed = True
        if self._drained is not None:
            self._drained.set()

    def post(self, message: _Message) -> None:
        if self.closed:
            return
        inbox = self._inbox
        if inbox is None:
            with self._starting:
                if self._inbox is None:
                    self._inbox = collections.deque()
                inbox = self._inbox
        inbox.append(message)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            if not self._wake_due:
                self._wake_due = True
                self._call(loop, wake.set)
            return
        with self._starting:  # the first message starts the task, once
            home, start = self._home, self._start
            self._start = None
        if home is not None and start is not None:
            self._wake_due = True
            self._call(home, start)

    def _call(self, loop: asyncio.AbstractEventLoop, fn: Callable[[], object]) -> None:
        try:
            loop.call_soon_threadsafe(fn)
        except RuntimeError:  # the loop closed under us: nothing is left to count for
            self.closed = True

    def record_failure(self, toolset: str, error_type: str | None, message: str | None) -> None:
        self.post(
            _Failure(
                toolset,
                error_type or "UnknownError",
                message or "No error message",
            )
        )

    def record_success(self, toolset: str) -> None:
        self.post(_Success(toolset))

    def reset(self, toolsets: Iterable[str]) -> None:
        """Reset these toolsets' consecutive failures, in order with the reports before it."""
        names = tuple(toolsets)
        if names:
            self.post(_Reset(names))

    # -- the actor task ----------------------------------------------------------------------------

    async def run(self, spawn: Spawn, metrics: FailureMetrics) -> None:
        self._spawn = spawn
        self._metrics = metrics
        self._wake = wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        wake.set()  # messages posted before the start are handled now
        try:
            while True:
                await wake.wait()
                wake.clear()
                self._wake_due = False
                handled = 0
                inbox = self._inbox
                while inbox:
                    self._handle(inbox.popleft())
                    handled += 1
                    if handled % _BATCH == 0:
                        await asyncio.sleep(0)
                drained, self._drained = self._drained, None
                if drained is not None:
                    drained.set()
        finally:
            self.closed = True
            self._loop = self._wake = None
            if self._drained is not None:
                self._drained.set()

    async def settled(self) -> None:
        """Wait until every message posted so far has been handled and no re-check runs."""
        while not self.closed and (self._inbox or self._wake_due or self.ledger.running):
            if self._drained is None:
                self._drained = asyncio.Event()
            await self._drained.wait()

    @property
    def metrics(self) -> FailureMetrics:
        assert self._metrics is not None  # noqa: S101 - set by run(), the only caller
        return self._metrics

    def _handle(self, msg: _Message) -> None:
        if isinstance(msg, _Failure):
            self._failure(msg)
        elif isinstance(msg, _Success):
            previous = self.ledger.success(msg.toolset)
            if previous:
                rec = self.ledger.record(msg.toolset)
                self._log.info(
                    "toolset_success_resetting_consecutive_failures",
                    toolset=msg.toolset,
                    previous_consecutive_failures=previous,
                    total_failures=rec.total_failures if rec else 0,
                )
        elif isinstance(msg, _Reset):
            for toolset, previous in self.ledger.reset(msg.toolsets).items():
                self._log.info(
                    "toolset_failures_reset_by_rollback",
                    toolset=toolset,
                    previous_consecutive_failures=previous,
                )
        else:
            self._done(msg)

    def _failure(self, msg: _Failure) -> None:
        # Scrubbed before it is cut: a tool's error may quote the very key that failed.
        msg.error_message = self._scrub(msg.error_message)[:_MESSAGE_CHARS]
        ledger = self.ledger
        action = ledger.failure(
            msg.toolset,
            msg.error_type,
            msg.error_message,
            mark=self._mark(),
            changed_since=self._changed_since,
            condemns=self._condemns,
        )
        rec = ledger.record(msg.toolset)
        assert rec is not None  # noqa: S101 - just recorded
        self.metrics.failures.labels(msg.toolset).inc()
        self._log.warning(
            "toolset_failure_recorded",
            toolset=msg.toolset,
            consecutive_failures=rec.consecutive_failures,
            total_failures=rec.total_failures,
            error_type=msg.error_type,
            error_message=msg.error_message,
            max_failures=ledger.threshold,
        )
        if action is Action.CONDEMNED:
            self._log.error(
                "toolset_failures_condemned_commit_on_probation",
                toolset=msg.toolset,
                consecutive_failures=rec.consecutive_failures,
                last_error_type=rec.last_error_type,
                last_error_message=rec.last_error_message,
            )
        elif action is Action.TRIGGER:
            self._log.error(
                "toolset_max_failures_reached_triggering_auto_reload",
                toolset=msg.toolset,
                consecutive_failures=rec.consecutive_failures,
                last_error_type=rec.last_error_type,
                last_error_message=rec.last_error_message,
            )
            assert self._spawn is not None  # noqa: S101 - set by run()
            self._spawn(self._run_recheck)
        elif action is Action.CHANGED_SINCE:
            self._settled([ledger.settle_changed_since(msg.toolset)], via="watcher")
        elif action is Action.COOLDOWN:
            self.metrics.cooldown_blocks.labels(msg.toolset).inc()
            if ledger.cooldown_log_due(msg.toolset):
                self._log.warning(
                    "auto_reload_cooldown_active",
                    toolset=msg.toolset,
                    time_since_reload=round(ledger.since_forced(msg.toolset), 3),
                    cooldown=ledger.cooldown,
                )
        elif action is Action.JOINED:
            self._log.debug("auto_reload_joined_running_recheck", toolset=msg.toolset)

    async def _run_recheck(self) -> None:
        started = time.perf_counter()
        outcome: ReloadOutcome | None = None
        try:
            outcome = await self._recheck()
        finally:  # also when cancelled at shutdown: the ledger must not stay "running"
            self.post(_Done(outcome, time.perf_counter() - started))

    def _done(self, msg: _Done) -> None:
        result = msg.outcome.result if msg.outcome is not None else ReloadResult.ERROR
        self.metrics.duration.labels(result.value).observe(msg.duration)
        self._settled(self.ledger.recheck_done(result, self._changed_since), via="recheck")

    def _settled(self, settled: list[Settled], *, via: str) -> None:
        for s in settled:
            self.metrics.triggered.labels(s.toolset, s.result.value).inc()
            self.metrics.before_reload.labels(s.toolset).observe(s.consecutive)
            if s.result is ReloadResult.CONFIG_CHANGED:
                self._log.info(
                    "auto_reload_successful_config_changed",
                    toolset=s.toolset,
                    previous_failures=s.consecutive,
                    detected_by=via,
                )
                continue
            rec = self.ledger.record(s.toolset)
            consecutive = rec.consecutive_failures if rec else s.consecutive
            if s.result is ReloadResult.CONFIG_UNCHANGED:
                self._log.warning(
                    "auto_reload_config_unchanged_toolset_still_unavailable",
                    toolset=s.toolset,
                    consecutive_failures=consecutive,
                )
            elif s.result is ReloadResult.VALIDATION_FAILED:
                self._log.error(
                    "auto_reload_validation_failed_keeping_failure_counter",
                    toolset=s.toolset,
                    consecutive_failures=consecutive,
                )
            else:
                self._log.error(
                    "auto_reload_error_keeping_failure_counter",
                    toolset=s.toolset,
                    consecutive_failures=consecutive,
                )


class FailureReporting:
    """`HotReloader`'s failure API: thin calls into its `FailureActor`."""

    __slots__ = ()

    _failures: FailureActor

    def record_failure(
        self, toolset: str, error_type: str | None = None, error_message: str | None = None
    ) -> None:
        """Count a failure of ``toolset``; from the loop or any thread, never blocks.

        ``Failures.threshold`` consecutive failures force a re-check (unless the toolset's
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
