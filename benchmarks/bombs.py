"""Alias and merge-key bombs through a real reloader: peak memory and the longest event-loop
stall while each is refused (or accepted), as ratios against a plain file of the same size.

Each bomb is written over the config (atomically) and the sample runs until the reloader has
published the outcome for it; then a plain version is written back. Two measurements per
sample, never together (tracemalloc slows Python several-fold): the worst lateness of a 1 ms
ticker on the loop (the stall; a file over 64 KiB is parsed in a worker thread, one under it
on the loop), and tracemalloc's peak (Python heap; libyaml's own buffers are not traced).

Baselines in the same run: a plain document (no anchors) of the same size as each bomb, and
the plain 64 KiB document the engine still parses on the loop (issue 17: nothing under that
threshold may block the loop much longer than it does).

    python benchmarks/bombs.py [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
from _common import parser, quiet_logs, write_results
from prometheus_client import CollectorRegistry

from hotreload import HotReloader, ReloadOutcome
from hotreload.testing import write_atomic

MAX_BYTES = 1 << 20  # the default cap


class Doc(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    extra: Any = None


def string_bomb(size: int, refs: int) -> bytes:
    """One anchored string of ``size`` characters aliased ``refs`` times (issue 17, item 1)."""
    return f"model: m\nextra:\n  s: &s {'x' * size}\n  l: [{', '.join(['*s'] * refs)}]\n".encode()


def merge_fan_out(keys: int, refs: int) -> bytes:
    """One mapping of ``keys`` keys merged ``refs`` times into one mapping (item 2)."""
    base = "{" + ", ".join(f"k{i}: v" for i in range(keys)) + "}"
    merges = ", ".join(["*b"] * refs)
    return f"model: m\nextra:\n  b: &b {base}\n  m: {{<<: [{merges}]}}\n".encode()


def merge_chain(levels: int, fan: int) -> bytes:
    """Each level merges the one before ``fan`` times: PyYAML copies the pairs every time."""
    lines = ["model: m", "extra:", "  b0: &b0 {" + ", ".join(f"k{i}: v" for i in range(20)) + "}"]
    for level in range(1, levels):
        refs = ", ".join([f"*b{level - 1}"] * fan)
        lines.append(f"  b{level}: &b{level} {{<<: [{refs}], x{level}: 1}}")
    return ("\n".join(lines) + "\n").encode()


def billion_laughs() -> bytes:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"  a{level}: &a{level} [{refs}]")
    return ("model: m\nextra:\n  " + "\n".join(lines) + "\n").encode()


def list_fan_out(items: int, refs: int) -> bytes:
    big = ", ".join(["x"] * items)
    return (
        f"model: m\nextra:\n  big: &big [{big}]\n  fan: [{', '.join(['*big'] * refs)}]\n".encode()
    )


def plain(size: int, salt: int = 0) -> bytes:
    """A document without anchors of exactly ``size`` bytes (what an honest config costs)."""
    head = f"model: plain-{salt}\nextra:\n"
    lines: list[str] = []
    total = len(head)
    i = 0
    while total < size - 40:
        line = f"  key{i}: value-{i}-{'x' * 16}\n"
        lines.append(line)
        total += len(line)
        i += 1
    body = head + "".join(lines)
    return (body + "pad: " + "y" * max(1, size - len(body) - 6) + "\n").encode()[:size]


BOMBS: dict[str, Callable[[], bytes]] = {
    "string-bomb-130k (50 KB x 20,000)": lambda: string_bomb(50_000, 20_000),
    "string-bomb-62k (20 KB x 10,000)": lambda: string_bomb(20_000, 10_000),
    "string-bomb-18k (Holmes /-/config)": lambda: string_bomb(4_000, 3_500),
    "merge-fan-out-29k (refused)": lambda: merge_fan_out(1_000, 5_000),
    "merge-fan-out-5k (accepted, 49,000 pairs)": lambda: merge_fan_out(490, 100),
    "merge-chain (10 levels x 10)": lambda: merge_chain(10, 10),
    "billion-laughs": billion_laughs,
    "list-fan-out-63k (1,000 x 10,000)": lambda: list_fan_out(1_000, 10_000),
}


@contextlib.asynccontextmanager
async def ticker(lag: list[float]) -> AsyncIterator[None]:
    """Appends the worst lateness (s) of a 1 ms ticker on the loop while the block runs."""
    worst = 0.0

    async def tick() -> None:
        nonlocal worst
        while True:
            expected = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - expected)

    task = asyncio.create_task(tick())
    await asyncio.sleep(0)
    try:
        yield
        # The ticker's late wake-up may be queued behind whatever ended the block: let it run.
        await asyncio.sleep(0.003)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        lag.append(worst)


async def one(
    r: HotReloader[Doc], path: Path, raw: bytes, traced: bool
) -> tuple[float, ReloadOutcome]:
    """Write ``raw``, wait for its outcome; the stall (s) or peak (bytes), and the outcome."""
    before = r.last_outcome
    digest = hashlib.sha256(raw).hexdigest()

    def fresh(o: ReloadOutcome) -> bool:  # this version's outcome, not an earlier event's
        return o is not before and (o.error is not None or r.snapshot.content_sha256 == digest)

    lag: list[float] = []
    if traced:
        tracemalloc.start()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        write_atomic(path, raw)
        outcome = await r.wait_for_outcome(fresh, timeout=120)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        value = float(top - base)
    else:
        async with ticker(lag):
            write_atomic(path, raw)
            outcome = await r.wait_for_outcome(fresh, timeout=120)
        value = lag[0]
    return value, outcome


async def measure(runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_bytes(plain(1_000))
        async with HotReloader(
            path, schema=Doc, name="bombs", registry=CollectorRegistry(), poll_interval=0
        ) as r:
            last = r.last_outcome
            if last is None or last.trigger != "rescan":  # the watcher is up after its rescan
                await r.wait_for_outcome(lambda o: o.trigger == "rescan", timeout=10)
            salt = 0

            async def sample(raw: bytes) -> dict[str, Any]:
                nonlocal salt
                stalls: list[float] = []
                peaks: list[float] = []
                checks: list[float] = []
                verdicts: set[str] = set()
                for _ in range(runs):
                    for traced in (False, True):
                        salt += 1
                        await one(r, path, plain(1_000, salt), traced=False)  # reset
                        value, outcome = await one(r, path, raw, traced)
                        (peaks if traced else stalls).append(value)
                        if not traced:
                            checks.append(outcome.duration)
                        verdicts.add(outcome.result.value)
                return {
                    "bytes": len(raw),
                    "result": "/".join(sorted(verdicts)),
                    "check_ms_median": round(statistics.median(checks) * 1000, 2),
                    "stall_ms_median": round(statistics.median(stalls) * 1000, 2),
                    "stall_ms_max": round(max(stalls) * 1000, 2),
                    "peak_kb_median": round(statistics.median(peaks) / 1024, 1),
                }

            baseline_64k = await sample(plain(64 * 1024 - 1))
            results["plain-64KiB (inline baseline)"] = baseline_64k
            for name, make in BOMBS.items():
                raw = make()
                bomb = await sample(raw)
                same = await sample(plain(len(raw), salt=len(raw)))
                bomb["plain_same_size"] = same
                bomb["stall_vs_plain_same_size"] = _ratio(
                    bomb["stall_ms_median"], same["stall_ms_median"]
                )
                bomb["stall_vs_plain_64KiB"] = _ratio(
                    bomb["stall_ms_median"], baseline_64k["stall_ms_median"]
                )
                bomb["peak_vs_plain_same_size"] = _ratio(
                    bomb["peak_kb_median"], same["peak_kb_median"]
                )
                results[name] = bomb
    return results


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def main() -> None:
    args = parser(__doc__, "bombs").parse_args()
    quiet_logs()
    results = asyncio.run(measure(runs=1 if args.quick else 9))
    write_results("bombs", args, results)
    for name, row in results.items():
        print(name, {k: v for k, v in row.items() if k != "plain_same_size"})


if __name__ == "__main__":
    main()
