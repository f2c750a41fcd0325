"""The same under a real hypercorn server, shorter: hypercorn's own ``create_ssl_context``
hook (`hotreload.tls.hypercorn.Config`) gives it the rotating context."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Coroutine
from typing import Any

from prometheus_client import CollectorRegistry

from hotreload.testing import ConfigMapVolume
from hotreload.tls import Issued, TLSCertificateError, self_signed
from hotreload.tls.hypercorn import Config

from .conftest import https_get, serial_of, tls_files, trusting
from .test_uvicorn import app_for


async def under_client_loop(
    port: int, trust: ssl.SSLContext, work: Coroutine[Any, Any, None]
) -> list[BaseException]:
    """Run ``work`` while two clients handshake without a pause; the failed handshakes."""
    failures: list[BaseException] = []
    done = asyncio.Event()

    async def client() -> None:
        while not done.is_set():
            try:
                await https_get(port, trust)
            except (OSError, ssl.SSLError) as exc:
                failures.append(exc)

    clients = [asyncio.create_task(client()) for _ in range(2)]
    try:
        await work
    finally:
        done.set()
        await asyncio.gather(*clients)
    return failures


async def test_hypercorn_rotates_keeps_streams_and_refuses_a_bad_pair(
    volume: ConfigMapVolume, pair_a: Issued, pair_b: Issued, registry: CollectorRegistry
) -> None:
    from hypercorn.asyncio import serve

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) it from here
    config.certfile, config.keyfile = str(volume.path("tls.crt")), str(volume.path("tls.key"))
    config.tls_options = {"registry": registry, "poll_interval": 0}
    config.accesslog = None
    release, stop = asyncio.Event(), asyncio.Event()
    app: Any = app_for(None, release)
    serving = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    others = [self_signed(f"h{i}.test") for i in range(2)]
    trust = trusting(pair_a, pair_b, *others)
    try:
        assert (await https_get(port, trust))[0] == pair_a.serial
        tls = config.tls
        assert tls is not None

        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trust)
        stream_serial = serial_of(writer.get_extra_info("ssl_object").getpeercert(True))
        writer.write(b"GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        await writer.drain()
        await reader.readuntil(b"first\n")

        changes = tls.reloader.changes()
        volume.update(tls_files(pair_b))
        await asyncio.wait_for(anext(changes), timeout=10)
        assert (await https_get(port, trust))[0] == pair_b.serial
        release.set()
        assert (await reader.read()).endswith(b"0\r\n\r\n")  # the stream on A finished
        assert stream_serial == pair_a.serial
        writer.close()

        volume.update({"tls.crt": pair_a.cert, "tls.key": pair_b.key})
        outcome = await tls.reloader.wait_for_outcome(lambda o: o.error is not None, timeout=10)
        assert isinstance(outcome.error, TLSCertificateError)
        assert (await https_get(port, trust))[0] == pair_b.serial

        async def rotate() -> None:
            for i in range(20):
                pair = others[i % 2]
                volume.update(tls_files(pair))
                await asyncio.wait_for(anext(changes), timeout=10)
                assert (await https_get(port, trust))[0] == pair.serial

        assert await under_client_loop(port, trust, rotate()) == []
        await tls.aclose()
    finally:
        stop.set()
        await serving
