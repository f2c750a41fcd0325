"""How outcomes, errors, snapshots and diffs are shown to people and tools (CLI and HTTP).

One place, so the command line and ``/-/config`` say the same thing the same way, and so
secret redaction is applied everywhere a value leaves the process: a secret value is ``***``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import msgspec

from ._diff import _MISSING, changed_paths, get_path
from ._errors import ConfigError
from ._failures import ToolsetFailureRecord
from ._fields import FieldPolicy, Path, format_path
from ._outcome import ReloadOutcome
from ._provenance import Document, Origin, dotted, leaves
from ._redact import REDACTED, redact, scrub_all
from ._schema import json_builtins
from ._snapshot import Snapshot

__all__ = [
    "REDACTED",
    "Explained",
    "diff_records",
    "error_dict",
    "explain",
    "explain_lines",
    "failure_dict",
    "outcome_dict",
    "outcome_line",
    "redacted",
    "scrubbed",
    "snapshot_dict",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Explained:
    """One leaf of the config in force: its dotted ``path``, its ``value`` (JSON-ready, a
    secret as ``***``) and its ``origin`` (None: nothing set it, the schema's default holds)."""

    path: str
    value: Any
    origin: Origin | None


def explain(builtins: Any, document: Document, policy: FieldPolicy) -> list[Explained]:
    """Every leaf of ``builtins`` (the validated config) with the layer and line it came from."""
    values = document.values
    found = []
    for path, value in leaves(builtins):
        names = tuple(seg for seg in path if isinstance(seg, str))
        found.append((path, redact(value, policy.is_secret, names)))
    # A secret value quoted in another field (``note: "key is sk-..."``) goes too.
    shown = scrubbed([value for _, value in found], policy, builtins)
    return [
        Explained(dotted(path), value, values.get(path))
        for (path, _), value in zip(found, shown, strict=True)
    ]


def scrubbed(value: Any, policy: FieldPolicy, *configs: Any) -> Any:
    """``value`` (a JSON-like report) with every secret value of ``configs`` (builtins)
    masked wherever it is quoted, and every secret shape masked: the last step of whatever
    shows a config, `explain`, `diff_records` and ``/-/config`` alike."""
    secrets: set[str] = set()
    for config in configs:
        secrets |= policy.secret_values(config)
    return scrub_all(value, secrets)


def explain_lines(items: Iterable[Explained]) -> list[str]:
    """``path = value  # origin`` lines, aligned, for people (``hotreload check --explain``)."""
    rows = [
        (f"{e.path} = {e.value if e.value == REDACTED else _json(e.value)}", e.origin)
        for e in items
    ]
    width = min(max((len(text) for text, _ in rows), default=0), 60)
    return [
        f"{text:<{width}}  # {'(default)' if origin is None else origin}" for text, origin in rows
    ]


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def error_dict(error: ConfigError) -> dict[str, Any]:
    """An error's fields; its messages never quote the file's text (see `hotreload._errors`)."""
    return {
        "file": error.source,
        "reason": error.reason,
        "message": error.message,
        "line": getattr(error, "line", None),
        "column": getattr(error, "column", None),
        "field_path": getattr(error, "field_path", None),
        "error": str(error),
    }


def outcome_dict(outcome: ReloadOutcome) -> dict[str, Any]:
    return {
        "result": outcome.result.value,
        "applied": outcome.applied,
        "deferred": outcome.deferred,
        "generation": outcome.generation,
        "trigger": outcome.trigger,
        "config_hash": outcome.config_hash,
        "changed": list(outcome.changed),
        "restart_required": list(outcome.restart_required),
        "duration_ms": round(outcome.duration * 1000, 3),
        "at": datetime.fromtimestamp(outcome.at, timezone.utc).isoformat() if outcome.at else None,
        "error": None if outcome.error is None else error_dict(outcome.error),
        "refused": list(outcome.refused),
    }


def outcome_line(outcome: ReloadOutcome) -> str:
    """One human line per outcome: what the demo and ``hotreload watch`` print."""
    line = f"[gen {outcome.generation}] {outcome.result.value} ({outcome.trigger})"
    if outcome.deferred:
        line += " (deferred: sessions open)"
    if outcome.changed:
        line += f" changed: {', '.join(outcome.changed)}"
    if outcome.restart_required:
        line += f" restart required: {', '.join(outcome.restart_required)}"
    if outcome.refused:
        line += f" refused: {', '.join(outcome.refused)} (restart to apply)"
    if outcome.trigger == "rollback":
        line += " - probation condemned the version before it: back to the one it replaced"
    if outcome.error is not None:
        line += f" - keeping previous: {outcome.error}"
    return line


def snapshot_dict(snapshot: Snapshot[Any]) -> dict[str, Any]:
    return {
        "generation": snapshot.generation,
        "config_hash": snapshot.config_hash,
        "content_sha256": snapshot.content_sha256,
        "loaded_at": _iso(snapshot.loaded_at),
        "source": snapshot.source,
    }


def redacted(value: Any, policy: FieldPolicy, path: Path = ()) -> Any:
    """``value`` (builtins) with every secret field, at any depth, replaced by ``***`` and
    secret-shaped strings (a URL's password, a bearer token) masked."""
    return redact(value, policy.is_secret, path)


def to_builtins(config: Any) -> Any:
    """JSON-ready builtins of a config (datetimes and the like as strings).

    A key that is not a string (YAML's ``404: retry`` in a free-form field) is shown as JSON
    shows it (``"404"``, ``"true"``, ``"null"``).
    """
    try:
        value = json_builtins(config)
    except TypeError:  # keys of several types do not sort
        value = msgspec.to_builtins(config)
    try:
        msgspec.json.encode(value)
    except TypeError:
        value = _string_keys(value)
    return value


def _string_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            (k if isinstance(k, str) else msgspec.json.encode(k).decode()): _string_keys(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


def diff_records(old: Any, new: Any, policy: FieldPolicy) -> list[dict[str, Any]]:
    """Each changed key path between two builtins configs, restart-required flagged, redacted."""
    records = []
    for path in changed_paths(old, new):
        records.append(
            {
                "path": format_path(path),
                "old": _shown(get_path(old, path), policy, path),
                "new": _shown(get_path(new, path), policy, path),
                "restart_required": policy.restart_root(path) is not None,
                "secret": policy.is_secret(path),
            }
        )
    shown: list[dict[str, Any]] = scrubbed(records, policy, old, new)  # both sides' secrets
    return shown


def failure_dict(records: Iterable[ToolsetFailureRecord]) -> dict[str, Any]:
    """Failure records by toolset name (``last_failure_time`` is Unix time)."""
    return {record.toolset_name: dataclasses.asdict(record) for record in records}


def _shown(value: Any, policy: FieldPolicy, path: Path) -> Any:
    if value is _MISSING:
        return None  # absent on that side
    return redacted(msgspec.to_builtins(value), policy, path)


def _iso(moment: datetime) -> str:
    return moment.isoformat()
