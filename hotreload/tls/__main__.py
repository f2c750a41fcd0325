"""``python -m hotreload.tls uvicorn APP --ssl-certfile tls.crt --ssl-keyfile tls.key
[--workers N] [any uvicorn option]``: uvicorn's CLI with the certificate kept current."""

from __future__ import annotations

import sys

from ._servers import run_uvicorn_cli

__all__ = ["main"]


def main(argv: list[str]) -> None:
    if not argv or argv[0] != "uvicorn":
        raise SystemExit(__doc__)
    run_uvicorn_cli(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
