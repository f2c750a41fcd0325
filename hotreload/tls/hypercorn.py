"""hypercorn with a rotating certificate: `Config` is hypercorn's ``Config`` whose
``create_ssl_context`` (hypercorn's own hook, called on the serving loop of each worker)
returns a `ServerTLS` context built from ``certfile``, ``keyfile`` and ``ca_certs``, with
hypercorn's ciphers, ALPN (h2, http/1.1) and verify settings on every generation::

    config = hotreload.tls.hypercorn.Config()
    config.bind = ["0.0.0.0:8443"]
    config.certfile, config.keyfile = "/etc/tls/tls.crt", "/etc/tls/tls.key"
    await hypercorn.asyncio.serve(app, config)

With workers, hypercorn's own ``hypercorn.run.run`` takes it as it is (``config.application_path
= "app:app"``, ``config.workers = 4``): hypercorn pickles the config into each worker process
it spawns, and each worker's ``create_ssl_context`` makes that worker's own `ServerTLS` (the
pickled config carries the paths and ``tls_options``, never a `ServerTLS`). ``tls_options``
must then be picklable (a ``CollectorRegistry`` is not: each worker uses the default one).

The command line, `main`: ``python -m hotreload.tls hypercorn APP --certfile tls.crt --keyfile
tls.key [--workers N] [any hypercorn option]``.
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Sequence
from typing import Any

from hypercorn.config import Config as _HypercornConfig

from ._live import ServerTLS

__all__ = ["Config", "main", "parse_args"]


class Config(_HypercornConfig):
    """hypercorn's ``Config``; ``tls_options`` go to `ServerTLS` (``name``, ``registry``...);
    ``tls`` is this process's `ServerTLS` once hypercorn asked for the context."""

    tls_options: dict[str, Any]
    tls: ServerTLS | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("tls", None)  # each worker process makes its own
        return state

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


USAGE = (
    "usage: python -m hotreload.tls hypercorn APP --certfile tls.crt --keyfile tls.key "
    "[--workers N] [any hypercorn option]"
)


def parse_args(argv: Sequence[str]) -> Config:
    """hypercorn's command line as hypercorn reads it, as our `Config`.

    hypercorn exposes no parser: ``hypercorn.__main__.main(sys_args)`` builds its argparse
    parser, reads ``--config`` (TOML, ``file:``, ``python:``), applies every option to a
    ``Config``, then ends with ``return run(config)``, ``run`` being a global of
    ``hypercorn.__main__``. That call is what this relies on: for the length of the call
    only, that global is a function that keeps the config instead of serving it; the
    config's state (instance attributes, as hypercorn's ``from_mapping`` sets them) is then
    copied into a `Config` of ours. Nothing else of hypercorn is replaced.
    """
    import hypercorn.__main__ as command  # noqa: PLC0415 - only the command line needs it

    args = list(argv)
    if not args:  # hypercorn's main would read sys.argv instead of an empty list
        raise SystemExit(USAGE)
    parsed: list[_HypercornConfig] = []

    def keep(config: _HypercornConfig) -> int:
        parsed.append(config)
        return 0

    namespace = vars(command)  # the module's globals, which main's ``run(config)`` reads
    serve = namespace.get("run")
    if not callable(serve):
        raise RuntimeError("hypercorn.__main__ has no run(config) to hand the config to")
    namespace["run"] = keep
    try:
        command.main(args)
    finally:
        namespace["run"] = serve
    if len(parsed) != 1:
        raise RuntimeError("hypercorn's main did not hand over its config")
    config = Config()
    config.__dict__.update(parsed[0].__dict__)
    if not config.ssl_enabled:
        raise SystemExit("--certfile and --keyfile are required")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hotreload.tls hypercorn APP [hypercorn's own options]``: hypercorn's
    command line (`parse_args`), served by hypercorn's own ``hypercorn.run.run`` (its
    ``--workers``: spawned processes, each with its own `ServerTLS`; ``--workers 0``: in this
    process), with ``--certfile``, ``--keyfile`` and ``--ca-certs`` kept current."""
    from hypercorn.run import run  # noqa: PLC0415

    return run(parse_args(sys.argv[1:] if argv is None else argv))
