"""TLS fixtures: certificates made in the test (``cryptography``), a kubelet-style secret
volume holding ``tls.crt`` and ``tls.key``, and client handshakes that report the serial."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from pathlib import Path

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
