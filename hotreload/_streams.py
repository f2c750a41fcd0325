"""Streams and waits: every commit and every outcome, published in order to whoever listens.

Lean on purpose (a reloader should cost a few KB): the stream sets, the wake-up event and
the outcome history only hold something while someone waits or listens.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio

from ._outcome import ReloadOutcome, ReloadResult
from ._snapshot import Snapshot

__all__ = ["STREAM_SLOTS", "Stream", "Streams"]

#: The state this part owns: slots of the `HotReloader` façade (a part has none of its own,
#: so parts stand side by side as bases instead of stacked in a chain).
STREAM_SLOTS = (
    "_event",
    "_outcome_streams",
    "_outcomes",
    "_seq",
    "_snapshot_streams",
    "last_outcome",
)

T = TypeVar("T")
X = TypeVar("X")
_OUTCOME_HISTORY = 256


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


class Streams(Generic[T]):
    """A mixin of the reloader: ``changes()``, ``outcomes()`` and the ``wait_for_*`` calls."""

    if not TYPE_CHECKING:  # mypy would refuse assigning the façade's slots from here
        __slots__ = ()  # its state's slots are the façade's: see STREAM_SLOTS

    snapshot: Snapshot[T]
    _closed: bool
    last_outcome: ReloadOutcome | None

    def _init_streams(self) -> None:
        self._snapshot_streams: weakref.WeakSet[Stream[Snapshot[T]]] | None = None
        self._outcome_streams: weakref.WeakSet[Stream[ReloadOutcome]] | None = None
        self._outcomes: list[tuple[int, ReloadOutcome]] = []
        self._seq = 0
        self._event: asyncio.Event | None = None

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

    def _publish_snapshot(self, snapshot: Snapshot[T]) -> None:
        for stream in list(self._snapshot_streams or ()):
            stream._put(snapshot)

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

    def _end_streams(self) -> None:
        """The reloader closed: streams end, waiters wake (and find it closed)."""
        for snapshots in list(self._snapshot_streams or ()):
            snapshots._end()
        for outcomes in list(self._outcome_streams or ()):
            outcomes._end()
        if self._event is not None:
            self._event.set()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the reloader closed while waiting")

    async def _next_event(self) -> None:
        if self._event is None:
            self._event = asyncio.Event()
        await self._event.wait()


def _matches(
    match: ReloadResult | Callable[[ReloadOutcome], bool] | None, outcome: ReloadOutcome
) -> bool:
    if match is None:
        return True
    if isinstance(match, ReloadResult):
        return outcome.result is match
    return bool(match(outcome))
