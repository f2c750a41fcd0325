"""The commit decision: one pure function and the gate state it reads.

Everything that decides *what* goes in force lives here, so no two places can disagree about
it (a direct commit that left a stale change pending, released right after, was how an
already-replaced version once came back). `Gate` counts sessions and holds at most one pending
change; `decide` looks at a batch's candidate, the config in force and the gate, and says what
to do. Both are synchronous, with an injected clock and no event loop, so every sequence of
events can be unit-tested exhaustively; `_drain.DrainGate` adds the thread lock and the timer
that wakes the worker when the wait is used up.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "CALLERS",
    "Candidate",
    "Commit",
    "Gate",
    "Pending",
    "Verdict",
    "broken_invariant",
    "decide",
]

P = TypeVar("P")

#: Triggers by which someone asks for a re-check (``reload()``, SIGHUP): only they retry a
#: version an apply hook refused, so a watch event or a forced re-check does not rerun hooks.
CALLERS = frozenset({"manual", "signal"})


class Verdict(enum.Enum):
    """What the worker does with one batch of triggers."""

    COMMIT = "commit"  # put the candidate in force now; a pending change is cleared
    HOLD = "hold"  # park the candidate as the pending change (it replaces an older one)
    RELEASE = "release"  # put the pending change in force: sessions ended or the wait is up
    DROP = "drop"  # discard the pending change: the source is back to the config in force
    KEEP = "keep"  # nothing to put in force
    ROLLBACK = "rollback"  # put the fallback back: the config in force is quarantined


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the batch's re-check found: the candidate's ``config_hash``, or None when it is
    invalid (or unreadable). A batch that did not look at the source has no candidate.
    ``refused``: an apply hook already refused this very version."""

    config_hash: str | None
    refused: bool = False

    @property
    def valid(self) -> bool:
        return self.config_hash is not None


def decide(
    candidate: Candidate | None,
    active_hash: str,
    pending_hash: str | None,
    holding: bool,
    triggers: Collection[str] = (),
    *,
    quarantined: Collection[str] = (),
    fallback: str | None = None,
    awaiting: Collection[str] = (),
) -> Verdict:
    """The one rule. A valid candidate that differs from what is in force is committed, or held
    while the gate holds; one equal to what is in force makes a pending change moot. A version
    a hook refused counts as new only when the batch's ``triggers`` include a caller's (see
    `CALLERS`). Otherwise (no candidate, an invalid one, or nothing new) a pending change goes
    in once the gate stops holding.

    Probation adds two inputs. A ``quarantined`` hash is never new, never released and never
    committed: a pending change with one is dropped. And when the config in force is itself
    quarantined (probation condemned it), it is replaced at once, sessions or not (they keep
    the snapshot they pinned): by the candidate if it is new, else by the pending change, else
    by ``fallback``, the config in force before it (`Verdict.ROLLBACK`).

    A fleet rollout adds one more: an ``awaiting`` hash (a follower holds it for the fleet's
    verdict) is not new yet, so it is neither committed nor parked; the rest of the rule runs
    as if the source showed nothing new."""
    condemned = active_hash in quarantined
    found = None if candidate is None else candidate.config_hash
    if candidate is not None and found is not None and found not in quarantined:
        if found != active_hash:
            if found not in awaiting and (
                not candidate.refused or not CALLERS.isdisjoint(triggers)
            ):
                return Verdict.HOLD if holding and not condemned else Verdict.COMMIT
        elif pending_hash is not None:
            return Verdict.DROP
        else:
            return Verdict.KEEP
    if pending_hash is not None and pending_hash in quarantined:
        return Verdict.DROP
    if condemned:
        if pending_hash is not None:
            return Verdict.RELEASE
        if fallback is not None and fallback not in quarantined:
            return Verdict.ROLLBACK
        return Verdict.KEEP
    if pending_hash is not None and not holding:
        return Verdict.RELEASE
    return Verdict.KEEP


@dataclass(slots=True)
class Pending(Generic[P]):
    """A change waiting for sessions: what it is, its hash, and since when (the gate's clock,
    and Unix time for reports)."""

    change: P
    config_hash: str
    since: float
    seq: int
    since_unix: float


