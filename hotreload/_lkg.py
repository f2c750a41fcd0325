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
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

import msgspec

from ._errors import ConfigError, ConfigRefusedError
from ._logging import ContextLogger
from ._metrics import ReloaderMetrics
from ._pipeline import Active, Pipeline
from ._probation import QuarantineEntry
from ._snapshot import Snapshot

T = TypeVar("T")

__all__ = ["LKG_SLOTS", "Cached", "LastKnownGood", "load", "save"]

#: The state this part owns: slots of the `HotReloader` façade (a part has none of its own,
#: so parts stand side by side as bases instead of stacked in a chain).
LKG_SLOTS = ("_degrade", "degraded", "lkg_path")


class Cached(msgspec.Struct, frozen=True, kw_only=True):
    """What the cache file holds: the exact bytes that were committed, and their origin; and
    the versions probation quarantined, so a restart keeps them out too."""

    source: str
    content: str
    content_sha256: str
    config_hash: str
    generation: int
    saved_at: datetime
    quarantined: tuple[QuarantineEntry, ...] = ()


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


class LastKnownGood(Generic[T]):
    """A mixin of the reloader: start on the cached copy when the source is invalid, write the
    copy at each commit, and clear ``degraded`` once the source is valid again."""

    if not TYPE_CHECKING:  # mypy would refuse assigning the façade's slots from here
        __slots__ = ()  # its state's slots are the façade's: see LKG_SLOTS

    path: str
    lkg_path: str | None
    degraded: str | None
    _pipeline: Pipeline[T]
    _log: ContextLogger
    _metrics: ReloaderMetrics
    _quarantine: Mapping[str, QuarantineEntry]
    _restore_quarantine: Callable[[Cached | None], None]
    _degrade: Callable[[bytes], tuple[bytes, tuple[str, ...]] | None] | None

    def _last_known_good(self, error: ConfigError, raw: bytes | None) -> tuple[Active[T], bytes]:
        """Start on the cached copy when the source is invalid; else, when the source can
        leave out the part at fault (`Layers` with a ``fallible`` layer), without it; re-raise
        ``error`` otherwise. ``raw``: the invalid bytes (None: the source could not be read)."""
        try:
            return self._cached_copy(error)
        except ConfigError:
            if raw is None or self._degrade is None:
                raise
        return self._start_without(error, raw, self._degrade)

    def _start_without(
        self,
        error: ConfigError,
        raw: bytes,
        degrade: Callable[[bytes], tuple[bytes, tuple[str, ...]] | None],
    ) -> tuple[Active[T], bytes]:
        """Start on the source's bytes less its fallible parts, degraded with ``error``."""
        fallback = degrade(raw)
        if fallback is None:
            raise error
        content, left_out = fallback
        try:
            active = self._pipeline.load(content)
        except ConfigError:  # the fault is not (only) in what was left out
            raise error from None
        if active.config_hash in self._quarantine:
            raise error
        self.degraded = f"started without {', '.join(left_out)}: {error}"
        self._log.error(
            "config_started_without_layer",
            layers=list(left_out),
            error=str(error),
            reason=error.reason,
            file=error.source,
        )
        return active, content

    def _cached_copy(self, error: ConfigError) -> tuple[Active[T], bytes]:
        if self.lkg_path is None:
            raise error
        try:
            cached = load(self.lkg_path)
            self._restore_quarantine(cached)
            raw = cached.content.encode()
            active = self._pipeline.load(raw)
            if active.config_hash in self._quarantine:  # never start on a condemned version
                raise error
        except FileNotFoundError:
            raise error from None
        except (OSError, ValueError, ConfigError) as exc:  # msgspec errors are ValueErrors
            self._log.error(
                "last_known_good_unusable", path=self.lkg_path, error=type(exc).__name__
            )
            raise error from None
        quarantined = isinstance(error, ConfigRefusedError) and error.reason == "quarantined"
        why = "holds a quarantined version" if quarantined else "is invalid"
        self.degraded = f"started from the last-known-good copy: the source {why}: {error}"
        self._log.error(
            "config_started_from_last_known_good",
            error=str(error),
            reason=error.reason,
            lkg_path=self.lkg_path,
            cached_generation=cached.generation,
            cached_config_hash=cached.config_hash,
            saved_at=cached.saved_at.isoformat(),
        )
        return active, raw

    def _save_last_known_good(self, snapshot: Snapshot[T], raw: bytes) -> None:
        assert self.lkg_path is not None  # noqa: S101 - checked by the caller
        try:
            cached = Cached(
                source=self.path,
                content=raw.decode(),
                content_sha256=snapshot.content_sha256,
                config_hash=snapshot.config_hash,
                generation=snapshot.generation,
                saved_at=snapshot.loaded_at,
                quarantined=tuple(self._quarantine.values()),
            )
            save(self.lkg_path, cached)
        except (OSError, ValueError) as exc:  # a safety net: never fail a commit over it
            self._log.warning("last_known_good_write_failed", path=self.lkg_path, error=str(exc))

    def _recovered(self) -> None:
        if self.degraded is not None:
            self.degraded = None
            self._metrics.degraded.set(0)
            self._log.info("config_recovered_from_last_known_good")
