"""The HotReloader contract: fail fast, formats, validators, streams, lifecycle."""

from __future__ import annotations

import asyncio
import errno
import threading
from pathlib import Path
from typing import Any

import msgspec
import pydantic
import pytest
from prometheus_client import CollectorRegistry

from hotreload import (
    ConfigError,
    ConfigNotFoundError,
    ConfigParseError,
    ConfigReadError,
    ConfigValidationError,
    HotReloader,
    ReloadResult,
)
from hotreload.testing import write_in_place
from tests.conftest import MetricReader
from tests.integration.conftest import AnySettings, SettingsSchema


def watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "hotreload-watch"]


@pytest.mark.parametrize(
    ("text", "error", "where"),
    [
        ("model: [\n", ConfigParseError, ":2:1:"),
        ("model: gpt-4\nretries: many\n", ConfigValidationError, ":2:10:"),
        ("model: gpt-4\nunknown: 1\n", ConfigValidationError, ":2:1:"),
    ],
)
async def test_invalid_file_at_start_fails_fast_and_leaves_nothing(  # noqa: PLR0917
    config_path: Path,
    registry: CollectorRegistry,
    metric: MetricReader,
    text: str,
    error: type[Exception],
    where: str,
    settings: SettingsSchema,
) -> None:
    config_path.write_text(text)
    with pytest.raises(error) as caught:
        async with HotReloader(config_path, schema=settings, name="bad", registry=registry):
            pytest.fail("must not start on an invalid file")
    assert str(caught.value).startswith(f"{config_path}{where}")
    assert watch_threads() == []
    assert metric("hotreload_config_reload_total", config="bad") is None
    # The name is free again: a fixed file starts.
    config_path.write_text("model: gpt-4\n")
    async with HotReloader(config_path, schema=settings, name="bad", registry=registry) as r:
        assert r.config == settings(model="gpt-4")


async def test_missing_file_at_start_is_a_read_error(
    tmp_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    with pytest.raises(ConfigReadError) as caught:
        async with HotReloader(tmp_path / "absent.yaml", schema=settings, registry=registry):
            pytest.fail("must not start")
    assert caught.value.reason == "missing"


async def test_missing_file_is_also_a_file_not_found_error(
    tmp_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    # Code written as `except FileNotFoundError` around loading the config keeps working.
    absent = tmp_path / "absent.yaml"
    with pytest.raises(FileNotFoundError) as caught:
        async with HotReloader(absent, schema=settings, registry=registry):
            pytest.fail("must not start")
    error = caught.value
    assert isinstance(error, ConfigNotFoundError)
    assert isinstance(error, ConfigReadError)
    assert isinstance(error, ConfigError)
    assert (error.reason, error.source, error.filename) == ("missing", str(absent), str(absent))
    assert error.errno == errno.ENOENT
    assert str(error) == f"{absent}: file not found"
    # Only the missing case: an unreadable file (a directory here) is not one.
    with pytest.raises(ConfigReadError) as other:
        async with HotReloader(tmp_path, schema=settings, registry=registry):
            pytest.fail("must not start")
    assert other.value.reason == "read"
    assert not isinstance(other.value, FileNotFoundError)
    # A required layer that is missing is one too.
    with pytest.raises(FileNotFoundError) as layered:
        async with HotReloader([absent], env_prefix="APP_", schema=settings, registry=registry):
            pytest.fail("must not start")
    assert isinstance(layered.value, ConfigNotFoundError)


class MutableStruct(msgspec.Struct):
    model: str


class MutableModel(pydantic.BaseModel):
    model: str


@pytest.mark.parametrize("mutable", [MutableStruct, MutableModel], ids=["msgspec", "pydantic"])
def test_mutable_schema_is_refused(mutable: type[Any]) -> None:
    with pytest.raises(TypeError, match="frozen=True"):
        HotReloader("x.yaml", schema=mutable)


@pytest.mark.parametrize(
    ("name", "first", "second", "broken"),
    [
        ("config.json", '{"model": "gpt-4"}', '{"model": "gpt-4o", "retries": 5}', '{"model": '),
        ("config.toml", 'model = "gpt-4"\n', 'model = "gpt-4o"\nretries = 5\n', "model = \n"),
    ],
)
async def test_json_and_toml_go_through_the_same_pipeline(  # noqa: PLR0917
    tmp_path: Path,
    registry: CollectorRegistry,
    name: str,
    first: str,
    second: str,
    broken: str,
    settings: SettingsSchema,
) -> None:
    path = tmp_path / name
    path.write_text(first)
    async with HotReloader(path, schema=settings, name=name, registry=registry) as r:
        assert r.config == settings(model="gpt-4")
        path.write_text(second)
        snap = await r.wait_for_generation(2, timeout=5)
        assert snap.config == settings(model="gpt-4o", retries=5)
        path.write_text(broken)
        outcome = await r.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=5)
        assert isinstance(outcome.error, ConfigParseError)
        assert outcome.error.line == 1
        assert r.config == settings(model="gpt-4o", retries=5)


async def test_validator_refusal_keeps_previous_and_reports_it(
    config_path: Path, registry: CollectorRegistry, metric: MetricReader, settings: SettingsSchema
) -> None:
    def no_gpt5(config: AnySettings) -> None:
        if config.model.startswith("gpt-5"):
            raise ValueError("gpt-5 is not approved here")

    def crashes(config: AnySettings) -> None:
        if config.retries == 13:
            raise KeyError("unlucky")

    async with HotReloader(
        config_path, schema=settings, name="v", registry=registry, validators=[no_gpt5, crashes]
    ) as r:
        config_path.write_text("model: gpt-5\n")
        outcome = await r.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=5)
        assert isinstance(outcome.error, ConfigValidationError)
        assert outcome.error.reason == "validator"
        assert "gpt-5 is not approved here" in str(outcome.error)
        config_path.write_text("model: gpt-4\nretries: 13\n")
        outcome = await r.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=5)
        assert "unlucky" in str(outcome.error)
        config_path.write_text("model: gpt-4o\n")
        assert (await r.wait_for_generation(2, timeout=5)).config.model == "gpt-4o"
        failures = metric("hotreload_config_reload_failures_total", config="v", reason="validator")
        assert failures == 2


