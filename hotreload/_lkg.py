"""The last-known-good cache: a local copy of the last committed version of a config.

A pod restarted while its ConfigMap holds a bad push would otherwise crash-loop: with
``lkg_path`` set, the reloader starts on the cached copy instead, says it is degraded, and
keeps watching for a fixed version. The copy is written atomically (temp file, fsync,
rename) with owner-only permissions, since a config may hold secrets.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import datetime

import msgspec

__all__ = ["Cached", "load", "save"]


class Cached(msgspec.Struct, frozen=True, kw_only=True):
    """What the cache file holds: the exact bytes that were committed, and their origin."""

    source: str
    content: str
    content_sha256: str
    config_hash: str
    generation: int
    saved_at: datetime


def save(path: str, cached: Cached) -> None:
    """Replace ``path`` with ``cached`` atomically: readers see the old file or the new one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".hotreload-lkg-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.encode(cached))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load(path: str) -> Cached:
    """The cached copy; raises OSError if unreadable, msgspec errors if damaged."""
    with open(path, "rb") as f:
        return msgspec.json.decode(f.read(), type=Cached)
