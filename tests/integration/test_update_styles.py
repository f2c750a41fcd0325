"""Every way a config file gets updated in the wild, seen by the real watcher on real files.

All reloaders here run with ``poll_interval=0``, so each change is proven to reach the reloader
through the watcher alone. Nothing sleeps: every wait is on a generation or an outcome.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NamedTuple

import anyio
import pytest
from prometheus_client import CollectorRegistry

from hotreload import HotReloader, ReloadOutcome, ReloadResult, Snapshot, Stream
from hotreload.testing import ConfigMapVolume, write_atomic, write_in_place
from tests.conftest import MetricReader
from tests.integration.conftest import AnySettings, SettingsSchema

WAIT = 5.0
#: Directory removal and recreation needs a watcher rebuild (or two): allow more.
SLOW_WAIT = 10.0
NAME = "styles"


async def watcher_up(r: HotReloader[AnySettings]) -> None:
    """Return once the watcher covering ``r`` is running: its first ``rescan`` outcome.

    Until then a change could be caught by that rescan rather than by a watch event, which
    would prove nothing about the watcher.
    """
    last = r.last_outcome
    if last is not None and last.trigger == "rescan":
        return
    await r.wait_for_outcome(lambda o: o.trigger == "rescan", timeout=WAIT)


@asynccontextmanager
async def reloader(
    path: Path, registry: CollectorRegistry, settings: SettingsSchema, *, name: str = NAME
) -> AsyncIterator[HotReloader[AnySettings]]:
    async with HotReloader(
        path, schema=settings, name=name, registry=registry, poll_interval=0
    ) as r:
        await watcher_up(r)
        yield r


async def next_snapshot(stream: Stream[Snapshot[AnySettings]]) -> Snapshot[AnySettings]:
    with anyio.fail_after(WAIT):
        return await anext(stream)


async def next_commit(r: HotReloader[AnySettings], timeout: float = WAIT) -> ReloadOutcome:
    """The next applied outcome (call right after making the change: nothing yields before)."""
    return await r.wait_for_outcome(lambda o: o.applied, timeout=timeout)


async def assert_single_commit_then_next(
    r: HotReloader[AnySettings],
    changes: Stream[Snapshot[AnySettings]],
    *,
    generation: int,
    model: str,
    follow_up: str,
) -> None:
    """``changes`` yields exactly one snapshot (``generation``, ``model``) for the update just
    made: a second, different update (``follow_up`` written in place) must be the very next
    snapshot the stream yields, at ``generation + 1``.
    """
    first = await next_snapshot(changes)
    assert (first.generation, first.config.model) == (generation, model)
    write_in_place(r.path, f"model: {follow_up}\n")
    second = await next_snapshot(changes)
    assert (second.generation, second.config.model) == (generation + 1, follow_up)
    assert r.snapshot.generation == generation + 1


# -- plain files ----------------------------------------------------------------------------


async def test_in_place_write_is_picked_up(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with reloader(config_path, registry, settings) as r:
        assert r.snapshot.generation == 1
        write_in_place(config_path, "model: gpt-5\nretries: 7\n")
        outcome = await next_commit(r)
        snap = await r.wait_for_generation(2, timeout=WAIT)
        assert outcome.trigger == "watch"
        assert outcome.generation == snap.generation == 2
        assert snap.config == r.config == settings(model="gpt-5", retries=7)
        assert set(outcome.changed) == {"model", "retries"}


async def test_atomic_rename_is_picked_up(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with reloader(config_path, registry, settings) as r:
        changes = r.changes()
        write_atomic(config_path, "model: gpt-5\n")
        outcome = await next_commit(r)
        snap = await r.wait_for_generation(2, timeout=WAIT)
        assert outcome.trigger == "watch"
        assert snap.config == settings(model="gpt-5")
        # No leftover temp file, and the rename is one commit, not two.
        assert sorted(p.name for p in config_path.parent.iterdir()) == ["config.yaml"]
        await assert_single_commit_then_next(
            r, changes, generation=2, model="gpt-5", follow_up="gpt-6"
        )


async def test_editor_style_burst_is_one_commit(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with reloader(config_path, registry, settings) as r:
        changes = r.changes()
        # What an editor does on save: write a temp file, rename it over, fix mode, touch.
        swap = config_path.with_name(".config.yaml.swp")
        swap.write_text("model: gpt-5\n")
        os.replace(swap, config_path)
        os.chmod(config_path, 0o640)
        os.utime(config_path)
        snap = await r.wait_for_generation(2, timeout=WAIT)
        assert snap.config == settings(model="gpt-5")
        await assert_single_commit_then_next(
            r, changes, generation=2, model="gpt-5", follow_up="gpt-6"
        )


async def test_delete_then_recreate_keeps_old_config_while_missing(
    config_path: Path, registry: CollectorRegistry, metric: MetricReader, settings: SettingsSchema
) -> None:
    async with reloader(config_path, registry, settings) as r:
        config_path.unlink()
        missing = await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        assert missing.error is not None
        assert missing.error.reason == "missing"
        assert not missing.applied
        assert missing.generation == 1
        assert r.snapshot.generation == 1
        assert r.config == settings(model="gpt-4")
        assert metric("hotreload_config_reload_failures_total", config=NAME, reason="missing") == 1
        assert metric("hotreload_config_last_reload_successful", config=NAME) == 0

        write_in_place(config_path, "model: gpt-5\n")
        snap = await r.wait_for_generation(2, timeout=WAIT)
        assert snap.config == r.config == settings(model="gpt-5")
        assert metric("hotreload_config_last_reload_successful", config=NAME) == 1


async def test_comment_only_edit_is_unchanged(
    config_path: Path, registry: CollectorRegistry, metric: MetricReader, settings: SettingsSchema
) -> None:
    async with reloader(config_path, registry, settings) as r:
        before = r.snapshot
        write_in_place(config_path, "# tuned by ops\nmodel: gpt-4   # the default\n\n")
        outcome = await r.wait_for_outcome(lambda o: o.trigger == "watch", timeout=WAIT)
        assert outcome.result is ReloadResult.CONFIG_UNCHANGED
        assert not outcome.applied
        assert outcome.generation == 1
        assert outcome.config_hash == before.config_hash
        assert r.snapshot.generation == 1
        assert r.snapshot.config_hash == before.config_hash
        assert r.config == settings(model="gpt-4")
        assert metric("hotreload_config_reload_total", config=NAME) == 0


async def test_identical_rewrite_is_unchanged(
    config_path: Path, registry: CollectorRegistry, metric: MetricReader, settings: SettingsSchema
) -> None:
    async with reloader(config_path, registry, settings) as r:
        before = r.snapshot
        reloads = metric("hotreload_config_reload_total", config=NAME)
        assert reloads == 0
        write_in_place(config_path, config_path.read_bytes())
        outcome = await r.wait_for_outcome(lambda o: o.trigger == "watch", timeout=WAIT)
        assert outcome.result is ReloadResult.CONFIG_UNCHANGED
        assert not outcome.applied
        assert r.snapshot.generation == 1
        assert r.snapshot.config_hash == before.config_hash
        assert r.snapshot.content_sha256 == before.content_sha256
        assert metric("hotreload_config_reload_total", config=NAME) == reloads


# -- a kubelet-mounted ConfigMap ------------------------------------------------------------


def stamp_dirs(volume: ConfigMapVolume) -> list[str]:
    return sorted(p.name for p in volume.directory.iterdir() if p.name.startswith("..2"))


async def test_configmap_update_is_exactly_one_commit(
    tmp_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    volume = ConfigMapVolume(tmp_path / "cm", {"config.yaml": "model: gpt-4\n"})
    path = volume.path("config.yaml")
    assert path.is_symlink()
    assert os.readlink(path) == "..data/config.yaml"
    async with reloader(path, registry, settings) as r:
        generation = r.snapshot.generation
        changes = r.changes()
        volume.update({"config.yaml": "model: gpt-5\n"})
        snap = await r.wait_for_generation(generation + 1, timeout=WAIT)
        assert snap.generation == generation + 1
        assert snap.config == settings(model="gpt-5")

        first = await next_snapshot(changes)
        assert (first.generation, first.config.model) == (generation + 1, "gpt-5")
        # Prove there was no second commit for that update: the next snapshot is the next one.
        volume.update({"config.yaml": "model: gpt-6\n"})
        second = await next_snapshot(changes)
        assert (second.generation, second.config.model) == (generation + 2, "gpt-6")
        assert r.snapshot.generation == generation + 2
        # config.yaml itself is never touched by kubelet: it is still the same symlink.
        assert os.readlink(path) == "..data/config.yaml"


async def test_consecutive_configmap_updates_are_each_picked_up(
    tmp_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    volume = ConfigMapVolume(tmp_path / "cm", {"config.yaml": "model: v0\n"})
    path = volume.path("config.yaml")
    async with reloader(path, registry, settings) as r:
        changes = r.changes()
        for i in range(1, 6):
            previous = stamp_dirs(volume)
            volume.update({"config.yaml": f"model: v{i}\nretries: {i}\n"})
            # kubelet removed the previous ..<timestamp> directory: only the new one is left.
            current = stamp_dirs(volume)
            assert len(current) == 1
            assert current != previous
            assert os.readlink(volume.directory / "..data") == current[0]
            snap = await r.wait_for_generation(1 + i, timeout=WAIT)
            assert snap.config == settings(model=f"v{i}", retries=i)
            streamed = await next_snapshot(changes)
            assert (streamed.generation, streamed.config.model) == (1 + i, f"v{i}")


# -- a symlink to a file elsewhere ----------------------------------------------------------


class Linked(NamedTuple):
    """``conf/config.yaml`` → ``first/real.yaml`` (gpt-4); ``second/other.yaml`` holds gpt-6."""

    link: Path
    first: Path
    second: Path


@pytest.fixture
def linked(tmp_path: Path) -> Linked:
    first_dir, second_dir, conf = tmp_path / "first", tmp_path / "second", tmp_path / "conf"
    for d in (first_dir, second_dir, conf):
        d.mkdir()
    first = first_dir / "real.yaml"
    first.write_text("model: gpt-4\n")
    second = second_dir / "other.yaml"
    second.write_text("model: gpt-6\n")
    link = conf / "config.yaml"
    link.symlink_to(first)
    return Linked(link, first, second)


async def test_symlink_to_another_directory_target_edit_and_repoint(
    linked: Linked, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    link, first, second = linked
    conf = link.parent

    async with reloader(link, registry, settings) as r:
        # Editing the target (in a directory of its own) is seen.
        write_in_place(first, "model: gpt-5\n")
        outcome = await next_commit(r)
        snap = await r.wait_for_generation(2, timeout=WAIT)
        assert outcome.trigger == "watch"
        assert snap.config == settings(model="gpt-5")

        # Re-pointing the link (atomically, as `ln -sfn` via rename) is seen.
        tmp_link = conf / ".config.yaml.tmp"
        tmp_link.symlink_to(second)
        os.replace(tmp_link, link)
        outcome = await next_commit(r)
        snap = await r.wait_for_generation(3, timeout=WAIT)
        assert outcome.trigger == "watch"
        assert snap.config == r.config == settings(model="gpt-6")


# -- the directory goes away, and comes back ------------------------------------------------


def remove_directory(directory: Path, how: str) -> None:
    if how == "rmtree":
        shutil.rmtree(directory)
    else:
        directory.rename(directory.with_name("conf.old"))


@pytest.mark.parametrize("how", ["rmtree", "rename"])
@pytest.mark.parametrize(
    "settle", [True, False], ids=["reported-missing-first", "replaced-at-once"]
)
async def test_directory_replaced_then_every_later_edit_is_seen(
    config_path: Path, registry: CollectorRegistry, how: str, settle: bool, settings: SettingsSchema
) -> None:
    """Gone then back (deleted or renamed away), noticed in between or not: a new directory
    under the old name, possibly with the old inode number, is watched from then on."""
    directory = config_path.parent
    async with reloader(config_path, registry, settings) as r:
        remove_directory(directory, how)
        if settle:
            missing = await r.wait_for_outcome(ReloadResult.ERROR, timeout=SLOW_WAIT)
            assert missing.error is not None
            assert missing.error.reason == "missing"
            assert r.config == settings(model="gpt-4")
        directory.mkdir()
        write_in_place(config_path, "model: gpt-5\n")
        await r.wait_for_generation(2, timeout=SLOW_WAIT)
        write_in_place(config_path, "model: gpt-6\n")
        snap = await r.wait_for_generation(3, timeout=SLOW_WAIT)
        assert snap.config == settings(model="gpt-6")


async def test_symlink_repointed_then_new_target_edit_is_seen(
    linked: Linked, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    link, _, second = linked
    conf = link.parent
    async with reloader(link, registry, settings) as r:
        tmp_link = conf / ".config.yaml.tmp"
        tmp_link.symlink_to(second)
        os.replace(tmp_link, link)
        await r.wait_for_generation(2, timeout=WAIT)
        write_in_place(second, "model: gpt-7\n")
        snap = await r.wait_for_generation(3, timeout=WAIT)
        assert snap.config == settings(model="gpt-7")
