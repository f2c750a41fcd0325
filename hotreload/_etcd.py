"""`EtcdSource`: a config document kept in one etcd key, watched through etcd's v3 API.

It speaks etcd's own JSON gateway (``/v3/kv/range``, ``/v3/watch``, ``/v3/auth/authenticate``,
served by every etcd >= 3.4 on the client port) with ``httpx``: asyncio-native, typed, pure
Python, and the only dependency of the ``etcd`` extra. ``httpx`` is imported when a source is
created, never by ``import hotreload``.

The watch never misses a change: it remembers the revision after the last one it has seen and
resumes there after any disconnect, so writes made while it was away are replayed. When etcd
has compacted that history away it asks the reloader for a full read instead.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any

import anyio

from ._backoff import backoff_delay
from ._errors import ConfigReadError
from ._etcd_client import (
    MAX_ERROR_BODY,
    Compacted,
    EtcdClient,
    EtcdError,
    b64,
    describe,
    import_httpx,
    to_int,
)
from ._logging import ContextLogger
from ._parsing import Format
from ._source import Revision

if TYPE_CHECKING:
    import httpx

__all__ = ["EtcdSource"]

_STABLE = 10.0  # seconds a watch must last for the reconnect backoff to start over


@dataclass
class _WatchState:
    next: int | None  # the revision to watch from: one past the last one seen
    ready: bool = False
    failures: int = 0  # in a row: a watch that breaks soon after etcd confirmed it counts
    since: float | None = None  # when etcd confirmed the current watch


class EtcdSource:
    """One etcd key holding a YAML/JSON/TOML document, for ``HotReloader(source=...)``.

    ``endpoints`` (``"host:port"`` or ``"https://host:port"``, tried in order, then in turn)
    replaces ``host``/``port`` for a cluster. ``ca_file`` / ``cert_file`` / ``key_file``
    turn on TLS (and client certificates); ``user`` / ``password`` use etcd's auth. The
    version of each read is the key's ``mod_revision``. ``timeout`` bounds each request and
    connection; reconnects back off from ``min_backoff`` to at most ``max_backoff`` seconds.
    """

    def __init__(
        self,
        key: str | bytes,
        *,
        host: str = "127.0.0.1",
        port: int = 2379,
        endpoints: Sequence[str] | None = None,
        format: Format | None = None,  # noqa: A002 - the Source protocol's name
        ca_file: str | PathLike[str] | None = None,
        cert_file: str | PathLike[str] | None = None,
        key_file: str | PathLike[str] | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
        min_backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        import_httpx()
        self._key = key.encode() if isinstance(key, str) else bytes(key)
        if not self._key:
            raise ValueError("the etcd key must not be empty")
        if timeout <= 0 or min_backoff <= 0 or max_backoff < min_backoff:
            raise ValueError("timeout and min_backoff must be > 0, max_backoff >= min_backoff")
        self._etcd = EtcdClient(
            list(endpoints) if endpoints is not None else [f"{host}:{port}"],
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            user=user,
            password=password,
            timeout=timeout,
        )
        self._endpoints = self._etcd.endpoints
        self._format = format
        self._timeout = timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        scheme = "etcd+https" if self._etcd.ssl is not None else "etcd"
        name = self._key.decode(errors="replace")
        self._uri = f"{scheme}://{self._etcd.hosts}{'' if name.startswith('/') else '/'}{name}"
        self._log = ContextLogger("hotreload.etcd", source=self._uri)
        self._read_revision: int | None = None  # store revision of the latest read
        self._client: httpx.AsyncClient | None = None  # the running watch's, shared by reads
        # The key as of the watch's latest event (None: deleted), for the read that follows
        # its notification: the event carries the value, so no round trip per replica.
        self._fresh: tuple[bytes | None, int] | None = None

    # -- the Source protocol ---------------------------------------------------------------

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def format(self) -> Format | None:
        return self._format

    def __repr__(self) -> str:
        who = f", user={self._etcd.user!r}" if self._etcd.user is not None else ""
        return f"EtcdSource({self._uri!r}{who})"

    async def read(self, max_bytes: int) -> Revision:
        """The key's value and ``mod_revision``: a linearizable read, or, once after each
        watch event, the value that event carried (as current as a read at that moment)."""
        fresh, self._fresh = self._fresh, None
        if fresh is not None:
            return self._revision(fresh[0], fresh[1], max_bytes)
        limit = max_bytes * 4 // 3 + MAX_ERROR_BODY  # base64 plus the JSON around it
        body = {"key": b64(self._key)}
        try:
            if self._client is not None:
                reply = await self._etcd.request(self._client, "/v3/kv/range", body, limit)
            else:
                async with self._etcd.new_http() as client:
                    reply = await self._etcd.request(client, "/v3/kv/range", body, limit)
        except EtcdError as exc:
            reason = "too_large" if exc.code == -1 else "read"
            raise ConfigReadError(self._uri, str(exc), reason=reason) from None
        revision = to_int(reply.get("header", {}).get("revision"))
        if revision:
            self._read_revision = max(self._read_revision or 0, revision)
        kvs = reply.get("kvs") or []
        if not kvs:
            return self._revision(None, 0, max_bytes)
        value = base64.b64decode(kvs[0].get("value", ""))
        return self._revision(value, to_int(kvs[0].get("mod_revision")), max_bytes)

    def _revision(self, value: bytes | None, mod_revision: int, max_bytes: int) -> Revision:
        if value is None:
            raise ConfigReadError(self._uri, "key not found", reason="missing")
        if len(value) > max_bytes:
            raise ConfigReadError(
                self._uri, f"value is larger than the {max_bytes}-byte limit", reason="too_large"
            )
        return Revision(value, str(mod_revision))

    async def watch(self, notify: Callable[[str], None], ready: Callable[[], None]) -> None:
        """Watch the key until cancelled; see the module docstring for the guarantees."""
        async with self._etcd.new_http() as client:
            self._client = client
            try:
                await self._watch_forever(client, notify, ready)
            finally:
                self._client = None

    # -- watching --------------------------------------------------------------------------

    async def _watch_forever(
        self, client: httpx.AsyncClient, notify: Callable[[str], None], ready: Callable[[], None]
    ) -> None:
        # The first watch starts right after the latest read, so nothing between the
        # reloader's initial read and the watch being in place is missed.
        state = _WatchState(None if self._read_revision is None else self._read_revision + 1)
        index = self._etcd.preferred
        while True:
            endpoint = self._endpoints[index]
            try:
                await self._follow(client, endpoint, state, notify, ready)
            except Compacted as exc:
                # History before exc.revision is gone: re-read everything, then watch on from
                # the oldest revision etcd still has (over-notifying is harmless).
                self._log.warning("etcd_watch_compacted", resume_at=state.next, now=exc.revision)
                state.next = exc.revision
                self._fresh = None
                notify("compacted")
            except Exception as exc:  # noqa: BLE001 - whatever broke, reconnect and resume
                now = anyio.current_time()
                if state.since is not None and now - state.since > _STABLE:
                    state.failures = 0  # it had been fine for a while: start the backoff over
                state.since = None
                state.failures += 1
                delay = backoff_delay(
                    state.failures, self._min_backoff, self._max_backoff, jitter=True
                )
                # Loud on the first failure, then quiet: a long outage is not a log flood.
                log = self._log.warning if state.failures % 30 == 1 else self._log.debug
                log(
                    "etcd_watch_lost",
                    endpoint=endpoint,
                    error=describe(exc),
                    retry_in_s=round(delay, 3),
                    resume_at=state.next,
                )
                index = (index + 1) % len(self._endpoints)
                await asyncio.sleep(delay)

    async def _follow(
        self,
        client: httpx.AsyncClient,
        endpoint: str,
        state: _WatchState,
        notify: Callable[[str], None],
        ready: Callable[[], None],
    ) -> None:
        """One watch stream, from ``state.next`` on, until it breaks (it always raises)."""
        stream = self._watch_stream(client, endpoint, state.next)
        # etcd must confirm the watch within `timeout`: a member that accepts the connection
        # and then says nothing is as bad as one that is down.
        with anyio.CancelScope(deadline=anyio.current_time() + self._timeout) as scope:
            async with contextlib.aclosing(stream):  # closes the connection on cancel
                async for result in stream:
                    header_rev = to_int(result.get("header", {}).get("revision"))
                    events = result.get("events") or []
                    if result.get("created"):
                        scope.deadline = math.inf
                        self._created(endpoint, header_rev, state, notify, ready)
                    elif events:
                        resume, kind = self._take(events)
                        state.next = max(state.next or 0, resume)
                        notify(kind)
                    elif header_rev and state.next is not None:  # progress: all seen to here
                        state.next = max(state.next, header_rev + 1)
        if scope.cancelled_caught:
            raise EtcdError(f"etcd did not confirm the watch within {self._timeout} s")
        raise EtcdError("the watch stream ended", elsewhere=True)

    def _created(
        self,
        endpoint: str,
        header_rev: int,
        state: _WatchState,
        notify: Callable[[str], None],
        ready: Callable[[], None],
    ) -> None:
        if state.next is None:
            state.next = header_rev + 1
        elif header_rev and header_rev < state.next - 1:
            # The store went back in time (restored from a backup): the resume point means
            # nothing there any more.
            self._log.warning("etcd_revision_went_back", revision=header_rev, expected=state.next)
            state.next = header_rev + 1
            self._fresh = None
            notify("resync")
        state.since = anyio.current_time()
        if not state.ready:
            state.ready = True
            ready()
        elif state.failures:
            self._log.info("etcd_watch_resumed", endpoint=endpoint, at=state.next)

    def _take(self, events: list[dict[str, Any]]) -> tuple[int, str]:
        """Keep the key as the last event left it; the revision to resume at, and the kind."""
        last = events[-1]  # a response's events are in revision order
        kv = last.get("kv", {})
        revision = to_int(kv.get("mod_revision"))
        deleted = last.get("type") == "DELETE"
        self._fresh = (None if deleted else base64.b64decode(kv.get("value", "")), revision)
        return revision + 1, "delete" if deleted else "put"

    def _watch_stream(
        self, client: httpx.AsyncClient, endpoint: str, start: int | None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The watch responses of one stream; raises when it breaks or etcd cancels it."""
        create: dict[str, Any] = {"key": b64(self._key)}
        if start is not None:
            create["start_revision"] = str(start)
        return self._etcd.watch_stream(client, endpoint, create)
