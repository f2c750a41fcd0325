"""Checks on `HotReloader`'s numeric options, done before anything is built.

A zero or negative interval would spin the loop or never fire; refusing it at construction
names the option while the caller's code is still on screen.
"""

from __future__ import annotations

__all__ = ["check_options"]


def check_options(
    *,
    poll_interval: float,
    max_bytes: int,
    debounce_ms: int,
    step_ms: int,
    hook_timeout: float,
) -> None:
    """Raise ValueError for an option out of range (the messages tests and users rely on)."""
    if poll_interval < 0 or max_bytes <= 0 or debounce_ms <= 0 or step_ms <= 0:
        raise ValueError("poll_interval must be >= 0; max_bytes, debounce_ms, step_ms > 0")
    if hook_timeout <= 0:
        raise ValueError(f"hook_timeout must be > 0 seconds, got {hook_timeout!r}")
