"""The one backoff rule for every retry loop (the watcher hub, a source's watch, etcd's
reconnects): double from ``first`` up to ``ceiling``, optionally jittered so many clients do
not retry in step."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, first: float, ceiling: float, *, jitter: bool = False) -> float:
    """Seconds to wait before retry ``attempt`` (1 for the first): ``first * 2**(attempt-1)``,
    at most ``ceiling``; with ``jitter``, a random 50-100 % of that."""
    delay: float = min(ceiling, first * 2.0 ** min(max(attempt, 1) - 1, 30))
    if jitter:
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
    return delay
