"""hypercorn with a rotating certificate: `Config` is hypercorn's ``Config`` whose
``create_ssl_context`` (hypercorn's own hook, called on the serving loop of each worker)
returns a `ServerTLS` context built from ``certfile``, ``keyfile`` and ``ca_certs``, with
hypercorn's ciphers, ALPN (h2, http/1.1) and verify settings on every generation::

    config = hotreload.tls.hypercorn.Config()
    config.bind = ["0.0.0.0:8443"]
    config.certfile, config.keyfile = "/etc/tls/tls.crt", "/etc/tls/tls.key"
    await hypercorn.asyncio.serve(app, config)
"""

from __future__ import annotations

import ssl
from typing import Any

from hypercorn.config import Config as _HypercornConfig

from ._live import ServerTLS

__all__ = ["Config"]


class Config(_HypercornConfig):
    """hypercorn's ``Config``; ``tls_options`` go to `ServerTLS` (``name``, ``registry``...);
    ``tls`` is this process's `ServerTLS` once hypercorn asked for the context."""

    tls_options: dict[str, Any]
    tls: ServerTLS | None = None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        if not self.ssl_enabled:
            return None
        ciphers, alpn = self.ciphers, list(self.alpn_protocols)

        def configure(context: ssl.SSLContext) -> None:
            context.set_ciphers(ciphers)
            context.options |= ssl.OP_NO_COMPRESSION  # as hypercorn does (RFC 7540 9.2.1)
            context.set_alpn_protocols(alpn)
            if self.verify_flags is not None:
                context.verify_flags = self.verify_flags

        options = dict(getattr(self, "tls_options", {}))
        # hypercorn's meaning: ca_certs alone loads the CAs; verify_mode=CERT_REQUIRED is mTLS.
        options.setdefault(
            "verify_mode", ssl.CERT_NONE if self.verify_mode is None else self.verify_mode
        )
        cert, key = self.certfile or "", self.keyfile or ""  # both set: ssl_enabled
        self.tls = ServerTLS(cert, key, self.ca_certs, configure=configure, **options)
        self.tls.start()
        return self.tls.context
