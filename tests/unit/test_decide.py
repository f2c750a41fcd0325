"""The commit decision, exhaustively: every sequence of up to four events, cut into batches
every possible way, run through the real `Gate` and `decide` with a fake clock, and checked
against a reference model and the commit invariants.

The events are what the world does between two worker runs: a session opens or ends, a valid
version is written, an invalid one is written, the version in force is written back, a caller
asks for a re-check, or the drain wait runs out; and, for probation, the commit in force is
condemned (its hash is quarantined and a rollback asked for), an operator releases the oldest
quarantined hash (and re-checks), or a quarantined version is written back (a kubelet re-sync
of the bad content). Events in one batch happen in the same loop tick: the worker sees their
triggers together and reads the source once.
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
PROBATION_EVENTS = ("condemn", "release", "bad")
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
    rollbacks: list[int] = field(default_factory=list)  # indexes of rollback commits
    quarantine: list[str] = field(default_factory=list)  # oldest first
    ever_quarantined: set[str] = field(default_factory=set)
    fallback: str | None = None  # the config before the commit in force, on probation
    # the reference model
    target: str = "v0"  # the newest valid version a read found that was not quarantined
    model_in_force: str = "v0"
    model_fallback: str | None = None
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
        if kind == "condemn":
            if self.fallback is None or self.in_force in self.quarantine:
                return set()  # not on probation: nothing to condemn
            self.quarantine.append(self.in_force)
            self.ever_quarantined.add(self.in_force)
            return {"rollback"}
        if kind == "release":
            if not self.quarantine:
                return set()
            self.quarantine.pop(0)
            return {"manual"}
        if kind == "bad":
            if not self.quarantine:
                return set()
            self.file = self.quarantine[0]
        elif kind == "valid":
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
        verdict = self.gate.verdict(
            candidate,
            self.in_force,
            triggers,
            quarantined=self.quarantine,
            fallback=self.fallback,
        )
        if verdict is Verdict.ROLLBACK:
            assert self.fallback is not None
            self.gate.take()
            self.commit(self.fallback, self.commits[-1].read if self.commits else 0, True)
        elif verdict is Verdict.COMMIT:
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

    def commit(self, version: str, read: int, rollback: bool = False) -> None:
        last = self.commits[-1] if self.commits else Commit(1, "v0", 0)
        new = Commit(last.generation + 1, version, read)
        assert broken_invariant(last, new, self.quarantine) is None, (last, new)
        if rollback:
            self.rollbacks.append(len(self.commits))
        self.commits.append(new)
        self.versions.append(version)
        # The engine puts each commit but a rollback on probation, when it has a config to
        # go back to: the one it replaced, unless that one is quarantined.
        old = self.in_force
        self.fallback = None if rollback or old in self.quarantine else old
        self.in_force = version

    # -- the reference model ----------------------------------------------------------------------

    def model(self, looked: bool) -> None:
        """Without sessions (or once the wait is up) the config in force is the newest valid
        version read that is not quarantined; with them it stays, and that version waits as
        pending if it differs. A config in force that is quarantined goes at once, sessions or
        not: for that version if it differs, else for the one in force before it."""
        q = self.quarantine
        if looked and self.file is not None and self.file not in q:
            self.target = self.file
        holding = bool(self.sessions) and not self.model_expired
        old = self.model_in_force
        if old in q:
            if self.target != old:
                self.model_in_force = self.target
                self.model_fallback = None if old in q else old
            elif self.model_fallback is not None:
                self.model_in_force, self.model_fallback = self.model_fallback, None
            self.model_expired = False
        elif not holding:
            if self.target not in q and self.target != old:
                self.model_in_force = self.target
                self.model_fallback = old
            self.model_expired = False
        if self.target in q:  # a quarantined version read earlier comes back only if read again
            self.target = self.model_in_force
        target = self.target
        want_pending = None if target == self.model_in_force or target in q else target
        if want_pending is None:
            self.model_expired = False
        assert self.in_force == self.model_in_force
        assert self.fallback == self.model_fallback
        assert self.in_force not in q or self.fallback is None
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
    # here except by "revert" (the version in force) and "bad" (a quarantined one, which comes
    # back only once released), so every other commit but a rollback is a new version.
    fresh = [
        v
        for i, v in enumerate(world.versions)
        if i not in world.rollbacks and v not in world.ever_quarantined
    ]
    assert len(set(fresh)) == len(fresh)
    assert fresh == sorted(fresh, key=lambda v: int(v[1:]))
    # A rollback puts back the version the condemned commit replaced.
    for i in world.rollbacks:
        assert i >= 1
        assert world.versions[i] == (world.versions[i - 2] if i >= 2 else "v0")
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


def test_every_sequence_with_probation_events_in_every_batching() -> None:
    """The same, with condemn / release / bad-content events among the others (up to four)."""
    cases = 0
    events_all = EVENTS + PROBATION_EVENTS
    for n in range(1, 5):
        for events in itertools.product(events_all, repeat=n):
            if not set(events) & set(PROBATION_EVENTS):
                continue  # covered above
            for batches in batchings(events):
                try:
                    run(batches)
                except AssertionError as exc:
                    raise AssertionError(f"{batches}: {exc}") from exc
                cases += 1
    assert cases == sum((10**n - 7**n) * 2 ** (n - 1) for n in range(1, 5))


def test_a_condemned_commit_is_rolled_back_and_its_content_stays_out() -> None:
    world = run([["valid"], ["condemn"], ["bad"], ["manual"]])
    assert world.versions == ["v1", "v0"]
    assert world.rollbacks == [1]
    assert world.quarantine == ["v1"]


def test_a_release_lets_the_content_back_in() -> None:
    world = run([["valid"], ["condemn"], ["release"]])
    assert world.versions == ["v1", "v0", "v1"]
    assert world.quarantine == []


def test_a_rollback_does_not_wait_for_sessions() -> None:
    world = run([["valid"], ["open"], ["condemn"]])
    assert world.versions == ["v1", "v0"]
    assert world.sessions


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


def test_decide_with_quarantine_over_its_whole_input_domain() -> None:
    """Every candidate, pending state, gate state, caller or not, quarantine set (of the
    hashes in play) and fallback, against the rule with probation stated plainly; and the new
    invariant: a verdict that commits never commits a quarantined hash."""
    hashes = ("a", "b", "c", "f")
    candidates = [None, Candidate(None), *(Candidate(h) for h in hashes), Candidate("b", True)]
    quarantines = [
        frozenset(q) for n in range(len(hashes) + 1) for q in itertools.combinations(hashes, n)
    ]
    cases = 0
    for candidate, pending, holding, caller, quarantined, fallback in itertools.product(
        candidates, (None, "b", "c"), (False, True), (False, True), quarantines, (None, "f", "b")
    ):
        triggers = ["manual"] if caller else ["watch"]
        found = None if candidate is None else candidate.config_hash
        refused = candidate is not None and candidate.refused
        condemned = "a" in quarantined
        usable = found is not None and found not in quarantined
        new = usable and found != "a" and (not refused or caller)
        if new:
            want = Verdict.HOLD if holding and not condemned else Verdict.COMMIT
        elif usable and found == "a":
            want = Verdict.DROP if pending is not None else Verdict.KEEP
        elif pending is not None and pending in quarantined:
            want = Verdict.DROP
        elif condemned and pending is not None:
            want = Verdict.RELEASE
        elif condemned and fallback is not None and fallback not in quarantined:
            want = Verdict.ROLLBACK
        elif not condemned and pending is not None and not holding:
            want = Verdict.RELEASE
        else:
            want = Verdict.KEEP
        got = decide(
            candidate, "a", pending, holding, triggers, quarantined=quarantined, fallback=fallback
        )
        assert got is want, (candidate, pending, holding, triggers, quarantined, fallback)
        committed = {
            Verdict.COMMIT: found,
            Verdict.RELEASE: pending,
            Verdict.ROLLBACK: fallback,
        }.get(got)
        assert committed is None or committed not in quarantined
        cases += 1
    assert cases == 7 * 3 * 2 * 2 * 16 * 3


def test_a_quarantined_hash_breaks_the_commit_invariant() -> None:
    assert broken_invariant(Commit(2, "b", 4), Commit(3, "c", 5), ["c"]) == "quarantined"
    assert broken_invariant(Commit(2, "b", 4), Commit(3, "c", 5), ["b"]) is None


def test_a_hash_awaiting_the_fleets_verdict_is_not_new_over_the_whole_domain() -> None:
    """A follower's held hash (``awaiting``) is never committed nor parked: for every input,
    the decision is the one for a batch whose source showed nothing new; a hash not awaited
    is decided as before."""
    hashes = ("a", "b", "c", "f")
    candidates = [Candidate(h) for h in ("b", "c")] + [Candidate("b", True)]
    cases = 0
    for candidate, pending, holding, caller, quarantined, fallback in itertools.product(
        candidates,
        (None, "b", "c"),
        (False, True),
        (False, True),
        (frozenset(), frozenset("a"), frozenset("c")),
        (None, "f"),
    ):
        triggers = ["manual"] if caller else ["watch"]
        found = candidate.config_hash
        assert found in hashes
        args = (pending, holding, triggers)
        got = decide(
            candidate, "a", *args, quarantined=quarantined, fallback=fallback, awaiting={found}
        )
        nothing_new = decide(None, "a", *args, quarantined=quarantined, fallback=fallback)
        assert got is nothing_new, (candidate, pending, holding, triggers, quarantined, fallback)
        assert got not in {Verdict.COMMIT, Verdict.HOLD}
        other = decide(
            candidate, "a", *args, quarantined=quarantined, fallback=fallback, awaiting={"z"}
        )
        assert other is decide(candidate, "a", *args, quarantined=quarantined, fallback=fallback)
        cases += 1
    assert cases == 3 * 3 * 2 * 2 * 3 * 2


def test_the_gate_holds_an_awaited_hash_until_the_verdict() -> None:
    gate: Gate[str] = Gate(MAX_WAIT, clock=lambda: 0.0)
    assert gate.verdict(Candidate("b"), "a", ["watch"], awaiting={"b"}) is Verdict.KEEP
    assert gate.verdict(Candidate("b"), "a", ["manual"], awaiting={"b"}) is Verdict.KEEP
    assert gate.verdict(Candidate("b"), "a", ["verdict"]) is Verdict.COMMIT  # good: not awaited
    # The source back to the config in force: nothing held, nothing to do.
    assert gate.verdict(Candidate("a"), "a", ["watch"], awaiting={"a"}) is Verdict.KEEP
