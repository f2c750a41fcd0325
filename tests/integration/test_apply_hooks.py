"""Apply hooks: run before a change is put in force; one that raises keeps the previous one."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
from prometheus_client import CollectorRegistry

from hotreload import ConfigApplyError, HotReloader, ReloadResult, Secret, Snapshot
from hotreload.testing import write_in_place
from tests.conftest import MetricReader
from tests.integration.conftest import AnySettings, SettingsSchema

WAIT = 5.0
Logs = list[MutableMapping[str, Any]]


def reloader(
    path: Path, registry: CollectorRegistry, settings: SettingsSchema, **options: Any
) -> HotReloader[AnySettings]:
    return HotReloader(path, schema=settings, name="h", registry=registry, **options)


async def test_hooks_run_in_order_before_readers_see_the_change(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    calls: list[tuple[str, str, str, str]] = []
    holder: list[HotReloader[AnySettings]] = []

    async def first(new: Snapshot[AnySettings], old: Snapshot[AnySettings]) -> None:
        calls.append(("first", new.config.model, old.config.model, holder[0].config.model))

    async with reloader(config_path, registry, settings, on_apply=[first]) as r:
        holder.append(r)

        @r.add_apply_hook
        async def second(new: Snapshot[AnySettings], old: Snapshot[AnySettings]) -> None:
            calls.append(("second", new.config.model, old.config.model, r.config.model))

        write_in_place(config_path, "model: gpt-5\n")
        outcome = await r.wait_for_outcome(ReloadResult.CONFIG_CHANGED, timeout=WAIT)
        assert outcome.applied
        assert r.config.model == "gpt-5"
    # Readers still saw the old config while the hooks ran: nothing is in force half-applied.
    assert calls == [("first", "gpt-5", "gpt-4", "gpt-4"), ("second", "gpt-5", "gpt-4", "gpt-4")]


async def test_a_hook_that_raises_keeps_the_previous_config_and_undoes_the_others(
    config_path: Path,
    registry: CollectorRegistry,
    metric: MetricReader,
    logs: Logs,
    settings: SettingsSchema,
) -> None:
    calls: list[tuple[str, str]] = []
    broken = [True]

    async def rebuild_client(new: Snapshot[AnySettings], old: Snapshot[AnySettings]) -> None:
        calls.append(("rebuild", new.config.model))

    async def warm_cache(new: Snapshot[AnySettings], old: Snapshot[AnySettings]) -> None:
        if broken[0]:
            raise ConnectionError("cache unreachable")
        calls.append(("warm", new.config.model))

    hooks = [rebuild_client, warm_cache]
    async with reloader(config_path, registry, settings, on_apply=hooks) as r:
        changes = r.changes()
        write_in_place(config_path, "model: gpt-5\n")
        outcome = await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        assert not outcome.applied
        assert isinstance(outcome.error, ConfigApplyError)
        assert outcome.error.hook.endswith("warm_cache")
        assert "ConnectionError: cache unreachable" in str(outcome.error)
        assert r.config == settings(model="gpt-4")
        assert r.snapshot.generation == 1
        # The hook that had run is called again with the roles swapped, to undo.
        assert calls == [("rebuild", "gpt-5"), ("rebuild", "gpt-4")]
        assert metric("hotreload_config_reload_failures_total", config="h", reason="apply_hook")
        assert any(e["event"] == "apply_hook_failed" for e in logs)
        assert any(
            e["event"] == "Failed to apply new configuration - keeping previous" for e in logs
        )

        # Once the hook works again, the same content goes in on the next check.
        broken[0] = False
        retried = await r.reload()
        assert retried.applied
        assert r.config == settings(model="gpt-5")
        snap = await asyncio.wait_for(changes.__anext__(), WAIT)
        assert snap.generation == 2  # the refused attempt used no generation


async def test_a_hook_that_hangs_times_out(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async def hang(new: Snapshot[AnySettings], old: Snapshot[AnySettings]) -> None:
        await asyncio.Event().wait()

    async with reloader(config_path, registry, settings, on_apply=[hang], hook_timeout=0.1) as r:
        write_in_place(config_path, "model: gpt-5\n")
        outcome = await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        assert "timed out" in str(outcome.error)
        assert r.config == settings(model="gpt-4")


class WithKey(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    credentials: Annotated[str, Secret] = ""


async def test_a_hook_error_never_carries_a_secret_value(
    tmp_path: Path, registry: CollectorRegistry, logs: Logs
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: a\ncredentials: OLD-PLANTED-VALUE\n")

    async def leaky(new: Snapshot[WithKey], old: Snapshot[WithKey]) -> None:
        raise ValueError(f"bad key {new.config.credentials} (was {old.config.credentials})")

    async with HotReloader(path, schema=WithKey, registry=registry, on_apply=[leaky]) as r:
        write_in_place(path, "model: b\ncredentials: NEW-PLANTED-VALUE\n")
        outcome = await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        text = f"{outcome.error} {outcome.error!r} {logs}"
        assert "bad key *** (was ***)" in str(outcome.error)
        assert "PLANTED" not in text
