"""E2E fixtures: a real uvicorn server on an ephemeral loopback port, driven by httpx."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app`` under uvicorn in this loop; yield a client for it.

    The socket is bound (port 0) and listening before the server starts, so the port is known
    at once; uvicorn accepts only after the lifespan start-up, so the first answer (any status)
    means the app, and its reloader, is running.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", ws="none", http="h11"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve([sock]))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            await client.get("/-/started")
            yield client
    finally:
        server.should_exit = True
        try:
            await task
        finally:
            sock.close()
