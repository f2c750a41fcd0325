"""The commit guard in `Worker._apply` (`_decide.broken_invariant`), on a running reloader with
a real file and the real watcher.

Why these tests reach into `_apply`: `decide()` never asks for a commit that would break an
invariant, so nothing public reaches the guard; it is the last line against a bug like issue
12's, where a version already replaced came back. To show that it holds, each test does what
such a bug would do: after the reloader has moved on, it hands `_apply` a change from earlier
(one the worker itself built and held, taken from the drain gate, or one built from a real
read and evaluation exactly as `_look` builds it). The call runs as the worker's would: on the
loop, with no worker task running (the worker is the only writer), and any trigger that
arrives meanwhile is left for the next burst.

Two of the three invariants are reachable this way: ``same_config_hash`` and
``older_than_config_in_force``. ``generation_not_increasing`` is not: `_apply` numbers the new
snapshot from the one in force itself, so only the unit test of `broken_invariant` covers it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from hotreload import HotReloader, ReloadOutcome, ReloadResult, Snapshot
from hotreload._pipeline import Active, sha256_hex
from hotreload._worker import MSG_RELOADED, _Change, _Trigger
from hotreload.testing import write_in_place
from tests.conftest import MetricReader
from tests.integration.conftest import AnySettings, SettingsSchema

WAIT = 5.0
NAME = "guard"
Logs = list[MutableMapping[str, Any]]
RELOADS = "hotreload_config_reload_total"


@dataclass
class Witness:
    """What a test watches besides the reloader: the versions its apply hook was asked to put
    in force (generation, model), the log events and the metrics."""

    logs: Logs
    metric: MetricReader
    calls: list[tuple[int, str]] = field(default_factory=list)


def reloader(
    path: Path, registry: CollectorRegistry, settings: SettingsSchema, seen: Witness
) -> HotReloader[AnySettings]:
    """A reloader whose apply hook records each version it is asked to put in force."""

    async def record(new: Snapshot[AnySettings], old: Snapshot[AnySettings]) -> None:
        seen.calls.append((new.generation, new.config.model))

    return HotReloader(
        path, schema=settings, name=NAME, registry=registry, poll_interval=0, on_apply=[record]
    )


async def until_idle(r: HotReloader[AnySettings]) -> None:
    """Wait until no worker task runs (each ends once its triggers are drained)."""
    while r._working:
        name = f"hotreload-worker[{r.name}]"
        workers = [t for t in asyncio.all_tasks() if t.get_name() == name]
        assert workers, "the reloader is working but runs no worker task"
        await asyncio.wait_for(asyncio.wait(workers), WAIT)


async def apply_as_the_worker(
    r: HotReloader[AnySettings], change: _Change[AnySettings]
) -> ReloadOutcome:
    """`_apply` as the worker calls it, with the worker idle: triggers that arrive meanwhile
    queue up (the reloader counts as working) and go to a new worker afterwards."""
    await until_idle(r)
    r._working = True
    try:
        trigger = _Trigger(change.trigger, time.perf_counter())
        return await r._apply(change, started=time.perf_counter(), batch=[trigger])
    finally:
        r._working = False
        queued, r._triggers = r._triggers, []
        for trigger in queued:
            r._put(trigger)


def change_from(
    r: HotReloader[AnySettings], raw: bytes, against: Active[AnySettings], read: int
) -> _Change[AnySettings]:
    """The change `_look` builds when read number ``read`` found ``raw`` with ``against`` in
    force: the pipeline's real evaluation of those bytes."""
    evaluation = r._pipeline.evaluate(raw, against, sha256_hex(raw))
    new = evaluation.candidate
    assert evaluation.result is ReloadResult.CONFIG_CHANGED
    assert new is not None
    return _Change(new, evaluation.changed, "watch", time.perf_counter(), raw, None, read)


async def held_change(r: HotReloader[AnySettings], path: Path, model: str) -> _Change[AnySettings]:
    """Write ``model`` while a session is open and return the change the worker held for it."""
    held = r.wait_for_outcome(
        lambda o: o.deferred and r.pending is not None and r.pending.config.model == model,
        timeout=WAIT,
    )
    write_in_place(path, f"model: {model}\n")
    await held
    pending = r._gate.pending
    assert pending is not None
    assert pending.change.active.config.model == model
    return pending.change


async def end_session(r: HotReloader[AnySettings], session: str) -> Snapshot[AnySettings]:
    """End the last session and wait for the held change to be committed."""
    committed = r.wait_for_generation(r.snapshot.generation + 1, timeout=WAIT)
    assert r.unregister_session(session)
    return await committed


