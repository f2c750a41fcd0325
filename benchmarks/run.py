"""Run every benchmark (each in its own process) and summarise the JSON results as Markdown.

    python benchmarks/run.py            # the full set (what ``nox -s bench`` runs)
    python benchmarks/run.py --quick    # < 60 s on a 2-core machine
    python benchmarks/run.py --only latency storm

Writes ``benchmarks/results/<name>[-quick].json`` per benchmark, the latency CDF next to the
latency JSON, and ``benchmarks/results/summary[-quick].md`` (the tables RESULTS.md quotes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PIECES = (
    "latency",
    "readcost",
    "memory",
    "storm",
    "idle",
    "failure",
    "layers",
    "derived",
    "schemas",
    "bombs",
    "hotpath",
    "probation",
)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return "—" if v is None else str(v)

    out = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def summarise(results: dict[str, dict[str, Any]]) -> str:
    parts: list[str] = []
    any_run = next(iter(results.values()))
    parts.append(
        f"Machine: {any_run['machine']['cpu']}, {any_run['machine']['cores']} cores, "
        f"{any_run['machine']['platform']}; date {any_run['date']}.\n\n"
        "Versions: " + ", ".join(f"{k} {v}" for k, v in any_run["versions"].items()) + "."
    )
    for name, run in results.items():
        parts.append(
            f"`{name}`: `{run['command']}`, load average at start/end "
            f"{[round(x, 2) for x in run['machine']['loadavg_at_start']]} / "
            f"{[round(x, 2) for x in run['machine']['loadavg_at_end']]}"
        )
    if "latency" in results:
        r = results["latency"]["results"]
        rows = []
        engine_p50 = r.get("engine_in_place", {}).get("p50_ms")
        for key, row in r.items():
            if key.startswith("engine_overhead") or not isinstance(row, dict):
                continue
            if "skipped" in row:
                rows.append([key, "skipped: " + row["skipped"], *[None] * 9])
                continue
            rows.append(
                [
                    key,
                    row["style"],
                    row["n"],
                    row.get("p50_ms"),
                    round(row["p50_ms"] / engine_p50, 2)
                    if engine_p50 and row.get("p50_ms")
                    else None,
                    row.get("p95_ms"),
                    row.get("p99_ms"),
                    row.get("max_ms"),
                    row["missed"],
                    row["commits_per_update"],
                    row.get("rejected_reads_per_update"),
                ]
            )
        parts.append(
            "### Write → visible latency (ms)\n\n"
            + table(
                [
                    "contender",
                    "update",
                    "n",
                    "p50",
                    "p50 / engine in-place p50",
                    "p95",
                    "p99",
                    "max",
                    "missed",
                    "commits/update",
                    "rejected reads/update",
                ],
                rows,
            )
        )
        overhead = r.get("engine_overhead_vs_raw_awatch_50_10", {})
        if overhead:
            parts.append(
                "Engine overhead over raw `awatch(debounce=50, step=10)`, p50: "
                + ", ".join(
                    f"{style} {o['p50_ms']:+} ms (x{o['p50_ratio']})"
                    for style, o in overhead.items()
                )
            )
    if "readcost" in results:
        r = results["readcost"]["results"]
        names = [k[: -len("_ns")] for k in r["threads_1"] if k.endswith("_ns") and "loop" not in k]
        rows = [
            [
                n,
                r["threads_1"][f"{n}_ns"],
                r["threads_1"][f"{n}_vs_plain"],
                r["threads_4"][f"{n}_ns"],
                r["threads_4"][f"{n}_vs_plain"],
            ]
            for n in names
        ]
        parts.append(
            "### Read cost (ns per read, loop overhead subtracted)\n\n"
            + table(["read", "1 thread", "x plain", "4 threads", "x plain"], rows)
        )
    if "memory" in results:
        r = results["memory"]["results"]
        rows = []
        for contender in ("engine", "dynamic_config", "dynamic_config_async"):
            for row in r.get(contender, []) if isinstance(r.get(contender), list) else []:
                rows.append(
                    [
                        contender,
                        row["n"],
                        row.get("rss_kb_per_reloader"),
                        row.get("tracemalloc_kb_per_reloader"),
                        row.get("threads_per_reloader"),
                        row.get("inotify_per_reloader"),
                        row.get("threads_in_process"),
                        row.get("startup_ms_per_reloader"),
                        (
                            f"config #{row['failed_at_config']}: {row.get('error')}"
                            if "failed_at_config" in row
                            else row.get("error")
                        ),
                    ]
                )
        parts.append(
            "### Memory per additional reloader\n\n"
            + table(
                [
                    "contender",
                    "N",
                    "RSS KB",
                    "tracemalloc KB",
                    "threads",
                    "inotify",
                    "threads in process",
                    "start-up ms",
                    "failure",
                ],
                rows,
            )
        )
        bd = r.get("engine_breakdown", {})
        if "by_hotreload_line_bytes_per_reloader" in bd:
            parts.append(
                f"Engine breakdown at N={bd['n']} ({bd['tracemalloc_kb_per_reloader']} KB): "
                + json.dumps(bd["by_package_bytes_per_reloader"])
                + "\n\n"
                + table(
                    ["hotreload line → allocation site", "bytes per reloader"],
                    [[k, v] for k, v in bd["by_allocation_site_bytes_per_reloader"].items()],
                )
            )
    if "storm" in results:
        r = results["storm"]["results"]
        rows = [
            [
                k,
                v.get("style"),
                v.get("writer_seconds"),
                v.get("commits"),
                json.dumps(v.get("rechecks_by_result")) if v.get("rechecks_by_result") else None,
                v.get("final_equals_last_write"),
                v.get("last_visible_after_writer_ms"),
                v.get("cpu_ms"),
                v.get("cpu_vs_raw_awatch"),
                v.get("wakeups"),
            ]
            for k, v in r.items()
            if "skipped" not in v
        ]
        parts.append(
            "### Storm: 10,000 writes within a second\n\n"
            + table(
                [
                    "contender",
                    "update",
                    "writer s",
                    "commits (batches)",
                    "re-checks",
                    "final = last",
                    "last visible after ms",
                    "CPU ms",
                    "CPU x raw",
                    "wake-ups",
                ],
                rows,
            )
        )
    if "idle" in results:
        r = results["idle"]["results"]
        rows = [
            [
                k,
                v.get("cpu_ms_per_min"),
                v.get("core_percent"),
                v.get("wakeups_per_min"),
                v.get("threads"),
            ]
            for k, v in r["idle"].items()
            if "skipped" not in v
        ]
        parts.append(
            "### Idle cost (per minute idle)\n\n"
            + table(["contender", "CPU ms/min", "% of a core", "wake-ups/min", "threads"], rows)
        )
        rows = [
            [
                k.removeprefix("step_"),
                v["latency"]["p50_ms"],
                v["latency"]["p95_ms"],
                v["latency"]["p99_ms"],
                v["cpu_ms_per_min"],
                v["core_percent"],
                v["wakeups_per_min"],
            ]
            for k, v in r["step_table"].items()
            if "latency" in v
        ]
        parts.append(
            "### `step_ms` trade-off (one reloader)\n\n"
            + table(
                [
                    "step_ms",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "idle CPU ms/min",
                    "% of a core",
                    "wake-ups/min",
                ],
                rows,
            )
        )
    if "failure" in results:
        r = results["failure"]["results"]
        rows = [
            [k, v["calls_per_s"], v["ns_per_call"], v["handled_per_s"], v.get("vs_baseline")]
            for k, v in r.items()
            if k != "forced_recheck"
        ]
        parts.append(
            "### Failure path\n\n"
            + table(["caller", "calls/s", "ns/call", "handled/s", "x baseline"], rows)
        )
        fr = r["forced_recheck"]
        parts.append(
            table(
                ["forced re-check", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"],
                [
                    [k, v["n"], v["p50_ms"], v["p95_ms"], v["p99_ms"], v["max_ms"]]
                    for k, v in fr.items()
                    if isinstance(v, dict) and "n" in v
                ],
            )
        )
    parts.extend(
        tables(results[name]["results"])
        for name, tables in (
            ("layers", layers_table),
            ("derived", derived_tables),
            ("schemas", schemas_tables),
            ("bombs", bombs_table),
            ("hotpath", hotpath_tables),
            ("probation", probation_tables),
        )
        if name in results
    )
    return "\n\n".join(parts) + "\n"


def derived_tables(r: dict[str, Any]) -> str:
    """Commit cost with one derived resource against none (build time excluded), the pin a
    request takes, and memory per derived resource."""
    c = r["commit"]
    rows = [
        [k, c[k]["n"], c[k]["p50_ms"], c[k]["p95_ms"], c[k]["mean_ms"]]
        for k in ("without", "with_one_derived")
    ]
    m, pin = r["memory"], r["pin"]
    return (
        "### Derived resources: commit cost (ms, the user's build excluded)\n\n"
        + table(["reloader", "n", "p50", "p95", "mean"], rows)
        + f"\n\nOverhead of one derived resource: p50 {c['p50_overhead_percent']:+} %, "
        f"mean {c['mean_overhead_percent']:+} % (target <= 10 %); build excluded "
        f"(p50 {c['build_p50_us_excluded']} µs). Pin per request: "
        f"{pin['one_derived_ns']} ns with one derived resource, {pin['no_derived_ns']} ns with "
        f"none. Memory per derived resource (N={m['n']}): {m['bytes_per_derived']} B, "
        f"{m['bytes_per_derived_after_swap']} B after one swap of all of them."
    )


def layers_table(r: dict[str, Any]) -> str:
    """Three layers (two files + the environment) against one file, interleaved in one run."""
    rows = [
        [
            name,
            v.get("n"),
            v.get("p50_ms"),
            v.get("p95_ms"),
            v.get("p99_ms"),
            v.get("max_ms"),
            v.get("missed"),
            v.get("reload_duration", {}).get("p50_ms"),
        ]
        for name, v in r.items()
        if name != "ratio"
    ]
    ratio = r.get("ratio", {})
    return (
        "### Layers: two files + environment vs one file (write → visible, ms)\n\n"
        + table(
            ["contender", "n", "p50", "p95", "p99", "max", "missed", "reload duration p50"],
            rows,
        )
        + f"\n\np99 ratio (three layers / one file): {ratio.get('p99')} (target <= "
        f"{ratio.get('target_p99')}); p50 ratio {ratio.get('p50')}; worker time per reload, "
        f"p50 ratio {ratio.get('reload_duration_p50')}."
    )


def bombs_table(r: dict[str, Any]) -> str:
    rows = [
        [
            k,
            v["bytes"],
            v["result"],
            v["stall_ms_median"],
            v["stall_ms_max"],
            v.get("stall_vs_plain_same_size"),
            v.get("stall_vs_plain_64KiB"),
            v["peak_kb_median"],
            v.get("peak_vs_plain_same_size"),
        ]
        for k, v in r.items()
    ]
    return "### Alias and merge-key bombs (loop stall, peak Python heap)\n\n" + table(
        [
            "document",
            "bytes",
            "result",
            "stall ms p50",
            "stall ms max",
            "stall x plain same size",
            "stall x plain 64 KiB",
            "peak KB",
            "peak x plain same size",
        ],
        rows,
    )


def hotpath_tables(r: dict[str, Any]) -> str:
    """Issue 23's three figures: per-change CPU against its floor, the worst loop lag of one
    commit per document shape, and 1,000 reloaders started and closed."""
    targets = {"holmes_demo": 1.5, "holmes_demo_2_unknown_keys": 1.5, "bench_2_keys": 3.0}
    cpu = [
        [k, v["engine_us_per_change"], v["floor_us_per_change"], v["ratio"], targets.get(k)]
        for k, v in r["per_change_cpu"].items()
    ]
    lag_targets = {"2KB": 5, "64KB_one_value": 10, "64KB_many_lines": 10}
    lags = []
    for k, v in r["commit_loop_lag"].items():
        target: Any = lag_targets.get(k, 25)
        if "ratio_to_compose" in v:
            target = "1.5x compose"
        lags.append(
            [k, v["bytes"], v["worst_lag_ms"], v.get("compose_gil_ms"), v.get("ratio_to_compose"),
             target]
        )  # fmt: skip
    parts = [
        "### The hot path: CPU per change through `reload()`, against `yaml.load(CSafeLoader)` "
        "+ `msgspec.convert` + sha256 of the same bytes\n\n"
        + table(["config", "engine µs", "floor µs", "x floor", "target"], cpu),
        "### Worst event-loop lag (10 ms ticker) during one commit\n\n"
        + table(
            ["document", "bytes", "worst lag ms", "compose GIL ms", "x compose", "target ms"],
            lags,
        ),
    ]
    many = r.get("many_reloaders", {})
    if "skipped" in many:
        parts.append(f"Many reloaders: skipped ({many['skipped']}).")
    elif many:
        parts.append(
            "### Reloaders in their own directories, started one after another, then closed\n\n"
            + table(
                ["n", "start s", "start CPU s", "close s", "close CPU s", "watchers built"],
                [
                    [many.get(k) for k in ("n", "start_all_s", "start_all_cpu_s")]
                    + [many.get("close_all_s"), many.get("close_all_cpu_s")]
                    + [
                        f"{many.get('watchers_built_at_start')} + "
                        f"{many.get('watchers_built_at_close')}"
                    ]
                ],
            )
        )
    return "\n\n".join(parts)


def probation_tables(r: dict[str, Any]) -> str:
    """Issue 25: the N-th failure to the rollback's outcome, and probation's cost on a commit
    that passes against none, interleaved in one run."""
    rb = r["rollback"]
    rows = [
        [k, v["n"], v["p50_ms"], v["p95_ms"], v["max_ms"]]
        for k, v in (
            (f"failure #{rb['failures']} → rollback outcome", rb["failure_to_rollback"]),
            ("`reload()` committing the version (baseline)", rb["commit_baseline"]),
        )
    ]
    cost = [
        [k, v["without_us_per_change"], v["with_probation_us_per_change"], v["ratio_median"],
         v["ratio_best"], f"<= {v['target']}"]
        for k, v in r["pass_overhead"].items()
    ]  # fmt: skip
    return (
        f"### Probation: failure #{rb['failures']} → rollback (`Probation(window="
        f"{rb['window_s']}, failures={rb['failures']})`, ms)\n\n"
        + table(["measure", "n", "p50", "p95", "max"], rows)
        + "\n\n### Probation's cost on a commit that passes: CPU per change through "
        "`reload()`, `Probation()` against none\n\n"
        + table(
            ["config", "without µs", "with µs", "ratio (median)", "ratio (best)", "target"], cost
        )
    )


def schemas_tables(r: dict[str, Any]) -> str:
    """msgspec vs pydantic: the schema's steps, the commit, the read; ratios beside each."""
    steps = r["steps"]
    rows = [
        [key.removesuffix("_us"), steps["msgspec"][key], steps["pydantic"][key],
         steps["pydantic_vs_msgspec"][key]]
        for key in steps["msgspec"]
    ]  # fmt: skip
    commit = r["commit"]
    for pct in ("p50_ms", "p95_ms", "p99_ms"):
        ms, pyd = commit["msgspec"][pct], commit["pydantic"][pct]
        rows.append([f"commit {pct[:3]} (ms)", ms, pyd, round(pyd / ms, 2) if ms else None])
    read = r["read"]
    for key in read["msgspec"]:
        rows.append([f"read {key.removesuffix('_ns')} (ns)", read["msgspec"][key],
                     read["pydantic"][key], read["pydantic_vs_msgspec"][key]])  # fmt: skip
    return (
        f"### Schema: msgspec vs pydantic ({steps['document_bytes']}-byte document; "
        f"steps in µs; plain attribute read {read['plain_attribute_ns']} ns)\n\n"
        + table(["measure", "msgspec", "pydantic", "x msgspec"], rows)
    )


