"""One fleet replica as its own OS process, for tests/etcd/test_rollout_fleet.py.

``python -m tests.etcd.replica DIR NAME ENDPOINT PREFIX ROLE IDENTITY WINDOW`` watches
``DIR/config.yaml`` (a ConfigMap-style volume the test updates) with probation and rollout,
and prints one JSON line per outcome on stdout, so the test reads this process's own commit
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
    """The dependency the config names: dead while the config in force says so."""
    while True:
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
    directory, name, endpoint, prefix, role, identity, window = argv
    pinned: Literal["canary", "follower"] = "canary" if role == "canary" else "follower"
    reloader = HotReloader(
        Path(directory) / "config.yaml",
        schema=Settings,
        name=name,
        registry=CollectorRegistry(),
        probation=Probation(window=float(window), failures=3),
        rollout=Rollout([endpoint], prefix=prefix, role=pinned, identity=identity),
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
