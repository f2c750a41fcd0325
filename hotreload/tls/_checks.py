"""What is checked before a certificate pair goes into force (``cryptography``), and how one
validated generation becomes an `ssl.SSLContext` without writing the key to disk."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import itertools
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .._errors import ConfigValidationError

__all__ = [
    "CertificateInfo",
    "TLSCertificateError",
    "TLSFiles",
    "check_pair",
    "client_context",
    "load_pair",
    "parse_bundle",
    "peek",
]


class TLSCertificateError(ConfigValidationError):
    """A certificate, key or CA bundle that must not go into force: the previous pair stays.

    ``source`` is the file at fault (the certificate, the key or the CA bundle); ``reason`` is
    the label of ``config_reload_failures_total``: ``tls_parse`` (a file does not parse: a
    truncated key, a broken chain), ``tls_key_mismatch`` (the key is not the certificate's),
    ``tls_chain`` (a certificate is not signed by the next one), ``tls_expired``,
    ``tls_not_yet_valid``, ``tls_missing`` (an empty certificate or key).
    """

    def __init__(self, source: str, message: str, *, reason: str, field_path: str = "") -> None:
        super().__init__(source, message, field_path=field_path, reason=reason)


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    """The schema of one generation: the PEM texts as read together (one ``..data``
    generation), and what ``/-/config`` shows of the certificate. ``key`` is secret by its
    name: it is never logged or shown. ``serial``, ``not_after`` and ``subject`` are worked out
    from ``cert`` (``None`` when it does not parse: the validator then says why)."""

    cert: str = ""
    key: str = ""
    ca: str = ""
    serial: str | None = dataclasses.field(default=None, init=False)
    not_after: str | None = dataclasses.field(default=None, init=False)
    subject: str | None = dataclasses.field(default=None, init=False)

    def __post_init__(self) -> None:
        info = peek(self.cert)
        if info is not None:
            object.__setattr__(self, "serial", info.serial)
            object.__setattr__(self, "not_after", info.not_after.isoformat())
            object.__setattr__(self, "subject", info.subject)


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateInfo:
    """The leaf certificate of a generation: ``serial`` in hex (as ``openssl x509 -serial``
    prints it), validity bounds (UTC) and the subject."""

    serial: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    subject: str

    def days_left(self, now: datetime.datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400.0


def _info(cert: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(
        serial=f"{cert.serial_number:X}",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        subject=cert.subject.rfc4514_string(),
    )


def peek(pem: str) -> CertificateInfo | None:
    """The leaf's info, or ``None`` if ``pem`` holds no parsable certificate."""
    try:
        return _info(x509.load_pem_x509_certificates(pem.encode())[0])
    except (ValueError, IndexError, UnsupportedAlgorithm):
        return None


def parse_bundle(pem: str, source: str, field: str) -> list[x509.Certificate]:
    if not pem.strip():
        raise TLSCertificateError(
            source, "the file is empty", reason="tls_missing", field_path=field
        )
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise TLSCertificateError(
            source, f"not a PEM certificate chain ({exc})", reason="tls_parse", field_path=field
        ) from None


def check_pair(
    files: TLSFiles,
    *,
    cert_source: str,
    key_source: str,
    ca_source: str | None,
    now: datetime.datetime,
) -> CertificateInfo:
    """Every check a pair passes before a swap, or the first `TLSCertificateError`: the chain
    parses and each certificate is signed by the next, the key parses and is the leaf's, the
    leaf is valid now; the CA bundle (if any) parses."""
    chain = parse_bundle(files.cert, cert_source, "cert")
    for child, parent in itertools.pairwise(chain):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
            raise TLSCertificateError(
                cert_source,
                f"certificate {child.subject.rfc4514_string()} is not issued by the next one in "
                f"the chain ({type(exc).__name__})",
                reason="tls_chain",
                field_path="cert",
            ) from None
    if not files.key.strip():
        raise TLSCertificateError(
            key_source, "the file is empty", reason="tls_missing", field_path="key"
        )
    try:
        key: Any = serialization.load_pem_private_key(files.key.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # Never the key's text: only that it did not parse (a truncated or encrypted key).
        raise TLSCertificateError(
            key_source,
            f"not an unencrypted PEM private key ({type(exc).__name__})",
            reason="tls_parse",
            field_path="key",
        ) from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    leaf = chain[0]
    if key.public_key().public_bytes(der, spki) != leaf.public_key().public_bytes(der, spki):
        raise TLSCertificateError(
            key_source,
            f"the private key does not belong to the certificate in {cert_source} "
            f"(serial {leaf.serial_number:X})",
            reason="tls_key_mismatch",
            field_path="key",
        )
    info = _info(leaf)
    if now < info.not_before:
        raise TLSCertificateError(
            cert_source,
            f"certificate {info.serial} is not valid before {info.not_before.isoformat()}",
            reason="tls_not_yet_valid",
            field_path="cert",
        )
    if now >= info.not_after:
        raise TLSCertificateError(
            cert_source,
            f"certificate {info.serial} expired at {info.not_after.isoformat()}",
            reason="tls_expired",
            field_path="cert",
        )
    if ca_source is not None:
        parse_bundle(files.ca, ca_source, "ca")
    return info


@contextlib.contextmanager
def _pem_paths(*texts: str) -> Iterator[list[str]]:
    """Paths OpenSSL can open for ``texts``. On Linux anonymous memory files (memfd): the key
    never touches a disk; elsewhere a private temporary directory, removed at once."""
    memfd: Callable[[str], int] | None = getattr(os, "memfd_create", None)
    if memfd is not None:
        fds: list[int] = []
        try:
            for text in texts:
                fd = memfd("hotreload-tls")
                fds.append(fd)
                os.write(fd, text.encode())
            yield [f"/proc/self/fd/{fd}" for fd in fds]
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="hotreload-tls-") as directory:  # pragma: no cover
        paths = []
        for index, text in enumerate(texts):
            path = os.path.join(directory, f"{index}.pem")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(text)
            paths.append(path)
        yield paths


def load_pair(context: ssl.SSLContext, cert: str, key: str) -> None:
    """``context.load_cert_chain`` from PEM texts (OpenSSL checks the key matches again)."""
    with _pem_paths(cert, key) as (cert_path, key_path):
        context.load_cert_chain(cert_path, key_path)


def client_context(
    ca: str, *, cert: str = "", key: str = "", configure: Callable[[ssl.SSLContext], None] | None
) -> ssl.SSLContext:
    """A client context that trusts exactly the CA bundle ``ca`` (and presents ``cert``/``key``
    if given, for mTLS)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=ca)
    if cert:
        load_pair(context, cert, key)
    if configure is not None:
        configure(context)
    return context
