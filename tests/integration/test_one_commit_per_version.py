"""Issue 12's two reproductions, through the public API with a real file and the real watcher:
a change held for a session, then the last session ending and ``reload()`` in the same loop
tick, must give one commit per distinct version, in order, and never an older one again."""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from hotreload import HotReloader, ReloadResult, Snapshot
from hotreload.testing import write_in_place
from tests.conftest import MetricReader
from tests.integration.conftest import AnySettings, SettingsSchema

WAIT = 5.0
Logs = list[MutableMapping[str, Any]]


async def run(
    config_path: Path,
    registry: CollectorRegistry,
    logs: Logs,
    metric: MetricReader,
    settings: SettingsSchema,
    *,
    write_before_end: str | None,
) -> list[tuple[int, str]]:
    commits: list[Snapshot[AnySettings]] = []

    async def record(new: Snapshot[AnySettings], old: Snapshot[AnySettings]) -> None:
        commits.append(new)

    async with HotReloader(
        config_path,
        schema=settings,
        name="stale",
        registry=registry,
        poll_interval=0,
        on_apply=(record,),
    ) as r:
        assert r.register_session("s")
        waiting = r.wait_for_outcome(ReloadResult.CONFIG_CHANGED, timeout=WAIT)
        write_in_place(config_path, "model: b\n")
        await waiting
        assert r.pending is not None
        assert r.pending.config.model == "b"
        # One loop tick: (a write,) the last session ends, and a caller asks for a re-check.
        if write_before_end is not None:
            write_in_place(config_path, f"model: {write_before_end}\n")
        assert r.unregister_session("s")
        outcome = await r.reload()
        assert outcome.applied
        # Quiesce: another re-check runs after anything the first burst queued.
        again = await r.reload()
        assert not again.applied
        assert r.pending is None
        assert r.snapshot.generation == 1 + len(commits)
        reloaded = [e for e in logs if e["event"] == "Configuration hot-reloaded successfully"]
        assert len(reloaded) == len(commits)
        assert metric("hotreload_config_reload_total", config="stale") == len(commits)
        return [(s.generation, s.config.model) for s in commits]


async def test_a_held_version_released_with_a_manual_reload_is_committed_once(
    config_path: Path,
    registry: CollectorRegistry,
    metric: MetricReader,
    logs: Logs,
    settings: SettingsSchema,
) -> None:
    assert await run(config_path, registry, logs, metric, settings, write_before_end=None) == [
        (2, "b")
    ]


async def test_a_held_version_replaced_in_the_same_tick_never_comes_back(
    config_path: Path,
    registry: CollectorRegistry,
    metric: MetricReader,
    logs: Logs,
    settings: SettingsSchema,
) -> None:
    assert await run(config_path, registry, logs, metric, settings, write_before_end="c") == [
        (2, "c")
    ]
