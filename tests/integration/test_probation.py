"""Probation (issue 25) with a real file and the real watcher: a commit that makes a healthy
dependency fail is rolled back, its content quarantined everywhere, and released on demand."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from prometheus_client import CollectorRegistry

import hotreload
from hotreload import (
    ConfigRefusedError,
    Failures,
    HotReloader,
    Probation,
    QuarantineEntry,
    ReloadOutcome,
    ReloadResult,
    Snapshot,
    Stream,
)
from hotreload.testing import write_atomic, write_in_place
from tests.conftest import MetricReader
from tests.integration.conftest import Settings

WAIT = 10.0
Logs = list[MutableMapping[str, Any]]
GOOD = "model: gpt-4\n"
BAD = "model: gpt-dead\n"


def make(
    path: Path, registry: CollectorRegistry, probation: Probation | None, **options: Any
) -> HotReloader[Settings]:
    return HotReloader(
        path, schema=Settings, name="p", registry=registry, probation=probation, **options
    )


async def until(
    stream: Stream[ReloadOutcome], match: Callable[[ReloadOutcome], bool]
) -> ReloadOutcome:
    """The next outcome on ``stream`` that matches (``WAIT`` only guards against a hang)."""
    with anyio.fail_after(WAIT):
        async for outcome in stream:
            if match(outcome):
                return outcome
    raise AssertionError("the reloader closed")


def is_rollback(outcome: ReloadOutcome) -> bool:
    return outcome.trigger == "rollback"


def quarantined(outcome: ReloadOutcome) -> bool:
    return isinstance(outcome.error, ConfigRefusedError) and outcome.error.reason == "quarantined"


async def commit_bad(r: HotReloader[Settings], path: Path, content: str = BAD) -> Snapshot[Any]:
    gen = r.snapshot.generation
    write_atomic(path, content)
    return await r.wait_for_generation(gen + 1, timeout=WAIT)


def fail(r: HotReloader[Settings], toolset: str, times: int) -> None:
    for _ in range(times):
        r.record_failure(toolset, "ConnectError", "connection refused")


async def test_a_commit_that_breaks_a_healthy_dependency_is_rolled_back(
    config_path: Path, registry: CollectorRegistry, metric: MetricReader, logs: Logs
) -> None:
    seen: list[tuple[str, str]] = []
    built: list[str] = []

    async def hook(new: Snapshot[Settings], old: Snapshot[Settings]) -> None:
        seen.append((old.config.model, new.config.model))

    async with make(config_path, registry, Probation(window=60.0, failures=3)) as r:
        r.add_apply_hook(hook)

        def build(config: Settings) -> str:
            built.append(config.model)
            return config.model

        client = r.derive(build, on=("model",))
        good = r.snapshot
        bad = await commit_bad(r, config_path)
        assert r.probation_report() is not None
        stream = r.outcomes()
        fail(r, "prometheus", 2)
        await r.failures_settled()
        assert r.snapshot.generation == bad.generation  # two failures: not yet
        fail(r, "prometheus", 1)
        rolled = await until(stream, is_rollback)
        assert rolled.applied
        assert rolled.result is ReloadResult.CONFIG_CHANGED
        assert rolled.generation == bad.generation + 1 == r.snapshot.generation
        assert rolled.config_hash == good.config_hash == r.snapshot.config_hash
        assert r.config.model == "gpt-4"
        assert client.current == "gpt-4"  # the derived resource was rebuilt for it
        assert built == ["gpt-4", "gpt-dead", "gpt-4"]
        assert seen == [("gpt-4", "gpt-dead"), ("gpt-dead", "gpt-4")]  # hooks ran
        [entry] = r.quarantined
        assert entry.config_hash == bad.config_hash
        assert entry.reason == "failures"
        assert entry.generation == bad.generation
        [evidence] = entry.evidence
        assert (evidence.kind, evidence.name, evidence.failures) == ("failures", "prometheus", 3)
        assert evidence.error_type == "ConnectError"
        await r.failures_settled()
        assert r.failures["prometheus"].consecutive_failures == 0  # reset by the rollback
        assert r.failures["prometheus"].total_failures == 3
        assert r.probation_report() is None
        assert metric("hotreload_config_rollbacks_total", config="p", reason="failures") == 1
        assert metric("hotreload_config_quarantined", config="p") == 1
    [line] = [e for e in logs if e["event"] == hotreload._rollback.MSG_ROLLED_BACK]
    assert line["config_hash"] == good.config_hash
    assert line["rolled_back_config_hash"] == bad.config_hash
    assert line["evidence"][0]["name"] == "prometheus"
    # The failure that condemned the commit set off the rollback, not a BR-HAPI-190 re-check.
    assert not [
        e for e in logs if e["event"] == "toolset_max_failures_reached_triggering_auto_reload"
    ]


async def test_the_quarantined_content_stays_out_whoever_asks(
    config_path: Path, registry: CollectorRegistry, metric: MetricReader
) -> None:
    probation = Probation(window=60.0, failures=2)
    async with make(config_path, registry, probation, failures=Failures(cooldown=0.0)) as r:
        bad = await commit_bad(r, config_path)
        stream = r.outcomes()
        fail(r, "llm", 2)
        rolled = await until(stream, is_rollback)
        # The source still holds the condemned content: the next look refuses it.
        gen = rolled.generation
        write_in_place(config_path, BAD)  # a kubelet re-sync writes the same content again
        watched = await until(stream, quarantined)
        assert watched.trigger in ("watch", "poll", "rescan")
        assert not watched.applied
        assert watched.result is ReloadResult.ERROR
        assert bad.config_hash in str(watched.error)
        manual = await r.reload()
        assert quarantined(manual)
        assert not manual.applied
        # The BR-HAPI-190 re-check, set off by failures that go on: no loop against the rollback.
        fail(r, "other", 3)
        forced = await until(stream, lambda o: o.trigger == "auto_reload")
        assert quarantined(forced)
        await r.failures_settled()
        assert r.snapshot.generation == gen
        assert r.config.model == "gpt-4"
        assert metric("hotreload_config_reload_failures_total", config="p", reason="quarantined")


async def test_sighup_leaves_the_quarantined_content_out(
    config_path: Path, registry: CollectorRegistry
) -> None:
    async with make(config_path, registry, Probation(window=60.0, failures=1)) as r:
        await commit_bad(r, config_path)
        stream = r.outcomes()
        fail(r, "llm", 1)
        rolled = await until(stream, is_rollback)
        restore = hotreload.reload_on_sighup()
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            signalled = await until(stream, lambda o: o.trigger == "signal")
        finally:
            restore()
        assert quarantined(signalled)
        assert r.snapshot.generation == rolled.generation


async def test_new_content_applies_and_the_quarantine_stays_on_the_old_hash(
    config_path: Path, registry: CollectorRegistry
) -> None:
    async with make(config_path, registry, Probation(window=60.0, failures=1)) as r:
        bad = await commit_bad(r, config_path)
        stream = r.outcomes()
        fail(r, "llm", 1)
        await until(stream, is_rollback)
        fixed = await commit_bad(r, config_path, "model: gpt-5\n")
        assert fixed.config.model == "gpt-5"
        assert [e.config_hash for e in r.quarantined] == [bad.config_hash]
        # The fixed commit is on probation in its turn, with a fallback to the rolled-back one.
        report = r.probation_report()
        assert report is not None
        assert report["config_hash"] == fixed.config_hash


async def test_release_lifts_the_quarantine_and_the_source_goes_back_in(
    config_path: Path, registry: CollectorRegistry
) -> None:
    async with make(config_path, registry, Probation(window=60.0, failures=1)) as r:
        bad = await commit_bad(r, config_path)
        stream = r.outcomes()
        fail(r, "llm", 1)
        await until(stream, is_rollback)
        assert await r.release("0" * 64) is None  # not quarantined: nothing done
        released = await r.release(bad.config_hash)
        assert released is not None
        assert released.applied
        assert released.trigger == "release"
        assert released.config_hash == bad.config_hash
        assert r.quarantined == ()


async def test_a_dependency_already_failing_at_the_commit_does_not_condemn_it(
    config_path: Path, registry: CollectorRegistry
) -> None:
    async with make(config_path, registry, Probation(window=60.0, failures=2)) as r:
        fail(r, "flaky", 1)
        await r.failures_settled()
        bad = await commit_bad(r, config_path)
        report = r.probation_report()
        assert report is not None
        fail(r, "flaky", 5)
        await r.failures_settled()
        assert r.snapshot.generation == bad.generation
        assert r.quarantined == ()
        assert r.probation_report() == report  # nothing counts as evidence against it
        # A healthy one still does.
        stream = r.outcomes()
        fail(r, "healthy", 2)
        rolled = await until(stream, is_rollback)
        entries: list[QuarantineEntry] = list(r.quarantined)
        [entry] = entries
        assert [e.name for e in entry.evidence] == ["healthy"]
        assert rolled.generation == bad.generation + 1


async def test_failures_after_the_window_do_not_condemn(
    config_path: Path, registry: CollectorRegistry, logs: Logs
) -> None:
    async with make(config_path, registry, Probation(window=0.05, failures=1)) as r:
        bad = await commit_bad(r, config_path)
        with anyio.fail_after(WAIT):
            while not [e for e in logs if e["event"] == "config_probation_passed"]:  # noqa: ASYNC110 - the window's end has no other sign
                await asyncio.sleep(0.01)  # sleep-ok: polls the log, bounded by fail_after
        assert r.probation_report() is None
        fail(r, "llm", 3)
        await r.failures_settled()
        assert r.snapshot.generation == bad.generation
        assert r.quarantined == ()


async def test_one_timer_serves_every_trial_and_waits_for_the_latest_window(
    config_path: Path, registry: CollectorRegistry, logs: Logs
) -> None:
    """Commits in a row keep the timer armed for the first window (no cancel and new timer
    per commit); when it fires, the later commit's trial goes on to the end of its own."""
    async with make(config_path, registry, Probation(window=60.0, failures=1), watch=False) as r:
        config_path.write_text(BAD)
        first = await r.reload()
        timer = r._trial_timer
        assert timer is not None
        config_path.write_text("model: gpt-5\n")
        second = await r.reload()
        assert second.generation == first.generation + 1
        assert r._trial_timer is timer
        assert not timer.cancelled()
        # The first window's end, as the loop would run it.
        timer.cancel()
        r._trial_over(timer.when())
        report = r.probation_report()
        assert report is not None
        assert report["generation"] == second.generation
        assert r._trial_timer is not None
        assert r._trial_timer is not timer
        assert not [e for e in logs if e["event"] == "config_probation_passed"]
        # Still on probation: a failure condemns the second commit.
        stream = r.outcomes()
        fail(r, "llm", 1)
        rolled = await until(stream, is_rollback)
        assert [e.config_hash for e in r.quarantined] == [second.config_hash]
        assert rolled.config_hash == first.config_hash
        assert r._trial_timer is None  # the rollback ended the trial and its timer


