"""Idle cost, and the ``step_ms`` latency/idle trade-off.

Idle: in a fresh child process per row, open the contender(s), let them settle, then count
CPU time (getrusage: every thread, Rust ones included) and wake-ups (voluntary + involuntary
context switches of all threads) over a window, scaled to one minute. Rows: an empty asyncio
loop (the floor), the engine with 1 and 100 reloaders, the engine with polling forced
(``poll_delay_ms`` 300 and 100; 1 and 100 reloaders), one raw ``watchfiles.awatch`` at its
defaults, and dynamic-config-py with 1 and 100 watched configs.

Step table: for ``step_ms`` 5, 10 (default), 20, 50, the engine's write → visible latency
(in-place writes) and its idle cost with one reloader.

    python benchmarks/idle.py [--quick] [--window S] [--json out.json]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import watchfiles
from _common import (
    Bench,
    cpu_seconds,
    doc,
    has_module,
    os_threads,
    parser,
    quiet_logs,
    summary,
    thread_switches,
    wakeups,
    write_results,
)
from prometheus_client import CollectorRegistry

from hotreload import FileSource, HotReloader
from hotreload.testing import write_in_place


def make_paths(root: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        directory = root / f"d{i % 100}"
        directory.mkdir(exist_ok=True)
        path = directory / f"c{i}.yaml"
        path.write_text(doc(i))
        paths.append(path)
    return paths


async def idle_window(window: float) -> dict[str, Any]:
    await asyncio.sleep(0.3 if window < 5 else 2.0)  # start-up work is not idle cost
    cpu0, woke0, per_thread0 = cpu_seconds(), wakeups(), thread_switches()
    t0 = time.perf_counter()
    await asyncio.sleep(window)
    elapsed = time.perf_counter() - t0
    cpu, woke, per_thread1 = cpu_seconds() - cpu0, wakeups() - woke0, thread_switches()
    scale = 60 / elapsed
    busiest = sorted(
        ((k, v - per_thread0.get(k, 0)) for k, v in per_thread1.items()), key=lambda kv: -kv[1]
    )[:4]
    return {
        "window_s": round(elapsed, 2),
        "cpu_ms_per_min": round(cpu * 1000 * scale, 1),
        "core_percent": round(cpu / elapsed * 100, 3),
        "wakeups_per_min": round(woke * scale),
        "threads": os_threads(),
        "busiest_threads_wakeups_per_min": {k: round(v * scale) for k, v in busiest},
    }


async def engine_idle(
    n: int, step: int, window: float, samples: int, poll_delay_ms: int | None = None
) -> dict[str, Any]:
    """``poll_delay_ms``: polling forced at that period (None: inotify)."""
    with tempfile.TemporaryDirectory(prefix="hotreload-idle-") as tmp:
        paths = make_paths(Path(tmp), n)
        registry = CollectorRegistry()
        polling: dict[str, Any] = (
            {"force_polling": False}
            if poll_delay_ms is None
            else {"force_polling": True, "poll_delay_ms": poll_delay_ms}
        )
        async with contextlib.AsyncExitStack() as stack:
            reloaders = [
                await stack.enter_async_context(
                    HotReloader(
                        FileSource(p, step_ms=step, **polling),
                        schema=Bench,
                        name=f"r{i}",
                        registry=registry,
                    )
                )
                for i, p in enumerate(paths)
            ]
            out = await idle_window(window)
            if samples:
                out["latency"] = await latency(reloaders[0], paths[0], samples)
            return out


async def latency(reloader: HotReloader[Bench], path: Path, samples: int) -> dict[str, Any]:
    rng = random.Random(5)
    got: list[float] = []
    for i in range(1, samples + 2):
        await asyncio.sleep(rng.uniform(0, 0.06))
        write_in_place(path, doc(i))
        written = time.perf_counter()
        while reloader.config.value != i:
            await asyncio.sleep(0)
        if i > 1:
            got.append(time.perf_counter() - written)
    return {k: v for k, v in summary(got).items() if k != "mean_ms"}


async def empty_idle(window: float) -> dict[str, Any]:
    return await idle_window(window)


async def awatch_idle(window: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hotreload-idle-") as tmp:
        stop = asyncio.Event()

        async def watch() -> None:
            async for _ in watchfiles.awatch(tmp, stop_event=stop):
                pass

        task = asyncio.create_task(watch())
        out = await idle_window(window)
        stop.set()
        await task
        return out


async def dynamic_config_idle(n: int, window: float) -> dict[str, Any]:
    from dynamic_config import DynamicConfig

    with tempfile.TemporaryDirectory(prefix="hotreload-idle-dc-") as tmp:
        held = []
        for p in make_paths(Path(tmp), n):
            config = DynamicConfig(Bench, key="").whole_document().file(str(p))
            await config.init_async()
            held.append((config, await config.watch_async()))
        return await idle_window(window)


def child(kind: str, n: int, step: int, window: float, samples: int) -> None:
    quiet_logs()
    if kind == "engine":
        result = asyncio.run(engine_idle(n, step, window, samples))
    elif kind.startswith("polling_"):  # polling_<poll_delay_ms>
        delay = int(kind.removeprefix("polling_"))
        result = asyncio.run(engine_idle(n, step, window, samples, poll_delay_ms=delay))
    elif kind == "empty":
        result = asyncio.run(empty_idle(window))
    elif kind == "awatch":
        result = asyncio.run(awatch_idle(window))
    else:
        result = asyncio.run(dynamic_config_idle(n, window))
    print(json.dumps(result), flush=True)
    os._exit(0)  # dynamic-config's watcher threads are not joined by stop()


def run_child(kind: str, n: int, window: float, step: int = 10, samples: int = 0) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(n), str(step), str(window), str(samples)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"child exited {proc.returncode}: {proc.stderr[-500:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    print(kind, n, step, result, file=sys.stderr)
    return result


def main() -> None:
    p = parser(__doc__, "idle")
    p.add_argument("--child", nargs=5, default=None, help="(internal)")
    p.add_argument("--window", type=float, default=None, help="seconds per idle window")
    args = p.parse_args()
    if args.child:
        kind, n, step, window, samples = args.child
        child(kind, int(n), int(step), float(window), int(samples))
        return
    window = args.window or (0.6 if args.quick else 10.0)
    results: dict[str, Any] = {"idle": {}, "step_table": {}}
    idle = results["idle"]
    idle["empty_asyncio_loop"] = run_child("empty", 0, window)
    idle["engine_1"] = {}  # filled from the step table's step-10 row, below
    idle["engine_100"] = run_child("engine", 100, window)  # engine_1: from the step table
    polled = ((300, 100),) if args.quick else ((300, 1), (300, 100), (100, 1), (100, 100))
    for delay, n in polled:
        idle[f"engine_polling_{delay}_{n}"] = run_child(f"polling_{delay}", n, window)
    idle["raw_awatch_default_1"] = run_child("awatch", 1, window)
    if has_module("dynamic_config"):
        idle["dynamic_config_1"] = run_child("dynamic_config", 1, window)
        idle["dynamic_config_100"] = run_child("dynamic_config", 100, window)
    else:
        idle["dynamic_config"] = {
            "skipped": "dynamic_config is not installed (pip install -e '.[bench]')"
        }
    samples = 10 if args.quick else 100
    for step in (5, 10, 20, 50):
        results["step_table"][f"step_{step}"] = run_child(
            "engine", 1, window, step=step, samples=samples
        )
    # One reloader at the default step is the step-10 row: the same child, not run twice.
    idle["engine_1"] = {k: v for k, v in results["step_table"]["step_10"].items() if k != "latency"}
    write_results("idle", args, results)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
