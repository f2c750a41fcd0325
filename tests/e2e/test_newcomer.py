"""The README's demo command on a fresh venv, as a newcomer runs it (see newcomer.py).

It costs a ``pip install`` (about 10 s warm), as long as the rest of the suite, so it runs
where CI runs (``CI`` is set) or when asked (``HOTRELOAD_NEWCOMER=1``), not on every local run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("newcomer.py")


@pytest.mark.skipif(
    not (os.environ.get("CI") or os.environ.get("HOTRELOAD_NEWCOMER")),
    reason="a fresh-venv install: set HOTRELOAD_NEWCOMER=1 (CI sets CI)",
)
@pytest.mark.timeout(600)
def test_readme_demo_command_on_a_fresh_venv() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=590
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("newcomer demo check: ok"), proc.stdout
