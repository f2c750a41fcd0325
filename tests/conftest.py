"""Shared fixtures: a fresh metrics registry per test, captured structlog events, metric reads,
structlog's global configuration put back after each test, and a steerable RustNotify."""

from __future__ import annotations

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


@pytest.fixture(autouse=True)
def structlog_restored() -> Iterator[None]:
    """structlog's configuration is process-global, and whether it is configured decides where
    the library logs: every test starts from and leaves the configuration it found.

    (``capture_logs`` and the CLI's ``main`` call ``structlog.configure``, which marks structlog
    configured for good; without this, one test's capture would switch every later test's
    logging from the stdlib logger to structlog.)
    """
    configured = structlog.is_configured()
    saved = structlog.get_config()
    processors = list(saved["processors"])
    yield
    if configured:
        structlog.configure(**{**saved, "processors": processors})
    else:
        structlog.reset_defaults()


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
