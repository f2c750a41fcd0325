"""Layered configuration with real files and the real watcher: base + overlay + environment."""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import msgspec
import pydantic
import pytest
from prometheus_client import CollectorRegistry

from hotreload import (
    ConfigParseError,
    ConfigReadError,
    ConfigValidationError,
    HotReloader,
    Layer,
    Layers,
    Origin,
    ReloadOutcome,
    ReloadResult,
)
from hotreload.testing import ConfigMapVolume, write_atomic, write_in_place
from tests.conftest import MetricReader


class Llm(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    provider: str = "openai"
    model: str = "gpt-4o-mini"
    temperature: float = 0.7
    api_key: str = ""


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    llm: Llm = Llm()
    hosts: list[str] = []
    log_level: str = "INFO"
    prompt: str | None = "default prompt"
    port: int = 8080


class PydanticLlm(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, strict=True, extra="forbid")

    provider: str = "openai"
    model: str = "gpt-4o-mini"
    temperature: float = 0.7
    api_key: str = ""


class PydanticSettings(pydantic.BaseModel):
    """`Settings` as a pydantic model: layers, origins and errors work the same."""

    model_config = pydantic.ConfigDict(frozen=True, strict=True, extra="forbid")

    llm: PydanticLlm = PydanticLlm()
    hosts: list[str] = []
    log_level: str = "INFO"
    prompt: str | None = "default prompt"
    port: int = 8080


AnyLlm = Llm | PydanticLlm
AnySchema = type[Settings] | type[PydanticSettings]
AnySettings = Settings | PydanticSettings


@pytest.fixture(params=[Settings, PydanticSettings], ids=["msgspec", "pydantic"])
def schema(request: pytest.FixtureRequest) -> AnySchema:
    chosen: AnySchema = request.param
    return chosen


def llm(schema: AnySchema, **fields: object) -> AnyLlm:
    """The ``llm`` section the test expects, of the kind ``schema`` makes."""
    kind: type[AnyLlm] = Llm if schema is Settings else PydanticLlm
    return kind(**fields)  # type: ignore[arg-type]


class Tls(msgspec.Struct, frozen=True):
    cert: str
    key: str


class WithTls(msgspec.Struct, frozen=True):
    tls: Tls


BASE = "llm:\n  provider: openai\n  model: gpt-4o-mini\n  temperature: 0.2\nhosts: [a, b]\n"
PROD = "llm:\n  model: gpt-4o\nhosts: [c]\n"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "conf").mkdir()
    base, prod = tmp_path / "conf" / "base.yaml", tmp_path / "conf" / "prod.yaml"
    base.write_text(BASE)
    prod.write_text(PROD)
    return base, prod


async def test_list_form_merges_in_order_with_the_environment_on_top(
    files: tuple[Path, Path],
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    schema: AnySchema,
) -> None:
    base, prod = files
    monkeypatch.setenv("HOLMES_LLM__API_KEY", "sk-from-env-0123")
    monkeypatch.setenv("HOLMES_PORT", "9090")
    monkeypatch.setenv("OTHER_PORT", "1")
    async with HotReloader(
        [base, prod], env_prefix="HOLMES_", schema=schema, registry=registry
    ) as reloader:
        config = reloader.config
        assert config.llm == llm(
            schema, model="gpt-4o", temperature=0.2, api_key="sk-from-env-0123"
        )
        assert config.hosts == ["c"]  # lists are replaced, not merged
        assert config.port == 9090  # an env value is read as YAML: a number
        assert isinstance(reloader.source, Layers)
        assert reloader.snapshot.source == f"{base} + {prod} + $HOLMES_*"

        origins = {e.path: e.origin for e in reloader.explain()}
        assert origins["llm.model"] == Origin(str(prod), 2, 10)
        assert origins["llm.temperature"] == Origin(str(base), 4, 16)
        assert origins["llm.api_key"] == Origin("$HOLMES_LLM__API_KEY")
        assert origins["log_level"] is None  # the schema's default
        shown = {e.path: e.value for e in reloader.explain()}
        assert shown["llm.api_key"] == "***"

        # The environment is re-read by a forced re-check.
        monkeypatch.setenv("HOLMES_LLM__MODEL", "o3")
        outcome = await reloader.reload()
        assert outcome.result is ReloadResult.CONFIG_CHANGED
        assert outcome.changed == ("llm.model",)
        assert reloader.config.llm.model == "o3"


