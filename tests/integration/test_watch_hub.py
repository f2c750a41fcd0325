"""The process-wide watcher hub: many reloaders, one thread, the safety poll, restarts.

Real files and the real watcher throughout; the only stand-in is the crash test's steerable
`RustNotify` (the shared `rust_notify` fixture, a real one inside), patched in at the hub's own
boundary. Nothing sleeps: waits are on outcomes,
generations, futures and thread joins, each with a timeout.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from prometheus_client import CollectorRegistry

from hotreload import HotReloader, ReloadOutcome, Stream
from hotreload._watch import WatchHub, hub_for
from hotreload.testing import write_in_place
from tests.conftest import MetricReader, RustNotifyControls
from tests.integration.conftest import AnySettings, SettingsSchema

WAIT = 5.0
WATCH_THREAD = "hotreload-watch"
DEBOUNCE_MS, STEP_MS = 50, 10  # HotReloader's defaults: the hub these tests share


def watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == WATCH_THREAD and t.is_alive()]


async def watcher_up(r: HotReloader[AnySettings]) -> None:
    """Return once the watcher covering ``r`` is running: its first ``rescan`` outcome."""
    last = r.last_outcome
    if last is not None and last.trigger == "rescan":
        return
    await r.wait_for_outcome(lambda o: o.trigger == "rescan", timeout=WAIT)


def open_reloader(
    path: Path,
    registry: CollectorRegistry,
    name: str,
    settings: SettingsSchema,
    *,
    poll_interval: float = 0,
) -> HotReloader[AnySettings]:
    return HotReloader(
        path, schema=settings, name=name, registry=registry, poll_interval=poll_interval
    )


async def next_commit(r: HotReloader[AnySettings]) -> ReloadOutcome:
    """The next applied outcome (call right after making the change: nothing yields before)."""
    return await r.wait_for_outcome(lambda o: o.applied, timeout=WAIT)


async def next_applied(stream: Stream[ReloadOutcome]) -> ReloadOutcome:
    """The next applied outcome an outcome stream yields."""
    with anyio.fail_after(WAIT):
        async for outcome in stream:
            if outcome.applied:
                return outcome
    raise AssertionError("the outcome stream ended")


def samples_by_config(registry: CollectorRegistry, sample: str) -> dict[str, float]:
    """Every ``config`` label's value of one sample, read in one pass over the registry."""
    return {
        s.labels["config"]: s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == sample
    }


def join_retired_watchers(hub: WatchHub) -> None:
    """Wait for the threads of watchers the hub already replaced (each was told to stop).

    A rebuild stops the previous watcher once its successor is up; that thread ends within
    one ``step_ms`` of being told. Joining them (with a timeout) is an event wait, not a sleep.
    """
    assert hub.settled, "a rebuild is still in progress"
    live = {w.thread for w in hub.live_watchers()}
    assert live
    for thread in watch_threads():
        if thread not in live:
            thread.join(timeout=WAIT)


# -- many reloaders, one thread ---------------------------------------------------------------


