"""The HolmesGPT API preset: its two config files, their schemas and ready-made reloaders.

``config.yaml`` (BR-HAPI-199, `ApiConfig`, `create_reloader`) is the file the real service
(jordigilh/kubernaut ``holmesgpt-api/``) reads, in all four of its variants: every section they
use is modelled with types and bounds, and the defaults are its ``ConfigManager.DEFAULTS`` (plus
its ``load_config`` defaults for the sections that one does not cover). Keys the schema does not
know are named and logged, not fatal (``strict=True`` makes them fatal). Hot-reloadable: all of
it but the restart-required ``api_host``, ``api_port``, ``auth_enabled``, ``kubernetes.*``,
``data_storage.url`` and ``tls.*`` (the running value stays until the pod restarts, with a
warning and a gauge). Since Issue #390 the service splits it in two: ``sdk_config=`` merges
``sdk-config.yaml`` (``llm``, ``toolsets``, ``mcp_servers``) over it at every reload, as its
``ConfigManager`` did (`ServiceLayers`). ``log_level`` and ``logging.level`` both set the log
level live. A change of ``llm.provider`` refuses the whole new version (the provider is the
client's identity: a new provider with the old one's key or endpoint must never go out
half-applied); `derive_llm_client` keeps an HTTP client for ``llm.*`` in step with the file.

``toolsets.yaml`` (BR-HAPI-190, `ToolsetCatalog`, `create_toolset_reloader`): the discovered
toolsets with per-name overrides; ``TOOLSET_MAX_FAILURES_BEFORE_RELOAD`` sets the failure
threshold and ``HOLMESGPT_DEV_MODE=true`` skips the semantic checks (never the parser's
safety limits nor the schema). Metrics of both are under ``holmesgpt_``.
"""

from __future__ import annotations

import functools
import os
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ._derive import Derived
from ._fields import RestartRequired, Secret
from ._holmes_sdk import SDK_MERGE_KEYS, ServiceLayers
from ._layers import Layers
from ._logging import ContextLogger, capped
from ._options import Failures, Fields
from ._probation import Probation
from ._reloader import HotReloader
from ._snapshot import Snapshot

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CONFIG_FILE_ENV",
    "DEFAULT_PATH",
    "DEV_MODE_ENV",
    "HOT_RELOAD_ENV",
    "NAMESPACE",
    "REFUSED",
    "SDK_CONFIG_ENV",
    "SDK_DEFAULT_PATH",
    "SDK_MERGE_KEYS",
    "THRESHOLD_ENV",
    "ApiConfig",
    "AuditConfig",
    "CatalogError",
    "ContextApiConfig",
    "DataStorageConfig",
    "HapiConfig",
    "KubernetesConfig",
    "LLMConfig",
    "LLMProbe",
    "LLMReachable",
    "LoggingConfig",
    "MetricsConfig",
    "PromptConfig",
    "ServiceLayers",
    "TlsConfig",
    "Toolset",
    "ToolsetCatalog",
    "ToolsetOverride",
    "cli_layers",
    "create_reloader",
    "create_toolset_reloader",
    "derive_llm_client",
    "dev_mode_from_env",
    "duration_seconds",
    "failure_threshold_from_env",
    "hot_reload_from_env",
    "llm_client",
    "probation_from_env",
    "validate_catalog",
]

