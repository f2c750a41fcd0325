"""The etcd v3 JSON-gateway plumbing shared by `EtcdSource`, the verdict store and the election.

One `EtcdClient` knows the endpoints (tried in order, then in turn), TLS, etcd's auth (the
password and the token it yields are held so that no repr shows them), and how to turn any
failure into an `EtcdError` that says whether another member may answer. ``httpx`` is imported
on first use, never by ``import hotreload``.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
from collections.abc import AsyncGenerator, Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any

import msgspec

from ._redact import REDACTED

if TYPE_CHECKING:
    import httpx

__all__ = [
    "MAX_ERROR_BODY",
    "Compacted",
    "EtcdClient",
    "EtcdError",
    "b64",
    "describe",
    "import_httpx",
    "prefix_end",
    "to_int",
]

_EXTRA_HINT = (  # the distribution is not on the package index yet: install from a checkout
    """EtcdSource needs the optional 'etcd' extra: pip install -e ".[etcd]" """
    "(from a checkout of hotreload)"
)

# gRPC status codes that mean "this member cannot answer now, another one may".
_RETRY_ELSEWHERE = {4, 14}  # DEADLINE_EXCEEDED, UNAVAILABLE
_UNAUTHENTICATED = 16
# Dead-peer detection for long-lived connections (a silent network loss sends no FIN).
_KEEPALIVE = (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
MAX_ERROR_BODY = 64 * 1024
_MAX_MESSAGE = 64 * 1024 * 1024  # one watch response: etcd caps a value at ~1.5 MiB


def import_httpx() -> Any:
    try:
        import httpx  # noqa: PLC0415 - optional extra, imported on first use
    except ImportError as exc:
        raise ImportError(_EXTRA_HINT) from exc
    return httpx


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def prefix_end(prefix: bytes) -> bytes:
    """etcd's ``range_end`` for every key under ``prefix``: the prefix with its last byte + 1."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # every key


