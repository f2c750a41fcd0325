"""Probation's pure parts: a trial's verdict on each failure, and the ledger asking it first."""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec
import pytest

from hotreload._failures import Action, FailureLedger, Mark, ToolsetFailureRecord
from hotreload._lkg import Cached
from hotreload._probation import Evidence, QuarantineEntry, Trial, failing_now


def record(name: str, consecutive: int) -> ToolsetFailureRecord:
    return ToolsetFailureRecord(name, consecutive, consecutive + 5, 0.0, "E", "boom")


def trial(**kw: object) -> Trial:
    base: dict[str, object] = {
        "generation": 2,
        "config_hash": "b",
        "until": 100.0,
        "until_unix": 0.0,
        "failing": frozenset({"flaky"}),
        "threshold": 3,
    }
    base.update(kw)
    return Trial(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "consecutive", "now", "condemned", "verdict"),
    [
        ("llm", 3, 99.9, False, True),
        ("llm", 4, 50.0, False, True),
        ("llm", 2, 50.0, False, False),  # below the threshold
        ("llm", 3, 100.0, False, False),  # the window is closed
        ("flaky", 9, 50.0, False, False),  # already failing at the commit
        ("llm", 3, 50.0, True, False),  # condemned already: once is enough
    ],
)
def test_what_condemns_a_commit(
    name: str, consecutive: int, now: float, condemned: bool, verdict: bool
) -> None:
    t = trial(condemned=condemned)
    assert t.condemns(record(name, consecutive), now) is verdict


def test_evidence_names_the_healthy_ones_that_fail_the_condemning_one_first() -> None:
    records = {n: record(n, c) for n, c in [("a", 1), ("flaky", 4), ("z", 3), ("ok", 0)]}
    found = trial().evidence(records, first="z")
    assert [(e.name, e.failures) for e in found] == [("z", 3), ("a", 1)]
    assert failing_now(records) == {"a", "flaky", "z"}


def test_the_ledger_asks_probation_first_and_starts_no_recheck_for_a_condemnation() -> None:
    ledger = FailureLedger(threshold=3, cooldown=60.0, clock=lambda: 0.0, wall=lambda: 0.0)
    asked: list[int] = []

    def condemns(rec: ToolsetFailureRecord) -> bool:
        asked.append(rec.consecutive_failures)
        return rec.consecutive_failures == 2

    def failure() -> Action:
        return ledger.failure(
            "llm", "E", "m", mark=Mark(1, 0), changed_since=lambda m: False, condemns=condemns
        )

    assert failure() is Action.COUNTED
    assert failure() is Action.CONDEMNED
    assert not ledger.running
    assert failure() is Action.TRIGGER  # past the condemnation: BR-HAPI-190 as before
    assert asked == [1, 2, 3]
    assert ledger.reset(["llm", "unknown"]) == {"llm": 3}
    rec = ledger.record("llm")
    assert rec is not None
    assert (rec.consecutive_failures, rec.total_failures) == (0, 3)
    assert ledger.reset(["llm"]) == {}


def test_an_old_last_known_good_file_still_loads_and_a_new_one_round_trips() -> None:
    old = b'{"source":"c.yaml","content":"a: 1\\n","content_sha256":"x","config_hash":"h",'
    old += b'"generation":3,"saved_at":"2026-01-01T00:00:00Z"}'
    assert msgspec.json.decode(old, type=Cached).quarantined == ()
    entry = QuarantineEntry(
        config_hash="h2",
        reason="check",
        evidence=(Evidence(kind="check", name="probe", error_message="returned False"),),
        at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        generation=4,
    )
    cached = msgspec.structs.replace(msgspec.json.decode(old, type=Cached), quarantined=(entry,))
    assert msgspec.json.decode(msgspec.json.encode(cached), type=Cached) == cached
