"""Fleet rollout (issue 26): a canary proves a new ``config_hash`` before the followers apply it.

Verdicts live in etcd (`_verdicts.VerdictStore`), keyed by ``config_hash``, so any source
works. The canary (elected with `_election.Election`, or pinned) commits a new hash on
probation and writes ``good`` when the window ends clean, ``bad`` when probation condemns it.
A follower holds a hash without a verdict: `awaiting` makes it an input of `_decide`, like the
quarantine, so nothing but the pure decision chooses what goes in force. ``good`` commits it,
``bad`` quarantines it (reason ``verdict``). Losing etcd only delays verdicts: the watch
resumes by revision, and none is ever invented.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import msgspec

from ._backoff import backoff_delay
from ._election import Election
from ._logging import ContextLogger
from ._metrics import ReloaderMetrics, RolloutMetrics
from ._probation import Evidence, Probation
from ._snapshot import Snapshot
from ._tasks import TaskSet
from ._verdicts import Verdict, VerdictError, VerdictStore

__all__ = ["ROLLOUT_SLOTS", "Rollout", "Rollouts", "verdict_evidence"]

#: The state this part owns: slots of the `HotReloader` façade.
ROLLOUT_SLOTS = ("_fleet", "_rollout")

ROLES = ("auto", "canary", "follower")
ON_TIMEOUT = ("keep", "apply")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rollout:
    """Roll each new config out across a fleet through etcd at ``endpoints``.

    ``role``: ``auto`` (one canary per config name, elected by an etcd lease), or pinned to
    ``canary`` or ``follower``. A follower holds a new ``config_hash`` until the canary's (or
    an operator's) verdict under ``prefix``; after ``hold_timeout`` seconds ``on_timeout``
    ``keep`` keeps holding, ``apply`` commits it. ``identity`` names this replica in the
    verdicts it writes (default: host and process id). Needs ``probation``: the canary's
    verdict is its probation's.
    """

    endpoints: Sequence[str]
    prefix: str = "/hotreload"
    role: Literal["auto", "canary", "follower"] = "auto"
    hold_timeout: float = 600.0
    on_timeout: Literal["keep", "apply"] = "keep"
    identity: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        endpoints = self.endpoints
        if isinstance(endpoints, str) or not all(isinstance(e, str) and e for e in endpoints):
            raise TypeError(
                f"Rollout endpoints is a sequence of etcd URLs, not one string: {endpoints!r}"
            )
        if not endpoints:
            raise ValueError("Rollout endpoints must name at least one etcd endpoint")
        object.__setattr__(self, "endpoints", tuple(endpoints))
        if not isinstance(self.prefix, str) or not self.prefix.startswith("/"):
            raise ValueError(
                f"Rollout prefix must be an etcd key path like '/hotreload', got {self.prefix!r}"
            )
        if self.role not in ROLES:
            raise ValueError(f"Rollout role must be one of {ROLES}, got {self.role!r}")
        timeout = self.hold_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"Rollout hold_timeout must be > 0 seconds, got {timeout!r}")
        if self.on_timeout not in ON_TIMEOUT:
            raise ValueError(
                f"Rollout on_timeout must be one of {ON_TIMEOUT}, got {self.on_timeout!r}"
            )
        if self.identity is not None and (not isinstance(self.identity, str) or not self.identity):
            raise ValueError(f"Rollout identity must be a non-empty string, got {self.identity!r}")


class Fleet:
    """One replica's part in the rollout: the verdicts seen and the hash held for one."""

    def __init__(self, rollout: Rollout, name: str, on_change: Callable[[bool], None]) -> None:
        self.rollout = rollout
        self.identity = rollout.identity or f"{socket.gethostname()}:{os.getpid()}"
        self.store = VerdictStore(name, prefix=rollout.prefix, endpoints=rollout.endpoints)
        self.election: Election | None = None
        if rollout.role == "auto":
            self.election = Election(
                name,
                self.identity,
                prefix=rollout.prefix,
                endpoints=rollout.endpoints,
                on_change=on_change,
            )
        self.verdicts: dict[str, Verdict] = {}
        self.metrics = RolloutMetrics()  # replaced by the registered one at each start
        self.held: str | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.expired: set[str] = set()  # held past hold_timeout with on_timeout="apply"

    @property
    def is_canary(self) -> bool:
        if self.election is not None:
            return self.election.is_canary
        return self.rollout.role == "canary"

    def hold(self, config_hash: str) -> None:
        self.unhold()
        self.held = config_hash
        self.metrics.awaiting.set(1)

    def unhold(self) -> None:
        self.held = None
        self.metrics.awaiting.set(0)
        timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()


