"""Where a live reloader's events go: the stdlib logger ``hotreload`` when nobody configured
structlog (so an unconfigured application sees no DEBUG/INFO noise on stdout), structlog when
the application configured it; the config's ``log_level`` switch steers both."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from hotreload import HotReloader
from hotreload.testing import write_in_place

WAIT = 5.0


class Leveled(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    model: str
    log_level: str = "WARNING"


def hotreload_records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "hotreload"]


@pytest.mark.usefixtures("structlog_unconfigured", "restore_root_level")
async def test_unconfigured_reloader_is_quiet_below_the_stdlib_level(
    config_path: Path,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Root at WARNING (the config's level, and Python's default): a start, a change and a bad
    version give exactly one record, the refusal, and nothing on stdout."""
    caplog.set_level(logging.NOTSET)  # catch whatever the loggers let through
    async with HotReloader(config_path, schema=Leveled, name="quiet", registry=registry) as r:
        write_in_place(config_path, "model: gpt-5\n")
        await r.wait_for_generation(2, timeout=WAIT)
        write_in_place(config_path, "model: [gpt\n")
        await r.wait_for_outcome(lambda o: o.error is not None, timeout=WAIT)
    records = hotreload_records(caplog)
    assert [level for level, _ in records] == [logging.ERROR], records
    assert records[0][1].startswith("Failed to apply new configuration - keeping previous ")
    assert "config=quiet" in records[0][1]
    assert capsys.readouterr().out == ""


@pytest.mark.usefixtures("structlog_unconfigured", "restore_root_level")
async def test_unconfigured_reloader_follows_its_log_level_switch(
    config_path: Path, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """``log_level: DEBUG`` in the config (FR-4) lets the library's own DEBUG events through."""
    caplog.set_level(logging.NOTSET)
    async with HotReloader(config_path, schema=Leveled, name="switch", registry=registry) as r:
        assert hotreload_records(caplog) == []
        write_in_place(config_path, "model: gpt-4\nlog_level: DEBUG\n")
        await r.wait_for_generation(2, timeout=WAIT)
        assert (await r.reload()).generation == 2  # an unchanged re-check: a DEBUG event
    events = [message.split(" ", 1)[0] for _, message in hotreload_records(caplog)]
    assert "log_level_applied" in events
    assert "config_unchanged" in events
    assert logging.DEBUG in {level for level, _ in hotreload_records(caplog)}


async def test_configured_structlog_gets_every_event_and_the_stdlib_logger_none(
    config_path: Path,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
    logs: list[MutableMapping[str, Any]],
) -> None:
    """Today's behaviour when the application configured structlog (``capture_logs`` does)."""
    caplog.set_level(logging.NOTSET)
    async with HotReloader(config_path, schema=Leveled, name="structured", registry=registry) as r:
        write_in_place(config_path, "model: gpt-5\n")
        await r.wait_for_generation(2, timeout=WAIT)
    events = [e["event"] for e in logs]
    assert "config_loaded" in events
    assert "Configuration hot-reloaded successfully" in events
    assert next(e for e in logs if e["event"] == "config_loaded")["config"] == "structured"
    assert hotreload_records(caplog) == []
