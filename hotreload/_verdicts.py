"""The fleet's verdicts on config hashes, kept in etcd (issue 26): one key per ``config_hash``.

``<prefix>/<name>/verdicts/<config_hash>`` holds ``{"verdict": "good"|"bad", "evidence": [...],
"by": ..., "at": ...}``. The first verdict on a hash is the verdict: `VerdictStore.write` creates
the key in a transaction that fails when it exists, and then answers with the one stored.

The watch follows the prefix from a revision and resumes after the last revision it saw, as
`EtcdSource` does, so a verdict written while it was away is delivered, once. When etcd has
compacted that history it lists the prefix and delivers what was written since. Losing etcd
never invents a verdict: the watch retries with backoff and delivers nothing meanwhile; a value
that is not a verdict is logged and skipped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from os import PathLike
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import anyio
import msgspec

from ._backoff import backoff_delay
from ._etcd_client import Compacted, EtcdClient, EtcdError, b64, describe, prefix_end, to_int
from ._logging import ContextLogger

if TYPE_CHECKING:
    import httpx

__all__ = ["Outcome", "Verdict", "VerdictError", "VerdictFormatError", "VerdictStore"]

Outcome = Literal["good", "bad"]
_OUTCOMES = ("good", "bad")
_MAX_VERDICT = 1 << 20  # one verdict's answer
_MAX_LIST = 64 << 20  # every verdict of one config name
_STABLE = 10.0  # seconds a watch must last for the reconnect backoff to start over


class VerdictError(Exception):
    """etcd could not be reached, or refused a verdict request."""


class VerdictFormatError(VerdictError):
    """A verdict key holds a value that is not a verdict (never read as one)."""


@dataclass(frozen=True)
class Verdict:
    """One stored verdict. ``revision``: the etcd revision that wrote it."""

    config_hash: str
    verdict: Outcome
    evidence: tuple[Any, ...]
    by: str
    at: str
    revision: int


class _Stored(msgspec.Struct, forbid_unknown_fields=False):
    verdict: Outcome
    by: str
    at: str
    evidence: list[Any] = msgspec.field(default_factory=list)


class VerdictStore:
    """Verdicts on the config hashes of config ``name``, under ``prefix`` in etcd.

    The etcd options are `EtcdSource`'s: ``endpoints`` tried in order then in turn, TLS with
    ``ca_file``/``cert_file``/``key_file``, etcd auth with ``user``/``password``; ``timeout``
    bounds each request; the watch reconnects backing off from ``min_backoff`` to
    ``max_backoff`` seconds.
    """

    def __init__(
        self,
        name: str,
        *,
        prefix: str = "/hotreload",
        endpoints: Sequence[str] = ("127.0.0.1:2379",),
        ca_file: str | PathLike[str] | None = None,
        cert_file: str | PathLike[str] | None = None,
        key_file: str | PathLike[str] | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
        min_backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        if not name or "/" in name:
            raise ValueError(f"the config name must be non-empty, without '/': {name!r}")
        if min_backoff <= 0 or max_backoff < min_backoff:
            raise ValueError("min_backoff must be > 0, max_backoff >= min_backoff")
        self._etcd = EtcdClient(
            endpoints,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            user=user,
            password=password,
            timeout=timeout,
        )
        self.name = name
        self._dir = f"{prefix.rstrip('/')}/{name}/verdicts/".encode()
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._log = ContextLogger("hotreload.verdicts", config=name)

    def __repr__(self) -> str:
        return f"VerdictStore({self._dir.decode(errors='replace')!r}, {self._etcd!r})"

    def key(self, config_hash: str) -> bytes:
        """The etcd key of ``config_hash``'s verdict."""
        if not config_hash or "/" in config_hash:
            raise ValueError(f"a config_hash is non-empty, without '/': {config_hash!r}")
        return self._dir + config_hash.encode()

    # -- one verdict -----------------------------------------------------------------------

    async def write(
        self, config_hash: str, verdict: Outcome, evidence: Sequence[Any] = (), *, by: str
    ) -> Verdict:
        """Record ``verdict`` unless the hash has one: the verdict in force either way.

        If the answer is lost after etcd applied the write, writing again is safe: it answers
        with the verdict that write stored."""
        if verdict not in _OUTCOMES:
            raise ValueError(f"a verdict is 'good' or 'bad', not {verdict!r}")
        if not by:
            raise ValueError("by (who gives the verdict) must not be empty")
        key = b64(self.key(config_hash))
        at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        value = msgspec.json.encode(
            {"verdict": verdict, "evidence": list(evidence), "by": by, "at": at}
        )
        body = {
            "compare": [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": 0}],
            "success": [{"request_put": {"key": key, "value": b64(value)}}],
            "failure": [{"request_range": {"key": key}}],
        }
        reply = await self._call("/v3/kv/txn", body, _MAX_VERDICT)
        if reply.get("succeeded"):
            revision = to_int(reply.get("header", {}).get("revision"))
            written = Verdict(config_hash, verdict, tuple(evidence), by, at, revision)
            self._log.info("verdict_written", config_hash=config_hash, verdict=verdict, by=by)
            return written
        responses = reply.get("responses") or [{}]
        kvs = responses[0].get("response_range", {}).get("kvs") or []
        if not kvs:  # cannot happen: the compare and the range see one revision
            raise VerdictError(f"etcd refused the verdict on {config_hash} and showed none")
        return self._parse(config_hash, kvs[0])

    async def get(self, config_hash: str) -> Verdict | None:
        """``config_hash``'s verdict, or None when it has none (a linearizable read)."""
        reply = await self._call("/v3/kv/range", {"key": b64(self.key(config_hash))}, _MAX_VERDICT)
        kvs = reply.get("kvs") or []
        return self._parse(config_hash, kvs[0]) if kvs else None

    async def snapshot(self) -> tuple[dict[str, Verdict], int]:
        """Every verdict of the config, and the revision they are as of: watch from one past it
        to miss none. Values that are not verdicts are logged and left out."""
        async with self._etcd.new_http() as http:
            return await self._list(http)

    # -- watching --------------------------------------------------------------------------

    async def watch(
        self, callback: Callable[[Verdict], object], start_revision: int | None = None
    ) -> NoReturn:
        """Call ``callback`` with each verdict written from ``start_revision`` on (None: from
        now), in revision order, until cancelled; an awaitable it returns is awaited."""
        async with self._etcd.new_http() as http:
            await self._watch_forever(http, callback, start_revision)

    async def verdicts(self, start_revision: int | None = None) -> AsyncIterator[Verdict]:
        """`watch` as an async iterator."""
        queue: asyncio.Queue[Verdict] = asyncio.Queue()
        task = asyncio.ensure_future(self.watch(queue.put_nowait, start_revision))
        try:
            while True:
                get = asyncio.ensure_future(queue.get())
                await asyncio.wait({get, task}, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    task.result()  # watch never returns: this raises what it raised
                yield get.result()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch_forever(
        self, http: httpx.AsyncClient, callback: Callable[[Verdict], object], start: int | None
    ) -> NoReturn:
        state = _State(start)
        index = self._etcd.preferred
        while True:
            endpoint = self._etcd.endpoints[index]
            try:
                if state.catch_up:
                    await self._catch_up(http, state, callback)
                await self._follow(http, endpoint, state, callback)
            except Compacted as exc:
                self._log.warning(
                    "verdicts_watch_compacted", resume_at=state.next, now=exc.revision
                )
                state.catch_up = True
            except Exception as exc:  # noqa: BLE001 - whatever broke, reconnect and resume
                now = anyio.current_time()
                if state.since is not None and now - state.since > _STABLE:
                    state.failures = 0
                state.since = None
                state.failures += 1
                delay = backoff_delay(
                    state.failures, self._min_backoff, self._max_backoff, jitter=True
                )
                log = self._log.warning if state.failures % 30 == 1 else self._log.debug
                log(
                    "verdicts_watch_lost",
                    endpoint=endpoint,
                    error=describe(exc),
                    retry_in_s=round(delay, 3),
                    resume_at=state.next,
                )
                index = (index + 1) % len(self._etcd.endpoints)
                await asyncio.sleep(delay)

    async def _follow(
        self,
        http: httpx.AsyncClient,
        endpoint: str,
        state: _State,
        callback: Callable[[Verdict], object],
    ) -> NoReturn:
        """One watch stream from ``state.next`` on, until it breaks (it always raises)."""
        create: dict[str, Any] = {"key": b64(self._dir), "range_end": b64(prefix_end(self._dir))}
        if state.next is not None:
            create["start_revision"] = str(state.next)
        stream = self._etcd.watch_stream(http, endpoint, create)
        with anyio.CancelScope(deadline=anyio.current_time() + self._etcd.timeout) as scope:
            async with contextlib.aclosing(stream):
                async for result in stream:
                    header_rev = to_int(result.get("header", {}).get("revision"))
                    if result.get("created"):
                        scope.deadline = math.inf
                        if state.next is None:
                            state.next = header_rev + 1
                        elif header_rev and header_rev < state.next - 1:
                            # The store went back in time (restored): list it again.
                            self._log.warning("verdicts_revision_went_back", revision=header_rev)
                            state.next, state.catch_up = 0, True
                            raise EtcdError("etcd's revision went back", elsewhere=True)
                        if state.failures:
                            self._log.info("verdicts_watch_resumed", at=state.next)
                        state.since = anyio.current_time()
                        continue
                    for event in result.get("events") or []:
                        kv = event.get("kv", {})
                        state.next = max(state.next or 0, to_int(kv.get("mod_revision")) + 1)
                        if event.get("type") != "DELETE":
                            await self._deliver(kv, callback)
        if scope.cancelled_caught:
            raise EtcdError(f"etcd did not confirm the watch within {self._etcd.timeout} s")
        raise EtcdError("the watch stream ended", elsewhere=True)

    async def _catch_up(
        self, http: httpx.AsyncClient, state: _State, callback: Callable[[Verdict], object]
    ) -> None:
        """After a compaction: deliver what the listing shows was written since ``next``."""
        verdicts, revision = await self._list(http)
        for verdict in sorted(verdicts.values(), key=lambda v: v.revision):
            if verdict.revision >= (state.next or 0):
                await _call_back(callback, verdict)
        state.next, state.catch_up = revision + 1, False

    async def _deliver(self, kv: dict[str, Any], callback: Callable[[Verdict], object]) -> None:
        config_hash = base64.b64decode(kv.get("key", "")).decode(errors="replace")
        config_hash = config_hash.removeprefix(self._dir.decode(errors="replace"))
        try:
            verdict = self._parse(config_hash, kv)
        except VerdictFormatError as exc:
            self._log.warning("verdict_malformed", config_hash=config_hash, error=str(exc))
            return
        await _call_back(callback, verdict)

    # -- requests --------------------------------------------------------------------------

    async def _list(self, http: httpx.AsyncClient) -> tuple[dict[str, Verdict], int]:
        body = {"key": b64(self._dir), "range_end": b64(prefix_end(self._dir))}
        try:
            reply = await self._etcd.request(http, "/v3/kv/range", body, _MAX_LIST)
        except EtcdError as exc:
            raise VerdictError(str(exc)) from None
        found: dict[str, Verdict] = {}
        for kv in reply.get("kvs") or []:
            name = base64.b64decode(kv.get("key", "")).removeprefix(self._dir).decode("utf-8")
            try:
                found[name] = self._parse(name, kv)
            except VerdictFormatError as exc:
                self._log.warning("verdict_malformed", config_hash=name, error=str(exc))
        return found, to_int(reply.get("header", {}).get("revision"))

    async def _call(self, path: str, body: dict[str, Any], limit: int) -> dict[str, Any]:
        try:
            async with self._etcd.new_http() as http:
                return await self._etcd.request(http, path, body, limit)
        except EtcdError as exc:
            raise VerdictError(str(exc)) from None

    def _parse(self, config_hash: str, kv: dict[str, Any]) -> Verdict:
        try:
            stored = msgspec.json.decode(base64.b64decode(kv.get("value", "")), type=_Stored)
        except (msgspec.DecodeError, ValueError) as exc:
            raise VerdictFormatError(f"the verdict on {config_hash} is not one: {exc}") from None
        revision = to_int(kv.get("mod_revision"))
        return Verdict(
            config_hash, stored.verdict, tuple(stored.evidence), stored.by, stored.at, revision
        )


@dataclass
class _State:
    next: int | None  # the revision to watch from: one past the last one seen
    catch_up: bool = False  # list the prefix before watching (history was compacted)
    failures: int = 0
    since: float | None = None


async def _call_back(callback: Callable[[Verdict], object], verdict: Verdict) -> None:
    result = callback(verdict)
    if inspect.isawaitable(result):
        await result
