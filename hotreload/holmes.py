"""The HolmesGPT API preset: its two config files, their schemas and ready-made reloaders.

``config.yaml`` (BR-HAPI-199, `ApiConfig`, `create_reloader`): hot-reloadable ``llm.*``,
``toolsets.*`` and ``log_level``; restart-required (the running value stays until the pod
restarts, with a warning and a gauge) ``api_host``, ``api_port``, ``auth_enabled``,
``kubernetes.*`` and ``data_storage_url``. A change of ``llm.provider`` refuses the whole new
version (the provider is the client's identity: a new provider with the old one's key or
endpoint must never go out half-applied); `derive_llm_client` keeps an HTTP client for
``llm.*`` in step with the file.

``toolsets.yaml`` (BR-HAPI-190, `ToolsetCatalog`, `create_toolset_reloader`): the discovered
toolsets with per-name overrides; ``TOOLSET_MAX_FAILURES_BEFORE_RELOAD`` sets the failure
threshold and ``HOLMESGPT_DEV_MODE=true`` skips the semantic checks (never the parser's
safety limits nor the schema). Metrics of both are under ``holmesgpt_``.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
import structlog
from msgspec import Meta

from ._derive import Derived
from ._fields import RestartRequired, Secret
from ._reloader import HotReloader

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEV_MODE_ENV",
    "NAMESPACE",
    "REFUSED",
    "THRESHOLD_ENV",
    "ApiConfig",
    "CatalogError",
    "LLMConfig",
    "Toolset",
    "ToolsetCatalog",
    "ToolsetOverride",
    "create_reloader",
    "create_toolset_reloader",
    "derive_llm_client",
    "dev_mode_from_env",
    "failure_threshold_from_env",
    "llm_client",
    "validate_catalog",
]

NAMESPACE = "holmesgpt"
#: Fields whose change refuses the whole new version in `create_reloader` (issue 14, after the
#: service's Go successor: an identity change needs a restart). BR-HAPI-199's scenario 3 hot-
#: swaps the provider: ``create_reloader(path, refuse_changes=())`` gives that behaviour back.
REFUSED = ("llm.provider",)
#: Where a provider's API is when ``llm.endpoint`` is not set.
PROVIDER_ENDPOINTS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
}
THRESHOLD_ENV = "TOOLSET_MAX_FAILURES_BEFORE_RELOAD"
DEV_MODE_ENV = "HOLMESGPT_DEV_MODE"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class LLMConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Which model answers, and how it is called. All of it reloads live."""

    provider: Annotated[str, Meta(min_length=1)]
    model: Annotated[str, Meta(min_length=1)]
    endpoint: str | None = None
    max_retries: Annotated[int, Meta(ge=0, le=100)] = 3
    timeout_seconds: Annotated[int, Meta(gt=0, le=3600)] = 60
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] = 0.7
    max_tokens_per_request: Annotated[int, Meta(gt=0)] = 4096
    api_key: Annotated[str | None, Secret] = None


class ApiConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The HolmesGPT API's ConfigMap (``config.yaml``)."""

    llm: LLMConfig
    toolsets: dict[str, dict[str, Any]] = {}
    log_level: LogLevel = "INFO"
    api_host: Annotated[str, RestartRequired] = "0.0.0.0"  # noqa: S104 - a pod binds all
    api_port: Annotated[int, Meta(ge=1, le=65535), RestartRequired] = 8080
    auth_enabled: Annotated[bool, RestartRequired] = True
    kubernetes: Annotated[dict[str, Any], RestartRequired] = {}
    data_storage_url: Annotated[str | None, RestartRequired] = None


def create_reloader(
    path: str | os.PathLike[str] = "/etc/holmesgpt/config.yaml",
    *,
    name: str = "holmesgpt-api",
    **options: Any,
) -> HotReloader[ApiConfig]:
    """A `HotReloader` for `ApiConfig` with the Holmes metric namespace, refusing a change of
    ``llm.provider`` (`REFUSED`); options pass through."""
    options.setdefault("namespace", NAMESPACE)
    options.setdefault("refuse_changes", REFUSED)
    return HotReloader(path, schema=ApiConfig, name=name, **options)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client: loading the CA bundle costs ~30 ms, so a rebuild
    that made its own would pay it at every change of ``llm.*``."""
    return ssl.create_default_context()


def llm_client(config: ApiConfig) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` for ``config.llm``: its endpoint (or the provider's), timeout,
    connection retries and bearer key. Needs httpx (the ``demo`` extra)."""
    import httpx  # noqa: PLC0415 - optional dependency, needed only by whoever derives it

    llm = config.llm
    endpoint = llm.endpoint or PROVIDER_ENDPOINTS.get(llm.provider, "")
    headers = {} if llm.api_key is None else {"Authorization": f"Bearer {llm.api_key}"}
    return httpx.AsyncClient(
        base_url=endpoint,
        headers=headers,
        timeout=float(llm.timeout_seconds),
        transport=httpx.AsyncHTTPTransport(retries=llm.max_retries, verify=_tls()),
    )


