"""Shared fixtures: a fresh metrics registry per test, captured structlog events, metric reads,
structlog's global configuration put back after each test, and a steerable RustNotify."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry
from watchfiles._rust_notify import RustNotify

import hotreload._watch

MetricReader = Callable[..., float | None]


@pytest.fixture(scope="session", autouse=True)
def sigint_not_ignored() -> Iterator[None]:
    """Tests stop the CLI's processes with SIGINT, as Ctrl-C would. A shell without job control
    starts a background job (``pytest &``, a CI step) with SIGINT ignored, and an ignored signal
    stays ignored across ``exec``: every child would ignore its Ctrl-C and the test would hang.
    Python's own handler for the session lets children start with the default."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, previous)


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
def structlog_unconfigured() -> None:
    """structlog as an application that never configured it has it (the library then logs
    to the stdlib logger ``hotreload``); `structlog_restored` puts the session's back."""
    structlog.reset_defaults()
    assert not structlog.is_configured()


@pytest.fixture
def restore_root_level() -> Iterator[None]:
    """The stdlib root logger's level back as it was (a config's ``log_level`` sets it)."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


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


# -- a steerable RustNotify ---------------------------------------------------------------------


@dataclass
class RustNotifyControls:
    """What a test holds to steer the watcher hub's `RustNotify` instances (`rust_notify`).

    Every instance wraps a real RustNotify, so events still come from the real file system.
    The hub's first instance is the running watcher; every later one is a restart.
    """

    crash: threading.Event = field(default_factory=threading.Event)
    """Once set, the first instance's ``watch()`` raises at its next step (or event)."""
    restarts_open: threading.Event = field(default_factory=threading.Event)
    """A restart's construction waits until this is set (it is, unless the test clears it)."""
    restarts_fail: threading.Event = field(default_factory=threading.Event)
    """While set, a restart's construction raises, as an exhausted inotify limit would."""
    restarting: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    """Resolved when the first restart begins its construction."""
    restarted: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    """Resolved when a restart's construction first succeeds: a real watcher runs again."""
    created: int = 0
    """Constructions begun, failed ones included."""

    def __post_init__(self) -> None:
        self.restarts_open.set()

    def release(self) -> None:
        """Let every waiting or later restart through, and succeed."""
        self.restarts_fail.clear()
        self.restarts_open.set()


class _Either:
    """A stop event for RustNotify (anything with ``is_set``): set when either one is."""

    def __init__(self, first: Any, second: threading.Event) -> None:
        self.first, self.second = first, second

    def is_set(self) -> bool:
        return bool(self.first.is_set()) or self.second.is_set()


def _steerable(controls: RustNotifyControls) -> type:
    loop = controls.restarting.get_loop()

    class SteerableRustNotify:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.index = controls.created
            controls.created += 1
            if self.index > 0:
                if not controls.restarting.done():
                    loop.call_soon_threadsafe(_resolve, controls.restarting)
                controls.restarts_open.wait(timeout=10)
                if controls.restarts_fail.is_set():
                    raise RuntimeError("inotify watch limit reached (simulated)")
            self.inner = RustNotify(*args, **kwargs)
            if self.index > 0 and not controls.restarted.done():
                loop.call_soon_threadsafe(_resolve, controls.restarted)

        def __enter__(self) -> SteerableRustNotify:
            self.inner.__enter__()
            return self

        def __exit__(self, *exc: object) -> None:
            self.inner.__exit__(*exc)

        def watch(self, debounce_ms: int, step_ms: int, timeout_ms: int, stop_event: Any) -> Any:
            if self.index == 0:
                stop_event = _Either(stop_event, controls.crash)
            result = self.inner.watch(
                debounce_ms=debounce_ms,
                step_ms=step_ms,
                timeout_ms=timeout_ms,
                stop_event=stop_event,
            )
            if self.index == 0 and controls.crash.is_set():
                raise RuntimeError("simulated watcher crash")
            return result

    return SteerableRustNotify


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@pytest.fixture
async def rust_notify(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RustNotifyControls]:
    """The watcher hub's `RustNotify`, steerable: crash the running watcher, hold back or
    fail its restarts (in the style of watchfiles' own ``mock_rust_notify`` fixture, with
    the real watcher inside). At the end every held restart is let through."""
    controls = RustNotifyControls()
    monkeypatch.setattr(hotreload._watch, "RustNotify", _steerable(controls))
    try:
        yield controls
    finally:
        controls.release()
