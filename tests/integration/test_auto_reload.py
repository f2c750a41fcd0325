"""BR-HAPI-190's unit and integration tests, ported to asyncio, against real files.

The reloader is the Holmes toolset preset on a real ``toolsets.yaml`` with the real watcher.
Where a test needs the forced re-check (not the watcher) to find a change, the file is a hard
link to one in another directory and is written through that other name: inotify on the
watched directory reports nothing for it, as when a watcher misses an update.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from prometheus_client import CollectorRegistry

from hotreload import ConfigApplyError, Failures, HotReloader, ReloadResult, Snapshot
from hotreload.holmes import ToolsetCatalog, create_toolset_reloader
from hotreload.testing import write_in_place
from tests.conftest import MetricReader

WAIT = 5.0
Logs = list[MutableMapping[str, Any]]

INITIAL = {
    "discovered": [
        {"name": "kubernetes", "enabled": True, "priority": 100},
        {"name": "prometheus", "enabled": True, "priority": 90},
    ],
    "overrides": {},
}


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


class Files:
    """``conf/toolsets.yaml`` (watched) is a hard link to ``hidden/toolsets.yaml``."""

    def __init__(self, root: Path, text: str) -> None:
        (root / "conf").mkdir()
        (root / "hidden").mkdir()
        self.hidden = root / "hidden" / "toolsets.yaml"
        self.hidden.write_text(text)
        self.path = root / "conf" / "toolsets.yaml"
        os.link(self.hidden, self.path)

    def write_seen(self, text: str) -> None:
        """An update the watcher sees (an in-place write of the watched name)."""
        write_in_place(self.path, text)

    def write_unseen(self, text: str) -> None:
        """An update only a re-check finds (same inode, written through the other name)."""
        write_in_place(self.hidden, text)


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path, dump(INITIAL))


@pytest.fixture
def spec_service(files: Files, registry: CollectorRegistry) -> HotReloader[ToolsetCatalog]:
    """The spec's fixture: threshold 3 from the environment, 60 s poll. Not entered: a test
    enters it itself (``async with``), so the reloader's task group lives in the test's task.
    """
    env = {"TOOLSET_MAX_FAILURES_BEFORE_RELOAD": "3"}
    return create_toolset_reloader(files.path, registry=registry, environ=env, poll_interval=60)


async def fail(r: HotReloader[Any], toolset: str, times: int = 1, error: str = "Error") -> None:
    for i in range(times):
        r.record_failure(toolset, error, f"failure {i + 1}")
    await r.failures_settled()


def events(logs: Logs, name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


def consecutive(r: HotReloader[Any], toolset: str) -> int:
    return r.failures[toolset].consecutive_failures


# -- the spec's unit tests ------------------------------------------------------------------


async def test_record_failure_increments_counter(spec_service: HotReloader[ToolsetCatalog]) -> None:
    async with spec_service as service:
        service.record_failure("kubernetes", "ConnectionError", "Connection refused")
        await service.failures_settled()
        record = service.failures["kubernetes"]
        assert record.consecutive_failures == 1
        assert record.total_failures == 1
        assert record.last_error_type == "ConnectionError"
        assert record.last_error_message == "Connection refused"
        assert record.last_failure_time == pytest.approx(time.time(), abs=60)


async def test_missing_error_details_get_the_spec_defaults(
    spec_service: HotReloader[ToolsetCatalog],
) -> None:
    async with spec_service as service:
        service.record_failure("kubernetes")
        service.record_failure("prometheus", "E", "x" * 1000)
        await service.failures_settled()
        assert service.failures["kubernetes"].last_error_type == "UnknownError"
        assert service.failures["kubernetes"].last_error_message == "No error message"
        assert len(service.failures["prometheus"].last_error_message) == 200  # truncated


async def test_consecutive_failures_trigger_auto_reload_exactly_once(
    spec_service: HotReloader[ToolsetCatalog], logs: Logs, metric: MetricReader
) -> None:
    async with spec_service as service:
        outcomes = service.outcomes()
        await fail(service, "kubernetes", 2)
        assert not events(logs, "toolset_max_failures_reached_triggering_auto_reload")
        await fail(service, "kubernetes")
        [triggered] = events(logs, "toolset_max_failures_reached_triggering_auto_reload")
        assert triggered["log_level"] == "error"
        assert triggered["consecutive_failures"] == 3
        outcome = await asyncio.wait_for(outcomes.__anext__(), WAIT)
        assert outcome.trigger == "auto_reload"
        assert outcome.result is ReloadResult.CONFIG_UNCHANGED
        labels = {"config": "holmesgpt-toolsets", "toolset": "kubernetes"}
        name = "holmesgpt_auto_reload_triggered_total"
        assert metric(name, **labels, result="config_unchanged") == 1
        await outcomes.aclose()
        assert [o async for o in outcomes] == []  # no second re-check was queued


async def test_success_resets_consecutive_failures(
    spec_service: HotReloader[ToolsetCatalog], logs: Logs
) -> None:
    async with spec_service as service:
        await fail(service, "kubernetes", 2)
        assert consecutive(service, "kubernetes") == 2
        service.record_success("kubernetes")
        await service.failures_settled()
        assert consecutive(service, "kubernetes") == 0
        assert service.failures["kubernetes"].total_failures == 2
        [reset] = events(logs, "toolset_success_resetting_consecutive_failures")
        assert reset["previous_consecutive_failures"] == 2


async def test_config_unchanged_keeps_failure_counter(
    spec_service: HotReloader[ToolsetCatalog], logs: Logs
) -> None:
    async with spec_service as service:
        await fail(service, "kubernetes", 3)
        assert consecutive(service, "kubernetes") == 3
        assert events(logs, "auto_reload_config_unchanged_toolset_still_unavailable")


async def test_config_changed_resets_failure_counter(
    spec_service: HotReloader[ToolsetCatalog], files: Files, logs: Logs
) -> None:
    async with spec_service as service:
        files.write_unseen(dump({"discovered": [{"name": "kubernetes", "enabled": True}]}))
        await fail(service, "kubernetes", 3)
        assert consecutive(service, "kubernetes") == 0
        assert service.failures["kubernetes"].total_failures == 3
        assert service.config.names == ("kubernetes",)
        assert service.snapshot.generation == 2
        [ok] = events(logs, "auto_reload_successful_config_changed")
        assert (ok["previous_failures"], ok["detected_by"]) == (3, "recheck")


async def test_validation_failed_keeps_failure_counter(
    spec_service: HotReloader[ToolsetCatalog], files: Files, logs: Logs
) -> None:
    async with spec_service as service:
        files.write_unseen("invalid: yaml: content: [")
        await fail(service, "kubernetes", 3)
        assert consecutive(service, "kubernetes") == 3
        assert service.config.names == ("kubernetes", "prometheus")
        assert events(logs, "auto_reload_validation_failed_keeping_failure_counter")


async def test_error_keeps_failure_counter(
    files: Files, registry: CollectorRegistry, logs: Logs
) -> None:
    async def refuse(new: Snapshot[ToolsetCatalog], old: Snapshot[ToolsetCatalog]) -> None:
        raise RuntimeError("client rebuild failed")

    async with create_toolset_reloader(
        files.path, registry=registry, environ={}, on_apply=[refuse]
    ) as r:
        files.write_unseen(dump({"discovered": [{"name": "kubernetes", "enabled": True}]}))
        await fail(r, "kubernetes", 3)
        assert consecutive(r, "kubernetes") == 3
        assert r.last_outcome is not None
        assert r.last_outcome.result is ReloadResult.ERROR
        assert isinstance(r.last_outcome.error, ConfigApplyError)
        assert events(logs, "auto_reload_error_keeping_failure_counter")


async def test_reload_cooldown_prevents_rapid_reloads(
    files: Files, registry: CollectorRegistry, logs: Logs, metric: MetricReader
) -> None:
    now = [1000.0]
    async with create_toolset_reloader(
        files.path, registry=registry, environ={}, failures=Failures(cooldown=5)
    ) as r:
        r._failures.ledger.clock = lambda: now[0]  # the one fake: time passing
        await fail(r, "kubernetes", 3)
        assert len(events(logs, "toolset_max_failures_reached_triggering_auto_reload")) == 1

        await fail(r, "kubernetes", 3)  # immediately again: blocked by the cooldown
        assert len(events(logs, "toolset_max_failures_reached_triggering_auto_reload")) == 1
        blocked = metric(
            "holmesgpt_reload_cooldown_blocks_total",
            config="holmesgpt-toolsets",
            toolset="kubernetes",
        )
        assert blocked == 3
        assert len(events(logs, "auto_reload_cooldown_active")) == 1  # logged once per window

        now[0] += 5.1
        await fail(r, "kubernetes", 3)
        assert len(events(logs, "toolset_max_failures_reached_triggering_auto_reload")) == 2
        rechecks = [e for e in logs if e.get("trigger") == "auto_reload"]
        assert rechecks == []  # unchanged re-checks log nothing of their own but the above


async def test_force_reload_detects_content_change(
    spec_service: HotReloader[ToolsetCatalog], files: Files
) -> None:
    async with spec_service as service:
        new = {
            "discovered": [
                *INITIAL["discovered"],
                {"name": "grafana", "enabled": True, "priority": 80},
            ],
            "overrides": {},
        }
        files.write_unseen(dump(new))
        outcome = await service.reload()
        assert outcome.result is ReloadResult.CONFIG_CHANGED
        assert len(service.config.effective) == 3
        assert "grafana" in service.config.names


async def test_force_reload_detects_unchanged_config(
    spec_service: HotReloader[ToolsetCatalog], files: Files
) -> None:
    async with spec_service as service:
        assert (await service.reload()).result is ReloadResult.CONFIG_UNCHANGED
        files.write_unseen(dump(INITIAL) + "# only a comment\n")
        assert (await service.reload()).result is ReloadResult.CONFIG_UNCHANGED


async def test_force_reload_handles_parse_error(
    spec_service: HotReloader[ToolsetCatalog], files: Files
) -> None:
    async with spec_service as service:
        files.write_unseen("invalid: yaml: content: [")
        outcome = await service.reload()
        assert outcome.result is ReloadResult.VALIDATION_FAILED
        assert outcome.error is not None
        assert outcome.error.source == str(files.path)


async def test_force_reload_validates_empty_toolsets(
    spec_service: HotReloader[ToolsetCatalog], files: Files
) -> None:
    async with spec_service as service:
        files.write_unseen(dump({"discovered": [], "overrides": {}}))
        outcome = await service.reload()
        assert outcome.result is ReloadResult.VALIDATION_FAILED
        assert outcome.error is not None
        assert "no enabled toolset" in str(outcome.error)
        assert service.config.names == ("kubernetes", "prometheus")


async def test_multiple_toolsets_independent_failure_tracking(
    spec_service: HotReloader[ToolsetCatalog], metric: MetricReader
) -> None:
    async with spec_service as service:
        await fail(service, "kubernetes", 2)
        await fail(service, "prometheus", 3)
        assert consecutive(service, "kubernetes") == 2
        assert consecutive(service, "prometheus") == 3
        count = "holmesgpt_consecutive_failures_before_reload_count"
        assert metric(count, config="holmesgpt-toolsets", toolset="prometheus") == 1
        assert metric(count, config="holmesgpt-toolsets", toolset="kubernetes") is None


# -- the spec's integration tests ------------------------------------------------------------


async def test_end_to_end_auto_reload_recovery(
    files: Files, registry: CollectorRegistry, logs: Logs
) -> None:
    """Prometheus disabled, investigations fail, the admin enables it, the service heals."""
    disabled = {
        "discovered": [
            {"name": "kubernetes", "enabled": True, "priority": 100},
            {"name": "prometheus", "enabled": False, "priority": 90},
        ],
        "overrides": {},
    }
    files.write_unseen(dump(disabled))
    async with create_toolset_reloader(files.path, registry=registry, environ={}) as r:
        assert r.config.names == ("kubernetes",)
        await fail(r, "prometheus", 3, "ConnectionError")
        assert consecutive(r, "prometheus") == 3  # nothing to find yet

        files.write_seen(dump(INITIAL))  # the admin's fix; the watcher applies it at once
        await r.wait_for_generation(2, timeout=WAIT)
        assert r.config.names == ("kubernetes", "prometheus")  # type: ignore[comparison-overlap]

        # The next failure (an investigation started before the fix) settles the streak: the
        # config changed since it began, which is what the forced re-check was waiting for.
        await fail(r, "prometheus", 1, "ConnectionError")
        assert consecutive(r, "prometheus") == 0
        [healed] = events(logs, "auto_reload_successful_config_changed")
        assert healed["detected_by"] == "watcher"

        r.record_success("prometheus")
        await r.failures_settled()
        assert consecutive(r, "prometheus") == 0
        assert r.failures["prometheus"].total_failures == 4


async def test_auto_reload_with_graceful_session_handling(
    spec_service: HotReloader[ToolsetCatalog], files: Files, logs: Logs
) -> None:
    async with spec_service as service:
        service.register_session("test-session-123")
        fixed = {"discovered": [{"name": "kubernetes"}, {"name": "prometheus", "enabled": True}]}
        files.write_seen(dump(fixed))
        deferred = await service.wait_for_outcome(ReloadResult.CONFIG_CHANGED, timeout=WAIT)
        assert deferred.deferred
        assert not deferred.applied
        assert service.pending is not None
        assert service.config.names == ("kubernetes", "prometheus")
        assert service.snapshot.generation == 1
        assert events(logs, "toolset_reload_queued_active_sessions")

        service.unregister_session("test-session-123")
        applied = await service.wait_for_outcome(lambda o: o.applied, timeout=WAIT)
        assert applied.trigger == "session_end"
        assert service.pending is None
        assert service.snapshot.generation == 2
        assert events(logs, "last_session_completed_applying_pending_reload")
        assert events(logs, "toolset_missing_enabled_defaulting_true")


# -- beyond the spec -------------------------------------------------------------------------


async def test_a_change_deferred_by_sessions_resets_the_counter(
    spec_service: HotReloader[ToolsetCatalog], files: Files
) -> None:
    async with spec_service as service:
        async with service.session():
            files.write_unseen(dump({"discovered": [{"name": "prometheus", "enabled": True}]}))
            await fail(service, "prometheus", 3)
            assert service.pending is not None
            assert consecutive(service, "prometheus") == 0
        await service.wait_for_generation(2, timeout=WAIT)


async def test_a_change_deferred_since_the_streak_began_counts_as_changed(
    spec_service: HotReloader[ToolsetCatalog], files: Files, logs: Logs
) -> None:
    """The rule against the real gate: a change held for sessions after a toolset started
    failing is the fix it waited for, so reaching the threshold settles the streak without a
    forced re-check. An earlier deferred change (held and applied before the streak began)
    does not count: the gate numbers every change it holds, and only a newer one does."""
    async with spec_service as service:
        async with service.session():
            files.write_seen(dump({"discovered": [{"name": "kubernetes", "enabled": True}]}))
            await service.wait_for_outcome(lambda o: o.deferred, timeout=WAIT)
        await service.wait_for_generation(2, timeout=WAIT)
        await fail(service, "prometheus", 1)
        async with service.session():
            files.write_seen(dump({"discovered": [{"name": "prometheus", "enabled": True}]}))
            await service.wait_for_outcome(lambda o: o.deferred, timeout=WAIT)
            await fail(service, "prometheus", 2)
            assert consecutive(service, "prometheus") == 0
            assert service.pending is not None
            assert service.snapshot.generation == 2
        assert not events(logs, "toolset_max_failures_reached_triggering_auto_reload")
        [healed] = events(logs, "auto_reload_successful_config_changed")
        assert (healed["toolset"], healed["previous_failures"]) == ("prometheus", 3)
        assert healed["detected_by"] == "watcher"
        await service.wait_for_generation(3, timeout=WAIT)


async def test_failures_during_a_recheck_join_it(
    files: Files, registry: CollectorRegistry, logs: Logs, metric: MetricReader
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(new: Snapshot[ToolsetCatalog], old: Snapshot[ToolsetCatalog]) -> None:
        entered.set()
        await release.wait()

    async with create_toolset_reloader(
        files.path, registry=registry, environ={}, on_apply=[slow]
    ) as r:
        outcomes = r.outcomes()
        files.write_unseen(dump({"discovered": [{"name": "kubernetes", "enabled": True}]}))
        for _ in range(3):
            r.record_failure("prometheus")
        await asyncio.wait_for(entered.wait(), WAIT)  # the re-check is in the hook now
        for _ in range(5):
            r.record_failure("prometheus")
            r.record_failure("kubernetes")
        release.set()
        await r.failures_settled()
        assert consecutive(r, "prometheus") == 0
        assert consecutive(r, "kubernetes") == 0
        assert r.failures["prometheus"].total_failures == 8
        assert len(events(logs, "toolset_max_failures_reached_triggering_auto_reload")) == 1
        first = await asyncio.wait_for(outcomes.__anext__(), WAIT)
        assert (first.trigger, first.applied) == ("auto_reload", True)
        await outcomes.aclose()
        assert [o async for o in outcomes] == []
        for toolset in ("prometheus", "kubernetes"):
            value = metric(
                "holmesgpt_auto_reload_triggered_total",
                config="holmesgpt-toolsets",
                toolset=toolset,
                result="config_changed",
            )
            assert value == 1


async def test_eight_threads_lose_no_count_and_never_block_the_loop(
    spec_service: HotReloader[ToolsetCatalog], logs: Logs
) -> None:
    async with spec_service as service:
        service._failures.ledger.cooldown = 3600.0  # one re-check; the rest are blocked, counted
        threads, calls = 8, 10_000
        worst = 0.0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal worst
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.005)  # sleep-ok: the ticker that measures loop lag
                now = time.perf_counter()
                worst = max(worst, now - last)
                last = now

        def hammer(n: int) -> None:
            for i in range(calls):
                service.record_failure(f"toolset-{n % 2}", "E", str(i))

        tick = asyncio.create_task(ticker())
        workers = [threading.Thread(target=hammer, args=(n,)) for n in range(threads)]
        started = time.perf_counter()
        for w in workers:
            w.start()

        def join_all() -> None:
            for w in workers:
                w.join()

        await asyncio.to_thread(join_all)
        await service.failures_settled()
        elapsed = time.perf_counter() - started
        stop.set()
        await tick
        totals = [service.failures[f"toolset-{n}"].total_failures for n in range(2)]
        assert totals == [threads * calls // 2] * 2
        assert len(events(logs, "toolset_failure_recorded")) == threads * calls
        # The loop kept serving while 80,000 calls landed: no stall took a quarter of the run (a
        # loop held by its callers would stall for all of it). A ratio against the run itself,
        # which a busy machine stretches too: measured 0.02-0.05 with both cores busy, and up
        # to 0.12 for 8 threads that only spin (the GIL's share alone).
        assert worst < elapsed / 4, f"a {worst:.3f} s stall in a {elapsed:.3f} s run"


# -- the Holmes preset ------------------------------------------------------------------------


def test_an_invalid_threshold_is_a_clear_startup_error(files: Files) -> None:
    for bad in ("abc", "0", "-2", ""):
        with pytest.raises(ValueError, match="TOOLSET_MAX_FAILURES_BEFORE_RELOAD"):
            create_toolset_reloader(files.path, environ={"TOOLSET_MAX_FAILURES_BEFORE_RELOAD": bad})


async def test_the_threshold_comes_from_the_environment(
    files: Files, registry: CollectorRegistry, logs: Logs
) -> None:
    env = {"TOOLSET_MAX_FAILURES_BEFORE_RELOAD": "2"}
    async with create_toolset_reloader(files.path, registry=registry, environ=env) as r:
        await fail(r, "kubernetes", 2)
        assert events(logs, "toolset_max_failures_reached_triggering_auto_reload")


async def test_catalog_rules(files: Files, registry: CollectorRegistry, logs: Logs) -> None:
    async with create_toolset_reloader(files.path, registry=registry, environ={}) as r:
        files.write_unseen(dump({"discovered": [{"name": "a"}, {"enabled": True}]}))
        missing_name = await r.reload()
        assert missing_name.result is ReloadResult.VALIDATION_FAILED
        assert missing_name.error is not None
        assert getattr(missing_name.error, "field_path", None) == "discovered[1].name"

        overridden = {
            "discovered": [
                {"name": "kubernetes", "priority": 1, "config": {"a": 1}},
                {"name": "prometheus", "enabled": True},
            ],
            "overrides": {
                "prometheus": {"enabled": False},
                "kubernetes": {"priority": 7, "config": {"b": 2}},
            },
        }
        files.write_unseen(dump(overridden))
        assert (await r.reload()).applied
        [k8s] = r.config.effective
        assert (k8s.name, k8s.priority, k8s.config) == ("kubernetes", 7, {"a": 1, "b": 2})
        [defaulted] = events(logs, "toolset_missing_enabled_defaulting_true")
        assert defaulted["toolset"] == "kubernetes"

        files.write_unseen(dump({"discovered": [{"name": "a", "enabled": False}]}))
        assert (await r.reload()).result is ReloadResult.VALIDATION_FAILED


async def test_dev_mode_skips_semantic_checks_but_not_the_parser(
    files: Files, registry: CollectorRegistry
) -> None:
    env = {"HOLMESGPT_DEV_MODE": "true"}
    async with create_toolset_reloader(files.path, registry=registry, environ=env) as r:
        files.write_unseen(dump({"discovered": [{"name": "a", "enabled": False}]}))
        assert (await r.reload()).applied
        assert r.config.names == ()
        files.write_unseen("a: &a [*a]\n")  # an alias cycle stays refused in dev mode
        assert (await r.reload()).result is ReloadResult.VALIDATION_FAILED


class KeyedSettings(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    api_key: str


async def test_a_failure_message_quoting_a_secret_is_masked(
    tmp_path: Path, registry: CollectorRegistry, logs: Logs
) -> None:
    planted = "sk-PLANTED-in-a-tool-error-0451"
    path = tmp_path / "c.yaml"
    path.write_text(f"url: http://prom\napi_key: {planted}\n")
    async with HotReloader(path, schema=KeyedSettings, registry=registry) as r:
        # The secret sits at the 200-character cut: it must be masked before the cut.
        r.record_failure("prometheus", "AuthError", "x" * 190 + f" key {planted} rejected")
        await r.failures_settled()
        message = r.failures["prometheus"].last_error_message
        assert "***" in message
        assert "PLANTED" not in message + repr(r.failures) + str(logs)