class EtcdError(Exception):
    """etcd (or the way to it) refused a request. ``elsewhere``: another member may answer."""

    def __init__(self, message: str, *, code: int | None = None, elsewhere: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.elsewhere = elsewhere


class Compacted(Exception):
    def __init__(self, revision: int) -> None:
        super().__init__(f"revision compacted up to {revision}")
        self.revision = revision


class _Hidden:
    """Holds a password or token so that no repr, vars() dump or traceback local shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return REDACTED


class EtcdClient:
    """Endpoints, TLS and auth for etcd's JSON gateway; requests with failover, watch streams.

    ``endpoints`` are ``"host:port"`` or ``"http(s)://host:port"``; TLS is on when a CA or a
    client certificate is given. ``timeout`` bounds each request and connection.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        ca_file: str | PathLike[str] | None = None,
        cert_file: str | PathLike[str] | None = None,
        key_file: str | PathLike[str] | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        import_httpx()
        if (user is None) != (password is None):
            raise ValueError("give both user and password, or neither")
        if (key_file is not None) and cert_file is None:
            raise ValueError("key_file needs cert_file")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        if not endpoints:
            raise ValueError("endpoints must not be empty")
        tls = ca_file is not None or cert_file is not None
        self.endpoints = [_endpoint_url(e, tls) for e in endpoints]
        self.user = user
        self._password = _Hidden(password) if password is not None else None
        self.timeout = timeout
        self.ssl: ssl.SSLContext | None = None
        if any(e.startswith("https://") for e in self.endpoints):
            self.ssl = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
            if cert_file is not None:
                self.ssl.load_cert_chain(
                    str(cert_file), None if key_file is None else str(key_file)
                )
        self.preferred = 0  # index of the endpoint that answered last
        self._token: _Hidden | None = None  # etcd's auth token: a credential too

    def __repr__(self) -> str:
        who = f", user={self.user!r}" if self.user is not None else ""
        return f"EtcdClient({self.hosts!r}{who})"

    @property
    def hosts(self) -> str:
        """``host:port,host:port``, for names and log lines."""
        return ",".join(e.split("://", 1)[1] for e in self.endpoints)

    def new_http(self) -> httpx.AsyncClient:
        hx = import_httpx()
        options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        options += [
            (socket.IPPROTO_TCP, getattr(socket, name), value)
            for name, value in _KEEPALIVE
            if hasattr(socket, name)
        ]
        transport = hx.AsyncHTTPTransport(
            verify=self.ssl if self.ssl is not None else False, socket_options=options
        )
        client: httpx.AsyncClient = hx.AsyncClient(
            transport=transport, timeout=self.timeout, trust_env=False
        )
        return client

    async def request(
        self,
        http: httpx.AsyncClient,
        path: str,
        body: dict[str, Any],
        limit: int = MAX_ERROR_BODY,
    ) -> dict[str, Any]:
        """POST to the first member that answers, starting with the one that answered last."""
        last: EtcdError | None = None
        count = len(self.endpoints)
        for step in range(count):
            index = (self.preferred + step) % count
            try:
                reply = await self._request_one(http, self.endpoints[index], path, body, limit)
            except EtcdError as exc:
                if not exc.elsewhere:
                    raise
                last = exc
                continue
            self.preferred = index
            return reply
        assert last is not None  # noqa: S101 - the loop ran at least once
        raise EtcdError(f"no etcd endpoint answered: {last}", elsewhere=True) from None

    async def _request_one(
        self,
        http: httpx.AsyncClient,
        endpoint: str,
        path: str,
        body: dict[str, Any],
        limit: int,
    ) -> dict[str, Any]:
        for attempt in (1, 2):
            headers = await self.headers(http, endpoint)
            try:
                return await self._post(http, endpoint + path, body, headers, limit)
            except EtcdError as exc:
                if exc.code == _UNAUTHENTICATED and self._password is not None and attempt == 1:
                    self._token = None  # expired: authenticate again, once
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def headers(self, http: httpx.AsyncClient, endpoint: str) -> dict[str, str]:
        # hasleader: a member cut off from the cluster drops our watch instead of keeping it
        # open on stale data, so we move to one that is still in it.
        headers = {"Grpc-Metadata-hasleader": "true"}
        if self._password is not None:
            if self._token is None:
                reply = await self._post(
                    http,
                    endpoint + "/v3/auth/authenticate",
                    {"name": self.user, "password": self._password.value},
                    {},
                    MAX_ERROR_BODY,
                )
                self._token = _Hidden(str(reply.get("token", "")))
            headers["Authorization"] = self._token.value
        return headers

    async def _post(
        self,
        http: httpx.AsyncClient,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        limit: int,
    ) -> dict[str, Any]:
        hx = import_httpx()
        try:
            async with http.stream(
                "POST", url, content=msgspec.json.encode(body), headers=headers
            ) as response:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise EtcdError(f"the answer is larger than {limit} bytes", code=-1)
                    chunks.append(chunk)
                data = b"".join(chunks)
                if response.status_code != 200:
                    self.raise_error(_decode(data), status=response.status_code)
        except hx.HTTPError as exc:  # connection refused, reset, timeout, bad TLS...
            raise EtcdError(describe(exc), elsewhere=True) from None
        reply = _decode(data)
        if not isinstance(reply, dict):
            raise EtcdError("etcd sent an answer that is not a JSON object")
        return reply

    async def watch_stream(
        self, http: httpx.AsyncClient, endpoint: str, create: dict[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The results of one watch (``create`` is its create_request); raises `Compacted`,
        or `EtcdError` when the stream breaks or etcd cancels it."""
        hx = import_httpx()
        body = msgspec.json.encode({"create_request": create})
        headers = await self.headers(http, endpoint)
        timeout = hx.Timeout(self.timeout, read=None)
        async with http.stream(
            "POST", endpoint + "/v3/watch", content=body, headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                await self._raise_for(response)
            messages = _messages(response)
            async with contextlib.aclosing(messages):
                async for message in messages:
                    if "error" in message:
                        self.raise_error(message["error"])
                    result = message.get("result") or {}
                    compact = to_int(result.get("compact_revision"))
                    if compact:
                        raise Compacted(compact)
                    if result.get("canceled"):
                        reason = str(result.get("cancel_reason") or "watch canceled by etcd")
                        if "auth token" in reason:
                            self._token = None
                        raise EtcdError(reason, elsewhere=True)
                    yield result

    async def _raise_for(self, response: httpx.Response) -> None:
        data = b""
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > MAX_ERROR_BODY:
                break
        self.raise_error(_decode(data), status=response.status_code)

    def raise_error(self, error: Any, status: int = 0) -> None:
        """Raise the `EtcdError` an error body describes: ``{"error", "message", "code"}``, or
        in a stream ``{"error": {"grpc_code", "message", ...}}``."""
        if isinstance(error, dict) and isinstance(error.get("error"), dict):
            error = error["error"]
        if isinstance(error, dict):
            code = to_int(error.get("code", error.get("grpc_code")))
            message = str(error.get("message") or error.get("error") or "etcd error")
        else:
            code, message = 0, f"etcd answered HTTP {status}"
        if code == _UNAUTHENTICATED:
            self._token = None
        elsewhere = code in _RETRY_ELSEWHERE or status >= 500 or "leader" in message
        raise EtcdError(message, code=code, elsewhere=elsewhere)


async def _messages(response: httpx.Response) -> AsyncGenerator[dict[str, Any], None]:
    """The JSON objects of a watch stream, one per line, decoded straight from the bytes."""
    buffer = b""
    async for chunk in response.aiter_bytes():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        if len(buffer) > _MAX_MESSAGE:
            raise EtcdError(f"a watch message over {_MAX_MESSAGE} bytes")
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


def to_int(value: Any) -> int:
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


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
