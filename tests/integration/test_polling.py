"""Polling forced (NFS, CIFS, FUSE, Docker Desktop mounts): every update style is still seen.

``poll_interval=0`` throughout, so nothing but the polling watcher can find a change. The Rust
poll watcher compares modification times in whole seconds; the writes below come several per
second with the same size, so without the hub's content comparison most would be missed and the
waits would time out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import hotreload._mounts
from hotreload import FileSource, HotReloader
from hotreload.testing import ConfigMapVolume, write_atomic, write_in_place
from tests.hardening.conftest import inotify_fds, inotify_fds_settle
from tests.integration.conftest import SettingsSchema
from tests.integration.test_update_styles import watcher_up

WAIT = 10.0
WRITES = 6


def in_place(path: Path, tmp_path: Path) -> Callable[[str], None]:
    return lambda text: write_in_place(path, text)


def atomic(path: Path, tmp_path: Path) -> Callable[[str], None]:
    return lambda text: write_atomic(path, text)


STYLES = {"in_place": in_place, "atomic_rename": atomic}


@pytest.mark.parametrize("style", [*STYLES, "configmap"])
async def test_every_update_style_is_seen_with_polling_forced(
    style: str, tmp_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    write: Callable[[str], None]
    if style == "configmap":
        volume = ConfigMapVolume(tmp_path / "cm", {"config.yaml": "model: gpt-0\n"})
        path = volume.path("config.yaml")
        write = lambda text: volume.update({"config.yaml": text})  # noqa: E731
    else:
        path = tmp_path / "config.yaml"
        path.write_text("model: gpt-0\n")
        write = STYLES[style](path, tmp_path)
    async with HotReloader(
        FileSource(path, force_polling=True, poll_delay_ms=50),
        schema=settings,
        registry=registry,
        poll_interval=0,
    ) as r:
        assert r.source.force_polling is True  # type: ignore[attr-defined]
        await watcher_up(r)
        for i in range(1, WRITES + 1):
            # Same size every time, several per second: one mtime second holds many writes.
            write(f"model: gpt-{i}\n")
            snap = await r.wait_for_generation(1 + i, timeout=WAIT)
            assert snap.config.model == f"gpt-{i}"
        assert r.snapshot.generation == 1 + WRITES


async def test_polling_opens_no_inotify_instance(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    before = await inotify_fds_settle(0)  # a watcher of an earlier test may still be closing
    async with HotReloader(
        config_path, schema=settings, registry=registry, name="inotify", poll_interval=0
    ) as r:
        await watcher_up(r)
        assert inotify_fds() == before + 1  # the control: the default uses inotify
    assert await inotify_fds_settle(before) == before
    async with HotReloader(
        FileSource(config_path, force_polling=True, poll_delay_ms=50),
        schema=settings,
        registry=registry,
        name="polling",
        poll_interval=0,
    ) as r:
        await watcher_up(r)
        assert inotify_fds() == before
        write_in_place(config_path, "model: gpt-5\n")
        await r.wait_for_generation(2, timeout=WAIT)


async def test_watchfiles_force_polling_env_is_honoured(
    config_path: Path,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    settings: SettingsSchema,
) -> None:
    monkeypatch.setenv("WATCHFILES_FORCE_POLLING", "1")
    monkeypatch.setenv("WATCHFILES_POLL_DELAY_MS", "40")
    before = await inotify_fds_settle(0)  # a watcher of an earlier test may still be closing
    async with HotReloader(config_path, schema=settings, registry=registry, poll_interval=0) as r:
        assert (r.source.force_polling, r.source.poll_delay_ms) == (True, 40)  # type: ignore[attr-defined]
        await watcher_up(r)
        assert inotify_fds() == before
        write_in_place(config_path, "model: gpt-5\n")
        await r.wait_for_generation(2, timeout=WAIT)


async def test_a_file_on_nfs_warns_once_naming_the_option(
    tmp_path: Path,
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
    logs: list[MutableMapping[str, Any]],
    settings: SettingsSchema,
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    for name in ("a.yaml", "b.yaml"):
        (share / name).write_text("model: gpt-4\n")
    mountinfo = tmp_path / "mountinfo"
    real = os.path.realpath(share)
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        f"40 22 0:35 / {real} rw,relatime shared:20 - nfs4 fileserver:/export rw,vers=4.2\n"
    )
    monkeypatch.setattr(hotreload._mounts, "MOUNTINFO", str(mountinfo))
    monkeypatch.setattr(hotreload._mounts, "_warned_mounts", set())

    def warnings() -> list[MutableMapping[str, Any]]:
        return [e for e in logs if e["event"] == "config_on_filesystem_without_inotify"]

    async with HotReloader(
        FileSource(share / "a.yaml", force_polling=True, poll_delay_ms=50),
        schema=settings,
        registry=registry,
        name="polled",
    ):
        assert warnings() == []  # polling already: nothing to say
    async with (
        HotReloader(share / "a.yaml", schema=settings, registry=registry, name="a"),
        HotReloader(share / "b.yaml", schema=settings, registry=registry, name="b"),
    ):
        pass
    [warning] = warnings()  # once per mount point, not once per file
    assert warning["log_level"] == "warning"
    assert warning["config"] == "a"
    assert f"{real} is nfs4" in warning["detail"]
    assert "force_polling=True" in warning["detail"]
    assert "WATCHFILES_FORCE_POLLING" in warning["detail"]
