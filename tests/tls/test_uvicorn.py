"""A real uvicorn HTTPS server whose certificate rotates: kubelet's ``..data`` swap of
``tls.crt`` and ``tls.key``, bad pairs that must keep the one in force, and 200 rotations
under a client that never stops handshaking."""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from hotreload.asgi import admin_routes
from hotreload.testing import ConfigMapVolume
from hotreload.tls import (
    Issued,
    ServerTLS,
    TLSCertificateError,
    UvicornTLS,
    self_signed,
    servers,
)

from .conftest import https_get, serial_of, tls_files, trusting, uvicorn_https


def app_for(tls: ServerTLS | None, release: asyncio.Event | None = None) -> Starlette:
    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def stream(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"first\n"
            if release is not None:
                await release.wait()
            yield b"last\n"

        return StreamingResponse(body())

    admin = admin_routes(tls.reloader) if tls is not None else []
    return Starlette(routes=[Route("/", home), Route("/stream", stream), *admin])


def server_tls(volume: ConfigMapVolume, registry: CollectorRegistry, **kw: Any) -> ServerTLS:
    return ServerTLS(
        volume.path("tls.crt"), volume.path("tls.key"), registry=registry, poll_interval=0, **kw
    )


async def test_a_kubelet_swap_reaches_new_handshakes_while_a_stream_begun_on_a_finishes(
    volume: ConfigMapVolume, pair_a: Issued, pair_b: Issued, registry: CollectorRegistry
) -> None:
    release = asyncio.Event()
    trust = trusting(pair_a, pair_b)
    async with (
        server_tls(volume, registry) as tls,
        uvicorn_https(app_for(tls, release), tls.uvicorn_factory) as port,
    ):
        assert (await https_get(port, trust))[0] == pair_a.serial

        # A streaming response begins on A...
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trust)
        stream_serial = serial_of(writer.get_extra_info("ssl_object").getpeercert(True))
        writer.write(b"GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        await writer.drain()
        assert b"first" in await reader.readuntil(b"first\n")

        volume.update(tls_files(pair_b))  # ...kubelet swaps tls.crt and tls.key at once
        await tls.reloader.wait_for_generation(2, timeout=10)
        assert (await https_get(port, trust))[0] == pair_b.serial
        assert tls.info is not None
        assert tls.info.serial == pair_b.serial

        release.set()  # the stream begun on A finishes, on A
        rest = await reader.read()
        assert rest.endswith(b"last\n\r\n0\r\n\r\n")  # the last chunk and the chunked end
        assert stream_serial == pair_a.serial
        writer.close()

        report = json.loads((await https_get(port, trust, "/-/config"))[1])
        assert report["config"]["serial"] == pair_b.serial
        assert report["config"]["key"] == "***"


def expired() -> Issued:
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=10)
    return self_signed("expired.test", not_before=past, days=1)


@pytest.mark.parametrize(
    ("bad", "reason", "at_fault"),
    [
        (lambda a, b: {"tls.crt": a.cert, "tls.key": b.key}, "tls_key_mismatch", "tls.key"),
        (lambda a, b: tls_files(expired()), "tls_expired", "tls.crt"),
        (
            lambda a, b: {"tls.crt": b.cert, "tls.key": b.key[: len(b.key) // 2]},
            "tls_parse",
            "tls.key",
        ),
    ],
    ids=["mismatched-pair", "expired-cert", "truncated-key"],
)
async def test_a_bad_pair_keeps_a(  # noqa: PLR0917 - fixtures and parameters
    volume: ConfigMapVolume,
    pair_a: Issued,
    pair_b: Issued,
    registry: CollectorRegistry,
    logs: list[MutableMapping[str, Any]],
    bad: Any,
    reason: str,
    at_fault: str,
) -> None:
    trust = trusting(pair_a, pair_b)
    async with (
        server_tls(volume, registry) as tls,
        uvicorn_https(app_for(tls), tls.uvicorn_factory) as port,
    ):
        volume.update(bad(pair_a, pair_b))
        outcome = await tls.reloader.wait_for_outcome(lambda o: o.error is not None, timeout=10)
        error = outcome.error
        assert isinstance(error, TLSCertificateError)
        assert error.reason == reason
        assert error.source == str(volume.path(at_fault))
        assert "PRIVATE KEY" not in str(error)
        assert (await https_get(port, trust))[0] == pair_a.serial  # A stays
        assert tls.reloader.snapshot.generation == 1
        failures = registry.get_sample_value(
            "hotreload_config_reload_failures_total", {"config": "tls", "reason": reason}
        )
        assert failures == 1
        rejected = [
            e for e in logs if e["event"] == "Failed to apply new configuration - keeping previous"
        ]
        assert rejected
        report = json.loads((await https_get(port, trust, "/-/config"))[1])
        assert report["status"] == "degraded"
        assert report["config"]["serial"] == pair_a.serial


@pytest.mark.timeout(120)
async def test_200_rotations_under_a_client_loop_every_handshake_succeeds(
    volume: ConfigMapVolume, pair_a: Issued, registry: CollectorRegistry
) -> None:
    pairs = [pair_a, *(self_signed(f"p{i}.test") for i in range(3))]
    serials = {p.serial for p in pairs}
    trust = trusting(*pairs)
    seen: list[str] = []
    failures: list[BaseException] = []
    rotations = 200
    async with (
        server_tls(volume, registry) as tls,
        uvicorn_https(app_for(tls), tls.uvicorn_factory) as port,
    ):
        done = asyncio.Event()

        async def client() -> None:
            while not done.is_set():
                try:
                    seen.append((await https_get(port, trust))[0])
                except (OSError, ssl.SSLError) as exc:  # a mixed key/cert fails here
                    failures.append(exc)

        clients = [asyncio.create_task(client()) for _ in range(4)]
        committed = tls.reloader.changes()
        for i in range(1, rotations + 1):
            pair = pairs[i % len(pairs)]
            volume.update(tls_files(pair))
            snapshot = await asyncio.wait_for(anext(committed), timeout=10)
            assert snapshot.config.serial == pair.serial
            assert (await https_get(port, trust))[0] == pair.serial  # the new one, at once
        done.set()
        await asyncio.gather(*clients)
        assert tls.reloader.snapshot.generation == rotations + 1
    assert failures == []
    assert set(seen) <= serials
    assert len(set(seen)) == len(pairs)  # the clients really ran across rotations
    assert len(seen) >= rotations


async def test_uvicorn_tls_factory_runs_its_own_reloader_on_the_server_loop(
    volume: ConfigMapVolume, pair_a: Issued, pair_b: Issued, registry: CollectorRegistry
) -> None:
    """`UvicornTLS` is what ``uvicorn.run(..., workers=N)`` pickles into every worker: it
    loads at once and runs the reloader on the server's loop until the loop ends."""
    factory = UvicornTLS(volume.path("tls.crt"), volume.path("tls.key"), registry=registry)
    trust = trusting(pair_a, pair_b)
    async with uvicorn_https(app_for(None), factory) as port:
        assert (await https_get(port, trust))[0] == pair_a.serial
        live = factory.live
        assert live is not None
        assert servers() == (live,)  # how the app in a worker reaches it
        changes = live.reloader.changes()
        volume.update(tls_files(pair_b))
        await asyncio.wait_for(anext(changes), timeout=10)
        assert (await https_get(port, trust))[0] == pair_b.serial
        not_after = registry.get_sample_value(
            "hotreload_tls_certificate_not_after_seconds", {"config": "tls"}
        )
        assert live.info is not None
        assert not_after == live.info.not_after.timestamp()
        await live.aclose()
        assert servers() == ()
