"""Every snippet of every page runs: the README's and each ``docs/*.md`` page's Python programs,
the shell commands they show, and the outputs they print.

A Python block (```` ```python ````) is run as a program in a fresh directory and must print,
line by line, what the ``# comment`` after each ``print(...)`` says. A ```` ```py ```` block
needs a server the default run does not start (etcd's: tests/etcd). Every other block is
claimed by a test that runs or checks it (`test_every_block_is_claimed_by_a_test`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
#: A fenced block: its language, its options (``title="base.yaml"``: the file it shows), its text.
BLOCK = re.compile(r'^```(\w+)((?: \w+="[^"]*")*)\n(.*?)^```', re.DOTALL | re.MULTILINE)
TITLE = re.compile(r' title="([^"]*)"')
#: DEBUG/INFO events every reloader logs at start: an application that configured no logging
#: must not see them (its stdlib level, WARNING by default, applies).
QUIET_EVENTS = ("config_loaded", "config_unchanged")


def pages() -> list[Path]:
    """The README, then every page of the site, in name order."""
    return [README, *sorted(DOCS.glob("*.md"))]


def page(name: str) -> Path:
    """``"cli"`` → docs/cli.md (which must exist)."""
    path = DOCS / f"{name}.md"
    assert path.is_file(), path
    return path


def fenced(*where: Path) -> list[tuple[str, str, str]]:
    """``(language, title, text)`` of every fenced block of these pages (default: all)."""
    found = []
    for path in where or pages():
        for lang, options, body in BLOCK.findall(path.read_text()):
            title = TITLE.search(options)
            found.append((lang, title.group(1) if title else "", body))
    return found


def blocks(lang: str, *where: Path) -> list[str]:
    """The text of every ``lang`` block of these pages (default: the README, then all pages)."""
    return [body for kind, _, body in fenced(*where) if kind == lang]


def titled(lang: str, title: str, *where: Path) -> str:
    """The one ``lang`` block shown as the file ``title``."""
    [body] = [b for kind, t, b in fenced(*where) if kind == lang and t == title]
    return body


def expected_prints(code: str) -> list[str]:
    """The ``# comment`` after each ``print(...)`` line: what that line must print."""
    return [
        line.split("#", 1)[1].strip()
        for line in code.splitlines()
        if line.strip().startswith("print(") and "#" in line
    ]


def python_snippets() -> list[tuple[str, str]]:
    """``(page, code)`` of every runnable Python block, the page relative to the checkout."""
    return [
        (str(path.relative_to(ROOT)), body)
        for path in pages()
        for kind, _, body in fenced(path)
        if kind == "python"
    ]


def snippet_id(item: tuple[str, str]) -> str:
    path, code = item
    same = [c for p, c in python_snippets() if p == path]
    return f"{path}#{same.index(code) + 1}"


