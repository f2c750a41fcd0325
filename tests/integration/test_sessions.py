"""Session-drain gating (BR-HAPI-191) with real files and the real watcher."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hotreload import HotReloader, ReloadResult
from hotreload.testing import write_atomic, write_in_place
from tests.conftest import MetricReader
from tests.integration.conftest import AnySettings, SettingsSchema

WAIT = 5.0
Logs = list[MutableMapping[str, Any]]


def reloader(
    path: Path, registry: CollectorRegistry, settings: SettingsSchema, **options: Any
) -> HotReloader[AnySettings]:
    return HotReloader(path, schema=settings, name="s", registry=registry, **options)


async def deferred_outcome(r: HotReloader[AnySettings]) -> None:
    outcome = await r.wait_for_outcome(ReloadResult.CONFIG_CHANGED, timeout=WAIT)
    assert outcome.deferred
    assert not outcome.applied


async def test_a_change_waits_for_the_session_and_lands_when_it_ends(
    config_path: Path,
    registry: CollectorRegistry,
    metric: MetricReader,
    logs: Logs,
    settings: SettingsSchema,
) -> None:
    async with reloader(config_path, registry, settings) as r:
        async with r.session() as snap:
            assert r.active_sessions == 1
            assert metric("hotreload_active_sessions", config="s") == 1
            write_in_place(config_path, "model: gpt-5\n")
            await deferred_outcome(r)
            assert r.config == snap.config == settings(model="gpt-4")
            assert r.pending is not None
            assert r.pending.config == settings(model="gpt-5")
            assert r.pending.generation == 2
            assert metric("hotreload_pending_reload", config="s") == 1
            assert metric("hotreload_config_reload_total", config="s") == 0
        applied = await r.wait_for_outcome(lambda o: o.applied, timeout=WAIT)
        assert applied.trigger == "session_end"
        assert applied.changed == ("model",)
        assert r.config == settings(model="gpt-5")
        assert r.snapshot.generation == 2
        assert r.pending is None
        assert r.active_sessions == 0
        assert metric("hotreload_active_sessions", config="s") == 0
        assert metric("hotreload_pending_reload", config="s") == 0
        assert metric("hotreload_config_reload_total", config="s") == 1
        assert [e["event"] for e in logs if "pending" in e["event"] or "queued" in e["event"]] == [
            "toolset_reload_queued_active_sessions",
            "last_session_completed_applying_pending_reload",
        ]


async def test_the_newest_pending_change_wins_and_commits_once(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with reloader(config_path, registry, settings) as r:
        changes = r.changes()
        async with r.session():
            write_atomic(config_path, "model: gpt-5\n")
            await deferred_outcome(r)
            write_atomic(config_path, "model: gpt-6\n")
            await r.wait_for_outcome(
                lambda o: (
                    o.deferred and r.pending is not None and r.pending.config.model == "gpt-6"
                ),
                timeout=WAIT,
            )
        snap = await asyncio.wait_for(changes.__anext__(), WAIT)
        assert (snap.generation, snap.config) == (2, settings(model="gpt-6"))
        await changes.aclose()
        assert [s async for s in changes] == []


async def test_a_pending_change_equal_to_the_active_config_is_cancelled(
    config_path: Path, registry: CollectorRegistry, logs: Logs, settings: SettingsSchema
) -> None:
    async with reloader(config_path, registry, settings) as r:
        async with r.session():
            write_in_place(config_path, "model: gpt-5\n")
            await deferred_outcome(r)
            write_in_place(config_path, "model: gpt-4  # back\n")
            await r.wait_for_outcome(ReloadResult.CONFIG_UNCHANGED, timeout=WAIT)
            assert r.pending is None
        assert (await r.reload()).result is ReloadResult.CONFIG_UNCHANGED
        assert r.snapshot.generation == 1
        assert any(e["event"] == "pending_reload_cancelled_config_reverted" for e in logs)


async def test_a_stuck_session_delays_a_change_by_at_most_max_drain_wait(
    config_path: Path, registry: CollectorRegistry, logs: Logs, settings: SettingsSchema
) -> None:
    async with reloader(config_path, registry, settings, max_drain_wait=0.3) as r:
        stuck = r.session()
        pinned = await stuck.__aenter__()  # never ends during the change
        write_in_place(config_path, "model: gpt-5\n")
        await deferred_outcome(r)
        applied = await r.wait_for_outcome(lambda o: o.applied, timeout=WAIT)
        # Released by the deadline, with the session still open: nothing else could end the
        # wait. Not before the wait was up (a busy machine can only make it later, so no upper
        # bound here: how late a loop timer fires is the scheduler's, not the engine's).
        assert applied.trigger == "drain_timeout"
        assert applied.latency >= 0.25  # timing-ok: a lower bound the drain wait guarantees
        assert r.config == settings(model="gpt-5")
        assert pinned.config == settings(model="gpt-4")  # the session keeps its snapshot
        [waited] = [e for e in logs if e["event"] == "pending_reload_applied_after_max_drain_wait"]
        assert waited["active_sessions"] == 1

        # The next change waits its own max_drain_wait, with the session still open.
        write_in_place(config_path, "model: gpt-6\n")
        await deferred_outcome(r)
        await r.wait_for_generation(3, timeout=WAIT)
        await stuck.__aexit__(None, None, None)
        assert r.active_sessions == 0


async def test_a_session_sees_one_snapshot_from_start_to_end(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with (
        reloader(config_path, registry, settings, max_drain_wait=0.05) as r,
        r.session() as snap,
    ):
        first = snap
        write_in_place(config_path, "model: gpt-5\n")
        await r.wait_for_generation(2, timeout=WAIT)  # committed meanwhile (drain timeout)
        assert snap is first
        assert snap.config == settings(model="gpt-4")
        assert snap.generation == 1
        assert r.snapshot.generation == 2


async def test_max_drain_wait_zero_means_sessions_never_hold_changes(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with (
        reloader(config_path, registry, settings, max_drain_wait=0) as r,
        r.session() as snap,
    ):
        write_in_place(config_path, "model: gpt-5\n")
        applied = await r.wait_for_outcome(ReloadResult.CONFIG_CHANGED, timeout=WAIT)
        assert applied.applied
        assert not applied.deferred
        assert snap.config == settings(model="gpt-4")


async def test_register_and_unregister_are_idempotent_and_work_from_threads(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with reloader(config_path, registry, settings) as r:
        assert r.register_session("inv-1")
        assert not r.register_session("inv-1")
        assert await asyncio.to_thread(r.register_session, "inv-2")
        assert r.active_sessions == 2
        write_in_place(config_path, "model: gpt-5\n")
        await deferred_outcome(r)
        assert r.unregister_session("inv-1")
        assert not r.unregister_session("inv-1")
        assert r.pending is not None  # inv-2 is still open
        # The last one ends on another thread: the commit is handed to the loop.
        last = threading.Thread(target=r.unregister_session, args=("inv-2",))
        last.start()
        applied = await r.wait_for_outcome(lambda o: o.applied, timeout=WAIT)
        last.join()
        assert applied.trigger == "session_end"
        assert not r.unregister_session("never-opened")


async def test_a_duplicate_session_id_is_refused(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with reloader(config_path, registry, settings) as r:
        async with r.session("inv"):
            with pytest.raises(RuntimeError, match="already open"):
                async with r.session("inv"):
                    pass
        assert r.active_sessions == 0


async def test_sessions_need_a_running_reloader(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    r = reloader(config_path, registry, settings)
    with pytest.raises(RuntimeError, match="not running"):
        r.register_session("early")
    async with r:
        r.register_session("late")
    assert r.unregister_session("late")  # closing after shutdown is harmless


async def test_a_rejected_version_does_not_cancel_a_pending_valid_one(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with reloader(config_path, registry, settings) as r:
        async with r.session():
            write_in_place(config_path, "model: gpt-5\n")
            await deferred_outcome(r)
            write_in_place(config_path, "model: [\n")
            await r.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=WAIT)
            assert r.pending is not None
        await r.wait_for_generation(2, timeout=WAIT)
        assert r.config == settings(model="gpt-5")
