"""The ``hotreload`` command, driven through real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

HOLMES = "llm:\n  provider: openai\n  model: gpt-4\n  api_key: sk-PLANTED-{n}\n"
SCRIPT = Path(sys.executable).parent / "hotreload"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotreload.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_check_valid_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HOLMES.format(n=1))
    proc = run("check", str(path), "--schema", "holmes", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["valid"] is True
    assert len(report["config_hash"]) == 64


@pytest.mark.parametrize(
    ("text", "reason", "line", "field"),
    [
        ("llm:\n  provider: openai\n  model: [\n  api_key: sk-PLANTED-2\n", "parse", 5, None),
        (
            "llm:\n  provider: openai\n  model: gpt-4\n  temperature: hot\n",
            "schema",
            4,
            "llm.temperature",
        ),
        ("llm: {provider: openai, model: gpt-4}\napi_port: 0\n", "schema", 2, "api_port"),
    ],
)
def test_check_invalid_exits_1_with_position(
    tmp_path: Path, text: str, reason: str, line: int, field: str | None
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    proc = run("check", str(path), "--schema", "holmes", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert (report["valid"], report["reason"], report["line"]) == (False, reason, line)
    assert report["file"] == str(path)
    if field is not None:
        assert report["field_path"] == field
    assert "PLANTED" not in proc.stdout + proc.stderr
    human = run("check", str(path), "--schema", "holmes")
    assert human.returncode == 1
    assert human.stderr.startswith(f"invalid: {path}:{line}:")


def test_check_usage_errors_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HOLMES.format(n=3))
    assert run("check", str(path), "--schema", "no_such_module:Thing").returncode == 2
    assert run("check", str(path), "--schema", "nocolon").returncode == 2
    assert run("check", str(path)).returncode == 2  # --schema is required
    assert run("frobnicate").returncode == 2


def test_check_missing_file_exits_1(tmp_path: Path) -> None:
    proc = run("check", str(tmp_path / "absent.yaml"), "--schema", "holmes", "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["reason"] == "missing"


async def read_json_line(stream: asyncio.StreamReader) -> dict[str, object]:
    line = await asyncio.wait_for(stream.readline(), 10)
    assert line, "the process ended early"
    result: dict[str, object] = json.loads(line)
    return result


async def test_watch_prints_one_json_line_per_outcome(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HOLMES.format(n=4))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hotreload.cli",
        "watch",
        str(path),
        "--schema",
        "holmes",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        assert (await read_json_line(proc.stdout))["result"] == "loaded"
        path.write_text(HOLMES.format(n=4).replace("gpt-4", "gpt-4o"))
        while (record := await read_json_line(proc.stdout))["result"] != "config_changed":
            pass
        assert record["changed"] == ["llm.model"]
        path.write_text("llm: [\n  api_key: sk-PLANTED-5\n")
        while (record := await read_json_line(proc.stdout))["result"] != "validation_failed":
            pass
        error = record["error"]
        assert isinstance(error, dict)
        assert error["line"] == 3
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err
    assert b"PLANTED" not in out + err


async def read_until(stream: asyncio.StreamReader, needle: str) -> str:
    """The first line of ``stream`` that contains ``needle`` (10 s at most per line)."""
    while True:
        line = (await asyncio.wait_for(stream.readline(), 10)).decode()
        assert line, f"the process ended before printing {needle!r}"
        if needle in line:
            return line


async def start_demo() -> tuple[asyncio.subprocess.Process, Path]:
    """The installed console script's demo on any free port, and the config file it prints."""
    assert SCRIPT.exists(), "the console script is installed with the package"
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "demo",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
    assert first.startswith("hotreload demo: edit ")
    return proc, Path(first.removeprefix("hotreload demo: edit ").strip())


