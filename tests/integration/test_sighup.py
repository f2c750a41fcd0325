"""A real SIGHUP, sent to this very process, re-checks every open reloader (trigger "signal").

Every test first installs a handler of its own (restored afterwards): it proves that ours
chains to it, and a SIGHUP that found no handler of ours would not kill the test run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
import pytest
from prometheus_client import CollectorRegistry

import hotreload
from hotreload import HotReloader, ReloadOutcome, ReloadResult, Revision, Snapshot, Stream
from hotreload._parsing import Format
from hotreload.asgi import hotreload_lifespan
from hotreload.testing import write_in_place
from tests.integration.conftest import AnySettings, SettingsSchema
from tests.integration.test_update_styles import watcher_up

WAIT = 10.0


class Previous:
    """A handler installed before ours, as an application or server would."""

    def __init__(self) -> None:
        self.calls = 0
        self.called = asyncio.Event()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.calls += 1
        self.called.set()


@pytest.fixture
def previous() -> Iterator[Previous]:
    handler = Previous()
    saved = signal.signal(signal.SIGHUP, handler)
    try:
        yield handler
    finally:
        signal.signal(signal.SIGHUP, saved)


async def next_signal_outcome(outcomes: Stream[ReloadOutcome]) -> ReloadOutcome:
    with anyio.fail_after(WAIT):
        async for outcome in outcomes:
            if outcome.trigger == "signal":
                return outcome
    raise AssertionError("the reloader closed")


def two_files(tmp_path: Path) -> tuple[Path, Path]:
    paths = (tmp_path / "a.yaml", tmp_path / "b.yaml")
    for path in paths:
        path.write_text("model: gpt-4\n")
    return paths


async def test_sighup_rechecks_every_open_reloader_and_chains(
    tmp_path: Path, registry: CollectorRegistry, previous: Previous, settings: SettingsSchema
) -> None:
    a_path, b_path = two_files(tmp_path)
    async with (
        HotReloader(a_path, schema=settings, registry=registry, name="a", poll_interval=0) as a,
        HotReloader(b_path, schema=settings, registry=registry, name="b", poll_interval=0) as b,
    ):
        await watcher_up(a)
        await watcher_up(b)
        undo = hotreload.reload_on_sighup()
        try:
            a_out, b_out = a.outcomes(), b.outcomes()
            os.kill(os.getpid(), signal.SIGHUP)
            outcomes = await asyncio.gather(next_signal_outcome(a_out), next_signal_outcome(b_out))
            assert [o.result for o in outcomes] == [ReloadResult.CONFIG_UNCHANGED] * 2
            await asyncio.wait_for(previous.called.wait(), WAIT)
            assert previous.calls == 1
        finally:
            undo()
    assert signal.getsignal(signal.SIGHUP) is previous  # put back as it was


class Unwatched:
    """A source whose watch never reports anything: only a re-check can find its changes."""

    def __init__(self, text: str) -> None:
        self.text = text

    @property
    def uri(self) -> str:
        return "memory://unwatched.yaml"

    @property
    def format(self) -> Format | None:
        return "yaml"

    async def read(self, max_bytes: int) -> Revision:
        return Revision(self.text.encode())

    async def watch(self, notify: Callable[[str], None], ready: Callable[[], None]) -> None:
        ready()
        await asyncio.Event().wait()


async def test_sighup_finds_a_change_nothing_else_reported(
    registry: CollectorRegistry, previous: Previous, settings: SettingsSchema
) -> None:
    source = Unwatched("model: gpt-4\n")
    async with HotReloader(source=source, schema=settings, registry=registry, poll_interval=0) as r:
        undo = hotreload.reload_on_sighup()
        try:
            outcomes = r.outcomes()
            source.text = "model: gpt-5\n"
            os.kill(os.getpid(), signal.SIGHUP)
            outcome = await next_signal_outcome(outcomes)
            assert (outcome.result, outcome.applied) == (ReloadResult.CONFIG_CHANGED, True)
            assert r.config.model == "gpt-5"
        finally:
            undo()


async def test_reload_on_sighup_is_idempotent_and_undone_by_its_last_user(
    previous: Previous,
) -> None:
    first = hotreload.reload_on_sighup()
    installed = signal.getsignal(signal.SIGHUP)
    assert installed is not previous
    second = hotreload.reload_on_sighup()
    assert signal.getsignal(signal.SIGHUP) is installed  # the same handler, one more user
    first()
    first()  # undoing twice is undoing once
    assert signal.getsignal(signal.SIGHUP) is installed
    second()
    assert signal.getsignal(signal.SIGHUP) is previous


async def test_a_loop_owned_sighup_handler_is_refused_not_replaced(previous: Previous) -> None:
    loop = asyncio.get_running_loop()
    theirs = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, theirs.set)
    try:
        with pytest.raises(RuntimeError, match="add_signal_handler"):
            hotreload.reload_on_sighup()
        os.kill(os.getpid(), signal.SIGHUP)  # still theirs
        await asyncio.wait_for(theirs.wait(), WAIT)
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


def test_installed_before_the_loop_runs(
    tmp_path: Path, registry: CollectorRegistry, previous: Previous, settings: SettingsSchema
) -> None:
    """Called at import time, before any loop: a plain signal handler hands over to the loop."""
    a_path, b_path = two_files(tmp_path)
    undo = hotreload.reload_on_sighup()

    async def main() -> list[ReloadOutcome]:
        async with (
            HotReloader(a_path, schema=settings, registry=registry, name="a", poll_interval=0) as a,
            HotReloader(b_path, schema=settings, registry=registry, name="b", poll_interval=0) as b,
        ):
            await watcher_up(a)
            await watcher_up(b)
            a_out, b_out = a.outcomes(), b.outcomes()
            os.kill(os.getpid(), signal.SIGHUP)
            return list(
                await asyncio.gather(next_signal_outcome(a_out), next_signal_outcome(b_out))
            )

    try:
        outcomes = asyncio.run(main())
    finally:
        undo()
    assert [o.trigger for o in outcomes] == ["signal", "signal"]
    assert previous.calls == 1
    assert signal.getsignal(signal.SIGHUP) is previous


def test_lifespan_flag_off_the_main_thread_warns_and_starts(
    config_path: Path,
    registry: CollectorRegistry,
    logs: list[MutableMapping[str, Any]],
    settings: SettingsSchema,
) -> None:
    """An app run off the main thread (as test clients do) cannot set a signal handler: the
    lifespan still starts, and says why SIGHUP will not reload."""
    lifespan = hotreload_lifespan(
        lambda: HotReloader(config_path, schema=settings, registry=registry),
        reload_on_sighup=True,
    )
    models: list[str] = []
    before = signal.getsignal(signal.SIGHUP)

    async def serve() -> None:
        async with lifespan(object()) as state:
            models.append(state["hotreload"].config.model)

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    thread.join()
    assert models == ["gpt-4"]
    [warning] = [e for e in logs if e["event"] == "sighup_reload_not_installed"]
    assert "main thread" in warning["reason"]
    assert signal.getsignal(signal.SIGHUP) == before


async def test_sighup_retries_a_version_an_apply_hook_refused(
    config_path: Path, registry: CollectorRegistry, previous: Previous, settings: SettingsSchema
) -> None:
    """Like a caller's reload(): the operator fixed what the hook needed, then sent SIGHUP."""
    seen: list[str] = []

    async def hook(new: Snapshot[AnySettings], old: Snapshot[AnySettings]) -> None:
        seen.append(new.config.model)
        if len(seen) == 1:
            raise RuntimeError("the new model's endpoint is not reachable yet")

    async with HotReloader(
        config_path, schema=settings, registry=registry, poll_interval=0, on_apply=[hook]
    ) as r:
        await watcher_up(r)
        write_in_place(config_path, "model: gpt-5\n")
        await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        assert r.config.model == "gpt-4"
        undo = hotreload.reload_on_sighup()
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            snap = await r.wait_for_generation(2, timeout=WAIT)
        finally:
            undo()
        assert snap.config.model == "gpt-5"
        assert seen == ["gpt-5", "gpt-5"]
        assert r.last_outcome is not None
        assert r.last_outcome.trigger == "signal"
