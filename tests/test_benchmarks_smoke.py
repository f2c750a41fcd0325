"""The benchmark scripts must keep running: a tiny latency run, numbers never asserted.

Each script is run the way `nox -s bench` runs it (a subprocess), with a handful of samples.
Baselines that need the ``bench`` extra are skipped, visibly, when it is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

LATENCY = Path(__file__).resolve().parent.parent / "benchmarks" / "latency.py"


def run_latency(tmp_path: Path, *rows: str) -> dict[str, Any]:
    out = tmp_path / "latency.json"
    command = [sys.executable, str(LATENCY), "--samples", "3", "--no-plot", "--json", str(out)]
    subprocess.run(
        [*command, "--only", *rows],
        check=True,
        capture_output=True,
        timeout=20,
    )
    results: dict[str, Any] = json.loads(out.read_text())["results"]
    return results


def test_engine_and_raw_watchfiles_rows_run(tmp_path: Path) -> None:
    results = run_latency(tmp_path, "engine_in_place", "raw_awatch_50_10")
    engine = results["engine_in_place"]
    assert (engine["n"], engine["missed"], engine["commits_per_update"]) == (3, 0, 1.0)
    assert len(engine["samples_s"]) == 3
    assert results["raw_awatch_50_10"]["n"] == 3
    assert "in_place" in results["engine_overhead_vs_raw_awatch_50_10"]


@pytest.mark.parametrize(
    ("module", "row"), [("watchdog", "watchdog"), ("dynamic_config", "dynamic_config_min")]
)
def test_bench_extra_baselines_run(tmp_path: Path, module: str, row: str) -> None:
    pytest.importorskip(module, reason=f"{module} is in the bench extra: pip install -e '.[bench]'")
    results = run_latency(tmp_path, row)
    assert results[row]["n"] == 3
    assert results[row]["missed"] == 0


def test_derived_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "derived.json"
    script = LATENCY.parent / "derived.py"
    command = [sys.executable, str(script), "--samples", "3", "--memory-n", "5"]
    subprocess.run([*command, "--json", str(out)], check=True, capture_output=True, timeout=30)
    results = json.loads(out.read_text())["results"]
    assert results["commit"]["with_one_derived"]["n"] == 3
    assert results["commit"]["without"]["n"] == 3
    assert results["memory"]["n"] == 5
    assert {"no_derived_ns", "one_derived_ns"} <= results["pin"].keys()


def test_polling_row_runs(tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    command = [sys.executable, str(LATENCY), "--quick", "--no-plot", "--json", str(out)]
    subprocess.run(
        [*command, "--only", "engine_polling_100_in_place"],
        check=True,
        capture_output=True,
        timeout=20,
    )
    polling = json.loads(out.read_text())["results"]["engine_polling_100_in_place"]
    assert (polling["n"], polling["missed"], polling["commits_per_update"]) == (4, 0, 1.0)


def test_layers_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "layers.json"
    script = LATENCY.parent / "layers.py"
    subprocess.run(
        [sys.executable, str(script), "--samples", "3", "--json", str(out)],
        check=True,
        capture_output=True,
        timeout=20,
    )
    results = json.loads(out.read_text())["results"]
    for name in ("one_file", "three_layers"):
        assert (results[name]["n"], results[name]["missed"]) == (3, 0)
    assert "p99" in results["ratio"]


def test_schema_comparison_runs(tmp_path: Path) -> None:
    """benchmarks/schemas.py (msgspec vs pydantic) runs and reports both, ratios included."""
    out = tmp_path / "schemas.json"
    script = LATENCY.parent / "schemas.py"
    subprocess.run(
        [sys.executable, str(script), "--quick", "--samples", "3", "--json", str(out)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    results: dict[str, Any] = json.loads(out.read_text())["results"]
    assert results["commit"]["msgspec"]["n"] == results["commit"]["pydantic"]["n"] == 3
    for part in ("steps", "read"):
        assert set(results[part]["pydantic_vs_msgspec"]) == set(results[part]["msgspec"])


def test_hotpath_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "hotpath.json"
    script = LATENCY.parent / "hotpath.py"
    command = [sys.executable, str(script), "--smoke", "--json", str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    results = json.loads(out.read_text())["results"]
    assert set(results["per_change_cpu"]) == {
        "holmes_demo",
        "holmes_demo_2_unknown_keys",
        "bench_2_keys",
    }
    assert all(row["ratio"] > 0 for row in results["per_change_cpu"].values())
    assert results["commit_loop_lag"]["10MB_one_line"]["compose_gil_ms"] >= 0  # timing-ok: present
    assert results["many_reloaders"]["n"] == 5


def test_probation_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "probation.json"
    script = LATENCY.parent / "probation.py"
    command = [sys.executable, str(script), "--smoke", "--json", str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    results = json.loads(out.read_text())["results"]
    rollback = results["rollback"]
    assert rollback["failure_to_rollback"]["n"] == rollback["commit_baseline"]["n"] == 2
    assert rollback["quarantined"] == 2
    assert set(results["pass_overhead"]) == {"bench_2_keys", "holmes_demo"}
    assert all(row["ratio_median"] > 0 for row in results["pass_overhead"].values())
