"""The unit that is swapped: a validated config together with where and when it came from."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

__all__ = ["Snapshot", "canonical_hash"]

T = TypeVar("T")


class Snapshot(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """One committed config version. Immutable: a reader holding it never sees it change.

    ``config_hash`` is the sha256 of the canonical (key-sorted JSON) encoding of ``config``, so
    a comment- or whitespace-only edit keeps it; ``content_sha256`` is the hash of the raw bytes.
    ``source`` is where it came from (a path, a URI) and ``version`` the source's own label for
    that version when it has one (etcd's ``mod_revision``; ``None`` for a file).
    """

    config: T
    generation: int
    config_hash: str
    content_sha256: str
    loaded_at: datetime
    source: str
    version: str | None = None


def canonical_hash(builtins: Any) -> str:
    """sha256 of the key-sorted JSON encoding of an already ``to_builtins``-converted config."""
    return hashlib.sha256(msgspec.json.encode(builtins, order="sorted")).hexdigest()
