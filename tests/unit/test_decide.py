"""The commit decision, exhaustively: every sequence of up to four events, cut into batches
every possible way, run through the real `Gate` and `decide` with a fake clock, and checked
against a reference model and the commit invariants.

The events are what the world does between two worker runs: a session opens or ends, a valid
version is written, an invalid one is written, the version in force is written back, a caller
asks for a re-check, or the drain wait runs out. Events in one batch happen in the same loop
tick: the worker sees their triggers together and reads the source once.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from hotreload._decide import (
    CALLERS,
    Candidate,
    Commit,
    Gate,
    Verdict,
    broken_invariant,
    decide,
)

EVENTS = ("open", "end", "valid", "invalid", "revert", "manual", "deadline")
MAX_WAIT = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    """The engine's side (the real gate and decision, a worker that does what they say) and
    the reference model's side, fed the same events."""

    clock: Clock = field(default_factory=Clock)
    gate: Gate[str] = field(init=False)
    file: str | None = "v0"  # None: the file holds an invalid version
    written: int = 0
    sessions: list[int] = field(default_factory=list)
    opened: int = 0
    reads: int = 0
    in_force: str = "v0"
    commits: list[Commit] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    # the reference model
    seen_valid: str = "v0"  # the newest valid version a read found
    model_in_force: str = "v0"
    model_expired: bool = False

    def __post_init__(self) -> None:
        self.gate = Gate(MAX_WAIT, clock=self.clock, wall=lambda: 0.0)

    # -- the world ------------------------------------------------------------------------------

    def event(self, kind: str) -> set[str]:
        """Do one event; return the triggers it queues for the worker."""
        if kind == "open":
            self.opened += 1
            assert self.gate.open(self.opened)
            self.sessions.append(self.opened)
            return set()
        if kind == "end":
            if not self.sessions:
                return set()
            assert self.gate.close(self.sessions.pop())
            # DrainGate wakes the worker when the last session ends with a change pending.
            return {"session_end"} if not self.sessions and self.gate.pending else set()
        if kind == "deadline":
            if self.gate.pending is None:
                return set()  # no change waiting: no timer
            self.clock.now = self.gate.pending.since + MAX_WAIT
            self.model_expired = True
            return {"drain_timeout"}
        if kind == "valid":
            self.written += 1
            self.file = f"v{self.written}"
        elif kind == "invalid":
            self.file = None
        elif kind == "revert":
            self.file = self.in_force
        return {"manual"} if kind == "manual" else {"watch"}

    def batch(self, kinds: Sequence[str]) -> None:
        triggers: set[str] = set()
        for kind in kinds:
            triggers |= self.event(kind)
        if triggers:
            self.work(triggers)

    # -- the worker, as the engine's does it ------------------------------------------------------

    def work(self, triggers: set[str]) -> None:
        candidate = None
        looks = bool(triggers - {"session_end", "drain_timeout"})
        if looks:
            self.reads += 1
            candidate = Candidate(self.file)
        verdict = self.gate.verdict(candidate, self.in_force, triggers)
        if verdict is Verdict.COMMIT:
            assert self.file is not None
            self.gate.take()
            self.commit(self.file, self.reads)
        elif verdict is Verdict.HOLD:
            assert self.file is not None
            self.gate.hold(f"{self.file}@{self.reads}", self.file)
        elif verdict is Verdict.DROP:
            assert self.gate.take() is not None
        elif verdict is Verdict.RELEASE:
            pending = self.gate.take()
            assert pending is not None
            version, read = pending.change.split("@")
            self.commit(version, int(read))
        self.model(looks)

    def commit(self, version: str, read: int) -> None:
        last = self.commits[-1] if self.commits else Commit(1, "v0", 0)
        new = Commit(last.generation + 1, version, read)
        assert broken_invariant(last, new) is None, (last, new)
        self.commits.append(new)
        self.versions.append(version)
        self.in_force = version

    # -- the reference model ----------------------------------------------------------------------

    def model(self, looked: bool) -> None:
        """Without sessions (or once the wait is up) the config in force is the newest valid
        version read; with them it stays, and that version waits as pending if it differs."""
        if looked and self.file is not None:
            self.seen_valid = self.file
        holding = bool(self.sessions) and not self.model_expired
        if not holding:
            self.model_in_force = self.seen_valid
            self.model_expired = False
        want_pending = None if self.seen_valid == self.model_in_force else self.seen_valid
        if want_pending is None:
            self.model_expired = False
        assert self.in_force == self.model_in_force
        pending = self.gate.pending
        assert (pending.config_hash if pending else None) == want_pending


