"""Several workers: from one write to every worker process answering the new ``config_hash``.

Real servers serve the demo app (``hotreload._demo:create_app``) on 127.0.0.1: ``uvicorn
--workers 1`` (the baseline, same run), ``uvicorn --workers 2`` and, when gunicorn is installed,
gunicorn with ``uvicorn.workers.UvicornWorker`` and 2 workers. Each sample writes the file once
(temp + rename) and polls ``GET /-/config`` with a few concurrent requests (a new connection
each, so every worker is reached) until every worker, told apart by ``pid``, answers the new
hash. The sample runs from the end of the write to that moment: an upper bound, since it
includes the polling's own round trips. No cross-process coordination exists: each worker's
watcher sees the write on its own.

    python benchmarks/workers.py [--quick] [--samples N] [--json out.json]
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import parser, summary, write_results

# The server processes and the client are the e2e tests' own (tests/e2e/processes.py), so the
# benchmark measures exactly what tests/e2e/test_workers.py proves converges.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hotreload._demo import DEMO_CONFIG
from hotreload.testing import write_atomic
from tests.e2e import processes

BATCH = 6


Argv = Callable[[int, int], list[str]]


def servers() -> dict[str, tuple[Argv, int]]:
    out: dict[str, tuple[Argv, int]] = {
        "uvicorn_1_worker": (processes.uvicorn_argv, 1),
        "uvicorn_2_workers": (processes.uvicorn_argv, 2),
    }
    if importlib.util.find_spec("gunicorn") is not None:
        out["gunicorn_2_workers"] = (processes.gunicorn_argv, 2)
    return out


async def measure(
    argv: Callable[[int, int], list[str]], workers: int, samples: int, root: Path
) -> dict[str, Any]:
    config = root / "config.yaml"
    config.write_text(DEMO_CONFIG)
    port = processes.free_port()
    rng = random.Random(7)
    took: list[float] = []
    with processes.run_server(argv(port, workers), config, port, root / "server.log") as server:
        async with processes.client(server) as http:

            async def latest() -> dict[int, str]:
                reports = await asyncio.gather(
                    *(processes.config_report(http, server) for _ in range(BATCH))
                )
                return {int(r["pid"]): str(r["config_hash"]) for r in reports}

            seen: dict[int, str] = {}
            while len(seen) < workers:  # every worker up and answering
                seen.update(await latest())
            for i in range(1, samples + 1):
                await asyncio.sleep(rng.uniform(0, 0.025))  # writes at every phase of the step
                old = set(seen.values())
                write_atomic(config, DEMO_CONFIG.replace("model: gpt-4", f"model: gpt-4-{i}"))
                written = time.perf_counter()
                seen = {}
                while len(seen) < workers or set(seen.values()) & old:
                    seen.update(await latest())
                took.append(time.perf_counter() - written)
                if len(set(seen.values())) != 1:
                    raise AssertionError(f"workers disagree after converging: {seen}")
    return {**summary(took), "workers": workers, "samples_s": [round(t, 6) for t in took]}


async def run(samples: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, (argv, workers) in servers().items():
        with tempfile.TemporaryDirectory(prefix="hotreload-workers-") as tmp:
            results[name] = await measure(argv, workers, samples, Path(tmp))
        print(name, {k: v for k, v in results[name].items() if k != "samples_s"}, flush=True)
    return results


def main() -> None:
    p = parser(__doc__, "workers")
    p.add_argument("--samples", type=int, default=None, help="writes per server (30; quick 3)")
    args = p.parse_args()
    samples = args.samples or (3 if args.quick else 30)
    write_results("workers", args, asyncio.run(run(samples)))


if __name__ == "__main__":
    main()
