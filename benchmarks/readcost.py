"""Read path: ns per ``reloader.config`` read against a plain attribute, a lock-guarded read and
dynamic-config-py's ``current()``, from 1 and from 4 threads at once.

Each figure is wall time over total reads with the ``for`` loop's own cost (timing ``pass``)
subtracted, so ratios compare the reads themselves. With 4 threads the figure is wall time
over the reads of all four: under the GIL a read that does not slow down with threads keeps
the same ns per read; a contended lock gets slower.

    python benchmarks/readcost.py [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
import timeit
from pathlib import Path
from typing import Any

from _common import Bench, doc, has_module, parser, quiet_logs, write_results
from prometheus_client import CollectorRegistry

from hotreload import HotReloader


class Holder:
    def __init__(self) -> None:
        self.value = Bench(1)
        self.lock = threading.Lock()

    def locked(self) -> Bench:
        with self.lock:
            return self.value


def per_read_ns(stmt: str, env: dict[str, Any], number: int, threads: int) -> float:
    """Wall ns per read over ``threads`` threads each doing ``number`` reads."""
    timer = timeit.Timer(stmt, globals=env)
    barrier = threading.Barrier(threads)
    spans: list[tuple[float, float]] = []

    def work() -> None:
        barrier.wait()
        started = time.perf_counter()
        timer.timeit(number)
        spans.append((started, time.perf_counter()))

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return wall / (number * threads) * 1e9


def best_of(stmt: str, env: dict[str, Any], number: int, threads: int, repeat: int) -> float:
    return min(per_read_ns(stmt, env, number, threads) for _ in range(repeat))


async def measure(number: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_text(doc(1))
        holder = Holder()
        async with HotReloader(path, schema=Bench, name="read", registry=CollectorRegistry()) as r:
            env: dict[str, Any] = {"r": r, "h": holder}
            stmts = {
                "plain_attribute": "h.value",
                "reloader_config": "r.config",
                "lock_guarded": "h.locked()",
            }
            config = None
            if has_module("dynamic_config"):
                from dynamic_config import DynamicConfig

                config = DynamicConfig(Bench, key="").whole_document().file(str(path))
                config.init()
                env["dc"] = config
                stmts["dynamic_config_current"] = "dc.current()"
            out: dict[str, Any] = {}
            for threads in (1, 4):
                loop_ns = best_of("pass", env, number, threads, repeat)
                row = {"loop_overhead_ns": round(loop_ns, 2)}
                for name, stmt in stmts.items():
                    gross = best_of(stmt, env, number, threads, repeat)
                    row[f"{name}_ns"] = round(gross - loop_ns, 2)
                plain = row["plain_attribute_ns"]
                for name in stmts:
                    row[f"{name}_vs_plain"] = round(row[f"{name}_ns"] / plain, 2)
                out[f"threads_{threads}"] = row
            if not has_module("dynamic_config"):
                out["dynamic_config_current"] = {
                    "skipped": "dynamic_config is not installed (pip install -e '.[bench]')"
                }
    for name in ("plain_attribute", "reloader_config", "lock_guarded"):
        one, four = out["threads_1"][f"{name}_ns"], out["threads_4"][f"{name}_ns"]
        out.setdefault("slowdown_4_threads_vs_1", {})[name] = round(four / one, 2)
    return out


def main() -> None:
    p = parser(__doc__, "readcost")
    p.add_argument("--number", type=int, default=None, help="reads per thread per repeat")
    args = p.parse_args()
    quiet_logs()
    number = args.number or (200_000 if args.quick else 2_000_000)
    repeat = 3 if args.quick else 5
    results = asyncio.run(measure(number, repeat))
    write_results("readcost", args, results)
    for key, row in results.items():
        print(key, row)


if __name__ == "__main__":
    main()
