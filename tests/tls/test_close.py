"""Closing a live context right after a rotation: the expiry watcher must not outlive it.

On Python 3.10/3.11 ``asyncio.wait_for`` swallows a cancel that lands in the same loop turn as
the result it waits for. Leaving ``async with`` straight after ``wait_for_generation`` is that
turn: the change reaches the expiry watcher as the exit cancels it, and the exit hung for
good (found by the README's snippet).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from hotreload.testing import ConfigMapVolume
from hotreload.tls import ClientTLS, Issued, ServerTLS

from .conftest import tls_files


async def test_server_tls_closes_in_the_turn_a_rotation_is_seen(
    volume: ConfigMapVolume, pair_a: Issued, pair_b: Issued
) -> None:
    tls = ServerTLS(volume.path("tls.crt"), volume.path("tls.key"))
    async with tls:
        volume.update(tls_files(pair_b))
        await tls.reloader.wait_for_generation(2, timeout=10)
    assert not _expiry_watchers()
    assert tls.info is not None
    assert tls.info.serial == pair_b.serial


async def test_client_tls_closes_in_the_turn_a_rotation_is_seen(
    tmp_path: Path, pair_a: Issued, pair_b: Issued
) -> None:
    volume = ConfigMapVolume(tmp_path / "ca", {"ca.crt": pair_a.cert})
    tls = ClientTLS(ca=volume.path("ca.crt"))
    async with tls:
        volume.update({"ca.crt": pair_b.cert})
        await tls.reloader.wait_for_generation(2, timeout=10)
    assert not _expiry_watchers()


def _expiry_watchers() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "hotreload-tls-expiry"]
