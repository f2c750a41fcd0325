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
import socket
import ssl
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from ._backoff import backoff_delay
from ._errors import ConfigReadError
from ._logging import ContextLogger
from ._parsing import Format
from ._redact import REDACTED
from ._source import Revision

if TYPE_CHECKING:
    import httpx

__all__ = ["EtcdSource"]

_EXTRA_HINT = (  # the distribution is not on the package index yet: install from a checkout
    """EtcdSource needs the optional 'etcd' extra: pip install -e ".[etcd]" """
    "(from a checkout of hotreload)"
)

# gRPC status codes that mean "this member cannot answer now, another one may".
_RETRY_ELSEWHERE = {4, 14}  # DEADLINE_EXCEEDED, UNAVAILABLE
_UNAUTHENTICATED = 16
# Dead-peer detection for the long-lived watch connection (a silent network loss sends no FIN).
_KEEPALIVE = (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
_MAX_ERROR_BODY = 64 * 1024
_MAX_MESSAGE = 64 * 1024 * 1024  # one watch response: etcd caps a value at ~1.5 MiB
_STABLE = 10.0  # seconds a watch must last for the reconnect backoff to start over


def _import_httpx() -> Any:
    try:
        import httpx  # noqa: PLC0415 - optional extra, imported on first use
    except ImportError as exc:
        raise ImportError(_EXTRA_HINT) from exc
    return httpx


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _EtcdError(Exception):
    """etcd (or the way to it) refused a request. ``elsewhere``: another member may answer."""

    def __init__(self, message: str, *, code: int | None = None, elsewhere: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.elsewhere = elsewhere


class _Compacted(Exception):
    def __init__(self, revision: int) -> None:
        super().__init__(f"revision compacted up to {revision}")
        self.revision = revision


@dataclass
class _WatchState:
    next: int | None  # the revision to watch from: one past the last one seen
    ready: bool = False
    failures: int = 0  # in a row: a watch that breaks soon after etcd confirmed it counts
    since: float | None = None  # when etcd confirmed the current watch


class _Hidden:
    """Holds a password or token so that no repr, vars() dump or traceback local shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return REDACTED


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
        _import_httpx()
        self._key = key.encode() if isinstance(key, str) else bytes(key)
        if not self._key:
            raise ValueError("the etcd key must not be empty")
        if (user is None) != (password is None):
            raise ValueError("give both user and password, or neither")
        if (key_file is not None) and cert_file is None:
            raise ValueError("key_file needs cert_file")
        if timeout <= 0 or min_backoff <= 0 or max_backoff < min_backoff:
            raise ValueError("timeout and min_backoff must be > 0, max_backoff >= min_backoff")
        tls = ca_file is not None or cert_file is not None
        raw = list(endpoints) if endpoints is not None else [f"{host}:{port}"]
        if not raw:
            raise ValueError("endpoints must not be empty")
        self._endpoints = [_endpoint_url(e, tls) for e in raw]
        self._format = format
        self._user = user
        self._password = _Hidden(password) if password is not None else None
        self._timeout = timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._ssl: ssl.SSLContext | None = None
        if any(e.startswith("https://") for e in self._endpoints):
            self._ssl = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
            if cert_file is not None:
                self._ssl.load_cert_chain(
                    str(cert_file), None if key_file is None else str(key_file)
                )
        hosts = ",".join(e.split("://", 1)[1] for e in self._endpoints)
        scheme = "etcd+https" if self._ssl is not None else "etcd"
        name = self._key.decode(errors="replace")
        self._uri = f"{scheme}://{hosts}{'' if name.startswith('/') else '/'}{name}"
        self._log = ContextLogger("hotreload.etcd", source=self._uri)
        self._preferred = 0  # index of the endpoint that answered last
        self._token: _Hidden | None = None  # etcd's auth token: a credential too
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
        who = f", user={self._user!r}" if self._user is not None else ""
        return f"EtcdSource({self._uri!r}{who})"

    async def read(self, max_bytes: int) -> Revision:
        """The key's value and ``mod_revision``: a linearizable read, or, once after each
        watch event, the value that event carried (as current as a read at that moment)."""
        fresh, self._fresh = self._fresh, None
        if fresh is not None:
            return self._revision(fresh[0], fresh[1], max_bytes)
        limit = max_bytes * 4 // 3 + _MAX_ERROR_BODY  # base64 plus the JSON around it
        body = {"key": _b64(self._key)}
        try:
            if self._client is not None:
                reply = await self._request(self._client, "/v3/kv/range", body, limit)
            else:
                async with self._new_client() as client:
                    reply = await self._request(client, "/v3/kv/range", body, limit)
        except _EtcdError as exc:
            reason = "too_large" if exc.code == -1 else "read"
            raise ConfigReadError(self._uri, str(exc), reason=reason) from None
        revision = _int(reply.get("header", {}).get("revision"))
        if revision:
            self._read_revision = max(self._read_revision or 0, revision)
        kvs = reply.get("kvs") or []
        if not kvs:
            return self._revision(None, 0, max_bytes)
        value = base64.b64decode(kvs[0].get("value", ""))
        return self._revision(value, _int(kvs[0].get("mod_revision")), max_bytes)

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
        async with self._new_client() as client:
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
        index = self._preferred
        while True:
            endpoint = self._endpoints[index]
            try:
                await self._follow(client, endpoint, state, notify, ready)
            except _Compacted as exc:
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
                    error=_describe(exc),
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
                    header_rev = _int(result.get("header", {}).get("revision"))
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
            raise _EtcdError(f"etcd did not confirm the watch within {self._timeout} s")
        raise _EtcdError("the watch stream ended", elsewhere=True)

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
        revision = _int(kv.get("mod_revision"))
        deleted = last.get("type") == "DELETE"
        self._fresh = (None if deleted else base64.b64decode(kv.get("value", "")), revision)
        return revision + 1, "delete" if deleted else "put"

    async def _watch_stream(
        self, client: httpx.AsyncClient, endpoint: str, start: int | None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The watch responses of one stream; raises when it breaks or etcd cancels it."""
        hx = _import_httpx()
        create: dict[str, Any] = {"key": _b64(self._key)}
        if start is not None:
            create["start_revision"] = str(start)
        body = msgspec.json.encode({"create_request": create})
        headers = await self._headers(client, endpoint)
        timeout = hx.Timeout(self._timeout, read=None)
        async with client.stream(
            "POST", endpoint + "/v3/watch", content=body, headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                await self._raise_for(response)
            messages = _messages(response)
            async with contextlib.aclosing(messages):
                async for message in messages:
                    if "error" in message:
                        self._raise_error(message["error"])
                    result = message.get("result") or {}
                    compact = _int(result.get("compact_revision"))
                    if compact:
                        raise _Compacted(compact)
                    if result.get("canceled"):
                        reason = str(result.get("cancel_reason") or "watch canceled by etcd")
                        if "auth token" in reason:
                            self._token = None
                        raise _EtcdError(reason, elsewhere=True)
                    yield result

    # -- requests --------------------------------------------------------------------------

    def _new_client(self) -> httpx.AsyncClient:
        hx = _import_httpx()
        options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        options += [
            (socket.IPPROTO_TCP, getattr(socket, name), value)
            for name, value in _KEEPALIVE
            if hasattr(socket, name)
        ]
        transport = hx.AsyncHTTPTransport(
            verify=self._ssl if self._ssl is not None else False, socket_options=options
        )
        client: httpx.AsyncClient = hx.AsyncClient(
            transport=transport, timeout=self._timeout, trust_env=False
        )
        return client

    async def _request(
        self, client: httpx.AsyncClient, path: str, body: dict[str, Any], limit: int
    ) -> dict[str, Any]:
        """POST to the first member that answers, starting with the one that answered last."""
        last: _EtcdError | None = None
        count = len(self._endpoints)
        for step in range(count):
            index = (self._preferred + step) % count
            try:
                reply = await self._request_one(client, self._endpoints[index], path, body, limit)
            except _EtcdError as exc:
                if not exc.elsewhere:
                    raise
                last = exc
                continue
            self._preferred = index
            return reply
        assert last is not None  # noqa: S101 - the loop ran at least once
        raise _EtcdError(f"no etcd endpoint answered: {last}") from None

    async def _request_one(
        self,
        client: httpx.AsyncClient,
        endpoint: str,
        path: str,
        body: dict[str, Any],
        limit: int,
    ) -> dict[str, Any]:
        for attempt in (1, 2):
            headers = await self._headers(client, endpoint)
            try:
                return await self._post(client, endpoint + path, body, headers, limit)
            except _EtcdError as exc:
                if exc.code == _UNAUTHENTICATED and self._password is not None and attempt == 1:
                    self._token = None  # expired: authenticate again, once
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _headers(self, client: httpx.AsyncClient, endpoint: str) -> dict[str, str]:
        # hasleader: a member cut off from the cluster drops our watch instead of keeping it
        # open on stale data, so we move to one that is still in it.
        headers = {"Grpc-Metadata-hasleader": "true"}
        if self._password is not None:
            if self._token is None:
                reply = await self._post(
                    client,
                    endpoint + "/v3/auth/authenticate",
                    {"name": self._user, "password": self._password.value},
                    {},
                    _MAX_ERROR_BODY,
                )
                self._token = _Hidden(str(reply.get("token", "")))
            headers["Authorization"] = self._token.value
        return headers

    async def _post(
        self,
        client: httpx.AsyncClient,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        limit: int,
    ) -> dict[str, Any]:
        hx = _import_httpx()
        try:
            async with client.stream(
                "POST", url, content=msgspec.json.encode(body), headers=headers
            ) as response:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise _EtcdError(f"the answer is larger than {limit} bytes", code=-1)
                    chunks.append(chunk)
                data = b"".join(chunks)
                if response.status_code != 200:
                    self._raise_error(_decode(data), status=response.status_code)
        except hx.HTTPError as exc:  # connection refused, reset, timeout, bad TLS...
            raise _EtcdError(_describe(exc), elsewhere=True) from None
        reply = _decode(data)
        if not isinstance(reply, dict):
            raise _EtcdError("etcd sent an answer that is not a JSON object")
        return reply

    async def _raise_for(self, response: httpx.Response) -> None:
        data = b""
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > _MAX_ERROR_BODY:
                break
        self._raise_error(_decode(data), status=response.status_code)

    def _raise_error(self, error: Any, status: int = 0) -> None:
        """Raise the `_EtcdError` an error body describes: ``{"error", "message", "code"}``, or
        in a stream ``{"error": {"grpc_code", "message", ...}}``."""
        if isinstance(error, dict) and isinstance(error.get("error"), dict):
            error = error["error"]
        if isinstance(error, dict):
            code = _int(error.get("code", error.get("grpc_code")))
            message = str(error.get("message") or error.get("error") or "etcd error")
        else:
            code, message = 0, f"etcd answered HTTP {status}"
        if code == _UNAUTHENTICATED:
            self._token = None
        elsewhere = code in _RETRY_ELSEWHERE or status >= 500 or "leader" in message
        raise _EtcdError(message, code=code, elsewhere=elsewhere)


async def _messages(response: httpx.Response) -> AsyncGenerator[dict[str, Any], None]:
    """The JSON objects of a watch stream, one per line, decoded straight from the bytes."""
    buffer = b""
    async for chunk in response.aiter_bytes():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        if len(buffer) > _MAX_MESSAGE:
            raise _EtcdError(f"a watch message over {_MAX_MESSAGE} bytes")
        for line in lines:
            if line.strip():
                message = msgspec.json.decode(line)
                if isinstance(message, dict):
                    yield message


def _endpoint_url(endpoint: str, tls: bool) -> str:
    endpoint = endpoint.strip().rstrip("/")
    if "://" in endpoint:
        scheme = endpoint.split("://", 1)[0]
        if scheme not in ("http", "https"):
            raise ValueError(f"etcd endpoint {endpoint!r}: the scheme must be http or https")
        return endpoint
    return f"{'https' if tls else 'http'}://{endpoint}"


def _int(value: Any) -> int:
    """etcd's JSON spells int64 as strings and leaves zero values out."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _decode(data: bytes) -> Any:
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
