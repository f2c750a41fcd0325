"""`ApiConfig` against the real service's schema: its sections, defaults, bounds and policy."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from hotreload._fields import FieldPolicy
from hotreload._unknown import find_unknown
from hotreload.holmes import ApiConfig, LLMConfig, duration_seconds

#: The service's ``ConfigManager.DEFAULTS`` (src/config/hot_reload.py at f1b9cb2), verbatim.
CONFIG_MANAGER_DEFAULTS: dict[str, Any] = {
    "llm": {
        "model": "gpt-4",
        "provider": "openai",
        "endpoint": None,
        "max_retries": 3,
        "timeout_seconds": 60,
        "temperature": 0.7,
        "max_tokens_per_request": 4096,
    },
    "toolsets": {},
    "log_level": "INFO",
    "service_name": "holmesgpt-api",
    "version": "1.0.0",
}

FULL: dict[str, Any] = {
    "llm": {
        "provider": "openai",
        "model": "gpt-4o",
        "endpoint": "https://llm.internal/v1",
        "max_retries": 5,
        "timeout_seconds": 120,
        "temperature": 0.2,
        "max_tokens_per_request": 8192,
        "api_key": "sk-test",
    },
    "toolsets": {"kubernetes/core": {"enabled": True}, "prometheus": {"url": "http://prom:9090"}},
    "log_level": "DEBUG",
    "api_host": "10.0.0.7",
    "api_port": 8443,
    "auth_enabled": False,
    "kubernetes": {"service_host": "k8s.internal", "in_cluster": True},
    "data_storage": {"url": "http://data-storage:8080", "timeout": 30},
}


def holmes(data: dict[str, Any]) -> ApiConfig:
    return msgspec.convert(data, ApiConfig, strict=True)


def test_converts_every_section() -> None:
    config = holmes(FULL)
    assert config.llm == LLMConfig(
        provider="openai",
        model="gpt-4o",
        endpoint="https://llm.internal/v1",
        max_retries=5,
        timeout_seconds=120,
        temperature=0.2,
        max_tokens_per_request=8192,
        api_key="sk-test",
    )
    assert config.toolsets["prometheus"] == {"url": "http://prom:9090"}
    assert (config.log_level, config.logging.level) == ("DEBUG", "DEBUG")
    assert (config.api_host, config.api_port, config.auth_enabled) == ("10.0.0.7", 8443, False)
    assert config.kubernetes.service_host == "k8s.internal"
    assert (config.data_storage.url, config.data_storage.timeout) == (
        "http://data-storage:8080",
        30.0,
    )


def test_defaults_are_the_services_config_manager_defaults() -> None:
    """An empty document is refused by the parser (a ConfigMap emptied by mistake must not
    reset the service), so the defaults are read off a file that sets nothing they cover."""
    config = msgspec.to_builtins(holmes({"dev_mode": False}))
    for key, value in CONFIG_MANAGER_DEFAULTS.items():
        if isinstance(value, dict):
            assert {k: config[key][k] for k in value} == value, key
        else:
            assert config[key] == value, key


def test_minimal_file_gets_the_services_defaults() -> None:
    """test_config_manager_uses_defaults_for_missing_fields: `llm: {model: claude-3}`."""
    config = holmes({"llm": {"model": "claude-3"}})
    assert config.llm.model == "claude-3"
    assert (config.llm.provider, config.llm.max_retries, config.llm.timeout_seconds) == (
        "openai",
        3,
        60,
    )
    assert (config.llm.temperature, config.llm.max_tokens_per_request) == (0.7, 4096)
    assert config.log_level == "INFO"
    assert (config.api_port, config.auth_enabled, config.dev_mode) == (8080, True, False)
    assert config.metrics.scrape_interval_seconds == 30.0
    assert config.public_endpoints == ("/health", "/ready", "/metrics")


@pytest.mark.parametrize(
    ("data", "level"),
    [
        ({"log_level": "DEBUG"}, "DEBUG"),
        ({"logging": {"level": "DEBUG"}}, "DEBUG"),
        ({"log_level": "ERROR", "logging": {"level": "ERROR"}}, "ERROR"),
        ({"logging": {}}, "INFO"),
    ],
)
def test_log_level_and_logging_level_are_one_setting(data: dict[str, Any], level: str) -> None:
    config = holmes(data)
    assert (config.log_level, config.logging.level) == (level, level)
    # The same setting written either way is the same config (same canonical hash).
    assert msgspec.to_builtins(config) == msgspec.to_builtins(holmes({"log_level": level}))


def test_log_level_and_logging_level_that_differ_are_refused_naming_both() -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        holmes({"log_level": "INFO", "logging": {"level": "DEBUG"}})
    assert "log_level (INFO)" in str(caught.value)
    assert "logging.level (DEBUG)" in str(caught.value)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"llm": {"temperature": 5.0}}, r"\$\.llm\.temperature"),
        ({"llm": {"max_retries": -1}}, r"\$\.llm\.max_retries"),
        ({"log_level": "VERBOSE"}, r"\$\.log_level"),
        ({"logging": {"level": "LOUD"}}, r"\$\.logging\.level"),
        ({"api_port": 70000}, r"\$\.api_port"),
        ({"kubernetes": {"service_port": 0}}, r"\$\.kubernetes\.service_port"),
        ({"data_storage": {"url": "data-storage:8080"}}, r"\$\.data_storage\.url"),
        ({"data_storage": {"timeout": 0}}, r"\$\.data_storage\.timeout"),
        ({"audit": {"buffer_size": 0}}, r"\$\.audit\.buffer_size"),
        ({"audit": {"buffer_size": 10, "batch_size": 50}}, r"audit\.batch_size \(50\)"),
        ({"prompt": {"confidence_threshold_human_review": 1.5}}, r"confidence_threshold"),
        ({"metrics": {"scrape_interval": "30"}}, r"metrics\.scrape_interval"),
        ({"metrics": {"scrape_interval": "0s"}}, r"metrics\.scrape_interval"),
        ({"metrics": {"enabled": "yes"}}, r"\$\.metrics\.enabled"),
        ({"public_endpoints": ["health"]}, r"\$\.public_endpoints\[0\]"),
        ({"dev_mode": "false"}, r"\$\.dev_mode"),
        ({"toolsets": ["kubernetes/core"]}, r"\$\.toolsets"),
    ],
)
def test_known_keys_keep_strict_types_and_bounds(data: dict[str, Any], where: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=where):
        holmes(data)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), ("1.5s", 1.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["30", "30x", "-1s", "s", "", "1m 30s"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds(text)


def test_field_policy_follows_the_spec() -> None:
    policy = FieldPolicy(ApiConfig)
    assert set(policy.restart_required) == {
        ("api_host",),
        ("api_port",),
        ("auth_enabled",),
        ("kubernetes",),
        ("data_storage", "url"),
        ("tls",),
    }
    assert ("llm", "api_key") in policy.secrets
    assert policy.restart_root(("kubernetes", "service_host")) == ("kubernetes",)
    assert policy.restart_root(("data_storage", "url")) == ("data_storage", "url")
    assert policy.restart_root(("data_storage", "timeout")) is None
    for live in [("llm", "model"), ("toolsets", "prometheus"), ("log_level",), ("logging",)]:
        assert policy.restart_root(live) is None


def test_unknown_keys_are_named_with_a_suggestion_not_refused() -> None:
    data = {
        "llm": {"model": "gpt-4", "temprature": 0.2},
        "loging": {"level": "DEBUG"},
        "toolsets": {"kubernetes/core": {"anything": 1}},  # free-form: never "unknown"
        "brand_new_section": {"x": 1},
    }
    config = holmes(data)  # not fatal
    assert config.llm.temperature == 0.7  # the typo'd value silently kept its default...
    found = {key.dotted: key.suggestion for key in find_unknown(ApiConfig, data)}
    assert found == {  # ...which is why it is named
        "llm.temprature": "llm.temperature",
        "loging": "logging",
        "brand_new_section": None,
    }
