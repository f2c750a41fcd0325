"""etcd fan-out: put → visible latency with 50 watchers of one key on one machine.

Starts a single-member etcd (Debian's ``etcd-server``) on ephemeral loopback ports, opens
``--watchers`` `EtcdSource` watches on one key, each re-reading the key on every notification
as the reloader does (``--mode source``), or ``--watchers`` full ``HotReloader``\\ s on that key
(``--mode reloader``, once ``HotReloader`` takes ``source=``; ``auto`` picks it then). Each
sample is one put of a ~2 KB YAML document: per watcher, the time from just before the put
request is sent to the moment that watcher holds the new revision (source: its read returned
it; reloader: its ``config`` shows it); per put, the time until the last of them does (the
fleet). Puts are sequential: the next one goes out when the whole fleet has the previous.

    python benchmarks/etcd_fanout.py [--quick] [--tmpfs] [--puts N] [--watchers N] [--json F]

Each put waits for etcd's WAL fsync, so on a slow disk the put itself is most of the
latency; ``--tmpfs`` puts etcd's data dir in memory to show what the fan-out alone costs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import inspect
import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import msgspec
import structlog
from _common import summary
from prometheus_client import CollectorRegistry

import hotreload
from hotreload import HotReloader
from hotreload._etcd import EtcdSource

KEY = "/bench/config.yaml"
PAD = "x" * 2000  # a config of a realistic ~2 KB, as in latency.py


class Bench(msgspec.Struct, frozen=True):
    value: int
    padding: str = ""


def doc(i: int) -> str:
    return f"value: {i}\npadding: {PAD}\n"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def etcd_server(root: Path) -> Any:
    """A single-member etcd on ephemeral loopback ports; yields its client port."""
    binary = shutil.which("etcd")
    if binary is None:
        sys.exit("etcd is not installed: apt-get install etcd-server")
    client, peer = free_port(), free_port()
    url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    args = [
        binary,
        "--name=bench",
        f"--data-dir={root / 'data'}",
        f"--listen-client-urls={url}",
        f"--advertise-client-urls={url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=bench={peer_url}",
        "--log-level=warn",
    ]
    with (root / "etcd.log").open("ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        with httpx.Client(trust_env=False, timeout=1) as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(url + "/health").json().get("health") == "true":
                        break
                if time.monotonic() > deadline or proc.poll() is not None:
                    sys.exit(f"etcd did not become healthy; see {root / 'etcd.log'}")
                time.sleep(0.02)
        yield client
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


class Watcher:
    """One replica: an EtcdSource watch that re-reads on every notification (coalesced)."""

    def __init__(self, source: EtcdSource, fleet: Fleet) -> None:
        self.source = source
        self.fleet = fleet
        self.seen = 0
        self.ready = asyncio.Event()
        self._dirty = False
        self._reading: asyncio.Task[None] | None = None

    def notify(self, kind: str) -> None:
        self._dirty = True
        if self._reading is None or self._reading.done():
            self._reading = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while self._dirty:
            self._dirty = False
            revision = await self.source.read(1 << 20)
            self.seen = max(self.seen, int(revision.version or 0))
            self.fleet.saw(self, self.seen)


class Fleet:
    def __init__(self, size: int) -> None:
        self.size = size
        self.target = 0
        self.started = 0.0
        self.arrivals: list[float] = []
        self.done = asyncio.Event()
        self._counted: set[int] = set()

    def expect(self, revision: int, started: float) -> None:
        self.target, self.started = revision, started
        self.arrivals = []
        self._counted = set()
        self.done.clear()

    def saw(self, who: object, seen: int) -> None:
        """``who`` holds revision ``seen`` now: count it once it reaches the target."""
        if id(who) not in self._counted and seen >= self.target:
            self._counted.add(id(who))
            self.arrivals.append(time.perf_counter() - self.started)
            if len(self._counted) == self.size:
                self.done.set()


async def put(http: httpx.AsyncClient, port: int, text: str) -> int:
    reply = await http.post(
        f"http://127.0.0.1:{port}/v3/kv/put", json={"key": b64(KEY), "value": b64(text)}
    )
    reply.raise_for_status()
    return int(reply.json()["header"]["revision"])


async def run_sources(port: int, watchers: int, puts: int) -> dict[str, Any]:
    fleet = Fleet(watchers)
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        await put(http, port, doc(0))
        replicas = [Watcher(EtcdSource(KEY, port=port), fleet) for _ in range(watchers)]
        tasks = [
            asyncio.create_task(w.source.watch(w.notify, w.ready.set), name=f"watch-{i}")
            for i, w in enumerate(replicas)
        ]
        try:
            await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in replicas)), 30)
            return await measure(http, port, fleet, puts, replicas)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def run_reloaders(port: int, watchers: int, puts: int) -> dict[str, Any]:
    fleet = Fleet(watchers)
    reloader_cls: Any = HotReloader  # typed loosely until HotReloader takes source=
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        await put(http, port, doc(0))
        async with contextlib.AsyncExitStack() as stack:
            replicas = [
                await stack.enter_async_context(
                    reloader_cls(
                        source=EtcdSource(KEY, port=port),
                        schema=Bench,
                        name=f"r{i}",
                        registry=CollectorRegistry(),
                        poll_interval=0,
                    )
                )
                for i in range(watchers)
            ]
            return await measure(http, port, fleet, puts, replicas)


async def measure(
    http: httpx.AsyncClient, port: int, fleet: Fleet, puts: int, replicas: list[Any]
) -> dict[str, Any]:
    per_replica: list[float] = []
    whole_fleet: list[float] = []
    put_rtt: list[float] = []
    for i in range(1, puts + 1):
        started = time.perf_counter()
        # The target is known only when the put answers; count arrivals from then on.
        fleet.expect(sys.maxsize, started)
        revision = await put(http, port, doc(i))
        put_rtt.append(time.perf_counter() - started)
        fleet.expect(revision, started)
        if isinstance(replicas[0], Watcher):
            for replica in replicas:
                fleet.saw(replica, replica.seen)  # those whose read already returned it
        else:
            await asyncio.gather(*(arrive(fleet, r, i) for r in replicas))
        await asyncio.wait_for(fleet.done.wait(), 30)
        per_replica.extend(fleet.arrivals)
        whole_fleet.append(max(fleet.arrivals))
    return {
        "put_to_visible_per_replica": summary(per_replica),
        "put_to_visible_whole_fleet": summary(whole_fleet),
        "put_round_trip": summary(put_rtt),
    }


async def arrive(fleet: Fleet, reloader: Any, value: int) -> None:
    """Reloader mode: wait until this reloader's config shows ``value``, then count it."""
    while reloader.config.value < value:
        await reloader.wait_for_generation(reloader.snapshot.generation + 1, timeout=30)
    fleet.saw(reloader, fleet.target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 puts instead of 200")
    parser.add_argument("--puts", type=int, default=None)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--mode", choices=["auto", "source", "reloader"], default="auto")
    parser.add_argument(
        "--tmpfs", action="store_true", help="etcd's data dir in /dev/shm: no disk fsync cost"
    )
    parser.add_argument("--json", type=Path, default=Path("benchmarks/out/etcd_fanout.json"))
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    puts = args.puts or (50 if args.quick else 200)
    integrated = "source" in inspect.signature(HotReloader.__init__).parameters
    mode = ("reloader" if integrated else "source") if args.mode == "auto" else args.mode
    where = "/dev/shm" if args.tmpfs else None  # a private temp dir inside it
    with tempfile.TemporaryDirectory(dir=where) as tmp, etcd_server(Path(tmp)) as port:
        etcd = shutil.which("etcd") or "etcd"
        version = subprocess.run(
            [etcd, "--version"], capture_output=True, text=True, check=True
        ).stdout.split()[2]
        runner = run_reloaders if mode == "reloader" else run_sources
        result = asyncio.run(runner(port, args.watchers, puts))
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
        },
        "versions": {
            "hotreload": hotreload.__version__,
            "etcd": version,
            "httpx": httpx.__version__,
        },
        "command": " ".join(["python", *sys.argv]),
        "mode": mode,
        "etcd_data_dir": "tmpfs" if args.tmpfs else "disk",
        "watchers": args.watchers,
        "puts": puts,
        **result,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
