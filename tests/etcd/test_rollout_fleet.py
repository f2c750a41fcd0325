"""Fleet rollout (issue 26) across OS processes on real etcd: 1 canary and 9 followers, each a
`replica` process on its own ConfigMap-style directory, whose ``..data`` swap this test does
at a different time for each, as kubelet does. Each process's stdout is its commit log."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hotreload._verdicts import VerdictStore
from hotreload.testing import ConfigMapVolume

from .servers import Member

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
LINE_WAIT = 60.0  # per line read from a replica: only a hang guard
PREFIX = "/tests-rollout-fleet"
FOLLOWERS = 9
EARLY = 5  # followers whose content changes before the canary's verdict; the rest after it
WINDOW = "1.0"
V0 = "model: gpt-4\ndependency: llm\ndependency_ok: true\n"
HARMFUL = "model: gpt-5\ndependency: llm\ndependency_ok: false\n"
GOOD = "model: gpt-5\ndependency: llm\ndependency_ok: true\n"
_names = itertools.count()

Line = dict[str, Any]


@dataclass
class Replica:
    identity: str
    volume: ConfigMapVolume
    proc: asyncio.subprocess.Process
    stderr: Path
    log: list[Line] = field(default_factory=list)

    def update(self, text: str) -> None:
        self.volume.update({"config.yaml": text})

    async def line(self) -> Line | None:
        """The next line this replica printed (None: it exited)."""
        assert self.proc.stdout is not None
        try:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), LINE_WAIT)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.identity} hung:\n{self.output()}") from None
        if not raw:
            return None
        line: Line = json.loads(raw)
        self.log.append(line)
        return line

    async def until(self, match: Callable[[Line], bool]) -> Line:
        while (line := await self.line()) is not None:
            if match(line):
                return line
        raise AssertionError(f"{self.identity} exited:\n{self.output()}")

    async def stop(self) -> None:
        """Close its stdin (it exits), and read its log to the end."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        while await self.line() is not None:
            pass
        assert await self.proc.wait() == 0, self.output()
        assert self.log[-1]["event"] == "exit"

    def output(self) -> str:
        return self.stderr.read_text(errors="replace")[-4000:]

    @property
    def outcomes(self) -> list[Line]:
        return [line for line in self.log if line["event"] == "outcome"]


@contextlib.asynccontextmanager
async def fleet(etcd: Member, tmp_path: Path) -> AsyncIterator[tuple[str, list[Replica]]]:
    """A canary (replica 0) and `FOLLOWERS` followers of one config name, all ready on V0."""
    name = f"fleet{os.getpid()}x{next(_names)}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    replicas: list[Replica] = []
    try:
        for i in range(FOLLOWERS + 1):
            identity = "canary" if i == 0 else f"follower-{i}"
            volume = ConfigMapVolume(tmp_path / identity, {"config.yaml": V0})
            stderr = tmp_path / f"{identity}.stderr"
            with stderr.open("wb") as err:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "tests.etcd.replica",
                    str(volume.directory),
                    name,
                    etcd.endpoint,
                    PREFIX,
                    "canary" if i == 0 else "follower",
                    identity,
                    WINDOW,
                    cwd=ROOT,
                    env=env,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=err,
                )
            replicas.append(Replica(identity, volume, proc, stderr))
        for replica in replicas:
            ready = await replica.until(lambda line: line["event"] == "ready")
            assert (ready["generation"], ready["model"]) == (1, "gpt-4")
        yield name, replicas
    finally:
        for replica in replicas:
            if replica.proc.returncode is None:
                replica.proc.kill()
                await replica.proc.wait()


def held(line: Line) -> bool:
    return line.get("result") == "config_changed" and not line["applied"]


def quarantined(line: Line) -> bool:
    return line.get("error") == "quarantined"


async def hold(followers: list[Replica], text: str) -> str:
    """Give each follower ``text``, one after the other: each holds it for a verdict."""
    hashes = set()
    for follower in followers:
        follower.update(text)
        line = await follower.until(held)
        hashes.add(line["awaiting"])
    assert len(hashes) == 1, hashes
    assert None not in hashes
    return hashes.pop()  # type: ignore[no-any-return]


async def test_a_harmful_config_never_reaches_a_follower_process(
    etcd: Member, tmp_path: Path
) -> None:
    async with fleet(etcd, tmp_path) as (name, (canary, *followers)):
        early, late = followers[:EARLY], followers[EARLY:]
        h = await hold(early, HARMFUL)

        canary.update(HARMFUL)
        on_probation = await canary.until(lambda line: line.get("applied", False))
        assert (on_probation["config_hash"], on_probation["model"]) == (h, "gpt-5")
        back = await canary.until(lambda line: line.get("trigger") == "rollback")
        assert back["applied"]
        assert back["model"] == "gpt-4"

        for follower in early:
            await follower.until(quarantined)
        for follower in late:  # their content changes after the bad verdict was written
            follower.update(HARMFUL)
            await follower.until(quarantined)

        verdict = await VerdictStore(name, prefix=PREFIX, endpoints=[etcd.endpoint]).get(h)
        assert verdict is not None
        assert (verdict.verdict, verdict.by) == ("bad", "canary")
        for replica in (canary, *followers):
            await replica.stop()
        for follower in followers:  # each process's whole commit log
            assert not any(line["applied"] for line in follower.outcomes), follower.log
            assert all(line["model"] == "gpt-4" for line in follower.log)
            assert follower.log[-1]["quarantined"] == [[h, "verdict", ["llm"]]]
            assert follower.log[-1]["awaiting"] is None
        committed = [line["config_hash"] for line in canary.outcomes if line["applied"]]
        assert committed == [h, back["config_hash"]]  # the harmful hash, then rolled back
        assert canary.log[-1]["quarantined"][0][:2] == [h, "failures"]


async def test_a_good_config_is_committed_by_every_follower_process_after_its_verdict(
    etcd: Member, tmp_path: Path
) -> None:
    async with fleet(etcd, tmp_path) as (name, (canary, *followers)):
        early, late = followers[:EARLY], followers[EARLY:]
        h = await hold(early, GOOD)

        canary.update(GOOD)
        on_probation = await canary.until(lambda line: line.get("applied", False))
        assert on_probation["config_hash"] == h
        for follower in early:  # the window ends clean: the canary writes good
            committed = await follower.until(lambda line: line.get("applied", False))
            assert (committed["config_hash"], committed["trigger"]) == (h, "verdict")
        for follower in late:  # their content changes after the good verdict was written
            follower.update(GOOD)
            committed = await follower.until(lambda line: line.get("applied", False))
            assert committed["config_hash"] == h

        verdict = await VerdictStore(name, prefix=PREFIX, endpoints=[etcd.endpoint]).get(h)
        assert verdict is not None
        assert (verdict.verdict, verdict.by) == ("good", "canary")
        for replica in (canary, *followers):
            await replica.stop()
        for replica in (canary, *followers):
            applied = [line for line in replica.outcomes if line["applied"]]
            assert [(a["config_hash"], a["generation"]) for a in applied] == [(h, 2)], replica.log
            assert replica.log[-1]["model"] == "gpt-5"
            assert replica.log[-1]["quarantined"] == []
        for follower in early:  # held, without committing, until the verdict
            first = follower.outcomes.index(next(o for o in follower.outcomes if o["applied"]))
            assert any(held(o) for o in follower.outcomes[:first])
