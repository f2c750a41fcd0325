"""A derived `httpx.AsyncClient` against real servers: an "LLM" upstream and a service in front
of it, both under uvicorn on loopback. The service streams from its derived client; the config
moves the client to another endpoint while a stream is in flight.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from hotreload import Derived, HotReloader, ReloadResult
from hotreload.asgi import HotReloadMiddleware, hotreload_lifespan
from hotreload.testing import write_atomic
from tests.e2e.conftest import serving

WAIT = 5.0
#: One TLS context for every client: building one per client costs ~30 ms of certificate
#: loading, and sharing it is what a service should do anyway.
TLS = ssl.create_default_context()


class LLM(msgspec.Struct, frozen=True, kw_only=True):
    endpoint: str


class Conf(msgspec.Struct, frozen=True, kw_only=True):
    llm: LLM


def upstream(finish: asyncio.Event) -> Starlette:
    """The "LLM": ``/{name}/hello`` answers its name; ``/{name}/stream`` sends a first line,
    then the last one once ``finish`` is set."""

    async def hello(request: Request) -> Response:
        return PlainTextResponse(request.path_params["name"])

    async def stream(request: Request) -> Response:
        name = request.path_params["name"]

        async def body() -> AsyncIterator[bytes]:
            yield f"{name}:start\n".encode()
            await finish.wait()
            yield f"{name}:end\n".encode()

        return StreamingResponse(body())

    return Starlette(routes=[Route("/{name}/hello", hello), Route("/{name}/stream", stream)])


def open_connections_to(port: int) -> int:
    """ESTABLISHED TCP connections from this machine to ``port`` on loopback (client sides)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01":
                    count += 1
    return count


def derive_client(reloader: HotReloader[Conf], closes: Counter[int]) -> Derived[httpx.AsyncClient]:
    async def close(client: httpx.AsyncClient) -> None:
        closes[id(client)] += 1
        await client.aclose()

    return reloader.derive(
        lambda c: httpx.AsyncClient(base_url=c.llm.endpoint, timeout=WAIT, verify=TLS),
        on=("llm",),
        close=close,
        name="llm",
    )


async def test_a_stream_in_flight_finishes_on_the_old_client_and_new_requests_use_the_new(
    tmp_path: Path,
) -> None:
    finish = asyncio.Event()
    config = tmp_path / "config.yaml"
    closes: Counter[int] = Counter()
    async with serving(upstream(finish)) as up:
        base = str(up.base_url).rstrip("/")
        write_atomic(config, f"llm:\n  endpoint: {base}/old\n")
        reloader = HotReloader(config, schema=Conf, name="svc", registry=CollectorRegistry())
        llm = derive_client(reloader, closes)

        async def ask(request: Request) -> Response:
            client = llm.get()  # the client pinned for this request by the middleware
            upstream_request = client.build_request("GET", "stream")
            response = await client.send(upstream_request, stream=True)

            async def relay() -> AsyncIterator[bytes]:
                try:
                    async for chunk in response.aiter_raw():
                        yield chunk
                    yield f"client:{id(client)}\n".encode()
                finally:
                    await response.aclose()

            return StreamingResponse(relay())

        async def hello(request: Request) -> Response:
            answer = await llm.get().get("hello")
            return PlainTextResponse(answer.text)

        service = Starlette(
            routes=[Route("/ask", ask), Route("/hello", hello)],
            middleware=[Middleware(HotReloadMiddleware)],
            lifespan=hotreload_lifespan(reloader),
        )
        async with serving(service) as svc:
            old = llm.current
            async with svc.stream("GET", "/ask") as streamed:
                lines = streamed.aiter_lines()
                assert await anext(lines) == "old:start"

                write_atomic(config, f"llm:\n  endpoint: {base}/new\n")
                await reloader.wait_for_generation(2, timeout=WAIT)
                assert llm.current is not old
                assert (await svc.get("/hello")).text == "new"  # new requests: new endpoint
                assert (old.is_closed, closes[id(old)], llm.draining) == (False, 0, 1)

                finish.set()
                assert await anext(lines) == "old:end"
                assert await anext(lines) == f"client:{id(old)}"  # finished on the old one
            outcome = reloader.last_outcome
            assert outcome is not None
            assert outcome.result is ReloadResult.CONFIG_CHANGED
            await llm.wait_drained(timeout=WAIT)  # closed once the request's pin ended
            assert old.is_closed
            assert closes[id(old)] == 1
            new = llm.current
            assert not new.is_closed
    assert new.is_closed  # the exit closed the current one
    assert sorted(closes.values()) == [1, 1]


async def test_a_build_failure_keeps_the_old_config_and_client(tmp_path: Path) -> None:
    async with serving(upstream(asyncio.Event())) as up:
        base = str(up.base_url).rstrip("/")
        config = tmp_path / "config.yaml"
        write_atomic(config, f"llm:\n  endpoint: {base}/old\n")
        reloader = HotReloader(config, schema=Conf, name="svc", registry=CollectorRegistry())
        llm = derive_client(reloader, Counter())
        async with reloader:
            old = llm.current
            write_atomic(config, "llm:\n  endpoint: 'http://[::1'\n")  # httpx: InvalidURL
            outcome = await reloader.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
            assert outcome.error is not None
            assert "derived resource llm failed" in str(outcome.error)
            assert (reloader.snapshot.generation, llm.current) == (1, old)
            assert (await llm.current.get("hello")).text == "old"


@pytest.mark.timeout(180)
async def test_after_1000_swaps_no_client_is_left_open(tmp_path: Path) -> None:
    async with serving(upstream(asyncio.Event())) as up:
        assert up.base_url.port is not None
        port = up.base_url.port
        base = str(up.base_url).rstrip("/")
        config = tmp_path / "config.yaml"
        write_atomic(config, f"llm:\n  endpoint: {base}/e0\n")
        reloader = HotReloader(
            config, schema=Conf, name="svc", registry=CollectorRegistry(), poll_interval=0
        )
        closes: Counter[int] = Counter()
        llm = derive_client(reloader, closes)
        clients: list[httpx.AsyncClient] = []
        baseline = open_connections_to(port)  # the fixture's own client, if connected
        most = 0
        async with reloader:
            for i in range(1, 1001):
                clients.append(llm.current)
                write_atomic(config, f"llm:\n  endpoint: {base}/e{i}\n")
                outcome = await reloader.reload()
                if not outcome.applied:  # the watcher got there first
                    await reloader.wait_for_generation(i + 1, timeout=WAIT)
                with reloader.pin_resources():
                    assert (await llm.get().get("hello")).text == f"e{i}"
                most = max(most, open_connections_to(port) - baseline)
            clients.append(llm.current)
        assert len({id(c) for c in clients}) == 1001
        assert all(c.is_closed for c in clients)
        assert set(closes.values()) == {1}  # each closed exactly once
        assert len(closes) == 1001
        assert open_connections_to(port) <= baseline  # (the fixture's may have timed out)
        assert most <= 3  # closed as it went, not piled up until the exit
