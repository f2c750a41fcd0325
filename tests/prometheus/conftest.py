"""Fixtures: Debian's ``prometheus`` package's binaries (``.ci/run`` installs it).

Without them the tests here skip, except under CI, where a missing binary fails them: the
alert rules are only shown to work where promtool and Prometheus run them.
"""

from __future__ import annotations

import os
import shutil

import pytest


def binary(name: str) -> str:
    """The path of ``name``; skips without it, fails under CI."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (Debian: apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; .ci/run installs it", pytrace=False)
        pytest.skip(message)
    return found


@pytest.fixture
def promtool() -> str:
    return binary("promtool")


@pytest.fixture
def prometheus_bin() -> str:
    return binary("prometheus")