BEGIN = "<!-- generated by benchmarks/run.py: begin -->"
END = "<!-- generated by benchmarks/run.py: end -->"


def update_results_md(tables: str) -> None:
    """Replace the generated part of RESULTS.md with this run's tables (full runs only)."""
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n\n{tables}\n{END}{tail}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", nargs="+", choices=PIECES, default=list(PIECES))
    args = p.parse_args()
    suffix = "-quick" if args.quick else ""
    results: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for piece in args.only:
        out = HERE / "results" / f"{piece}{suffix}.json"
        # Paths relative to the repository root, so the recorded commands read the same
        # on any checkout.
        rel = Path("benchmarks")
        cmd = [sys.executable, str(rel / f"{piece}.py"), "--json", str(rel / out.relative_to(HERE))]
        if args.quick:
            cmd.append("--quick")
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=HERE.parent)
        print(f"{piece}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        results[piece] = json.loads(out.read_text())
    summary = HERE / "results" / f"summary{suffix}.md"
    summary.write_text(summarise(results))
    if not args.quick and args.only == list(PIECES):
        update_results_md(summary.read_text())
    print(summary.read_text())
    print(f"all: {time.perf_counter() - started:.1f} s, summary in {summary}", file=sys.stderr)


if __name__ == "__main__":
    main()
