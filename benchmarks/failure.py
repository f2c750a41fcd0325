"""Failure path: ``record_failure`` calls per second, from the loop and from 4 threads, and the
duration of the forced re-check that ``failure_threshold`` consecutive failures trigger.

Rates: the caller's cost (calls per second while calling) and the throughput until the failure
actor has handled every call (``await reloader.failures_settled()``). Baselines in the same
run: the cheapest hand-offs there are, ``deque.append`` of the same tuple on the loop and
``queue.SimpleQueue.put`` from threads. Toolset names cycle over 50 so the ledger stays small.

Forced re-check: the third failure of a fresh toolset (default threshold 3) is recorded; the
sample is the time until the outcome with trigger ``auto_reload`` is published. Baseline: the
duration of ``await reloader.reload()`` (a manual re-check of the same unchanged file).

    python benchmarks/failure.py [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import collections
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import Bench, doc, parser, quiet_logs, summary, write_results
from prometheus_client import CollectorRegistry

from hotreload import HotReloader, ReloadOutcome

TOOLSETS = [f"toolset-{i}" for i in range(50)]
THREADS = 4


def threaded(call: Any, calls: int) -> float:
    """Wall seconds for THREADS threads making ``calls`` calls each."""
    barrier = threading.Barrier(THREADS)
    spans: list[tuple[float, float]] = []

    def work() -> None:
        names = TOOLSETS
        barrier.wait()
        started = time.perf_counter()
        for i in range(calls):
            call(names[i % 50], "ConnectionError", "refused")
        spans.append((started, time.perf_counter()))

    pool = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return max(e for _, e in spans) - min(s for s, _ in spans)


async def rates(r: HotReloader[Bench], calls: int) -> dict[str, Any]:
    sink: collections.deque[tuple[str, str, str]] = collections.deque()

    def append(toolset: str, error_type: str, message: str) -> None:
        sink.append((toolset, error_type, message))

    out: dict[str, Any] = {}
    for label, call in (("deque_append_baseline", append), ("record_failure", r.record_failure)):
        started = time.perf_counter()
        for i in range(calls):
            call(TOOLSETS[i % 50], "ConnectionError", "refused")
        called = time.perf_counter() - started
        if label == "record_failure":
            await r.failures_settled()
        settled = time.perf_counter() - started
        out[f"loop_{label}"] = {
            "calls_per_s": round(calls / called),
            "ns_per_call": round(called / calls * 1e9, 1),
            "handled_per_s": round(calls / settled),
        }
        sink.clear()
    out["loop_record_failure"]["vs_baseline"] = round(
        out["loop_record_failure"]["ns_per_call"]
        / out["loop_deque_append_baseline"]["ns_per_call"],
        2,
    )
    shared: queue.SimpleQueue[tuple[str, str, str]] = queue.SimpleQueue()

    def put(toolset: str, error_type: str, message: str) -> None:
        shared.put((toolset, error_type, message))

    per_thread = max(1, calls // THREADS)
    total = per_thread * THREADS
    for label, call in (("simplequeue_put_baseline", put), ("record_failure", r.record_failure)):
        started = time.perf_counter()
        wall = await asyncio.to_thread(threaded, call, per_thread)
        if label == "record_failure":
            await r.failures_settled()
        settled = time.perf_counter() - started
        out[f"threads{THREADS}_{label}"] = {
            "calls_per_s": round(total / wall),
            "ns_per_call": round(wall / total * 1e9, 1),
            "handled_per_s": round(total / settled),
        }
    out[f"threads{THREADS}_record_failure"]["vs_baseline"] = round(
        out[f"threads{THREADS}_record_failure"]["ns_per_call"]
        / out[f"threads{THREADS}_simplequeue_put_baseline"]["ns_per_call"],
        2,
    )
    return out


async def forced_recheck(r: HotReloader[Bench], samples: int) -> dict[str, Any]:
    forced: list[float] = []
    manual: list[float] = []
    results: collections.Counter[str] = collections.Counter()
    for i in range(samples):
        toolset = f"forced-{i}"  # a fresh toolset: its cooldown has never started
        for _ in range(2):
            r.record_failure(toolset, "ConnectionError", "refused")
        await r.failures_settled()
        waiter = asyncio.create_task(
            r.wait_for_outcome(lambda o: o.trigger == "auto_reload", timeout=5)
        )
        await asyncio.sleep(0)  # the waiter is subscribed from here on
        started = time.perf_counter()
        r.record_failure(toolset, "ConnectionError", "refused")
        outcome: ReloadOutcome = await waiter
        forced.append(time.perf_counter() - started)
        results[outcome.result.value] += 1
        started = time.perf_counter()
        await r.reload()
        manual.append(time.perf_counter() - started)
    out: dict[str, Any] = {
        "third_failure_to_outcome": summary(forced),
        "manual_reload_baseline": summary(manual),
        "results": dict(results),
    }
    out["p50_vs_manual"] = round(
        out["third_failure_to_outcome"]["p50_ms"] / out["manual_reload_baseline"]["p50_ms"], 2
    )
    return out


async def run(calls: int, samples: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hotreload-fail-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(doc(1))
        async with HotReloader(
            path, schema=Bench, name="failures", registry=CollectorRegistry()
        ) as r:
            out = await rates(r, calls)
            out["forced_recheck"] = await forced_recheck(r, samples)
            return out


def main() -> None:
    p = parser(__doc__, "failure")
    p.add_argument("--calls", type=int, default=None)
    args = p.parse_args()
    quiet_logs()
    calls = args.calls or (20_000 if args.quick else 200_000)
    samples = 30 if args.quick else 300
    results = asyncio.run(run(calls, samples))
    write_results("failure", args, results)
    for name, row in results.items():
        print(f"{name:40} {row}")


if __name__ == "__main__":
    main()