async def test_null_in_an_overlay_is_a_value_not_a_deletion(
    files: tuple[Path, Path],
    registry: CollectorRegistry,
    schema: AnySchema,
) -> None:
    base, prod = files
    base.write_text(BASE + "prompt: from base\n")
    prod.write_text(PROD + "prompt: null\n")
    async with HotReloader([base, prod], schema=schema, registry=registry) as reloader:
        assert reloader.config.prompt is None


async def test_a_change_in_any_layer_is_one_commit(
    files: tuple[Path, Path],
    registry: CollectorRegistry,
    schema: AnySchema,
) -> None:
    base, prod = files
    async with HotReloader([base, prod], schema=schema, registry=registry) as reloader:
        changes = reloader.changes()
        write_in_place(base, BASE.replace("0.2", "0.3"))
        snap = await anext(changes)
        assert snap.generation == 2
        assert snap.config.llm.temperature == 0.3
        write_atomic(prod, PROD.replace("gpt-4o", "gpt-5"))
        snap = await anext(changes)
        assert snap.generation == 3
        assert snap.config.llm == llm(schema, model="gpt-5", temperature=0.3)
        # A layer the overlay overrides changes nothing in force: no commit.
        write_in_place(base, BASE.replace("0.2", "0.3").replace("gpt-4o-mini", "other"))
        outcome = await reloader.wait_for_outcome(timeout=10)
        assert outcome.result is ReloadResult.CONFIG_UNCHANGED
        assert reloader.snapshot.generation == 3


async def test_a_bad_value_in_the_overlay_names_its_file_and_line_and_the_merged_config_stays(
    files: tuple[Path, Path],
    registry: CollectorRegistry,
    schema: AnySchema,
) -> None:
    base, prod = files
    async with HotReloader([base, prod], schema=schema, registry=registry) as reloader:
        before = reloader.snapshot
        write_in_place(prod, "llm:\n  model: gpt-4o\n  temperature: hot\nhosts: [c]\n")
        outcome = await reloader.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=10)
        error = outcome.error
        assert isinstance(error, ConfigValidationError)
        assert error.source == str(prod)
        assert (error.line, error.column) == (3, 16)
        assert error.field_path == "llm.temperature"
        assert str(error).startswith(f"{prod}:3:16: ")
        assert reloader.snapshot is before  # the previous merged config stays in force
        assert reloader.config.llm == llm(schema, model="gpt-4o", temperature=0.2)

        # An unknown key is pointed at in the layer that has it.
        write_in_place(prod, "llm:\n  model: gpt-4o\n  modle: typo\n")
        outcome = await reloader.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=10)
        assert outcome.error is not None
        assert (outcome.error.source, getattr(outcome.error, "line", None)) == (str(prod), 3)
        assert reloader.snapshot is before


async def test_a_bad_env_value_names_the_variable(
    files: tuple[Path, Path],
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    schema: AnySchema,
) -> None:
    base, prod = files
    monkeypatch.setenv("APP_PORT", "not-a-port")
    with pytest.raises(ConfigValidationError) as caught:
        async with HotReloader([base, prod], env_prefix="APP_", schema=schema):
            pass
    assert caught.value.source == "$APP_PORT"
    assert caught.value.field_path == "port"


async def test_optional_layer_is_skipped_until_it_appears_required_one_is_an_error(
    files: tuple[Path, Path],
    registry: CollectorRegistry,
    schema: AnySchema,
) -> None:
    base, _ = files
    local = base.parent / "local.yaml"
    layers: list[Path | Layer] = [base, Layer(local, optional=True)]
    async with HotReloader(layers, schema=schema, registry=registry) as reloader:
        assert reloader.config.llm.model == "gpt-4o-mini"
        write_atomic(local, "llm:\n  model: local-model\n")
        snap = await reloader.wait_for_generation(2, timeout=10)
        assert snap.config.llm.model == "local-model"
        local.unlink()  # gone again: skipped again, the base is back in force
        snap = await reloader.wait_for_generation(3, timeout=10)
        assert snap.config.llm.model == "gpt-4o-mini"

    with pytest.raises(ConfigReadError) as caught:
        async with HotReloader([base, local], schema=schema, registry=CollectorRegistry()):
            pass
    assert caught.value.source == str(local)
    assert caught.value.reason == "missing"


