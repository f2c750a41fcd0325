"""``python -m hotreload.tls uvicorn APP --ssl-certfile tls.crt --ssl-keyfile tls.key
[--workers N] [any uvicorn option]``: uvicorn's CLI with the certificate kept current.

``python -m hotreload.tls hypercorn APP --certfile tls.crt --keyfile tls.key [--workers N]
[any hypercorn option]``: hypercorn's, the same way (`hotreload.tls.hypercorn.main`)."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str]) -> int:
    if argv and argv[0] == "uvicorn":
        from ._servers import run_uvicorn_cli  # noqa: PLC0415

        run_uvicorn_cli(argv[1:])
        return 0
    if argv and argv[0] == "hypercorn":
        from .hypercorn import main as run_hypercorn_cli  # noqa: PLC0415

        return run_hypercorn_cli(argv[1:])
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
