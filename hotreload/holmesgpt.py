"""Upstream HolmesGPT's config files (robusta-dev/holmesgpt), checked before it reads them.

Three files, as HolmesGPT reads them (schemas written from its source at commit ``c1ee1d4``):

* ``~/.holmes/config.yaml``, the CLI's config: `HolmesGPTConfig` mirrors its flat pydantic
  ``Config`` (36 fields, unknown keys refused, the ``SecretStr`` fields `Secret` here).
* ``/etc/holmes/config/custom_toolset.yaml``, the server's ``toolsets`` and ``mcp_servers``
  from the Helm chart's ConfigMap: `ToolsetFile` (the same two fields of `HolmesGPTConfig`).
* ``/etc/holmes/config/model_list.yaml``, name -> LiteLLM model entry: `ModelList`, checked by
  `validate_model_list` (``model`` required; other keys allowed: HolmesGPT passes them on).

Stricter than upstream on purpose, where upstream's own loader would silently drop a toolset:
its ``Config`` types each toolset as ``dict[str, Any]``, so ``enabeld: true`` or
``enabled: maybe`` loads fine and the toolset then vanishes with a log line. Here each
``toolsets``/``mcp_servers`` entry is typed with the keys of its ``Toolset`` model, so such a
file is refused with the field path (``toolsets.prometheus/metrics.enabeld``).
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ._fields import Secret
from ._reloader import HotReloader

__all__ = [
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
    "ToolsetFile",
    "Transformer",
    "create_model_list_reloader",
    "create_toolset_reloader",
    "validate_model_list",
]

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


class ToolsetFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The server's ``custom_toolset.yaml``: what the Helm chart's ConfigMap holds.

    Upstream's server fails to list its toolsets when this file has neither (the chart only
    renders it with one of them), so an empty one is refused.
    """

    toolsets: _Toolsets | None = None
    mcp_servers: _McpServers | None = None

    def __post_init__(self) -> None:
        if not self.toolsets and not self.mcp_servers:
            raise ValueError("custom_toolset.yaml needs a toolset or an MCP server")


class HolmesGPTConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``~/.holmes/config.yaml``: the fields of upstream's ``Config``, with its defaults.

    File paths (``custom_toolsets``, ``custom_runbooks``, ``alertmanager_file``) are checked
    as strings: upstream also requires the files to exist, which is the reading host's
    business, not the file's.
    """

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
    """Every entry is a mapping with a ``model``, and the keys HolmesGPT reads are typed.

    A validator rather than the schema because msgspec keeps no unknown keys, and these must
    reach LiteLLM: the config stays the file's mapping, checked entry by entry.
    """
    for name, entry in models.items():
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
