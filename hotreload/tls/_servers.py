"""Server glue through each server's own extension point: uvicorn's ``ssl_context_factory``
(`uvicorn.run`, ``uvicorn.Config``, ``--workers``, and the CLI through ``python -m
hotreload.tls uvicorn``), hypercorn's ``Config.create_ssl_context`` (`hotreload.tls.hypercorn`,
its workers and its command line too) and plain ``asyncio.start_server(ssl=tls.context)``."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from ._live import ServerTLS

__all__ = ["UvicornTLS", "run_uvicorn_cli"]


class UvicornTLS:
    """uvicorn's ``ssl_context_factory`` (uvicorn 0.47+): ``uvicorn.run("app:app", workers=4,
    ssl_context_factory=UvicornTLS("tls.crt", "tls.key"))``.

    It is picklable (it holds only the paths and options), so each worker process that
    uvicorn spawns calls it on its own loop and runs its own `ServerTLS` there: the first pair
    is loaded and checked at once (a bad one fails the start), the reloader keeps it current
    until the server's loop ends. uvicorn's ``ssl_ciphers``, ``ssl_cert_reqs`` (as uvicorn
    means it: ``CERT_REQUIRED`` for mTLS) and the ALPN of its HTTP protocol apply to every
    generation's context. ``options`` go to `ServerTLS`.
    """

    def __init__(
        self,
        cert: str | os.PathLike[str],
        key: str | os.PathLike[str],
        ca: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> None:
        self.cert, self.key, self.ca = cert, key, ca
        self.options = options
        self.live: ServerTLS | None = None
        """The `ServerTLS` of this process, once uvicorn called the factory."""

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "live": None}  # each worker makes its own

    def __call__(self, config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ciphers: str | None = getattr(config, "ssl_ciphers", None)
        alpn: Sequence[str] | None = getattr(
            getattr(config, "http_protocol_class", None), "alpn_protocols", None
        )

        def configure(context: ssl.SSLContext) -> None:
            if ciphers:
                context.set_ciphers(ciphers)
            if alpn:
                context.set_alpn_protocols(list(alpn))

        options = dict(self.options)
        # uvicorn's meaning of its options: --ssl-ca-certs alone loads the CAs without asking
        # for a client certificate; --ssl-cert-reqs 2 (CERT_REQUIRED) makes it mTLS.
        options.setdefault(
            "verify_mode", ssl.VerifyMode(getattr(config, "ssl_cert_reqs", ssl.CERT_NONE))
        )
        self.live = ServerTLS(self.cert, self.key, self.ca, configure=configure, **options)
        self.live.start()
        return self.live.context


def run_uvicorn_cli(argv: Sequence[str] | None = None) -> None:
    """``python -m hotreload.tls uvicorn APP [uvicorn's own options]``: uvicorn's command line
    (parsed by uvicorn's own click command), with ``--ssl-certfile``, ``--ssl-keyfile`` and
    ``--ssl-ca-certs`` kept current by a `UvicornTLS` in every worker."""
    import uvicorn  # noqa: PLC0415 - only this command needs it
    from uvicorn.config import LOGGING_CONFIG  # noqa: PLC0415
    from uvicorn.main import main as command  # noqa: PLC0415

    with command.make_context("python -m hotreload.tls uvicorn", list(argv or [])) as ctx:
        params = dict(ctx.params)
    if not params.get("ssl_certfile") or not params.get("ssl_keyfile"):
        raise SystemExit("--ssl-certfile and --ssl-keyfile are required")
    if params.get("log_config") is None:
        params["log_config"] = LOGGING_CONFIG
    for name in ("reload_dirs", "reload_includes", "reload_excludes"):
        params[name] = params.get(name) or None
    params.pop("version", None)
    params["ssl_context_factory"] = UvicornTLS(
        params["ssl_certfile"], params["ssl_keyfile"], params.get("ssl_ca_certs")
    )
    uvicorn.run(**params)
