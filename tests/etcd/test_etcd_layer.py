"""An etcd key as one layer of a layered config, against real etcd: a file base with an etcd
overlay, each change seen through its own watch, one commit each."""

from __future__ import annotations

from pathlib import Path

import anyio
import msgspec
from prometheus_client import CollectorRegistry

from hotreload import ConfigValidationError, HotReloader, Layer, Origin, ReloadResult
from hotreload._etcd import EtcdSource
from hotreload.testing import write_atomic

from .servers import Admin, Member

WAIT = 10.0


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    model: str
    retries: int = 3


async def test_an_etcd_key_is_a_layer(
    etcd: Member, admin: Admin, registry: CollectorRegistry, tmp_path: Path
) -> None:
    key = "/layers/overlay.yaml"
    await admin.put(key, "retries: 5\n")
    base = tmp_path / "base.yaml"
    base.write_text("model: a\nretries: 1\n")
    overlay = EtcdSource(key, endpoints=[etcd.endpoint], max_backoff=0.2)
    async with HotReloader(
        [base, overlay], schema=Settings, registry=registry, poll_interval=0
    ) as reloader:
        assert reloader.config == Settings(model="a", retries=5)
        origins = {e.path: e.origin for e in reloader.explain()}
        assert origins["retries"] == Origin(overlay.uri, 1, 10)
        assert reloader.snapshot.version is not None  # etcd's revision is carried through

        changes = reloader.changes()
        await admin.put(key, "retries: 7\n")  # seen through the etcd watch
        snap = await anext(changes)
        assert snap.config == Settings(model="a", retries=7)
        write_atomic(base, "model: b\nretries: 1\n")  # seen through the file hub
        snap = await anext(changes)
        assert snap.config == Settings(model="b", retries=7)

        outcomes = reloader.outcomes()
        await admin.put(key, "retries: many\n")
        error = None
        with anyio.fail_after(WAIT):
            async for outcome in outcomes:
                if outcome.result is ReloadResult.VALIDATION_FAILED:
                    error = outcome.error
                    break
        assert isinstance(error, ConfigValidationError)
        assert (error.source, error.line) == (overlay.uri, 1)
        assert reloader.config == Settings(model="b", retries=7)


async def test_an_optional_etcd_layer_may_be_absent(
    etcd: Member, admin: Admin, registry: CollectorRegistry, tmp_path: Path
) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("model: a\n")
    overlay = EtcdSource("/layers/absent.yaml", endpoints=[etcd.endpoint], max_backoff=0.2)
    async with HotReloader(
        [base, Layer(overlay, optional=True)], schema=Settings, registry=registry
    ) as reloader:
        assert reloader.config == Settings(model="a")