async def test_large_file_is_parsed_off_the_loop_and_still_applied(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    padding = "# " + "x" * 200 + "\n"
    big = padding * 400  # ~80 KB: over the inline-parse threshold
    config_path.write_text(big + "model: gpt-4\n")
    async with HotReloader(config_path, schema=settings, name="big", registry=registry) as r:
        config_path.write_text(big + "model: gpt-4o\n")
        assert (await r.wait_for_generation(2, timeout=5)).config.model == "gpt-4o"


async def test_oversized_file_is_refused(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with HotReloader(
        config_path, schema=settings, name="cap", registry=registry, max_bytes=64
    ) as r:
        config_path.write_text("model: gpt-4o\n" + "#" * 100 + "\n")
        outcome = await r.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=5)
        assert isinstance(outcome.error, ConfigReadError)
        assert outcome.error.reason == "too_large"
        assert r.config.model == "gpt-4"


async def test_manual_reload_reports_each_result(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with HotReloader(
        config_path, schema=settings, name="m", registry=registry, poll_interval=0
    ) as r:
        assert (await r.reload()).result is ReloadResult.CONFIG_UNCHANGED
        config_path.write_text("model: gpt-4o\n")
        outcome = await r.reload()
        # The watcher may have committed it first; either way it is in force now.
        assert r.config.model == "gpt-4o"
        assert outcome.generation == 2
        config_path.unlink()
        outcome = await r.reload()
        assert outcome.result is ReloadResult.ERROR
        assert isinstance(outcome.error, ConfigReadError)
        assert not outcome.ok


async def test_streams_end_and_reload_refuses_after_close(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with HotReloader(config_path, schema=settings, name="s", registry=registry) as r:
        changes, outcomes = r.changes(), r.outcomes()
        config_path.write_text("model: gpt-4o\n")
        first = await changes.__anext__()
        assert first.generation == 2
    assert [snap async for snap in changes] == []
    seen = [o async for o in outcomes]  # maybe the start-up rescan, then the commit; then it ends
    assert [o.generation for o in seen if o.applied] == [2]
    with pytest.raises(RuntimeError, match="not running"):
        await r.reload()


async def test_two_open_reloaders_may_not_share_a_name(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with HotReloader(config_path, schema=settings, name="t", registry=registry):
        twin = HotReloader(config_path, schema=settings, name="t", registry=registry)
        with pytest.raises(ValueError, match="already open"):
            await twin.__aenter__()


async def test_reloaders_close_in_any_order_and_from_any_task(
    tmp_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    """A service may open reloaders in one task and close them in any order, or from another
    task (a lifespan's shutdown, say): no cancel scope is held across enter and exit."""
    paths = []
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"model: {name}\n")
        paths.append(path)
    a, b, c = (HotReloader(p, schema=settings, name=p.stem, registry=registry) for p in paths)
    for r in (a, b, c):
        await r.__aenter__()
    await a.__aexit__(None, None, None)  # first in, first out
    await asyncio.create_task(c.__aexit__(None, None, None))  # from another task
    write_in_place(paths[1], "model: b2\n")
    await b.wait_for_generation(2, timeout=5)  # the one left is unaffected
    await b.__aexit__(None, None, None)
    assert [r.config.model for r in (a, b, c)] == ["a", "b2", "c"]
    for r in (a, c):
        with pytest.raises(RuntimeError, match="not running"):
            await r.reload()
