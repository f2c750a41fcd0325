"""The service's own ConfigManager tests (tests/unit/test_config_manager.py, test_hot_reload.py
at f1b9cb2), ported to the preset through the public API: real files, the real watcher.

Each test names the original it ports. Where the original waited with a fixed sleep to show
that nothing happens (hot reload disabled), a reloader that does watch the same file is the
witness: once it has seen the change, the static one would have too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from hotreload import FileSource, HotReloader, ReloadResult
from hotreload._watch import hub_for
from hotreload.holmes import ApiConfig, create_reloader
from tests.conftest import MetricReader

NAME = "holmesgpt-api"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    directory = tmp_path / "holmesgpt"
    directory.mkdir()
    return directory / "config.yaml"


@pytest.fixture(autouse=True)
def _root_level(restore_root_level: None) -> None:
    """Every test here may set the root logger's level through the config."""


async def test_loads_initial_config_with_toolset_names(
    config_file: Path, registry: CollectorRegistry
) -> None:
    """test_config_manager_loads_initial_config, test_app_starts_with_config_manager."""
    config_file.write_text(
        "llm:\n  model: gpt-4\n  provider: openai\n  temperature: 0.7\n"
        "toolsets:\n  kubernetes/core: {}\nlog_level: DEBUG\n"
    )
    async with create_reloader(config_file, registry=registry) as reloader:
        config = reloader.config
        assert (config.llm.model, config.llm.provider, config.llm.temperature) == (
            "gpt-4",
            "openai",
            0.7,
        )
        assert "kubernetes/core" in config.toolsets
        assert config.log_level == "DEBUG"
        assert logging.getLogger().level == logging.DEBUG


async def test_minimal_file_gets_defaults(config_file: Path, registry: CollectorRegistry) -> None:
    """test_config_manager_uses_defaults_for_missing_fields."""
    config_file.write_text("llm:\n  model: claude-3\n")
    async with create_reloader(config_file, registry=registry) as reloader:
        llm = reloader.config.llm
        assert llm.model == "claude-3"
        assert (llm.provider, llm.max_retries, llm.timeout_seconds) == ("openai", 3, 60)
        assert reloader.config.log_level == "INFO"


async def test_stop_twice(config_file: Path, registry: CollectorRegistry) -> None:
    """test_config_manager_stop_cleanup: stopping again is harmless."""
    config_file.write_text("llm:\n  model: test\n")
    reloader = create_reloader(config_file, registry=registry)
    await reloader.__aenter__()
    assert isinstance(reloader.source, FileSource)
    assert (
        str(config_file.parent)
        in hub_for(reloader.source.debounce_ms, reloader.source.step_ms).watched
    )
    await reloader.__aexit__(None, None, None)
    await reloader.__aexit__(None, None, None)
    with pytest.raises(RuntimeError, match="not running"):
        await reloader.reload()


GETTERS = """\
llm:
  model: gpt-4-turbo
  provider: vertex_ai
  endpoint: http://custom-endpoint:8080
  max_retries: 5
  timeout_seconds: 120
  temperature: 0.5
  max_tokens_per_request: 8192
toolsets:
  kubernetes/core: {}
  kubernetes/logs: {}
  workflow/catalog:
    enabled: true
log_level: DEBUG
"""


async def test_getters(config_file: Path, registry: CollectorRegistry) -> None:
    """TestConfigManagerGetters (its fixture disables hot reload: so does this one).

    get_llm_model() and friends are plain attribute reads of the config in force."""
    config_file.write_text(GETTERS)
    async with create_reloader(config_file, registry=registry, watch=False) as reloader:
        llm = reloader.config.llm
        assert llm.model == "gpt-4-turbo"
        assert llm.provider == "vertex_ai"
        assert llm.endpoint == "http://custom-endpoint:8080"
        assert llm.max_retries == 5
        assert llm.timeout_seconds == 120
        assert llm.temperature == 0.5
        toolsets = reloader.config.toolsets
        assert {"kubernetes/core", "kubernetes/logs", "workflow/catalog"} <= set(toolsets)
        assert toolsets["workflow/catalog"]["enabled"] is True
        assert reloader.config.log_level == "DEBUG"
        raw = msgspec.to_builtins(reloader.config)  # get_raw_config()
        assert raw["llm"]["model"] == "gpt-4-turbo"
        assert "toolsets" in raw


