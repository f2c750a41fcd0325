"""Several worker processes (uvicorn --workers 2, gunicorn with UvicornWorker) each run their own
reloader on the same file: one write reaches every worker, and each says so in /-/config and in
its metrics. Real processes, real sockets, real files.

No wall-clock bound is asserted: the wait is on every worker answering the new ``config_hash``,
bounded by the test timeout. The convergence time observed (write → the last worker answering)
is printed (``pytest -s``) and recorded by benchmarks/workers.py.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from hotreload._demo import DEMO_CONFIG
from hotreload.testing import write_atomic

from .processes import (
    Server,
    client,
    config_report,
    free_port,
    gunicorn_argv,
    run_server,
    uvicorn_argv,
)

WORKERS = 2
BATCH = 6  # concurrent requests per round: several connections, so every worker gets some

SERVERS: dict[str, Callable[[int, int], list[str]]] = {"uvicorn": uvicorn_argv}
if importlib.util.find_spec("gunicorn") is not None:
    SERVERS["gunicorn"] = gunicorn_argv


async def reports(http: httpx.AsyncClient, server: Server) -> list[dict[str, object]]:
    return list(await asyncio.gather(*(config_report(http, server) for _ in range(BATCH))))


async def hashes_by_pid(
    http: httpx.AsyncClient, server: Server, until: Callable[[dict[int, str]], bool]
) -> dict[int, str]:
    """Each worker's latest ``config_hash``, polled until ``until`` holds (test timeout bounds)."""
    latest: dict[int, str] = {}
    while not until(latest):
        for report in await reports(http, server):
            latest[int(str(report["pid"]))] = str(report["config_hash"])
        assert len(latest) <= WORKERS, latest
    return latest


async def converge(server: Server, config: Path) -> float:
    """Write once; wait until every worker answers the new hash. The seconds it took."""
    async with client(server) as http:
        before = await hashes_by_pid(http, server, lambda seen: len(seen) == WORKERS)
        assert len(set(before.values())) == 1, before  # all on the first version
        [old] = set(before.values())
        write_atomic(config, DEMO_CONFIG.replace("model: gpt-4", "model: gpt-4o"))
        written = time.perf_counter()
        after = await hashes_by_pid(
            http,
            server,
            lambda seen: len(seen) == WORKERS and old not in seen.values(),
        )
        took = time.perf_counter() - written
        assert len(set(after.values())) == 1, after  # every worker on the same new version
        [new] = set(after.values())
        # Each worker's gauge names its own hash, and the old hash's series is gone.
        metrics = await asyncio.gather(*(http.get("/metrics") for _ in range(BATCH)))
        for response in metrics:
            text = response.text
            assert f'holmesgpt_config_info{{config="demo",config_hash="{new}"}} 1.0' in text
            assert old not in text
        home = (await http.get("/")).json()
        assert home["model"] == "gpt-4o"
        return took


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", list(SERVERS))
async def test_every_worker_converges_on_one_write(kind: str, tmp_path: Path) -> None:
    config = tmp_path / "conf" / "config.yaml"
    config.parent.mkdir()
    config.write_text(DEMO_CONFIG)
    port = free_port()
    argv = SERVERS[kind](port, WORKERS)
    with run_server(argv, config, port, tmp_path / f"{kind}.log") as server:
        took = await converge(server, config)
        assert server.proc.poll() is None, server.output()
    print(f"\n{kind} -w {WORKERS}: all workers on the new config_hash {took:.3f} s after the write")
