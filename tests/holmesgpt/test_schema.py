"""The hand model mirrors holmesgpt 0.45's models; with the package installed, it is checked
against them field by field (what would drift when holmesgpt moves on)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from hotreload._fields import FieldPolicy
from hotreload.holmesgpt import (
    BUILTIN_TOOLSETS,
    HolmesGPTConfig,
    McpServer,
    McpServerConfig,
    ModelEntry,
    Prerequisite,
    Tool,
    ToolParameter,
    Toolset,
    ToolsetFile,
    Transformer,
    validate_model_list,
)
from tests.holmesgpt.conftest import need_upstream

# holmes/config.py `Config`, in its order
UPSTREAM_CONFIG_FIELDS = [
    "model",
    "api_key",
    "api_base",
    "api_version",
    "fast_model",
    "max_steps",
    "cluster_name",
    "alertmanager_url",
    "alertmanager_username",
    "alertmanager_password",
    "alertmanager_alertname",
    "alertmanager_label",
    "alertmanager_file",
    "jira_url",
    "jira_username",
    "jira_api_key",
    "jira_query",
    "github_url",
    "github_owner",
    "github_pat",
    "github_repository",
    "github_query",
    "slack_token",
    "slack_channel",
    "pagerduty_api_key",
    "pagerduty_user_email",
    "pagerduty_incident_key",
    "opsgenie_api_key",
    "opsgenie_team_integration_key",
    "opsgenie_query",
    "custom_skill_paths",
    "skill_repos",
    "custom_toolsets",
    "custom_toolsets_from_cli",
    "should_try_robusta_ai",
    "anchors",
    "toolsets",
    "mcp_servers",
    "additional_toolsets",
]
# its `SecretStr` fields, and the one password it keeps as a plain str
UPSTREAM_SECRETS = [
    "api_key",
    "jira_api_key",
    "github_pat",
    "slack_token",
    "pagerduty_api_key",
    "opsgenie_api_key",
    "opsgenie_team_integration_key",
    "alertmanager_password",
]
# holmes/core/tools.py `Toolset` without `name` (the map key), plus `url` from
# `ToolsetYamlFromConfig`
UPSTREAM_TOOLSET_FIELDS = [
    "experimental",
    "enabled",
    "description",
    "docs_url",
    "icon_url",
    "installation_instructions",
    "prerequisites",
    "tools",
    "tags",
    "config",
    "llm_instructions",
    "transformers",
    "approval_required_tools",
    "expose_remotely",
    "status_refresh_interval_seconds",
    "type",
    "path",
    "status",
    "error",
    "meta",
    "subtype",
    "url",
]


def test_config_has_upstreams_fields_and_defaults() -> None:
    assert [f.name for f in msgspec.structs.fields(HolmesGPTConfig)] == UPSTREAM_CONFIG_FIELDS
    default = HolmesGPTConfig()
    assert (default.max_steps, default.github_query, default.jira_query) == (100, "", "")
    assert (default.alertmanager_label, default.custom_skill_paths) == ([], [])
    assert default.should_try_robusta_ai is False
    assert default.toolsets is None
    assert default.model is None


def test_the_secretstr_fields_are_secret() -> None:
    policy = FieldPolicy(HolmesGPTConfig)
    for name in UPSTREAM_SECRETS:
        assert policy.is_secret((name,)), name
    assert ("github_pat",) in policy.secrets  # declared: no name rule would catch it
    assert not policy.is_secret(("github_repository",))


@pytest.mark.parametrize("model", [Toolset, McpServer])
def test_toolset_entries_have_upstreams_keys(model: type[msgspec.Struct]) -> None:
    assert {f.name for f in msgspec.structs.fields(model)} == set(UPSTREAM_TOOLSET_FIELDS)


@pytest.mark.parametrize(
    "prerequisite",
    [
        {"command": "kubectl version", "expected_output": "v1"},
        {"env": ["PROMETHEUS_URL"]},
        {"enabled": False, "disabled_reason": "needs a license"},
        {},  # holmesgpt reads these as an `env` prerequisite with no variables: it passes
        {"enabled": False},
        {"cmd": "kubectl version"},
    ],
)
def test_a_prerequisite_is_read_as_holmesgpt_reads_it(prerequisite: dict[str, Any]) -> None:
    msgspec.convert(prerequisite, Prerequisite, strict=True)


def test_the_hand_model_has_holmesgpts_fields_and_builtin_toolsets() -> None:
    """Each hand Struct declares what holmesgpt's model of it declares; the built-in names
    are its ``load_builtin_toolsets()``'s."""
    need_upstream()
    from holmes.config import Config
    from holmes.core import tools
    from holmes.core.llm import ModelEntry as UpstreamModelEntry
    from holmes.core.transformers.transformer import Transformer as UpstreamTransformer
    from holmes.plugins.toolsets.mcp.toolset_mcp import MCPConfig, StdioMCPConfig

    from hotreload import _holmesgpt_upstream

    def names(struct: Any) -> set[str]:
        return {f.encode_name for f in msgspec.structs.fields(struct)}

    def upstream(*models: Any) -> set[str]:
        return {name for model in models for name in model.model_fields}

    assert names(HolmesGPTConfig) == upstream(Config)
    assert names(Toolset) | {"name"} == upstream(tools.Toolset, tools.ToolsetYamlFromConfig)
    assert names(Tool) == upstream(tools.YAMLTool)
    assert names(ToolParameter) == upstream(tools.ToolParameter)
    assert names(Transformer) == upstream(UpstreamTransformer)
    prerequisites = (
        tools.StaticPrerequisite,
        tools.ToolsetCommandPrerequisite,
        tools.ToolsetEnvironmentPrerequisite,
    )
    assert names(Prerequisite) == upstream(*prerequisites)
    assert names(McpServerConfig) == upstream(MCPConfig, StdioMCPConfig)
    assert names(ModelEntry) <= upstream(UpstreamModelEntry)
    assert set(BUILTIN_TOOLSETS) == _holmesgpt_upstream.builtin_names()


