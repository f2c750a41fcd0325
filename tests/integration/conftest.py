"""Integration fixtures: a real directory, a real file and the real watcher."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A small schema for the integration tests."""

    model: str
    retries: int = 3


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """``<tmp>/conf/config.yaml`` holding a valid first version (model: gpt-4)."""
    directory = tmp_path / "conf"
    directory.mkdir()
    path = directory / "config.yaml"
    path.write_text("model: gpt-4\n")
    return path
