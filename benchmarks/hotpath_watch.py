"""Start and close many file reloaders one after another (issue 23: the watch hub).

``many_reloaders(n)`` makes ``n`` directories under a scratch directory, one config file in
each, enters ``HotReloader(path, schema=S, name=f"r{i}")`` for each of them one after another
on one `contextlib.AsyncExitStack` (each ``async with`` returns once a watcher covers its file),
then closes the stack. It returns wall seconds and process CPU seconds (every thread, the Rust
watchers' included) of the start-all and of the close-all, and how many Rust watchers the hub
built. It is synchronous: it runs its own event loop (``asyncio.run``).

    python benchmarks/hotpath_watch.py [--n 1000]      # prints one JSON object

Run against another checkout (the baseline) with that checkout first on the path:
``cd /work/base && PYTHONPATH=$PWD python /path/to/benchmarks/hotpath_watch.py --n 300``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from _common import cpu_seconds, quiet_logs, scratch_dir
from prometheus_client import CollectorRegistry

import hotreload._watch as watch_module
from hotreload import HotReloader


class S(msgspec.Struct, frozen=True):  # the engine refuses a mutable schema
    a: int = 0


async def _run(n: int, root: Path) -> dict[str, float]:
    paths = []
    for i in range(n):
        directory = root / f"d{i}"
        directory.mkdir()
        path = directory / "config.yaml"
        path.write_text(f"a: {i}\n")
        paths.append(path)
    registry = CollectorRegistry()  # n metric sets, not left on the global registry
    builds = _count_builds()
    stack = contextlib.AsyncExitStack()
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for i, path in enumerate(paths):
        await stack.enter_async_context(
            HotReloader(path, schema=S, name=f"r{i}", registry=registry)
        )
    start_wall, start_cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    built_at_start = builds()
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    await stack.aclose()
    close_wall, close_cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    return {
        "n": n,
        "start_all_s": round(start_wall, 3),
        "start_all_cpu_s": round(start_cpu, 3),
        "close_all_s": round(close_wall, 3),
        "close_all_cpu_s": round(close_cpu, 3),
        "watchers_built_at_start": built_at_start,
        "watchers_built_at_close": builds() - built_at_start,
    }


def _count_builds() -> Callable[[], int]:
    """Count the hub's RustNotify constructions (a wrapper around the real one)."""
    names = vars(watch_module)  # the name `_Watcher` looks up; not part of its public API
    real = names["RustNotify"]
    count = [0]

    def counting(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return real(*args, **kwargs)

    names["RustNotify"] = counting
    return lambda: count[0]


def many_reloaders(n: int = 1000) -> dict[str, float]:
    """Wall and CPU seconds to start ``n`` reloaders in ``n`` directories one after another,
    and to close them all; runs its own event loop, so call it outside one."""
    with tempfile.TemporaryDirectory(prefix="hotreload-hotpath-watch-", dir=scratch_dir()) as tmp:
        return asyncio.run(_run(n, Path(tmp)))


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--n", type=int, default=int(os.environ.get("HOTPATH_WATCH_N", "1000")))
    args = p.parse_args()
    quiet_logs()
    print(json.dumps(many_reloaders(args.n)))


if __name__ == "__main__":
    main()
