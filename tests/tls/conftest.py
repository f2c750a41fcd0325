"""TLS fixtures: certificates made in the test (``cryptography``), a kubelet-style secret
volume holding ``tls.crt`` and ``tls.key``, and client handshakes that report the serial."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from hotreload.testing import ConfigMapVolume
from hotreload.tls import Issued, self_signed


@pytest.fixture(scope="session")
def pair_a() -> Issued:
    return self_signed("a.test")


@pytest.fixture(scope="session")
def pair_b() -> Issued:
    return self_signed("b.test")


def tls_files(pair: Issued) -> dict[str, str]:
    return {"tls.crt": pair.cert, "tls.key": pair.key}


@pytest.fixture
def volume(tmp_path: Path, pair_a: Issued) -> ConfigMapVolume:
    """A Secret volume as kubelet mounts it, holding pair A."""
    return ConfigMapVolume(tmp_path / "tls", tls_files(pair_a))


def trusting(*pairs: Issued, cert: Issued | None = None) -> ssl.SSLContext:
    """A client context that trusts exactly ``pairs`` (self-signed: each is its own CA)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata="".join(p.cert for p in pairs))
    if cert is not None:
        from hotreload.tls._checks import load_pair

        load_pair(context, cert.cert, cert.key)
    return context


def serial_of(der: bytes | None) -> str:
    assert der is not None
    return f"{x509.load_der_x509_certificate(der).serial_number:X}"


async def handshake(port: int, context: ssl.SSLContext) -> str:
    """One fresh TLS handshake to 127.0.0.1 (an IP address: the client sends no SNI); the
    serial of the certificate the server presented."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        serial = serial_of(ssl_object.getpeercert(binary_form=True))
        if await reader.read(1) != b"+":  # the greeting (mTLS: it accepted our certificate)
            raise ConnectionError("the server closed the connection without a greeting")
        return serial
    finally:
        writer.close()
        await writer.wait_closed()


async def echo_server(context: ssl.SSLContext) -> asyncio.Server:
    """``asyncio.start_server`` over ``context``: greets with one byte, then echoes lines."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"+")
            await writer.drain()
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)


def port_of(server: asyncio.Server) -> int:
    sockets: Iterable[object] = server.sockets
    return int(next(iter(sockets)).getsockname()[1])  # type: ignore[attr-defined]


async def https_get(port: int, context: ssl.SSLContext, path: str = "/") -> tuple[str, bytes]:
    """A fresh connection, one HTTP/1.1 request: the certificate's serial and the body. A
    failed handshake or a non-200 answer raises."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        serial = serial_of(writer.get_extra_info("ssl_object").getpeercert(binary_form=True))
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"unexpected answer: {head[:40]!r}")
    return serial, body


@contextlib.asynccontextmanager
async def uvicorn_https(
    app: Any, factory: Callable[[Any, Callable[[], ssl.SSLContext]], ssl.SSLContext]
) -> AsyncIterator[int]:
    """A real uvicorn HTTPS server in this loop, its context from ``factory`` (uvicorn's own
    ``ssl_context_factory``); yields the port. The socket listens before uvicorn starts, so a
    first connection just waits for it."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",
        http="h11",
        ssl_context_factory=factory,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve([sock]))
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        try:
            await task
        finally:
            sock.close()
