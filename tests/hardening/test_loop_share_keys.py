"""What a commit does on the loop with thousands of keys does not grow with them (issue 23).

A version with thousands of unknown keys, or thousands of changed paths, is evaluated in the
worker thread; on the loop the commit names them in its log lines (at most `LOG_LIST_MAX`)
and in the outcome (the tuple the thread built). Formatting every unknown key (its dotted
path, line and suggestion) or walking every changed path just to log twenty of them is work
that grows with the document: it belongs to the thread. Measured as the loop thread's CPU
against an ordinary document checked on the loop in the same test (`ordinary_hold`).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from hotreload import HotReloader
from hotreload._logging import LOG_LIST_MAX
from hotreload.testing import write_atomic
from tests.hardening.conftest import (
    SLOW_WAIT,
    loop_hold,
    next_commit,
    open_reloader,
    ordinary_document,
)

pytestmark = pytest.mark.timeout(120)


class Open(msgspec.Struct, frozen=True, kw_only=True):
    """Unknown keys allowed (so they are named, not refused), and one large known mapping."""

    model: str
    items: dict[str, str] = {}


async def ordinary_hold(r: HotReloader[Any], path: Path) -> float:
    """The baseline: how long ``r`` holds the loop to commit an ordinary document just under
    the inline-parse size (its keys unknown to `Open`, so named too), checked on the loop."""
    document = ordinary_document()  # the test's own work, outside the block
    async with loop_hold() as hold:
        write_atomic(path, document)
        assert (await next_commit(r)).applied
    assert hold.worst > 0
    return hold.worst


def stray_keys(n: int, model: str) -> bytes:
    """``n`` top-level keys the schema does not declare (about 25 bytes each)."""
    lines = [f"model: {model}\n"] + [f"stray_{k:07d}_{model}: {k}\n" for k in range(n)]
    return "".join(lines).encode()


def changed_items(n: int, model: str) -> bytes:
    """``n`` known entries whose every value names ``model``: each one a changed path."""
    lines = [f"model: {model}\nitems:\n"] + [f"  k{k:07d}: {model}-{k}\n" for k in range(n)]
    return "".join(lines).encode()


async def test_a_version_with_thousands_of_unknown_keys_holds_the_loop_no_longer(
    config_path: Path, registry: CollectorRegistry, logs: list[MutableMapping[str, Any]]
) -> None:
    n = 20_000
    async with open_reloader(config_path, registry, schema=Open, max_bytes=4 << 20) as r:
        ordinary = await ordinary_hold(r, config_path)
        document = stray_keys(n, "gpt-6")
        async with loop_hold() as hold:
            write_atomic(config_path, document)
            outcome = await next_commit(r, timeout=SLOW_WAIT)
        assert outcome.applied
        assert len(r.unknown_keys) == n
    [line] = [e for e in logs if e["event"] == "config_unknown_keys" and e["count"] == n]
    assert len(line["keys"]) == LOG_LIST_MAX + 1
    assert line["keys"][0].startswith("unknown key `stray_0000000_gpt-6` (line 2)")
    assert hold.worst <= 2 * ordinary, (
        f"naming {n} unknown keys held the loop for {hold.worst * 1000:.1f} ms of CPU, "
        f"{hold.worst / ordinary:.1f} times an ordinary document's {ordinary * 1000:.1f} ms"
    )


async def test_a_change_of_thousands_of_paths_holds_the_loop_no_longer(
    config_path: Path, registry: CollectorRegistry, logs: list[MutableMapping[str, Any]]
) -> None:
    n = 40_000
    async with open_reloader(config_path, registry, schema=Open, max_bytes=4 << 20) as r:
        write_atomic(config_path, changed_items(n, "gpt-5"))
        await next_commit(r, timeout=SLOW_WAIT)
        ordinary = await ordinary_hold(r, config_path)
        document = changed_items(n, "gpt-6")
        async with loop_hold() as hold:
            write_atomic(config_path, document)
            outcome = await next_commit(r, timeout=SLOW_WAIT)
    assert len(outcome.changed) == n + 1
    [line] = [e for e in logs if e.get("generation") == 3 and "changed" in e]
    assert len(line["changed"]) == LOG_LIST_MAX + 1
    assert hold.worst <= 2 * ordinary, (
        f"a change of {n} paths held the loop for {hold.worst * 1000:.1f} ms of CPU, "
        f"{hold.worst / ordinary:.1f} times an ordinary document's {ordinary * 1000:.1f} ms"
    )