class Gate(Generic[P]):
    """Open sessions and at most one pending change; `verdict` applies `decide` to them.

    ``clock`` is monotonic seconds (the loop's clock in the engine, a fake in tests). The
    pending change is due ``max_wait`` after the first one was parked; `expire` marks it due
    early (the engine's timer, in case it fires a hair before the clock agrees).
    """

    __slots__ = ("_clock", "_expired", "_sessions", "_wall", "max_wait", "pending", "pending_seq")

    def __init__(
        self,
        max_wait: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if max_wait < 0:
            raise ValueError(f"max_drain_wait must be >= 0 seconds, got {max_wait!r}")
        self.max_wait = max_wait
        self._clock = clock
        self._wall = wall
        self._sessions: set[Hashable] | None = None  # made at the first session (memory)
        self.pending: Pending[P] | None = None
        self.pending_seq = 0  # how many changes have ever been held: a failure streak's mark
        self._expired = False

    @property
    def sessions(self) -> int:
        return 0 if self._sessions is None else len(self._sessions)

    def open(self, key: Hashable) -> bool:
        """Count a session; False if ``key`` was already open (idempotent)."""
        if self._sessions is None:
            self._sessions = set()
        if key in self._sessions:
            return False
        self._sessions.add(key)
        return True

    def close(self, key: Hashable) -> bool:
        """Stop counting a session; False if it was not open."""
        if self._sessions is None or key not in self._sessions:
            return False
        self._sessions.discard(key)
        return True

    @property
    def due(self) -> bool:
        """True once the pending change has waited ``max_wait``."""
        pending = self.pending
        if pending is None:
            return False
        return self._expired or self._clock() >= pending.since + self.max_wait

    @property
    def holding(self) -> bool:
        """True while a valid change must wait: sessions open and the wait not yet used up."""
        return bool(self._sessions) and self.max_wait > 0 and not self.due

    def waited(self, pending: Pending[P]) -> float:
        """Seconds ``pending`` has waited, on the gate's clock."""
        return self._clock() - pending.since

    def verdict(
        self,
        candidate: Candidate | None,
        active_hash: str,
        triggers: Collection[str] = (),
        *,
        quarantined: Collection[str] = (),
        fallback: str | None = None,
        awaiting: Collection[str] = (),
    ) -> Verdict:
        pending = None if self.pending is None else self.pending.config_hash
        return decide(
            candidate,
            active_hash,
            pending,
            self.holding,
            triggers,
            quarantined=quarantined,
            fallback=fallback,
            awaiting=awaiting,
        )

    def hold(self, change: P, config_hash: str) -> Pending[P]:
        """Park ``change`` (replacing an older one); its wait runs from the first one parked."""
        self.pending_seq += 1
        first = self.pending
        if first is None:
            self.pending = Pending(
                change, config_hash, self._clock(), self.pending_seq, self._wall()
            )
        else:
            self.pending = Pending(
                change, config_hash, first.since, self.pending_seq, first.since_unix
            )
        return self.pending

    def take(self) -> Pending[P] | None:
        """Remove and return the pending change (committed, released or moot)."""
        pending, self.pending = self.pending, None
        self._expired = False
        return pending

    def expire(self) -> None:
        """The wait is up (the engine's timer fired)."""
        if self.pending is not None:
            self._expired = True


@dataclass(frozen=True, slots=True)
class Commit:
    """What the invariants need to know about one commit: its generation, its ``config_hash``,
    and the number of the source read that produced it (reads are numbered in order)."""

    generation: int
    config_hash: str
    read: int


def broken_invariant(last: Commit, new: Commit, quarantined: Collection[str] = ()) -> str | None:
    """Which commit invariant ``new`` would break after ``last``, or None.

    Generations strictly increase; two consecutive commits never share a ``config_hash``; a
    commit never comes from an older read than the one in force, so a version replaced by a
    newer commit returns only when the source itself goes back to it (a newer read) or a
    rollback puts it back (which counts as the read in force); and a quarantined hash is never
    committed.
    """
    if new.config_hash in quarantined:
        return "quarantined"
    if new.generation <= last.generation:
        return "generation_not_increasing"
    if new.config_hash == last.config_hash:
        return "same_config_hash"
    if new.read < last.read:
        return "older_than_config_in_force"
    return None
