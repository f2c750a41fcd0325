"""hotreload.tls: a live `ssl.SSLContext` kept current from certificate, key and CA files.

`ServerTLS` (``cert``, ``key``, optional client ``ca`` for mTLS) and `ClientTLS` (a rotating
CA bundle for outgoing calls, httpx's ``verify=``) each run a `HotReloader` over the files:
the files are layers read as ONE bundle, so a kubelet ``..data`` swap of ``tls.crt`` and
``tls.key`` is one generation and a key is never paired with another generation's
certificate. Before a swap (a validator, with ``cryptography``): the chain parses and each
certificate is signed by the next, the key parses and is the leaf's, the leaf is valid now;
fewer than ``warn_days`` left logs ``tls_certificate_expiring``. A bad pair is refused with a
`TLSCertificateError` (a `hotreload.ConfigValidationError`) naming the file at fault, counted
in ``<ns>_config_reload_failures_total{reason="tls_..."}`` and logged ("Failed to apply new
configuration - keeping previous"); the pair in force stays. The expiry is
``<ns>_tls_certificate_not_after_seconds{config}``; the serial, subject and ``not_after`` are
in the config ``/-/config`` shows (``hotreload.asgi.admin_routes(tls.reloader)``), the key
``***``.

The swap: why an ``sni_callback``, not ``load_cert_chain`` on the live context
--------------------------------------------------------------------------------
Both give new handshakes the new certificate while open connections keep theirs
(``tests/tls/test_swap_mechanism.py`` proves each with real handshakes): OpenSSL copies the
certificate and key into every connection when it is made (``SSL_new``), and again when the
callback switches it to another context (``SSL_set_SSL_CTX``); a connection never looks back
at the context it came from. They differ in everything else:

* ``load_cert_chain`` changes the context every handshake reads from, in two steps: the
  certificate first, then the key. A key that turns out not to match leaves the context with
  the new certificate and no usable key, and *every* later handshake fails (proven: the test
  loads a mismatched pair into a serving context; the next handshake fails). From another
  thread, a handshake could also start between the two steps.
* A context's trust store only grows: ``load_verify_locations`` adds a CA and nothing removes
  one, so a client CA cannot be rotated away on a live context (proven: after "rotating" to a
  new CA, a client of the old CA is still let in).
* The ``sni_callback`` that `ServerTLS` installs on the one context the server holds
  (``tls.context``) runs in OpenSSL's ClientHello (servername) callback, which OpenSSL calls for
  every handshake, with or without SNI (the tests connect to ``127.0.0.1``: no SNI). It sets
  ``connection.context`` to the context of the generation in force, built whole (cert, key,
  client CAs) and never changed afterwards: the switch is one reference, all or nothing, and a
  pair that fails any check never becomes a context at all. The client-CA store follows the
  switched-to context (proven: after a CA rotation, the old CA's clients are refused and the
  new one's let in); so, by OpenSSL's source, does the ALPN selection, while the verify mode
  and cipher list stay the listening context's (copied at ``SSL_new``): every context is
  therefore built with the same settings (``configure``).

The cost is one Python call per handshake, ~4-7 µs against ~0.72 ms for a P-256 TLS 1.3
handshake (a ratio of 1.006, 1.02 end to end over loopback; ``benchmarks/tls.py``). Session
resumption (tickets) skips the certificate: a resumed session keeps its first identity.

Servers, through their own extension points: uvicorn's ``ssl_context_factory``
(`UvicornTLS` for ``uvicorn.run(..., workers=N)``, ``tls.uvicorn_factory`` for a
``uvicorn.Server`` in your loop, ``python -m hotreload.tls uvicorn APP ...`` for its command
line), hypercorn's ``Config.create_ssl_context`` (`hotreload.tls.hypercorn.Config`, for
``hypercorn.asyncio.serve`` and for ``hypercorn.run.run`` with workers; ``python -m
hotreload.tls hypercorn APP ...`` for its command line), and ``asyncio.start_server(...,
ssl=tls.context)``. Needs the ``tls`` extra (``cryptography``).
"""

from ._checks import CertificateInfo, TLSCertificateError, TLSFiles
from ._live import ClientTLS, Generation, ServerTLS, servers
from ._make import Issued, self_signed
from ._servers import UvicornTLS, run_uvicorn_cli

__all__ = [
    "CertificateInfo",
    "ClientTLS",
    "Generation",
    "Issued",
    "ServerTLS",
    "TLSCertificateError",
    "TLSFiles",
    "UvicornTLS",
    "run_uvicorn_cli",
    "self_signed",
    "servers",
]
