"""Probation (issue 25): how soon a condemned commit is rolled back, and what probation costs
a commit that passes.

* **N-th failure → rollback**: a reloader with ``Probation(window=60.0, failures=3)``
  (``watch=False``, a real file on tmpfs) commits a new version through ``reload()``; a
  dependency healthy at the commit fails twice (handled: ``failures_settled()``), then the
  sample is the time from the third ``record_failure`` to the outcome with trigger
  ``rollback``. Beside it, in the same runs, the ``reload()`` that committed the version:
  the rollback is a commit of the same size. Every run commits a fresh version (the last one
  is quarantined) and blames a fresh dependency.
* **the cost on a commit that passes**: CPU per change (``time.process_time``) through
  ``reload()``, the file rewritten between two valid versions before each call, for one
  reloader with ``probation=Probation()`` and one without, side by side in the same run.
  Rounds alternate (and alternate which goes first); the figure is the median of the
  per-round ratios, with the ratio of the best rounds beside it. Configs: the 2-key benchmark
  config and the Holmes demo config, as in ``hotpath.py``.

    python benchmarks/probation.py [--quick | --smoke] [--json out.json]

``--smoke`` is for the test suite: a run or two of each, numbers meaningless.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import Bench, doc, parser, quiet_logs, scratch_dir, summary, write_results
from prometheus_client import CollectorRegistry

from hotreload import HotReloader, Probation, ReloadOutcome
from hotreload._demo import DEMO_CONFIG
from hotreload.holmes import create_reloader

WINDOW, FAILURES = 60.0, 3


def is_rollback(outcome: ReloadOutcome) -> bool:
    return outcome.trigger == "rollback"


async def to_rollback(runs: int) -> dict[str, Any]:
    """Time from the ``FAILURES``-th consecutive failure to the rollback's outcome."""
    rollback: list[float] = []
    commit: list[float] = []
    with tempfile.TemporaryDirectory(dir=scratch_dir()) as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(doc(0))
        reloader = HotReloader(
            path,
            schema=Bench,
            name="probation",
            registry=CollectorRegistry(),
            watch=False,
            probation=Probation(window=WINDOW, failures=FAILURES),
        )
        async with reloader as r:
            for i in range(1, runs + 1):
                before = r.snapshot
                path.write_text(doc(i))
                started = time.perf_counter()
                committed = await r.reload()
                commit.append(time.perf_counter() - started)
                assert committed.applied, committed
                assert r.probation_report() is not None
                dependency = f"dependency-{i}"
                for _ in range(FAILURES - 1):
                    r.record_failure(dependency, "ConnectError", "connection refused")
                await r.failures_settled()
                assert r.snapshot.generation == committed.generation  # not condemned yet
                waiter = asyncio.create_task(r.wait_for_outcome(is_rollback, timeout=5))
                await asyncio.sleep(0)  # the waiter is subscribed from here on
                started = time.perf_counter()
                r.record_failure(dependency, "ConnectError", "connection refused")
                outcome = await waiter
                rollback.append(time.perf_counter() - started)
                assert outcome.applied, outcome
                assert outcome.config_hash == before.config_hash, outcome
            quarantined = len(r.quarantined)
    out: dict[str, Any] = {
        "failure_to_rollback": summary(rollback),
        "commit_baseline": summary(commit),
        "quarantined": quarantined,
        "window_s": WINDOW,
        "failures": FAILURES,
    }
    out["p50_vs_commit"] = round(
        out["failure_to_rollback"]["p50_ms"] / out["commit_baseline"]["p50_ms"], 2
    )
    return out


Make = Callable[[Path, Probation | None], HotReloader[Any]]


async def overhead(
    versions: tuple[str, str], make: Make, rounds: int, per_round: int
) -> dict[str, Any]:
    """CPU per change with ``Probation()`` against none, interleaved rounds in one run."""
    raws = [v.encode() for v in versions]
    spent: dict[str, list[float]] = {"without": [], "with_probation": []}
    with tempfile.TemporaryDirectory(dir=scratch_dir()) as tmp:
        paths = {name: Path(tmp) / name / "config.yaml" for name in spent}
        for p in paths.values():
            p.parent.mkdir()
            p.write_bytes(raws[0])
        without = make(paths["without"], None)
        probation = make(paths["with_probation"], Probation())
        async with without, probation:
            reloaders = {"without": without, "with_probation": probation}
            counts = dict.fromkeys(spent, 0)
            # One untimed change each: the first trial (and its timer) is set up outside.
            for _ in range(2):
                for name in spent:
                    counts[name] += 1
                    paths[name].write_bytes(raws[counts[name] % 2])
                    assert (await reloaders[name].reload()).applied
            for k in range(rounds):
                order = list(spent) if k % 2 == 0 else list(reversed(spent))
                for name in order:
                    r, path = reloaders[name], paths[name]
                    total = 0.0
                    for _ in range(per_round):
                        counts[name] += 1
                        path.write_bytes(raws[counts[name] % 2])
                        started = time.process_time()
                        outcome = await r.reload()
                        total += time.process_time() - started
                        assert outcome.applied, outcome
                    spent[name].append(total / per_round)
            assert probation.probation_report() is not None  # the last commit is on trial
    ratios = [p / w for p, w in zip(spent["with_probation"], spent["without"], strict=True)]
    return {
        "rounds": rounds,
        "per_round": per_round,
        "without_us_per_change": round(statistics.median(spent["without"]) * 1e6, 1),
        "with_probation_us_per_change": round(statistics.median(spent["with_probation"]) * 1e6, 1),
        "ratio_median": round(statistics.median(ratios), 3),
        "ratio_best": round(min(spent["with_probation"]) / min(spent["without"]), 3),
        "target": 1.05,
    }


async def overheads(rounds: int, per_round: int) -> dict[str, Any]:
    holmes_a = DEMO_CONFIG
    holmes_b = DEMO_CONFIG.replace("model: gpt-4", "model: claude-3-5-sonnet")
    assert holmes_a != holmes_b

    def bench(path: Path, probation: Probation | None) -> HotReloader[Any]:
        return HotReloader(
            path,
            schema=Bench,
            name="bench",
            registry=CollectorRegistry(),
            watch=False,
            probation=probation,
        )

    def holmes(path: Path, probation: Probation | None) -> HotReloader[Any]:
        return create_reloader(
            path, name="holmes", registry=CollectorRegistry(), watch=False, probation=probation
        )

    return {
        "bench_2_keys": await overhead((doc(1), doc(2)), bench, rounds, per_round),
        "holmes_demo": await overhead((holmes_a, holmes_b), holmes, rounds, per_round),
    }


def main() -> None:
    p = parser(__doc__, "probation")
    p.add_argument("--smoke", action="store_true", help="a run or two of each, for the suite")
    args = p.parse_args()
    quiet_logs()
    if args.smoke:
        runs, rounds, per_round = 2, 2, 2
    elif args.quick:
        runs, rounds, per_round = 15, 6, 30
    else:
        runs, rounds, per_round = 50, 20, 50
    results: dict[str, Any] = {
        "rollback": asyncio.run(to_rollback(runs)),
        "pass_overhead": asyncio.run(overheads(rounds, per_round)),
    }
    write_results("probation", args, results)
    print(results)


if __name__ == "__main__":
    main()
