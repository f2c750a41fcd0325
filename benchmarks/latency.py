"""Write → visible latency: the engine for three update styles, and baselines on the same files.

One sample: the writer updates the file; a reader task on the loop looks at the contender's
current value as often as the loop allows; the time from the end of the write to the first
read that shows the new value is the sample. Before each write the script waits a random
0 to 25 ms (0 to 1 s for the 1 s poll) so writes fall at every phase of the watchers' step timers.

Contenders (all read the same ~2 KB YAML into the same msgspec schema):

* ``engine_<style>``: `HotReloader` with default settings, for in-place writes, temp + rename
  and kubelet's ``..data`` symlink swap;
* ``engine_polling_<ms>_<style>``: the same with ``force_polling=True, poll_delay_ms=<ms>``
  (NFS, CIFS, FUSE mounts), writes at a random phase of the poll period; the ratio column
  compares it with inotify's in-place p50 of the same run;
* ``raw_awatch_50_10`` / ``raw_awatch_default``: `watchfiles.awatch` event arrival (no parse):
  the floor under the engine at the same ``debounce``/``step``, and at awatch's defaults;
* ``watchdog``: watchdog's inotify observer, its thread bridged into the loop with
  ``call_soon_threadsafe``, re-reading and parsing on every event;
* ``poll_1s``: an asyncio task that stats the file every second and re-reads it on a change
  (the spec's own design polls every 60 s);
* ``dynamic_config_default`` / ``dynamic_config_min``: dynamic-config-py, used as its README
  says (``DynamicConfig(...).file(path)``, ``watch_async(debounce=...)``, ``current()``), at
  its default debounce (0.25 s) and at the lowest it accepts (0).

Commits per update: how many times the contender installed a new value per write (the engine:
generations; the others: installs). One update should be one commit.

    python benchmarks/latency.py [--quick] [--samples N] [--only ROW ...] [--json out.json]
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import watchfiles
from _common import Bench, doc, has_module, parser, quiet_logs, summary, write_results
from prometheus_client import CollectorRegistry

from hotreload import FileSource, HotReloader
from hotreload.testing import ConfigMapVolume, write_atomic, write_in_place

STYLES = ("in_place", "rename", "configmap")
SAMPLE_TIMEOUT = 5.0
_names = itertools.count()


@dataclass
class Target:
    path: Path
    write: Callable[[int], None]


def make_target(root: Path, style: str) -> Target:
    directory = root / f"t{next(_names)}-{style}"
    if style == "configmap":
        volume = ConfigMapVolume(directory, {"config.yaml": doc(0)})
        return Target(volume.path("config.yaml"), lambda i: volume.update({"config.yaml": doc(i)}))
    directory.mkdir()
    path = directory / "config.yaml"
    write_in_place(path, doc(0))
    if style == "rename":
        return Target(path, lambda i: write_atomic(path, doc(i)))
    return Target(path, lambda i: write_in_place(path, doc(i)))


@dataclass
class Probe:
    """What the reader looks at: the contender's current value and its install count."""

    value: Callable[[], int]
    commits: Callable[[], int]
    expect: Callable[[int], None] = field(default=lambda i: None)
    rejected: Callable[[], int] = field(default=lambda: 0)
    """Versions read but refused (a torn in-place write read half-way, say)."""


def parse(path: Path) -> Bench:
    return msgspec.yaml.decode(path.read_bytes(), type=Bench)


# -- contenders ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def engine(path: Path) -> AsyncIterator[Probe]:
    async with HotReloader(
        path, schema=Bench, name=f"bench{next(_names)}", registry=CollectorRegistry()
    ) as r:
        first = r.snapshot.generation
        rejected = [0]
        outcomes = r.outcomes()

        async def count() -> None:
            async for outcome in outcomes:
                rejected[0] += outcome.result.value in ("validation_failed", "error")

        task = asyncio.create_task(count())
        try:
            yield Probe(
                lambda: r.config.value,
                lambda: r.snapshot.generation - first,
                rejected=lambda: rejected[0],
            )
        finally:
            task.cancel()


def engine_polling(
    delay_ms: int,
) -> Callable[[Path], contextlib.AbstractAsyncContextManager[Probe]]:
    @contextlib.asynccontextmanager
    async def contender(path: Path) -> AsyncIterator[Probe]:
        async with HotReloader(
            FileSource(path, force_polling=True, poll_delay_ms=delay_ms),
            schema=Bench,
            name=f"bench{next(_names)}",
            registry=CollectorRegistry(),
        ) as r:
            first = r.snapshot.generation
            yield Probe(lambda: r.config.value, lambda: r.snapshot.generation - first)

    return contender


