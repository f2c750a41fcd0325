"""Fleet rollout (issue 26) against real etcd: one canary and two followers in this process,
each on its own ConfigMap-style directory updated by its own ``..data`` swap."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import msgspec
import structlog
from prometheus_client import CollectorRegistry

from hotreload import (
    ConfigRefusedError,
    HotReloader,
    Probation,
    ReloadOutcome,
    ReloadResult,
    Rollout,
    Stream,
)
from hotreload._verdicts import VerdictStore
from hotreload.asgi import config_report
from hotreload.testing import ConfigMapVolume

from .servers import Gate, Member

WAIT = 15.0
PREFIX = "/tests-rollout"
V0 = "model: gpt-4\n"
V1 = "model: gpt-5\n"
_names = itertools.count()


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    model: str


@dataclass
class Replica:
    reloader: HotReloader[Settings]
    volume: ConfigMapVolume
    outcomes: Stream[ReloadOutcome]
    seen: list[ReloadOutcome]

    def update(self, text: str) -> None:
        self.volume.update({"config.yaml": text})

    async def until(self, match: Callable[[ReloadOutcome], bool]) -> ReloadOutcome:
        """The next outcome that matches (``WAIT`` only guards against a hang)."""
        with anyio.fail_after(WAIT):
            async for outcome in self.outcomes:
                self.seen.append(outcome)
                if match(outcome):
                    return outcome
        raise AssertionError("the reloader closed")  # pragma: no cover

    @property
    def report(self) -> object:
        return config_report(self.reloader, include_config=False)["rollout"]

    def metric(self, name: str, **labels: str) -> float | None:
        """``hotreload_config_rollout_<name>`` of this replica, from its own registry."""
        return self.reloader.registry.get_sample_value(
            f"hotreload_config_rollout_{name}", {"config": self.reloader.name, **labels}
        )

    def roles(self) -> tuple[float | None, float | None]:
        return self.metric("canary"), self.metric("awaiting_verdict")

    async def until_metric(self, value: float, name: str, **labels: str) -> None:
        """Wait for a series the canary sets after its etcd write returns: that write is
        what the followers see, so their outcomes can come first."""
        with anyio.fail_after(WAIT):
            while self.metric(name, **labels) != value:  # noqa: ASYNC110 - no event: see above
                await asyncio.sleep(0.01)  # sleep-ok: polling a series set after an etcd reply


@asynccontextmanager
async def fleet(
    etcd: Member,
    tmp_path: Path,
    window: float,
    first_follower_via: str | None = None,
    **follower_options: Any,
) -> AsyncIterator[tuple[str, Replica, Replica, Replica]]:
    """A canary and two followers (with ``follower_options`` for their `Rollout`) of one
    config name, all on ``V0``; the first follower reaches etcd at ``first_follower_via``."""
    name = f"roll{next(_names)}"
    async with AsyncExitStack() as stack:
        replicas = []
        for identity in ("canary", "follower-1", "follower-2"):
            volume = ConfigMapVolume(tmp_path / identity, {"config.yaml": V0})
            reloader = HotReloader(
                volume.path("config.yaml"),
                schema=Settings,
                name=name,
                registry=CollectorRegistry(),
                probation=Probation(window=window, failures=3),
                rollout=Rollout(
                    [first_follower_via or etcd.endpoint]
                    if identity == "follower-1"
                    else [etcd.endpoint],
                    prefix=PREFIX,
                    role="canary" if identity == "canary" else "follower",
                    identity=identity,
                    **({} if identity == "canary" else follower_options),
                ),
            )
            await stack.enter_async_context(reloader)
            outcomes = await stack.enter_async_context(reloader.outcomes())
            replicas.append(Replica(reloader, volume, outcomes, []))
        canary, one, two = replicas
        yield name, canary, one, two


def held(outcome: ReloadOutcome) -> bool:
    return outcome.result is ReloadResult.CONFIG_CHANGED and not outcome.applied


def refused_as_quarantined(outcome: ReloadOutcome) -> bool:
    error = outcome.error
    return isinstance(error, ConfigRefusedError) and error.reason == "quarantined"


def store(etcd: Member, name: str) -> VerdictStore:
    return VerdictStore(name, prefix=PREFIX, endpoints=[etcd.endpoint])


async def hold_on_followers(*followers: Replica) -> str:
    """Give the followers ``V1``: each holds it (nothing committed) for a verdict."""
    for follower in followers:
        follower.update(V1)
        await follower.until(held)
    hashes = {f.report["awaiting_verdict"] for f in followers}  # type: ignore[index]
    assert len(hashes) == 1, hashes
    assert None not in hashes
    assert all(f.reloader.snapshot.generation == 1 for f in followers)
    return hashes.pop()  # type: ignore[no-any-return]


async def test_a_harmful_config_is_rolled_back_on_the_canary_and_never_reaches_followers(
    etcd: Member, tmp_path: Path
) -> None:
    async with fleet(etcd, tmp_path, window=60.0) as (name, canary, one, two):
        assert canary.report == {"role": "canary", "awaiting_verdict": None, "verdicts_seen": 0}
        assert [r.roles() for r in (canary, one, two)] == [(1, 0), (0, 0), (0, 0)]
        h = await hold_on_followers(one, two)
        assert one.report == {"role": "follower", "awaiting_verdict": h, "verdicts_seen": 0}
        assert [r.roles() for r in (canary, one, two)] == [(1, 0), (0, 1), (0, 1)]

        canary.update(V1)
        await canary.until(lambda o: o.applied and o.config_hash == h)  # on probation
        for _ in range(3):
            canary.reloader.record_failure("dep", "ConnectError", "connection refused")
        back = await canary.until(lambda o: o.trigger == "rollback")
        assert back.applied
        assert canary.reloader.config.model == "gpt-4"

        for follower in (one, two):
            await follower.until(refused_as_quarantined)
            (entry,) = follower.reloader.quarantined
            assert (entry.config_hash, entry.reason) == (h, "verdict")
            assert [e.name for e in entry.evidence] == ["dep"]
            assert follower.reloader.snapshot.generation == 1
            assert follower.reloader.config.model == "gpt-4"
            assert not any(o.applied for o in follower.seen)  # never committed
            assert follower.report == {
                "role": "follower",
                "awaiting_verdict": None,
                "verdicts_seen": 1,
            }
            assert follower.roles() == (0, 0)
            assert follower.metric("verdicts_total", verdict="bad") == 1
            assert follower.metric("verdicts_total", verdict="good") is None
            assert follower.metric("verdicts_written_total", verdict="bad") is None
        await canary.until_metric(1, "verdicts_written_total", verdict="bad")
        await canary.until_metric(1, "verdicts_total", verdict="bad")  # its own, seen back
        assert canary.metric("verdicts_written_total", verdict="good") is None
        assert canary.roles() == (1, 0)
        verdict = await store(etcd, name).get(h)
        assert verdict is not None
        assert (verdict.verdict, verdict.by) == ("bad", "canary")
        # Re-checked again, it is still refused: never committed.
        again = await one.reloader.reload()
        assert not again.applied
        assert refused_as_quarantined(again)


async def test_a_good_config_passes_the_canary_and_the_followers_commit_it(
    etcd: Member, tmp_path: Path
) -> None:
    async with fleet(etcd, tmp_path, window=0.5) as (name, canary, one, two):
        h = await hold_on_followers(one)
        canary.update(V1)
        await canary.until(lambda o: o.applied and o.config_hash == h)
        committed = await one.until(lambda o: o.applied)  # the window ended clean: good
        assert (committed.config_hash, committed.trigger) == (h, "verdict")
        assert one.reloader.snapshot.generation == 2
        assert one.report == {"role": "follower", "awaiting_verdict": None, "verdicts_seen": 1}
        assert one.roles() == (0, 0)
        assert one.metric("verdicts_total", verdict="good") == 1
        assert one.metric("verdicts_total", verdict="bad") is None
        assert one.metric("verdicts_written_total", verdict="good") is None
        await canary.until_metric(1, "verdicts_written_total", verdict="good")
        assert canary.metric("verdicts_written_total", verdict="bad") is None
        assert canary.roles() == (1, 0)
        verdict = await store(etcd, name).get(h)
        assert verdict is not None
        assert (verdict.verdict, verdict.by) == ("good", "canary")
        # A follower that sees the content after the verdict commits it at once.
        two.update(V1)
        late = await two.until(lambda o: o.applied)
        assert late.config_hash == h
        assert not any(held(o) for o in two.seen)
        assert two.roles() == (0, 0)
        assert two.metric("verdicts_total", verdict="good") == 1
        assert canary.reloader.quarantined == ()


async def test_an_operators_bad_before_the_canarys_verdict_stops_the_rollout(
    etcd: Member, tmp_path: Path
) -> None:
    async with fleet(etcd, tmp_path, window=60.0) as (name, canary, one, two):
        h = await hold_on_followers(one, two)
        canary.update(V1)
        await canary.until(lambda o: o.applied and o.config_hash == h)
        written = await store(etcd, name).write(h, "bad", ["stop it"], by="operator:me@ops")
        assert written.by == "operator:me@ops"
        back = await canary.until(lambda o: o.trigger == "rollback")  # the canary stops too
        assert back.applied
        assert canary.reloader.config.model == "gpt-4"
        for follower in (one, two):
            await follower.until(refused_as_quarantined)
            (entry,) = follower.reloader.quarantined
            assert (entry.config_hash, entry.reason) == (h, "verdict")
            assert entry.evidence[0].error_message == "stop it"
            assert follower.reloader.snapshot.generation == 1
            assert not any(o.applied for o in follower.seen)
        verdict = await store(etcd, name).get(h)
        assert verdict is not None
        assert verdict.by == "operator:me@ops"  # first writer wins


async def test_a_hold_past_its_timeout_is_kept_or_applied_as_the_policy_says(
    etcd: Member, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        keep = await stack.enter_async_context(
            fleet(etcd, tmp_path / "keep", window=60.0, hold_timeout=0.2, on_timeout="keep")
        )
        apply = await stack.enter_async_context(
            fleet(etcd, tmp_path / "apply", window=60.0, hold_timeout=0.2, on_timeout="apply")
        )
        logs = stack.enter_context(structlog.testing.capture_logs())
        h = await hold_on_followers(keep[2])
        await hold_on_followers(apply[2])
        # No canary ever looks at V1 here: no verdict comes.
        applied = await apply[2].until(lambda o: o.applied)
        assert (applied.config_hash, applied.trigger) == (h, "verdict_timeout")
        # The keep follower's timer was armed first, for as long: it has fired by now.
        timed_out = [e for e in logs if e["event"] == "verdict_hold_timed_out"]
        assert [(e["config"], e["action"]) for e in timed_out] == [
            (keep[0], "keep holding"),
            (apply[0], "apply"),
        ]
        again = await keep[2].reloader.reload()
        assert not again.applied
        assert keep[2].reloader.snapshot.generation == 1
        assert keep[2].report["awaiting_verdict"] == h  # type: ignore[index]


async def test_a_follower_cut_off_from_etcd_keeps_holding_and_resumes_by_revision(
    etcd: Member, tmp_path: Path
) -> None:
    async with (
        Gate(etcd.client_port) as gate,
        fleet(etcd, tmp_path, window=0.5, first_follower_via=gate.endpoint) as fleet_,
    ):
        _, canary, one, two = fleet_
        h = await hold_on_followers(one, two)
        gate.pause()
        gate.sever()  # follower-1 loses etcd: its verdict watch retries, delivering nothing
        canary.update(V1)
        await canary.until(lambda o: o.applied and o.config_hash == h)
        await two.until(lambda o: o.applied)  # the canary's good is written, and seen
        again = await one.reloader.reload()
        assert not again.applied  # no verdict seen: none invented, the hold stays
        assert one.report == {"role": "follower", "awaiting_verdict": h, "verdicts_seen": 0}
        gate.resume()
        committed = await one.until(lambda o: o.applied)  # the watch resumed by revision
        assert (committed.config_hash, committed.trigger) == (h, "verdict")
        assert one.reloader.snapshot.generation == 2


async def test_role_auto_elects_one_canary_which_proves_the_hash_for_the_other(
    etcd: Member, tmp_path: Path
) -> None:
    name = f"roll{next(_names)}"
    async with AsyncExitStack() as stack:
        replicas = []
        for identity in ("a", "b"):
            volume = ConfigMapVolume(tmp_path / identity, {"config.yaml": V0})
            reloader = HotReloader(
                volume.path("config.yaml"),
                schema=Settings,
                name=name,
                registry=CollectorRegistry(),
                probation=Probation(window=0.5),
                rollout=Rollout([etcd.endpoint], prefix=PREFIX, identity=identity),
            )
            await stack.enter_async_context(reloader)
            outcomes = await stack.enter_async_context(reloader.outcomes())
            replicas.append(Replica(reloader, volume, outcomes, []))
        for replica in replicas:
            election = replica.reloader._fleet.election  # type: ignore[union-attr]
            assert election is not None
            with anyio.fail_after(WAIT):
                await election.wait_until(lambda e=election: e.holder is not None)  # type: ignore[misc]
        roles = sorted(r.report["role"] for r in replicas)  # type: ignore[index]
        assert roles == ["canary", "follower"]
        canaries = [r.metric("canary") for r in replicas]  # set as the role changed
        assert canaries in ([1, 0], [0, 1]), canaries
        canary, follower = sorted(replicas, key=lambda r: r.report["role"])  # type: ignore[index]
        h = await hold_on_followers(follower)
        canary.update(V1)
        await canary.until(lambda o: o.applied and o.config_hash == h)
        committed = await follower.until(lambda o: o.applied)
        assert (committed.config_hash, committed.trigger) == (h, "verdict")


async def test_a_reloader_without_rollout_has_no_rollout_series(tmp_path: Path) -> None:
    """The rollout's series cost nothing to a reloader without one: none, not zeros."""
    volume = ConfigMapVolume(tmp_path / "alone", {"config.yaml": V0})
    registry = CollectorRegistry()
    async with HotReloader(
        volume.path("config.yaml"),
        schema=Settings,
        name=f"roll{next(_names)}",
        registry=registry,
        probation=Probation(window=0.5),
    ) as reloader:
        assert reloader._metrics.rollout is None
        names = {metric.name for metric in registry.collect()}
        assert "hotreload_config_quarantined" in names  # the probation series are there
        assert not [n for n in names if n.startswith("hotreload_config_rollout")], names