async def test_reload_updates_values(config_file: Path, registry: CollectorRegistry) -> None:
    """test_config_reload_updates_values, test_config_reload_reflects_in_getters."""
    config_file.write_text(
        "llm:\n  model: gpt-4\n  temperature: 0.7\ntoolsets:\n  kubernetes/core: {}\n"
    )
    async with create_reloader(config_file, registry=registry) as reloader:
        assert (reloader.config.llm.model, reloader.config.llm.temperature) == ("gpt-4", 0.7)
        config_file.write_text(
            "llm:\n  model: claude-3-5-sonnet\n  temperature: 0.3\n"
            "toolsets:\n  kubernetes/core: {}\n  workflow/catalog: {}\n"
        )
        await reloader.wait_for_generation(2, timeout=5)
        assert reloader.config.llm.model == "claude-3-5-sonnet"
        assert reloader.config.llm.temperature == 0.3
        assert "workflow/catalog" in reloader.config.toolsets


async def test_invalid_yaml_keeps_previous_then_recovers(
    config_file: Path, registry: CollectorRegistry, metric: MetricReader
) -> None:
    """test_invalid_yaml_keeps_previous_config, test_graceful_degradation_on_invalid_yaml."""
    config_file.write_text("llm:\n  model: initial-model\n")
    async with create_reloader(config_file, registry=registry) as reloader:
        config_file.write_text("invalid: yaml: syntax: {{")
        outcome = await reloader.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=5)
        assert outcome.error is not None
        assert (outcome.error.line, outcome.error.column) == (1, 14)  # type: ignore[attr-defined]
        assert reloader.config.llm.model == "initial-model"
        errors = metric("holmesgpt_config_reload_failures_total", config=NAME, reason="parse")
        assert errors == 1  # error_count
        config_file.write_text("llm:\n  model: recovered-model\n")
        await reloader.wait_for_generation(2, timeout=5)
        assert reloader.config.llm.model == "recovered-model"


async def test_concurrent_reads_from_threads_see_whole_versions(
    config_file: Path, registry: CollectorRegistry
) -> None:
    """test_concurrent_reads_are_safe, made harder: five threads read while the config changes
    under them, and every read is one whole version (model and endpoint belong together).
    The provider stays: the preset refuses a change of it (`hotreload.holmes.REFUSED`)."""
    versions = [(f"model-{n}", f"http://llm-{n}:8080") for n in range(6)]

    def text(n: int) -> str:
        model, endpoint = versions[n]
        return f"llm:\n  model: {model}\n  provider: openai\n  endpoint: {endpoint}\n"

    config_file.write_text(text(0))
    async with create_reloader(config_file, registry=registry) as reloader:
        stop = threading.Event()
        seen: list[list[tuple[str, str]]] = [[] for _ in range(5)]
        errors: list[BaseException] = []

        def read(mine: list[tuple[str, str]]) -> None:
            try:
                while True:
                    stopping = stop.is_set()
                    llm = reloader.config.llm  # one reference read: one version
                    mine.append((llm.model, llm.endpoint or ""))
                    if stopping:
                        return
                    stop.wait(0.0005)  # sleep-ok: pace the reader, not a synchronisation
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)

        threads = [threading.Thread(target=read, args=(mine,)) for mine in seen]
        for thread in threads:
            thread.start()
        try:
            for n in range(1, len(versions)):
                config_file.write_text(text(n))
                await reloader.wait_for_generation(n + 1, timeout=5)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
    assert errors == []
    for mine in seen:
        assert mine, "every thread read"
        assert set(mine) <= set(versions), "a read mixed two versions"
        assert mine[-1] == versions[-1]  # the last read, after the last commit, is current


async def test_reload_count_and_hash_change(
    config_file: Path, registry: CollectorRegistry, metric: MetricReader
) -> None:
    """test_reload_count_increments, test_last_hash_updates."""
    config_file.write_text("llm:\n  model: v1\n")
    async with create_reloader(config_file, registry=registry) as reloader:
        before = reloader.snapshot
        assert len(before.content_sha256) == len(before.config_hash) == 64
        assert metric("holmesgpt_config_reload_total", config=NAME) == 0
        config_file.write_text("llm:\n  model: v2\n")
        after = await reloader.wait_for_generation(2, timeout=5)
        assert metric("holmesgpt_config_reload_total", config=NAME) == 1
        assert after.config_hash != before.config_hash
        assert after.content_sha256 != before.content_sha256


async def test_hot_reload_disabled_loads_once_and_reload_still_works(
    config_file: Path, registry: CollectorRegistry
) -> None:
    """test_disable_hot_reload, test_hot_reload_disabled_via_env: ``watch=False`` loads once;
    no watcher, no poll; ``reload()`` still re-reads the file."""
    config_file.write_text("llm:\n  model: static\n")
    hub_watched = hub_for(50, 10)
    static = HotReloader(
        config_file, schema=ApiConfig, name="static", registry=registry, watch=False,
        poll_interval=0.05,
    )  # fmt: skip
    async with static:
        assert static.watch is False
        assert str(config_file.parent) not in hub_for(50, 10).watched  # no watcher
        witness = HotReloader(
            config_file, schema=ApiConfig, name="witness", registry=registry, poll_interval=0.05
        )
        async with witness:
            assert str(config_file.parent) in hub_watched.watched  # the control has one
            for _ in range(3):  # the witness's poll runs; the static one's would have too
                await witness.wait_for_outcome(lambda o: o.trigger == "poll", timeout=5)
            config_file.write_text("llm:\n  model: changed\n")
            await witness.wait_for_generation(2, timeout=5)
            for _ in range(2):
                await witness.wait_for_outcome(lambda o: o.trigger == "poll", timeout=5)
        assert static.config.llm.model == "static"
        assert static.last_outcome is not None
        assert static.last_outcome.trigger == "initial"  # not one poll, not one event
        outcome = await static.reload()
        assert (outcome.result, outcome.generation) == (ReloadResult.CONFIG_CHANGED, 2)
        assert static.config.llm.model == "changed"


