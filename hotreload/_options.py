"""`HotReloader`'s grouped options, and the range checks done before anything is built.

Options that belong to one concern travel together (httpx's ``Timeout`` and ``Limits`` are the
model): the field policies in `Fields`, the failure counter in `Failures`, the log-level switch
in `LogLevel`. The watch options belong to the file source (`FileSource`, `Layers`). A zero or
negative interval would spin the loop or never fire; refusing it at construction names the
option while the caller's code is still on screen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Failures", "Fields", "LogLevel", "check_options", "settle_seconds"]


def _patterns(name: str, value: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):  # ("a.b") is a str, not a one-item tuple: a classic slip
        raise TypeError(f"{name} takes a sequence of dotted paths, not one string: [{value!r}]")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class Fields:
    """Dotted path patterns (``*`` matches one segment) added to what the schema marks.

    ``restart_required``: a change is kept out of the config in force until a restart
    (`RestartRequired`); ``refuse_changes``: a change refuses the whole new version
    (``RestartRequired("refuse")``); ``secrets``: the value is masked wherever it is shown
    (`Secret`).
    """

    restart_required: Sequence[str] = ()
    refuse_changes: Sequence[str] = ()
    secrets: Sequence[str] = ()

    def __post_init__(self) -> None:
        for name in ("restart_required", "refuse_changes", "secrets"):
            object.__setattr__(self, name, _patterns(name, getattr(self, name)))


@dataclass(frozen=True, slots=True)
class Failures:
    """When failures a dependency reports force a re-check of the source.

    ``threshold`` consecutive ``record_failure(name, ...)`` calls force one, at most once per
    ``cooldown`` seconds per name.
    """

    threshold: int = 3
    cooldown: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or self.threshold < 1:
            raise ValueError(f"Failures.threshold must be >= 1, got {self.threshold!r}")
        if self.cooldown < 0:
            raise ValueError(f"Failures.cooldown must be >= 0 seconds, got {self.cooldown!r}")


@dataclass(frozen=True, slots=True)
class LogLevel:
    """The config field whose value sets the level of stdlib ``loggers`` (root by default),
    on load and on every change. A schema without that field leaves logging alone; pass
    ``log_level=None`` to `HotReloader` to leave it alone whatever the schema."""

    field: str = "log_level"
    loggers: Sequence[str] = ("",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "loggers", _patterns("loggers", self.loggers))


def settle_seconds(settle_ms: object) -> float:
    """A source's ``settle_ms`` (None or 0: off) as seconds, or ValueError naming it."""
    if settle_ms is None:
        return 0.0
    if (
        isinstance(settle_ms, bool)
        or not isinstance(settle_ms, (int, float))
        or not math.isfinite(settle_ms)
        or settle_ms < 0
    ):
        raise ValueError(
            f"settle_ms must be None or a number of milliseconds >= 0, got {settle_ms!r}"
        )
    return settle_ms / 1000


def check_options(*, poll_interval: float, max_bytes: int, hook_timeout: float) -> None:
    """Raise ValueError for an option out of range (the messages tests and users rely on)."""
    if poll_interval < 0 or max_bytes <= 0:
        raise ValueError("poll_interval must be >= 0 and max_bytes > 0")
    if hook_timeout <= 0:
        raise ValueError(f"hook_timeout must be > 0 seconds, got {hook_timeout!r}")
