"""What one re-check found and did."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ._errors import ConfigError

__all__ = ["ReloadOutcome", "ReloadResult"]


class ReloadResult(str, enum.Enum):
    """The four results of a reload; the values are what logs and metrics carry."""

    CONFIG_CHANGED = "config_changed"
    CONFIG_UNCHANGED = "config_unchanged"
    VALIDATION_FAILED = "validation_failed"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """The result of one re-check.

    ``applied`` is true when this check committed a new snapshot; ``deferred`` when it found a
    valid change but open sessions hold it back as pending (it is committed when the last
    session ends or ``max_drain_wait`` passes, with an outcome of its own). ``generation`` is
    the generation in force afterwards. ``changed`` lists the key paths that changed (applied ones
    only); ``restart_required`` the restart-required fields whose new value in the file is not
    in force. ``trigger`` says what asked for the check: ``watch``, ``poll``, ``manual``,
    ``rescan``, ``initial``, ``auto_reload`` (persistent toolset failures), ``session_end``
    or ``drain_timeout`` (a pending change committed). ``duration`` is in seconds;
    ``latency`` runs from the first trigger of this check to its end.
    """

    result: ReloadResult
    applied: bool
    generation: int
    trigger: str
    duration: float
    latency: float
    config_hash: str
    error: ConfigError | None = None
    changed: tuple[str, ...] = ()
    restart_required: tuple[str, ...] = ()
    deferred: bool = False
    at: float = 0.0
    """Unix time at which the check ended."""

    @property
    def refused(self) -> tuple[str, ...]:
        """The ``refuse``-policy fields whose change refused this version (else empty): a
        valid file that cannot apply live, as opposed to an invalid one."""
        return tuple(getattr(self.error, "fields", ()))

    @property
    def ok(self) -> bool:
        """True unless the new version was rejected or could not be read."""
        return self.error is None
