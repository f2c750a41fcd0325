"""Session-drain gating: a valid change waits while gating sessions are open.

A session is a long unit of work (an investigation) whose side effects must not straddle a
config change. While any is open, the reload worker parks a valid change as *pending* (the
newest wins) instead of committing it; it is committed when the last session ends, or when
``max_wait`` has passed since it started waiting, so a stuck session delays a change by a
bounded time, never forever.

What to do with a change is decided in `_decide` (pure, unit-tested exhaustively). This
module adds what needs threads and a loop: sessions may be opened and closed from any thread
(the spec's ``register_session`` style is synchronous), and when the last one ends with a
change pending, or the wait runs out, the gate asks the worker, on the loop, to look again.
The pending change itself is only ever touched by the worker.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

from ._decide import Gate, Pending

__all__ = ["DrainGate", "Pending"]

P = TypeVar("P")


class DrainGate(Gate[P]):
    """`Gate` with a lock for the session count and a timer for the wait."""

    __slots__ = ("_lock", "_release", "_timer")

    def __init__(self, max_wait: float, release: Callable[[str], None]) -> None:
        super().__init__(max_wait)
        self._release = release  # thread-safe: asks the worker to look at the gate again
        self._lock = threading.Lock()
        self._timer: asyncio.TimerHandle | None = None

    # -- sessions: any thread -------------------------------------------------------------------

    def open(self, key: Hashable) -> bool:
        with self._lock:
            return super().open(key)

    def close(self, key: Hashable) -> bool:
        """Stop counting a session; False if it was not open. The last one out releases."""
        with self._lock:
            if not super().close(key):
                return False
            last = not self.sessions
        if last and self.pending is not None:
            self._release("session_end")
        return True

    # -- the pending change: the worker only ----------------------------------------------------

    def hold(self, change: P, config_hash: str) -> Pending[P]:
        first = self.pending is None
        pending = super().hold(change, config_hash)
        if first:
            self._timer = asyncio.get_running_loop().call_later(self.max_wait, self._expire)
        return pending

    def take(self) -> Pending[P] | None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return super().take()

    def _expire(self) -> None:
        self._timer = None
        self.expire()
        self._release("drain_timeout")
