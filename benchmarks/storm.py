"""Reload storm: 10,000 writes to one file within a second.

A writer *process* (so its CPU is not ours) writes values 1..10000 paced over one second;
this process runs the contender and counts, from the writer's start until the last value is
visible and nothing more happens for 0.3 s: commits, re-checks (the engine's outcomes, by
result), CPU time of the whole process and its wake-ups, and whether the final config equals
the last write. Baselines in the same run: raw ``watchfiles.awatch(debounce=50, step=10)``
(event batches delivered, no parse) and dynamic-config-py at its default debounce.

    python benchmarks/storm.py [--quick] [--writes N] [--json out.json]
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import watchfiles
from _common import (
    Bench,
    cpu_seconds,
    doc,
    has_module,
    parser,
    quiet_logs,
    scratch_dir,
    wakeups,
    write_results,
)
from prometheus_client import CollectorRegistry

from hotreload import HotReloader

WRITER = """
import os, sys, time
path, count, seconds, style = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
tmp = path + ".tmp"
pad = "x" * 2000
flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
def write(path, text):
    target = tmp if style == "rename" else path
    fd = os.open(target, flags, 0o644)
    os.write(fd, text.encode())
    os.close(fd)
    if style == "rename":
        os.replace(tmp, path)
start = time.perf_counter()
for i in range(1, count + 1):
    due = start + seconds * i / count
    while time.perf_counter() < due:
        pass
    write(path, f"value: {i}\\npadding: {pad}\\n")
print(time.perf_counter() - start)
"""

QUIET_S = 0.3


class Probe:
    def __init__(self, value: Callable[[], int], commits: Callable[[], int]) -> None:
        self.value = value
        self.commits = commits
        self.extra: dict[str, Any] = {}


@contextlib.asynccontextmanager
async def engine(path: Path) -> AsyncIterator[Probe]:
    async with HotReloader(path, schema=Bench, name="storm", registry=CollectorRegistry()) as r:
        first = r.snapshot.generation
        results: collections.Counter[str] = collections.Counter()
        outcomes = r.outcomes()

        async def count() -> None:
            async for outcome in outcomes:
                results[outcome.result.value] += 1

        task = asyncio.create_task(count())
        probe = Probe(lambda: r.config.value, lambda: r.snapshot.generation - first)
        probe.extra["rechecks_by_result"] = results
        try:
            yield probe
        finally:
            task.cancel()


@contextlib.asynccontextmanager
async def raw_awatch(path: Path) -> AsyncIterator[Probe]:
    state = {"batches": 0, "changes": 0}
    stop = asyncio.Event()

    async def watch() -> None:
        async for changes in watchfiles.awatch(
            path.parent, debounce=50, step=10, stop_event=stop, recursive=False
        ):
            state["batches"] += 1
            state["changes"] += len(changes)

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.2)  # the watcher thread starts
    probe = Probe(lambda: -1, lambda: state["batches"])
    probe.extra = state
    try:
        yield probe
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def dynamic_config(path: Path) -> AsyncIterator[Probe]:
    from dynamic_config import DynamicConfig

    config = DynamicConfig(Bench, key="").whole_document().file(str(path))
    await config.init_async()
    installs = [0]
    hook = config.on_reload(lambda old, new: installs.__setitem__(0, installs[0] + 1))
    first = installs[0]
    watch = await config.watch_async()
    try:
        yield Probe(lambda: config.current().value, lambda: installs[0] - first)
    finally:
        watch.stop()
        hook.close()


async def storm(
    contender: Callable[[Path], contextlib.AbstractAsyncContextManager[Probe]],
    style: str,
    writes: int,
    root: Path,
) -> dict[str, Any]:
    directory = root / f"{contender.__name__}-{style}"
    directory.mkdir()
    path = directory / "config.yaml"
    path.write_text(doc(0))
    async with contender(path) as probe:
        cpu0, ctx0, t0 = cpu_seconds(), wakeups(), time.perf_counter()
        writer = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            str(path),
            str(writes),
            "1.0",
            style,
            stdout=subprocess.PIPE,
        )
        out, _ = await writer.communicate()
        written_at = time.perf_counter()
        final_seen: float | None = None
        deadline = written_at + 10
        last = probe.commits()
        quiet_since = time.perf_counter()
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            if final_seen is None and probe.value() == writes:
                final_seen = now
            if probe.commits() != last:
                last, quiet_since = probe.commits(), now
            if (final_seen is not None or probe.value() == -1) and now - quiet_since > QUIET_S:
                break
        cpu = cpu_seconds() - cpu0
        woken = wakeups() - ctx0
        elapsed = time.perf_counter() - t0
        result: dict[str, Any] = {
            "style": style,
            "writes": writes,
            "writer_seconds": round(float(out.decode().strip() or "nan"), 3),
            "commits": probe.commits(),
            "final_equals_last_write": probe.value() == writes if probe.value() != -1 else None,
            "last_visible_after_writer_ms": (
                round((final_seen - written_at) * 1000, 1) if final_seen else None
            ),
            "cpu_ms": round(cpu * 1000, 1),
            "cpu_us_per_write": round(cpu / writes * 1e6, 2),
            "wakeups": woken,
            "window_s": round(elapsed, 2),
            **{
                k: dict(v) if isinstance(v, collections.Counter) else v
                for k, v in probe.extra.items()
            },
        }
    return result


async def run(writes: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hotreload-storm-", dir=scratch_dir()) as tmp:
        root = Path(tmp)
        results["raw_awatch_50_10"] = await storm(raw_awatch, "in_place", writes, root)
        for style in ("in_place", "rename"):
            results[f"engine_{style}"] = await storm(engine, style, writes, root)
        if has_module("dynamic_config"):
            results["dynamic_config_default"] = await storm(
                dynamic_config, "in_place", writes, root
            )
        else:
            results["dynamic_config_default"] = {
                "skipped": "dynamic_config is not installed (pip install -e '.[bench]')"
            }
    raw_cpu = results["raw_awatch_50_10"]["cpu_ms"]
    for row in results.values():
        if "cpu_ms" in row and raw_cpu:
            row["cpu_vs_raw_awatch"] = round(row["cpu_ms"] / raw_cpu, 2)
    return results


def main() -> None:
    p = parser(__doc__, "storm")
    p.add_argument("--writes", type=int, default=10_000)
    args = p.parse_args()
    quiet_logs()
    results = asyncio.run(run(args.writes))
    write_results("storm", args, results)
    for name, row in results.items():
        print(f"{name:24} {row}")


if __name__ == "__main__":
    main()
