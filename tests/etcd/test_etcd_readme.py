"""The etcd page's snippet (docs/etcd.md) runs against a real etcd, and prints what it says."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from tests.test_readme import README, blocks, expected_prints

from .servers import Admin, Member


async def test_the_readme_etcd_snippet_runs(etcd: Member) -> None:
    [code] = [c for c in blocks("py") if "EtcdSource" in c]
    await Admin(etcd).put("/config/api.yaml", "model: gpt-4\n")
    env = {**os.environ, "ETCD_ENDPOINTS": etcd.endpoint}
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    printed = [line for line in proc.stdout.splitlines() if not line[:4].isdigit()]
    assert printed == expected_prints(code), README
