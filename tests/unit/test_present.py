"""How outcomes, errors, snapshots, diffs and failure records are shown (CLI and HTTP share
these): every field named, times as ISO 8601 UTC, and secrets as ``***`` at any depth."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Annotated, Any

import msgspec

from hotreload import (
    ConfigRefusedError,
    ConfigValidationError,
    ReloadOutcome,
    ReloadResult,
    Secret,
    Snapshot,
)
from hotreload._failures import ToolsetFailureRecord
from hotreload._fields import FieldPolicy, RestartRequired
from hotreload._present import (
    diff_records,
    error_dict,
    failure_dict,
    outcome_dict,
    outcome_line,
    redacted,
    snapshot_dict,
)


class Db(msgspec.Struct, frozen=True):
    host: Annotated[str, RestartRequired] = "db"
    vault: Annotated[str, Secret] = ""


class Conf(msgspec.Struct, frozen=True):
    model: str = "gpt-4"
    db: Db = Db()
    items: list[Db] = []


POLICY = FieldPolicy(Conf)
ERROR = ConfigValidationError("c.yaml", "Expected `int`", field_path="db.port", line=3, column=9)


def outcome(**changes: Any) -> ReloadOutcome:
    base = ReloadOutcome(ReloadResult.CONFIG_CHANGED, True, 4, "watch", 0.0125, 0.02, "abc")
    return dataclasses.replace(base, **changes)


def test_error_dict_names_every_field() -> None:
    assert error_dict(ERROR) == {
        "file": "c.yaml",
        "reason": ERROR.reason,
        "message": "Expected `int`",
        "line": 3,
        "column": 9,
        "field_path": "db.port",
        "error": str(ERROR),
    }


def test_outcome_dict_names_every_field_with_times_in_utc() -> None:
    shown = outcome_dict(outcome(changed=("model",), at=1.7e9, error=ERROR))
    assert shown == {
        "result": "config_changed",
        "applied": True,
        "deferred": False,
        "generation": 4,
        "trigger": "watch",
        "config_hash": "abc",
        "changed": ["model"],
        "restart_required": [],
        "refused": [],
        "duration_ms": 12.5,
        "at": "2023-11-14T22:13:20+00:00",
        "error": error_dict(ERROR),
    }
    assert outcome_dict(outcome())["at"] is None
    assert outcome_dict(outcome())["error"] is None


def test_outcome_line_says_what_happened_in_one_line() -> None:
    assert outcome_line(outcome()) == "[gen 4] config_changed (watch)"
    line = outcome_line(
        outcome(deferred=True, changed=("model", "db.vault"), restart_required=("db.host",))
    )
    assert line == (
        "[gen 4] config_changed (watch) (deferred: sessions open) changed: model, db.vault"
        " restart required: db.host"
    )
    failed = outcome(result=ReloadResult.VALIDATION_FAILED, applied=False, error=ERROR)
    assert outcome_line(failed) == f"[gen 4] validation_failed (watch) - keeping previous: {ERROR}"
    refusal = ConfigRefusedError("c.yaml", "llm.provider changed", fields=("llm.provider",))
    refused = outcome(result=ReloadResult.ERROR, applied=False, error=refusal)
    assert outcome_dict(refused)["refused"] == ["llm.provider"]
    assert outcome_line(refused).startswith(
        "[gen 4] error (watch) refused: llm.provider (restart to apply) - keeping previous: "
    )


def test_outcome_line_says_a_rollback_is_probation_taking_a_version_back() -> None:
    line = outcome_line(outcome(trigger="rollback", changed=("toolsets.p.url",)))
    assert line == (
        "[gen 4] config_changed (rollback) changed: toolsets.p.url"
        " - probation condemned the version before it: back to the one it replaced"
    )


def test_snapshot_dict() -> None:
    moment = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    snap = Snapshot(
        config=Conf(),
        generation=2,
        config_hash="h",
        content_sha256="s",
        loaded_at=moment,
        source="c.yaml",
    )
    assert snapshot_dict(snap) == {
        "generation": 2,
        "config_hash": "h",
        "content_sha256": "s",
        "loaded_at": "2026-11-30T12:00:00+00:00",
        "source": "c.yaml",
    }


def test_redacted_masks_secrets_at_any_depth_and_keeps_the_rest() -> None:
    value = {
        "model": "gpt-4",
        "db": {"host": "db", "vault": "s3cr3t!"},
        "items": [{"host": "a", "vault": "v1-long"}],
    }
    assert redacted(value, POLICY) == {
        "model": "gpt-4",
        "db": {"host": "db", "vault": "***"},
        "items": [{"host": "a", "vault": "***"}],
    }


def test_diff_records_flag_restart_required_and_secret_and_show_absent_as_none() -> None:
    old = {"model": "gpt-4", "db": {"host": "db", "vault": "old-secret"}}
    new = {"model": "gpt-5", "db": {"host": "db2", "vault": "new-secret"}, "extra": 1}
    assert diff_records(old, new, POLICY) == [
        {"path": "db.host", "old": "db", "new": "db2", "restart_required": True, "secret": False},
        {"path": "db.vault", "old": "***", "new": "***", "restart_required": False, "secret": True},
        {"path": "extra", "old": None, "new": 1, "restart_required": False, "secret": False},
        {
            "path": "model",
            "old": "gpt-4",
            "new": "gpt-5",
            "restart_required": False,
            "secret": False,
        },
    ]


def test_failure_dict_by_toolset() -> None:
    rec = ToolsetFailureRecord("kubernetes", 2, 5, 1.7e9, "ConnectionError", "refused")
    assert failure_dict([rec]) == {
        "kubernetes": {
            "toolset_name": "kubernetes",
            "consecutive_failures": 2,
            "total_failures": 5,
            "last_failure_time": 1.7e9,
            "last_error_type": "ConnectionError",
            "last_error_message": "refused",
        }
    }
