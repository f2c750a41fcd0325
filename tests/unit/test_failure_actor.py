"""`FailureActor` on its own (BR-HAPI-190): a real loop and task set, a fake clock, a re-check
the test controls, and the events and metrics the spec names; no reloader, file or watcher."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine, MutableMapping
from typing import Any

import pytest

from hotreload import ReloadOutcome, ReloadResult
from hotreload._failures import FailureActor, FailureLedger, Mark
from hotreload._logging import ContextLogger
from hotreload._metrics import FailureMetrics, Hist, Labelled, Value
from hotreload._tasks import TaskSet
from tests.unit.test_failure_ledger import Clock

Logs = list[MutableMapping[str, Any]]
SECRET = "sk-live-0123456789"  # noqa: S105 - planted, to be masked


class Harness:
    """The actor wired as the reloader wires it, with the config's state and the re-check's
    result in the test's hands."""

    def __init__(self, threshold: int = 3, cooldown: float = 60.0) -> None:
        self.clock = Clock()
        self.generation = 1
        self.pending_seq = 0
        self.ledger = FailureLedger(threshold, cooldown, clock=self.clock, wall=lambda: 1.5e9)
        self.result: ReloadResult | None = ReloadResult.CONFIG_UNCHANGED  # None: it raises
        self.rechecks = 0
        self.gate: asyncio.Event | None = None  # set: the re-check waits for it
        self.tasks = TaskSet(ContextLogger("hotreload"))
        self.metrics = FailureMetrics(
            failures=Labelled(Value),
            triggered=Labelled(Value),
            duration=Labelled(lambda: Hist((1.0,))),
            before_reload=Labelled(lambda: Hist((1.0, 2.0, 3.0, 5.0))),
            cooldown_blocks=Labelled(Value),
        )
        self.actor = FailureActor(
            self.ledger,
            recheck=self._recheck,
            mark=lambda: Mark(self.generation, self.pending_seq),
            changed_since=lambda m: self.generation > m.generation,
            log=ContextLogger("hotreload", config="test"),
            scrub=lambda text: text.replace(SECRET, "***"),
        )

    async def _recheck(self) -> ReloadOutcome:
        self.rechecks += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.result is None:
            raise RuntimeError("the source could not be read")
        return ReloadOutcome(self.result, False, self.generation, "auto_reload", 0.0, 0.0, "h")

    def attach(self) -> None:
        self.actor.attach(
            asyncio.get_running_loop(),
            lambda: self.tasks.spawn(
                lambda: self.actor.run(
                    lambda fn: self.tasks.spawn(fn, name="recheck"), self.metrics
                ),
                name="actor",
            ),
        )

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.tasks.spawn(fn, name="recheck")

    def fail(self, toolset: str = "kubernetes", n: int = 1) -> None:
        for _ in range(n):
            self.actor.record_failure(toolset, "ConnectionError", "connection refused")

    def count(self, labelled: Labelled[Value], *labels: str) -> float:
        series = labelled.series.get(labels)
        return 0.0 if series is None else series.value

    def observed(self, labelled: Labelled[Hist], *labels: str) -> tuple[int, float]:
        series = labelled.series.get(labels)
        return (0, 0.0) if series is None else (sum(series.counts), series.sum)


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds: the actor task runs in between."""
    while not condition():  # noqa: ASYNC110 - no event says "the inbox was handled" mid-recheck
        await asyncio.sleep(0)  # sleep-ok: one loop step, no time


def events(logs: Logs, name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    harness.attach()
    yield harness
    harness.actor.detach()
    await harness.tasks.aclose()


async def test_a_failure_before_start_is_not_counted_and_starts_nothing() -> None:
    harness = Harness()
    assert harness.actor.closed
    harness.fail(n=5)
    await harness.actor.settled()  # returns at once: nothing is running
    assert dict(harness.ledger.view) == {}
    assert harness.rechecks == 0
    harness.attach()
    assert not harness.actor.closed
    await asyncio.wait_for(harness.actor.settled(), 5)  # nothing posted: settled at once
    errors: list[object] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
    harness.fail(n=2)  # both before the task runs: the first starts it, the second only waits
    await harness.actor.settled()
    assert harness.ledger.view["kubernetes"].consecutive_failures == 2
    assert errors == []
    harness.actor.detach()
    await harness.tasks.aclose()


async def test_a_failure_after_shutdown_is_dropped(h: Harness) -> None:
    h.fail()
    await h.actor.settled()
    h.actor.detach()
    assert h.actor.closed
    h.fail(n=5)
    await h.actor.settled()
    assert h.ledger.view["kubernetes"].consecutive_failures == 1
    assert h.rechecks == 0


async def test_a_loop_closed_under_the_actor_closes_it() -> None:
    harness = Harness()
    other = asyncio.new_event_loop()
    other.close()
    harness.actor.attach(other, lambda: None)
    assert not harness.actor.closed
    harness.fail()
    assert harness.actor.closed


async def test_the_task_stops_at_cancellation_and_the_actor_is_closed(h: Harness) -> None:
    h.fail()
    await h.actor.settled()
    await h.tasks.aclose()
    assert h.actor.closed
    h.fail()  # nothing left to count for: dropped, no error
    await h.actor.settled()
    assert h.ledger.view["kubernetes"].consecutive_failures == 1


async def test_toolset_failure_recorded_has_the_spec_fields(h: Harness, logs: Logs) -> None:
    h.actor.record_failure("prometheus", "TimeoutError", "timed out after 30s")
    h.actor.record_failure("prometheus", None, None)
    await h.actor.settled()
    first, second = events(logs, "toolset_failure_recorded")
    assert first == {
        "event": "toolset_failure_recorded",
        "log_level": "warning",
        "config": "test",
        "toolset": "prometheus",
        "consecutive_failures": 1,
        "total_failures": 1,
        "error_type": "TimeoutError",
        "error_message": "timed out after 30s",
        "max_failures": 3,
    }
    assert (second["consecutive_failures"], second["total_failures"]) == (2, 2)
    assert (second["error_type"], second["error_message"]) == ("UnknownError", "No error message")
    assert h.count(h.metrics.failures, "prometheus") == 2
    rec = h.ledger.view["prometheus"]
    assert (rec.last_error_type, rec.last_error_message) == ("UnknownError", "No error message")


async def test_the_message_is_scrubbed_then_cut_to_200_characters(h: Harness, logs: Logs) -> None:
    """A secret straddling the cut is masked whole, not half kept."""
    message = "x" * 190 + SECRET + " and more"
    h.actor.record_failure("kubernetes", "AuthError", message)
    await h.actor.settled()
    [event] = events(logs, "toolset_failure_recorded")
    expected = ("x" * 190 + "*** and more")[:200]
    assert event["error_message"] == expected
    assert len(expected) == 200
    assert h.ledger.view["kubernetes"].last_error_message == expected
    assert SECRET[:5] not in repr(logs)


async def test_the_threshold_triggers_one_recheck_and_unchanged_keeps_the_counter(
    h: Harness, logs: Logs
) -> None:
    started = time.perf_counter()
    h.fail(n=3)
    await h.actor.settled()
    elapsed = time.perf_counter() - started
    assert h.rechecks == 1
    [trigger] = events(logs, "toolset_max_failures_reached_triggering_auto_reload")
    assert trigger["log_level"] == "error"
    assert trigger["toolset"] == "kubernetes"
    assert trigger["consecutive_failures"] == 3
    assert trigger["last_error_type"] == "ConnectionError"
    assert trigger["last_error_message"] == "connection refused"
    [unchanged] = events(logs, "auto_reload_config_unchanged_toolset_still_unavailable")
    assert unchanged["log_level"] == "warning"
    assert (unchanged["toolset"], unchanged["consecutive_failures"]) == ("kubernetes", 3)
    assert h.ledger.view["kubernetes"].consecutive_failures == 3
    assert h.count(h.metrics.triggered, "kubernetes", "config_unchanged") == 1
    assert h.observed(h.metrics.before_reload, "kubernetes") == (1, 3.0)
    count, total = h.observed(h.metrics.duration, "config_unchanged")
    assert count == 1
    assert 0 <= total <= elapsed  # the re-check's own duration, within the test's
    assert not h.ledger.running


async def test_a_recheck_that_changes_the_config_resets_the_counter(h: Harness, logs: Logs) -> None:
    h.result = ReloadResult.CONFIG_CHANGED
    h.fail(n=3)
    await h.actor.settled()
    [changed] = events(logs, "auto_reload_successful_config_changed")
    assert changed["log_level"] == "info"
    assert changed["toolset"] == "kubernetes"
    assert changed["previous_failures"] == 3
    assert changed["detected_by"] == "recheck"
    assert h.ledger.view["kubernetes"].consecutive_failures == 0
    assert h.ledger.view["kubernetes"].total_failures == 3
    assert h.count(h.metrics.triggered, "kubernetes", "config_changed") == 1
    assert h.observed(h.metrics.duration, "config_changed")[0] == 1


@pytest.mark.parametrize(
    ("result", "event", "label"),
    [
        (
            ReloadResult.VALIDATION_FAILED,
            "auto_reload_validation_failed_keeping_failure_counter",
            "validation_failed",
        ),
        (ReloadResult.ERROR, "auto_reload_error_keeping_failure_counter", "error"),
        (None, "auto_reload_error_keeping_failure_counter", "error"),
    ],
)
async def test_a_failed_recheck_keeps_the_counter(
    h: Harness, logs: Logs, result: ReloadResult | None, event: str, label: str
) -> None:
    h.result = result
    h.fail(n=3)
    await h.actor.settled()
    [found] = events(logs, event)
    assert found["log_level"] == "error"
    assert (found["toolset"], found["consecutive_failures"]) == ("kubernetes", 3)
    assert h.ledger.view["kubernetes"].consecutive_failures == 3
    assert h.count(h.metrics.triggered, "kubernetes", label) == 1
    assert h.observed(h.metrics.duration, label)[0] == 1
    assert not h.ledger.running


async def test_the_counter_reported_after_a_recheck_is_the_current_one(
    h: Harness, logs: Logs
) -> None:
    """Failures that arrive while the re-check runs are counted; the outcome event reports the
    counter as it stands then, not the one that triggered."""
    h.gate = asyncio.Event()
    h.fail(n=3)
    await until(lambda: h.rechecks > 0)
    h.fail(n=2)
    await until(lambda: h.ledger.view["kubernetes"].consecutive_failures == 5)
    h.gate.set()
    await h.actor.settled()
    [unchanged] = events(logs, "auto_reload_config_unchanged_toolset_still_unavailable")
    assert unchanged["consecutive_failures"] == 5
    assert h.observed(h.metrics.before_reload, "kubernetes") == (1, 3.0)


async def test_cooldown_counts_every_block_and_logs_once_per_window(h: Harness, logs: Logs) -> None:
    h.fail(n=3)
    await h.actor.settled()
    h.clock.now += 10.12345
    h.fail(n=3)
    await h.actor.settled()
    assert h.rechecks == 1
    assert h.count(h.metrics.cooldown_blocks, "kubernetes") == 3
    [blocked] = events(logs, "auto_reload_cooldown_active")
    assert blocked["log_level"] == "warning"
    assert blocked["toolset"] == "kubernetes"
    assert blocked["time_since_reload"] == 10.123  # rounded to the millisecond
    assert blocked["cooldown"] == 60.0
    h.clock.now += 60 - 10.12345  # 60 s since the re-check: the cooldown is over
    h.fail()
    await h.actor.settled()
    assert h.rechecks == 2
    assert len(events(logs, "auto_reload_cooldown_active")) == 1


async def test_a_change_since_the_streak_began_settles_it_without_a_recheck(
    h: Harness, logs: Logs
) -> None:
    h.fail(n=2)
    await h.actor.settled()
    h.generation += 1  # the watcher applied a new version meanwhile
    h.fail()
    await h.actor.settled()
    assert h.rechecks == 0
    [changed] = events(logs, "auto_reload_successful_config_changed")
    assert (changed["toolset"], changed["previous_failures"]) == ("kubernetes", 3)
    assert changed["detected_by"] == "watcher"
    assert h.ledger.view["kubernetes"].consecutive_failures == 0
    assert h.count(h.metrics.triggered, "kubernetes", "config_changed") == 1
    assert h.observed(h.metrics.before_reload, "kubernetes") == (1, 3.0)


async def test_a_toolset_reaching_the_threshold_joins_the_running_recheck(
    h: Harness, logs: Logs
) -> None:
    h.gate = asyncio.Event()
    h.result = ReloadResult.CONFIG_CHANGED
    h.fail("kubernetes", n=3)
    await until(lambda: h.rechecks > 0)
    h.fail("prometheus", n=3)
    await until(lambda: h.ledger.view.get("prometheus") is not None)
    await until(lambda: h.ledger.view["prometheus"].consecutive_failures == 3)
    [joined] = events(logs, "auto_reload_joined_running_recheck")
    assert joined["toolset"] == "prometheus"
    assert joined["log_level"] == "debug"
    settled = asyncio.ensure_future(h.actor.settled())
    await asyncio.sleep(0)  # sleep-ok: one loop step, so settled() starts waiting
    assert not settled.done()  # a re-check is running: not settled yet
    h.gate.set()
    await settled
    assert h.rechecks == 1
    changed = events(logs, "auto_reload_successful_config_changed")
    assert sorted(e["toolset"] for e in changed) == ["kubernetes", "prometheus"]
    assert h.ledger.view["prometheus"].consecutive_failures == 0


async def test_a_success_resets_the_streak_and_says_so_once(h: Harness, logs: Logs) -> None:
    h.actor.record_success("kubernetes")  # nothing to reset: nothing logged
    h.fail(n=2)
    h.actor.record_success("kubernetes")
    h.actor.record_success("kubernetes")
    await h.actor.settled()
    [reset] = events(logs, "toolset_success_resetting_consecutive_failures")
    assert reset["log_level"] == "info"
    assert reset["toolset"] == "kubernetes"
    assert reset["previous_consecutive_failures"] == 2
    assert reset["total_failures"] == 2
    assert h.ledger.view["kubernetes"].consecutive_failures == 0


async def test_a_flood_is_handled_in_batches_that_let_the_loop_run(h: Harness) -> None:
    """More messages than one batch: the actor yields between batches (this test runs in
    between and sees the counts so far), and every message is still counted."""
    h.ledger.threshold = 10_000
    h.fail(n=1000)
    seen: list[int] = []
    while (rec := h.ledger.view.get("kubernetes")) is None or rec.total_failures < 1000:
        seen.append(0 if rec is None else rec.total_failures)
        await asyncio.sleep(0)  # sleep-ok: one loop step: the actor's batches are what is counted
    partial = sorted({n for n in seen if 0 < n < 1000})
    assert partial == [256, 512, 768]  # one yield after each batch of 256


async def test_settled_waits_for_a_flood_handled_in_several_batches(h: Harness) -> None:
    h.ledger.threshold = 10_000
    h.fail(n=1000)
    await until(lambda: "kubernetes" in h.ledger.view)  # the first batch is handled
    assert h.ledger.view["kubernetes"].total_failures == 256
    await h.actor.settled()
    assert h.ledger.view["kubernetes"].total_failures == 1000


async def test_a_waiter_is_released_when_the_actor_stops_mid_recheck(h: Harness) -> None:
    h.gate = asyncio.Event()  # the re-check never finishes by itself
    h.fail(n=3)
    await until(lambda: h.rechecks > 0)
    waiter = asyncio.ensure_future(h.actor.settled())
    await until(lambda: h.actor._drained is not None)
    await h.tasks.aclose()  # shutdown cancels the actor and the re-check
    await asyncio.wait_for(waiter, 5)
    assert h.actor.closed


async def test_a_flood_from_the_loop_costs_one_wake_up(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The docstring's promise: one wake-up per batch, not per call (a spy on the real loop
    counts them; it still schedules each one)."""
    h.ledger.threshold = 10_000  # no re-check: its report would be a wake-up of its own
    h.fail()
    await h.actor.settled()  # the task is running and idle
    loop = asyncio.get_running_loop()
    scheduled: list[object] = []
    real = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> asyncio.Handle:
        scheduled.append(callback)
        return real(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    h.fail(n=100)
    await h.actor.settled()
    assert len(scheduled) == 1
    assert h.ledger.view["kubernetes"].total_failures == 101


# --- interleavings the mutants of `post` would change (#23) ----------------------------------


class _CountingLock:
    """Stands in for the actor's start lock: counts how often a post takes it."""

    def __init__(self) -> None:
        self.taken = 0

    def __enter__(self) -> None:
        self.taken += 1

    def __exit__(self, *exc: object) -> None:
        return None


def _hook_loop_store(actor: FailureActor, on_store: Callable[[object], None]) -> None:
    """Call ``on_store(value)`` right after the actor stores ``_loop``: what another thread,
    run by the GIL between two of the task's statements, would see there."""
    slot: Any = vars(FailureActor)["_loop"]  # the slot's descriptor

    def store(self: FailureActor, value: object) -> None:
        slot.__set__(self, value)
        on_store(value)

    hooked = type(
        "HookedActor", (FailureActor,), {"__slots__": (), "_loop": property(slot.__get__, store)}
    )
    actor.__class__ = hooked


async def test_a_post_while_the_task_runs_takes_no_lock(h: Harness) -> None:
    # Kills post's `inbox = None` (__mutmut_1): once the inbox exists, a post appends and at
    # most schedules a wake-up; it never waits on the start lock (another thread holding it
    # cannot block a caller on the hot path).
    h.ledger.threshold = 10_000
    h.fail()
    await h.actor.settled()
    lock = _CountingLock()
    h.actor._starting = lock  # type: ignore[assignment]
    h.fail(n=10)
    await h.actor.settled()
    assert lock.taken == 0
    assert h.ledger.view["kubernetes"].total_failures == 11


async def test_a_post_racing_the_task_start_schedules_no_second_wake_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Kills post's `_wake_due = None/False` when it starts the task (__mutmut_23/24): a post
    # from another thread after the task set `_loop` but before its first wait finds a wake-up
    # already due and schedules none; the mutants schedule a second, spurious one.
    harness = Harness(threshold=10_000)
    harness.attach()
    raced: list[bool] = []

    def race(value: object) -> None:
        if value is not None and not raced:
            raced.append(True)
            harness.fail()

    _hook_loop_store(harness.actor, race)
    loop = asyncio.get_running_loop()
    scheduled: list[object] = []
    real = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> asyncio.Handle:
        scheduled.append(callback)
        return real(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    harness.fail()  # starts the task: the one call scheduled
    await harness.actor.settled()
    assert raced == [True]
    assert len(scheduled) == 1
    assert harness.ledger.view["kubernetes"].total_failures == 2
    harness.actor.detach()
    await harness.tasks.aclose()


async def test_a_post_racing_the_task_end_does_not_raise(h: Harness) -> None:
    # Kills post's `loop is not None or wake is not None` (__mutmut_8): the task clears `_loop`
    # before `_wake`; a thread that passed the `closed` check before the task stopped, and
    # reads them in between, must not schedule a wake-up on no loop (AttributeError in the
    # caller's thread: record_failure never raises).
    h.fail()
    await h.actor.settled()
    errors: list[BaseException] = []
    fired: list[bool] = []
    actor = h.actor

    def race(value: object) -> None:
        if value is None and actor._wake is not None:
            fired.append(True)
            actor.closed = False  # as the racing thread saw it when it checked
            try:
                actor.record_failure("kubernetes", "ConnectionError", "late")
            except BaseException as exc:  # noqa: BLE001 - the assertion names it
                errors.append(exc)
            finally:
                actor.closed = True

    _hook_loop_store(actor, race)
    await h.tasks.aclose()  # the task ends: its finally clears `_loop`, then `_wake`
    assert actor.closed
    assert fired == [True]
    assert errors == []


async def test_a_post_that_passed_the_closed_check_before_shutdown_does_nothing(
    h: Harness,
) -> None:
    # Kills `detach` storing "" for `_home`/`_start` (__mutmut_1) and `run` storing "" for
    # `_loop`/`_wake` as the task ends (__mutmut_24): a thread that checked `closed` before
    # the shutdown, and goes on after it, must find nothing to start or wake (an AttributeError
    # in the caller's thread otherwise: record_failure never raises).
    h.fail()
    await h.actor.settled()
    await h.tasks.aclose()
    h.actor.detach()
    h.actor.closed = False  # as the racing thread saw it when it checked
    try:
        h.fail()
    finally:
        h.actor.closed = True
    assert h.ledger.view["kubernetes"].total_failures == 1
