"""The real service's config files, through `hotreload check` as its operators would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DATA = Path(__file__).parent / "data"
REAL_FILES = sorted(DATA.glob("*.yaml"))


def check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotreload", "check", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


#: The final deploy files (the last commits with hot_reload.py, SOURCES.md): each main file
#: with the SDK file it is deployed with.
PAIRS = [
    ("final-deploy-configmap.config.yaml", "final-deploy-configmap.sdk-config.yaml"),
    ("final-helm-configmap.config.yaml", "final-helm-configmap.sdk-config.yaml"),
    ("final-helm-configmap-tls.config.yaml", "final-helm-configmap.sdk-config.yaml"),
    ("final-helm-configmap-tls.config.yaml", "final-chart-example.sdk-config.yaml"),
]


def test_every_real_file_is_here_and_named_in_sources() -> None:
    assert [p.name for p in REAL_FILES] == [
        "config.yaml",
        "deploy-configmap.config.yaml",
        "final-chart-example.sdk-config.yaml",
        "final-deploy-configmap.config.yaml",
        "final-deploy-configmap.sdk-config.yaml",
        "final-helm-configmap-tls.config.yaml",
        "final-helm-configmap.config.yaml",
        "final-helm-configmap.sdk-config.yaml",
        "helm-configmap.config.yaml",
        "test_config.yaml",
    ]
    sources = (DATA / "SOURCES.md").read_text()
    for path in REAL_FILES:
        assert f"`{path.name}`" in sources
        if path.name.startswith("final-"):  # and each names its repository and commit itself
            assert path.read_text().startswith("# ")
            assert "jordigilh/kubernaut at commit " in path.read_text().splitlines()[0]


def test_the_final_config_yaml_has_no_llm_and_the_chart_has_tls() -> None:
    """Issue #390 moved llm: to sdk-config.yaml; the chart renders tls: when TLS is on."""

    def keys(name: str) -> set[str]:
        return set(yaml.safe_load((DATA / name).read_text()))

    assert "llm" not in keys("final-deploy-configmap.config.yaml")
    assert "llm" not in keys("final-helm-configmap.config.yaml")
    assert "tls" not in keys("final-helm-configmap.config.yaml")
    tls_on = keys("final-helm-configmap-tls.config.yaml")
    assert tls_on == keys("final-helm-configmap.config.yaml") | {"tls"}
    for name in ("final-deploy-configmap.sdk-config.yaml", "final-helm-configmap.sdk-config.yaml"):
        assert keys(name) == {"llm", "toolsets", "mcp_servers"}


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}+{p[1]}")
def test_each_final_pair_passes_check_layered_even_with_strict(pair: tuple[str, str]) -> None:
    main, sdk = DATA / pair[0], DATA / pair[1]
    for extra in ((), ("--strict",)):
        proc = check(main, sdk, "--schema", "holmes", "--json", "--explain", *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads(proc.stdout)
        assert (report["valid"], report["unknown"], report["file"]) == (True, [], f"{main} + {sdk}")
        origins = {e["path"]: e["origin"] for e in report["explain"]}
        assert origins["llm.model"].startswith(f"{sdk}:")  # llm: comes from the SDK file
        assert origins["data_storage.url"] is None or origins["data_storage.url"].startswith(
            f"{main}:"
        )


def test_the_charts_tls_section_is_modelled_and_restart_required(tmp_path: Path) -> None:
    on = DATA / "final-helm-configmap-tls.config.yaml"
    report = json.loads(check(on, "--schema", "holmes", "--json", "--explain").stdout)
    values = {e["path"]: e["value"] for e in report["explain"]}
    assert values["tls.ca_file"] == "/etc/ssl/hapi/service-ca.crt"
    off = DATA / "final-helm-configmap.config.yaml"
    proc = check(on, "--schema", "holmes", "--json", "--against", off)
    changes = json.loads(proc.stdout)["changes"]
    assert [(c["path"], c["restart_required"]) for c in changes] == [("tls.ca_file", True)]


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_file_passes_check_even_with_strict(path: Path) -> None:
    for extra in ((), ("--strict",)):
        proc = check(path, "--schema", "holmes", "--json", *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads(proc.stdout)
        assert report["valid"] is True
        assert report["unknown"] == []  # every section they use is modelled


def test_a_typo_in_a_known_section_is_named_and_refused_with_strict(tmp_path: Path) -> None:
    text = (DATA / "deploy-configmap.config.yaml").read_text()
    assert "  temperature: 0.7\n" in text
    path = tmp_path / "config.yaml"
    path.write_text(text.replace("  temperature: 0.7\n", "  temprature: 0.2\n"))
    line = path.read_text().splitlines().index("  temprature: 0.2") + 1

    lenient = check(path, "--schema", "holmes")
    assert lenient.returncode == 0, lenient.stderr
    assert (
        f"warning: {path}:{line}:3: unknown key `llm.temprature` "
        "(did you mean `llm.temperature`?)" in lenient.stderr
    )
    assert "--strict makes them an error" in lenient.stderr

    strict = check(path, "--schema", "holmes", "--strict")
    assert strict.returncode == 1
    assert strict.stderr.startswith(f"invalid: {path}:{line}:3: unknown field `temprature`")
    assert "did you mean `llm.temperature`?" in strict.stderr

    report = json.loads(check(path, "--schema", "holmes", "--strict", "--json").stdout)
    assert (report["valid"], report["reason"], report["field_path"]) == (
        False,
        "unknown_key",
        "llm.temprature",
    )
    assert (report["line"], report["column"]) == (line, 3)


def test_known_keys_stay_strict_with_their_position(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("logging:\n  level: INFO\nmetrics:\n  scrape_interval: 30\n")
    report = json.loads(check(path, "--schema", "holmes", "--json").stdout)
    assert (report["valid"], report["field_path"], report["line"]) == (
        False,
        "metrics.scrape_interval",
        4,
    )


def test_log_level_and_logging_level_that_differ_fail_check(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("log_level: INFO\nlogging:\n  level: DEBUG\n")
    proc = check(path, "--schema", "holmes")
    assert proc.returncode == 1
    assert "log_level (INFO) and logging.level (DEBUG) differ" in proc.stderr


TOOLSETS = """\
discovered:
  - {name: kubernetes, enabled: true, priority: 100}
  - {name: prometheus, enabled: true, priority: 90}
overrides:
  prometheus: {enabled: false}
"""


def test_holmes_toolsets_schema(tmp_path: Path) -> None:
    path = tmp_path / "toolsets.yaml"
    path.write_text(TOOLSETS)
    assert check(path, "--schema", "holmes-toolsets").returncode == 0
    path.write_text(TOOLSETS.replace("enabled: false", "enabeld: false"))
    proc = check(path, "--schema", "holmes-toolsets", "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["field_path"] == "overrides.prometheus.enabeld"


def test_an_unknown_key_in_an_overlay_layer_names_that_file(tmp_path: Path) -> None:
    base = tmp_path / "config.yaml"
    base.write_text((DATA / "deploy-configmap.config.yaml").read_text())
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("llm:\n  model: gpt-4o\n  temprature: 0.2\n")
    proc = check(base, overlay, "--schema", "holmes")
    assert proc.returncode == 0, proc.stderr
    assert (
        f"warning: {overlay}:3:3: unknown key `llm.temprature` (did you mean `llm.temperature`?)"
        in proc.stderr
    )
    strict = check(base, overlay, "--schema", "holmes", "--strict", "--json")
    assert strict.returncode == 1
    report = json.loads(strict.stdout)
    assert (report["file"], report["line"], report["field_path"]) == (
        str(overlay),
        3,
        "llm.temprature",
    )
