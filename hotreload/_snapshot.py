"""The unit that is swapped: a validated config together with where and when it came from."""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

__all__ = ["Snapshot", "canonical_hash", "canonical_json"]

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
    """sha256 of the canonical encoding (`canonical_json`) of a ``to_builtins``-converted config."""
    return hashlib.sha256(canonical_json(builtins)).hexdigest()


#: A msgpack float64 whose exponent bits are all ones: NaN or an infinity.
_NON_FINITE = re.compile(rb"\xcb[\x7f\xff][\xf0-\xff]")


def canonical_json(value: Any) -> bytes:
    """The key-sorted JSON encoding that decides whether two versions are the same config.

    Plain JSON loses two distinctions a config can make, so those are spelled out instead:
    non-finite floats (JSON writes NaN, inf and -inf all as ``null``) become ``"\\u0000nan"``,
    ``"\\u0000inf"``, ``"\\u0000-inf"``; a mapping with a key that is not a string (YAML's
    ``404: retry``) has each such key written as ``"\\u0000<type>:<json>"``. Neither can clash
    with a real YAML string (no NUL is allowed in one). The common case is msgspec alone: a
    msgpack pass (C, microseconds) tells whether any float is non-finite.
    """
    try:
        packed: bytes | None = msgspec.msgpack.encode(value)
    except (TypeError, msgspec.EncodeError):
        packed = None
    if packed is not None and _NON_FINITE.search(packed) is None:
        with contextlib.suppress(TypeError):  # a key that is not a string
            return msgspec.json.encode(value, order="sorted")
    return msgspec.json.encode(_spelled_out(value), order="sorted")


def _spelled_out(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "\x00" + ("nan" if math.isnan(value) else "inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {_key(k): _spelled_out(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_spelled_out(v) for v in value]
    return value


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    return f"\x00{type(key).__name__}:{canonical_json(key).decode()}"
