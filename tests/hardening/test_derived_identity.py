"""A derived build may return the object already in force (a cached or pooled client): the
swap must not close it while it is still current, nor may a refused change close it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from hotreload import HotReloader, ReloadResult
from hotreload.testing import write_in_place

WAIT = 5.0


class Conf(msgspec.Struct, frozen=True, kw_only=True):
    endpoint: str
    retries: int = 3


class Client:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.closes = 0

    async def aclose(self) -> None:
        self.closes += 1


async def _settle() -> None:
    """Let any (wrong) background close that a swap queued run to its end."""
    for _ in range(5):
        await asyncio.sleep(0)  # sleep-ok: a queued close needs a few loop steps to run


async def test_a_build_that_returns_the_object_in_force_does_not_close_it(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("endpoint: http://a\n")
    pool: dict[str, Client] = {}

    def build(config: Conf) -> Client:  # a pool keyed by endpoint: the same object comes back
        return pool.setdefault(config.endpoint, Client(config.endpoint))

    r = HotReloader(path, schema=Conf, name="pool", registry=registry)
    client = r.derive(build, on=(), name="client")
    async with r:
        first = client.current
        write_in_place(path, "endpoint: http://a\nretries: 5\n")  # on=(): rebuilt, same object
        await r.wait_for_generation(2, timeout=WAIT)
        await _settle()
        assert client.current is first
        assert (first.closes, client.draining, client.generation) == (0, 0, 2)
        write_in_place(path, "endpoint: http://b\nretries: 5\n")  # another object
        await r.wait_for_generation(3, timeout=WAIT)
        await client.wait_drained(timeout=WAIT)
        assert (first.closes, client.current.endpoint) == (1, "http://b")
    assert client.current.closes == 1  # exit closes the one in force, once


async def test_a_refused_change_does_not_close_the_object_in_force(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("endpoint: http://a\n")
    shared = Client("http://a")

    async def refuse(new: Any, old: Any) -> None:
        raise RuntimeError("no")

    r = HotReloader(path, schema=Conf, name="refused", registry=registry, on_apply=[refuse])
    client = r.derive(lambda c: shared, on=(), name="client")
    async with r:
        write_in_place(path, "endpoint: http://a\nretries: 9\n")
        await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        await _settle()
        assert (client.current, shared.closes) == (shared, 0)
    assert shared.closes == 1
