"""hypercorn's command line with ``--workers 2``: ``python -m hotreload.tls hypercorn ...``,
and the same config built in code for ``hypercorn.run.run``.
hypercorn spawns each worker with the pickled config; every worker makes its own reloader in
``create_ssl_context``, and every one of them moves to the new pair."""

from __future__ import annotations

import asyncio
import os
import pickle
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotreload.testing import ConfigMapVolume
from hotreload.tls import Issued
from hotreload.tls.hypercorn import Config, parse_args

from .conftest import tls_files, trusting
from .test_uvicorn_cli import serials_by_worker

ROOT = Path(__file__).resolve().parents[2]


def test_the_command_line_is_hypercorns_own_into_our_config() -> None:
    tls = ["--certfile", "c.crt", "--keyfile", "k.key", "--ca-certs", "ca.crt"]
    config = parse_args(
        [
            "app:app",
            *tls,
            "--workers",
            "3",
            "-b",
            "127.0.0.1:8443",
            "--verify-mode",
            "CERT_REQUIRED",
        ]
    )
    assert type(config) is Config
    assert config.application_path == "app:app"
    assert (config.certfile, config.keyfile, config.ca_certs) == ("c.crt", "k.key", "ca.crt")
    assert config.workers == 3
    assert config.bind == ["127.0.0.1:8443"]
    assert config.verify_mode == ssl.CERT_REQUIRED
    import hypercorn.__main__
    import hypercorn.run

    assert vars(hypercorn.__main__)["run"] is hypercorn.run.run  # put back
    with pytest.raises(SystemExit, match="--certfile and --keyfile are required"):
        parse_args(["app:app", "--workers", "2"])
    with pytest.raises(SystemExit, match="usage"):
        parse_args([])


def test_the_config_pickles_into_a_worker_without_its_reloader() -> None:
    config = parse_args(["app:app", "--certfile", "c.crt", "--keyfile", "k.key"])
    config.tls_options = {"name": "web", "poll_interval": 0}
    config.tls = object()  # type: ignore[assignment]  # this process's, never a worker's
    copy = pickle.loads(pickle.dumps(config))  # noqa: S301 - our own bytes, as hypercorn's spawn
    assert type(copy) is Config
    assert copy.tls is None
    assert copy.tls_options == {"name": "web", "poll_interval": 0}
    assert (copy.certfile, copy.application_path) == ("c.crt", "app:app")


#: The programmatic way: our `Config` handed to hypercorn's own ``hypercorn.run.run``.
PROGRAM = """
import sys
import hypercorn.run
from hotreload.tls.hypercorn import Config

config = Config()
config.application_path = "tests.tls.workers_app:app"
config.workers = 2
config.bind = ["127.0.0.1:0"]
config.certfile, config.keyfile = sys.argv[1], sys.argv[2]
config.tls_options = {"name": "web"}
sys.exit(hypercorn.run.run(config))
"""


@pytest.fixture(params=["command line", "hypercorn.run.run"])
def cli(
    volume: ConfigMapVolume, request: pytest.FixtureRequest
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    cert, key = str(volume.path("tls.crt")), str(volume.path("tls.key"))
    if request.param == "hypercorn.run.run":
        argv = ["-c", PROGRAM, cert, key]
    else:
        argv = ["-m", "hotreload.tls", "hypercorn", "tests.tls.workers_app:app"]
        argv += ["--workers", "2", "--certfile", cert, "--keyfile", key]
        argv += ["--bind", "127.0.0.1:0"]  # the parent binds it once; both workers serve it
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        ports: list[int] = []
        for line in proc.stderr:  # each worker logs the address it serves, once it listens
            found = re.search(r"Running on https://127\.0\.0\.1:(\d+)", line)
            if found:
                ports.append(int(found.group(1)))
            if len(ports) == 2:
                break
        assert len(ports) == 2, "hypercorn's workers did not start"
        assert ports[0] == ports[1]
        yield proc, ports[0]
        proc.send_signal(signal.SIGINT)  # hypercorn's shutdown: it stops both workers
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


@pytest.mark.timeout(90)
async def test_every_worker_serves_the_rotated_certificate(
    cli: tuple[subprocess.Popen[str], int],
    volume: ConfigMapVolume,
    pair_a: Issued,
    pair_b: Issued,
) -> None:
    proc, port = cli
    trust = trusting(pair_a, pair_b)
    before = await asyncio.wait_for(serials_by_worker(port, trust, pair_a.serial), 30)
    assert len(before) == 2
    assert all(pid.isdigit() for pid in before)
    assert str(proc.pid) not in before  # served by the spawned workers, not the parent
    volume.update(tls_files(pair_b))
    after = await asyncio.wait_for(serials_by_worker(port, trust, pair_b.serial), 30)
    assert set(after) == set(before)  # the same two workers, no restart
    assert proc.poll() is None


def test_the_command_line_docs_tls_shows_parses() -> None:
    """docs/tls.md's hypercorn command, every option in it (the optional ones too)."""
    text = (ROOT / "docs" / "tls.md").read_text()
    [shown] = re.findall(r"`python -m hotreload\.tls hypercorn ([^`]*)`", text)
    config = parse_args(shown.replace("[", "").replace("]", "").split())
    assert (config.certfile, config.keyfile, config.ca_certs) == ("tls.crt", "tls.key", "ca.crt")
    assert (config.workers, config.bind) == (4, ["0.0.0.0:8443"])
    assert config.verify_mode == ssl.CERT_REQUIRED
