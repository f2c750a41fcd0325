"""Shared fixtures: a fresh metrics registry per test, captured structlog events, metric reads."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry

MetricReader = Callable[..., float | None]


@pytest.fixture
def registry() -> CollectorRegistry:
    """Each test gets its own registry, so metric values start from zero."""
    return CollectorRegistry()


@pytest.fixture
def metric(registry: CollectorRegistry) -> MetricReader:
    """``metric("hotreload_config_reload_total", config="x")`` → the sample's value or None."""

    def read(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    return read


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every structlog event emitted during the test, as dicts (event, log_level, ...)."""
    with structlog.testing.capture_logs() as captured:
        yield captured


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """``<tmp>/conf/config.yaml`` holding a valid first version (model: gpt-4)."""
    directory = tmp_path / "conf"
    directory.mkdir()
    path = directory / "config.yaml"
    path.write_text("model: gpt-4\n")
    return path


@pytest.fixture
def restore_root_level() -> Iterator[None]:
    """Put the root logger's level back: a config's ``log_level`` sets it, process-wide."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)
