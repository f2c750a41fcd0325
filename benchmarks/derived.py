"""Derived resources: what one costs a commit (the build itself excluded), a request's pin, and
memory.

Commit: two reloaders in one process, on two files with the same ~2 KB config, one of them with
one derived resource that every change rebuilds (``on=("value",)``). Changes alternate between
them, so both see the same machine state; the sample is the outcome's ``duration`` (the
worker's read → parse → build → hooks → swap for that change) minus the time spent inside the
user's ``build`` (measured around it), so what is left is the engine's own cost. The replaced
resource is closed in the background (``aclose``), as in a service.

Pin: ``with reloader.pin_resources():`` enter + exit (what the ASGI middleware adds to every
request), with one derived resource and with none.

Memory: tracemalloc bytes per derived resource for N resources on one running reloader, each
build returning the same shared object (so only the engine's bookkeeping is counted), before
and after one change that rebuilds and swaps all of them.

    python benchmarks/derived.py [--quick] [--samples N] [--memory-n N] [--json out.json]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from _common import Bench, doc, parser, quiet_logs, summary, write_results
from prometheus_client import CollectorRegistry

from hotreload import HotReloader
from hotreload.testing import write_in_place

PIN_CALLS = 100_000


class Client:
    """A resource with an async close, like an HTTP client."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    async def aclose(self) -> None:
        return None


async def commit_cost(
    plain: HotReloader[Bench],
    derived: HotReloader[Bench],
    samples: int,
    build_times: list[float],
    paths: dict[str, Path],
) -> dict[str, Any]:
    durations: dict[str, list[float]] = {"without": [], "with_one_derived": []}
    for i in range(2, samples + 2):
        for label, r in (("without", plain), ("with_one_derived", derived)):
            before = len(build_times)
            write_in_place(paths[label], doc(i))
            await r.wait_for_generation(i, timeout=5)
            outcome = r.last_outcome
            assert outcome is not None
            assert outcome.applied
            built = sum(build_times[before:])
            durations[label].append(outcome.duration - built)
    out: dict[str, Any] = {k: summary(v) for k, v in durations.items()}
    out["p50_overhead_percent"] = round(
        (out["with_one_derived"]["p50_ms"] / out["without"]["p50_ms"] - 1) * 100, 1
    )
    out["mean_overhead_percent"] = round(
        (out["with_one_derived"]["mean_ms"] / out["without"]["mean_ms"] - 1) * 100, 1
    )
    out["build_p50_us_excluded"] = round(sorted(build_times)[len(build_times) // 2] * 1e6, 2)
    return out


def pin_cost(plain: HotReloader[Bench], derived: HotReloader[Bench]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, r in (("no_derived", plain), ("one_derived", derived)):
        started = time.perf_counter()
        for _ in range(PIN_CALLS):
            with r.pin_resources():
                pass
        out[f"{label}_ns"] = round((time.perf_counter() - started) / PIN_CALLS * 1e9, 1)
    return out


async def memory(n: int) -> dict[str, Any]:
    shared = Client(0)
    with tempfile.TemporaryDirectory(prefix="hotreload-derived-mem-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(doc(1))
        async with HotReloader(path, schema=Bench, registry=CollectorRegistry()) as r:
            tracemalloc.start()
            base = tracemalloc.take_snapshot()
            items = [
                r.derive(lambda c: shared, on=("value",), close=lambda _: None, name=f"d{i}")
                for i in range(n)
            ]
            built = tracemalloc.take_snapshot()
            write_in_place(path, doc(2))
            await r.wait_for_generation(2, timeout=10)
            for d in items:
                await d.wait_drained(timeout=10)
            swapped = tracemalloc.take_snapshot()
            tracemalloc.stop()

            def per(snapshot: tracemalloc.Snapshot) -> float:
                diff = snapshot.compare_to(base, "filename")
                return round(sum(s.size_diff for s in diff) / n, 1)

            return {
                "n": n,
                "bytes_per_derived": per(built),
                "bytes_per_derived_after_swap": per(swapped),
            }


async def run(samples: int, n_memory: int) -> dict[str, Any]:
    build_times: list[float] = []

    def build(config: Bench) -> Client:
        started = time.perf_counter()
        client = Client(config.value)
        build_times.append(time.perf_counter() - started)
        return client

    with tempfile.TemporaryDirectory(prefix="hotreload-derived-") as tmp:
        paths = {
            "without": Path(tmp) / "a" / "config.yaml",
            "with_one_derived": Path(tmp) / "b" / "config.yaml",
        }
        for p in paths.values():
            p.parent.mkdir()
            p.write_text(doc(1))
        plain = HotReloader(
            paths["without"], schema=Bench, name="plain", registry=CollectorRegistry()
        )
        derived = HotReloader(
            paths["with_one_derived"], schema=Bench, name="derived", registry=CollectorRegistry()
        )
        derived.derive(build, on=("value",), name="client")
        async with plain, derived:
            out: dict[str, Any] = {
                "commit": await commit_cost(plain, derived, samples, build_times, paths)
            }
            out["pin"] = pin_cost(plain, derived)
    out["memory"] = await memory(n_memory)
    return out


def main() -> None:
    p = parser(__doc__, "derived")
    p.add_argument("--samples", type=int, default=None, help="changes per reloader")
    p.add_argument("--memory-n", type=int, default=None, help="derived resources for memory")
    args = p.parse_args()
    quiet_logs()
    samples = args.samples or (60 if args.quick else 400)
    n_memory = args.memory_n or (200 if args.quick else 1000)
    results = asyncio.run(run(samples, n_memory))
    write_results("derived", args, results)
    for name, row in results.items():
        print(f"{name:10} {row}")


if __name__ == "__main__":
    main()
