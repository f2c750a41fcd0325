"""Upstream HolmesGPT's config files (robusta-dev/holmesgpt), checked before it reads them.

Three files, as HolmesGPT reads them:

* ``~/.holmes/config.yaml``, the CLI's config: `HolmesGPTConfig`, the fields of its pydantic
  ``Config`` (unknown keys refused, as there; the ``SecretStr`` fields `Secret` here).
* ``/etc/holmes/config/custom_toolset.yaml``, the server's ``toolsets`` and ``mcp_servers``
  from the Helm chart's ConfigMap: `ToolsetFile` (the same two fields of `HolmesGPTConfig`).
* ``/etc/holmes/config/model_list.yaml``, name -> LiteLLM model entry: `ModelList`, checked by
  `validate_model_list` (``model`` required; other keys allowed: HolmesGPT passes them on).

Who decides. With the ``holmesgpt`` extra installed (``holmesgpt==0.45.0``), holmesgpt's own
models do (`hotreload._holmesgpt_upstream`): what it accepts is accepted, what it refuses is
refused, with the file, line and column added; `upstream_version` says which. Without it, the
hand model below decides, written from holmesgpt 0.45's models with the same rules: unknown
keys refused where holmesgpt refuses them (its ``Config``, a toolset entry), named with a
"did you mean" where it silently reads past them (a tool, a parameter, a prerequisite), which
``strict`` refuses. Either way the config readers get is these Structs. Stricter than
holmesgpt's loader, which would load the file and mark the toolset failed: a toolset entry it
cannot build (``enabeld: true``, ``enabled: maybe`` on a built-in, a tool with ``comand:``)
refuses the version, naming the field (``toolsets.prometheus/metrics.enabeld``).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from ._fields import Secret
from ._holmesgpt_live import (
    EXECUTOR_KEYS,
    MODEL_KEYS,
    ToolsetBuildError,
    derive_model_registry,
    derive_tool_executor,
    upstream_config,
)
from ._located import LocatedRefusal, problem_at, with_typo
from ._reloader import HotReloader
from ._schema import MsgspecSchema, Problem, Schema
from ._unknown import find_unknown

__all__ = [
    "BUILTIN_TOOLSETS",
    "EXECUTOR_KEYS",
    "MODEL_KEYS",
    "MODEL_LIST_PATH",
    "TOOLSET_PATH",
    "HolmesGPTConfig",
    "McpServer",
    "McpServerConfig",
    "ModelEntry",
    "ModelList",
    "ModelListError",
    "Prerequisite",
    "Tool",
    "ToolParameter",
    "Toolset",
    "ToolsetBuildError",
    "ToolsetFile",
    "Transformer",
    "create_model_list_reloader",
    "create_toolset_reloader",
    "derive_model_registry",
    "derive_tool_executor",
    "upstream_config",
    "upstream_version",
    "validate_model_list",
]

T = TypeVar("T")

#: Where the Helm chart (``helm/holmes``) mounts its ConfigMap's two keys.
TOOLSET_PATH = "/etc/holmes/config/custom_toolset.yaml"
MODEL_LIST_PATH = "/etc/holmes/config/model_list.yaml"

_NonEmpty = Annotated[str, Meta(min_length=1)]
_Secret = Annotated[str | None, Secret]

ToolsetTag = Literal["core", "cluster", "cli"]
ToolsetType = Literal["built-in", "custom", "mcp", "http", "database", "mongodb"]
ToolsetStatus = Literal["enabled", "disabled", "failed"]


class ToolParameter(msgspec.Struct, frozen=True, kw_only=True):
    """A tool's parameter (upstream ``ToolParameter``); objects and arrays nest.

    Unknown keys are named, not refused: upstream ignores them (its built-in
    ``inspektor_gadget.yaml`` has ``default:`` here, which does nothing).
    """

    description: str | None = None
    type: str | list[str] = "string"
    required: bool = True
    properties: dict[str, ToolParameter] | None = None
    items: ToolParameter | None = None
    enum: list[Any] | None = None
    additional_properties: bool | dict[str, Any] | None = None
    json_schema_extra: dict[str, Any] | None = None
    any_of: list[ToolParameter] | None = None


class Transformer(msgspec.Struct, frozen=True, kw_only=True):
    """A tool output transformer, such as ``llm_summarize`` (upstream ``Transformer``)."""

    name: _NonEmpty
    config: dict[str, Any] = {}


class Tool(msgspec.Struct, frozen=True, kw_only=True):
    """A YAML tool: a Jinja2 ``command`` or ``script`` the LLM may run (upstream ``YAMLTool``).

    Upstream ignores unknown keys here (its built-in ``cilium.yaml`` has ``args:``): they are
    named with a "did you mean", and ``strict`` refuses them. A tool with neither ``command``
    nor ``script`` makes upstream fail the whole toolset: refused.
    """

    name: _NonEmpty
    description: str
    command: str | None = None
    script: str | None = None
    parameters: dict[str, ToolParameter] = {}
    user_description: str | None = None
    icon_url: str | None = None
    transformers: list[Transformer] | None = None

    def __post_init__(self) -> None:
        if self.command is None and self.script is None:
            raise ValueError("a tool needs a `command` or a `script`")


class Prerequisite(msgspec.Struct, frozen=True, kw_only=True):
    """One of upstream's prerequisite kinds: ``command`` (with ``expected_output``), ``env``
    (variables that must be set), or static ``enabled`` with ``disabled_reason``.

    Upstream reads a mapping that fits none of them as an ``env`` prerequisite with no
    variables, which always passes (``cmd: ...`` does nothing): accepted, and its keys named.
    """

    command: str | None = None
    expected_output: str | None = None
    env: list[str] | None = None
    enabled: bool | None = None
    disabled_reason: str | None = None


class Toolset(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An entry of ``toolsets``: a built-in toolset's overrides or a custom toolset.

    The keys of upstream's ``Toolset`` model (plus ``url``, which its config loader accepts
    for MCP). ``name`` is not one of them: the map's key is the name, and upstream drops an
    entry that repeats it. ``config`` is the toolset's own settings (a Prometheus URL, ...).
    """

    enabled: bool | None = None
    description: str | None = None
    config: Any = None
    tools: list[Tool] | None = None
    prerequisites: list[Prerequisite] = []
    tags: list[ToolsetTag] | None = None
    type: ToolsetType | None = None
    experimental: bool = False
    docs_url: str | None = None
    icon_url: str | None = None
    installation_instructions: str | None = None
    llm_instructions: str | None = None
    transformers: list[Transformer] | None = None
    approval_required_tools: list[str] = []
    expose_remotely: bool = False
    status_refresh_interval_seconds: Annotated[int, Meta(gt=0)] | None = None
    subtype: str | None = None
    meta: dict[str, Any] | None = None
    url: str | None = None
    path: str | None = None
    status: ToolsetStatus | None = None
    error: str | None = None


class McpServerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How to reach an MCP server: upstream's ``MCPConfig`` (``sse``/``streamable-http``,
    ``url`` required) or ``StdioMCPConfig`` (``stdio``, ``command`` required), which upstream
    checks when it connects. Other keys are named, not refused (upstream keeps them)."""

    mode: Literal["sse", "streamable-http", "stdio"] = "sse"
    url: str | None = None
    headers: dict[str, str] | None = None
    verify_ssl: bool = True
    extra_headers: dict[str, str] | None = None
    icon_url: str | None = None
    oauth: dict[str, Any] | None = None
    health_check_tool: str | None = None
    command: str | None = None
    args: list[str] | None = None
    env: dict[str, str] | None = None


class McpServer(Toolset, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An entry of ``mcp_servers``: a toolset whose tools come from an MCP server.

    Its ``url`` goes in ``config`` (upstream still moves a top-level ``url`` there, with a
    warning). Without one (or a stdio ``command``), upstream marks the server failed when it
    connects: refused here.
    """

    config: McpServerConfig | None = None
    type: Literal["mcp"] | None = None

    def __post_init__(self) -> None:
        config = self.config or McpServerConfig()
        if config.mode == "stdio":
            if not config.command:
                raise ValueError("a stdio MCP server needs a `command` (in `config`)")
        elif self.url is None and config.url is None:
            raise ValueError("an MCP server needs a `url` (in `config`)")


_Toolsets = dict[_NonEmpty, Toolset]
_McpServers = dict[_NonEmpty, McpServer]


class ToolsetFile(msgspec.Struct, frozen=True, kw_only=True):
    """The server's ``custom_toolset.yaml``: what the Helm chart's ConfigMap holds.

    Upstream reads only these two keys (others are named, ``strict`` refuses them) and fails
    to load a file that has neither, so an empty one is refused.
    """

    @classmethod
    def __hotreload_adapter__(cls) -> Schema[ToolsetFile]:
        return _upstream_schema(cls, "toolset_file")

    toolsets: _Toolsets | None = None
    mcp_servers: _McpServers | None = None

    def __post_init__(self) -> None:
        if not self.toolsets and not self.mcp_servers:
            raise ValueError("custom_toolset.yaml needs a toolset or an MCP server")


class HolmesGPTConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``~/.holmes/config.yaml``: the fields of upstream's ``Config``, with its defaults.

    File paths (``custom_toolsets``, ``alertmanager_file``) are strings here; holmesgpt (the
    extra) also requires the files to exist where the check runs.
    """

    @classmethod
    def __hotreload_adapter__(cls) -> Schema[HolmesGPTConfig]:
        return _upstream_schema(cls, "config")

    model: str | None = None
    api_key: _Secret = None
    api_base: str | None = None
    api_version: str | None = None
    fast_model: str | None = None
    max_steps: int = 100
    cluster_name: str | None = None

    alertmanager_url: str | None = None
    alertmanager_username: str | None = None
    alertmanager_password: _Secret = None
    alertmanager_alertname: str | None = None
    alertmanager_label: list[str] | None = []
    alertmanager_file: str | None = None

    jira_url: str | None = None
    jira_username: str | None = None
    jira_api_key: _Secret = None
    jira_query: str | None = ""

    github_url: str | None = None
    github_owner: str | None = None
    github_pat: _Secret = None
    github_repository: str | None = None
    github_query: str = ""

    slack_token: _Secret = None
    slack_channel: str | None = None

    pagerduty_api_key: _Secret = None
    pagerduty_user_email: str | None = None
    pagerduty_incident_key: str | None = None

    opsgenie_api_key: _Secret = None
    opsgenie_team_integration_key: _Secret = None
    opsgenie_query: str | None = None

    custom_skill_paths: list[str] = []
    skill_repos: list[dict[str, Any]] = []
    custom_toolsets: list[str] | None = None
    custom_toolsets_from_cli: list[str] | None = None
    should_try_robusta_ai: bool = False
    anchors: Any = None

    toolsets: _Toolsets | None = None
    mcp_servers: _McpServers | None = None
    additional_toolsets: list[dict[str, Any]] | None = None


# -- the rules a Struct cannot say -----------------------------------------------------------

#: holmesgpt 0.45's built-in toolsets (its default environment; ``load_builtin_toolsets``).
#: A ``toolsets`` entry of another name is a custom toolset, which needs a ``description``
#: and ``tools``: an old name (``kubernetes/kube-lineage-extras``, ``aws/security``) is one.
BUILTIN_TOOLSETS = frozenset(
    {
        *("MongoDBAtlas", "aks/core", "aks/node-health", "argocd/core", "bash", "cilium/core"),
        *("confluence", "connectivity_check", "coralogix", "core_investigation"),
        *("crossplane/core", "database/sql", "datadog/general", "datadog/logs"),
        *("datadog/metrics", "datadog/traces", "docker/core", "elasticsearch/cluster"),
        *("elasticsearch/data", "grafana/dashboards", "grafana/loki", "grafana/tempo"),
        *("helm/core", "hubble/observability", "inspektor-gadget/node"),
        *("inspektor-gadget/tcpdump", "internet", "kafka/admin", "kubernetes/core"),
        *("kubernetes/kube-prometheus-stack", "kubernetes/live-metrics", "kubernetes/logs"),
        *("kubevela/core", "newrelic", "notion", "opensearch/query_assist", "openshift/core"),
        *("openshift/live-metrics", "openshift/logs", "openshift/security"),
        *("prometheus/metrics", "prometheus/multi-tenant-metrics", "rabbitmq/core", "robusta"),
        *("servicenow/tables", "skills", "slab", "victorialogs"),
    }
)
_RENAMED = {"coralogix/logs": "coralogix", "runbook": "skills"}  # still read, with a warning
_REMOVED = frozenset({"kubectl-run"})  # skipped, with a warning
_TYPED = frozenset({"mcp", "http", "database", "mongodb"})  # built by their own classes


def _not_builtin(name: str) -> str:
    return (
        f"`{name}` is not one of holmesgpt's built-in toolsets: a custom toolset needs "
        "`description` and `tools`"
    )


def _custom_toolsets_complete(data: Any) -> None:
    """A ``toolsets`` entry that is not a built-in's override is a custom toolset, which
    holmesgpt builds only with a ``description`` and ``tools`` (else it marks it failed)."""
    toolsets = data.get("toolsets") if isinstance(data, dict) else None
    for key, entry in toolsets.items() if isinstance(toolsets, dict) else ():
        name = str(key)
        if _RENAMED.get(name, name) in BUILTIN_TOOLSETS or name in _REMOVED:
            continue
        if not isinstance(entry, dict) or entry.get("type") in _TYPED:
            continue
        for field in ("description", "tools"):
            if entry.get(field) is None:
                where = ("toolsets", name, field)
                raise LocatedRefusal(
                    f"missing field `{field}` ({_not_builtin(name)})", where, missing=True
                )


class _HandSchema(MsgspecSchema[Any]):
    """The hand model deciding (holmesgpt not installed): the Structs, then the rules above."""

    __slots__ = ()

    errors = (msgspec.ValidationError, LocatedRefusal)

    def __init__(self, schema: type[Any]) -> None:
        super().__init__(schema)
        structs = self.convert

        def convert(data: Any) -> Any:
            config = structs(data)
            _custom_toolsets_complete(data)
            return config

        self.convert = convert

    def problem(self, exc: Exception, data: Any) -> Problem:
        found = problem_at(exc, data) if isinstance(exc, LocatedRefusal) else None
        problem = found or super().problem(exc, data)
        return with_typo(problem, find_unknown(self.schema, data))


# -- who decides ------------------------------------------------------------------------------


def upstream_version() -> str | None:
    """The holmesgpt version whose models decide validity, or None: not installed (the
    ``holmesgpt`` extra), the hand model decides."""
    upstream = _upstream()
    return None if upstream is None else upstream.VERSION


def _upstream() -> Any:
    """The adapter module, or None when holmesgpt is not installed (or blocked, as
    ``sys.modules["holmes"] = None`` does). Installed but failing to import: that raises."""
    try:
        if importlib.util.find_spec("holmes") is None:
            return None
    except ValueError:  # sys.modules["holmes"] is None
        return None
    from . import _holmesgpt_upstream  # noqa: PLC0415 - the optional extra, only here

    return _holmesgpt_upstream


def _upstream_schema(cls: type[T], kind: str) -> Schema[T]:
    upstream = _upstream()
    schema: Schema[T]
    if upstream is None:
        schema = _HandSchema(cls)
    elif kind == "config":
        schema = upstream.UpstreamSchema(cls, upstream.validate_config, top=None)
    else:
        schema = upstream.UpstreamSchema(cls, upstream.validate_toolset_file, top=list(_SECTIONS))
    return schema


_SECTIONS = ("toolsets", "mcp_servers")


# -- model_list.yaml -------------------------------------------------------------------------

ModelList = dict[str, dict[str, Any]]
"""``model_list.yaml`` as loaded: name -> the entry's keys, the unknown ones included (they
are LiteLLM arguments). `validate_model_list` checks the keys HolmesGPT itself reads. Being
plain dicts, readers share them: copy an entry before changing it."""


class ModelEntry(msgspec.Struct, frozen=True, kw_only=True):
    """The keys of an entry HolmesGPT reads (upstream ``ModelEntry``, ``extra="allow"``)."""

    model: _NonEmpty
    name: str | None = None
    api_key: _Secret = None
    base_url: str | None = None
    api_base: str | None = None
    api_version: str | None = None
    is_robusta_model: bool | None = None
    custom_args: dict[str, Any] | None = None


class ModelListError(ValueError):
    """An entry of ``model_list.yaml`` HolmesGPT would refuse; ``field_path`` says where."""

    def __init__(self, message: str, field_path: str) -> None:
        super().__init__(message)
        self.field_path = field_path


def validate_model_list(models: ModelList) -> None:
    """Every entry is a mapping with a ``model``, and the keys HolmesGPT reads are typed
    (holmesgpt's own ``ModelEntry`` with the extra, `ModelEntry` without).

    A validator rather than the schema because msgspec keeps no unknown keys, and these must
    reach LiteLLM: the config stays the file's mapping, checked entry by entry.
    """
    upstream = _upstream()
    for name, entry in models.items():
        if upstream is not None:  # holmesgpt's own ModelEntry decides
            refusal = upstream.validate_model_entry(name, entry)
            if refusal is not None:
                path = ".".join(str(step) for step in refusal.loc)
                raise ModelListError(f"model {name!r}: {refusal.message}", path)
            continue
        try:
            msgspec.convert(entry, ModelEntry, strict=True)
        except msgspec.ValidationError as exc:
            message, _, where = str(exc).partition(" - at `$")
            field = _missing_field(message) or where.rstrip("`").lstrip(".")
            path = f"{name}.{field}" if field else name
            raise ModelListError(f"model {name!r}: {message}", path) from None


def _missing_field(message: str) -> str:
    _, sep, rest = message.partition("missing required field `")
    return rest.split("`", 1)[0] if sep else ""


# -- ready-made reloaders --------------------------------------------------------------------


def create_toolset_reloader(
    path: str | os.PathLike[str] = TOOLSET_PATH,
    *,
    name: str = "holmes-toolsets",
    **options: Any,
) -> HotReloader[ToolsetFile]:
    """A `HotReloader` of the server's ``custom_toolset.yaml``; options pass through."""
    return HotReloader(path, schema=ToolsetFile, name=name, **options)


def create_model_list_reloader(
    path: str | os.PathLike[str] = MODEL_LIST_PATH,
    *,
    name: str = "holmes-models",
    **options: Any,
) -> HotReloader[ModelList]:
    """A `HotReloader` of ``model_list.yaml`` with `validate_model_list`; options pass through."""
    validators = [validate_model_list, *options.pop("validators", ())]
    return HotReloader(path, schema=ModelList, name=name, validators=validators, **options)
