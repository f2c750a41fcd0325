"""The `Source` protocol: any object that can read and watch a document gets the whole engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hotreload import (
    ConfigReadError,
    FileSource,
    HotReloader,
    Layers,
    ReloadResult,
    Revision,
    Source,
)
from hotreload.testing import write_in_place
from tests.conftest import MetricReader
from tests.integration.conftest import AnySettings, SettingsSchema

WAIT = 5.0


class MemorySource:
    """A document in memory with a version per write, as a key-value store would hold it."""

    def __init__(self, text: str | None, *, fail_watch: int = 0) -> None:
        self.text = text
        self.version = 1
        self.fail_watch = fail_watch
        self.watching = 0
        self.before_ready: Callable[[], None] = lambda: None
        self._notify: Callable[[str], None] | None = None

    @property
    def uri(self) -> str:
        return "memory://config.yaml"

    @property
    def format(self) -> None:
        return None

    def put(self, text: str | None) -> None:
        self.text = text
        self.version += 1
        if self._notify is not None:
            self._notify("watch")

    async def read(self, max_bytes: int) -> Revision:
        if self.text is None:
            raise ConfigReadError(self.uri, "key not found", reason="missing")
        return Revision(self.text.encode(), str(self.version))

    async def watch(self, notify: Callable[[str], None], ready: Callable[[], None]) -> None:
        self.watching += 1
        if self.fail_watch:
            self.fail_watch -= 1
            raise ConnectionError("server went away")
        self.before_ready()
        self._notify = notify
        try:
            ready()
            await asyncio.Event().wait()
        finally:
            self._notify = None


def open_reloader(
    source: Source, registry: CollectorRegistry, settings: SettingsSchema
) -> HotReloader[AnySettings]:
    return HotReloader(source=source, schema=settings, name="mem", registry=registry)


async def test_a_custom_source_gets_the_whole_pipeline(
    registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    source = MemorySource("model: gpt-4\n")
    assert isinstance(source, Source)
    async with open_reloader(source, registry, settings) as r:
        assert r.path == "memory://config.yaml"
        assert (r.snapshot.source, r.snapshot.version) == ("memory://config.yaml", "1")
        source.put("model: gpt-5\n")
        snap = await r.wait_for_generation(2, timeout=WAIT)
        assert (snap.config, snap.version) == (settings(model="gpt-5"), "2")

        source.put("model: [\n")
        bad = await r.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=WAIT)
        assert bad.error is not None
        assert str(bad.error).startswith("memory://config.yaml:")
        source.put(None)
        gone = await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        assert isinstance(gone.error, ConfigReadError)
        assert r.config == settings(model="gpt-5")

        async with r.session():  # drain and failures work the same on any source
            source.put("model: gpt-6\n")
            held = await r.wait_for_outcome(ReloadResult.CONFIG_CHANGED, timeout=WAIT)
            assert held.deferred
        await r.wait_for_generation(3, timeout=WAIT)


async def test_a_change_before_the_watch_is_ready_is_caught_by_a_rescan(
    registry: CollectorRegistry,
    settings: SettingsSchema,
) -> None:
    source = MemorySource("model: gpt-4\n")
    source.before_ready = lambda: source.put("model: gpt-5\n")  # lands before the watch is up
    async with open_reloader(source, registry, settings) as r:
        snap = await r.wait_for_generation(2, timeout=WAIT)
        assert snap.config == r.config == settings(model="gpt-5")
        assert r.last_outcome is not None
        assert r.last_outcome.trigger == "rescan"


async def test_a_watch_that_fails_is_restarted_and_counted(
    registry: CollectorRegistry, metric: MetricReader, settings: SettingsSchema
) -> None:
    source = MemorySource("model: gpt-4\n", fail_watch=2)
    async with open_reloader(source, registry, settings) as r:
        assert source.watching == 3
        assert metric("hotreload_watch_restarts_total", config="mem") == 2
        source.put("model: gpt-5\n")
        await r.wait_for_generation(2, timeout=WAIT)


async def test_the_first_read_still_fails_fast(
    registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    with pytest.raises(ConfigReadError, match=r"memory://config\.yaml: key not found"):
        async with open_reloader(MemorySource(None), registry, settings):
            pass


async def test_file_source_is_what_a_path_means(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    source = FileSource(config_path, debounce_ms=50, step_ms=10)
    assert isinstance(source, Source)
    async with open_reloader(source, registry, settings) as r:
        assert r.snapshot.version is None
        write_in_place(config_path, "model: gpt-5\n")
        snap = await r.wait_for_generation(2, timeout=WAIT)
        assert snap.config == settings(model="gpt-5")


def test_a_source_is_a_path_a_list_of_layers_or_a_source(
    config_path: Path, settings: SettingsSchema
) -> None:
    assert isinstance(HotReloader(config_path, schema=settings).source, FileSource)
    with pytest.raises(TypeError, match="give HotReloader a source"):
        HotReloader(schema=settings)
    with pytest.raises(TypeError, match=r"must be a path, a list of layers or a hotreload\.Source"):
        HotReloader(source=object(), schema=settings)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="env_prefix goes with paths"):
        HotReloader(Layers(config_path), env_prefix="APP_", schema=settings)


async def test_file_source_watch_on_its_own(config_path: Path) -> None:
    """FileSource fulfils the protocol by itself too (the reloader takes a shorter path)."""
    source = FileSource(config_path)
    kinds: list[str] = []
    seen, ready = asyncio.Event(), asyncio.Event()

    def notify(kind: str) -> None:
        kinds.append(kind)
        if kind == "watch":
            seen.set()

    task = asyncio.create_task(source.watch(notify, ready.set))
    try:
        await asyncio.wait_for(ready.wait(), WAIT)
        write_in_place(config_path, "model: gpt-5\n")
        await asyncio.wait_for(seen.wait(), WAIT)
        assert (await source.read(1024)).content == b"model: gpt-5\n"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert source.uri == str(config_path)
    assert repr(source) == f"FileSource({str(config_path)!r})"
