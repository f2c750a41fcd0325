"""The HolmesGPT API page's Deployment fragment (docs/holmes.md) says what the preset reads."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import yaml

from hotreload.holmes import CONFIG_FILE_ENV, DEFAULT_PATH, HOT_RELOAD_ENV

PAGE = Path(__file__).resolve().parents[2] / "docs" / "holmes.md"


def test_the_deployment_mounts_the_directory_and_sets_the_presets_variables() -> None:
    text = PAGE.read_text()
    section = text[text.index("## Replacing holmesgpt-api's ConfigManager") :]
    body = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert body is not None
    spec = yaml.safe_load(body.group(1))
    [container] = spec["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env == {CONFIG_FILE_ENV: DEFAULT_PATH, HOT_RELOAD_ENV: "true"}
    [mount] = container["volumeMounts"]
    assert "subPath" not in mount
    assert mount["mountPath"] == posixpath.dirname(DEFAULT_PATH)
    [volume] = spec["volumes"]
    assert volume["name"] == mount["name"]
    assert volume["configMap"]["name"] == "holmesgpt-api-config"