async def test_the_on_probation_line_is_logged_only_when_a_dependency_is_exempt(
    config_path: Path, registry: CollectorRegistry, logs: Logs
) -> None:
    """An INFO line on every commit was most of probation's cost on a small config: it is
    written when it says something, the dependencies already failing (which cannot condemn)."""
    async with make(config_path, registry, Probation(window=60.0, failures=3), watch=False) as r:
        config_path.write_text(BAD)
        await r.reload()
        assert r.probation_report() is not None
        assert not [e for e in logs if e["event"] == "config_on_probation"]
        fail(r, "flaky", 1)
        await r.failures_settled()
        config_path.write_text("model: gpt-5\n")
        second = await r.reload()
        [line] = [e for e in logs if e["event"] == "config_on_probation"]
        assert line["generation"] == second.generation
        assert line["already_failing"] == ["flaky"]
        assert (line["window_s"], line["failures"]) == (60.0, 3)


@pytest.mark.parametrize("kind", ["false", "raises", "async-false"])
async def test_a_failing_check_rolls_back(
    config_path: Path, registry: CollectorRegistry, metric: MetricReader, kind: str
) -> None:
    checked: list[str] = []

    def check(snapshot: Snapshot[Any]) -> bool:
        checked.append(snapshot.config.model)
        if kind == "raises":
            raise ConnectionError("sk-live-123 refused")
        return bool(snapshot.config.model != "gpt-dead")

    async def acheck(snapshot: Snapshot[Any]) -> bool:
        return check(snapshot)

    probation = Probation(window=60.0, failures=3, check=acheck if kind == "async-false" else check)
    async with make(config_path, registry, probation) as r:
        assert checked == []  # not at start: nothing to go back to
        stream = r.outcomes()
        bad = await commit_bad(r, config_path)
        rolled = await until(stream, is_rollback)
        assert rolled.config_hash != bad.config_hash
        [entry] = r.quarantined
        assert entry.reason == "check"
        [evidence] = entry.evidence
        assert evidence.kind == "check"
        if kind == "raises":
            assert evidence.error_type == "ConnectionError"
        else:
            assert evidence.error_message == "returned False"
        assert checked == ["gpt-dead"]  # the rollback is not itself on probation
        assert metric("hotreload_config_rollbacks_total", config="p", reason="check") == 1


