"""The guarantees page (docs/guarantees.md) names the tests that prove each promise; this keeps
every name real, so a renamed or deleted test cannot leave a promise unproven without notice."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


#: A promise: a table row ``| C1 | **...** ... |``; its tests: a list item ``* **C1**: ...``.
PROMISE = re.compile(r"^\| ([A-Z]\d+) \| \*\*", re.MULTILINE)
TESTS = re.compile(r"^\* \*\*([A-Z]\d+)\*\*: (.*)$", re.MULTILINE)


def guarantees() -> str:
    text = (ROOT / "docs" / "guarantees.md").read_text()
    return text[: text.index("\n## Limits\n")]


def top_level_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_every_test_the_guarantees_name_exists() -> None:
    references = REFERENCE.findall(guarantees())
    assert len(references) >= 30, "the section should name its tests"
    missing = [
        f"{file}::{name}"
        for file, name in references
        if not (ROOT / file).is_file() or name not in top_level_names(ROOT / file)
    ]
    assert missing == []


def test_every_guarantee_names_at_least_one_test() -> None:
    promises = PROMISE.findall(guarantees())
    assert len(promises) >= 8
    assert len(set(promises)) == len(promises), "ids are unique"
    tests = dict(TESTS.findall(guarantees()))
    assert sorted(tests) == sorted(promises), "each promise has one list of tests, and only they"
    unproven = [p for p in promises if not REFERENCE.search(tests[p])]
    assert unproven == []


def test_the_checker_sees_a_missing_test() -> None:
    """The check above can fail: a made-up name is not found."""
    assert "test_no_such_thing" not in top_level_names(ROOT / "tests/hardening/test_shutdown.py")
    assert "test_repeated_open_and_close_leaves_nothing" in top_level_names(
        ROOT / "tests/hardening/test_shutdown.py"
    )
