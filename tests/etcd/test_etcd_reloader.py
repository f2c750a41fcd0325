"""The whole pipeline on an etcd key: ``HotReloader(source=EtcdSource(...))`` against real etcd."""

from __future__ import annotations

import anyio
import msgspec
from prometheus_client import CollectorRegistry

from hotreload import (
    ConfigError,
    ConfigParseError,
    ConfigReadError,
    ConfigValidationError,
    HotReloader,
    ReloadOutcome,
    ReloadResult,
    Stream,
)
from hotreload._etcd import EtcdSource

from .servers import Admin, Gate, Member

WAIT = 5.0


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    model: str
    retries: int = 3


def reloader(source: EtcdSource, registry: CollectorRegistry) -> HotReloader[Settings]:
    # No safety poll: every change below must come through the etcd watch.
    return HotReloader(source=source, schema=Settings, registry=registry, poll_interval=0)


async def until(
    outcomes: Stream[ReloadOutcome], result: ReloadResult, error: type[Exception]
) -> ConfigError:
    """The error of the next outcome that is ``result`` with an ``error``, from a stream
    opened before the write: etcd's event can reach the reloader before the writer has its
    answer, and one write may be checked twice (its event, and the re-check after the watch
    started)."""
    with anyio.fail_after(WAIT):
        async for outcome in outcomes:
            if outcome.result is result and isinstance(outcome.error, error):
                return outcome.error
    raise AssertionError("the reloader closed")


def fast(key: str, *endpoints: str) -> EtcdSource:
    return EtcdSource(key, endpoints=list(endpoints), max_backoff=0.2)


async def test_a_put_is_visible(etcd: Member, admin: Admin, registry: CollectorRegistry) -> None:
    key = "/reloader/visible.yaml"
    await admin.put(key, "model: a\n")
    source = fast(key, etcd.endpoint)
    async with reloader(source, registry) as r:
        assert r.config == Settings(model="a")
        assert r.snapshot.source == source.uri
        await admin.put(key, "model: b\nretries: 5\n")
        snapshot = await r.wait_for_generation(2, timeout=WAIT)
        assert snapshot.config == Settings(model="b", retries=5)


async def test_an_invalid_value_keeps_the_previous_config(
    etcd: Member, admin: Admin, registry: CollectorRegistry
) -> None:
    key = "/reloader/invalid.yaml"
    await admin.put(key, "model: a\n")
    async with reloader(fast(key, etcd.endpoint), registry) as r, r.outcomes() as outcomes:
        await admin.put(key, "model: [unclosed\n")
        await until(outcomes, ReloadResult.VALIDATION_FAILED, ConfigParseError)
        await admin.put(key, "model: a\nretries: many\n")
        schema = await until(outcomes, ReloadResult.VALIDATION_FAILED, ConfigValidationError)
        assert isinstance(schema, ConfigValidationError)
        assert schema.field_path == "retries"
        await admin.delete(key)
        missing = await until(outcomes, ReloadResult.ERROR, ConfigReadError)
        assert missing.reason == "missing"
        assert r.config == Settings(model="a")
        assert r.snapshot.generation == 1

        await admin.put(key, "model: c\n")
        assert (await r.wait_for_generation(2, timeout=WAIT)).config.model == "c"


async def test_sigkill_and_restart_the_reloader_recovers(
    own_etcd: Member, registry: CollectorRegistry
) -> None:
    admin = Admin(own_etcd)
    key = "/reloader/restart.yaml"
    await admin.put(key, "model: a\n")
    async with (
        Gate(own_etcd.client_port) as gate,
        reloader(fast(key, gate.endpoint), registry) as r,
    ):
        gate.pause()
        await admin.put(key, "model: written-before-the-kill\n")  # never seen
        gate.sever()
        own_etcd.kill()
        await own_etcd.restart()
        await admin.put(key, "model: written-while-it-was-away\n")
        gate.resume()
        snapshot = await r.wait_for_generation(2, timeout=WAIT)
        # Both writes were replayed; the worker coalesces them into the latest.
        assert r.config.model == "written-while-it-was-away"

        await admin.put(key, "model: after\n")
        await r.wait_for_generation(snapshot.generation + 1, timeout=WAIT)
        assert r.config.model == "after"


async def test_a_cluster_that_loses_its_leader_converges(
    cluster: list[Member], registry: CollectorRegistry
) -> None:
    admin = Admin(*cluster)
    key = "/reloader/cluster.yaml"
    await admin.put(key, "model: a\n")
    leader = await admin.leader()
    endpoints = [leader.endpoint, *(m.endpoint for m in cluster if m is not leader)]
    async with reloader(fast(key, *endpoints), registry) as r:
        leader.kill()
        await admin.put(key, "model: b\n")
        await r.wait_for_generation(2, timeout=WAIT)
        assert r.config.model == "b"