async def test_a_passing_check_keeps_the_commit(
    config_path: Path, registry: CollectorRegistry, logs: Logs
) -> None:
    probation = Probation(window=60.0, failures=3, check=lambda snapshot: True)
    async with make(config_path, registry, probation) as r:
        bad = await commit_bad(r, config_path)
        with anyio.fail_after(WAIT):
            while not [e for e in logs if e["event"] == "config_probation_check_done"]:  # noqa: ASYNC110 - a passed check has no other sign
                await asyncio.sleep(0.01)  # sleep-ok: polls the log, bounded by fail_after
        report = r.probation_report()
        assert report is not None
        assert report["check"] == "passed"
        assert r.snapshot.generation == bad.generation


async def test_a_restart_on_the_quarantined_content_starts_from_the_last_known_good_copy(
    config_path: Path, registry: CollectorRegistry, tmp_path: Path, metric: MetricReader
) -> None:
    lkg = tmp_path / "state" / "lkg.json"
    probation = Probation(window=60.0, failures=1)
    async with make(config_path, registry, probation, lkg_path=lkg) as r:
        bad = await commit_bad(r, config_path)
        stream = r.outcomes()
        fail(r, "llm", 1)
        rolled = await until(stream, is_rollback)
    saved = json.loads(lkg.read_text())
    assert saved["config_hash"] == rolled.config_hash
    assert [q["config_hash"] for q in saved["quarantined"]] == [bad.config_hash]
    assert config_path.read_text() == BAD
    async with make(config_path, registry, probation, lkg_path=lkg) as again:
        assert again.config.model == "gpt-4"
        assert again.snapshot.config_hash == rolled.config_hash
        assert again.degraded is not None
        assert "quarantined" in again.degraded
        assert [e.config_hash for e in again.quarantined] == [bad.config_hash]
        assert metric("hotreload_config_quarantined", config="p") == 1
        outcome = await again.reload()
        assert quarantined(outcome)
        # Releasing it survives the restart too.
        released = await again.release(bad.config_hash)
        assert released is not None
        assert released.applied
    assert json.loads(lkg.read_text())["quarantined"] == []