def raw_awatch(
    debounce: int, step: int
) -> Callable[[Path], contextlib.AbstractAsyncContextManager[Probe]]:
    @contextlib.asynccontextmanager
    async def contender(path: Path) -> AsyncIterator[Probe]:
        state = {"expected": 0, "value": 0, "batches": 0}
        stop = asyncio.Event()

        async def watch() -> None:
            async for _ in watchfiles.awatch(
                path.parent, debounce=debounce, step=step, stop_event=stop, recursive=False
            ):
                state["batches"] += 1
                state["value"] = state["expected"]

        def expect(i: int) -> None:
            state["expected"] = i

        task = asyncio.create_task(watch())
        try:
            yield Probe(lambda: state["value"], lambda: state["batches"], expect)
        finally:
            stop.set()
            await task

    return contender


@contextlib.asynccontextmanager
async def watchdog_observer(path: Path) -> AsyncIterator[Probe]:
    from watchdog.observers import Observer

    loop = asyncio.get_running_loop()
    state = {"value": parse(path).value, "commits": 0, "rejected": 0}

    def reload() -> None:
        try:
            state["value"] = parse(path).value
            state["commits"] += 1
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            state["rejected"] += 1

    class Handler:  # watchdog only calls ``dispatch``; these are on_modified/created/moved
        def dispatch(self, event: Any) -> None:
            if event.event_type not in ("modified", "created", "moved"):
                return  # our own reads make opened/closed_no_write events: never reload on them
            names = {os.path.basename(str(event.src_path))}
            names.add(os.path.basename(str(getattr(event, "dest_path", "") or "")))
            if path.name in names or any(n.startswith("..") for n in names):
                loop.call_soon_threadsafe(reload)

    observer = Observer()
    observer.schedule(Handler(), str(path.parent), recursive=False)
    observer.start()
    try:
        yield Probe(
            lambda: state["value"], lambda: state["commits"], rejected=lambda: state["rejected"]
        )
    finally:
        observer.stop()
        await asyncio.to_thread(observer.join)


@contextlib.asynccontextmanager
async def poll_1s(path: Path) -> AsyncIterator[Probe]:
    def key() -> tuple[int, int, int]:
        st = os.stat(path)
        return st.st_mtime_ns, st.st_size, st.st_ino

    state = {"value": parse(path).value, "commits": 0}

    async def poll() -> None:
        seen = key()
        while True:
            await asyncio.sleep(1.0)
            with contextlib.suppress(OSError, msgspec.DecodeError, msgspec.ValidationError):
                now = key()
                if now != seen:
                    seen = now
                    state["value"] = parse(path).value
                    state["commits"] += 1

    task = asyncio.create_task(poll())
    try:
        yield Probe(lambda: state["value"], lambda: state["commits"])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def dynamic_config(
    debounce: float,
) -> Callable[[Path], contextlib.AbstractAsyncContextManager[Probe]]:
    @contextlib.asynccontextmanager
    async def contender(path: Path) -> AsyncIterator[Probe]:
        from dynamic_config import DynamicConfig

        config = DynamicConfig(Bench, key="").whole_document().file(str(path))
        await config.init_async()
        installs = [0]
        hook = config.on_reload(lambda old, new: installs.__setitem__(0, installs[0] + 1))
        first = installs[0]
        watch = await config.watch_async(debounce=debounce)
        try:
            yield Probe(lambda: config.current().value, lambda: installs[0] - first)
        finally:
            watch.stop()
            hook.close()

    return contender


Contender = Callable[[Path], contextlib.AbstractAsyncContextManager[Probe]]


@dataclass
class Row:
    name: str
    style: str
    contender: Contender
    needs: str | None = None
    gap_s: float = 0.025
    slow: bool = False  # fewer samples: each costs ~a second or a quarter of one
    quick_samples: int | None = None  # --quick: this many (keeps the quick run < 60 s)


def rows() -> list[Row]:
    out = [Row(f"engine_{style}", style, engine) for style in STYLES]
    out += [
        Row(
            f"engine_polling_300_{style}",
            style,
            engine_polling(300),
            gap_s=0.3,
            slow=True,
            quick_samples=4,
        )
        for style in STYLES
    ]
    out.append(
        Row(
            "engine_polling_100_in_place",
            "in_place",
            engine_polling(100),
            gap_s=0.1,
            slow=True,
            quick_samples=4,
        )
    )
    out += [
        Row("raw_awatch_50_10", "in_place", raw_awatch(50, 10)),
        Row("raw_awatch_default", "in_place", raw_awatch(1600, 50), slow=True),
        Row("watchdog", "in_place", watchdog_observer, needs="watchdog"),
        Row("poll_1s", "in_place", poll_1s, gap_s=1.0, slow=True),
        Row(
            "dynamic_config_default",
            "in_place",
            dynamic_config(0.25),
            needs="dynamic_config",
            slow=True,
        ),
        Row("dynamic_config_min", "in_place", dynamic_config(0.0), needs="dynamic_config"),
        Row(
            "dynamic_config_min_configmap",
            "configmap",
            dynamic_config(0.0),
            needs="dynamic_config",
        ),
    ]
    return out


