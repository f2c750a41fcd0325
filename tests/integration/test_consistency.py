"""The swap, seen from other threads: whole versions only, generations only moving forward."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pydantic
import pytest
from prometheus_client import CollectorRegistry

from hotreload import HotReloader, LogLevel, ReloadResult
from hotreload.testing import write_atomic, write_in_place
from tests.conftest import MetricReader


class Pair(msgspec.Struct, frozen=True):
    a: int
    b: int


class WithLevel(msgspec.Struct, frozen=True):
    log_level: str = "INFO"


class PydanticPair(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    a: int
    b: int


class PydanticWithLevel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    log_level: str = "INFO"


AnyPair = Pair | PydanticPair
# The swap is the same whatever made the config: both kinds of schema race the readers.
pair_schemas = pytest.mark.parametrize("schema", [Pair, PydanticPair], ids=["msgspec", "pydantic"])


@pair_schemas
async def test_reader_threads_see_whole_versions_in_order(
    tmp_path: Path, registry: CollectorRegistry, schema: type[AnyPair]
) -> None:
    path = tmp_path / "pair.yaml"
    path.write_text("a: 0\nb: 0\n")
    problems: list[str] = []
    generations: list[set[int]] = []
    stop = threading.Event()

    def reader(r: HotReloader[AnyPair]) -> None:
        last, seen = 0, set()
        while not stop.is_set():
            snap = r.snapshot
            config = r.config
            if snap.config.a != snap.config.b or config.a != config.b:
                problems.append(f"mixed version at generation {snap.generation}")
            if snap.generation < last:
                problems.append(f"generation went back from {last} to {snap.generation}")
            last = snap.generation
            seen.add(last)
            os.sched_yield()  # let the loop's thread have the GIL between reads
        generations.append(seen)

    async with HotReloader(
        path, schema=schema, name="pair", registry=registry, poll_interval=0
    ) as reloader:
        threads = [threading.Thread(target=reader, args=(reloader,)) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            for i in range(1, 31):
                write_atomic(path, f"a: {i}\nb: {i}\n")
                await reloader.wait_for_generation(i + 1, timeout=5)
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert problems == []
    assert all(len(seen) > 1 for seen in generations)  # the readers really raced the writer


async def test_many_in_place_writes_end_on_the_last_one(
    tmp_path: Path, registry: CollectorRegistry, metric: MetricReader
) -> None:
    path = tmp_path / "pair.yaml"
    path.write_text("a: 0\nb: 0\n")
    async with HotReloader(
        path, schema=Pair, name="burst", registry=registry, poll_interval=0
    ) as reloader:
        for i in range(1, 201):
            write_in_place(path, f"a: {i}\nb: {i}\n")
        await reloader.wait_for_outcome(lambda o: reloader.config.a == 200, timeout=5)
        commits = reloader.snapshot.generation - 1
        assert 1 <= commits <= 200
        assert metric("hotreload_config_reload_total", config="burst") == commits
        # The storm is coalesced by the watcher and the worker: far fewer commits than writes.
        assert commits < 100


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("app.sub")
    root_level, level = logging.getLogger().level, logger.level
    yield logger
    logger.setLevel(level)
    logging.getLogger().setLevel(root_level)


@pytest.mark.parametrize("schema", [WithLevel, PydanticWithLevel], ids=["msgspec", "pydantic"])
async def test_log_level_goes_to_the_named_loggers_only(
    tmp_path: Path,
    registry: CollectorRegistry,
    app_logger: logging.Logger,
    schema: type[WithLevel | PydanticWithLevel],
) -> None:
    path = tmp_path / "levels.yaml"
    path.write_text("log_level: WARNING\n")
    root_before = logging.getLogger().level
    async with HotReloader(
        path,
        schema=schema,
        name="levels",
        registry=registry,
        log_level=LogLevel(loggers=["app.sub"]),
    ) as reloader:
        assert app_logger.level == logging.WARNING
        path.write_text("log_level: debug\n")
        await reloader.wait_for_generation(2, timeout=5)
        assert app_logger.level == logging.DEBUG
        path.write_text("log_level: LOUD\n")
        outcome = await reloader.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=5)
        assert outcome.error is not None
        assert "unknown log level" in str(outcome.error)
        assert app_logger.level == logging.DEBUG
    assert logging.getLogger().level == root_before
