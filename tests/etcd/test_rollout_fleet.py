"""Fleet rollout (issue 26) across OS processes on real etcd: 1 canary and 9 followers, each a
`replica` process on its own ConfigMap-style directory, whose ``..data`` swap this test does
at a different time for each, as kubelet does. Each process's stdout is its commit log."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hotreload._verdicts import VerdictStore
from hotreload.testing import ConfigMapVolume

from .servers import Admin, Member, b64

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
LINE_WAIT = 60.0  # per line read from a replica: only a hang guard
PREFIX = "/tests-rollout-fleet"
FOLLOWERS = 9
EARLY = 5  # followers whose content changes before the canary's verdict; the rest after it
WINDOW = "1.0"
KILL_WINDOW = "3.0"  # long enough that the canary is SIGKILLed before its window ends
LONG_WINDOW = "30.0"  # the operator's verdict comes long before the canary's
SMALL = 4  # followers in the kill and operator scenarios
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


def child_env() -> dict[str, str]:
    """This checkout first on the path of every child process."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


@contextlib.asynccontextmanager
async def fleet(
    etcd: Member | list[Member],
    tmp_path: Path,
    *,
    followers: int = FOLLOWERS,
    auto: bool = False,
    window: str = WINDOW,
) -> AsyncIterator[tuple[str, list[Replica]]]:
    """A canary (replica 0) and ``followers`` followers of one config name, all ready on V0.

    ``auto``: every role is ``auto``; replica 0 starts alone and wins the election first.
    A list of members: every replica is given all their endpoints, in that order."""
    endpoints = ",".join(m.endpoint for m in (etcd if isinstance(etcd, list) else [etcd]))
    name = f"fleet{os.getpid()}x{next(_names)}"
    env = child_env()
    replicas: list[Replica] = []

    async def spawn(i: int) -> Replica:
        identity = "canary" if i == 0 else f"follower-{i}"
        role = "auto" if auto else "canary" if i == 0 else "follower"
        volume = ConfigMapVolume(tmp_path / identity, {"config.yaml": V0})
        stderr = tmp_path / f"{identity}.stderr"
        with stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.etcd.replica",
                str(volume.directory),
                name,
                endpoints,
                PREFIX,
                role,
                identity,
                window,
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        replica = Replica(identity, volume, proc, stderr)
        replicas.append(replica)
        return replica

    try:
        first = await spawn(0)
        if auto:  # the others start once it holds the lease: replica 0 stays the canary
            await first.until(lambda line: line["role"] == "canary")
        for i in range(1, followers + 1):
            await spawn(i)
        for replica in replicas:
            ready = next((line for line in replica.log if line["event"] == "ready"), None)
            if ready is None:
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


def applied(line: Line) -> bool:
    return bool(line.get("applied", False))


async def test_a_new_canary_takes_over_the_rollout_of_a_canary_killed_mid_probation(
    etcd: Member, tmp_path: Path
) -> None:
    """The policy (hotreload/_rollout.py): a hash without a verdict is held by every follower;
    when the canary dies its lease expires (the election's TTL, 5 s), one follower is elected,
    and as canary it commits the hash it held, runs its own probation and writes the verdict
    (``good`` here); the others commit on that verdict. No follower commits it without one."""
    async with fleet(etcd, tmp_path, followers=SMALL, auto=True, window=KILL_WINDOW) as (
        name,
        (canary, *followers),
    ):
        h = await hold(followers, GOOD)
        canary.update(GOOD)
        on_probation = await canary.until(applied)
        assert on_probation["config_hash"] == h
        canary.proc.send_signal(signal.SIGKILL)
        assert await canary.proc.wait() == -signal.SIGKILL

        for follower in followers:  # the new canary by its probation, the others by its verdict
            committed = await follower.until(applied)
            assert committed["config_hash"] == h

        verdict = await VerdictStore(name, prefix=PREFIX, endpoints=[etcd.endpoint]).get(h)
        assert verdict is not None
        elected = [f for f in followers if any(line["role"] == "canary" for line in f.log)]
        assert len(elected) == 1, [f.log for f in followers]
        new = elected[0]
        assert (verdict.verdict, verdict.by) == ("good", new.identity)  # not the killed one's
        for follower in followers:
            await follower.stop()
        for follower in followers:  # each survivor's whole commit log, held until a verdict
            commits = [line for line in follower.outcomes if line["applied"]]
            assert [(c["config_hash"], c["generation"]) for c in commits] == [(h, 2)], follower.log
            first = follower.log.index(commits[0])
            assert any(held(line) for line in follower.log[:first])
            assert follower.log[-1]["model"] == "gpt-5"
            if follower is new:  # it committed the held hash only once it was the canary
                assert (commits[0]["role"], commits[0]["trigger"]) == ("canary", "role")
                assert all(line["role"] != "canary" for line in new.log[:first])
            else:
                assert commits[0]["trigger"] == "verdict"
                # (later, as the others stop, the lease may pass to it: not before its commit)
                assert all(line["role"] == "follower" for line in follower.log[: first + 1])


