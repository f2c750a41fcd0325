"""What is checked before a swap (pure: `check_pair` on PEM texts), and what the live objects
do with a bad first pair, an expiring one and an intermediate chain."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hotreload import ConfigError, ConfigParseError, ConfigValidationError
from hotreload.testing import ConfigMapVolume
from hotreload.tls import Issued, ServerTLS, TLSCertificateError, TLSFiles, self_signed
from hotreload.tls._checks import check_pair

from .conftest import echo_server, handshake, port_of, tls_files, trusting

NOW = datetime.datetime.now(datetime.timezone.utc)


def check(cert: str, key: str, ca: str = "", now: datetime.datetime = NOW) -> str:
    info = check_pair(
        TLSFiles(cert=cert, key=key, ca=ca),
        cert_source="tls.crt",
        key_source="tls.key",
        ca_source="ca.crt" if ca else None,
        now=now,
    )
    return info.serial


def refusal(cert: str, key: str, ca: str = "", now: datetime.datetime = NOW) -> TLSCertificateError:
    with pytest.raises(TLSCertificateError) as caught:
        check(cert, key, ca, now)
    return caught.value


def test_a_good_pair_passes_and_the_error_is_a_config_error(pair_a: Issued) -> None:
    assert check(pair_a.cert, pair_a.key) == pair_a.serial
    assert issubclass(TLSCertificateError, ConfigValidationError)
    assert issubclass(TLSCertificateError, ConfigError)


def test_each_refusal_names_the_file_and_its_reason(pair_a: Issued, pair_b: Issued) -> None:
    mismatch = refusal(pair_a.cert, pair_b.key)
    assert (mismatch.source, mismatch.reason, mismatch.field_path) == (
        "tls.key",
        "tls_key_mismatch",
        "key",
    )
    truncated = refusal(pair_a.cert, pair_a.key[:100])
    assert (truncated.source, truncated.reason) == ("tls.key", "tls_parse")
    assert pair_a.key[30:60] not in str(truncated)  # never the key's text
    broken = refusal(pair_a.cert[:200], pair_a.key)
    assert (broken.source, broken.reason) == ("tls.crt", "tls_parse")
    assert refusal("", pair_a.key).reason == "tls_missing"
    assert refusal(pair_a.cert, " \n").reason == "tls_missing"
    bad_ca = refusal(pair_a.cert, pair_a.key, ca="-----BEGIN CERTIFICATE-----\nx\n")
    assert (bad_ca.source, bad_ca.reason) == ("ca.crt", "tls_parse")


def test_validity_is_checked_against_now(pair_a: Issued) -> None:
    early = refusal(pair_a.cert, pair_a.key, now=NOW - datetime.timedelta(days=1))
    assert (early.reason, early.source) == ("tls_not_yet_valid", "tls.crt")
    late = refusal(pair_a.cert, pair_a.key, now=NOW + datetime.timedelta(days=91))
    assert late.reason == "tls_expired"


def test_a_chain_must_be_signed_link_by_link() -> None:
    root = self_signed("root", ca=True)
    intermediate = self_signed("intermediate", ca=True, issuer=root)
    leaf = self_signed("leaf", issuer=intermediate)
    assert check(leaf.cert + intermediate.cert, leaf.key) == leaf.serial
    stranger = self_signed("stranger", ca=True)
    wrong = refusal(leaf.cert + stranger.cert, leaf.key)
    assert (wrong.reason, wrong.source) == ("tls_chain", "tls.crt")


async def test_a_bad_first_pair_fails_the_start(
    volume: ConfigMapVolume, pair_a: Issued, pair_b: Issued, registry: CollectorRegistry
) -> None:
    volume.update({"tls.crt": pair_a.cert, "tls.key": pair_b.key})
    with pytest.raises(TLSCertificateError) as caught:
        async with ServerTLS(volume.path("tls.crt"), volume.path("tls.key"), registry=registry):
            pass
    assert caught.value.reason == "tls_key_mismatch"
    tls = ServerTLS(volume.path("tls.crt"), volume.path("tls.key"), registry=registry)
    with pytest.raises(TLSCertificateError):
        tls._files.read_now()  # what a server factory's start() runs


async def test_an_empty_key_file_keeps_the_pair_in_force(
    volume: ConfigMapVolume, pair_a: Issued, registry: CollectorRegistry
) -> None:
    async with ServerTLS(
        volume.path("tls.crt"), volume.path("tls.key"), registry=registry, poll_interval=0
    ) as tls:
        volume.update({"tls.crt": pair_a.cert, "tls.key": ""})
        outcome = await tls.reloader.wait_for_outcome(lambda o: o.error is not None, timeout=10)
        assert isinstance(outcome.error, ConfigParseError)  # the engine's: an empty document
        assert outcome.error.source == str(volume.path("tls.key"))
        assert tls.info is not None
        assert tls.info.serial == pair_a.serial


async def test_expiry_is_warned_before_and_logged_when_it_passes_in_force(
    volume: ConfigMapVolume,
    pair_a: Issued,
    registry: CollectorRegistry,
    logs: list[MutableMapping[str, Any]],
) -> None:
    clock = [NOW]
    async with ServerTLS(
        volume.path("tls.crt"),
        volume.path("tls.key"),
        registry=registry,
        warn_days=30,
        clock=lambda: clock[0],
    ) as tls:
        assert tls.info is not None
        assert not [e for e in logs if e["event"].startswith("tls_certificate_")]
        delay = tls.check_expiry()
        assert delay is not None
        assert 59 * 86400 < delay < 60 * 86400  # wakes up when 30 days are left
        clock[0] = NOW + datetime.timedelta(days=61)
        tls.check_expiry()
        tls.check_expiry()  # once per certificate
        [warning] = [e for e in logs if e["event"] == "tls_certificate_expiring"]
        assert warning["serial"] == pair_a.serial
        assert warning["log_level"] == "warning"
        clock[0] = NOW + datetime.timedelta(days=91)
        assert tls.check_expiry() is None
        [expired] = [e for e in logs if e["event"] == "tls_certificate_expired"]
        assert expired["log_level"] == "error"


async def test_a_new_pair_close_to_expiry_is_taken_with_a_warning(
    volume: ConfigMapVolume,
    pair_a: Issued,
    registry: CollectorRegistry,
    logs: list[MutableMapping[str, Any]],
) -> None:
    short = self_signed("short.test", days=3)
    async with ServerTLS(
        volume.path("tls.crt"), volume.path("tls.key"), registry=registry, warn_days=7
    ) as tls:
        changes = tls.reloader.changes()
        volume.update(tls_files(short))
        snapshot = await anext(changes)
        assert snapshot.config.serial == short.serial
        [warning] = [e for e in logs if e["event"] == "tls_certificate_expiring"]
        assert warning["serial"] == short.serial
        server = await echo_server(tls.context)
        try:
            assert await handshake(port_of(server), trusting(short)) == short.serial
        finally:
            server.close()
            await server.wait_closed()


def test_the_listening_context_has_no_certificate_of_its_own(
    tmp_path: Path, pair_a: Issued, registry: CollectorRegistry
) -> None:
    """Every certificate comes from a generation's context through the callback: the context
    the server holds is never changed after it is made."""
    volume = ConfigMapVolume(tmp_path / "v", tls_files(pair_a))
    tls = ServerTLS(volume.path("tls.crt"), volume.path("tls.key"), registry=registry)
    assert tls.context.sni_callback is not None
    assert tls.context.cert_store_stats()["x509"] == 0
    assert tls.context.verify_mode == ssl.CERT_NONE