@pytest.mark.parametrize(("value", "watch"), [("false", False), ("TRUE", True), (None, True)])
async def test_preset_honours_the_services_env_switch(
    config_file: Path,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    value: str | None,
    watch: bool,
) -> None:
    """HOT_RELOAD_ENABLED=false (the service's switch) means watch=False; CONFIG_FILE is the
    path, as in the service."""
    config_file.write_text("llm:\n  model: static-model\n")
    monkeypatch.setenv("CONFIG_FILE", str(config_file))
    if value is None:
        monkeypatch.delenv("HOT_RELOAD_ENABLED", raising=False)
    else:
        monkeypatch.setenv("HOT_RELOAD_ENABLED", value)
    async with create_reloader(registry=registry) as reloader:
        assert reloader.path == str(config_file)
        assert reloader.watch is watch
        assert (str(config_file.parent) in hub_for(50, 10).watched) is watch


def test_an_invalid_env_switch_stops_start_up(config_file: Path) -> None:
    with pytest.raises(ValueError, match="HOT_RELOAD_ENABLED must be true or false"):
        create_reloader(config_file, environ={"HOT_RELOAD_ENABLED": "nope"})


async def test_a_reload_logs_a_new_set_of_unknown_keys_once(
    config_file: Path, registry: CollectorRegistry, logs: list[MutableMapping[str, Any]]
) -> None:
    config_file.write_text("llm:\n  model: gpt-4\n")
    async with create_reloader(config_file, registry=registry) as reloader:
        assert not reloader.unknown_keys
        # The typo changes nothing in the config (temperature keeps its default), so this
        # version is config_unchanged: the unknown key is the only sign of it.
        config_file.write_text("llm:\n  model: gpt-4\n  temprature: 0.2\n")
        await reloader.wait_for_outcome(lambda o: reloader.unknown_keys != (), timeout=5)
        assert reloader.unknown_keys == ("llm.temprature",)
        assert (await reloader.reload()).result is ReloadResult.CONFIG_UNCHANGED  # same set
        config_file.write_text("llm:\n  model: gpt-4o\n  temprature: 0.2\n")  # same set again
        await reloader.wait_for_generation(2, timeout=5)
        config_file.write_text("llm:\n  model: gpt-4o\n  temprature: 0.2\nextra: 1\n")
        await reloader.wait_for_outcome(lambda o: len(reloader.unknown_keys) == 2, timeout=5)
        config_file.write_text("llm:\n  model: gpt-4o\n")  # fixed: nothing more to say
        await reloader.wait_for_outcome(lambda o: reloader.unknown_keys == (), timeout=5)
    warnings = [e for e in logs if e["event"] == "config_unknown_keys"]
    assert [w["keys"] for w in warnings] == [
        ["unknown key `llm.temprature` (line 3): did you mean `llm.temperature`?"],
        [
            "unknown key `llm.temprature` (line 3): did you mean `llm.temperature`?",
            "unknown key `extra` (line 4)",
        ],
    ]


async def test_strict_refuses_unknown_keys_and_keeps_the_previous_config(
    config_file: Path, registry: CollectorRegistry
) -> None:
    config_file.write_text("llm:\n  model: gpt-4\n  temperature: 0.2\n")
    async with create_reloader(config_file, registry=registry, strict=True) as reloader:
        config_file.write_text("llm:\n  model: gpt-4o\n  temprature: 0.5\n")
        outcome = await reloader.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=5)
        error = outcome.error
        assert error is not None
        assert error.reason == "unknown_key"
        assert (error.field_path, error.line) == ("llm.temprature", 3)  # type: ignore[attr-defined]
        assert "did you mean `llm.temperature`?" in str(error)
        assert (reloader.config.llm.model, reloader.config.llm.temperature) == ("gpt-4", 0.2)
    config_file.write_text("llm:\n  model: gpt-4\n  temprature: 0.2\n")
    with pytest.raises(Exception, match="unknown field `temprature`"):
        async with create_reloader(config_file, registry=registry, strict=True):
            pass
