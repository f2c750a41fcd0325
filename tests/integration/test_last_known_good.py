"""The opt-in last-known-good cache: a restart on a bad push starts degraded, not crash-looping."""

from __future__ import annotations

import json
import stat
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hotreload import ConfigParseError, HotReloader, ReloadOutcome, ReloadResult
from hotreload.testing import write_atomic, write_in_place
from tests.conftest import MetricReader
from tests.integration.conftest import AnySettings, SettingsSchema

WAIT = 5.0
Logs = list[MutableMapping[str, Any]]


def reloader(
    path: Path, registry: CollectorRegistry, lkg: Path | None, settings: SettingsSchema
) -> HotReloader[AnySettings]:
    return HotReloader(path, schema=settings, name="l", registry=registry, lkg_path=lkg)


async def rejected(r: HotReloader[AnySettings]) -> ReloadOutcome:
    """The rejection of the bad source by the re-check after start (it may be done already)."""
    last = r.last_outcome
    if last is not None and last.result is ReloadResult.VALIDATION_FAILED:
        return last
    return await r.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=WAIT)


def cached(lkg: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(lkg.read_text())
    return data


async def test_every_commit_is_cached_atomically_for_the_owner_only(
    config_path: Path, registry: CollectorRegistry, tmp_path: Path, settings: SettingsSchema
) -> None:
    lkg = tmp_path / "state" / "lkg.json"
    async with reloader(config_path, registry, lkg, settings) as r:
        first = cached(lkg)
        assert (first["generation"], first["content"]) == (1, "model: gpt-4\n")
        assert first["config_hash"] == r.snapshot.config_hash
        assert stat.S_IMODE(lkg.stat().st_mode) == 0o600  # a config may hold secrets
        write_atomic(config_path, "model: gpt-5\n")
        await r.wait_for_generation(2, timeout=WAIT)
        assert cached(lkg)["content"] == "model: gpt-5\n"
        write_in_place(config_path, "model: [\n")  # rejected: the cache keeps the good one
        await r.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=WAIT)
        assert cached(lkg)["content"] == "model: gpt-5\n"
    assert [p.name for p in lkg.parent.iterdir()] == ["lkg.json"]  # no temp file left


async def test_a_restart_on_a_bad_push_starts_degraded_and_recovers(  # noqa: PLR0917
    config_path: Path,
    registry: CollectorRegistry,
    tmp_path: Path,
    metric: MetricReader,
    logs: Logs,
    settings: SettingsSchema,
) -> None:
    lkg = tmp_path / "lkg.json"
    async with reloader(config_path, registry, lkg, settings):
        pass
    write_in_place(config_path, "model: [\n")  # the bad push, then the pod restarts

    async with reloader(config_path, registry, lkg, settings) as r:
        assert r.config == settings(model="gpt-4")
        assert r.degraded is not None
        assert "config.yaml:2:1" in r.degraded
        assert metric("hotreload_config_degraded", config="l") == 1
        [started] = [e for e in logs if e["event"] == "config_started_from_last_known_good"]
        assert started["log_level"] == "error"
        assert started["reason"] == "parse"
        # It keeps watching: the rescan reports the bad source, then a fix is applied.
        refused = await rejected(r)
        assert isinstance(refused.error, ConfigParseError)
        write_in_place(config_path, "model: gpt-5\n")
        await r.wait_for_generation(2, timeout=WAIT)
        assert r.degraded is None
        assert metric("hotreload_config_degraded", config="l") == 0
        assert cached(lkg)["content"] == "model: gpt-5\n"


async def test_a_fix_equal_to_the_cached_copy_clears_degraded(
    config_path: Path, registry: CollectorRegistry, tmp_path: Path, settings: SettingsSchema
) -> None:
    lkg = tmp_path / "lkg.json"
    async with reloader(config_path, registry, lkg, settings):
        pass
    write_in_place(config_path, "model: [\n")
    async with reloader(config_path, registry, lkg, settings) as r:
        await rejected(r)
        write_in_place(config_path, "model: gpt-4  # same as the cache\n")
        await r.wait_for_outcome(ReloadResult.CONFIG_UNCHANGED, timeout=WAIT)
        assert r.degraded is None
        assert r.snapshot.generation == 1


async def test_without_the_option_start_up_still_fails_fast(
    config_path: Path, registry: CollectorRegistry, tmp_path: Path, settings: SettingsSchema
) -> None:
    write_in_place(config_path, "model: [\n")
    with pytest.raises(ConfigParseError):
        async with reloader(config_path, registry, None, settings):
            pass


async def test_no_cached_copy_yet_fails_fast(
    config_path: Path, registry: CollectorRegistry, tmp_path: Path, settings: SettingsSchema
) -> None:
    write_in_place(config_path, "model: [\n")
    with pytest.raises(ConfigParseError):
        async with reloader(config_path, registry, tmp_path / "never-written.json", settings):
            pass


@pytest.mark.parametrize(
    "damage",
    ["not json", '{"source": "x"}', None],  # garbage, missing fields, content the schema refuses
)
async def test_a_damaged_cache_fails_fast_with_the_source_error(  # noqa: PLR0917
    config_path: Path,
    registry: CollectorRegistry,
    tmp_path: Path,
    logs: Logs,
    damage: str | None,
    settings: SettingsSchema,
) -> None:
    lkg = tmp_path / "lkg.json"
    async with reloader(config_path, registry, lkg, settings):
        pass
    if damage is None:
        data = cached(lkg)
        data["content"] = "retries: 3\n"  # valid YAML, but `model` is required
        lkg.write_text(json.dumps(data))
    else:
        lkg.write_text(damage)
    write_in_place(config_path, "model: [\n")
    with pytest.raises(ConfigParseError):
        async with reloader(config_path, registry, lkg, settings):
            pass
    assert any(e["event"] == "last_known_good_unusable" for e in logs)


async def test_an_unwritable_cache_never_fails_a_commit(
    config_path: Path,
    registry: CollectorRegistry,
    tmp_path: Path,
    logs: Logs,
    settings: SettingsSchema,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    async with reloader(
        config_path, registry, blocker / "lkg.json", settings
    ) as r:  # parent is a file
        write_in_place(config_path, "model: gpt-5\n")
        await r.wait_for_generation(2, timeout=WAIT)
    assert any(e["event"] == "last_known_good_write_failed" for e in logs)
