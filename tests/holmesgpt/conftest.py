"""Who decides validity in a test: holmesgpt's own models (the ``holmesgpt`` extra) or the hand
model. ``authority`` runs a test under each; ``upstream`` needs the package (skipped without it,
but failing under CI, which installs it: CI never skips these silently); ``hand`` blocks it.

holmesgpt's import takes seconds (litellm): done here, at collection, so that no single test's
timeout pays for it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

import hotreload._schema
from hotreload.holmesgpt import upstream_version

if upstream_version() is not None:
    from hotreload import _holmesgpt_upstream

    _holmesgpt_upstream.builtin_names()

INSTALLED = upstream_version() is not None


def need_upstream() -> None:
    """Skip without holmesgpt; under CI (``CI`` set, as ``.ci/run`` does) fail instead."""
    if INSTALLED:
        return
    message = "holmesgpt is not installed (pip install -e '.[holmesgpt]')"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI installs it, these tests must run there")
    pytest.skip(message)


@pytest.fixture
def upstream() -> Iterator[str]:
    """holmesgpt's own models decide; the version."""
    need_upstream()
    hotreload._schema._adapter.cache_clear()
    yield str(upstream_version())
    hotreload._schema._adapter.cache_clear()


@pytest.fixture
def hand(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The hand model decides, as where holmesgpt is not installed (its import blocked)."""
    monkeypatch.setitem(sys.modules, "holmes", None)
    hotreload._schema._adapter.cache_clear()
    yield
    hotreload._schema._adapter.cache_clear()


@pytest.fixture(params=["hand", "holmesgpt"])
def authority(request: pytest.FixtureRequest) -> str:
    """Each test twice: the hand model deciding, then holmesgpt's own models."""
    request.getfixturevalue("hand" if request.param == "hand" else "upstream")
    return str(request.param)
