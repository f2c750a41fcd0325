"""Which swap works, proven with real handshakes (the note in `hotreload.tls`'s docstring).

Both ``load_cert_chain`` on the live context and an ``sni_callback`` that hands each handshake
the context of the generation in force give new handshakes the new certificate while open
connections keep theirs: OpenSSL copies the certificate and key into each connection (SSL_new,
and SSL_set_SSL_CTX for the callback). What tells them apart is what a failure or a CA
rotation does: the live context is changed in two steps (certificate, then key) and can only
*add* CAs, while the callback switches a whole, immutable, validated context at once.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest
from prometheus_client import CollectorRegistry

from hotreload.testing import ConfigMapVolume
from hotreload.tls import Issued, ServerTLS, self_signed
from hotreload.tls._checks import load_pair

from .conftest import echo_server, handshake, port_of, serial_of, tls_files, trusting


async def open_on(
    port: int, context: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    assert await reader.read(1) == b"+"
    return reader, writer


def peer_serial(writer: asyncio.StreamWriter) -> str:
    return serial_of(writer.get_extra_info("ssl_object").getpeercert(binary_form=True))


async def still_talks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"ping\n")
    await writer.drain()
    assert await reader.readline() == b"ping\n"


async def test_load_cert_chain_on_the_live_context_swaps_but_a_bad_pair_breaks_it(
    pair_a: Issued, pair_b: Issued
) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load_pair(context, pair_a.cert, pair_a.key)
    server = await echo_server(context)
    port, trust = port_of(server), trusting(pair_a, pair_b)
    try:
        reader, writer = await open_on(port, trust)
        assert peer_serial(writer) == pair_a.serial

        load_pair(context, pair_b.cert, pair_b.key)  # the swap, on the context being served
        assert await handshake(port, trust) == pair_b.serial  # new handshakes: B
        await still_talks(reader, writer)  # the connection made on A goes on, on A
        assert peer_serial(writer) == pair_a.serial

        # A mismatched pair: OpenSSL refuses the key only after it has put the certificate in,
        # so the live context is left with B's... nothing: every later handshake fails, the
        # very outage a rotation must never cause. (Hence: check a pair before any swap.)
        with pytest.raises(ssl.SSLError):
            load_pair(context, pair_a.cert, pair_b.key)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await handshake(port, trust)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_a_live_context_can_only_add_client_cas_never_drop_one() -> None:
    """mTLS: ``load_verify_locations`` adds to the trust store; there is no way to remove a
    CA from a live context, so rotating away from a compromised client CA needs a new one."""
    ca1, ca2 = self_signed("ca-1", ca=True), self_signed("ca-2", ca=True)
    client1 = self_signed("client-1", issuer=ca1)
    server_pair = self_signed("server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load_pair(context, server_pair.cert, server_pair.key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=ca1.cert)
    server = await echo_server(context)
    try:
        port = port_of(server)
        assert await handshake(port, trusting(server_pair, cert=client1)) == server_pair.serial
        context.load_verify_locations(cadata=ca2.cert)  # "rotate" the client CA to ca-2
        # ca-1's client is still let in.
        assert await handshake(port, trusting(server_pair, cert=client1)) == server_pair.serial
    finally:
        server.close()
        await server.wait_closed()


async def test_sni_callback_new_handshakes_get_the_new_pair_open_connections_keep_theirs(
    volume: ConfigMapVolume, pair_a: Issued, pair_b: Issued, registry: CollectorRegistry
) -> None:
    tls = ServerTLS(volume.path("tls.crt"), volume.path("tls.key"), registry=registry)
    async with tls:
        server = await echo_server(tls.context)
        port, trust = port_of(server), trusting(pair_a, pair_b)
        try:
            reader, writer = await open_on(port, trust)
            assert peer_serial(writer) == pair_a.serial
            volume.update(tls_files(pair_b))
            await tls.reloader.wait_for_generation(2, timeout=10)
            # 127.0.0.1: the client sends no SNI, and the callback runs all the same.
            assert await handshake(port, trust) == pair_b.serial
            await still_talks(reader, writer)
            assert peer_serial(writer) == pair_a.serial
            writer.close()

            # A mismatched pair never reaches a context: B keeps serving.
            volume.update({"tls.crt": pair_a.cert, "tls.key": pair_b.key})
            await tls.reloader.wait_for_outcome(lambda o: o.error is not None, timeout=10)
            assert await handshake(port, trust) == pair_b.serial
        finally:
            server.close()
            await server.wait_closed()


async def test_sni_callback_rotates_the_client_ca_and_drops_the_old_one(
    tmp_path: object, registry: CollectorRegistry
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    ca1, ca2 = self_signed("ca-1", ca=True), self_signed("ca-2", ca=True)
    client1, client2 = self_signed("client-1", issuer=ca1), self_signed("client-2", issuer=ca2)
    server_pair = self_signed("server")
    volume = ConfigMapVolume(tmp_path / "tls", {**tls_files(server_pair), "ca.crt": ca1.cert})
    tls = ServerTLS(
        volume.path("tls.crt"), volume.path("tls.key"), volume.path("ca.crt"), registry=registry
    )
    async with tls:
        assert tls.context.verify_mode == ssl.CERT_REQUIRED
        server = await echo_server(tls.context)
        port = port_of(server)
        try:
            assert await handshake(port, trusting(server_pair, cert=client1)) == server_pair.serial
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await handshake(port, trusting(server_pair, cert=client2))
            volume.update({**tls_files(server_pair), "ca.crt": ca2.cert})
            await tls.reloader.wait_for_generation(2, timeout=10)
            assert await handshake(port, trusting(server_pair, cert=client2)) == server_pair.serial
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await handshake(port, trusting(server_pair, cert=client1))  # ca-1: out
        finally:
            server.close()
            await server.wait_closed()