def run_snippet(code: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``code`` as a program in ``tmp_path/run`` with its temp dir ``tmp_path/tmp``: the
    outcome, and what the program left in that temp dir (it must leave nothing: a snippet
    that does would leave it in the system temp dir of whoever runs it as shown)."""
    cwd, tmp = tmp_path / "run", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    # This checkout's package first, whatever else is installed (a relative PYTHONPATH=.
    # would name the snippet's own working directory).
    path = os.pathsep.join(p for p in (str(README.parent), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "TMPDIR": str(tmp), "TEMP": str(tmp), "TMP": str(tmp), "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60, env=env
    )
    return proc, sorted(entry.name for entry in tmp.iterdir())


def check_prints(code: str, stdout: str) -> None:
    printed = stdout.splitlines()
    expected = expected_prints(code)
    assert expected, "a snippet should show what it prints"
    assert len(printed) == len(expected), stdout
    for got, want in zip(printed, expected, strict=True):
        if want.endswith("..."):
            assert got.startswith(want[:-3]), (got, want)
        else:
            assert got == want


@pytest.mark.parametrize("snippet", python_snippets(), ids=snippet_id)
def test_python_snippet_runs_and_prints_what_it_says(
    snippet: tuple[str, str], tmp_path: Path
) -> None:
    _, code = snippet
    proc, left = run_snippet(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    # Nothing but the snippet's own prints (checked line by line below): no library log line
    # mixed into the user's output; and no DEBUG/INFO line on stderr either.
    logged = {line.split(" ", 1)[0] for line in proc.stderr.splitlines()}
    assert not logged & set(QUIET_EVENTS), proc.stderr
    check_prints(code, proc.stdout)
    assert left == [], "the snippet left these in the temp dir"


def test_a_snippet_that_leaves_a_temp_dir_behind_is_caught(tmp_path: Path) -> None:
    """The check above can fail, and what it catches never reaches the system temp dir."""
    code = "import tempfile\nprint(tempfile.mkdtemp())  # ...\n"
    proc, left = run_snippet(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(left) == 1
    made = Path(proc.stdout.strip())
    assert made.parent == tmp_path / "tmp"
    assert made.name == left[0]


def test_no_snippet_makes_a_temp_dir() -> None:
    """Shown code a reader copies makes no directory it never removes: a snippet works in the
    directory it runs in, as ``Path("app.yaml")``."""
    offenders = [snippet_id(s) for s in python_snippets() if "mkdtemp" in s[1]]
    assert offenders == []


def test_every_page_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [p.name for p in pages()[1:] if f" {p.name}\n" not in nav]
    assert missing == []


def test_the_readme_links_to_every_page() -> None:
    text = README.read_text()
    missing = [p.name for p in pages()[1:] if f"(docs/{p.name})" not in text]
    missing.remove("index.md")  # the site's home page: the README itself (docs/hooks.py)
    assert missing == []


# -- shell commands and the outputs they show ---------------------------------------------------


def test_cli_check_examples(tmp_path: Path) -> None:
    """The `hotreload check` lines of the CLI page, run as written (watch and demo: test_cli),
    and the ``--against`` example's output as the page shows it."""
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
    [cli] = [b for b in blocks("bash", page("cli")) if " check " in b]
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
    shown = next(b for b in blocks("text", page("cli")) if b.startswith("ok: new.yaml"))
    printed = next(out for argv, out in zip(checks, outputs, strict=True) if "--against" in argv)
    assert printed.splitlines()[0].startswith(shown.splitlines()[0].removesuffix("…)"))
    assert printed.splitlines()[1:] == shown.splitlines()[1:]


def test_layers_explain_example(tmp_path: Path) -> None:
    """The layers page's ``check --explain`` run as written, on its two YAML files exactly as
    shown and the ``Settings`` of its first snippet, prints exactly the output it shows (so
    its line numbers are those of the files as shown)."""
    layers = page("layers")
    [command] = [b.strip() for b in blocks("bash", layers) if "--explain" in b]
    env_part, _, argv_text = command.partition(" hotreload ")
    for name in ("base.yaml", "prod.yaml"):
        (tmp_path / name).write_text(titled("yaml", name, layers))
    [snippet] = [
        c for c in blocks("python", layers) if "env_prefix=" in c and "class Settings" in c
    ]
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
    [shown] = [b for b in blocks("text", layers) if b.startswith("ok: base.yaml + prod.yaml")]
    printed, expected = proc.stdout.splitlines(), shown.splitlines()
    assert printed[0].startswith(expected[0].removesuffix("…)"))
    assert printed[1:] == expected[1:]


#: Which test runs or checks each kind of block that is not a runnable Python program.
CLAIMS = {
    "py": "tests/etcd/test_etcd_readme.py (needs a real etcd)",
    "yaml": "test_layers_explain_example (the files it reads); tests/holmes/test_readme.py "
    "(the Deployment); tests/prometheus (the alert rules, included from deploy/prometheus/)",
    "text": "the test of the command whose output it shows",
    "bash": "test_readme (set-up), test_cli_check_examples, test_layers_explain_example, "
    "tests/prometheus/test_rules.py (promtool)",
}


#: The alert rules file, which the metrics page includes as it is (tests/prometheus tests it).
RULES_SHOWN = "deploy/prometheus/hotreload-rules.yaml"


def claimed_bash(body: str, path: Path) -> bool:
    setup = blocks("bash", README)[0]  # the set-up commands: test_readme
    if body == setup or set(body.splitlines()) <= set(setup.splitlines()):
        return True
    if path == README and "hotreload-engine" in body:
        return True  # how to depend on it: test_readme checks the name and the extras
    if path == page("cli"):
        return " check " in body  # run above; its watch and demo lines by tests/test_cli.py
    if path == page("observability"):
        return "promtool " in body  # tests/prometheus/test_rules.py runs them
    return path == page("layers") and "--explain" in body


def test_every_block_is_claimed_by_a_test() -> None:
    """No page shows code that no test runs: every block is Python (run above) or one of the
    kinds in CLAIMS, and every shell block one that a test here runs."""
    unclaimed = []
    for path in pages():
        for lang, title, body in fenced(path):
            name = path.relative_to(ROOT)
            if lang != "python" and lang not in CLAIMS:
                unclaimed.append(f"{name}: {lang}")
            elif lang == "bash" and not claimed_bash(body, path):
                unclaimed.append(f"{name}: {body.splitlines()[0]}")
            elif lang == "yaml" and title == RULES_SHOWN:
                assert body == f'--8<-- "{RULES_SHOWN}"\n', "the page shows the tested file"
            elif lang == "yaml" and title not in ("base.yaml", "prod.yaml"):
                assert "containers:" in body, f"{name}: a yaml block no test reads"
    assert unclaimed == []
    [yaml_deploy] = [b for b in blocks("yaml") if "containers:" in b]
    assert "holmesgpt-api" in yaml_deploy
