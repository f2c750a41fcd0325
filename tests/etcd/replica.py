"""One fleet replica as its own OS process, for tests/etcd/test_rollout_fleet.py.

``python -m tests.etcd.replica DIR NAME ENDPOINTS PREFIX ROLE IDENTITY WINDOW`` (ENDPOINTS
comma-separated) watches
``DIR/config.yaml`` (a ConfigMap-style volume the test updates) with probation and rollout
(ROLE ``canary``, ``follower`` or ``auto``), and prints one JSON line per outcome, and one per
change of role, on stdout, so the test reads this process's own commit
log. Every ``TICK`` seconds it records a failure of the config's ``dependency`` when the config
in force says ``dependency_ok: false`` (a stand-in for a dead endpoint), a success otherwise.
It exits when its stdin closes, so an orphan never outlives the test.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from pathlib import Path
from typing import Any, Literal

import msgspec
from prometheus_client import CollectorRegistry

from hotreload import HotReloader, Probation, ReloadOutcome, Rollout

TICK = 0.05


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    dependency: str
    dependency_ok: bool


def emit(event: str, reloader: HotReloader[Settings], **fields: Any) -> None:
    report = reloader.rollout_report() or {}
    line = {
        "event": event,
        "role": report.get("role"),
        "awaiting": report.get("awaiting_verdict"),
        "model": reloader.config.model,
        "quarantined": [
            [q.config_hash, q.reason, [e.name for e in q.evidence]] for q in reloader.quarantined
        ],
        **fields,
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def outcome_line(outcome: ReloadOutcome) -> dict[str, Any]:
    return {
        "result": outcome.result.value,
        "applied": outcome.applied,
        "generation": outcome.generation,
        "config_hash": outcome.config_hash,
        "trigger": outcome.trigger,
        "error": getattr(outcome.error, "reason", None),
    }


async def dependency(reloader: HotReloader[Settings]) -> None:
    """The dependency the config names: dead while the config in force says so (and a line
    when the role changes: an election has no outcome of its own)."""
    role = None
    while True:
        report = reloader.rollout_report() or {}
        if report.get("role") != role:
            role = report.get("role")
            emit("role", reloader)
        config = reloader.config
        if config.dependency_ok:
            reloader.record_success(config.dependency)
        else:
            reloader.record_failure(config.dependency, "ConnectError", "connection refused")
        await asyncio.sleep(TICK)


def stdin_closed(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    closed = asyncio.Event()

    def read() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(closed.set)

    threading.Thread(target=read, daemon=True).start()
    return closed


async def main(argv: list[str]) -> None:
    directory, name, endpoints, prefix, role, identity, window = argv
    roles: dict[str, Literal["auto", "canary", "follower"]] = {
        "auto": "auto",
        "canary": "canary",
        "follower": "follower",
    }
    reloader = HotReloader(
        Path(directory) / "config.yaml",
        schema=Settings,
        name=name,
        registry=CollectorRegistry(),
        probation=Probation(window=float(window), failures=3),
        rollout=Rollout(endpoints.split(","), prefix=prefix, role=roles[role], identity=identity),
    )
    closed = stdin_closed(asyncio.get_running_loop())
    async with reloader, reloader.outcomes() as outcomes:
        emit(
            "ready",
            reloader,
            generation=reloader.snapshot.generation,
            config_hash=reloader.snapshot.config_hash,
        )
        ticking = asyncio.create_task(dependency(reloader))

        async def report() -> None:
            async for outcome in outcomes:
                emit("outcome", reloader, **outcome_line(outcome))

        reporting = asyncio.create_task(report())
        await closed.wait()
        for task in (ticking, reporting):
            task.cancel()
        await asyncio.gather(ticking, reporting, return_exceptions=True)
        emit("exit", reloader)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
