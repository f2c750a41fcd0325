"""The failure ledger's rules (BR-HAPI-190), with a fake clock and no loop, file or reloader."""

from __future__ import annotations

import pytest

from hotreload import ReloadResult
from hotreload._failures import Action, FailureLedger, Mark


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class World:
    """The config's state as the ledger sees it: a generation and a pending counter."""

    def __init__(self) -> None:
        self.generation = 1
        self.pending_seq = 0
        self.pending = False

    def mark(self) -> Mark:
        return Mark(self.generation, self.pending_seq)

    def changed_since(self, mark: Mark) -> bool:
        return self.generation > mark.generation or (
            self.pending and self.pending_seq > mark.pending_seq
        )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def ledger(clock: Clock) -> FailureLedger:
    return FailureLedger(threshold=3, cooldown=60.0, clock=clock, wall=lambda: 1.5e9)


def fail(ledger: FailureLedger, world: World, toolset: str = "kubernetes") -> Action:
    return ledger.failure(
        toolset, "ConnectionError", "refused", mark=world.mark(), changed_since=world.changed_since
    )


def test_record_failure_increments_counter(ledger: FailureLedger, world: World) -> None:
    assert fail(ledger, world) is Action.COUNTED
    rec = ledger.view["kubernetes"]
    assert (rec.consecutive_failures, rec.total_failures) == (1, 1)
    assert (rec.last_error_type, rec.last_error_message) == ("ConnectionError", "refused")
    assert rec.last_failure_time == 1.5e9


def test_threshold_triggers_exactly_once(ledger: FailureLedger, world: World) -> None:
    actions = [fail(ledger, world) for _ in range(3)]
    assert actions == [Action.COUNTED, Action.COUNTED, Action.TRIGGER]
    assert ledger.running
    assert fail(ledger, world) is Action.JOINED  # while it runs: joins, never a second one


def test_success_resets_consecutive_never_total(ledger: FailureLedger, world: World) -> None:
    fail(ledger, world)
    fail(ledger, world)
    assert ledger.success("kubernetes") == 2
    rec = ledger.view["kubernetes"]
    assert (rec.consecutive_failures, rec.total_failures) == (0, 2)
    assert ledger.success("kubernetes") == 0  # nothing left to reset
    assert ledger.success("never-failed") == 0


@pytest.mark.parametrize(
    "result",
    [ReloadResult.CONFIG_UNCHANGED, ReloadResult.VALIDATION_FAILED, ReloadResult.ERROR],
)
def test_results_other_than_changed_keep_the_counter(
    ledger: FailureLedger, world: World, result: ReloadResult
) -> None:
    for _ in range(3):
        fail(ledger, world)
    [settled] = ledger.recheck_done(result, world.changed_since)
    assert (settled.result, settled.reset, settled.consecutive) == (result, False, 3)
    assert ledger.view["kubernetes"].consecutive_failures == 3
    assert not ledger.running


def test_config_changed_resets_the_counter(ledger: FailureLedger, world: World) -> None:
    for _ in range(3):
        fail(ledger, world)
    [settled] = ledger.recheck_done(ReloadResult.CONFIG_CHANGED, world.changed_since)
    assert settled.reset
    assert ledger.view["kubernetes"].consecutive_failures == 0
    assert ledger.view["kubernetes"].total_failures == 3


def test_a_change_committed_during_the_streak_counts_as_changed(
    ledger: FailureLedger, world: World
) -> None:
    """The watcher applied the fix before the threshold: the re-check would find nothing new,
    but the config did change since this toolset started failing."""
    fail(ledger, world)
    world.generation += 1
    fail(ledger, world)
    assert fail(ledger, world) is Action.CHANGED_SINCE
    settled = ledger.settle_changed_since("kubernetes")
    assert (settled.result, settled.consecutive) == (ReloadResult.CONFIG_CHANGED, 3)
    assert ledger.view["kubernetes"].consecutive_failures == 0
    # The next streak starts from the new generation: no change since, so it triggers.
    actions = [fail(ledger, world) for _ in range(3)]
    assert actions[-1] is Action.TRIGGER


def test_a_pending_change_counts_as_changed_and_a_cancelled_one_does_not(
    ledger: FailureLedger, world: World
) -> None:
    fail(ledger, world)
    world.pending_seq += 1
    world.pending = True
    fail(ledger, world)
    assert fail(ledger, world) is Action.CHANGED_SINCE
    ledger.settle_changed_since("kubernetes")
    world.pending = False  # cancelled: reverted to the config in force
    for _ in range(2):
        fail(ledger, world)
    assert fail(ledger, world) is Action.TRIGGER


def test_a_change_during_the_recheck_resets_whatever_its_result(
    ledger: FailureLedger, world: World
) -> None:
    for _ in range(3):
        fail(ledger, world)
    world.generation += 1  # the watcher committed a fix while the re-check ran
    [settled] = ledger.recheck_done(ReloadResult.CONFIG_UNCHANGED, world.changed_since)
    assert settled.reset
    assert settled.result is ReloadResult.CONFIG_CHANGED


