"""The hot path: what one change costs, and how long one commit holds the event loop.

Three measurements, each a ratio against a baseline measured side by side in the same run:

* **per-change CPU through** ``reload()`` (``watch=False``: no watcher), the file rewritten
  between two versions before each call, against the floor a change rests on:
  ``yaml.load(CSafeLoader)`` + ``msgspec.convert`` + one sha256 of the same bytes. Rounds of
  the engine and the floor alternate, and the figure is the median of the per-round ratios, so
  a noisy neighbour moves both sides alike;
* **worst event-loop lag during one commit**: a 10 ms ticker task on the loop records how late
  each tick wakes while ``reload()`` commits a document of 2 KB, 64 KB, 1 MB (one long value,
  or many short lines) and 10 MB (one line). The 10 MB row is compared with how long libyaml's
  compose of the same bytes holds the interpreter lock (the same ticker, while a thread
  composes): no Python code can run while one C call holds it;
* **1,000 reloaders in 1,000 directories** started one after another and closed
  (``hotpath_watch.py``).

    python benchmarks/hotpath.py [--quick | --smoke] [--json out.json]

``--smoke`` is for the test suite: a round or two of everything, tiny documents, numbers
meaningless.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml
from _common import Bench, doc, parser, quiet_logs, scratch_dir, write_results
from prometheus_client import CollectorRegistry

from hotreload import HotReloader
from hotreload._demo import DEMO_CONFIG
from hotreload.holmes import ApiConfig, create_reloader

T = TypeVar("T")
_CSafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Many(msgspec.Struct, frozen=True):
    """A document of many short lines: one mapping of small entries."""

    value: int
    items: dict[str, str] = {}


def floor_once(raw: bytes, schema: type[Any]) -> None:
    """What any reload of ``raw`` must pay: parse with the C loader, convert, hash."""
    data = yaml.load(raw.decode(), Loader=_CSafeLoader)  # noqa: S506 - the C *safe* loader
    msgspec.convert(data, schema)
    hashlib.sha256(raw).hexdigest()


async def per_change(
    versions: tuple[str, str],
    schema: type[Any],
    make: Callable[[Path], HotReloader[Any]],
    rounds: int,
    per_round: int,
) -> dict[str, float]:
    """Median per-round ratio of the engine's CPU per change over the floor's."""
    with _tempdir() as tmp:
        path = tmp / "config.yaml"
        raws = [v.encode() for v in versions]
        path.write_bytes(raws[0])
        engine_s: list[float] = []
        floor_s: list[float] = []
        async with make(path) as reloader:
            n = 0
            for _ in range(rounds):
                spent = 0.0
                for _ in range(per_round):
                    n += 1
                    path.write_bytes(raws[n % 2])
                    started = time.process_time()
                    outcome = await reloader.reload()
                    spent += time.process_time() - started
                    assert outcome.applied, outcome
                engine_s.append(spent / per_round)
                started = time.process_time()
                for i in range(per_round):
                    floor_once(raws[i % 2], schema)
                floor_s.append((time.process_time() - started) / per_round)
    ratios = [e / f for e, f in zip(engine_s, floor_s, strict=True)]
    return {
        "engine_us_per_change": round(statistics.median(engine_s) * 1e6, 1),
        "floor_us_per_change": round(statistics.median(floor_s) * 1e6, 1),
        "ratio": round(statistics.median(ratios), 2),
    }


class Ticker:
    """A task that wakes every 10 ms and records how late it woke (the loop was held)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.sleep(0.02)  # sleep-ok: let the ticker settle into its period
        self.worst = 0.0
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(0.02)  # sleep-ok: one more tick sees the end of the commit
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, time.perf_counter() - started - 0.01)


async def worst_lag(work: Callable[[], Awaitable[object]], repeat: int) -> float:
    """Median over ``repeat`` runs of the worst ticker lag (ms) while ``work`` runs."""
    lags = []
    for _ in range(repeat):
        async with Ticker() as ticker:
            await work()
        lags.append(ticker.worst)
    return round(statistics.median(lags) * 1000, 2)


async def commit_lag(
    versions: tuple[bytes, bytes], schema: type[Any], repeat: int, max_bytes: int
) -> float:
    with _tempdir() as tmp:
        path = tmp / "config.yaml"
        path.write_bytes(versions[0])
        reloader = HotReloader(
            path,
            schema=schema,
            name="lag",
            registry=CollectorRegistry(),
            watch=False,
            max_bytes=max_bytes,
        )
        async with reloader:
            n = 0

            async def one() -> None:
                nonlocal n
                n += 1
                path.write_bytes(versions[n % 2])
                outcome = await reloader.reload()
                assert outcome.applied, outcome

            return await worst_lag(one, repeat)