def tool_with_items(items: dict[str, Any]) -> dict[str, Any]:
    labels = {"type": "array", "items": items}
    parameter = {"type": "object", "properties": {"labels": labels}}
    tool = {
        "name": "q",
        "description": "query",
        "command": "q {{ f }}",
        "parameters": {"f": parameter},
    }
    return {"toolsets": {"mine": {"tools": [tool]}}}


def test_tool_parameters_nest() -> None:
    config = msgspec.convert(tool_with_items({}), ToolsetFile, strict=True)
    tools = (config.toolsets or {})["mine"].tools or []
    labels = (tools[0].parameters["f"].properties or {})["labels"]
    assert labels.items is not None
    assert labels.items.type == "string"
    with pytest.raises(msgspec.ValidationError, match=r"Expected `str \| array`"):
        msgspec.convert(tool_with_items({"type": 1}), ToolsetFile, strict=True)


def test_model_entries_keep_the_keys_litellm_gets(authority: str) -> None:
    models = {"fast": {"model": "gpt-4o-mini", "temperature": 0, "drop_params": True}}
    validate_model_list(models)  # no error; and nothing is taken out
    assert models["fast"] == {"model": "gpt-4o-mini", "temperature": 0, "drop_params": True}
    with pytest.raises(ValueError, match=r"`bool|boolean") as caught:
        validate_model_list({"fast": {"model": "m", "is_robusta_model": "maybe"}})
    assert getattr(caught.value, "field_path", None) == "fast.is_robusta_model"


@pytest.mark.parametrize("doc", [{}, {"toolsets": {}, "mcp_servers": {}}, {"toolsets": None}])
@pytest.mark.usefixtures("hand")
def test_a_custom_toolset_file_without_toolsets_is_refused(doc: dict[str, Any]) -> None:
    """Upstream's server raises "No 'toolsets' or 'mcp_servers' key found" for such a file."""
    with pytest.raises(msgspec.ValidationError, match="needs a toolset or an MCP server"):
        msgspec.convert(doc, ToolsetFile, strict=True)
    msgspec.convert(doc, HolmesGPTConfig, strict=True)  # the CLI's config may have neither
