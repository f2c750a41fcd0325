"""The schemas mirror upstream HolmesGPT's models (robusta-dev/holmesgpt at c1ee1d4)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from hotreload._fields import FieldPolicy
from hotreload.holmesgpt import (
    HolmesGPTConfig,
    McpServer,
    Prerequisite,
    Toolset,
    ToolsetFile,
    validate_model_list,
)

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
    "custom_runbooks",
    "custom_toolsets",
    "custom_toolsets_from_cli",
    "should_try_robusta_ai",
    "toolsets",
    "mcp_servers",
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
    "additional_instructions",
    "prerequisites",
    "tools",
    "tags",
    "config",
    "is_default",
    "llm_instructions",
    "transformers",
    "type",
    "path",
    "status",
    "error",
    "url",
]


def test_config_has_upstreams_fields_and_defaults() -> None:
    assert [f.name for f in msgspec.structs.fields(HolmesGPTConfig)] == UPSTREAM_CONFIG_FIELDS
    default = HolmesGPTConfig()
    assert (default.max_steps, default.github_query, default.jira_query) == (40, "", "")
    assert (default.alertmanager_label, default.custom_runbooks) == ([], [])
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
    ("prerequisite", "ok"),
    [
        ({"command": "kubectl version", "expected_output": "v1"}, True),
        ({"env": ["PROMETHEUS_URL"]}, True),
        ({"enabled": False, "disabled_reason": "needs a license"}, True),
        ({}, False),
        ({"enabled": False}, False),
        ({"expected_output": "v1"}, False),
        ({"command": "true", "env": ["X"]}, False),
    ],
)
def test_a_prerequisite_is_one_of_three_kinds(prerequisite: dict[str, Any], ok: bool) -> None:
    if ok:
        msgspec.convert(prerequisite, Prerequisite, strict=True)
    else:
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(prerequisite, Prerequisite, strict=True)


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
    with pytest.raises(msgspec.ValidationError, match=r"unknown field `typ`"):
        msgspec.convert(tool_with_items({"typ": "string"}), ToolsetFile, strict=True)


def test_model_entries_keep_the_keys_litellm_gets() -> None:
    models = {"fast": {"model": "gpt-4o-mini", "temperature": 0, "drop_params": True}}
    validate_model_list(models)  # no error; and nothing is taken out
    assert models["fast"] == {"model": "gpt-4o-mini", "temperature": 0, "drop_params": True}
    with pytest.raises(ValueError, match=r"Expected `bool \| null`") as caught:
        validate_model_list({"fast": {"model": "m", "is_robusta_model": "yes"}})
    assert getattr(caught.value, "field_path", None) == "fast.is_robusta_model"


@pytest.mark.parametrize("doc", [{}, {"toolsets": {}, "mcp_servers": {}}, {"toolsets": None}])
def test_a_custom_toolset_file_without_toolsets_is_refused(doc: dict[str, Any]) -> None:
    """Upstream's server raises "No 'toolsets' or 'mcp_servers' key found" for such a file."""
    with pytest.raises(msgspec.ValidationError, match="needs a toolset or an MCP server"):
        msgspec.convert(doc, ToolsetFile, strict=True)
    msgspec.convert(doc, HolmesGPTConfig, strict=True)  # the CLI's config may have neither