async def test_hundred_reloaders_share_one_watcher_thread(
    tmp_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    assert watch_threads() == []
    threads_before = threading.active_count()
    directories = [tmp_path / f"dir{d}" for d in range(10)]
    for d in directories:
        d.mkdir()
    paths = [directories[i % 10] / f"svc{i:03d}.yaml" for i in range(100)]
    for i, path in enumerate(paths):
        path.write_text(f"model: m{i}\n")

    async with contextlib.AsyncExitStack() as stack:
        reloaders = [
            await stack.enter_async_context(open_reloader(path, registry, f"svc{i:03d}", settings))
            for i, path in enumerate(paths)
        ]
        for r in reloaders:
            await watcher_up(r)
        hub = hub_for(DEBOUNCE_MS, STEP_MS)
        assert hub.watched == frozenset({str(tmp_path), *map(str, directories)})
        join_retired_watchers(hub)

        assert len(watch_threads()) == 1
        assert threading.active_count() <= threads_before + 1
        assert anyio.to_thread.current_default_thread_limiter().borrowed_tokens == 0

        streams = [r.outcomes() for r in reloaders]
        for i, path in enumerate(paths):
            write_in_place(path, f"model: n{i}\nretries: {i % 7}\n")
        for i, r in enumerate(reloaders):
            snap = await r.wait_for_generation(2, timeout=WAIT)
            assert snap.config == settings(model=f"n{i}", retries=i % 7)
            commit = await next_applied(streams[i])
            assert (commit.trigger, commit.generation) == ("watch", 2)
        # Each saw its own change through the watcher, exactly once, and nobody else's.
        names = {f"svc{i:03d}" for i in range(100)}
        assert [r.snapshot.generation for r in reloaders] == [2] * 100
        assert samples_by_config(registry, "hotreload_config_reload_total") == dict.fromkeys(
            names, 1.0
        )
        assert samples_by_config(registry, "hotreload_watch_missed_events_total") == dict.fromkeys(
            names, 0.0
        )

        assert len(watch_threads()) == 1
        assert threading.active_count() <= threads_before + 1
        assert anyio.to_thread.current_default_thread_limiter().borrowed_tokens == 0

    # The last reloader out awaited the watcher thread's end: nothing is left running.
    assert watch_threads() == []
    assert threading.active_count() == threads_before


async def test_two_reloaders_on_the_same_file_both_see_a_change(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with (
        open_reloader(config_path, registry, "a", settings) as a,
        open_reloader(config_path, registry, "b", settings) as b,
    ):
        await watcher_up(a)
        await watcher_up(b)
        write_in_place(config_path, "model: gpt-5\n")
        snap_a = await a.wait_for_generation(2, timeout=WAIT)
        snap_b = await b.wait_for_generation(2, timeout=WAIT)
        assert snap_a.config == snap_b.config == settings(model="gpt-5")
        assert snap_a.config_hash == snap_b.config_hash
        assert len(watch_threads()) == 1
    assert watch_threads() == []


async def test_exit_leaves_no_watcher_thread_every_time(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    # The last reloader out awaits its watcher's end. Checked over many open/close cycles, so
    # that a thread which is merely about to end (rather than ended) is caught, not lucky.
    for cycle in range(100):
        async with open_reloader(config_path, registry, "cycled", settings) as r:
            await watcher_up(r)
            assert len(watch_threads()) == 1
        leftover = watch_threads()
        for thread in leftover:
            thread.join(timeout=WAIT)  # so one failure does not spill into the next cycle
        assert leftover == [], f"watcher thread still alive after exit (cycle {cycle})"


# -- names ------------------------------------------------------------------------------------


async def test_same_name_on_one_registry_is_refused_then_reusable(
    config_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    async with open_reloader(config_path, registry, "dup", settings) as first:
        with pytest.raises(ValueError, match="already open"):
            async with open_reloader(config_path, registry, "dup", settings):
                pytest.fail("a second reloader with the same name must not start")
        # The refusal did not disturb the one that is running.
        await watcher_up(first)
        write_in_place(config_path, "model: gpt-5\n")
        snap = await first.wait_for_generation(2, timeout=WAIT)
        assert snap.config == settings(model="gpt-5")

    # Once it has closed, the name is free again.
    async with open_reloader(config_path, registry, "dup", settings) as again:
        assert again.snapshot.generation == 1
        assert again.config == settings(model="gpt-5")
        await watcher_up(again)
        write_in_place(config_path, "model: gpt-6\n")
        snap = await again.wait_for_generation(2, timeout=WAIT)
        assert snap.config == settings(model="gpt-6")


# -- the safety poll --------------------------------------------------------------------------


async def test_safety_poll_commits_a_change_the_watcher_cannot_see(
    tmp_path: Path, registry: CollectorRegistry, metric: MetricReader, settings: SettingsSchema
) -> None:
    # config.yaml is a hard link to other/real.yaml: writing through the other name changes
    # the same inode, and inotify on conf/ reports nothing for it.
    other, conf = tmp_path / "other", tmp_path / "conf"
    other.mkdir()
    conf.mkdir()
    real = other / "real.yaml"
    real.write_text("model: gpt-4\n")
    path = conf / "config.yaml"
    os.link(real, path)

    async with open_reloader(path, registry, "polled", settings, poll_interval=0.2) as r:
        await watcher_up(r)
        hub = hub_for(DEBOUNCE_MS, STEP_MS)
        assert str(other) not in hub.watched
        assert metric("hotreload_watch_missed_events_total", config="polled") == 0

        write_in_place(real, "model: gpt-5\n")
        outcome = await next_commit(r)
        snap = await r.wait_for_generation(2, timeout=WAIT)
        assert outcome.trigger == "poll"
        assert snap.config == r.config == settings(model="gpt-5")
        assert path.read_text() == "model: gpt-5\n"
        assert metric("hotreload_watch_missed_events_total", config="polled") == 1

        # Later polls of the same content are not "missed events" again.
        quiet = await r.wait_for_outcome(lambda o: o.trigger == "poll", timeout=WAIT)
        assert not quiet.applied
        assert metric("hotreload_watch_missed_events_total", config="polled") == 1


# -- a watcher that crashes -------------------------------------------------------------------


async def test_watcher_crash_is_survived(
    config_path: Path,
    registry: CollectorRegistry,
    metric: MetricReader,
    rust_notify: RustNotifyControls,
    settings: SettingsSchema,
) -> None:
    try:
        async with open_reloader(config_path, registry, "crashy", settings) as r:
            await watcher_up(r)
            assert rust_notify.created == 1
            assert metric("hotreload_watch_restarts_total", config="crashy") == 0

            rust_notify.restarts_open.clear()
            rust_notify.crash.set()  # the watcher's thread dies with RuntimeError
            with anyio.fail_after(WAIT):
                await rust_notify.restarting  # the hub is starting a new one, held back for now
            assert metric("hotreload_watch_restarts_total", config="crashy") == 1

            # Written while nothing watches: only the rescan after the restart can find it.
            write_in_place(config_path, "model: gpt-5\n")
            assert r.snapshot.generation == 1
            rust_notify.restarts_open.set()
            outcome = await next_commit(r)
            snap = await r.wait_for_generation(2, timeout=WAIT)
            assert outcome.trigger == "rescan"
            assert snap.config == settings(model="gpt-5")

            # And the restarted watcher sees the next change on its own.
            write_in_place(config_path, "model: gpt-6\n")
            outcome = await next_commit(r)
            snap = await r.wait_for_generation(3, timeout=WAIT)
            assert outcome.trigger == "watch"
            assert snap.config == r.config == settings(model="gpt-6")
            assert metric("hotreload_watch_restarts_total", config="crashy") == 1
            assert rust_notify.created == 2
            assert len(watch_threads()) == 1
    finally:
        rust_notify.release()
    assert watch_threads() == []


async def test_a_replaced_watcher_delivers_what_it_holds_before_it_stops(
    tmp_path: Path, registry: CollectorRegistry, settings: SettingsSchema
) -> None:
    """A rebuild retires the old watcher once its successor is up. A change made before the
    successor's watch existed is the old watcher's alone, perhaps still inside its debounce:
    retired, it delivers that change first (stopped outright, RustNotify drops it). Here it
    is retired with no successor at all, right after the write, so only it can deliver."""
    path = tmp_path / "svc.yaml"
    path.write_text("model: a\n")
    async with open_reloader(path, registry, "svc", settings) as r:
        await watcher_up(r)
        hub = hub_for(DEBOUNCE_MS, STEP_MS)
        [watcher] = hub.live_watchers()
        write_in_place(path, "model: b\n")
        hub._retire(watcher)  # before its thread could hand the change over: it holds it
        commit = await next_commit(r)
        assert (commit.trigger, commit.generation) == ("watch", 2)
        assert r.config == settings(model="b")
        await anyio.to_thread.run_sync(watcher.thread.join, WAIT)
        assert not watcher.thread.is_alive()  # and then it stopped
