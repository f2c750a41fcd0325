"""``config.yaml`` + ``sdk-config.yaml`` (Issue #390), merged at every reload as the service's
ConfigManager did (``merge_sdk_config``, jordigilh/kubernaut ba67a288): real files, kubelet-style
volumes and the real watcher."""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hotreload import (
    ConfigParseError,
    ConfigRefusedError,
    ConfigValidationError,
    HotReloader,
    ReloadOutcome,
    ReloadResult,
)
from hotreload.holmes import ApiConfig, ServiceLayers, create_reloader
from hotreload.testing import ConfigMapVolume, write_atomic
from tests.conftest import MetricReader

WAIT = 10.0
Logs = list[MutableMapping[str, Any]]
DATA = Path(__file__).parent / "data"

MAIN = """\
log_level: INFO
llm:
  model: from-main
  temperature: 0.2
toolsets:
  kubernetes/core: {enabled: true}
  prometheus/metrics:
    enabled: true
    config: {prometheus_url: "http://main:9090", timeout: 5}
"""
SDK = """\
llm:
  provider: openai
  model: from-sdk
toolsets:
  prometheus/metrics:
    enabled: true
    config: {prometheus_url: "http://sdk:9090"}
mcp_servers: {}
"""


@pytest.fixture(autouse=True)
def _root_level(restore_root_level: None) -> None:
    """The config's log_level sets the root logger's level."""


@pytest.fixture
def pod(tmp_path: Path) -> tuple[ConfigMapVolume, ConfigMapVolume]:
    """The chart's layout: the service's ConfigMap at /etc/holmesgpt, the SDK's at .../sdk."""
    main = ConfigMapVolume(tmp_path / "holmesgpt", {"config.yaml": MAIN})
    sdk = ConfigMapVolume(tmp_path / "holmesgpt" / "sdk", {"sdk-config.yaml": SDK})
    return main, sdk


def paths(pod: tuple[ConfigMapVolume, ConfigMapVolume]) -> tuple[Path, Path]:
    return pod[0].path("config.yaml"), pod[1].path("sdk-config.yaml")


async def rejected(reloader: HotReloader[ApiConfig]) -> ReloadOutcome:
    """The rejection of the bad SDK file by the re-check after start (it may be done)."""
    last = reloader.last_outcome
    if last is not None and last.result is ReloadResult.VALIDATION_FAILED:
        return last
    return await reloader.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=WAIT)


async def test_the_sdk_file_wins_one_level_deep_and_only_its_three_keys(
    pod: tuple[ConfigMapVolume, ConfigMapVolume], registry: CollectorRegistry, logs: Logs
) -> None:
    main, sdk = paths(pod)
    pod[1].update({"sdk-config.yaml": SDK + "log_level: DEBUG\n"})
    async with create_reloader(main, sdk_config=sdk, registry=registry) as r:
        assert isinstance(r.source, ServiceLayers)
        config = r.config
        # llm: config["llm"].update(sdk["llm"]): the SDK's keys win, the main file's others stay
        assert (config.llm.model, config.llm.temperature) == ("from-sdk", 0.2)
        # toolsets: an SDK entry replaces the main file's entry of that name whole
        assert config.toolsets == {
            "kubernetes/core": {"enabled": True},
            "prometheus/metrics": {
                "enabled": True,
                "config": {"prometheus_url": "http://sdk:9090"},
            },
        }
        assert config.log_level == "INFO"  # not a key the service takes from the SDK file
        origins = {e.path: str(e.origin) for e in r.explain()}
        assert origins["llm.model"] == f"{sdk}:3"
        assert origins["llm.temperature"] == f"{main}:4"
        assert origins["toolsets.kubernetes/core.enabled"] == f"{main}:6"
    [ignored] = [e for e in logs if e["event"] == "holmes_sdk_keys_ignored"]
    assert (ignored["log_level"], ignored["keys"]) == ("warning", ["log_level"])
    assert ignored["sdk_config"] == str(sdk)


