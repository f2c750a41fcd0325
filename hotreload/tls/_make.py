"""Certificates made on the spot (``cryptography``): for the demo, tests and trying it out."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Issued", "self_signed"]


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate (PEM), its private key (PEM, unencrypted) and its serial (hex)."""

    cert: str
    key: str
    serial: str


def self_signed(
    name: str = "localhost",
    *,
    days: float = 90.0,
    not_before: datetime.datetime | None = None,
    issuer: Issued | None = None,
    ca: bool = False,
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
) -> Issued:
    """A P-256 certificate for ``hosts`` valid from ``not_before`` (default: an hour ago) for
    ``days``; self-signed, or signed by ``issuer`` (a ``ca=True`` one). Usable as a server and
    as a client certificate."""
    key: Any = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = not_before or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    if issuer is None:
        issuer_name, signing_key = subject, key
    else:
        issuer_name = x509.load_pem_x509_certificate(issuer.cert.encode()).subject
        signing_key = serialization.load_pem_private_key(issuer.key.encode(), password=None)
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    cert = builder.sign(signing_key, hashes.SHA256())
    return Issued(
        cert=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        serial=f"{cert.serial_number:X}",
    )
