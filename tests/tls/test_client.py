"""`ClientTLS`: an outgoing client (httpx ``verify=``) whose CA bundle rotates."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from hotreload.testing import ConfigMapVolume
from hotreload.tls import ClientTLS, ServerTLS, TLSCertificateError, self_signed

from .conftest import tls_files, uvicorn_https
from .test_uvicorn import app_for


async def test_a_rotated_ca_bundle_reaches_a_new_client_and_drops_the_old_ca(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    ca1, ca2 = self_signed("ca-1", ca=True), self_signed("ca-2", ca=True)
    server_volume = ConfigMapVolume(
        tmp_path / "server", tls_files(self_signed("localhost", issuer=ca1))
    )
    trust_volume = ConfigMapVolume(tmp_path / "trust", {"ca.crt": ca1.cert})
    server = ServerTLS(
        server_volume.path("tls.crt"), server_volume.path("tls.key"), registry=registry
    )
    trust = ClientTLS(trust_volume.path("ca.crt"), registry=registry, name="outgoing")
    http = trust.derive(lambda context: httpx.AsyncClient(verify=context), name="http")
    async with server, trust, uvicorn_https(app_for(None), server.uvicorn_factory) as port:
        url = f"https://127.0.0.1:{port}/"
        first = http.current
        assert (await first.get(url)).text == "ok"

        changes = server.reloader.changes()
        server_volume.update(tls_files(self_signed("localhost", issuer=ca2)))  # ca-2 now
        await anext(changes)
        async with httpx.AsyncClient(verify=trust.context) as stale:
            with pytest.raises(httpx.ConnectError):
                await stale.get(url)  # the bundle in force does not trust ca-2 yet

        trusted = trust.reloader.changes()
        trust_volume.update({"ca.crt": ca2.cert})  # the bundle rotates: ca-2 only
        await anext(trusted)
        assert (await http.current.get(url)).text == "ok"
        await http.wait_drained(timeout=10)
        assert first.is_closed  # the old client was closed once unused

        trust_volume.update({"ca.crt": "-----BEGIN CERTIFICATE-----\nnot base64\n"})
        outcome = await trust.reloader.wait_for_outcome(lambda o: o.error is not None, timeout=10)
        assert isinstance(outcome.error, TLSCertificateError)
        assert outcome.error.source == str(trust_volume.path("ca.crt"))
        assert (await http.current.get(url)).text == "ok"  # the bundle in force stays
        # Its idle keep-alive connection goes before the server stops (a TLS close waits for
        # the peer's close_notify; an idle pooled connection would never send one).
        await http.current.aclose()