def verdict_evidence(verdict: Verdict) -> tuple[Evidence, ...]:
    """A ``bad`` verdict's evidence as probation's (what the canary wrote), else one line
    naming who gave it and what it says."""
    found: list[Evidence] = []
    for item in verdict.evidence:
        try:
            found.append(msgspec.convert(item, Evidence))
        except msgspec.ValidationError:
            found.append(Evidence(kind="verdict", name=verdict.by, error_message=str(item)[:200]))
    return tuple(found) or (Evidence(kind="verdict", name=verdict.by),)


class Rollouts(Generic[T]):
    """A mixin of the reloader: the fleet's verdicts, the role, and the hash held."""

    if not TYPE_CHECKING:  # mypy would refuse assigning the façade's slots from here
        __slots__ = ()  # its state's slots are the façade's: see ROLLOUT_SLOTS

    name: str
    snapshot: Snapshot[T]
    _closed: bool
    _loop: asyncio.AbstractEventLoop | None
    _tasks: TaskSet | None
    _log: ContextLogger
    _notify: Callable[[str], None]
    _put: Callable[[Any], None]  # Worker: takes a `_worker._Trigger`

    def _init_rollout(self, rollout: Rollout | None, probation: Probation | None) -> None:
        if rollout is not None and not isinstance(rollout, Rollout):
            raise TypeError(f"rollout must be a hotreload.Rollout, got {rollout!r}")
        if rollout is not None and probation is None:
            raise ValueError(
                "rollout needs probation: the canary's verdict is its probation's "
                "(HotReloader(..., probation=Probation(...), rollout=Rollout(...)))"
            )
        self._rollout = rollout
        self._fleet = None if rollout is None else Fleet(rollout, self.name, self._role_changed)

    @property
    def rollout(self) -> Rollout | None:
        """The rollout options (None: this replica decides alone)."""
        return self._rollout

    def rollout_report(self) -> dict[str, Any] | None:
        """For ``/-/config``: the role, the hash held for a verdict, and verdicts seen."""
        fleet = self._fleet
        if fleet is None:
            return None
        return {
            "role": "canary" if fleet.is_canary else "follower",
            "awaiting_verdict": fleet.held,
            "verdicts_seen": len(fleet.verdicts),
        }

    # -- lifecycle --------------------------------------------------------------------------

    def _rollout_metrics(self, metrics: ReloaderMetrics) -> None:
        """Take the series of a start's new metrics (they exist only with a rollout)."""
        fleet, part = self._fleet, metrics.rollout
        if fleet is None or part is None:
            return
        fleet.metrics = part
        part.canary.set(1 if fleet.is_canary else 0)
        part.awaiting.set(0 if fleet.held is None else 1)

    def _start_rollout(self) -> None:
        fleet, tasks = self._fleet, self._tasks
        if fleet is None or tasks is None:
            return
        if fleet.election is not None:
            fleet.election.start()
        tasks.spawn(self._follow_verdicts, name=f"hotreload-verdicts[{self.name}]")

    async def _stop_rollout(self) -> None:
        fleet = self._fleet
        if fleet is None:
            return
        fleet.unhold()
        if fleet.election is not None:
            await fleet.election.close()

    def _role_changed(self, canary: bool) -> None:
        """A new role: look at the source again (a canary commits what a follower held)."""
        self._log.info("rollout_role", role="canary" if canary else "follower")
        if self._fleet is not None:
            self._fleet.metrics.canary.set(1 if canary else 0)
        self._notify("role")

    async def _follow_verdicts(self) -> None:
        """The verdicts there are, then every one written after them (resumed by revision)."""
        fleet = self._fleet
        assert fleet is not None  # noqa: S101 - spawned only with a rollout
        failures = 0
        while True:
            try:
                verdicts, revision = await fleet.store.snapshot()
                break
            except VerdictError as exc:  # no verdict meanwhile: followers keep holding
                failures += 1
                delay = backoff_delay(failures, 0.05, 2.0, jitter=True)
                if failures % 30 == 1:
                    self._log.warning("verdicts_unreachable", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
        for verdict in sorted(verdicts.values(), key=lambda v: v.revision):
            self._verdict_seen(verdict)
        await fleet.store.watch(self._verdict_seen, revision + 1)

    def _verdict_seen(self, verdict: Verdict) -> None:
        fleet = self._fleet
        if fleet is None or self._closed or verdict.config_hash in fleet.verdicts:
            return  # the first verdict on a hash is the verdict
        fleet.verdicts[verdict.config_hash] = verdict
        fleet.metrics.verdicts.labels(verdict.verdict).inc()
        self._log.info(
            "verdict_seen", config_hash=verdict.config_hash, verdict=verdict.verdict, by=verdict.by
        )
        if verdict.verdict == "bad":
            from ._worker import _Trigger  # noqa: PLC0415 - the worker imports the parts

            self._put(_Trigger("verdict", time.perf_counter(), detail=verdict))
        elif verdict.config_hash == fleet.held:
            self._notify("verdict")

    # -- the worker's questions -------------------------------------------------------------

    def _awaiting(self, config_hash: str | None) -> frozenset[str]:
        """The hashes `decide` must not commit yet: the new candidate, on a follower, while it
        has no ``good`` verdict (None: the source shows nothing new)."""
        fleet = self._fleet
        if fleet is None:
            return frozenset()
        if config_hash is None or fleet.is_canary:
            fleet.unhold()
            return frozenset()
        verdict = fleet.verdicts.get(config_hash)
        if (verdict is not None and verdict.verdict == "good") or config_hash in fleet.expired:
            fleet.unhold()
            return frozenset()
        if verdict is None and fleet.held != config_hash:
            fleet.hold(config_hash)
            self._log.info("config_awaiting_verdict", config_hash=config_hash)
            timeout = fleet.rollout.hold_timeout
            if self._loop is not None and math.isfinite(timeout):
                fleet.timer = self._loop.call_later(timeout, self._hold_timed_out, config_hash)
        return frozenset((config_hash,))

    def _hold_timed_out(self, config_hash: str) -> None:
        fleet = self._fleet
        if fleet is None or fleet.held != config_hash:
            return
        fleet.timer = None
        apply = fleet.rollout.on_timeout == "apply"
        self._log.warning(
            "verdict_hold_timed_out",
            config_hash=config_hash,
            hold_timeout_s=fleet.rollout.hold_timeout,
            action="apply" if apply else "keep holding",
        )
        if apply:
            fleet.expired.add(config_hash)
            self._notify("verdict_timeout")

    def _fleet_verdict(
        self, config_hash: str, outcome: str, evidence: tuple[Evidence, ...]
    ) -> None:
        """Probation's end on the canary: write its verdict (retried until etcd takes it)."""
        fleet, tasks = self._fleet, self._tasks
        if fleet is None or tasks is None or not fleet.is_canary:
            return
        body = msgspec.to_builtins(evidence)
        tasks.spawn(
            lambda: self._write_verdict(fleet, config_hash, outcome, body),
            name=f"hotreload-verdict-write[{self.name}]",
        )

    async def _write_verdict(
        self, fleet: Fleet, config_hash: str, outcome: str, evidence: list[Any]
    ) -> None:
        failures = 0
        while True:
            try:
                written = await fleet.store.write(
                    config_hash,
                    "good" if outcome == "good" else "bad",
                    evidence,
                    by=fleet.identity,
                )
                break
            except VerdictError as exc:
                failures += 1
                delay = backoff_delay(failures, 0.05, 2.0, jitter=True)
                if failures % 30 == 1:
                    self._log.warning("verdict_write_failed", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
        if written.verdict != outcome or written.by != fleet.identity:
            self._log.info(
                "verdict_already_given",
                config_hash=config_hash,
                verdict=written.verdict,
                by=written.by,
            )
        else:
            fleet.metrics.written.labels(written.verdict).inc()
