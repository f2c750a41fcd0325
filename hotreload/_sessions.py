"""Sessions: the public face of the drain gate.

A session pins the snapshot in force for one long unit of work and holds valid changes back
as ``pending`` until the last session ends or ``max_drain_wait`` passes. Sessions may be
opened and closed from any thread; what happens to a held change is the worker's decision.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Hashable
from datetime import datetime, timezone
from typing import Generic, TypeVar

from ._derive import DerivedSet
from ._drain import DrainGate
from ._logging import ContextLogger
from ._metrics import ReloaderMetrics
from ._pipeline import Active
from ._snapshot import Snapshot
from ._worker import _Change

__all__ = ["Sessions"]

T = TypeVar("T")


class Sessions(Generic[T]):
    """A mixin of the reloader: ``session()``, ``register_session()`` and what they hold."""

    __slots__ = ()

    snapshot: Snapshot[T]
    _closed: bool
    _derived: DerivedSet
    _gate: DrainGate[_Change[T]]
    _log: ContextLogger
    _metrics: ReloaderMetrics
    _snapshot_of: Callable[[Active[T], int, str | None], Snapshot[T]]  # Worker

    @contextlib.asynccontextmanager
    async def session(self, session_id: Hashable | None = None) -> AsyncIterator[Snapshot[T]]:
        """Pin the snapshot in force for one long unit of work, and hold changes back.

        While any session is open a valid change waits as ``pending``; it is committed when
        the last session ends, or ``max_drain_wait`` after it started waiting. The session
        keeps the snapshot it was given either way, and ``derived.get()`` inside it the
        resources built for that snapshot. For one snapshot per web request without
        holding anything back, read ``reloader.snapshot`` once instead.
        """
        key: Hashable = object() if session_id is None else session_id
        if not self.register_session(key):
            raise RuntimeError(f"session {session_id!r} is already open")
        try:
            snapshot = self.snapshot
            with self._derived.pinning():  # the derived resources of this very snapshot
                yield snapshot
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
    def active_sessions(self) -> int:
        """How many sessions are open."""
        return self._gate.sessions

    @property
    def pending(self) -> Snapshot[T] | None:
        """The valid change waiting for sessions to end (as it will be committed), or None."""
        pending = self._gate.pending
        if pending is None:
            return None
        change = pending.change
        return self._snapshot_of(change.active, self.snapshot.generation + 1, change.version)
