"""Write → visible latency for the three update styles, against raw watchfiles in the same run.

For each style, a writer updates the file and a reader task polls ``reloader.config`` until
it shows the new value; the time between the end of the write and the first read that sees it
is one sample. The baseline is ``watchfiles.awatch`` on the same directory with the same
``debounce``/``step``: the time from the write to the event arriving, i.e. what the engine
cannot beat. The difference is the engine's own overhead. Also measures the cost of a config
read against a plain attribute read and a lock-guarded read.

    python benchmarks/latency.py [--quick] [--samples N] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import structlog
import watchfiles
from prometheus_client import CollectorRegistry

import hotreload
from hotreload import HotReloader
from hotreload.testing import ConfigMapVolume, write_atomic, write_in_place


class Bench(msgspec.Struct, frozen=True):
    value: int
    padding: str = ""


PAD = "x" * 2000  # a config of a realistic ~2 KB


def doc(i: int) -> str:
    return f"value: {i}\npadding: {PAD}\n"


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    return {
        "n": len(ordered),
        "p50_ms": round(pct(50), 3),
        "p95_ms": round(pct(95), 3),
        "p99_ms": round(pct(99), 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


async def engine_latency(style: str, samples: int, root: Path) -> dict[str, Any]:
    directory = root / f"engine-{style}"
    volume: ConfigMapVolume | None = None
    if style == "configmap":
        volume = ConfigMapVolume(directory, {"config.yaml": doc(0)})
        path = volume.path("config.yaml")
    else:
        directory.mkdir()
        path = directory / "config.yaml"
        path.write_text(doc(0))
    writers: dict[str, Callable[[int], None]] = {
        "in_place": lambda i: write_in_place(path, doc(i)),
        "rename": lambda i: write_atomic(path, doc(i)),
        "configmap": lambda i: volume.update({"config.yaml": doc(i)}) if volume else None,
    }
    write = writers[style]
    latencies: list[float] = []
    async with HotReloader(
        path, schema=Bench, name=f"bench-{style}", registry=CollectorRegistry(), poll_interval=0
    ) as reloader:
        start_gen = reloader.snapshot.generation
        for i in range(1, samples + 1):
            write(i)
            written = time.perf_counter()
            while reloader.config.value != i:
                await asyncio.sleep(0)  # a reader that looks as often as the loop allows
            latencies.append(time.perf_counter() - written)
        commits = reloader.snapshot.generation - start_gen
    return {**summary(latencies), "commits_per_update": round(commits / samples, 3)}


async def raw_watchfiles_latency(
    samples: int, root: Path, debounce: int, step: int
) -> dict[str, Any]:
    directory = root / "raw"
    directory.mkdir()
    path = directory / "config.yaml"
    path.write_text(doc(0))
    latencies: list[float] = []
    stop = asyncio.Event()
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def watch() -> None:
        async for _ in watchfiles.awatch(
            directory, debounce=debounce, step=step, stop_event=stop, recursive=False
        ):
            arrived.put_nowait(time.perf_counter())

    task = asyncio.create_task(watch())
    # The watcher thread needs a moment to start; wait until it reports a probe write.
    while True:
        write_in_place(path, doc(0))
        try:
            await asyncio.wait_for(arrived.get(), 0.5)
            break
        except asyncio.TimeoutError:
            continue
    for i in range(1, samples + 1):
        while not arrived.empty():
            arrived.get_nowait()
        write_in_place(path, doc(i))
        written = time.perf_counter()
        seen = await arrived.get()
        latencies.append(seen - written)
    stop.set()
    await task
    return summary(latencies)


def read_cost() -> dict[str, Any]:
    class Holder:
        def __init__(self) -> None:
            self.value = 1
            self.lock = threading.Lock()

        def locked(self) -> int:
            with self.lock:
                return self.value

    async def make() -> float:
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "c.yaml"
            p.write_text(doc(0))
            async with HotReloader(p, schema=Bench, name="read", registry=CollectorRegistry()) as r:
                n = 2_000_000
                return timeit.timeit("r.config", globals={"r": r}, number=n) / n * 1e9

    holder = Holder()
    n = 2_000_000
    plain = timeit.timeit("h.value", globals={"h": holder}, number=n) / n * 1e9
    locked = timeit.timeit("h.locked()", globals={"h": holder}, number=n // 4) / (n // 4) * 1e9
    config = asyncio.run(make())
    return {
        "plain_attribute_ns": round(plain, 1),
        "reloader_config_ns": round(config, 1),
        "lock_guarded_ns": round(locked, 1),
        "config_vs_plain": round(config / plain, 2),
    }


async def run(samples: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hotreload-bench-") as tmp:
        root = Path(tmp)
        results: dict[str, Any] = {
            "raw_watchfiles_debounce50_step10": await raw_watchfiles_latency(samples, root, 50, 10)
        }
        for style in ("in_place", "rename", "configmap"):
            results[f"engine_{style}"] = await engine_latency(style, samples, root)
        raw_p50 = results["raw_watchfiles_debounce50_step10"]["p50_ms"]
        results["engine_overhead_p50_ms"] = {
            style: round(results[f"engine_{style}"]["p50_ms"] - raw_p50, 3)
            for style in ("in_place", "rename", "configmap")
        }
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (< 60 s)")
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/out/latency.json"))
    args = parser.parse_args()
    # Keep per-reload log lines off the terminal: printing them would be what is measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    samples = args.samples or (100 if args.quick else 300)
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
        },
        "versions": {"hotreload": hotreload.__version__, "watchfiles": watchfiles.VERSION},
        "command": " ".join(["python", *sys.argv]),
        "samples_per_style": samples,
        "latency": asyncio.run(run(samples)),
        "read_cost": read_cost(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