async def test_demo_serves_the_config_and_an_edit_shows_at_once(tmp_path: Path) -> None:
    """The installed console script: ``/`` answers the model in use, an edit of the printed
    file shows there within a second, Ctrl-C exits 0 and removes the temp directory."""
    proc, config = await start_demo()
    assert proc.stdout is not None
    try:
        serving = await read_until(proc.stdout, "serving http://127.0.0.1:")
        url = serving.split()[3]
        await read_until(proc.stdout, "[gen 1] loaded")
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            home = (await client.get("/")).json()
            assert home["model"] == "gpt-4"
            # The derived LLM client: the endpoint it targets, how many old ones drain.
            assert (home["llm_endpoint"], home["llm_clients_draining"]) == (
                "https://api.openai.com/v1/",
                0,
            )
            report = (await client.get("/-/config")).json()
            assert report["derived"] == [{"name": "llm_client", "generation": 1, "draining": 0}]
            assert report["source"] == str(config)
            assert report["config"]["llm"]["api_key"] == "***"
            # Seen at / once the demo says so (how fast: benchmarks/latency.py, not here).
            config.write_text(config.read_text().replace("model: gpt-4", "model: claude-3-5"))
            line = await read_until(proc.stdout, "config_changed")
            home = (await client.get("/")).json()
            assert "changed: llm.model" in line
            assert (home["provider"], home["model"], home["generation"]) == (
                "openai",
                "claude-3-5",
                2,
            )
            report = (await client.get("/-/config")).json()
            assert report["derived"][0]["generation"] == 2  # llm.model changed: rebuilt
            # The README tour, step 4: a line `llm: [` added at the end.
            config.write_text(config.read_text() + "llm: [\n")
            line = await read_until(proc.stdout, "validation_failed")
            assert f"keeping previous: {config}:49:1: while parsing a flow node" in line
            assert (await client.get("/")).json()["model"] == "claude-3-5"
            report = (await client.get("/-/config")).json()
            error = report["last_outcome"]["error"]
            assert (report["status"], error["line"], error["column"]) == ("degraded", 49, 1)
            ready = await client.get("/-/readyz")
            assert (ready.status_code, ready.json()["status"]) == (200, "degraded")
            metrics = (await client.get("/metrics")).text.splitlines()  # step 5
            assert 'holmesgpt_config_reload_total{config="demo"} 1.0' in metrics
            failures = 'holmesgpt_config_reload_failures_total{config="demo",reason="parse"} 1.0'
            assert failures in metrics
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err
    assert b"stopped" in out
    assert b"sk-demo" not in out + err
    assert not config.parent.exists(), "the demo removes the temp directory it made"


async def test_demo_rolls_back_a_toolset_pointed_at_a_dead_url() -> None:
    """The README tour's probation step: the demo calls its toolset every second and reports
    each call; pointed at a dead URL, the change is rolled back by those failures and the
    condemned version stays out (quarantined) while the file still holds it."""
    proc, config = await start_demo()
    assert proc.stdout is not None
    try:
        url = (await read_until(proc.stdout, "serving http://127.0.0.1:")).split()[3]
        port = url.rstrip("/").rsplit(":", 1)[1]
        await read_until(proc.stdout, "[gen 1] loaded")
        text = config.read_text()
        assert f"prometheus_url: http://127.0.0.1:{port}/toolset/prometheus" in text
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            good = (await client.get("/")).json()["config_hash"]
            with socket.socket() as closed:  # a port nobody listens on once released
                closed.bind(("127.0.0.1", 0))
                dead = f"http://127.0.0.1:{closed.getsockname()[1]}/"
            config.write_text(text.replace(f"http://127.0.0.1:{port}/toolset/prometheus", dead))
            assert "[gen 2] config_changed (watch)" in await read_until(proc.stdout, "[gen 2]")
            line = await read_until(proc.stdout, "(rollback)")
            assert line.startswith("[gen 3] config_changed (rollback) changed: ")
            assert "toolsets.prometheus/metrics.config.prometheus_url" in line
            home = (await client.get("/")).json()
            assert (home["generation"], home["config_hash"]) == (3, good)
            report = (await client.get("/-/config")).json()
            [entry] = report["quarantined"]
            assert entry["reason"] == "failures"
            assert [e["name"] for e in entry["evidence"]] == ["prometheus/metrics"]
            assert report["config"]["toolsets"]["prometheus/metrics"]["config"] == {
                "prometheus_url": f"http://127.0.0.1:{port}/toolset/prometheus"
            }
            metrics = (await client.get("/metrics")).text
            rollbacks = 'holmesgpt_config_rollbacks_total{config="demo",reason="failures"} 1.0'
            assert rollbacks in metrics
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err
    assert b"sk-demo" not in out + err


async def test_demo_keeps_a_given_config_dir_and_reports_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            "demo",
            "--config-dir",
            str(tmp_path / "demo"),
            "--port",
            str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 1
    assert b"--port 0" in err
    assert (tmp_path / "demo" / "config.yaml").exists()
    assert b"sk-demo" not in out + err


