"""uvicorn's command line with ``--workers 2``: ``python -m hotreload.tls uvicorn ...``.
Each worker process runs its own reloader; every one of them moves to the new pair."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotreload.testing import ConfigMapVolume
from hotreload.tls import Issued

from .conftest import https_get, tls_files, trusting

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(volume: ConfigMapVolume) -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hotreload.tls",
            "uvicorn",
            "tests.tls.workers_app:app",
            "--workers",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-access-log",
            "--ssl-certfile",
            str(volume.path("tls.crt")),
            "--ssl-keyfile",
            str(volume.path("tls.key")),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        port, started = None, 0
        for line in proc.stderr:  # the address it bound, then each worker's start-up
            found = re.search(r"running on https://127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
            started += "Application startup complete" in line
            if started == 2:
                break
        assert port is not None, "uvicorn did not start"
        yield proc, port
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


async def serials_by_worker(port: int, trust: object, want: str) -> dict[str, str]:
    """Handshake until both workers have answered with ``want`` (fresh connections, spread
    over the workers by the kernel); returns pid -> serial of the last answer of each."""
    import ssl

    assert isinstance(trust, ssl.SSLContext)
    last: dict[str, str] = {}
    while len([s for s in last.values() if s == want]) < 2:
        serial, pid = await https_get(port, trust)
        last[pid.decode()] = serial
    return last


@pytest.mark.timeout(90)
async def test_every_worker_serves_the_rotated_certificate(
    cli: tuple[subprocess.Popen[str], int],
    volume: ConfigMapVolume,
    pair_a: Issued,
    pair_b: Issued,
) -> None:
    _, port = cli
    trust = trusting(pair_a, pair_b)
    before = await serials_by_worker(port, trust, pair_a.serial)
    volume.update(tls_files(pair_b))
    after = await serials_by_worker(port, trust, pair_b.serial)
    assert set(after) == set(before)  # the same two workers, no restart
    assert len(after) == 2
