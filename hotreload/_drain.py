"""Session-drain gating (BR-HAPI-191): a valid change waits while gating sessions are open.

A session is a long unit of work (an investigation) whose side effects must not straddle a
config change. While any is open, the reload worker parks a valid change here as *pending*
(the newest wins) instead of committing it; it is committed when the last session ends, or
when ``max_wait`` has passed since it started waiting, so a stuck session delays a change by
a bounded time, never forever.

Sessions may be opened and closed from any thread (the spec's ``register_session`` style is
synchronous); the gate only counts them and, when the last one ends with a change pending,
asks the worker, on the loop, to commit it. The pending change itself is only ever touched
by the worker.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["DrainGate", "Pending"]

P = TypeVar("P")


@dataclass(slots=True)
class Pending(Generic[P]):
    """A change waiting for sessions: what it is, and since when (``loop.time()``, and Unix
    time for reports)."""

    change: P
    since: float
    seq: int
    since_unix: float


class DrainGate(Generic[P]):
    """Counts open sessions and holds at most one pending change (worker-side only)."""

    def __init__(self, max_wait: float, release: Callable[[str], None]) -> None:
        if max_wait < 0:
            raise ValueError(f"max_drain_wait must be >= 0 seconds, got {max_wait!r}")
        self.max_wait = max_wait
        self._release = release  # thread-safe: asks the worker to look at the gate again
        self._lock = threading.Lock()
        self._sessions: set[Hashable] = set()
        self.pending: Pending[P] | None = None
        self.pending_seq = 0  # how many changes have ever been held: a failure streak's mark
        self._expired = False
        self._timer: asyncio.TimerHandle | None = None

    # -- sessions: any thread -------------------------------------------------------------------

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def open(self, key: Hashable) -> bool:
        """Count a session; False if ``key`` was already open (idempotent)."""
        with self._lock:
            if key in self._sessions:
                return False
            self._sessions.add(key)
            return True

    def close(self, key: Hashable) -> bool:
        """Stop counting a session; False if it was not open. The last one out releases."""
        with self._lock:
            if key not in self._sessions:
                return False
            self._sessions.discard(key)
            last = not self._sessions
        if last and self.pending is not None:
            self._release("session_end")
        return True

    # -- the pending change: the worker only ----------------------------------------------------

    @property
    def holding(self) -> bool:
        """True while a valid change must wait: sessions open and the wait not yet used up."""
        return bool(self._sessions) and self.max_wait > 0 and not self._expired

    def hold(self, change: P) -> Pending[P]:
        """Park ``change`` (replacing an older one); its wait runs from the first one parked."""
        loop = asyncio.get_running_loop()
        self.pending_seq += 1
        if self.pending is None:
            self.pending = Pending(change, loop.time(), self.pending_seq, time.time())
            self._timer = loop.call_later(self.max_wait, self._expire)
        else:
            first = self.pending
            self.pending = Pending(change, first.since, self.pending_seq, first.since_unix)
        return self.pending

    def take(self) -> Pending[P] | None:
        """Remove and return the pending change (to commit it, or because it is moot)."""
        pending, self.pending = self.pending, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._expired = False
        return pending

    def _expire(self) -> None:
        self._timer = None
        self._expired = True
        self._release("drain_timeout")
