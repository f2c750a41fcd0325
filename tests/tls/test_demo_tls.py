"""``hotreload demo --tls --rotate``: HTTPS with a certificate it made, renewed while serving."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import ssl
import sys
from pathlib import Path

from .conftest import https_get

ROOT = Path(__file__).resolve().parents[2]


async def line_with(stream: asyncio.StreamReader, pattern: str) -> re.Match[str]:
    while True:
        line = (await asyncio.wait_for(stream.readline(), 10)).decode()
        assert line, f"the demo ended before printing {pattern!r}"
        found = re.search(pattern, line)
        if found:
            return found


async def test_demo_serves_https_and_rotates_its_certificate(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hotreload.cli",
        "demo",
        "--tls",
        "--rotate",
        "0.2",
        "--port",
        "0",
        "--config-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    try:
        first = (await line_with(proc.stdout, r"TLS certificate serial (\w+)"))[1]
        port = int((await line_with(proc.stdout, r"serving https://127\.0\.0\.1:(\d+)/"))[1])
        anyone = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # the demo's certificate is its own
        anyone.check_hostname, anyone.verify_mode = False, ssl.CERT_NONE
        renewed = (await line_with(proc.stdout, r"renewed the TLS certificate: serial (\w+)"))[1]
        assert renewed != first
        while True:  # the same process, a newer certificate for new handshakes
            serial, body = await https_get(port, anyone)
            if serial != first:
                break
        assert json.loads(body)["tls_serial"] != first
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
