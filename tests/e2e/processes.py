"""Real ASGI server processes (uvicorn, gunicorn) serving the demo app, for e2e tests.

The demo app is ``hotreload._demo:create_app``, an ASGI factory reading its config path from
``HOTRELOAD_DEMO_CONFIG``. Servers bind 127.0.0.1 only. A server's output goes to a file (a
pipe nobody reads could fill and stall it) and is attached to the failure message.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx

from hotreload._demo import CONFIG_ENV

APP = "hotreload._demo:create_app"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def uvicorn_argv(port: int, workers: int) -> list[str]:
    argv = [sys.executable, "-m", "uvicorn", "--factory", APP, "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--log-level", "warning"]
    return [*argv, "--workers", str(workers)] if workers > 1 else argv


def gunicorn_argv(port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--worker-class",
        "uvicorn.workers.UvicornWorker",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        f"{APP}()",
    ]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def run_server(argv: list[str], config: Path, port: int, log: Path) -> Iterator[Server]:
    """Start the server; stop it (SIGTERM, then SIGKILL) however the test ends."""
    env = {**os.environ, CONFIG_ENV: str(config), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Server(proc, f"http://127.0.0.1:{port}", log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def client(server: Server) -> httpx.AsyncClient:
    """A client that opens a new connection per request, so requests spread over workers."""
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=server.url, timeout=5, limits=limits)


async def config_report(http: httpx.AsyncClient, server: Server) -> dict[str, Any]:
    """``GET /-/config``, waiting (bounded) until the server accepts connections."""
    with anyio.fail_after(START_TIMEOUT):
        while True:
            if server.proc.poll() is not None:
                raise AssertionError(f"the server exited:\n{server.output()}")
            try:
                response = await http.get("/-/config")
            except httpx.TransportError:
                # sleep-ok: a separate process binding its port: nothing to wait on but retries
                await anyio.sleep(0.05)
                continue
            assert response.status_code == 200, response.text
            report: dict[str, Any] = response.json()
            return report
