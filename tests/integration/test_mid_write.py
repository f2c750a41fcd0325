"""An in-place write caught between its truncate and its write is not a failure."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import anyio
from prometheus_client import CollectorRegistry

from hotreload import ConfigParseError, HotReloader, ReloadResult
from hotreload.testing import write_in_place
from tests.conftest import MetricReader
from tests.integration.conftest import SettingsSchema

WAIT = 5.0


def failures(metric: MetricReader) -> float:
    return metric("hotreload_config_reload_failures_total", config="mw", reason="parse") or 0.0


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition()`` holds. White-box on purpose: while the engine
    waits for an empty file to fill it publishes nothing (that is the point), so there is no
    event to wait on."""
    with anyio.fail_after(WAIT):
        while not condition():  # noqa: ASYNC110 - see above: nothing to wait on
            await asyncio.sleep(0)  # sleep-ok: a bare yield


async def test_an_empty_file_that_fills_up_counts_no_failure(
    tmp_path: Path,
    registry: CollectorRegistry,
    metric: MetricReader,
    logs: list[MutableMapping[str, Any]],
    settings: SettingsSchema,
) -> None:
    # The truncate is made through a hard link the watcher does not see, and announced as the
    # watcher would: so the engine is sure to look at the file exactly while it is empty.
    (tmp_path / "conf").mkdir()
    (tmp_path / "hidden").mkdir()
    hidden = tmp_path / "hidden" / "config.yaml"
    hidden.write_text("model: gpt-4\n")
    path = tmp_path / "conf" / "config.yaml"
    os.link(hidden, path)
    async with HotReloader(path, schema=settings, name="mw", registry=registry) as r:
        outcomes = r.outcomes()
        with open(hidden, "r+b") as f:
            f.truncate(0)
            r._notify("watch")
            await until(lambda: r._empty_deferred)  # it saw the empty file, and waits
            f.write(b"model: gpt-5\n")
        write_in_place(path, "model: gpt-5\n")  # the write the watcher does see
        snap = await r.wait_for_generation(2, timeout=WAIT)
        assert snap.config == settings(model="gpt-5")
        first = await asyncio.wait_for(outcomes.__anext__(), WAIT)
        assert first.applied  # no rejection was published before it
        assert failures(metric) == 0
        assert not [e for e in logs if e["event"].startswith("Failed to apply")]


async def test_a_file_left_empty_is_refused_after_the_grace(
    config_path: Path, registry: CollectorRegistry, metric: MetricReader, settings: SettingsSchema
) -> None:
    async with HotReloader(config_path, schema=settings, name="mw", registry=registry) as r:
        config_path.write_bytes(b"")
        refused = await r.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=WAIT)
        assert isinstance(refused.error, ConfigParseError)
        assert failures(metric) == 1
        assert r.config == settings(model="gpt-4")
        # A caller asking gets the answer at once, without the grace.
        assert (await r.reload()).result is ReloadResult.VALIDATION_FAILED
