"""Every README snippet runs: the Python programs, and the shell commands they show."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)
#: DEBUG/INFO events every reloader logs at start: an application that configured no logging
#: must not see them (its stdlib level, WARNING by default, applies).
QUIET_EVENTS = ("config_loaded", "config_unchanged")


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall(README.read_text()) if kind == lang]


def expected_prints(code: str) -> list[str]:
    """The ``# comment`` after each ``print(...)`` line: what that line must print."""
    return [
        line.split("#", 1)[1].strip()
        for line in code.splitlines()
        if line.strip().startswith("print(") and "#" in line
    ]


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_snippet_runs_and_prints_what_it_says(index: int, tmp_path: Path) -> None:
    code = blocks("python")[index]
    # This checkout's package, whatever else is installed (a relative PYTHONPATH=. would name
    # the snippet's own temporary directory).
    path = os.pathsep.join(p for p in (str(README.parent), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert proc.returncode == 0, proc.stderr
    # Nothing but the snippet's own prints (checked line by line below): no library log line
    # mixed into the user's output; and no DEBUG/INFO line on stderr either.
    printed = proc.stdout.splitlines()
    logged = {line.split(" ", 1)[0] for line in proc.stderr.splitlines()}
    assert not logged & set(QUIET_EVENTS), proc.stderr
    expected = expected_prints(code)
    assert expected, "a README snippet should show what it prints"
    assert len(printed) == len(expected), proc.stdout
    for got, want in zip(printed, expected, strict=True):
        if want.endswith("..."):
            assert got.startswith(want[:-3]), (got, want)
        else:
            assert got == want


def test_readme_has_the_two_setup_commands_and_ci_runs_the_test_one() -> None:
    setup = blocks("bash")[0]
    commands = [line for line in setup.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    assert commands[0].endswith("hotreload demo")
    assert commands[1].endswith(".venv/bin/pytest")
    ci = (README.parent / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def test_cli_check_examples(tmp_path: Path) -> None:
    """The `hotreload check` lines of the README, run as written (watch and demo: test_cli),
    and the ``--against`` example's output as the README shows it."""
    (tmp_path / "config.yaml").write_text(
        "llm: {provider: openai, model: gpt-4, api_key: sk-PLANTED-old}\n"
    )
    (tmp_path / "new.yaml").write_text(
        "llm: {provider: openai, model: gpt-4o, api_key: sk-PLANTED-new}\napi_port: 9090\n"
    )
    (tmp_path / "settings.yaml").write_text("model: gpt-4\n")
    (tmp_path / "toolsets.yaml").write_text("discovered:\n  - {name: kubernetes, enabled: true}\n")
    (tmp_path / "settings.py").write_text(
        "import msgspec\n\nclass Settings(msgspec.Struct, frozen=True):\n    model: str\n"
    )
    cli = blocks("bash")[-1]
    checks = [line.split("#")[0].split() for line in cli.splitlines() if " check " in line]
    assert len(checks) == 5
    outputs = []
    for argv in checks:
        assert argv[0] == "hotreload"
        proc = subprocess.run(
            [sys.executable, "-m", "hotreload.cli", *argv[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert "PLANTED" not in proc.stdout + proc.stderr
        outputs.append(proc.stdout)
    shown = next(b for b in blocks("text") if b.startswith("ok: new.yaml")).splitlines()
    printed = next(out for argv, out in zip(checks, outputs, strict=True) if "--against" in argv)
    assert printed.splitlines()[0].startswith(shown[0].removesuffix("…)"))
    assert printed.splitlines()[1:] == shown[1:]


def test_layers_explain_example(tmp_path: Path) -> None:
    """The layers section's ``check --explain`` run as written, on its two YAML blocks and the
    ``Settings`` of its first snippet, prints exactly the output the README shows."""
    [command] = [b.strip() for b in blocks("bash") if "--explain" in b]
    env_part, _, argv_text = command.partition(" hotreload ")
    for block in blocks("yaml"):
        name = block.splitlines()[0].removeprefix("# ").strip()
        if name in ("base.yaml", "prod.yaml"):
            (tmp_path / name).write_text(block)
    [snippet] = [c for c in blocks("python") if "env_prefix=" in c and "class Settings" in c]
    (tmp_path / "settings.py").write_text(snippet.split("async def main")[0])
    name, _, value = env_part.partition("=")
    proc = subprocess.run(
        [sys.executable, "-m", "hotreload.cli", *argv_text.split()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, name: value},
    )
    assert proc.returncode == 0, proc.stderr
    assert value not in proc.stdout  # the secret is ***
    [shown] = [b for b in blocks("text") if b.startswith("ok: base.yaml + prod.yaml")]
    printed, expected = proc.stdout.splitlines(), shown.splitlines()
    assert printed[0].startswith(expected[0].removesuffix("…)"))
    assert printed[1:] == expected[1:]