async def compose_lag(raw: bytes, repeat: int) -> float:
    """The ticker's worst lag while a thread composes ``raw`` with libyaml (the GIL held)."""
    text = raw.decode()

    async def one() -> None:
        done = asyncio.get_running_loop().create_future()

        def compose() -> None:
            yaml.compose(text, Loader=_CSafeLoader)
            loop.call_soon_threadsafe(done.set_result, None)

        loop = asyncio.get_running_loop()
        threading.Thread(target=compose).start()
        await done

    return await worst_lag(one, repeat)


def long_value(size: int, i: int) -> bytes:
    return f"value: {i}\npadding: {'x' * (size - 30)}\n".encode()


def many_lines(size: int, i: int) -> bytes:
    lines = [f"value: {i}\nitems:\n"]
    k = 0
    total = len(lines[0])
    while total < size:
        line = f"  k{k:07d}: value-{k:024d}\n"
        lines.append(line)
        total += len(line)
        k += 1
    return "".join(lines).encode()


async def lags(repeat: int, scale: float = 1.0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    shapes: list[tuple[str, Callable[[int, int], bytes], int, type[Any], int]] = [
        ("2KB", lambda _s, i: doc(i).encode(), 2_000, Bench, 1 << 20),
        ("64KB_one_value", long_value, 64_000, Bench, 1 << 20),
        ("64KB_many_lines", many_lines, 64_000, Many, 1 << 20),
        ("1MB_one_value", long_value, 1_000_000, Bench, 1 << 20),
        ("1MB_many_lines", many_lines, 1_000_000, Many, 1 << 20),
        ("10MB_one_line", long_value, 10_000_000, Bench, 16 << 20),
    ]
    for name, make, size, schema, max_bytes in shapes:
        versions = (make(int(size * scale), 1), make(int(size * scale), 2))
        engine = await commit_lag(versions, schema, repeat, max_bytes)
        row: dict[str, Any] = {"bytes": len(versions[0]), "worst_lag_ms": engine}
        if name.startswith("10MB"):
            compose = await compose_lag(versions[0], repeat)
            row["compose_gil_ms"] = compose
            row["ratio_to_compose"] = round(engine / compose, 2) if compose else None
        out[name] = row
    return out


async def changes(rounds: int, per_round: int) -> dict[str, Any]:
    holmes_a = DEMO_CONFIG
    holmes_b = DEMO_CONFIG.replace("model: gpt-4", "model: claude-3-5-sonnet")
    assert holmes_a != holmes_b
    unknown = "\nstray_one: 1\nstray_two: 2\n"

    def holmes(path: Path) -> HotReloader[Any]:
        return create_reloader(path, name="holmes", registry=CollectorRegistry(), watch=False)

    def bench(path: Path) -> HotReloader[Any]:
        registry = CollectorRegistry()
        return HotReloader(path, schema=Bench, name="bench", registry=registry, watch=False)

    return {
        "holmes_demo": await per_change((holmes_a, holmes_b), ApiConfig, holmes, rounds, per_round),
        "holmes_demo_2_unknown_keys": await per_change(
            (holmes_a + unknown, holmes_b + unknown), ApiConfig, holmes, rounds, per_round
        ),
        "bench_2_keys": await per_change((doc(1), doc(2)), Bench, bench, rounds, per_round),
    }


def many(n: int) -> dict[str, Any]:
    from hotpath_watch import many_reloaders

    return many_reloaders(n)


class _tempdir:
    """A scratch directory on tmpfs where there is one (a disk would be what is measured)."""

    def __enter__(self) -> Path:
        import tempfile

        self._dir = tempfile.TemporaryDirectory(dir=scratch_dir())
        return Path(self._dir.name)

    def __exit__(self, *exc: object) -> None:
        self._dir.cleanup()


def main() -> None:
    p = parser(__doc__, "hotpath")
    p.add_argument("--smoke", action="store_true", help="a round of each, for the test suite")
    args = p.parse_args()
    quiet_logs()
    if args.smoke:
        rounds, per_round, repeat, scale, n = 1, 2, 1, 0.01, 5
    elif args.quick:
        rounds, per_round, repeat, scale, n = 5, 20, 3, 1.0, 1000
    else:
        rounds, per_round, repeat, scale, n = 15, 40, 7, 1.0, 1000
    results: dict[str, Any] = {
        "per_change_cpu": asyncio.run(changes(rounds, per_round)),
        "commit_loop_lag": asyncio.run(lags(repeat, scale)),
        "many_reloaders": many(n),
    }
    write_results("hotpath", args, results)


if __name__ == "__main__":
    main()
