"""Probation: the options, the evidence against a commit, and the quarantine it leaves.

A config that passes validation can still hurt in use: a model the provider no longer serves,
a toolset pointed at a dead endpoint. The failure reports the service already sends
(``record_failure``) say so right after the commit that caused it. `Trial` holds
one commit's probation and decides, without a loop or a clock of its own, whether a failure
condemns it; the engine (`_rollback`) puts the config before it back and quarantines the
condemned ``config_hash`` (`QuarantineEntry`), which `_decide` then never commits.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from ._snapshot import Snapshot

if TYPE_CHECKING:
    from ._failures import ToolsetFailureRecord

__all__ = ["Check", "Evidence", "Probation", "QuarantineEntry", "Trial"]

Check = Callable[[Snapshot[Any]], bool | Awaitable[bool]]
"""``check(snapshot)``: an app probe, sync or async; False (or raising) condemns the commit."""

#: Reasons a commit is condemned: the ``reason`` label of ``<ns>_config_rollbacks_total``.
REASONS = ("failures", "check")


@dataclass(frozen=True, slots=True)
class Probation:
    """Put every commit on probation for ``window`` seconds.

    A dependency (a name given to ``record_failure``) that had no consecutive failures when
    the commit was made and reaches ``failures`` consecutive failures inside the window
    condemns the commit; so does ``check(snapshot)``, run once after the commit (sync or
    async, bounded by ``hook_timeout``), when it returns False or raises. A condemned commit
    is rolled back (the config before it is committed again, trigger ``rollback``) and its
    ``config_hash`` quarantined until released (`HotReloader.release`).
    """

    window: float = 60.0
    failures: int = 3
    check: Check | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not (self.window > 0 and math.isfinite(self.window)):
            raise ValueError(f"Probation window must be > 0 seconds, got {self.window!r}")
        if isinstance(self.failures, bool) or not isinstance(self.failures, int):
            raise ValueError(f"Probation failures must be an integer >= 1, got {self.failures!r}")
        if self.failures < 1:
            raise ValueError(f"Probation failures must be an integer >= 1, got {self.failures!r}")
        if self.check is not None and not callable(self.check):
            raise TypeError(f"Probation check must be callable, got {self.check!r}")


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """One thing that went wrong under a commit on probation.

    ``kind`` is ``failures`` (``name`` is the dependency, ``failures`` its consecutive
    failures since the commit, and its last error) or ``check`` (``name`` is the check,
    ``error_type``/``error_message`` what it raised, or ``returned False``). Error messages
    are scrubbed of the config's secrets and cut to 200 characters, as failure records are.
    """

    kind: str
    name: str
    failures: int = 0
    error_type: str = ""
    error_message: str = ""


class QuarantineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A condemned ``config_hash``: never committed again until released. ``reason`` is
    ``failures`` or ``check``, ``evidence`` what condemned it, ``at`` when (UTC), and
    ``generation`` the generation it was in force as."""

    config_hash: str
    reason: str
    evidence: tuple[Evidence, ...]
    at: datetime
    generation: int


@dataclass(slots=True)
class Trial:
    """One commit on probation. ``until`` is on the engine's monotonic clock, ``until_unix``
    the same moment for reports; ``failing`` the dependencies that already had consecutive
    failures at the commit (they cannot condemn it: the commit did not break them)."""

    generation: int
    config_hash: str
    until: float
    until_unix: float
    failing: frozenset[str]
    threshold: int
    condemned: bool = False
    check: str | None = None
    """``running``, ``passed`` or ``failed`` once a check was given; None without one."""

    def open(self, now: float) -> bool:
        """True while the window runs and nothing has condemned the commit yet."""
        return not self.condemned and now < self.until

    def condemns(self, record: ToolsetFailureRecord, now: float) -> bool:
        """Whether this failure (just counted in ``record``) condemns the commit."""
        return (
            self.open(now)
            and record.toolset_name not in self.failing
            and record.consecutive_failures >= self.threshold
        )

    def evidence(
        self, records: Mapping[str, ToolsetFailureRecord], first: str | None = None
    ) -> tuple[Evidence, ...]:
        """The dependencies failing since the commit that were healthy at it (``first`` at
        the head: the one that condemned it)."""
        found = [
            Evidence(
                kind="failures",
                name=name,
                failures=rec.consecutive_failures,
                error_type=rec.last_error_type,
                error_message=rec.last_error_message,
            )
            for name, rec in records.items()
            if name not in self.failing and rec.consecutive_failures > 0
        ]
        found.sort(key=lambda e: (e.name != first, e.name))
        return tuple(found)


_NONE: frozenset[str] = frozenset()


def failing_now(records: Mapping[str, ToolsetFailureRecord]) -> frozenset[str]:
    """The dependencies with consecutive failures right now."""
    if not records:  # the usual case, at every commit: no generator for it
        return _NONE
    return frozenset(name for name, rec in records.items() if rec.consecutive_failures > 0)
