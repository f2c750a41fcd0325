"""What every benchmark script shares: the config it reloads, percentiles, process counters,
the machine/version header and the JSON file each run writes.

The scripts are run as files (``python benchmarks/latency.py``), so this is imported as the
top-level module ``_common``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import platform
import resource
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import structlog

RESULTS_DIR = Path(__file__).resolve().parent / "results"

PAD = "x" * 2000  # a realistic ~2 KB config


class Bench(msgspec.Struct, frozen=True):
    value: int
    padding: str = ""


def doc(i: int) -> str:
    return f"value: {i}\npadding: {PAD}\n"


def has_module(name: str) -> bool:
    """Whether a bench-only baseline library is importable (else its rows are skipped)."""
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def summary(samples: list[float]) -> dict[str, float]:
    """Percentiles in ms of latencies given in seconds (nearest-rank)."""
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    return {
        "n": len(ordered),
        "p50_ms": round(pct(50), 3),
        "p95_ms": round(pct(95), 3),
        "p99_ms": round(pct(99), 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


# -- process counters ----------------------------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU time of the whole process (every thread, Rust ones included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wakeups() -> int:
    """Voluntary + involuntary context switches of every thread of the process, ended ones too.

    A sleeping thread that wakes is one voluntary switch, so this counts wake-ups.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw + usage.ru_nivcsw


def thread_switches() -> dict[str, int]:
    """Per live thread (``name/tid``): voluntary + involuntary switches, from /proc/self/task."""
    out: dict[str, int] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            total = 0
            with open(f"/proc/self/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
            out[f"{name}/{tid}"] = total
        except OSError:  # the thread ended while we looked
            continue
    return out


def os_threads() -> int:
    """Threads of this process as the kernel sees them (Rust threads included)."""
    return len(os.listdir("/proc/self/task"))


def inotify_instances() -> int:
    """inotify instances this process holds (Linux default limit: 128 per user)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
        except OSError:
            continue
    return count


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- the run's header and output ------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for dist in (
        "hotreload-engine",
        "watchfiles",
        "msgspec",
        "PyYAML",
        "anyio",
        "prometheus-client",
        "structlog",
        "dynamic-config-py",
        "watchdog",
        "matplotlib",
    ):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def header(quick: bool) -> dict[str, Any]:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg(),
        },
        "versions": versions(),
        "command": " ".join(["python", *sys.argv]),
        "quick": quick,
    }


def parser(doc_: str | None, name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(doc_ or name).splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer samples, shorter windows")
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help=f"results file (default: benchmarks/results/{name}[-quick].json)",
    )
    return p


def write_results(name: str, args: argparse.Namespace, results: dict[str, Any]) -> Path:
    out: Path = args.json or RESULTS_DIR / f"{name}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {**header(args.quick), "benchmark": name, "results": results}
    payload["machine"]["loadavg_at_end"] = os.getloadavg()
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"{name}: wrote {out}", file=sys.stderr)
    return out


def quiet_logs() -> None:
    """Log as a production service would (INFO, JSON lines) but into /dev/null: printing to a
    terminal would be what is measured. Rendering the log lines is part of a reload's cost.
    """
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sink),
    )


def scratch_dir() -> str:
    """tmpfs when there is one: a storm must not measure this VM's disk (ext4 truncate ~0.5 ms)."""
    return (
        "/dev/shm"
        if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)
        else tempfile.gettempdir()
    )