async def test_an_empty_overlay_is_refused_naming_it(
    files: tuple[Path, Path],
    registry: CollectorRegistry,
    schema: AnySchema,
) -> None:
    base, prod = files
    async with HotReloader([base, prod], schema=schema, registry=registry) as reloader:
        write_in_place(prod, "")
        outcome = await reloader.reload()
        assert outcome.result is ReloadResult.VALIDATION_FAILED
        assert outcome.error is not None
        assert outcome.error.source == str(prod)
        assert reloader.config.llm.model == "gpt-4o"


async def test_text_layers_mount_a_whole_file_at_a_key(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    (tmp_path / "tls.crt").write_text("CERT\n")
    (tmp_path / "tls.key").write_text("KEY\n")
    layers = [
        Layer(tmp_path / "tls.crt", format="text", at="tls.cert"),
        Layer(tmp_path / "tls.key", format="text", at="tls.key"),
    ]
    async with HotReloader(layers, schema=WithTls, registry=registry) as reloader:
        assert reloader.config.tls == Tls("CERT\n", "KEY\n")
        shown = {e.path: (e.value, str(e.origin)) for e in reloader.explain()}
        assert shown["tls.key"] == ("***", f"{tmp_path / 'tls.key'}:1")


async def test_two_keys_of_one_configmap_update_as_one_commit(
    tmp_path: Path, registry: CollectorRegistry, schema: AnySchema
) -> None:
    volume = ConfigMapVolume(tmp_path / "cm", {"base.yaml": BASE, "prod.yaml": PROD})
    layers = [volume.path("base.yaml"), volume.path("prod.yaml")]
    async with HotReloader(layers, schema=schema, registry=registry) as reloader:
        outcomes = reloader.outcomes()
        volume.update(
            {"base.yaml": BASE.replace("0.2", "0.9"), "prod.yaml": PROD.replace("[c]", "[d]")}
        )
        outcome = await anext(outcomes)
        assert outcome.result is ReloadResult.CONFIG_CHANGED
        assert outcome.generation == 2
        assert set(outcome.changed) == {"llm.temperature", "hosts"}
        assert reloader.config.hosts == ["d"]
        assert reloader.config.llm.temperature == 0.9


async def test_single_file_still_explains_its_origins(
    config_path: Path, registry: CollectorRegistry
) -> None:
    class One(msgspec.Struct, frozen=True):
        model: str
        retries: int = 3

    async with HotReloader(config_path, schema=One, registry=registry) as reloader:
        assert not isinstance(reloader.source, Layers)  # one path keeps the plain file source
        origins = {e.path: e.origin for e in reloader.explain()}
    assert origins == {"model": Origin(str(config_path), 1, 8), "retries": None}


async def test_a_layers_format_overrides_its_suffix(
    tmp_path: Path, registry: CollectorRegistry, schema: AnySchema
) -> None:
    (tmp_path / "base.conf").write_text('{"llm": {"model": "from-json"}}')
    (tmp_path / "prod.conf").write_text('{"hosts": ["x"]}')
    paths = [tmp_path / "base.conf", tmp_path / "prod.conf"]
    layers = [Layer(p, format="json") for p in paths]
    async with HotReloader(layers, schema=schema, registry=registry) as r:
        assert (r.config.llm.model, r.config.hosts) == ("from-json", ["x"])
        origins = {e.path: e.origin for e in r.explain()}
    assert origins["llm.model"] == Origin(str(paths[0]))  # JSON has no positions: the file


async def test_last_known_good_keeps_every_layer(
    files: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    schema: AnySchema,
) -> None:
    base, prod = files
    lkg = tmp_path / "lkg" / "config.json"
    monkeypatch.setenv("APP_LLM__API_KEY", "sk-from-env-0123")
    layers = [base, prod]
    async with HotReloader(
        layers, env_prefix="APP_", schema=schema, lkg_path=lkg, registry=CollectorRegistry()
    ) as reloader:
        good = reloader.config
    write_in_place(prod, "llm:\n  temperature: hot\n")  # a bad push, then a restart
    async with HotReloader(
        layers, env_prefix="APP_", schema=schema, lkg_path=lkg, registry=CollectorRegistry()
    ) as reloader:
        assert reloader.degraded is not None
        assert reloader.config == good
        origins = {e.path: str(e.origin) for e in reloader.explain()}
        assert origins["llm.model"] == f"{prod}:2"  # where it came from when it was cached
    assert lkg.stat().st_mode & 0o077 == 0  # it holds the environment's secret: owner only


async def test_polling_options_reach_every_file_layer(
    files: tuple[Path, Path],
    registry: CollectorRegistry,
    schema: AnySchema,
) -> None:
    base, prod = files
    async with HotReloader(
        Layers(base, prod, force_polling=True, poll_delay_ms=50), schema=schema, registry=registry
    ) as reloader:
        assert isinstance(reloader.source, Layers)
        polled = [getattr(s, "force_polling", None) for s in reloader.source.layers]
        assert polled == [True, True]
        write_in_place(prod, PROD.replace("gpt-4o", "polled"))
        snap = await reloader.wait_for_generation(2, timeout=10)
        assert snap.config.llm.model == "polled"


async def rejected(reloader: HotReloader[AnySettings]) -> ReloadOutcome:
    """The rejection of the bad source by the re-check after start (it may be done already)."""
    last = reloader.last_outcome
    if last is not None and last.result is ReloadResult.VALIDATION_FAILED:
        return last
    return await reloader.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=10)


