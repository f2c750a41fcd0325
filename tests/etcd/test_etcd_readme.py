"""The ``py`` snippets (README's fleet rollout, docs/etcd.md's source) run against a real etcd,
and print what they say: tests/test_docs.py runs only the ``python`` ones, which need no etcd."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.test_readme import README, blocks, expected_prints

from .servers import Admin, Member


async def run(code: str, etcd: Member, cwd: Path | None = None) -> list[str]:
    """What ``code`` printed (etcd's own log lines left out), run with ``ETCD_ENDPOINTS``."""
    env = {**os.environ, "ETCD_ENDPOINTS": etcd.endpoint}
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if not line[:4].isdigit()]


async def test_the_readme_etcd_snippet_runs(etcd: Member) -> None:
    [code] = [c for c in blocks("py") if "EtcdSource" in c]
    await Admin(etcd).put("/config/api.yaml", "model: gpt-4\n")
    assert await run(code, etcd) == expected_prints(code), README


async def test_the_readme_fleet_rollout_snippet_runs(etcd: Member, tmp_path: Path) -> None:
    """The follower holds the new config while the canary's probation runs, then commits it
    on the canary's verdict (its files in ``tmp_path``; its verdicts under its own prefix)."""
    [code] = [c for c in blocks("py", README) if "Rollout(" in c]
    printed = await run(code, etcd, cwd=tmp_path)
    assert printed == expected_prints(code) == ["False gpt-4", "gpt-5 gpt-4", "gpt-5"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canary.yaml", "follower.yaml"]


def test_every_py_snippet_is_run_here() -> None:
    """A ``py`` block no test above picks would be shown and never run."""
    picked = [c for c in blocks("py") if "EtcdSource" in c or "Rollout(" in c]
    assert picked == blocks("py")
    assert len(picked) == 2
