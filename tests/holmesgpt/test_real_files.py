"""Upstream HolmesGPT's own config files pass ``hotreload check``; other kinds of file don't.

The files under ``data/`` are copied from robusta-dev/holmesgpt (``data/SOURCES.md`` says from
where): its config example, every distinct toolset fixture of its LLM tests, the docs'
``config.yaml`` examples, and the Helm chart's ConfigMap rendered for its defaults and for
each Helm values example of the docs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hotreload.cli import main
from hotreload.holmesgpt import BUILTIN_TOOLSETS

DATA = Path(__file__).parent / "data"


def files(folder: str, pattern: str = "*.yaml") -> list[Path]:
    return sorted((DATA / folder).glob(pattern))


CONFIGS = files("config") + files("toolsets") + files("chart", "*custom_toolset.yaml")
MODEL_LISTS = files("chart", "*model_list.yaml")


def check(
    path: Path, schema: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any]]:
    code = main(["check", str(path), "--schema", schema, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_the_data_set_is_all_there() -> None:
    """Guards the parametrised tests below against an empty or shrunken glob."""
    assert len(files("config")) >= 60  # the config example and the docs' examples
    assert len(files("toolsets")) == 53  # examples/custom_toolset.yaml + 52 distinct fixtures
    assert len(files("chart", "*custom_toolset.yaml")) >= 40
    assert len(MODEL_LISTS) >= 30
    listed = (DATA / "SOURCES.md").read_text()
    for path in CONFIGS + MODEL_LISTS + files("refused", "*.*"):
        assert f"`{path.relative_to(DATA)}`" in listed, path


# Only holmesgpt's own models refuse it (the hand model checks no URL syntax).
ONLY_HOLMESGPT_REFUSES = {
    "docs-data-sources-remote-mcp-servers-2.yaml": "mcp_servers.mcp_server_2.config.url",
}


# holmesgpt 0.45 reads these old names as the new built-in (with a warning) or skips them.
STILL_READ = {"coralogix/logs", "runbook", "kubectl-run"}


def gone(path: Path) -> str | None:
    """The first toolset of ``path`` that holmesgpt 0.45 no longer has as a built-in (these
    files are from an older holmesgpt) and that, as a custom one, lacks its description."""
    data = yaml.safe_load(path.read_text())
    for name, entry in (data.get("toolsets") or {}).items():
        if name in STILL_READ or name in BUILTIN_TOOLSETS:
            continue
        if "description" not in (entry or {}):
            return f"toolsets.{name}.description"
    return None


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_upstream_config_files_pass(
    path: Path, authority: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each passes, but for the toolsets holmesgpt 0.45 renamed or removed: refused, naming
    the entry (holmesgpt would load the file and mark that toolset failed)."""
    code, report = check(path, "holmesgpt", capsys)
    refused = gone(path)
    if authority == "holmesgpt" and path.name in ONLY_HOLMESGPT_REFUSES:
        refused = ONLY_HOLMESGPT_REFUSES[path.name]
    if refused is None:
        assert code == 0, report
        assert report["valid"] is True
    else:
        assert code == 1, report
        assert report["field_path"] == refused


@pytest.mark.parametrize("path", MODEL_LISTS, ids=lambda p: p.name)
def test_rendered_model_lists_pass(
    path: Path, authority: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = check(path, "holmesgpt-models", capsys)
    assert code == 0, report


# Other kinds of file, refused by both presets.
OTHER_KINDS = {
    "helm-values.yaml": ("unknown field `certificate`", "got `str` at `certificate`"),
    "template-toolset-config.yaml": ("while parsing a flow node", "while parsing a flow node"),
    "template-holmes.yaml": ("did not find expected key", "did not find expected key"),
    "runbook-catalog.json": ("unknown field `catalog`", "got `array` at `catalog`"),
    "custom_runbooks.yaml": ("unknown field `runbooks`", "got `array` at `runbooks`"),
}


@pytest.mark.parametrize("name", sorted(OTHER_KINDS))
@pytest.mark.parametrize("schema", ["holmesgpt", "holmesgpt-models"])
def test_other_kinds_of_file_are_refused(
    name: str, schema: str, authority: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = check(DATA / "refused" / name, schema, capsys)
    assert code == 1
    assert report["valid"] is False
    want = OTHER_KINDS[name][schema == "holmesgpt-models"]
    if authority == "holmesgpt" and schema == "holmesgpt" and "unknown field" in want:
        want = "Extra inputs are not permitted"
    assert want in report["error"], report


# Upstream files that upstream itself cannot use: each refused, naming where.
UPSTREAM_MISTAKES = {
    # a string where upstream's Toolset model wants a list: upstream drops these toolsets
    "docs-data-sources-custom-toolsets-0.yaml": ("toolsets.grafana.prerequisites", 4),
    "docs-data-sources-custom-toolsets-2.yaml": ("toolsets.k8s-diagnostics.prerequisites", 4),
    "docs-data-sources-custom-toolsets-4.yaml": ("toolsets.github.prerequisites", 4),
    "docs-data-sources-custom-toolsets-6.yaml": ("toolsets.<toolset-name>.prerequisites", 4),
    # `kafka_password: ******` is a YAML alias with no name: not YAML at all
    "docs-data-sources-builtin-toolsets-kafka-0.yaml": ("", 9),
}


@pytest.mark.parametrize("name", sorted(UPSTREAM_MISTAKES))
def test_broken_upstream_examples_are_refused_where_they_break(
    name: str, authority: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = check(DATA / "refused" / name, "holmesgpt", capsys)
    field_path, line = UPSTREAM_MISTAKES[name]
    assert code == 1
    assert (report["field_path"] or "") == field_path
    assert report["line"] == line


def test_the_all_comments_example_is_an_empty_document(
    authority: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``config.example.yaml`` is all comments: HolmesGPT reads that as "all defaults", the
    engine as a file caught mid-write (its settings, uncommented, are in ``config/``)."""
    code, report = check(DATA / "refused" / "config.example.yaml", "holmesgpt", capsys)
    assert code == 1
    assert "the document is empty" in report["message"]


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        (DATA / "chart" / "aws-mcp-custom_toolset.yaml", "holmesgpt"),
        (DATA / "chart" / "docs-ai-providers-aws-bedrock-0-model_list.yaml", "holmesgpt-models"),
        (DATA / "refused" / "helm-values.yaml", "holmesgpt-models"),
    ],
)
def test_the_installed_command_runs_the_presets(path: Path, schema: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hotreload", "check", str(path), "--schema", schema],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == (1 if path.parent.name == "refused" else 0), proc.stderr


def test_the_cli_imports_the_preset_only_when_asked(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("llm: {provider: openai, model: gpt-4}\n")
    code = (
        "import sys; from hotreload.cli import main; "
        "assert main(['check', sys.argv[1], '--schema', 'holmes']) == 0; "
        "assert 'hotreload.holmesgpt' not in sys.modules; "
        "assert main(['check', sys.argv[2], '--schema', 'holmesgpt']) == 0; "
        "assert 'hotreload.holmesgpt' in sys.modules"
    )
    chart = DATA / "chart" / "default-custom_toolset.yaml"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(config), str(chart)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
