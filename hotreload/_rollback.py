"""Probation, rollback and quarantine: the engine's side of `_probation`.

After each commit (not the first, not a rollback) a `Trial` runs for ``Probation.window``
seconds, keeping the config it replaced as the fallback. A condemnation (the failure actor
counting a dependency's failures, or the app's check) is a ``rollback`` trigger for the worker,
the only writer: it quarantines the condemned hash, and `_decide` then puts the fallback back
(`Verdict.ROLLBACK`) and never commits that hash again until `release` lifts it. With
``lkg_path`` the quarantine is kept in the last-known-good file, so a restart honours it.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import msgspec

from . import _lkg
from ._errors import ConfigRefusedError
from ._failures import FailureActor, ToolsetFailureRecord
from ._logging import ContextLogger, capped
from ._metrics import ReloaderMetrics
from ._outcome import ReloadOutcome
from ._pipeline import Active, Evaluation
from ._probation import Check, Evidence, Probation, QuarantineEntry, Trial, failing_now
from ._rollout import verdict_evidence
from ._snapshot import Snapshot
from ._tasks import TaskSet
from ._verdicts import Verdict as FleetVerdict

__all__ = ["MSG_ROLLED_BACK", "PROBATION_SLOTS", "Condemned", "Probationer"]

#: The state this part owns: slots of the `HotReloader` façade.
PROBATION_SLOTS = (
    "_fallback",
    "_in_force_raw",
    "_probation",
    "_quarantine",
    "_trial",
    "_trial_timer",
)

MSG_ROLLED_BACK = "Configuration rolled back - keeping previous"

#: Quarantine entries kept at most (the oldest goes first): a bound, not a policy.
QUARANTINE_MAX = 256
_MESSAGE_CHARS = 200

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fallback(Generic[T]):
    """The config a commit on probation replaced, ready to go back in: its validated form,
    its bytes (for the last-known-good copy), its source version, and the key paths the
    commit changed (the same paths change back, so the same derived resources are rebuilt)."""

    active: Active[T]
    raw: bytes
    version: str | None
    changed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Condemned:
    """A condemnation on its way to the worker (a ``rollback`` trigger's detail)."""

    generation: int
    config_hash: str
    reason: str
    evidence: tuple[Evidence, ...]


class Probationer(Generic[T]):
    """A mixin of the reloader: trials, condemnations, the quarantine and `release`."""

    if not TYPE_CHECKING:  # mypy would refuse assigning the façade's slots from here
        __slots__ = ()  # its state's slots are the façade's: see PROBATION_SLOTS

    snapshot: Snapshot[T]
    path: str
    lkg_path: str | None
    hook_timeout: float
    _active: Active[T]
    _closed: bool
    _loop: asyncio.AbstractEventLoop | None
    _tasks: TaskSet | None
    _metrics: ReloaderMetrics
    _log: ContextLogger
    _failures: FailureActor
    _last_key: str | None
    _last_eval: Evaluation[T] | None
    _scrub: Callable[[str], str]
    _request: Callable[[str, object], Coroutine[Any, Any, ReloadOutcome]]
    _condemn_trigger: Callable[[Condemned], None]
    _in_thread: Callable[..., Coroutine[Any, Any, Any]]
    _fleet_verdict: Callable[[str, str, tuple[Evidence, ...]], None]  # Rollouts

    def _init_probation(self, probation: Probation | None) -> None:
        if probation is not None and not isinstance(probation, Probation):
            raise TypeError(f"probation must be a hotreload.Probation, got {probation!r}")
        self._probation = probation
        self._trial: Trial | None = None
        self._trial_timer: asyncio.TimerHandle | None = None
        self._fallback: Fallback[T] | None = None
        self._in_force_raw: bytes | None = None
        # Copy on write: the last-known-good writer reads it from its thread.
        self._quarantine: Mapping[str, QuarantineEntry] = {}

    # -- public API -------------------------------------------------------------------------

    @property
    def probation(self) -> Probation | None:
        """The probation options (None: commits are not on probation)."""
        return self._probation

    @property
    def quarantined(self) -> tuple[QuarantineEntry, ...]:
        """The condemned versions, oldest first: none of them is committed until released."""
        return tuple(self._quarantine.values())

    async def release(self, config_hash: str) -> ReloadOutcome | None:
        """Lift the quarantine on ``config_hash`` and re-check the source at once, so a source
        that still holds that version puts it in force again (on probation, like any
        commit). None, and nothing done, if that hash is not quarantined."""
        if config_hash not in self._quarantine:
            return None
        return await self._request("release", config_hash)

    def probation_report(self) -> dict[str, Any] | None:
        """The probation in progress, for ``/-/config``: which commit, until when, the check's
        state and the evidence so far. None when no commit is on probation."""
        trial = self._trial
        if trial is None or self._loop is None or not trial.open(self._loop.time()):
            return None
        evidence = trial.evidence(self._failures.ledger.view)
        return {
            "generation": trial.generation,
            "config_hash": trial.config_hash,
            "until": datetime.fromtimestamp(trial.until_unix, timezone.utc).isoformat(),
            "failures": trial.threshold,
            "check": trial.check,
            "evidence": msgspec.to_builtins(evidence),
        }

    # -- the commit in force ----------------------------------------------------------------

    def _after_commit(
        self,
        trigger: str,
        *,
        old: Active[T] | None,
        old_version: str | None,
        snapshot: Snapshot[T],
        changed: tuple[str, ...],
        raw: bytes,
    ) -> None:
        """Called by the worker right after every swap: a rollback ends the story; any other
        commit but the first starts a trial, when probation is on."""
        if self._probation is None:
            return
        old_raw, self._in_force_raw = self._in_force_raw, raw
        if trigger == "rollback":
            self._end_trial()
            # The evaluation cached for the source's bytes compared them with the condemned
            # config: compare them with the one now in force instead.
            self._last_key = self._last_eval = None
            return
        probation, loop = self._probation, self._loop
        if old is None or old_raw is None or old.config_hash in self._quarantine or loop is None:
            self._end_trial()
            return  # the first config, or nothing worth going back to
        now = loop.time()
        trial = Trial(
            generation=snapshot.generation,
            config_hash=snapshot.config_hash,
            until=now + probation.window,
            until_unix=time.time() + probation.window,
            failing=failing_now(self._failures.ledger.view),
            threshold=probation.failures,
        )
        self._trial = trial
        self._fallback = Fallback(old, old_raw, old_version, changed)
        if self._trial_timer is None:
            # One timer for every trial: a later commit's window ends later, so the timer
            # armed for an earlier one re-arms for it when it fires (`_trial_over`) instead
            # of a cancel and a new timer per commit (a third of probation's cost per change).
            self._trial_timer = loop.call_at(trial.until, self._trial_over, trial.until)
        if probation.check is not None and self._tasks is not None:
            trial.check = "running"
            self._tasks.spawn(
                lambda: self._run_check(trial, snapshot),
                name=f"hotreload-probation-check[{snapshot.generation}]",
            )
        if trial.failing:
            # A line per commit only when it has news: these dependencies cannot condemn it.
            # The rest is the reloader's configuration (and `probation_report`); an INFO line
            # on every commit was most of probation's cost on a small config (benchmarks/
            # probation.py: ratio 1.22 with it, 1.02 without).
            self._log.info(
                "config_on_probation",
                generation=trial.generation,
                config_hash=trial.config_hash,
                window_s=probation.window,
                failures=probation.failures,
                already_failing=capped(sorted(trial.failing)),
            )

    def _trial_over(self, until: float) -> None:
        """The timer armed for ``until`` fired: the trial in progress passed if its window is
        the one that closed, else (a later commit's) the timer waits for the end of its own."""
        self._trial_timer = None
        trial, loop = self._trial, self._loop
        if trial is None or trial.condemned or loop is None:
            return  # ended, or its rollback is on its way (which ends it)
        if trial.until > until:
            self._trial_timer = loop.call_at(trial.until, self._trial_over, trial.until)
            return
        self._end_trial()
        self._log.info(
            "config_probation_passed", generation=trial.generation, config_hash=trial.config_hash
        )
        self._fleet_verdict(trial.config_hash, "good", ())

    def _end_trial(self) -> None:
        timer, self._trial_timer = self._trial_timer, None
        if timer is not None:
            timer.cancel()
        self._trial = None
        self._fallback = None

    @property
    def _fallback_hash(self) -> str | None:
        fallback = self._fallback
        return None if fallback is None else fallback.active.config_hash

    # -- condemnations ----------------------------------------------------------------------

    def _probation_failure(self, record: ToolsetFailureRecord) -> bool:
        """The failure actor's question, for each failure it counts: does this one condemn
        the commit on probation? If so the rollback is already asked for."""
        trial, loop = self._trial, self._loop
        if trial is None or loop is None or not trial.condemns(record, loop.time()):
            return False
        if trial.generation != self.snapshot.generation:
            return False
        evidence = trial.evidence(self._failures.ledger.view, record.toolset_name)
        self._condemn(trial, "failures", evidence)
        return True

    async def _run_check(self, trial: Trial, snapshot: Snapshot[T]) -> None:
        """Run the app's check once for this commit, bounded by ``hook_timeout``."""
        probation = self._probation
        assert probation is not None  # noqa: S101 - spawned only with a check
        check = probation.check
        assert check is not None  # noqa: S101
        name = getattr(check, "__qualname__", None) or repr(check)
        failure: Evidence | None = None
        try:
            with anyio.fail_after(self.hook_timeout):
                if _is_async(check):
                    result = check(snapshot)  # awaited below
                else:  # a sync probe may block (a network call): not on the loop
                    result = await anyio.to_thread.run_sync(check, snapshot, abandon_on_cancel=True)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:  # noqa: BLE001 - a check that raises condemns the commit
            text = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            failure = Evidence(
                kind="check",
                name=name,
                error_type=type(exc).__name__,
                error_message=self._scrub(text)[:_MESSAGE_CHARS],
            )
        else:
            if result is False:
                failure = Evidence(kind="check", name=name, error_message="returned False")
        trial.check = "passed" if failure is None else "failed"
        self._log.info(
            "config_probation_check_done",
            generation=trial.generation,
            check=name,
            passed=failure is None,
        )
        loop = self._loop
        if failure is None or loop is None or not trial.open(loop.time()):
            return
        if self._trial is trial and trial.generation == self.snapshot.generation:
            self._condemn(trial, "check", (failure,))

    def _condemn(self, trial: Trial, reason: str, evidence: tuple[Evidence, ...]) -> None:
        trial.condemned = True
        self._log.error(
            "config_condemned_on_probation",
            generation=trial.generation,
            config_hash=trial.config_hash,
            reason=reason,
            evidence=msgspec.to_builtins(evidence),
        )
        self._condemn_trigger(Condemned(trial.generation, trial.config_hash, reason, evidence))
        self._fleet_verdict(trial.config_hash, "bad", evidence)

    # -- the worker's part ------------------------------------------------------------------

    async def _take_verdicts(self, details: list[tuple[str, object]]) -> None:
        """Apply the batch's condemnations and releases to the quarantine, before the source
        is read: a condemnation counts only for the commit still in force."""
        quarantine = dict(self._quarantine)
        for kind, detail in details:
            if kind == "rollback" and isinstance(detail, Condemned):
                current = self.snapshot
                if detail.generation != current.generation or detail.config_hash in quarantine:
                    continue  # a newer commit replaced it meanwhile
                quarantine[detail.config_hash] = QuarantineEntry(
                    config_hash=detail.config_hash,
                    reason=detail.reason,
                    evidence=detail.evidence,
                    at=datetime.now(timezone.utc),
                    generation=detail.generation,
                )
                while len(quarantine) > QUARANTINE_MAX:
                    del quarantine[next(iter(quarantine))]
                self._log.warning(
                    "config_quarantined",
                    config_hash=detail.config_hash,
                    reason=detail.reason,
                    generation=detail.generation,
                )
            elif (
                kind == "verdict"
                and isinstance(detail, FleetVerdict)
                and detail.config_hash not in quarantine
            ):
                # The fleet's `bad`: never committed here, and rolled back if it is in force.
                in_force = detail.config_hash == self.snapshot.config_hash
                quarantine[detail.config_hash] = QuarantineEntry(
                    config_hash=detail.config_hash,
                    reason="verdict",
                    evidence=verdict_evidence(detail),
                    at=datetime.now(timezone.utc),
                    generation=self.snapshot.generation if in_force else 0,
                )
                while len(quarantine) > QUARANTINE_MAX:
                    del quarantine[next(iter(quarantine))]
                self._log.warning(
                    "config_quarantined",
                    config_hash=detail.config_hash,
                    reason="verdict",
                    by=detail.by,
                )
            elif (
                kind == "release"
                and isinstance(detail, str)
                and quarantine.pop(detail, None) is not None
            ):
                self._last_key = self._last_eval = None
                self._log.info("config_quarantine_released", config_hash=detail)
        if quarantine == self._quarantine:
            return
        self._quarantine = quarantine
        self._metrics.quarantined.set(len(quarantine))
        if self.lkg_path is not None:
            with anyio.CancelScope(shield=True):
                await self._in_thread(self._save_quarantine)

    def _quarantine_refusal(self, config_hash: str) -> ConfigRefusedError:
        entry = self._quarantine[config_hash]
        names = ", ".join(e.name for e in entry.evidence) or "-"
        why = (
            "the fleet's verdict on it is bad"
            if entry.reason == "verdict"
            else "probation rolled it back"
        )
        return ConfigRefusedError(
            self.path,
            f"version {config_hash} is quarantined: {why} "
            f"({entry.reason}: {names}); change the source, or release it "
            "(reloader.release(config_hash), POST /-/quarantine/release)",
            fields=(),
            reason="quarantined",
        )

    def _log_rollback(self, snapshot: Snapshot[T], condemned: str, duration_ms: float) -> None:
        entry = self._quarantine.get(condemned)
        reason = "failures" if entry is None else entry.reason
        evidence = () if entry is None else entry.evidence
        self._metrics.rollbacks.labels(reason).inc()
        self._log.warning(
            MSG_ROLLED_BACK,
            generation=snapshot.generation,
            config_hash=snapshot.config_hash,
            rolled_back_config_hash=condemned,
            reason=reason,
            evidence=msgspec.to_builtins(evidence),
            trigger="rollback",
            duration_ms=duration_ms,
        )
        # What the condemned config broke, it no longer breaks: those counters start again.
        self._failures.reset(e.name for e in evidence if e.kind == "failures")

    # -- the last-known-good file -----------------------------------------------------------

    def _restore_quarantine(self, cached: _lkg.Cached | None) -> None:
        """At start: the quarantine kept in the last-known-good file (a thread's work)."""
        if self._quarantine or self.lkg_path is None:
            return
        if cached is None:
            try:
                cached = _lkg.load(self.lkg_path)
            except (OSError, ValueError):
                return  # none yet, or unusable: `_last_known_good` says so if it matters
        self._quarantine = {e.config_hash: e for e in cached.quarantined}

    def _save_quarantine(self) -> None:
        """Rewrite the last-known-good file with the quarantine as it is now."""
        assert self.lkg_path is not None  # noqa: S101 - checked by the caller
        try:
            cached = _lkg.load(self.lkg_path)
            kept = msgspec.structs.replace(cached, quarantined=tuple(self._quarantine.values()))
            _lkg.save(self.lkg_path, kept)
        except (OSError, ValueError) as exc:  # a safety net: never fail a reload over it
            self._log.warning("quarantine_write_failed", path=self.lkg_path, error=str(exc))


def _is_async(check: Check) -> bool:
    """An ``async def`` check, or an object whose ``__call__`` is one: awaited on the loop
    (anything else may block, and runs in a thread)."""
    call = type(check).__call__
    return inspect.iscoroutinefunction(check) or inspect.iscoroutinefunction(call)
