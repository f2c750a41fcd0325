"""``settle_ms``: a quiet period that turns a burst of writes into one read and one commit.

Real files, the real watcher. No test waits for time to pass or bounds it: a reloader with a
quiet period of ten minutes shows what happens *during* one (each write of a burst reaches it,
proven by a second reloader without one committing that very write, and it reads nothing),
and a short one shows the read at its end (the writes are made back-to-back, so one read
finds the last of them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hotreload import Failures, FileSource, HotReloader, Layers, ReloadResult, Source
from hotreload.testing import write_in_place
from tests.integration.conftest import AnySettings, SettingsSchema

WAIT = 10.0
#: Longer than any test runs: a quiet period that never ends while it is looked at.
FOREVER_MS = 600_000
Make = Callable[[Path, float | None], Source]


def file_source(path: Path, settle_ms: float | None) -> Source:
    return FileSource(path, settle_ms=settle_ms)


def layers(path: Path, settle_ms: float | None) -> Source:
    return Layers(path, settle_ms=settle_ms)


SOURCES = pytest.mark.parametrize("make", [file_source, layers], ids=["file", "layers"])


@SOURCES
async def test_a_burst_is_held_while_the_quiet_period_runs(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema, make: Make
) -> None:
    settled: HotReloader[AnySettings] = HotReloader(
        make(config_path, FOREVER_MS),
        schema=settings,
        name="settled",
        registry=registry,
        poll_interval=3600,
    )
    plain: HotReloader[AnySettings] = HotReloader(
        config_path, schema=settings, name="plain", registry=registry, poll_interval=0
    )
    async with settled, plain:
        deadlines = []
        for k in range(1, 6):
            write_in_place(config_path, f"model: v{k}\n")
            # Without settle_ms, each separate write that is waited on commits (as before).
            snap = await plain.wait_for_generation(1 + k, timeout=WAIT)
            assert (snap.generation, snap.config.model) == (1 + k, f"v{k}")
            assert settled._settle_timer is not None
            deadlines.append(settled._settle_timer.when())
        # The same events reached `settled` (one hub delivers them to both): it read nothing,
        # and each later event started its quiet period again.
        assert settled.last_outcome is not None
        assert settled.last_outcome.trigger == "initial"
        assert (settled.snapshot.generation, settled.config.model) == (1, "gpt-4")
        assert deadlines[-1] > deadlines[0]
        # The safety poll does not read during the quiet period either.
        settled._poll()
        assert settled._triggers == []
        # A caller is never kept waiting by it.
        outcome = await settled.reload()
        assert (outcome.applied, outcome.trigger) == (True, "manual")
        assert (settled.snapshot.generation, settled.config.model) == (2, "v5")
    assert settled._settle_timer is None  # nothing outlives the reloader


@SOURCES
async def test_the_burst_is_one_commit_of_its_last_version(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema, make: Make
) -> None:
    async with HotReloader(
        make(config_path, 50), schema=settings, registry=registry, poll_interval=0
    ) as reloader:
        outcomes = reloader.outcomes()
        for k in range(1, 6):  # back-to-back: no read can come between them
            write_in_place(config_path, f"model: v{k}\n")
        snap = await reloader.wait_for_generation(2, timeout=WAIT)
        assert snap.config.model == "v5"
        again = await reloader.reload()  # runs after anything the burst queued
        assert not again.applied
        seen = []
        while (outcome := await asyncio.wait_for(outcomes.__anext__(), WAIT)) is not again:
            seen.append(outcome)
        applied = [o for o in seen if o.applied]
        assert len(applied) == 1
        assert applied[0].trigger in {"watch", "rescan"}
        assert reloader.snapshot.generation == 2
        # The next separate write, waited on, is the next commit.
        write_in_place(config_path, "model: v6\n")
        snap = await reloader.wait_for_generation(3, timeout=WAIT)
        assert snap.config.model == "v6"


async def test_a_forced_recheck_is_not_delayed(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with HotReloader(
        FileSource(config_path, settle_ms=FOREVER_MS),
        schema=settings,
        registry=registry,
        poll_interval=0,
        failures=Failures(threshold=1, cooldown=0),
    ) as reloader:
        outcomes = reloader.outcomes()
        write_in_place(config_path, "model: v1\n")
        reloader.record_failure("llm", "ConnectionError", "refused")
        outcome = await asyncio.wait_for(outcomes.__anext__(), WAIT)
        assert (outcome.trigger, outcome.result) == ("auto_reload", ReloadResult.CONFIG_CHANGED)
        assert reloader.config.model == "v1"