NAMESPACE = "holmesgpt"
#: Fields whose change refuses the whole new version in `create_reloader` (issue 14, after the
#: service's Go successor: an identity change needs a restart). BR-HAPI-199's scenario 3 hot-
#: swaps the provider: ``create_reloader(path, fields=Fields())`` gives that behaviour back.
REFUSED = ("llm.provider",)
#: Where a provider's API is when ``llm.endpoint`` is not set.
PROVIDER_ENDPOINTS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
}
THRESHOLD_ENV = "TOOLSET_MAX_FAILURES_BEFORE_RELOAD"
DEV_MODE_ENV = "HOLMESGPT_DEV_MODE"
CONFIG_FILE_ENV = "CONFIG_FILE"
HOT_RELOAD_ENV = "HOT_RELOAD_ENABLED"
DEFAULT_PATH = "/etc/holmesgpt/config.yaml"
SDK_CONFIG_ENV = "SDK_CONFIG_FILE"
#: Where the chart and the deploy manifests mount ``sdk-config.yaml`` (the service's default).
SDK_DEFAULT_PATH = "/etc/holmesgpt/sdk/sdk-config.yaml"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Port = Annotated[int, Meta(ge=1, le=65535)]
Url = Annotated[str, Meta(pattern=r"^https?://\S+$")]
UrlPath = Annotated[str, Meta(pattern=r"^/")]
Seconds = Annotated[float, Meta(gt=0, le=3600)]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_seconds(text: str) -> float:
    """``"1m30s"`` -> 90.0. Raises ValueError for anything else (``30``, ``30x``, ``-1s``)."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration such as 30s, 500ms or 1m30s: {text!r}")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


class _Section(msgspec.Struct, frozen=True, kw_only=True):
    """A section of ``config.yaml``: unknown keys are allowed, so the engine names them."""


class LoggingConfig(_Section, frozen=True):
    """``logging:``; ``level`` is the same setting as the top-level ``log_level``."""

    level: LogLevel | None = None


class LLMConfig(_Section, frozen=True):
    """Which model answers, and how it is called. All of it reloads live.

    ``provider`` and ``model`` may be empty, as the Helm chart's unset values render them (the
    service accepts that too); ``api_key`` is a secret, never logged.
    """

    provider: str = "openai"
    model: str = "gpt-4"
    endpoint: str | None = None
    max_retries: Annotated[int, Meta(ge=0, le=100)] = 3
    timeout_seconds: Annotated[int, Meta(gt=0, le=3600)] = 60
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] = 0.7
    max_tokens_per_request: Annotated[int, Meta(gt=0)] = 4096
    api_key: Annotated[str | None, Secret] = None
    secrets_file: str | None = None
    gcp_project_id: str | None = None
    gcp_region: str | None = None


class DataStorageConfig(_Section, frozen=True):
    """The Data Storage service; its ``url`` (the spec's ``DATA_STORAGE_URL``) needs a restart."""

    url: Annotated[Url | None, RestartRequired] = None
    timeout: Seconds = 60.0


class AuditConfig(_Section, frozen=True):
    """Buffered audit events to Data Storage (BR-AUDIT-005, ADR-038)."""

    flush_interval_seconds: Seconds = 5.0
    buffer_size: Annotated[int, Meta(ge=1)] = 10000
    batch_size: Annotated[int, Meta(ge=1)] = 50

    def __post_init__(self) -> None:
        if self.batch_size > self.buffer_size:
            raise ValueError(
                f"audit.batch_size ({self.batch_size}) is larger than "
                f"audit.buffer_size ({self.buffer_size})"
            )


class PromptConfig(_Section, frozen=True):
    """Prompt thresholds (Issue #224, BR-HAPI-016, BR-HAPI-198)."""

    repeated_remediation_escalation_threshold: Annotated[int, Meta(ge=1)] = 2
    confidence_threshold_human_review: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.7


class ContextApiConfig(_Section, frozen=True):
    """The Context API client."""

    enabled: bool = True
    url: Url = "http://localhost:8091"
    timeout_seconds: Annotated[int, Meta(gt=0, le=3600)] = 10
    max_retries: Annotated[int, Meta(ge=0, le=100)] = 2


class TlsConfig(_Section, frozen=True):
    """``tls:`` as the Helm chart renders it when Prometheus TLS is on (Issue #452/#467).

    ``ca_file`` is a PEM CA the service trusts for its outgoing HTTPS (in-cluster Prometheus or
    Thanos behind an OpenShift service-serving certificate), mounted from a ConfigMap at
    ``/etc/ssl/hapi/service-ca.crt``. The service reads it once, at start (it joins it to the
    system bundle in ``REQUESTS_CA_BUNDLE``), so it is restart-required here. The chart has no
    server certificate for the API itself (TLS in front of it is the platform's). To rotate the
    CA live instead, `hotreload.tls.ClientTLS` (``ca=`` the same file) keeps a client
    ``ssl.SSLContext`` current from it, for clients that take one (httpx's ``verify=``).
    """

    ca_file: Annotated[str, Meta(min_length=1)] | None = None


class HapiConfig(_Section, frozen=True):
    """``hapi:`` in the service's E2E test config: where the tests reach the API."""

    url: Url | None = None


class KubernetesConfig(_Section, frozen=True):
    """The Kubernetes API; the whole section is restart-required."""

    service_host: str = "kubernetes.default.svc"
    service_port: Port = 443
    token_reviewer_enabled: bool = True
    in_cluster: bool = True
    kubeconfig_path: str | None = None


class MetricsConfig(_Section, frozen=True):
    """Metrics exposure; ``scrape_interval`` is a duration such as ``30s``."""

    enabled: bool = True
    endpoint: UrlPath = "/metrics"
    scrape_interval: str = "30s"
    """A Prometheus/Go-style duration: ``30s``, ``500ms``, ``1m30s``."""
    port: Port | None = None
    path: UrlPath | None = None

    def __post_init__(self) -> None:
        try:
            seconds = duration_seconds(self.scrape_interval)
        except ValueError as exc:
            raise ValueError(f"metrics.scrape_interval: {exc}") from None
        if seconds <= 0:
            raise ValueError("metrics.scrape_interval must be longer than 0s")

    @property
    def scrape_interval_seconds(self) -> float:
        return duration_seconds(self.scrape_interval)


def _default_endpoints() -> tuple[str, ...]:
    return ("/health", "/ready", "/metrics")


class ApiConfig(_Section, frozen=True):
    """The HolmesGPT API's ``config.yaml`` (its ConfigMap), every section the service uses.

    ``log_level`` and ``logging.level`` are one setting: give either (or both, equal); once
    loaded both hold the level in force (default ``INFO``), which the reloader applies live.
    """

    llm: LLMConfig = msgspec.field(default_factory=LLMConfig)
    toolsets: dict[str, dict[str, Any]] = {}
    mcp_servers: dict[str, dict[str, Any]] = {}
    log_level: LogLevel | None = None
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    service_name: str = "holmesgpt-api"
    version: str = "1.0.0"
    dev_mode: bool = False
    api_host: Annotated[str, RestartRequired] = "0.0.0.0"  # noqa: S104 - a pod binds all
    api_port: Annotated[Port, RestartRequired] = 8080
    auth_enabled: Annotated[bool, RestartRequired] = True
    kubernetes: Annotated[KubernetesConfig, RestartRequired] = msgspec.field(
        default_factory=KubernetesConfig
    )
    data_storage: DataStorageConfig = msgspec.field(default_factory=DataStorageConfig)
    context_api: ContextApiConfig = msgspec.field(default_factory=ContextApiConfig)
    audit: AuditConfig = msgspec.field(default_factory=AuditConfig)
    prompt: PromptConfig = msgspec.field(default_factory=PromptConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    public_endpoints: tuple[UrlPath, ...] = msgspec.field(default_factory=_default_endpoints)
    hapi: HapiConfig | None = None
    tls: Annotated[TlsConfig, RestartRequired] = msgspec.field(default_factory=TlsConfig)

    def __post_init__(self) -> None:
        nested = self.logging.level
        if self.log_level is not None and nested is not None and self.log_level != nested:
            raise ValueError(
                f"log_level ({self.log_level}) and logging.level ({nested}) differ: "
                "they are one setting, give one of them or the same value in both"
            )
        level = self.log_level or nested or "INFO"
        msgspec.structs.force_setattr(self, "log_level", level)
        if nested != level:
            section = msgspec.structs.replace(self.logging, level=level)
            msgspec.structs.force_setattr(self, "logging", section)


def hot_reload_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """``HOT_RELOAD_ENABLED`` (default ``true``): ``false`` loads the config once, as the
    service's switch does; anything but true/false is a start-up error, not a silent default."""
    raw = (os.environ if environ is None else environ).get(HOT_RELOAD_ENV, "true")
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"{HOT_RELOAD_ENV} must be true or false, got {raw!r}")
    return value == "true"


def create_reloader(
    path: str | os.PathLike[str] | None = None,
    *,
    sdk_config: str | os.PathLike[str] | None = None,
    name: str = "holmesgpt-api",
    environ: Mapping[str, str] | None = None,
    llm_probe: LLMProbe | None = None,
    **options: Any,
) -> HotReloader[ApiConfig]:
    """A `HotReloader` for `ApiConfig` with the Holmes metric namespace, refusing a change of
    ``llm.provider`` (`REFUSED`), every commit on probation (`probation_from_env`); options
    pass through. At start it logs ``holmes_toolsets_in_force``.

    ``sdk_config`` is the SDK's ``sdk-config.yaml`` (the chart mounts it at
    `SDK_DEFAULT_PATH`), merged over ``config.yaml`` at every reload as the service did
    (`ServiceLayers`: its ``llm``, ``toolsets`` and ``mcp_servers`` win, one level deep); both
    files are watched, one update of both is one commit. Missing, it is a warning and the main
    file is the config; invalid at start, the reloader starts on the main file, ``degraded``.
    Not given: ``$SDK_CONFIG_FILE`` (the service's variable) if set; ``""``: none.

    ``llm_probe`` is the service's own reachability call for its LLM: given, it is probation's
    check (`LLMReachable`), run once after each commit on the LLM client in force, and a commit
    it fails is rolled back. ``path`` defaults to ``$CONFIG_FILE`` or
    ``/etc/holmesgpt/config.yaml`` (the service's own default); ``HOT_RELOAD_ENABLED=false``
    means ``watch=False`` unless ``watch`` is given.
    """
    env = os.environ if environ is None else environ
    options.setdefault("namespace", NAMESPACE)
    options.setdefault("fields", Fields(refuse_changes=REFUSED))
    options.setdefault("watch", hot_reload_from_env(env))
    if "probation" not in options:
        check = None if llm_probe is None else LLMReachable(llm_probe)
        options["probation"] = probation_from_env(env, check=check)
    elif llm_probe is not None:
        raise TypeError("give llm_probe or probation, not both: llm_probe is probation's check")
    where = env.get(CONFIG_FILE_ENV, DEFAULT_PATH) if path is None else path
    sdk = env.get(SDK_CONFIG_ENV, "") if sdk_config is None else os.fspath(sdk_config)
    source: str | os.PathLike[str] | ServiceLayers = where
    if sdk:
        source = ServiceLayers(where, sdk)
    return _ApiReloader(source, schema=ApiConfig, name=name, **options)


class _ApiReloader(HotReloader[ApiConfig]):
    """The preset's reloader: says at start which toolsets are in force, as the service's
    ``ConfigManager`` did at each apply (``toolsets=[...]``)."""

    __slots__ = ()

    async def __aenter__(self) -> HotReloader[ApiConfig]:
        await super().__aenter__()
        config = self.config
        enabled = [n for n, t in config.toolsets.items() if t.get("enabled") is not False]
        ContextLogger("hotreload.holmes", config=self.name).info(
            "holmes_toolsets_in_force",
            toolsets=capped(enabled),
            disabled=capped([n for n in config.toolsets if n not in enabled]),
            mcp_servers=capped(list(config.mcp_servers)),
            llm_provider=config.llm.provider,
            llm_model=config.llm.model,
            source=self.path,
            degraded=self.degraded,
        )
        return self


def cli_layers(files: Sequence[str], env_prefix: str | None = None) -> Layers:
    """``hotreload check --schema holmes config.yaml sdk-config.yaml``: the two files as the
    service reads them (`ServiceLayers`); any other set, the generic deep merge."""
    if len(files) == 2 and not env_prefix:
        return ServiceLayers(files[0], files[1])
    return Layers(*files, env_prefix=env_prefix)


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
    closed when the last of them ends. With an `LLMReachable` check (``llm_probe``), probation
    probes this client, the one requests get."""
    derived = reloader.derive(llm_client, on=("llm",), name="llm_client")
    probation = reloader.probation
    if probation is not None and isinstance(probation.check, LLMReachable):
        probation.check.client = derived
    return derived


LLMProbe = Callable[["httpx.AsyncClient", LLMConfig], Awaitable[bool]]
"""The service's reachability call for its LLM: ``await probe(client, config.llm)`` is True
when the model answers through ``client`` (False, or raising, when it does not)."""


class LLMReachable:
    """Probation's check for ``config.yaml``: after each commit, the service's own `LLMProbe`
    on the LLM client in force (the derived one, once `derive_llm_client` made it; else a
    client made for the probe and closed after it). A model the provider no longer serves,
    or an endpoint that does not answer, rolls the commit back before requests fail on it."""

    __slots__ = ("client", "probe")

    def __init__(self, probe: LLMProbe) -> None:
        self.probe = probe
        self.client: Derived[httpx.AsyncClient] | None = None

    def __repr__(self) -> str:  # the check's name in probation's evidence
        probe = getattr(self.probe, "__qualname__", None) or type(self.probe).__qualname__
        return f"llm_reachable({probe})"

    async def __call__(self, snapshot: Snapshot[ApiConfig]) -> bool:
        config = snapshot.config
        if self.client is not None:
            return bool(await self.probe(self.client.current, config.llm))
        async with llm_client(config) as client:
            return bool(await self.probe(client, config.llm))


def probation_from_env(
    environ: Mapping[str, str] | None = None, *, check: LLMReachable | None = None
) -> Probation:
    """Probation as the presets turn it on: a 60 s window, condemned by
    ``TOOLSET_MAX_FAILURES_BEFORE_RELOAD`` (default 3) consecutive failures of a dependency
    that was healthy at the commit, the spec's threshold."""
    return Probation(window=60.0, failures=failure_threshold_from_env(environ), check=check)


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
    log = ContextLogger("hotreload.holmes")
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

    ``failures`` has its threshold from ``TOOLSET_MAX_FAILURES_BEFORE_RELOAD`` unless given;
    ``validate_catalog`` runs unless ``HOLMESGPT_DEV_MODE=true``. Options pass through. No
    probation unless given (``probation=probation_from_env()``): BR-HAPI-190's own scenarios
    answer failures after a change with a re-check, which probation would answer with a
    rollback.
    """
    options.setdefault("namespace", NAMESPACE)
    options.setdefault("failures", Failures(threshold=failure_threshold_from_env(environ)))
    validators = list(options.pop("validators", ()))
    if not dev_mode_from_env(environ):
        validators.insert(0, validate_catalog)
    return HotReloader(path, schema=ToolsetCatalog, name=name, validators=validators, **options)
