"""Where a config's bytes come from: the `Source` protocol.

The reloader's pipeline (parse, validate, drain, commit) does not care whether the bytes live
in a file or in a key-value store. A source only has to say what the current bytes are and
when they may have changed; the reloader re-reads on every hint, so a source may over-notify
but must never miss a change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ._parsing import Format

if TYPE_CHECKING:
    from ._provenance import Document

__all__ = ["Attached", "Revision", "Source", "Wiring", "wiring_for"]


@dataclass(frozen=True, slots=True)
class Revision:
    """The bytes of one version, and the source's own version label for them if it has one
    (etcd's ``mod_revision``, say); ``None`` for a file."""

    content: bytes
    version: str | None = None


@runtime_checkable
class Source(Protocol):
    """A config source the reloader can read and watch.

    ``uri`` names it in logs, metrics and ``Snapshot.source``. ``format`` is the document
    format, or ``None`` to let the reloader guess from ``uri``'s suffix.
    """

    @property
    def uri(self) -> str: ...

    @property
    def format(self) -> Format | None: ...

    async def read(self, max_bytes: int) -> Revision:
        """The current bytes. Raises `ConfigReadError` (with ``uri`` as its source) when the
        document is missing, unreachable or larger than ``max_bytes``."""
        ...

    async def watch(self, notify: Callable[[str], None], ready: Callable[[], None]) -> None:
        """Run until cancelled: call ``ready()`` once changes are being watched, then
        ``notify(kind)`` (on the event loop) whenever the document may have changed. Recovers
        from its own errors (reconnect, resume, re-read) and never returns or raises on its
        own, except for cancellation."""
        ...


class Attached(Protocol):
    """A subscription to the process's file watcher hub, made instead of a ``watch`` task."""

    @property
    def ready(self) -> asyncio.Future[None]:
        """Resolved once a running watcher covers the source."""
        ...

    @property
    def joined(self) -> asyncio.Future[None]:
        """What a start waits for: ``ready``, or (a busy hub) a watcher build under way that
        re-checks the source once it is up."""
        ...

    async def detach(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Wiring:
    """What the reloader may use beyond `Source`. The built-in sources say what they offer;
    any other source gets these defaults, so the reloader never asks which source it has.

    ``attach`` subscribes to the watcher hub (no task per reloader) instead of ``watch``;
    ``decode`` turns the bytes into a `Document` (a merge of layers, with origins) instead of
    parsing one document; ``warnings`` lists known ways the source will not be kept current;
    ``empty_may_be_mid_write``: an empty read may be an in-place write caught between its
    truncate and its write, worth one more look before it is refused; ``settle``: seconds
    without a new watch event the reloader waits for before it reads (a burst of writes is
    one read and at most one commit; 0: read on every event); ``degrade``: given the first
    read's bytes, which were invalid, the bytes to start on instead (degraded) and the parts
    left out of them, or None (`Layers` with a ``fallible`` layer).
    """

    attach: Callable[[Callable[[str], None], Callable[[], None]], Attached] | None = None
    decode: Callable[[bytes], Document] | None = None
    warnings: Callable[[], list[tuple[str, str]]] = list
    empty_may_be_mid_write: bool = False
    settle: float = 0.0
    degrade: Callable[[bytes], tuple[bytes, tuple[str, ...]] | None] | None = None


@runtime_checkable
class _Wired(Protocol):
    def _wiring(self) -> Wiring: ...


_PLAIN = Wiring()


def wiring_for(source: Source) -> Wiring:
    """The source's own `Wiring` if it has one (the built-in sources), else the defaults."""
    return source._wiring() if isinstance(source, _Wired) else _PLAIN