async def refused(
    r: HotReloader[AnySettings], change: _Change[AnySettings], invariant: str, seen: Witness
) -> ReloadOutcome:
    """Hand ``change`` to `_apply` and check that nothing went in force, no apply hook ran,
    and the refusal names the invariant and the refused version."""
    before, hooks, reloads = r.snapshot, list(seen.calls), seen.metric(RELOADS, config=NAME)
    outcome = await apply_as_the_worker(r, change)
    assert outcome.result is ReloadResult.CONFIG_UNCHANGED
    assert not outcome.applied
    assert outcome.error is None
    assert outcome.trigger == change.trigger
    assert outcome.generation == before.generation
    assert outcome.config_hash == before.config_hash
    assert r.snapshot is before
    assert r.config is before.config
    assert seen.calls == hooks
    assert seen.metric(RELOADS, config=NAME) == reloads
    events = [e for e in seen.logs if e["event"] == "commit_refused"]
    assert len(events) == 1
    assert events[0]["invariant"] == invariant
    assert events[0]["config_hash"] == change.active.config_hash
    assert events[0]["log_level"] == "error"
    assert not [
        e for e in seen.logs if e["event"] == MSG_RELOADED and e["generation"] > before.generation
    ]
    return outcome


async def commits_next_write(
    r: HotReloader[AnySettings], path: Path, text: str | bytes, seen: Witness
) -> Snapshot[AnySettings]:
    """Still reloading: the next write is committed, hooks and all, as the next generation."""
    generation, hooks = r.snapshot.generation + 1, len(seen.calls)
    write_in_place(path, text)
    after = await r.wait_for_generation(generation, timeout=WAIT)
    assert after.generation == generation
    assert seen.calls[hooks:] == [(generation, after.config.model)]
    return after


async def test_a_held_change_replaced_by_a_newer_read_is_refused(
    config_path: Path,
    registry: CollectorRegistry,
    metric: MetricReader,
    logs: Logs,
    settings: SettingsSchema,
) -> None:
    """Issue 12's shape: a change held for a session is replaced by a newer one, which is
    committed; the replaced change, handed to `_apply` later, must not come back."""
    seen = Witness(logs, metric)
    async with reloader(config_path, registry, settings, seen) as r:
        assert r.register_session("s")
        stale = await held_change(r, config_path, "b")
        newer = await held_change(r, config_path, "c")
        assert stale.read < newer.read
        before = await end_session(r, "s")
        assert before.config == settings(model="c")
        assert seen.calls == [(2, "c")]

        await refused(r, stale, "older_than_config_in_force", seen)
        after = await commits_next_write(r, config_path, "model: d\n", seen)
        assert after.config == settings(model="d")


async def test_a_version_from_a_read_older_than_the_one_in_force_is_refused(
    config_path: Path,
    registry: CollectorRegistry,
    metric: MetricReader,
    logs: Logs,
    settings: SettingsSchema,
) -> None:
    """The first version, as a read taken before the second was written saw it, is refused
    once the second is in force; the same bytes from a newer read (the source itself going
    back) are committed as usual."""
    seen = Witness(logs, metric)
    async with reloader(config_path, registry, settings, seen) as r:
        first = r._active
        raw = config_path.read_bytes()
        assert not (await r.reload()).applied
        old_read = r._reads  # this read found the first version, the only one written so far
        write_in_place(config_path, "model: gpt-5\n")
        second = await r.wait_for_generation(2, timeout=WAIT)
        assert second.config == settings(model="gpt-5")
        assert seen.calls == [(2, "gpt-5")]
        assert old_read < r._in_force_read
        stale = change_from(r, raw, r._active, old_read)
        assert stale.active.config_hash == first.config_hash
        assert stale.changed == ("model",)

        await refused(r, stale, "older_than_config_in_force", seen)
        # The source going back to the first version is a newer read: committed.
        after = await commits_next_write(r, config_path, raw, seen)
        assert after.config == settings(model="gpt-4")
        assert after.config_hash == first.config_hash


async def test_a_change_already_committed_is_not_committed_again(
    config_path: Path,
    registry: CollectorRegistry,
    metric: MetricReader,
    logs: Logs,
    settings: SettingsSchema,
) -> None:
    """A held change released once and then handed to `_apply` again (a double release)
    would commit the version in force a second time: refused for its config_hash."""
    seen = Witness(logs, metric)
    async with reloader(config_path, registry, settings, seen) as r:
        assert r.register_session("s")
        change = await held_change(r, config_path, "b")
        before = await end_session(r, "s")
        assert before.config_hash == change.active.config_hash
        assert seen.calls == [(2, "b")]

        await refused(r, change, "same_config_hash", seen)
        after = await commits_next_write(r, config_path, "model: c\n", seen)
        assert after.config == settings(model="c")