OLD = """\
llm:
  provider: openai
  model: gpt-4
  api_key: sk-PLANTED-old-1b2c
api_port: 8080
toolsets:
  prometheus: {enabled: true}
"""
NEW = """\
llm:
  provider: openai
  model: gpt-4o
  api_key: sk-PLANTED-new-9d8e
api_port: 9090
toolsets:
  prometheus: {enabled: true}
  grafana: {enabled: true, token: sk-PLANTED-nested-5f6a}
"""


def test_check_against_lists_changes_flags_restart_and_redacts(tmp_path: Path) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(OLD)
    new.write_text(NEW)
    proc = run("check", str(new), "--schema", "holmes", "--against", str(old), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    changes = {c["path"]: c for c in report["changes"]}
    assert sorted(changes) == ["api_port", "llm.api_key", "llm.model", "toolsets.grafana"]
    assert changes["llm.model"] == {
        "path": "llm.model",
        "old": "gpt-4",
        "new": "gpt-4o",
        "restart_required": False,
        "secret": False,
    }
    assert (changes["api_port"]["old"], changes["api_port"]["new"]) == (8080, 9090)
    assert changes["api_port"]["restart_required"] is True
    assert (changes["llm.api_key"]["old"], changes["llm.api_key"]["new"]) == ("***", "***")
    assert changes["toolsets.grafana"]["old"] is None
    assert changes["toolsets.grafana"]["new"] == {"enabled": True, "token": "***"}
    human = run("check", str(new), "--schema", "holmes", "--against", str(old))
    assert human.returncode == 0
    lines = human.stdout.splitlines()
    assert "  api_port: 8080 -> 9090  [restart required]" in lines
    assert '  llm.model: "gpt-4" -> "gpt-4o"' in lines
    assert '  llm.api_key: "***" -> "***"' in lines
    assert lines[-1] == (
        "restart required: api_port keeps its running value until a restart; the rest applies live"
    )
    assert (report["verdict"], report["restart_required"]) == ("restart_required", ["api_port"])
    for output in (proc, human):
        assert "PLANTED" not in output.stdout + output.stderr


@pytest.mark.parametrize(
    ("change", "verdict", "fields", "code"),
    [
        ("provider: openai", "refused", ["llm.provider"], 1),
        ("api_port: 8080", "restart_required", ["api_port"], 0),
        ("model: gpt-4", "applied", [], 0),
        ("", "unchanged", [], 0),
    ],
)
def test_check_against_says_what_the_running_preset_would_do(
    tmp_path: Path, change: str, verdict: str, fields: list[str], code: int
) -> None:
    """Issue 24: an ``llm.provider`` change passed as valid, exit 0, though the running
    preset refuses that version. ``--against`` runs the running reloader's own evaluation."""
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text("llm:\n  provider: openai\n  model: gpt-4\napi_port: 8080\n")
    edits = {
        "provider: openai": ("provider: openai", "provider: anthropic"),
        "api_port: 8080": ("api_port: 8080", "api_port: 9090"),
        "model: gpt-4": ("model: gpt-4", "model: gpt-4o"),
        "": ("", ""),
    }
    before, after = edits[change]
    new.write_text(old.read_text().replace(before, after) + "# edited\n")
    proc = run("check", str(new), "--schema", "holmes", "--against", str(old), "--json")
    assert proc.returncode == code, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["verdict"] == verdict
    assert report["valid"] is (code == 0)
    if verdict == "refused":
        assert report["refused"] == fields
        assert report["reason"] == "restart_refused"
        assert "the whole change is refused" in report["message"]
    if verdict == "restart_required":
        assert report["restart_required"] == fields
    human = run("check", str(new), "--schema", "holmes", "--against", str(old))
    assert human.returncode == code
    if verdict == "refused":
        assert human.stdout.startswith(f"refused: {new} (config_hash ")
        assert human.stderr.startswith(f"refused: {new}: llm.provider changed and cannot change")
    else:
        assert human.stdout.startswith(f"ok: {new} (config_hash ")
        last = human.stdout.splitlines()[-1]
        assert last.startswith(verdict.replace("_", " ") + ":")


def test_check_against_with_the_preset_that_allows_a_provider_change(tmp_path: Path) -> None:
    """Only the preset's own policy refuses: a schema without it applies the same change."""
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text("llm: {provider: openai}\n")
    new.write_text("llm: {provider: anthropic}\n")
    proc = run(
        "check", str(new), "--schema", "hotreload.holmes:ApiConfig", "--against", str(old),
        "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "applied"


def test_check_against_an_invalid_file_or_baseline(tmp_path: Path) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(OLD)
    new.write_text(NEW.replace("api_port: 9090", "api_port: 0"))
    proc = run("check", str(new), "--schema", "holmes", "--against", str(old), "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["field_path"] == "api_port"
    new.write_text(NEW)
    old.write_text("llm: [\n")
    proc = run("check", str(new), "--schema", "holmes", "--against", str(old), "--json")
    assert proc.returncode == 2
    assert f"cannot compare --against {old}" in proc.stderr
    assert "PLANTED" not in proc.stdout + proc.stderr


def test_python_dash_m_hotreload_is_the_command(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HOLMES.format(n=9))
    proc = subprocess.run(
        [sys.executable, "-m", "hotreload", "check", str(path), "--schema", "holmes"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"ok: {path} (config_hash ")


def test_core_and_asgi_import_without_web_dependencies(tmp_path: Path) -> None:
    """The core keeps no web dependency: with starlette, uvicorn and fastapi unimportable,
    hotreload, hotreload.asgi and the CLI import, and `demo` says which extra it needs."""
    code = (
        "import sys\n"
        "for name in ('starlette', 'uvicorn', 'fastapi', 'httpx'):\n"
        "    sys.modules[name] = None\n"
        "import hotreload, hotreload.asgi\n"
        "from hotreload.cli import main\n"
        "sys.exit(main(['demo', '--config-dir', sys.argv[1]]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert 'pip install -e ".[demo]"  (from a checkout of hotreload)' in proc.stderr


async def test_demo_on_sigterm_cleans_up_and_exits_0() -> None:
    """As timeout, docker stop and Kubernetes stop it: a real SIGTERM to a real process."""
    proc, config = await start_demo()
    assert proc.stdout is not None
    try:
        await read_until(proc.stdout, "[gen 1] loaded")
        assert config.parent.name.startswith("hotreload-demo-")
        assert config.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err
    assert b"stopped" in out
    assert not config.parent.exists(), "the demo removes its temp directory on SIGTERM too"


def test_version() -> None:
    from hotreload import __version__

    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"hotreload {__version__}"


@pytest.mark.parametrize("command", [(), ("check",), ("watch",), ("demo",)])
def test_every_argument_has_help_and_no_literal_double_backticks(command: tuple[str, ...]) -> None:
    from hotreload.cli import _parser

    parser = _parser()
    if command:
        sub = next(a for a in parser._actions if a.dest == "command")
        parser = sub.choices[command[0]]  # type: ignore[index]
    for action in parser._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
    text = run(*command, "--help").stdout
    assert "``" not in text
    if not command:
        assert "--version" in text


def test_schema_help_lists_the_presets() -> None:
    from hotreload.cli import PRESETS

    env = {**os.environ, "COLUMNS": "1000"}  # argparse wraps at a hyphen otherwise
    text = subprocess.run(
        [sys.executable, "-m", "hotreload", "check", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    ).stdout
    assert set(PRESETS) >= {"holmes", "holmes-toolsets"}
    for name in PRESETS:
        assert name in text


def test_a_bad_schema_prints_the_usage_of_check(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HOLMES.format(n=10))
    proc = run("check", str(path), "--schema", "holmez")
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: hotreload check ")
    assert "a preset (holmes, holmes-toolsets" in proc.stderr


def test_the_generic_cli_does_not_import_the_holmes_preset_until_asked() -> None:
    """``hotreload check --schema module:Class`` must not pay for (or depend on) the preset."""
    code = (
        "import sys, hotreload.cli\n"
        "assert 'hotreload.holmes' not in sys.modules, 'imported at module level'\n"
        "hotreload.cli._load_schema('holmes')\n"
        "assert 'hotreload.holmes' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_check_several_files_are_layers_and_explain_names_origins(tmp_path: Path) -> None:
    base, prod = tmp_path / "base.yaml", tmp_path / "prod.yaml"
    base.write_text(HOLMES.format(n=1))
    prod.write_text("llm:\n  model: gpt-4o\n")
    proc = run("check", str(base), str(prod), "--schema", "holmes", "--explain", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["file"] == f"{base} + {prod}"
    explained = {e["path"]: (e["value"], e["origin"]) for e in report["explain"]}
    assert explained["llm.model"] == ("gpt-4o", f"{prod}:2")
    assert explained["llm.provider"] == ("openai", f"{base}:2")
    assert explained["llm.api_key"] == ("***", f"{base}:4")
    assert "PLANTED" not in proc.stdout + proc.stderr

    human = run("check", str(base), "--schema", "holmes", "--explain")  # one file explains too
    assert human.returncode == 0, human.stderr
    assert 'llm.model = "gpt-4"' in human.stdout
    assert f"# {base}:3" in human.stdout
    assert "PLANTED" not in human.stdout


def test_check_layers_error_names_the_overlay_line(tmp_path: Path) -> None:
    base, prod = tmp_path / "base.yaml", tmp_path / "prod.yaml"
    base.write_text(HOLMES.format(n=1))
    prod.write_text("llm:\n  model: gpt-4o\n  temperature: hot\n")
    proc = run("check", str(base), str(prod), "--schema", "holmes", "--json")
    assert proc.returncode == 1
    error = json.loads(proc.stdout)
    assert (error["file"], error["line"], error["field_path"]) == (
        str(prod),
        3,
        "llm.temperature",
    )


def test_check_env_prefix_adds_variables_on_top(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(HOLMES.format(n=1))
    argv = ["check", str(base), "--schema", "holmes", "--env-prefix", "HR_TEST_", "--explain"]
    proc = subprocess.run(
        [sys.executable, "-m", "hotreload.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HR_TEST_LLM__MODEL": "o3"},
    )
    assert proc.returncode == 0, proc.stderr
    assert 'llm.model = "o3"' in proc.stdout
    assert "# $HR_TEST_LLM__MODEL" in proc.stdout


async def test_watch_takes_layers(tmp_path: Path) -> None:
    base, prod = tmp_path / "base.yaml", tmp_path / "prod.yaml"
    base.write_text(HOLMES.format(n=6))
    prod.write_text("llm:\n  model: gpt-4o\n")
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "hotreload.cli", "watch", str(base), str(prod)],
        *["--schema", "holmes", "--json"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        assert (await read_json_line(proc.stdout))["result"] == "loaded"
        prod.write_text("llm:\n  model: gpt-4o\n  temperature: hot\n")
        while (record := await read_json_line(proc.stdout))["result"] != "validation_failed":
            pass
        error = record["error"]
        assert isinstance(error, dict)
        assert (error["file"], error["line"]) == (str(prod), 3)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err
    assert b"PLANTED" not in out + err


def test_check_explain_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`check --explain | head -1`: no BrokenPipeError traceback when the reader leaves."""
    path = tmp_path / "config.yaml"
    path.write_text("".join(f"item_{i}: {'v' * 60}\n" for i in range(5000)))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hotreload.cli",
            "check",
            str(path),
            "--schema",
            "builtins:dict",
            "--explain",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline()
    proc.stdout.close()  # the reader leaves, as `head -1` does, with 300 KB still to print
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err, err.decode()
    assert b"BrokenPipeError" not in err


PYDANTIC_SCHEMA = """\
from typing import Annotated

import pydantic

from hotreload import RestartRequired


class Settings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    model: str
    port: Annotated[int, RestartRequired] = 8080
    api_key: pydantic.SecretStr = pydantic.SecretStr("")
"""


def test_check_takes_a_pydantic_model(tmp_path: Path) -> None:
    """``--schema module:Class`` with a frozen pydantic model: valid, invalid with the line,
    column and field path, and ``--against`` with restart-required flagged, secrets as ***."""
    (tmp_path / "pyd_settings.py").write_text(PYDANTIC_SCHEMA)
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text("model: gpt-4\napi_key: sk-PLANTED-1\n")
    new.write_text("model: gpt-4o\nport: 9090\napi_key: sk-PLANTED-2\n")
    schema = ("--schema", "pyd_settings:Settings")
    proc = run("check", str(new), *schema, "--against", str(old), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)["changes"]
    changes = {c["path"]: (c["old"], c["new"], c["restart_required"]) for c in found}
    assert changes == {
        "api_key": ("***", "***", False),
        "model": ("gpt-4", "gpt-4o", False),
        "port": (8080, 9090, True),
    }
    new.write_text("model: gpt-4o\nport: eighty\napi_key: sk-PLANTED-3\n")
    proc = run("check", str(new), *schema, "--json", cwd=tmp_path)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert (report["field_path"], report["line"], report["column"]) == ("port", 2, 7)
    human = run("check", str(new), *schema, cwd=tmp_path)
    assert human.returncode == 1
    assert human.stderr.startswith(f"invalid: {new}:2:7: Input should be a valid integer")
    for output in (proc, human):
        assert "PLANTED" not in output.stdout + output.stderr