async def test_both_files_are_watched_and_one_update_of_both_is_one_commit(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    volume = ConfigMapVolume(tmp_path / "cm", {"config.yaml": MAIN, "sdk-config.yaml": SDK})
    main, sdk = volume.path("config.yaml"), volume.path("sdk-config.yaml")
    async with create_reloader(main, sdk_config=sdk, registry=registry) as r:
        outcomes = r.outcomes()
        volume.update(
            {
                "config.yaml": MAIN.replace("0.2", "0.9"),
                "sdk-config.yaml": SDK.replace("from-sdk", "sdk-two"),
            }
        )
        outcome = await anext(outcomes)
        assert (outcome.result, outcome.generation) == (ReloadResult.CONFIG_CHANGED, 2)
        assert set(outcome.changed) == {"llm.temperature", "llm.model"}
        assert (await r.reload()).result is ReloadResult.CONFIG_UNCHANGED  # nothing after it
        assert r.snapshot.generation == 2


async def test_an_sdk_only_change_in_its_own_volume_reloads(
    pod: tuple[ConfigMapVolume, ConfigMapVolume], registry: CollectorRegistry
) -> None:
    main, sdk = paths(pod)
    async with create_reloader(main, sdk_config=sdk, registry=registry) as r:
        pod[1].update({"sdk-config.yaml": SDK.replace("from-sdk", "sdk-two")})
        snap = await r.wait_for_generation(2, timeout=WAIT)
        assert snap.config.llm.model == "sdk-two"
        pod[0].update({"config.yaml": MAIN.replace("0.2", "0.4")})
        snap = await r.wait_for_generation(3, timeout=WAIT)
        assert (snap.config.llm.model, snap.config.llm.temperature) == ("sdk-two", 0.4)


async def test_a_missing_sdk_file_is_a_warning_and_the_main_file_runs_until_it_appears(
    tmp_path: Path, registry: CollectorRegistry, logs: Logs
) -> None:
    main = tmp_path / "holmesgpt" / "config.yaml"
    main.parent.mkdir()
    main.write_text(MAIN)
    sdk = tmp_path / "holmesgpt" / "sdk-config.yaml"
    async with create_reloader(main, sdk_config=sdk, registry=registry) as r:
        assert r.config.llm.model == "from-main"
        assert r.degraded is None
        [missing] = [e for e in logs if e["event"] == "holmes_sdk_config_missing"]
        assert (missing["log_level"], missing["sdk_config"]) == ("warning", str(sdk))
        write_atomic(sdk, SDK)  # the same provider: a new one would be refused (REFUSED)
        snap = await r.wait_for_generation(2, timeout=WAIT)
        assert snap.config.llm.model == "from-sdk"


async def test_an_sdk_file_that_arrives_with_another_provider_is_refused_until_restart(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    main = tmp_path / "config.yaml"
    main.write_text(MAIN)
    sdk = tmp_path / "sdk-config.yaml"
    async with create_reloader(main, sdk_config=sdk, registry=registry) as r:
        write_atomic(sdk, SDK.replace("provider: openai", "provider: anthropic"))
        outcome = await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        assert isinstance(outcome.error, ConfigRefusedError)
        assert outcome.error.fields == ("llm.provider",)
        assert r.config.llm.model == "from-main"


@pytest.mark.parametrize(
    ("bad", "error", "where"),
    [
        ("llm:\n  model: [\n", ConfigParseError, ":3:1: "),
        ("toolsets: {}\n", ConfigValidationError, ":1:1: "),  # the service requires llm:
        ("llm:\n  temperature: hot\n", ConfigValidationError, ":2:16: "),
    ],
    ids=["parse", "no-llm", "schema"],
)
async def test_an_invalid_sdk_file_at_start_starts_degraded_on_the_main_file(  # noqa: PLR0917
    pod: tuple[ConfigMapVolume, ConfigMapVolume],
    registry: CollectorRegistry,
    logs: Logs,
    metric: MetricReader,
    bad: str,
    error: type[Exception],
    where: str,
) -> None:
    main, sdk = paths(pod)
    pod[1].update({"sdk-config.yaml": bad})
    async with create_reloader(main, sdk_config=sdk, registry=registry) as r:
        assert r.config.llm.model == "from-main"
        assert r.degraded is not None
        assert r.degraded.startswith(f"started without {sdk}: {sdk}{where}")
        assert metric("holmesgpt_config_degraded", config="holmesgpt-api") == 1
        [started] = [e for e in logs if e["event"] == "config_started_without_layer"]
        assert (started["log_level"], started["file"]) == ("error", str(sdk))
        assert not [e for e in logs if e["event"] == "holmes_sdk_config_missing"]  # not missing
        refused = await rejected(r)  # the typed error, naming the SDK file
        assert isinstance(refused.error, error)
        assert refused.error.source == str(sdk)
        pod[1].update({"sdk-config.yaml": SDK})
        snap = await r.wait_for_generation(2, timeout=WAIT)
        assert snap.config.llm.model == "from-sdk"
        assert r.degraded is None
        assert metric("holmesgpt_config_degraded", config="holmesgpt-api") == 0


async def test_an_invalid_sdk_file_later_is_refused_and_the_merged_config_stays(
    pod: tuple[ConfigMapVolume, ConfigMapVolume], registry: CollectorRegistry
) -> None:
    main, sdk = paths(pod)
    async with create_reloader(main, sdk_config=sdk, registry=registry) as r:
        pod[1].update({"sdk-config.yaml": "llm:\n  temperature: hot\n"})
        outcome = await r.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=WAIT)
        assert isinstance(outcome.error, ConfigValidationError)
        assert (outcome.error.source, outcome.error.line) == (str(sdk), 2)
        assert r.config.llm.model == "from-sdk"  # not the main file alone: the merge in force
        assert r.degraded is None


async def test_sdk_config_file_is_the_services_variable_and_empty_means_none(
    pod: tuple[ConfigMapVolume, ConfigMapVolume], registry: CollectorRegistry
) -> None:
    main, sdk = paths(pod)
    env = {"SDK_CONFIG_FILE": str(sdk), "CONFIG_FILE": str(main)}
    async with create_reloader(environ=env, registry=registry) as r:
        assert r.config.llm.model == "from-sdk"
        assert r.path == f"{main} + {sdk}"
    async with create_reloader(environ=env, sdk_config="", registry=CollectorRegistry()) as r:
        assert r.config.llm.model == "from-main"
        assert r.path == str(main)


async def test_the_toolsets_in_force_are_logged_at_start(
    pod: tuple[ConfigMapVolume, ConfigMapVolume], registry: CollectorRegistry, logs: Logs
) -> None:
    main, sdk = paths(pod)
    pod[0].update({"config.yaml": MAIN + "  old/one: {enabled: false}\n"})
    async with create_reloader(main, sdk_config=sdk, registry=registry):
        [line] = [e for e in logs if e["event"] == "holmes_toolsets_in_force"]
    assert line["log_level"] == "info"
    assert line["toolsets"] == ["kubernetes/core", "prometheus/metrics"]
    assert (line["disabled"], line["mcp_servers"]) == (["old/one"], [])
    assert (line["llm_model"], line["degraded"]) == ("from-sdk", None)


async def test_the_final_deploy_files_run_layered(
    tmp_path: Path, registry: CollectorRegistry, logs: Logs
) -> None:
    """deploy/holmesgpt-api/05-configmap.yaml's two ConfigMaps, mounted as the chart does."""
    config = (DATA / "final-deploy-configmap.config.yaml").read_text()
    sdk_text = (DATA / "final-deploy-configmap.sdk-config.yaml").read_text()
    main = ConfigMapVolume(tmp_path / "holmesgpt", {"config.yaml": config})
    sdk = ConfigMapVolume(tmp_path / "holmesgpt" / "sdk", {"sdk-config.yaml": sdk_text})
    reloader = create_reloader(
        main.path("config.yaml"), sdk_config=sdk.path("sdk-config.yaml"), registry=registry
    )
    async with reloader as r:
        assert r.config.llm.model == "REPLACE_WITH_YOUR_MODEL"  # from the SDK ConfigMap
        assert r.config.context_api.url.startswith("http://context-api.")  # from the main one
        assert r.unknown_keys == ()
        assert (await r.reload()).result is ReloadResult.CONFIG_UNCHANGED
    assert not [e for e in logs if e["log_level"] in ("warning", "error")]


async def test_turning_the_charts_tls_on_waits_for_a_restart(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """The service reads tls.ca_file once, at start (REQUESTS_CA_BUNDLE): restart-required."""
    off = (DATA / "final-helm-configmap.config.yaml").read_text()
    on = (DATA / "final-helm-configmap-tls.config.yaml").read_text()
    sdk_text = (DATA / "final-helm-configmap.sdk-config.yaml").read_text()
    volume = ConfigMapVolume(tmp_path / "cm", {"config.yaml": off, "sdk-config.yaml": sdk_text})
    main, sdk = volume.path("config.yaml"), volume.path("sdk-config.yaml")
    async with create_reloader(main, sdk_config=sdk, registry=registry) as r:
        assert r.config.tls.ca_file is None
        volume.update({"config.yaml": on, "sdk-config.yaml": sdk_text})
        await r.wait_for_outcome(lambda o: o.restart_required != (), timeout=WAIT)
        assert r.restart_required == ("tls",)
        assert r.config.tls.ca_file is None  # in force until the pod restarts
    async with create_reloader(main, sdk_config=sdk, registry=CollectorRegistry()) as r:
        assert r.config.tls.ca_file == "/etc/ssl/hapi/service-ca.crt"
