"""Common mistakes in HolmesGPT's real files: each refused, naming the field and its line,
whoever decides (holmesgpt's own models, or the hand model without them).

Each case is one edit of a real upstream file (``data/``). Several are ones holmesgpt's own
loader accepts and then acts on: a misspelt ``enabled`` or ``enabled: maybe`` on a built-in,
an unknown tag, a tool with ``comand:``, and it loads the file with that toolset failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hotreload.cli import main

DATA = Path(__file__).parent / "data"
CHART = DATA / "chart" / "default-custom_toolset.yaml"
AWS = DATA / "chart" / "aws-mcp-custom_toolset.yaml"
EXAMPLE = DATA / "toolsets" / "examples-custom_toolset.yaml"
MCP = DATA / "config" / "docs-data-sources-remote-mcp-servers-0.yaml"
CLI = DATA / "config" / "config.example-0.45.yaml"
MODELS = DATA / "chart" / "docs-ai-providers-anthropic-0-model_list.yaml"

# (file, text to replace, replacement, schema, the field path named: one, or one and the
# authorities that name another)
MISTAKES: dict[str, tuple[Path, str, str, str, str | tuple[str, dict[str, str]]]] = {
    "misspelt enabled": (
        CHART,
        "prometheus/metrics:\n    enabled: true",
        "prometheus/metrics:\n    enabeld: true",
        "holmesgpt",
        "toolsets.prometheus/metrics.enabeld",
    ),
    "enabled: maybe": (
        CHART,
        "robusta:\n    enabled: true",
        "robusta:\n    enabled: maybe",
        "holmesgpt",
        "toolsets.robusta.enabled",
    ),
    "mcp_server for mcp_servers": (
        AWS,
        "mcp_servers:",
        "mcp_server:",
        "holmesgpt",
        "mcp_server",
    ),
    "an MCP server without its url": (
        AWS,
        "\n    url: http://holmes-aws-mcp-server.default.svc.cluster.local:8000",
        "",
        "holmesgpt",
        "mcp_servers.aws_api",
    ),
    "an MCP mode that does not exist": (
        MCP,
        "mode: streamable-http",
        "mode: http",
        "holmesgpt",
        "mcp_servers.my_server.config.mode",
    ),
    "a toolset that repeats its name": (
        EXAMPLE,
        "  switch_clusters:\n",
        "  switch_clusters:\n    name: switch_clusters\n",
        "holmesgpt",
        "toolsets.switch_clusters.name",
    ),
    "a tag upstream does not have": (
        EXAMPLE,
        "    tags:\n      - core",
        "    tags:\n      - monitoring",
        "holmesgpt",
        "toolsets.switch_clusters.tags[0]",
    ),
    "a misspelt command in a tool": (
        EXAMPLE,
        '        command: "kubectl config use-context',
        '        comand: "kubectl config use-context',
        "holmesgpt",
        "toolsets.switch_clusters.tools[0].comand",
    ),
    "a misspelt top-level field": (
        CLI,
        'model: "gpt-4.1"',
        'modle: "gpt-4.1"',
        "holmesgpt",
        "modle",
    ),
    "a list where a string goes": (
        CLI,
        'jira_url: "https://your-company.atlassian.net"',
        "jira_url: [https://your-company.atlassian.net]",
        "holmesgpt",
        "jira_url",
    ),
    "a model entry without model": (
        MODELS,
        "  model: anthropic/claude-opus-4-1-20250805\n",
        "",
        "holmesgpt-models",
        "claude-opus-4.model",
    ),
    "a model that is not a string": (
        MODELS,
        "model: claude-sonnet-4-20250514",
        "model: [claude-sonnet-4-20250514]",
        "holmesgpt-models",
        "claude-sonnet-4.model",
    ),
    "a model entry that is not a mapping": (
        MODELS,
        "claude-opus-4:\n",
        "claude-opus-4: anthropic/claude-opus-4\nunused:\n",
        "holmesgpt-models",
        "claude-opus-4",
    ),
}


def named(case: str, authority: str) -> str:
    expected = MISTAKES[case][4]
    if isinstance(expected, str):
        return expected
    default, others = expected
    return others.get(authority, default)


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_a_common_mistake_is_refused_naming_the_field(
    case: str, authority: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, old, new, schema, _ = MISTAKES[case]
    field_path = named(case, authority)
    text = source.read_text()
    assert text.count(old) == 1, "the edit must hit exactly one place"
    path = tmp_path / source.name
    path.write_text(text.replace(old, new))
    assert main(["check", str(source), "--schema", schema]) == 0  # the real file passes
    capsys.readouterr()

    assert main(["check", str(path), "--schema", schema, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["field_path"] == field_path, report
    assert f"`{field_path}`" in report["error"]


@pytest.mark.parametrize(
    "case", sorted(c for c in MISTAKES if MISTAKES[c][3] == "holmesgpt" and MISTAKES[c][2])
)
def test_the_line_of_the_mistake_is_named(
    case: str, authority: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, old, new, schema, _ = MISTAKES[case]
    text = source.read_text().replace(old, new)
    path = tmp_path / source.name
    path.write_text(text)
    main(["check", str(path), "--schema", schema, "--json"])
    report = json.loads(capsys.readouterr().out)
    edited_last = text.index(new) + len(new.rstrip("\n"))  # the edit's last line
    assert report["line"] == text.count("\n", 0, edited_last) + 1, report


def test_secrets_are_masked_in_a_diff_and_never_quoted(
    authority: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ``SecretStr`` fields are secret here too, ``github_pat`` included (no name rule
    catches it); a model entry's ``api_key`` is masked by name."""
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    text = CLI.read_text()
    old.write_text(text.replace('github_pat: "..."', 'github_pat: "ghp-PLANTED-old"'))
    new.write_text(text.replace('github_pat: "..."', 'github_pat: "ghp-PLANTED-new"'))
    assert main(["check", str(new), "--schema", "holmesgpt", "--against", str(old)]) == 0
    out = capsys.readouterr().out
    assert 'github_pat: "***" -> "***"' in out
    assert "PLANTED" not in out

    models = MODELS.read_text()
    old.write_text(models.replace("'{{ env.ANTHROPIC_API_KEY }}'", "sk-PLANTED-1", 1))
    new.write_text(models.replace("'{{ env.ANTHROPIC_API_KEY }}'", "sk-PLANTED-2", 1))
    assert main(["check", str(new), "--schema", "holmesgpt-models", "--against", str(old)]) == 0
    out = capsys.readouterr().out
    assert 'claude-opus-4.api_key: "***" -> "***"' in out
    assert "PLANTED" not in out

    new.write_text(models.replace("model: claude-sonnet-4-20250514", "model: {sk-PLANTED: 1}"))
    assert main(["check", str(new), "--schema", "holmesgpt-models", "--json"]) == 1
    assert "PLANTED" not in capsys.readouterr().out
