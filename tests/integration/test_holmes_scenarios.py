"""BR-HAPI-199's Gherkin scenarios, against a real ConfigMap-style volume and the real watcher."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry

from hotreload import ConfigParseError, Fields, ReloadResult, filter_by_stdlib_level
from hotreload.holmes import create_reloader, derive_llm_client
from hotreload.testing import ConfigMapVolume
from tests.conftest import MetricReader

BASE = """\
llm:
  provider: openai
  model: gpt-4
  endpoint: https://api.openai.com/v1
  api_key: sk-test-PLANTED-SECRET
  temperature: 0.2
toolsets:
  kubernetes: {enabled: true}
  prometheus: {enabled: true, url: "http://prometheus:9090"}
log_level: INFO
api_port: 8080
"""


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


@pytest.fixture
def volume(tmp_path: Path) -> ConfigMapVolume:
    return ConfigMapVolume(tmp_path / "holmes", {"config.yaml": BASE})


async def test_scenario_1_model_switch_without_restart(
    volume: ConfigMapVolume,
    registry: CollectorRegistry,
    logs: list[MutableMapping[str, Any]],
    restore_root_level: None,
) -> None:
    async with create_reloader(volume.path("config.yaml"), registry=registry) as r:
        assert r.config.llm.model == "gpt-4"
        volume.update({"config.yaml": edit(BASE, "model: gpt-4", "model: claude-3-5-sonnet")})
        snap = await r.wait_for_generation(2, timeout=5)
        assert snap.config.llm.model == "claude-3-5-sonnet"
        assert r.config is snap.config
    assert [
        e["changed"] for e in logs if e["event"] == "Configuration hot-reloaded successfully"
    ] == [["llm.model"]]


async def test_scenario_2_invalid_yaml_keeps_previous(
    volume: ConfigMapVolume,
    registry: CollectorRegistry,
    metric: MetricReader,
    logs: list[MutableMapping[str, Any]],
    restore_root_level: None,
) -> None:
    async with create_reloader(volume.path("config.yaml"), registry=registry) as r:
        before = r.snapshot
        volume.update({"config.yaml": BASE + "llm: [unclosed\n"})
        outcome = await r.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=5)
        assert isinstance(outcome.error, ConfigParseError)
        assert outcome.error.line == 13
        assert str(volume.path("config.yaml")) in str(outcome.error)
        assert r.snapshot is before  # the previous config stays in force, untouched
        assert metric("holmesgpt_config_last_reload_successful", config="holmesgpt-api") == 0
        assert (
            metric("holmesgpt_config_reload_failures_total", config="holmesgpt-api", reason="parse")
            == 1
        )
        # The service goes on: a later valid push is applied.
        volume.update({"config.yaml": edit(BASE, "gpt-4", "gpt-4o")})
        assert (await r.wait_for_generation(2, timeout=5)).config.llm.model == "gpt-4o"
    rejected = [
        e for e in logs if e["event"] == "Failed to apply new configuration - keeping previous"
    ]
    assert len(rejected) == 1
    assert rejected[0]["log_level"] == "error"
    assert rejected[0]["line"] == 13
    assert "PLANTED-SECRET" not in repr(logs)


async def test_scenario_3_provider_failover(
    volume: ConfigMapVolume, registry: CollectorRegistry, restore_root_level: None
) -> None:
    # BR-HAPI-199 swaps the provider live; the preset refuses it by default (issue 14's
    # identity rule, see hotreload.holmes.REFUSED), so this scenario opts back in.
    path = volume.path("config.yaml")
    async with create_reloader(path, registry=registry, fields=Fields()) as r:
        assert r.config.llm.provider == "openai"
        failover = edit(BASE, "provider: openai", "provider: vertex_ai")
        failover = edit(failover, "endpoint: https://api.openai.com/v1", "endpoint: null")
        volume.update({"config.yaml": failover})
        snap = await r.wait_for_generation(2, timeout=5)
        assert (snap.config.llm.provider, snap.config.llm.endpoint) == ("vertex_ai", None)


LOG_LEVEL = "log_level: {}\n"
LOGGING_LEVEL = "logging:\n  level: {}\n"  # the real service's files spell it this way


@pytest.mark.parametrize(
    ("spelling", "other"), [(LOG_LEVEL, LOGGING_LEVEL), (LOGGING_LEVEL, LOG_LEVEL)]
)
async def test_scenario_4_log_level_change_emits_debug_logs(
    volume: ConfigMapVolume,
    registry: CollectorRegistry,
    restore_root_level: None,
    spelling: str,
    other: str,
) -> None:
    """FR-4 through ``log_level`` and through ``logging.level``, which are one setting."""
    captured: list[str] = []

    def keep(_: Any, __: str, event_dict: Any) -> str:
        captured.append(event_dict["event"])
        raise structlog.DropEvent

    def text(form: str, level: str) -> str:
        return edit(BASE, "log_level: INFO\n", form.format(level))

    volume.update({"config.yaml": text(spelling, "INFO")})
    structlog.configure(processors=[filter_by_stdlib_level(), keep])
    try:
        app_log = structlog.get_logger("holmes")
        async with create_reloader(volume.path("config.yaml"), registry=registry) as r:
            assert logging.getLogger().level == logging.INFO
            app_log.debug("probe-before")
            volume.update({"config.yaml": text(spelling, "DEBUG")})
            await r.wait_for_generation(2, timeout=5)
            assert logging.getLogger().level == logging.DEBUG
            assert logging.getLogger("any.stdlib.logger").isEnabledFor(logging.DEBUG)
            app_log.debug("probe-after")
            volume.update({"config.yaml": text(other, "WARNING")})  # the other spelling
            await r.wait_for_generation(3, timeout=5)
            assert logging.getLogger().level == logging.WARNING
            assert (r.config.log_level, r.config.logging.level) == ("WARNING", "WARNING")
    finally:
        structlog.reset_defaults()
    assert "probe-before" not in captured
    assert "probe-after" in captured


async def test_scenario_5_hash_logged_and_counter_plus_one(
    volume: ConfigMapVolume,
    registry: CollectorRegistry,
    metric: MetricReader,
    logs: list[MutableMapping[str, Any]],
    restore_root_level: None,
) -> None:
    name = "holmesgpt-api"
    async with create_reloader(volume.path("config.yaml"), registry=registry) as r:
        assert metric("holmesgpt_config_reload_total", config=name) == 0
        old_hash = r.snapshot.config_hash
        volume.update({"config.yaml": edit(BASE, "temperature: 0.2", "temperature: 0.5")})
        snap = await r.wait_for_generation(2, timeout=5)
        # A re-check of the same content afterwards must not count again.
        assert (await r.reload()).result is ReloadResult.CONFIG_UNCHANGED
        assert metric("holmesgpt_config_reload_total", config=name) == 1
        assert metric("holmesgpt_config_generation", config=name) == 2
        assert metric("holmesgpt_config_info", config=name, config_hash=snap.config_hash) == 1
        assert metric("holmesgpt_config_info", config=name, config_hash=old_hash) is None
        assert metric("holmesgpt_config_reload_latency_seconds_count", config=name) == 1
        stamp = metric("holmesgpt_config_last_reload_success_timestamp_seconds", config=name)
        assert stamp == pytest.approx(snap.loaded_at.timestamp(), abs=1e-3)
    [event] = [e for e in logs if e["event"] == "Configuration hot-reloaded successfully"]
    assert event["config_hash"] == snap.config_hash
    assert event["previous_config_hash"] == old_hash
    assert event["generation"] == 2


async def test_restart_required_fields_keep_running_value(
    volume: ConfigMapVolume,
    registry: CollectorRegistry,
    metric: MetricReader,
    logs: list[MutableMapping[str, Any]],
    restore_root_level: None,
) -> None:
    name = "holmesgpt-api"
    async with create_reloader(volume.path("config.yaml"), registry=registry) as r:
        both = edit(BASE, "api_port: 8080", "api_port: 9090")
        both = edit(both, "model: gpt-4", "model: gpt-4o")
        volume.update({"config.yaml": both})
        snap = await r.wait_for_generation(2, timeout=5)
        assert (snap.config.api_port, snap.config.llm.model) == (8080, "gpt-4o")
        assert r.restart_required == ("api_port",)
        assert metric("holmesgpt_config_restart_required", config=name) == 1
        # Another live change with the same pending port: no second warning.
        volume.update({"config.yaml": edit(both, "temperature: 0.2", "temperature: 0.3")})
        await r.wait_for_generation(3, timeout=5)
        # Only the restart-required field changes again: nothing to apply, one more warning.
        third = edit(both, "temperature: 0.2", "temperature: 0.3").replace(
            "port: 9090", "port: 9191"
        )
        volume.update({"config.yaml": third})
        outcome = await r.wait_for_outcome(
            lambda o: o.trigger == "watch" and o.result is ReloadResult.CONFIG_UNCHANGED, timeout=5
        )
        assert outcome.restart_required == ("api_port",)
        assert r.config.api_port == 8080
        assert r.snapshot.generation == 3
        # Back to the running value: nothing pending any more.
        volume.update({"config.yaml": third.replace("port: 9191", "port: 8080")})
        await r.wait_for_outcome(lambda o: o.restart_required == (), timeout=5)
        assert metric("holmesgpt_config_restart_required", config=name) == 0
    warnings = [e for e in logs if e["event"] == "config_restart_required_field_changed"]
    assert [w["field"] for w in warnings] == ["api_port", "api_port"]


async def test_restart_required_subtree(
    volume: ConfigMapVolume, registry: CollectorRegistry, restore_root_level: None
) -> None:
    text = BASE + "kubernetes:\n  service_host: kubernetes.default.svc\n"
    volume.update({"config.yaml": text})
    async with create_reloader(volume.path("config.yaml"), registry=registry) as r:
        volume.update({"config.yaml": edit(text, "host: kubernetes.default", "host: other")})
        outcome = await r.wait_for_outcome(
            lambda o: o.restart_required == ("kubernetes",), timeout=5
        )
        assert outcome.result is ReloadResult.CONFIG_UNCHANGED
        assert r.config.kubernetes.service_host == "kubernetes.default.svc"


async def test_data_storage_url_is_restart_required_its_timeout_is_live(
    volume: ConfigMapVolume, registry: CollectorRegistry, restore_root_level: None
) -> None:
    text = BASE + "data_storage:\n  url: http://ds:8080\n  timeout: 60\n"
    volume.update({"config.yaml": text})
    async with create_reloader(volume.path("config.yaml"), registry=registry) as r:
        changed = edit(edit(text, "http://ds:8080", "http://ds2:8080"), "timeout: 60", "timeout: 5")
        volume.update({"config.yaml": changed})
        snap = await r.wait_for_generation(2, timeout=5)
        assert (snap.config.data_storage.url, snap.config.data_storage.timeout) == (
            "http://ds:8080",
            5.0,
        )
        assert r.restart_required == ("data_storage.url",)


async def test_the_preset_refuses_a_provider_change_and_derives_an_llm_client(
    volume: ConfigMapVolume, registry: CollectorRegistry, restore_root_level: None
) -> None:
    """Issue 14: the provider is the client's identity, so a change of it refuses the whole new
    version (nothing of it applies); other ``llm.*`` changes rebuild the derived client."""
    reloader = create_reloader(volume.path("config.yaml"), registry=registry)
    client = derive_llm_client(reloader)
    async with reloader as r:
        first = client.current
        assert str(first.base_url) == "https://api.openai.com/v1/"
        assert first.headers["authorization"].startswith("Bearer ")
        failover = edit(BASE, "provider: openai", "provider: vertex_ai")
        volume.update({"config.yaml": edit(failover, "model: gpt-4", "model: gemini")})
        outcome = await r.wait_for_outcome(ReloadResult.ERROR, timeout=5)
        assert outcome.refused == ("llm.provider",)
        assert (r.config.llm.provider, r.config.llm.model, client.current) == (
            "openai",
            "gpt-4",
            first,
        )
        volume.update({"config.yaml": edit(BASE, "https://api.openai.com/v1", "http://proxy/v1")})
        await r.wait_for_generation(2, timeout=5)
        assert str(client.current.base_url) == "http://proxy/v1/"
        await client.wait_drained(timeout=5)
        assert first.is_closed
    assert client.current.is_closed
