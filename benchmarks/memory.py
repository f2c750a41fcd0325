"""Memory per watcher: RSS and tracemalloc growth, OS threads and inotify instances per
additional reloader at N = 1, 10, 100, 1000, beside dynamic-config-py's figures.

Each (contender, N) runs in a fresh child process: one reloader is opened first so imports,
the watcher hub and metric families are paid before the counters are read, then N more are
opened and the growth is divided by N. RSS and tracemalloc are measured in separate children
(tracemalloc's own bookkeeping would inflate RSS). tracemalloc sees only Python allocations:
dynamic-config-py keeps its state in Rust, so for it RSS is the figure that counts. A second
tracemalloc child groups the engine's growth by allocation traceback: where the bytes go.

dynamic-config-py is used as an asyncio service would: ``init_async()``, ``watch_async()`` at
the default debounce, and (``dynamic_config_async``) one ``changes()`` consumer task each.
It stops at the per-user inotify limit (128 by default); the row then says where it failed.

    python benchmarks/memory.py [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import (
    Bench,
    has_module,
    inotify_instances,
    os_threads,
    parser,
    quiet_logs,
    rss_bytes,
    write_results,
)
from prometheus_client import CollectorRegistry

from hotreload import HotReloader

TRACE_DEPTH = 30


def make_paths(root: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        directory = root / f"d{i % 100}"
        directory.mkdir(exist_ok=True)
        path = directory / f"c{i}.yaml"
        path.write_text(f"value: {i}\n")  # a tiny config: the engine's cost, not the payload's
        paths.append(path)
    return paths


def counters() -> dict[str, float]:
    gc.collect()
    return {
        "rss": rss_bytes(),
        "threads": os_threads(),
        "inotify": inotify_instances(),
        "t": time.perf_counter(),
    }


def growth(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, Any]:
    return {
        "rss_kb_per_reloader": round((after["rss"] - before["rss"]) / n / 1024, 2),
        "threads_per_reloader": round((after["threads"] - before["threads"]) / n, 3),
        "inotify_per_reloader": round((after["inotify"] - before["inotify"]) / n, 3),
        "threads_in_process": int(after["threads"]),
        "inotify_in_process": int(after["inotify"]),
        "startup_ms_per_reloader": round((after["t"] - before["t"]) / n * 1000, 3),
    }


def short(frame: tracemalloc.Frame) -> str:
    parts = frame.filename.split("/")
    return f"{'/'.join(parts[-2:])}:{frame.lineno}"


def buckets(trace: tracemalloc.Traceback) -> tuple[str, str, str]:
    """(innermost hotreload line, that line -> the allocating line, allocating package)."""
    frames = list(trace)[::-1]  # most recent first
    ours = next((f for f in frames if "/hotreload/" in f.filename), None)
    line = short(ours) if ours else "(outside hotreload)"
    inner = frames[0] if frames else None
    package = "python"
    if inner is not None:
        for marker in (
            "prometheus_client",
            "anyio",
            "asyncio",
            "msgspec",
            "structlog",
            "hotreload",
        ):
            if f"/{marker}/" in inner.filename:
                package = marker
                break
    return line, f"{line} -> {short(inner) if inner else '?'}", package


async def engine_child(n: int, mode: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hotreload-mem-") as tmp:
        paths = make_paths(Path(tmp), n + 1)
        registry = CollectorRegistry()
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(
                HotReloader(paths[0], schema=Bench, name="warm", registry=registry)
            )
            if mode != "rss":
                tracemalloc.start(TRACE_DEPTH if mode == "breakdown" else 1)
            before = counters()
            snap0 = tracemalloc.take_snapshot() if mode == "breakdown" else None
            traced0 = tracemalloc.get_traced_memory()[0] if mode != "rss" else 0
            for i, path in enumerate(paths[1:]):
                await stack.enter_async_context(
                    HotReloader(path, schema=Bench, name=f"r{i}", registry=registry)
                )
            opened = time.perf_counter()
            await asyncio.sleep(0.2)  # a replaced watcher thread finishes stopping
            after = {**counters(), "t": opened}
            out: dict[str, Any] = {"n": n}
            if mode == "rss":
                out.update(growth(before, after, n))
                return out
            out["tracemalloc_kb_per_reloader"] = round(
                (tracemalloc.get_traced_memory()[0] - traced0) / n / 1024, 2
            )
            if snap0 is not None:
                snap1 = tracemalloc.take_snapshot()
                lines: dict[str, int] = defaultdict(int)
                sites: dict[str, int] = defaultdict(int)
                packages: dict[str, int] = defaultdict(int)
                for stat in snap1.compare_to(snap0, "traceback"):
                    line, site, package = buckets(stat.traceback)
                    lines[line] += stat.size_diff
                    sites[site] += stat.size_diff
                    packages[package] += stat.size_diff

                def ranked(groups: dict[str, int], top: int) -> dict[str, int]:
                    best = sorted(groups.items(), key=lambda kv: -kv[1])[:top]
                    return {k: round(v / n) for k, v in best if v / n >= 16}

                out["by_hotreload_line_bytes_per_reloader"] = ranked(lines, 80)
                out["by_allocation_site_bytes_per_reloader"] = ranked(sites, 30)
                out["by_package_bytes_per_reloader"] = ranked(packages, 10)
            tracemalloc.stop()
            return out


async def dynamic_config_child(n: int, mode: str, consumers: bool) -> dict[str, Any]:
    from dynamic_config import DynamicConfig

    with tempfile.TemporaryDirectory(prefix="hotreload-mem-dc-") as tmp:
        paths = make_paths(Path(tmp), n + 1)
        held: list[Any] = []
        tasks: list[asyncio.Task[None]] = []

        async def consume(config: Any) -> None:
            async for _ in config.changes():
                pass

        async def open_one(path: Path) -> None:
            config = DynamicConfig(Bench, key="").whole_document().file(str(path))
            await config.init_async()
            watch = await config.watch_async()
            held.append((config, watch))
            if consumers:
                tasks.append(asyncio.create_task(consume(config)))
                await asyncio.sleep(0)  # let it subscribe (starts the notifier thread)

        await open_one(paths[0])
        await asyncio.sleep(0.05)
        if mode != "rss":
            tracemalloc.start(1)
        before = counters()
        traced0 = tracemalloc.get_traced_memory()[0] if mode != "rss" else 0
        out: dict[str, Any] = {"n": n}
        opened = 0
        try:
            for path in paths[1:]:
                await open_one(path)
                opened += 1
        except Exception as exc:  # noqa: BLE001 - where it stops is the result
            out["failed_at_config"] = opened + 2  # the warm one counts
            out["error"] = f"{type(exc).__name__}: {exc}"
        finished = time.perf_counter()
        await asyncio.sleep(0.05)  # threads spawned by the last watch are counted
        after = {**counters(), "t": finished}
        if opened:
            if mode == "rss":
                out.update(growth(before, after, opened))
            else:
                out["tracemalloc_kb_per_reloader"] = round(
                    (tracemalloc.get_traced_memory()[0] - traced0) / opened / 1024, 2
                )
        out["opened"] = opened
        for task in tasks:
            task.cancel()
        for _config, watch in held:
            watch.stop()
        # Watch.stop() does not join its threads: leave without waiting on them.
        return out


def child(contender: str, n: int, mode: str) -> None:
    quiet_logs()
    if contender == "engine":
        result = asyncio.run(engine_child(n, mode))
    else:
        result = asyncio.run(
            dynamic_config_child(n, mode, consumers=contender == "dynamic_config_async")
        )
    print(json.dumps(result), flush=True)
    os._exit(0)  # dynamic-config's unjoined watcher threads must not hold the exit


def run_child(contender: str, n: int, mode: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", contender, str(n), mode],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"n": n, "error": f"child exited {proc.returncode}: {proc.stderr[-500:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main() -> None:
    p = parser(__doc__, "memory")
    p.add_argument("--child", nargs=3, default=None, help=argparse_hidden())
    p.add_argument("--counts", type=int, nargs="+", default=None)
    args = p.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    counts = args.counts or ([100] if args.quick else [1, 10, 100, 1000])
    contenders = ["engine"]
    results: dict[str, Any] = {}
    if has_module("dynamic_config"):
        contenders += ["dynamic_config", "dynamic_config_async"]
    else:
        results["dynamic_config"] = {
            "skipped": "dynamic_config is not installed (pip install -e '.[bench]')"
        }
    for contender in contenders:
        rows = []
        for n in counts:
            row = run_child(contender, n, "rss")
            row.update({k: v for k, v in run_child(contender, n, "traced").items() if k != "n"})
            rows.append(row)
            print(contender, row, file=sys.stderr)
        results[contender] = rows
    breakdown_n = 20 if args.quick else 300
    results["engine_breakdown"] = run_child("engine", breakdown_n, "breakdown")
    write_results("memory", args, results)
    print(json.dumps(results, indent=1))


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