async def test_an_operators_bad_before_the_canarys_verdict_stops_the_rollout(
    etcd: Member, tmp_path: Path
) -> None:
    """`hotreload verdict ... bad` from another process while the canary is on probation: the
    canary rolls back (its quarantine says ``verdict``), each follower quarantines the hash it
    held and none ever commits it, although the config itself is healthy."""
    async with fleet(etcd, tmp_path, followers=SMALL, window=LONG_WINDOW) as (
        name,
        (canary, *followers),
    ):
        h = await hold(followers, GOOD)
        canary.update(GOOD)
        on_probation = await canary.until(applied)
        assert on_probation["config_hash"] == h

        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hotreload.cli",
            "verdict",
            "--etcd",
            etcd.endpoint,
            "--prefix",
            PREFIX,
            "--name",
            name,
            h,
            "bad",
            "--reason",
            "test",
            cwd=ROOT,
            env=child_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(cli.communicate(), LINE_WAIT)
        finally:
            if cli.returncode is None:
                cli.kill()
                await cli.wait()
        assert cli.returncode == 0, (out, err)

        back = await canary.until(applied)  # the canary's window is far from over
        assert (back["trigger"], back["model"]) == ("rollback", "gpt-4")
        assert back["config_hash"] != h
        for follower in followers:
            await follower.until(quarantined)

        verdict = await VerdictStore(name, prefix=PREFIX, endpoints=[etcd.endpoint]).get(h)
        assert verdict is not None
        assert verdict.verdict == "bad"
        assert verdict.by != "canary"
        for replica in (canary, *followers):
            await replica.stop()
        for follower in followers:
            assert not any(line["applied"] for line in follower.outcomes), follower.log
            assert all(line["model"] == "gpt-4" for line in follower.log)
            assert follower.log[-1]["quarantined"][0][:2] == [h, "verdict"]
            assert follower.log[-1]["awaiting"] is None
        committed = [line["config_hash"] for line in canary.outcomes if line["applied"]]
        assert committed == [h, back["config_hash"]]
        assert canary.log[-1]["quarantined"] == [[h, "verdict", ["hotreload verdict"]]]


async def test_an_etcd_leader_killed_mid_rollout_lets_no_follower_commit_without_a_verdict(
    cluster: list[Member], tmp_path: Path
) -> None:
    """A 3-member cluster loses its leader while the canary is on probation: the followers go
    on holding the hash (none commits it without a verdict); once a new leader is elected the
    canary's ``good`` lands and every follower commits the hash exactly once, on that verdict."""
    leader = await Admin(*cluster).leader()
    survivors = [m for m in cluster if m is not leader]
    async with fleet([leader, *survivors], tmp_path, followers=SMALL, window=KILL_WINDOW) as (
        name,
        (canary, *followers),
    ):
        store = VerdictStore(name, prefix=PREFIX, endpoints=[m.endpoint for m in survivors])
        h = await hold(followers, GOOD)
        canary.update(GOOD)
        on_probation = await canary.until(applied)
        assert on_probation["config_hash"] == h
        assert await store.get(h) is None
        before = int(
            (await Admin(leader).call("/v3/kv/range", {"key": b64("/")}))["header"]["revision"]
        )
        leader.kill()  # every replica's first endpoint; the canary's window is not over

        for follower in followers:
            committed = await follower.until(applied)
            assert (committed["config_hash"], committed["trigger"]) == (h, "verdict")

        assert await Admin(*survivors).leader() in survivors
        verdict = await store.get(h)
        assert verdict is not None
        assert (verdict.verdict, verdict.by) == ("good", "canary")
        assert verdict.revision > before  # not already written before the kill
        for replica in (canary, *followers):
            await replica.stop()
        for follower in followers:  # each whole log: held, never committed, until the verdict
            commits = [line for line in follower.outcomes if line["applied"]]
            assert [(c["config_hash"], c["generation"]) for c in commits] == [(h, 2)], follower.log
            first = follower.log.index(commits[0])
            assert any(held(line) and line["awaiting"] == h for line in follower.log[:first])
            assert all(line["model"] == "gpt-4" for line in follower.log[:first])
            assert all(line["role"] == "follower" for line in follower.log)
            assert follower.log[-1]["model"] == "gpt-5"
            assert follower.log[-1]["quarantined"] == []
        commits = [line for line in canary.outcomes if line["applied"]]
        assert [(c["config_hash"], c["generation"]) for c in commits] == [(h, 2)], canary.log
        assert canary.log[-1]["quarantined"] == []