async def test_without_lkg_path_a_restart_evaluates_the_content_afresh(
    config_path: Path, registry: CollectorRegistry
) -> None:
    probation = Probation(window=60.0, failures=1)
    async with make(config_path, registry, probation) as r:
        await commit_bad(r, config_path)
        stream = r.outcomes()
        fail(r, "llm", 1)
        await until(stream, is_rollback)
    async with make(config_path, registry, probation) as again:
        assert again.config.model == "gpt-dead"
        assert again.quarantined == ()


def test_probation_options_are_checked() -> None:
    with pytest.raises(ValueError, match="window"):
        Probation(window=0)
    with pytest.raises(ValueError, match="failures"):
        Probation(failures=0)
    with pytest.raises(ValueError, match="failures"):
        Probation(failures=True)
    with pytest.raises(TypeError, match="check"):
        Probation(check="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Probation"):
        HotReloader("x.yaml", schema=Settings, probation=3)  # type: ignore[arg-type]
    assert Probation() == Probation(window=60.0, failures=3, check=None)


async def test_no_probation_by_default(config_path: Path, registry: CollectorRegistry) -> None:
    async with make(config_path, registry, None) as r:
        bad = await commit_bad(r, config_path)
        fail(r, "llm", 10)
        await r.failures_settled()
        assert r.snapshot.generation == bad.generation
        assert r.probation is None
        assert r.probation_report() is None
