"""Where a config's bytes come from: the `Source` protocol.

The reloader's pipeline (parse, validate, drain, commit) does not care whether the bytes live
in a file or in a key-value store. A source only has to say what the current bytes are and
when they may have changed; the reloader re-reads on every hint, so a source may over-notify
but must never miss a change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ._parsing import Format

__all__ = ["Revision", "Source"]


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
