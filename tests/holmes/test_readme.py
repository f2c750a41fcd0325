"""The HolmesGPT API page's Deployment fragment (docs/holmes.md) says what the preset reads."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import yaml

from hotreload.holmes import (
    CONFIG_FILE_ENV,
    DEFAULT_PATH,
    HOT_RELOAD_ENV,
    SDK_CONFIG_ENV,
    SDK_DEFAULT_PATH,
)

PAGE = Path(__file__).resolve().parents[2] / "docs" / "holmes.md"


def test_the_deployment_mounts_the_directory_and_sets_the_presets_variables() -> None:
    text = PAGE.read_text()
    section = text[text.index("## Replacing holmesgpt-api's ConfigManager") :]
    body = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert body is not None
    spec = yaml.safe_load(body.group(1))
    [container] = spec["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env == {
        CONFIG_FILE_ENV: DEFAULT_PATH,
        HOT_RELOAD_ENV: "true",
        SDK_CONFIG_ENV: SDK_DEFAULT_PATH,
    }
    mounts = container["volumeMounts"]
    assert not [m for m in mounts if "subPath" in m]
    assert [m["mountPath"] for m in mounts] == [
        posixpath.dirname(DEFAULT_PATH),
        posixpath.dirname(SDK_DEFAULT_PATH),
    ]
    volumes = {v["name"]: v["configMap"]["name"] for v in spec["volumes"]}
    assert volumes == {  # the service's two ConfigMaps, as its manifests name them
        mounts[0]["name"]: "holmesgpt-api-config",
        mounts[1]["name"]: "holmesgpt-sdk-config",
    }
