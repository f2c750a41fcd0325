"""The README: its two set-up commands (CI runs the test one verbatim), how another project
depends on the package, and its length. Its snippets run with every page's: tests/test_docs.py
(``README``, ``blocks`` and ``expected_prints`` are re-exported from there for tests/etcd)."""

from __future__ import annotations

import re
import sys

from tests.test_docs import README, blocks, expected_prints, pages

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["README", "blocks", "expected_prints"]


def test_readme_has_the_two_setup_commands_and_ci_runs_the_test_one() -> None:
    setup = blocks("bash", README)[0]
    commands = [line for line in setup.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    assert commands[0].endswith("hotreload demo")
    assert commands[1].endswith(".venv/bin/pytest")
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    # CI runs it in its two parts, the holmesgpt extra installed in between
    install, _, pytest = commands[1].rpartition(" && ")
    assert pytest == ".venv/bin/pytest"
    extra = '.venv/bin/pip install -e ".[holmesgpt]" && .venv/bin/pip install -e ".[dev]"'
    assert ci.index(install) < ci.index(extra) < ci.index(pytest)


def test_the_readme_fits_on_a_few_screens() -> None:
    assert len(README.read_text().splitlines()) <= 400


def test_installing_from_another_project_names_the_distribution_and_no_index() -> None:
    """The package is not on the index: every ``pip install`` in the README or a page installs
    from a checkout or a git URL, under the distribution's real name and its real extras."""
    project = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]
    name, extras = project["name"], set(project["optional-dependencies"])
    specs = [s for p in pages() for s in re.findall(r"pip install ([^`\n]+)", p.read_text())]
    assert specs
    named = 0
    for shown in specs:
        spec = shown.strip().strip("\"'")
        if spec.startswith("-e"):
            continue  # `pip install -e ".[x]"`: a checkout
        assert spec.startswith(name), spec
        named += 1  # by name: only as a direct reference (the index has no such package)
        found = re.match(rf"{re.escape(name)}(?:\[([\w,]+)\])? @ (git\+https|file)://", spec)
        assert found, spec
        assert set((found.group(1) or "").split(",")) - {""} <= extras, spec
    assert named, "the README shows how to depend on the package by name"
    git = re.findall(
        rf'"{re.escape(name)}(?:\[[\w,]+\])? @ git\+https://[^"]+"', README.read_text()
    )
    assert git