def derive_llm_client(reloader: HotReloader[ApiConfig]) -> Derived[httpx.AsyncClient]:
    """Keep an `llm_client` in step with ``llm.*``: rebuilt inside the commit when any of it
    changes; a request keeps the client it started with (``derived.get()``); the old one is
    closed when the last of them ends."""
    return reloader.derive(llm_client, on=("llm",), name="llm_client")


# -- toolsets.yaml (BR-HAPI-190) -------------------------------------------------------------


class Toolset(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One discovered toolset. ``enabled`` left out means enabled (with a warning)."""

    name: Annotated[str, Meta(min_length=1)]
    enabled: bool | None = None
    priority: int = 0
    config: dict[str, Any] = {}


class ToolsetOverride(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Fields that replace a discovered toolset's own; ``config`` keys are merged over it."""

    enabled: bool | None = None
    priority: int | None = None
    config: dict[str, Any] | None = None


class ToolsetCatalog(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``toolsets.yaml``: ``discovered: [{name, enabled, priority}]`` and ``overrides``."""

    discovered: tuple[Toolset, ...] = ()
    overrides: dict[str, ToolsetOverride] = {}

    @property
    def effective(self) -> tuple[Toolset, ...]:
        """The discovered toolsets with their overrides merged in, enabled ones only."""
        merged = []
        for found in self.discovered:
            over = self.overrides.get(found.name)
            toolset = found
            if over is not None:
                toolset = msgspec.structs.replace(
                    found,
                    enabled=found.enabled if over.enabled is None else over.enabled,
                    priority=found.priority if over.priority is None else over.priority,
                    config={**found.config, **(over.config or {})},
                )
            if toolset.enabled is not False:
                merged.append(toolset)
        return tuple(merged)

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the effective toolsets, in catalog order."""
        return tuple(t.name for t in self.effective)


class CatalogError(ValueError):
    """A semantic problem in ``toolsets.yaml``; ``field_path`` says where."""

    def __init__(self, message: str, field_path: str) -> None:
        super().__init__(message)
        self.field_path = field_path


def validate_catalog(catalog: ToolsetCatalog) -> None:
    """BR-HAPI-190's checks: names are unique, at least one toolset is enabled. A toolset
    without ``enabled`` counts as enabled, and is logged."""
    log = structlog.get_logger("hotreload.holmes")
    seen: set[str] = set()
    for index, toolset in enumerate(catalog.discovered):
        if toolset.name in seen:
            raise CatalogError(
                f"toolset {toolset.name!r} is listed twice", f"discovered[{index}].name"
            )
        seen.add(toolset.name)
        if toolset.enabled is None:
            log.warning("toolset_missing_enabled_defaulting_true", toolset=toolset.name)
    if not catalog.effective:
        raise CatalogError("no enabled toolset: at least one must be enabled", "discovered")


def failure_threshold_from_env(environ: Mapping[str, str] | None = None) -> int:
    """``TOOLSET_MAX_FAILURES_BEFORE_RELOAD`` (default 3); anything but an integer >= 1 is a
    start-up error, not a silent default."""
    raw = (os.environ if environ is None else environ).get(THRESHOLD_ENV, "3")
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{THRESHOLD_ENV} must be an integer >= 1, got {raw!r}")
    return value


def dev_mode_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """``HOLMESGPT_DEV_MODE=true`` (case-insensitive) turns dev mode on."""
    return (os.environ if environ is None else environ).get(DEV_MODE_ENV, "false").lower() == "true"


def create_toolset_reloader(
    path: str | os.PathLike[str] = "/etc/kubernaut/toolsets/toolsets.yaml",
    *,
    name: str = "holmesgpt-toolsets",
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> HotReloader[ToolsetCatalog]:
    """A `HotReloader` for `ToolsetCatalog`, configured from the environment as the spec says.

    ``failure_threshold`` comes from ``TOOLSET_MAX_FAILURES_BEFORE_RELOAD`` unless given;
    ``validate_catalog`` runs unless ``HOLMESGPT_DEV_MODE=true``. Options pass through.
    """
    options.setdefault("namespace", NAMESPACE)
    options.setdefault("failure_threshold", failure_threshold_from_env(environ))
    validators = list(options.pop("validators", ()))
    if not dev_mode_from_env(environ):
        validators.insert(0, validate_catalog)
    return HotReloader(path, schema=ToolsetCatalog, name=name, validators=validators, **options)
