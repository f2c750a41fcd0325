"""benchmarks/tls.py keeps running (a handful of samples; numbers never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "tls.py"


def test_tls_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "tls.json"
    subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--rotations",
            "3",
            "--handshakes",
            "100",
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=25,
    )
    results = json.loads(out.read_text())["results"]
    assert results["swap"]["rotations"] == 3
    assert results["swap"]["handshake_errors"] == 0
    assert results["handshake_cost"]["handshakes_each"] == 100
