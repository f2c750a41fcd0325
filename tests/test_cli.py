"""The ``hotreload`` command, driven through real subprocesses."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

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
        ("llm: {provider: openai, model: gpt-4}\nbogus: 1\n", "schema", 2, "bogus"),
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


async def test_demo_as_a_new_user_runs_it(tmp_path: Path) -> None:
    """The installed console script, as the README's first command starts it."""
    assert SCRIPT.exists(), "the console script is installed with the package"
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "demo",
        "--config-dir",
        str(tmp_path / "demo"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert first.startswith("hotreload demo: edit ")
        config = Path(first.removeprefix("hotreload demo: edit ").strip())
        assert config == tmp_path / "demo" / "config.yaml"
        while b"loaded" not in await asyncio.wait_for(proc.stdout.readline(), 10):
            pass
        config.write_text(config.read_text().replace("model: gpt-4", "model: claude-3-5-sonnet"))
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
            assert line, "the demo ended early"
            if "config_changed" in line:
                break
        assert "changed: llm.model" in line
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err
    assert b"stopped" in out
    assert b"sk-demo" not in out + err
