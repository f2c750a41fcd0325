"""Many reloaders in one process: threads, start-up time, memory per reloader, fan-out.

python benchmarks/scale.py [--counts 100 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import msgspec
import structlog
from prometheus_client import CollectorRegistry

from hotreload import HotReloader


class Small(msgspec.Struct, frozen=True):
    model: str


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


async def measure(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hotreload-scale-") as tmp:
        paths = []
        for i in range(count):
            directory = Path(tmp) / f"d{i % 100}"
            directory.mkdir(exist_ok=True)
            path = directory / f"c{i}.yaml"
            path.write_text(f"model: m{i}\n")
            paths.append(path)
        registry = CollectorRegistry()
        async with contextlib.AsyncExitStack() as stack:
            warm = HotReloader(paths[0], schema=Small, name="warm", registry=registry)
            await stack.enter_async_context(warm)  # the hub and imports are paid before measuring
            rss, started = rss_bytes(), time.perf_counter()
            tracemalloc.start()
            reloaders = [
                await stack.enter_async_context(
                    HotReloader(path, schema=Small, name=f"r{i}", registry=registry)
                )
                for i, path in enumerate(paths)
            ]
            traced, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            startup = time.perf_counter() - started
            grown = rss_bytes() - rss
            threads = threading.active_count()
            written = time.perf_counter()
            for i, path in enumerate(paths):
                path.write_text(f"model: x{i}\n")
            for r in reloaders:
                await r.wait_for_generation(2, timeout=60)
            fan_out = time.perf_counter() - written
    return {
        "reloaders": count,
        "threads_in_process": threads,
        "startup_s": round(startup, 2),
        "rss_kb_per_reloader": round(grown / count / 1024, 1),
        "tracemalloc_kb_per_reloader": round(traced / count / 1024, 1),
        "all_changes_visible_s": round(fan_out, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    for count in args.counts:
        print(json.dumps(asyncio.run(measure(count))))


if __name__ == "__main__":
    main()