def batchings(events: Sequence[str]) -> list[list[list[str]]]:
    """Every way to cut ``events`` into consecutive batches."""
    cuts = []
    for mask in itertools.product((False, True), repeat=len(events) - 1):
        batches, current = [], [events[0]]
        for event, cut in zip(events[1:], mask, strict=True):
            if cut:
                batches.append(current)
                current = []
            current.append(event)
        batches.append(current)
        cuts.append(batches)
    return cuts


def run(batches: Sequence[Sequence[str]]) -> World:
    world = World()
    for batch in batches:
        world.batch(batch)
    # The commit invariants, across the whole run.
    generations = [c.generation for c in world.commits]
    assert generations == list(range(2, 2 + len(generations)))
    assert all(a.config_hash != b.config_hash for a, b in itertools.pairwise(world.commits))
    assert all(a.read <= b.read for a, b in itertools.pairwise(world.commits))
    # A replaced version comes back only if it was written again: versions are never rewritten
    # here except by "revert" (the version in force), so every commit is a new version.
    assert len(set(world.versions)) == len(world.versions)
    assert world.versions == sorted(world.versions, key=lambda v: int(v[1:]))
    return world


def test_every_sequence_of_up_to_four_events_in_every_batching() -> None:
    cases = 0
    for n in range(1, 5):
        for events in itertools.product(EVENTS, repeat=n):
            for batches in batchings(events):
                try:
                    run(batches)
                except AssertionError as exc:
                    raise AssertionError(f"{batches}: {exc}") from exc
                cases += 1
    assert cases == sum(7**n * 2 ** (n - 1) for n in range(1, 5)) == 20685


def test_issue_12_first_sequence_commits_the_held_version_once() -> None:
    """A held ``b``, then the last session ends and ``reload()`` runs in the same tick."""
    world = run([["open", "valid"], ["end", "manual"]])
    assert world.versions == ["v1"]
    assert world.gate.pending is None


def test_issue_12_second_sequence_never_brings_back_the_replaced_version() -> None:
    """A held ``b``; then ``c`` is written, the session ends and ``reload()`` runs, one tick."""
    world = run([["open", "valid"], ["valid", "end", "manual"]])
    assert world.versions == ["v2"]
    assert world.gate.pending is None


@pytest.mark.parametrize(
    ("candidate", "pending", "holding", "verdict"),
    [
        # A version an apply hook refused is new only to a caller (reload(), SIGHUP).
        (Candidate("b", refused=True), None, False, Verdict.KEEP),
        (Candidate("b", refused=True), "c", False, Verdict.RELEASE),
        (Candidate("b", refused=True), "c", True, Verdict.KEEP),
        (None, None, False, Verdict.KEEP),
        (None, None, True, Verdict.KEEP),
        (None, "b", True, Verdict.KEEP),
        (None, "b", False, Verdict.RELEASE),
        (Candidate(None), "b", True, Verdict.KEEP),
        (Candidate(None), "b", False, Verdict.RELEASE),
        (Candidate(None), None, False, Verdict.KEEP),
        (Candidate("a"), None, False, Verdict.KEEP),
        (Candidate("a"), "b", True, Verdict.DROP),
        (Candidate("a"), "b", False, Verdict.DROP),
        (Candidate("b"), None, False, Verdict.COMMIT),
        (Candidate("b"), None, True, Verdict.HOLD),
        (Candidate("c"), "b", True, Verdict.HOLD),
        (Candidate("c"), "b", False, Verdict.COMMIT),
        (Candidate("b"), "b", False, Verdict.COMMIT),
    ],
)
def test_decide_table(
    candidate: Candidate | None, pending: str | None, holding: bool, verdict: Verdict
) -> None:
    assert decide(candidate, "a", pending, holding) is verdict
    assert decide(candidate, "a", pending, holding, ["watch", "poll", "auto_reload"]) is verdict