async def measure(row: Row, samples: int, root: Path, rng: random.Random) -> dict[str, Any]:
    target = make_target(root, row.style)
    latencies: list[float] = []
    missed = 0
    async with row.contender(target.path) as probe:
        # One warm-up update, not counted: every contender's watcher is surely running after it.
        for i in range(1, samples + 2):
            await asyncio.sleep(rng.uniform(0, row.gap_s))
            probe.expect(i)
            if i == 2:
                commits_before, rejected_before = probe.commits(), probe.rejected()
            target.write(i)
            written = time.perf_counter()
            deadline = written + SAMPLE_TIMEOUT
            while probe.value() != i:
                if time.perf_counter() > deadline:
                    missed += 1
                    break
                await asyncio.sleep(0)  # a reader that looks as often as the loop allows
            else:
                if i > 1:
                    latencies.append(time.perf_counter() - written)
        # Let trailing events of the last update land before counting commits.
        await asyncio.sleep(max(0.3, row.gap_s))
        commits = probe.commits() - commits_before
        rejected = probe.rejected() - rejected_before
    return {
        **summary(latencies),
        "style": row.style,
        "missed": missed,
        "commits_per_update": round(commits / samples, 3),
        "rejected_reads_per_update": round(rejected / samples, 3),
        "samples_s": [round(s, 6) for s in latencies],
    }


def sample_count(row: Row, samples: int, quick: bool) -> int:
    if quick and row.quick_samples is not None:
        return row.quick_samples
    if not row.slow:
        return samples
    if row.name == "poll_1s":
        return 3 if quick else 60
    return 10 if quick else 100


async def run(samples: int, quick: bool, only: list[str] | None) -> dict[str, Any]:
    rng = random.Random(6)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hotreload-bench-") as tmp:
        for row in rows():
            if only and row.name not in only:
                continue
            if row.needs and not has_module(row.needs):
                results[row.name] = {
                    "skipped": f"{row.needs} is not installed (pip install -e '.[bench]')"
                }
                continue
            results[row.name] = await measure(
                row, sample_count(row, samples, quick), Path(tmp), rng
            )
    raw = results.get("raw_awatch_50_10", {})
    if "p50_ms" in raw:
        results["engine_overhead_vs_raw_awatch_50_10"] = {
            style: {
                "p50_ms": round(results[f"engine_{style}"]["p50_ms"] - raw["p50_ms"], 3),
                "p50_ratio": round(results[f"engine_{style}"]["p50_ms"] / raw["p50_ms"], 3),
            }
            for style in STYLES
            if "p50_ms" in results.get(f"engine_{style}", {})
        }
    return results


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, row in results.items():
        data = row.get("samples_s") if isinstance(row, dict) else None
        if not data:
            continue
        ms = sorted(s * 1000 for s in data)
        ys = [(k + 1) / len(ms) for k in range(len(ms))]
        ax.step(ms, ys, where="post", label=f"{name} (n={len(ms)})")
    ax.set_xscale("log")
    ax.set_xlabel("write → visible latency, ms (log scale)")
    ax.set_ylabel("fraction of updates visible")
    ax.set_title("hotreload vs baselines: write → visible latency CDF")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    p = parser(__doc__, "latency")
    p.add_argument("--samples", type=int, default=None, help="per fast row (default 300, quick 30)")
    p.add_argument("--only", nargs="+", default=None, help="row names to run")
    p.add_argument("--png", type=Path, default=None, help="CDF plot (default: next to the JSON)")
    p.add_argument("--no-plot", action="store_true", help="skip the CDF plot")
    args = p.parse_args()
    quiet_logs()
    samples = args.samples or (30 if args.quick else 300)
    results = asyncio.run(run(samples, args.quick, args.only))
    out = write_results("latency", args, results)
    if not args.no_plot and has_module("matplotlib"):
        png = args.png or out.with_suffix(".png")
        plot(results, png)
    for name, row in results.items():
        if isinstance(row, dict):
            shown = {k: v for k, v in row.items() if k != "samples_s"}
            print(f"{name:32} {shown}")


if __name__ == "__main__":
    main()
