"""``hotreload verdict`` against real etcd: written and read back, first verdict wins, errors."""

from __future__ import annotations

import getpass
import itertools
import json
import os
import socket
import subprocess
import sys

from hotreload._verdicts import VerdictStore

from .servers import Member, free_port

HASH = "ab" * 32
_names = itertools.count()


def verdict(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotreload.cli", "verdict", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def fleet(etcd: Member) -> tuple[str, list[str]]:
    """A config name of its own (the package's etcd is shared) and the options naming it."""
    name = f"cli{next(_names)}"
    return name, ["--etcd", etcd.url, "--name", name, "--prefix", "/tests"]


async def test_good_is_written_and_read_back(etcd: Member) -> None:
    name, where = fleet(etcd)
    proc = verdict(*where, HASH, "good", "--reason", "canary held for 10 min", "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    by = f"operator:{getpass.getuser()}@{socket.gethostname()}"
    assert (shown["config_hash"], shown["verdict"], shown["by"]) == (HASH, "good", by)
    stored = await VerdictStore(name, prefix="/tests", endpoints=[etcd.endpoint]).get(HASH)
    assert stored is not None
    assert (stored.verdict, stored.by, stored.revision) == ("good", by, shown["revision"])
    assert stored.evidence == (
        {
            "kind": "operator",
            "name": "hotreload verdict",
            "error_message": "canary held for 10 min",
        },
    )
    again = verdict(*where, HASH, "good")  # the same verdict again: nothing to refuse
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"good: {name} {HASH[:12]} by {by}")


async def test_a_conflicting_verdict_is_refused_and_the_first_shown(etcd: Member) -> None:
    name, where = fleet(etcd)
    first = await VerdictStore(name, prefix="/tests", endpoints=[etcd.endpoint]).write(
        HASH, "bad", by="canary:pod-7"
    )
    proc = verdict(*where, HASH, "good")
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"bad: {name} {HASH[:12]} by canary:pod-7 at {first.at}")
    assert "already has the verdict 'bad', given by canary:pod-7" in proc.stderr
    assert "'good' was not written" in proc.stderr
    stored = await VerdictStore(name, prefix="/tests", endpoints=[etcd.endpoint]).get(HASH)
    assert stored == first
    shown = json.loads(verdict(*where, HASH, "good", "--json").stdout)
    assert (shown["verdict"], shown["by"], shown["at"]) == ("bad", "canary:pod-7", first.at)


def test_usage_errors_exit_2(etcd: Member) -> None:
    _, where = fleet(etcd)
    for bad in ("AB" * 32, "ab" * 31, "xyz", "ab" * 32 + "0"):
        proc = verdict(*where, bad, "good")
        assert proc.returncode == 2
        assert "64 lowercase hex digits" in proc.stderr
    assert verdict(*where, HASH, "meh").returncode == 2
    assert verdict("--name", "n", HASH, "good").returncode == 2  # --etcd is required
    slash = verdict("--etcd", etcd.url, "--name", "a/b", HASH, "good")
    assert slash.returncode == 2
    assert "without '/'" in slash.stderr
    os_env = {k: v for k, v in os.environ.items() if k != "HOTRELOAD_ETCD_PASSWORD"}
    missing = subprocess.run(
        [sys.executable, "-m", "hotreload.cli", "verdict", *where, "--user", "root", HASH, "bad"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os_env,
    )
    assert missing.returncode == 2
    assert "HOTRELOAD_ETCD_PASSWORD" in missing.stderr


def test_unreachable_etcd_is_a_clear_error() -> None:
    proc = verdict(
        "--etcd", f"127.0.0.1:{free_port()}", "--name", "n", "--timeout", "1", HASH, "bad"
    )
    assert proc.returncode == 3
    assert proc.stderr.startswith("hotreload verdict: etcd: no etcd endpoint answered")
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