async def test_a_fallible_layer_bad_at_start_starts_without_it_degraded_then_recovers(
    files: tuple[Path, Path],
    registry: CollectorRegistry,
    schema: AnySchema,
    logs: list[MutableMapping[str, Any]],
    metric: MetricReader,
) -> None:
    base, prod = files
    write_in_place(prod, "llm:\n  model: [\n")
    async with HotReloader(
        [base, Layer(prod, fallible=True)], schema=schema, registry=registry
    ) as r:
        assert r.config.llm == llm(schema, model="gpt-4o-mini", temperature=0.2)
        assert r.config.hosts == ["a", "b"]  # the base alone
        assert r.degraded is not None
        assert r.degraded.startswith(f"started without {prod}: {prod}:3:1: ")
        assert metric("hotreload_config_degraded", config="default") == 1
        [started] = [e for e in logs if e["event"] == "config_started_without_layer"]
        assert (started["log_level"], started["reason"]) == ("error", "parse")
        assert (started["layers"], started["file"]) == ([str(prod)], str(prod))
        refused = await rejected(r)  # the re-check after start: the typed error, the layer's
        assert isinstance(refused.error, ConfigParseError)
        assert refused.error.source == str(prod)
        write_in_place(prod, PROD)
        snap = await r.wait_for_generation(2, timeout=10)
        assert (snap.config.llm.model, snap.config.hosts) == ("gpt-4o", ["c"])
        assert r.degraded is None
        assert metric("hotreload_config_degraded", config="default") == 0


async def test_a_fallible_layer_empty_at_start_is_left_out_too(
    files: tuple[Path, Path], registry: CollectorRegistry, schema: AnySchema
) -> None:
    base, prod = files
    write_in_place(prod, "")
    async with HotReloader(
        [base, Layer(prod, fallible=True)], schema=schema, registry=registry
    ) as r:
        assert r.config.hosts == ["a", "b"]
        assert r.degraded is not None
        assert f"{prod}:1:1: the document is empty" in r.degraded


async def test_a_fault_elsewhere_still_fails_fast_and_so_does_a_plain_layer(
    files: tuple[Path, Path], schema: AnySchema
) -> None:
    base, prod = files
    write_in_place(prod, "llm:\n  temperature: hot\n")
    with pytest.raises(ConfigValidationError) as plain:
        async with HotReloader([base, prod], schema=schema, registry=CollectorRegistry()):
            pass
    assert plain.value.source == str(prod)
    write_in_place(prod, PROD)
    write_in_place(base, "llm:\n  temperature: hot\n")  # the base at fault: leaving prod out
    layers: list[Path | Layer] = [base, Layer(prod, fallible=True)]
    with pytest.raises(ConfigValidationError) as caught:  # does not help, so no start
        async with HotReloader(layers, schema=schema, registry=CollectorRegistry()):
            pass
    assert caught.value.source == str(base)


async def test_a_usable_last_known_good_copy_wins_over_leaving_a_layer_out(
    files: tuple[Path, Path], tmp_path: Path, schema: AnySchema
) -> None:
    base, prod = files
    lkg = tmp_path / "lkg.json"
    layers: list[Path | Layer] = [base, Layer(prod, fallible=True)]
    async with HotReloader(layers, schema=schema, lkg_path=lkg, registry=CollectorRegistry()):
        pass
    write_in_place(prod, "llm:\n  temperature: hot\n")
    async with HotReloader(layers, schema=schema, lkg_path=lkg, registry=CollectorRegistry()) as r:
        assert r.config.llm.model == "gpt-4o"  # the merged copy, prod included
        assert r.degraded is not None
        assert r.degraded.startswith("started from the last-known-good copy")