def test_cooldown_blocks_then_allows_a_second_recheck(
    ledger: FailureLedger, world: World, clock: Clock
) -> None:
    for _ in range(3):
        fail(ledger, world)
    ledger.recheck_done(ReloadResult.CONFIG_UNCHANGED, world.changed_since)
    assert [fail(ledger, world) for _ in range(3)] == [Action.COOLDOWN] * 3
    assert ledger.cooldown_log_due("kubernetes")
    assert not ledger.cooldown_log_due("kubernetes")  # logged once per window, counted always
    clock.now += 59.9
    assert fail(ledger, world) is Action.COOLDOWN
    clock.now += 0.2
    assert fail(ledger, world) is Action.TRIGGER
    assert ledger.view["kubernetes"].consecutive_failures == 8


def test_independent_counters_per_toolset(ledger: FailureLedger, world: World) -> None:
    fail(ledger, world, "kubernetes")
    fail(ledger, world, "kubernetes")
    for _ in range(3):
        fail(ledger, world, "prometheus")
    assert ledger.view["kubernetes"].consecutive_failures == 2
    assert ledger.view["prometheus"].consecutive_failures == 3
    # kubernetes reaches the threshold while prometheus's re-check runs: it joins it ...
    assert fail(ledger, world, "kubernetes") is Action.JOINED
    settled = ledger.recheck_done(ReloadResult.CONFIG_UNCHANGED, world.changed_since)
    assert sorted(s.toolset for s in settled) == ["kubernetes", "prometheus"]
    # ... and so is in its cooldown too, like prometheus.
    assert fail(ledger, world, "kubernetes") is Action.COOLDOWN
    assert fail(ledger, world, "prometheus") is Action.COOLDOWN


def test_cooldown_zero_means_every_failure_over_the_threshold_rechecks(
    clock: Clock, world: World
) -> None:
    ledger = FailureLedger(threshold=1, cooldown=0.0, clock=clock)
    assert fail(ledger, world) is Action.TRIGGER
    ledger.recheck_done(ReloadResult.CONFIG_UNCHANGED, world.changed_since)
    assert fail(ledger, world) is Action.TRIGGER


@pytest.mark.parametrize(("threshold", "cooldown"), [(0, 1.0), (-1, 1.0), (True, 1.0), (3, -1)])
def test_bad_settings_are_refused(threshold: int, cooldown: float) -> None:
    with pytest.raises(ValueError, match="failure_"):
        FailureLedger(threshold=threshold, cooldown=cooldown)


def test_the_view_is_read_only_and_a_stable_copy(ledger: FailureLedger, world: World) -> None:
    fail(ledger, world)
    view = ledger.view
    with pytest.raises(TypeError):
        view["x"] = view["kubernetes"]  # type: ignore[index]
    fail(ledger, world, "prometheus")
    assert list(view) == ["kubernetes"]  # an old view never changes under its reader
    assert list(ledger.view) == ["kubernetes", "prometheus"]


def test_a_joined_toolset_is_settled_once_by_the_running_recheck(
    ledger: FailureLedger, world: World
) -> None:
    """A commit seen while the re-check runs must not settle the toolset a second time."""
    for _ in range(3):
        fail(ledger, world)
    world.generation += 1  # the re-check itself committed; its reply is still on its way
    assert fail(ledger, world) is Action.JOINED
    settled = ledger.recheck_done(ReloadResult.CONFIG_CHANGED, world.changed_since)
    assert [(s.toolset, s.consecutive) for s in settled] == [("kubernetes", 3)]
    assert ledger.view["kubernetes"].consecutive_failures == 0


def test_one_failure_is_reset_by_a_success(ledger: FailureLedger, world: World) -> None:
    fail(ledger, world)
    assert ledger.success("kubernetes") == 1
    assert ledger.view["kubernetes"].consecutive_failures == 0
    assert ledger.success("kubernetes") == 0
    assert ledger.success("never-failed") == 0


def test_a_change_since_the_streak_began_is_settled_as_a_reset(
    ledger: FailureLedger, world: World
) -> None:
    fail(ledger, world)
    settled = ledger.settle_changed_since("kubernetes")
    assert (settled.toolset, settled.result, settled.consecutive, settled.reset) == (
        "kubernetes",
        ReloadResult.CONFIG_CHANGED,
        1,
        True,
    )


def test_the_cooldown_log_is_due_again_exactly_one_cooldown_later(
    ledger: FailureLedger, world: World, clock: Clock
) -> None:
    fail(ledger, world)
    assert ledger.since_forced("kubernetes") == float("inf")  # never forced
    assert ledger.cooldown_log_due("kubernetes")
    clock.now += 59.999
    assert not ledger.cooldown_log_due("kubernetes")
    clock.now += 0.001
    assert ledger.cooldown_log_due("kubernetes")