@pytest.mark.parametrize(
    ("triggers", "holding", "verdict"),
    [
        (["manual"], False, Verdict.COMMIT),
        (["signal", "watch"], False, Verdict.COMMIT),
        (["manual"], True, Verdict.HOLD),
        (["auto_reload", "watch", "rescan", "poll"], False, Verdict.KEEP),
    ],
)
def test_a_refused_version_is_retried_for_a_caller_only(
    triggers: list[str], holding: bool, verdict: Verdict
) -> None:
    assert decide(Candidate("b", refused=True), "a", None, holding, triggers) is verdict


def test_the_gate_hands_the_batch_triggers_to_decide() -> None:
    gate: Gate[str] = Gate(MAX_WAIT, clock=Clock(), wall=lambda: 0.0)
    refused = Candidate("b", refused=True)
    assert gate.verdict(refused, "a", ["manual"]) is Verdict.COMMIT
    assert gate.verdict(refused, "a", ["watch"]) is Verdict.KEEP
    assert gate.verdict(refused, "a") is Verdict.KEEP  # no trigger named: nobody asked


KINDS = ["watch", "rescan", "poll", "manual", "signal", "auto_reload"]
KINDS += ["session_end", "drain_timeout"]


def test_decide_over_its_whole_input_domain() -> None:
    """Every candidate shape, pending state, gate state and set of batch triggers (7,680
    inputs), against the rule stated once more in the plainest terms."""
    candidates = [None, Candidate(None), Candidate("a"), Candidate("b"), Candidate("b", True)]
    cases = 0
    for candidate, pending, holding, n in itertools.product(
        candidates, (None, "b", "c"), (False, True), range(len(KINDS) + 1)
    ):
        for triggers in itertools.combinations(KINDS, n):
            found = None if candidate is None else candidate.config_hash
            refused = candidate is not None and candidate.refused
            new = found not in (None, "a") and (not refused or bool(CALLERS & set(triggers)))
            if new:
                want = Verdict.HOLD if holding else Verdict.COMMIT
            elif found == "a" and pending is not None:
                want = Verdict.DROP  # the source is back to the config in force
            elif pending is not None and not holding:
                want = Verdict.RELEASE
            else:
                want = Verdict.KEEP
            got = decide(candidate, "a", pending, holding, triggers)
            assert got is want, (candidate, pending, holding, triggers)
            cases += 1
    assert cases == 5 * 3 * 2 * 2 ** len(KINDS) == 7680


def test_the_wait_runs_from_the_first_change_held_and_expire_makes_it_due() -> None:
    clock = Clock()
    gate: Gate[str] = Gate(10.0, clock=clock, wall=lambda: 0.0)
    assert gate.open("s")
    assert not gate.open("s")
    assert gate.holding
    gate.hold("b", "b")
    clock.now += 6
    gate.hold("c", "c")
    assert gate.pending is not None
    assert gate.pending.seq == 2
    clock.now += 4
    assert gate.pending is not None
    assert gate.waited(gate.pending) == 10.0
    assert gate.due
    assert not gate.holding
    assert gate.take() is not None
    assert gate.holding  # a new change waits its own max_wait
    gate.hold("d", "d")
    assert not gate.due
    gate.expire()  # the timer fired a hair early
    assert gate.due
    assert gate.close("s")
    assert not gate.close("s")


def test_max_wait_zero_never_holds_and_a_negative_one_is_refused() -> None:
    gate: Gate[str] = Gate(0.0)
    gate.open("s")
    assert not gate.holding
    with pytest.raises(ValueError, match="max_drain_wait"):
        Gate(-1.0)


@pytest.mark.parametrize(
    ("new", "broken"),
    [
        (Commit(3, "c", 5), None),
        (Commit(2, "c", 5), "generation_not_increasing"),
        (Commit(1, "c", 5), "generation_not_increasing"),
        (Commit(3, "b", 5), "same_config_hash"),
        (Commit(3, "c", 3), "older_than_config_in_force"),
        (Commit(3, "c", 4), None),  # the same read (a held change committed later) is not older
    ],
)
def test_broken_invariant(new: Commit, broken: str | None) -> None:
    assert broken_invariant(Commit(2, "b", 4), new) == broken
