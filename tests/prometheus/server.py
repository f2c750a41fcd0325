"""A real Prometheus server for a test: its own directory and free port, scraping and evaluating
the rules every second, read back through its HTTP API with httpx.

Its output goes to a file (a pipe nobody reads could fill and stall it) and is attached to the
failure message. Waits poll the API until a state is seen, bounded only against a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from tests.e2e.processes import free_port

#: Scrape and rule evaluation period, seconds.
PERIOD = "1s"
#: A guard against a hang, never a figure the test checks: a loaded machine is slow.
PATIENCE = 90.0

R = TypeVar("R")


@dataclass
class Prometheus:
    url: str
    log: Path
    client: httpx.AsyncClient

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def api(self, path: str, **params: str) -> Any:
        response = await self.client.get(f"/api/v1/{path}", params=params)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def alerts(self, name: str) -> list[dict[str, Any]]:
        data = await self.api("alerts")
        return [a for a in data["alerts"] if a["labels"]["alertname"] == name]

    async def rule_evaluated(self) -> None:
        """Return once every rule group has been evaluated again from now on (after whatever
        was scraped before this call)."""
        before = await self._evaluations()
        await self.until(lambda: self._later(before), "a rule evaluation after the last scrape")

    async def until(self, probe: Callable[[], Awaitable[R | None]], what: str) -> R:
        """Poll ``probe`` until it returns something other than None (or falsy)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATIENCE
        while True:
            found = await probe()
            if found:
                return found
            if loop.time() > deadline:
                raise AssertionError(f"Prometheus never showed {what}\n{self.output()}")
            await asyncio.sleep(0.2)  # sleep-ok: polling an external server's API

    async def _evaluations(self) -> dict[str, str]:
        data = await self.api("rules")
        return {g["name"]: g["lastEvaluation"] for g in data["groups"]}

    async def _later(self, before: dict[str, str]) -> bool:
        now = await self._evaluations()
        return bool(now) and all(now[name] != before.get(name) for name in now)


@contextlib.asynccontextmanager
async def prometheus(
    binary: str, root: Path, rules: str, targets: list[str]
) -> AsyncIterator[Prometheus]:
    """Run Prometheus with ``rules`` (the text of a rule file) scraping ``targets``
    (``host:port``, job ``api``); stop it however the test ends."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "rules.yaml").write_text(rules)
    config = {
        "global": {
            "scrape_interval": PERIOD,
            "scrape_timeout": PERIOD,
            "evaluation_interval": PERIOD,
        },
        "rule_files": [str(root / "rules.yaml")],
        "scrape_configs": [{"job_name": "api", "static_configs": [{"targets": targets}]}],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [
        binary,
        f"--config.file={root / 'prometheus.yml'}",
        f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.console.templates={root}",
        f"--web.console.libraries={root}",
        "--log.level=warn",
    ]
    log = root / "prometheus.log"
    proc = _spawn(argv, log, root)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            server = Prometheus(url, log, client)
            await server.until(lambda: _ready(client, proc, log), "/-/ready answering 200")
            yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)


def _spawn(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)


async def _ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        output = log.read_text(errors="replace")
        raise AssertionError(f"prometheus exited with {proc.returncode}\n{output}")
    try:
        response = await client.get("/-/ready")
    except httpx.TransportError:
        return False
    return response.status_code == 200
