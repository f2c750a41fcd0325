"""``kill -HUP`` on a real uvicorn process serving the demo app re-checks its reloader.

uvicorn itself handles only SIGINT and SIGTERM in a worker (its multi-worker supervisor takes
SIGHUP to mean "restart the workers"); without our handler SIGHUP would end the process.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from hotreload._demo import DEMO_CONFIG

from .processes import Server, client, config_report, free_port, run_server, uvicorn_argv


async def wait_for_trigger(
    http: httpx.AsyncClient, server: Server, trigger: str, pid: int
) -> dict[str, Any]:
    """Poll /-/config until the process ``pid`` reports an outcome set off by ``trigger``."""
    while True:
        report = await config_report(http, server)
        last = report["last_outcome"]
        if report["pid"] == pid and last is not None and last["trigger"] == trigger:
            return report


@pytest.mark.timeout(120)
async def test_sighup_to_a_real_uvicorn_process_rechecks_its_reloader(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(DEMO_CONFIG)
    port = free_port()
    with run_server(uvicorn_argv(port, 1), config, port, tmp_path / "uvicorn.log") as server:
        async with client(server) as http:
            first = await config_report(http, server)
            assert first["pid"] == server.proc.pid
            assert first["last_outcome"]["trigger"] != "signal"
            os.kill(server.proc.pid, signal.SIGHUP)
            with anyio.fail_after(60):
                report = await wait_for_trigger(http, server, "signal", server.proc.pid)
            assert report["last_outcome"]["result"] == "config_unchanged"
            assert report["generation"] == first["generation"]
            # A second one works as well: the handler stays installed.
            os.kill(server.proc.pid, signal.SIGHUP)
            with anyio.fail_after(60):
                while True:
                    again = await wait_for_trigger(http, server, "signal", server.proc.pid)
                    if again["last_outcome"]["at"] != report["last_outcome"]["at"]:
                        break
        assert server.proc.poll() is None, server.output()
    assert "config_unchanged (signal)" in server.output()  # the demo prints each outcome


@pytest.mark.timeout(120)
async def test_sighup_to_one_worker_rechecks_that_worker_only(tmp_path: Path) -> None:
    """Under ``uvicorn --workers 2`` a worker's SIGHUP is its own: no restart, no other worker."""
    config = tmp_path / "config.yaml"
    config.write_text(DEMO_CONFIG)
    port = free_port()
    with run_server(uvicorn_argv(port, 2), config, port, tmp_path / "uvicorn.log") as server:
        async with client(server) as http:
            pids: set[int] = set()
            with anyio.fail_after(60):
                while len(pids) < 2:
                    pids.add(int((await config_report(http, server))["pid"]))
            target, other = sorted(pids)
            os.kill(target, signal.SIGHUP)
            with anyio.fail_after(60):
                await wait_for_trigger(http, server, "signal", target)
            latest: dict[int, dict[str, Any]] = {}
            with anyio.fail_after(60):
                while other not in latest:
                    report = await config_report(http, server)
                    latest[int(report["pid"])] = report
            assert latest[other]["last_outcome"]["trigger"] != "signal"
            assert set(latest) <= pids  # the same two workers: nothing was restarted
        assert server.proc.poll() is None, server.output()
