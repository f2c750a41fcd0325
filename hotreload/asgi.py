"""Serve a hot-reloaded config from an ASGI app: Starlette, FastAPI, or plain ASGI.

Written against raw ASGI so the core package keeps no web dependency; only `admin_routes`
and `gated` (on a request/response function) import Starlette, and only when called.

* `hotreload_lifespan` opens the reloader for the app's lifetime and puts it on
  ``app.state.hotreload`` (and in the lifespan state, so ``request.state.hotreload``).
* `HotReloadMiddleware` pins ONE snapshot per request (``current_snapshot()``,
  ``current_config()``, ``request.state.hotreload_snapshot``). Pinning never delays a commit:
  a gating session per request would hold every change back under steady traffic.
* `session` / `gated` open a gating session for long units of work, opted into per route.
* `HotReloadAdmin` (or `admin_routes` for Starlette/FastAPI) serves ``GET /-/config``,
  ``POST /-/reload``, ``POST /-/quarantine/release``, ``GET /metrics``, ``GET /-/healthz``
  and ``GET /-/readyz``.
"""

from __future__ import annotations

import contextlib
import contextvars
import hmac
import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from typing import Any, TypeVar, overload
from urllib.parse import parse_qs

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ._present import (
    failure_dict,
    outcome_dict,
    redacted,
    scrubbed,
    snapshot_dict,
    to_builtins,
)
from ._reloader import HotReloader
from ._sighup import reload_on_sighup_if_possible
from ._snapshot import Snapshot

__all__ = [
    "STATE_KEY",
    "HotReloadAdmin",
    "HotReloadMiddleware",
    "admin_routes",
    "config_report",
    "current_config",
    "current_snapshot",
    "gated",
    "hotreload_lifespan",
    "reloader_for",
    "session",
]

T = TypeVar("T")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATE_KEY = "hotreload"
"""``app.state.hotreload`` is the reloader; ``request.state.hotreload_snapshot`` the pin."""

_pinned: contextvars.ContextVar[Mapping[str, Snapshot[Any]] | None] = contextvars.ContextVar(
    "hotreload_pinned", default=None
)


# -- lifespan -----------------------------------------------------------------------------------


def hotreload_lifespan(
    reloader: HotReloader[Any] | Callable[[], HotReloader[Any]],
    *,
    state_key: str = STATE_KEY,
    reload_on_sighup: bool = False,
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[dict[str, Any]]]:
    """A ``lifespan=`` for Starlette or FastAPI that runs ``reloader`` while the app runs.

    ``reloader`` may be a factory, so the app can be built before the file exists. Inside,
    the reloader is ``app.state.<state_key>`` and is in the lifespan state (copied into every
    request's ``request.state``). An invalid file at start fails the start-up: fail fast.
    ``reload_on_sighup=True`` makes SIGHUP re-check every reloader of the process while the
    app runs (`hotreload.reload_on_sighup`; a handler installed before is chained); where it
    cannot be installed (the app runs off the main thread, as under a test client) start-up
    goes on and ``sighup_reload_not_installed`` is logged.
    To combine it with your own lifespan, ``async with hotreload_lifespan(r)(app) as state:``.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        running = reloader if isinstance(reloader, HotReloader) else reloader()
        async with running, contextlib.AsyncExitStack() as stack:
            if reload_on_sighup:
                stack.callback(reload_on_sighup_if_possible())
            app_state = getattr(app, "state", None)
            if app_state is not None:
                setattr(app_state, state_key, running)
            yield {state_key: running}

    return lifespan


def reloader_for(scope: Mapping[str, Any], state_key: str = STATE_KEY) -> HotReloader[Any] | None:
    """The reloader `hotreload_lifespan` installed, from a request (or its raw ASGI scope)."""
    state = scope.get("state")
    if isinstance(state, Mapping):
        found = state.get(state_key)
        if isinstance(found, HotReloader):
            return found
    found = getattr(getattr(scope.get("app"), "state", None), state_key, None)
    return found if isinstance(found, HotReloader) else None


# -- pinning ------------------------------------------------------------------------------------


class HotReloadMiddleware:
    """Pins the snapshot in force when a request arrives, for the whole request.

    Every read through `current_snapshot` / `current_config` (or
    ``request.state.hotreload_snapshot``) in that request sees the same version, even if a
    change commits meanwhile, and ``derived.get()`` the resources built for it (an old client
    is closed only after the requests that pinned it end). It never opens a gating session,
    so it never delays a commit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        reloader: HotReloader[Any] | None = None,
        state_key: str = STATE_KEY,
    ) -> None:
        self.app = app
        self.reloader = reloader
        self.state_key = state_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reloader = self.reloader or reloader_for(scope, self.state_key)
        if reloader is None:  # not started (yet): handlers asking for a snapshot get told so
            await self.app(scope, receive, send)
            return
        token = _pin(scope, self.state_key, reloader.snapshot)
        try:
            with reloader.pin_resources():  # the derived resources of the pinned snapshot
                await self.app(scope, receive, send)
        finally:
            _pinned.reset(token)


def _pin(
    scope: MutableMapping[str, Any], key: str, snapshot: Snapshot[Any]
) -> contextvars.Token[Mapping[str, Snapshot[Any]] | None]:
    state = scope.setdefault("state", {})
    if isinstance(state, MutableMapping):
        state[f"{key}_snapshot"] = snapshot
    return _pinned.set({**(_pinned.get() or {}), key: snapshot})


def current_snapshot(state_key: str = STATE_KEY) -> Snapshot[Any]:
    """The snapshot pinned for the request (or gating session) being served."""
    pinned = _pinned.get()
    if pinned is None or state_key not in pinned:
        raise LookupError(
            f"no {state_key!r} snapshot is pinned here: add HotReloadMiddleware to the app "
            "(a snapshot is pinned only while a request is served)"
        )
    return pinned[state_key]


@overload
def current_config(schema: type[T], *, state_key: str = STATE_KEY) -> T: ...
@overload
def current_config(schema: None = None, *, state_key: str = STATE_KEY) -> Any: ...
def current_config(schema: type[Any] | None = None, *, state_key: str = STATE_KEY) -> Any:
    """The pinned snapshot's config; ``current_config(Settings)`` is typed as ``Settings``."""
    config = current_snapshot(state_key).config
    if schema is not None and not isinstance(config, schema):
        raise TypeError(f"the pinned config is a {type(config).__name__}, not {schema.__name__}")
    return config


# -- gating sessions ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def session(
    request: Mapping[str, Any], *, state_key: str = STATE_KEY
) -> AsyncIterator[Snapshot[Any]]:
    """A gating session for one long unit of work inside a request (Starlette/FastAPI
    ``Request`` or a raw scope): no change commits while it is open (up to the reloader's
    ``max_drain_wait``), and `current_snapshot` inside the block is the session's snapshot.
    """
    scope: Any = getattr(request, "scope", request)
    reloader = reloader_for(scope, state_key)
    if reloader is None:
        raise LookupError(f"no reloader at state {state_key!r}: use hotreload_lifespan")
    state = scope.get("state")
    before = state.get(f"{state_key}_snapshot") if isinstance(state, Mapping) else None
    async with reloader.session() as snapshot:
        token = _pin(scope, state_key, snapshot)
        try:
            yield snapshot
        finally:
            _pinned.reset(token)
            if before is not None:  # the request's own pin again, as current_snapshot() says
                scope["state"][f"{state_key}_snapshot"] = before


class _Gated:
    """An ASGI app whose whole request, response streaming included, runs in one session."""

    def __init__(self, app: ASGIApp, state_key: str) -> None:
        self.app = app
        self.state_key = state_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with session(scope, state_key=self.state_key):
            await self.app(scope, receive, send)


def gated(endpoint: Callable[..., Any], *, state_key: str = STATE_KEY) -> ASGIApp:
    """Opt a route into a gating session: ``Route("/investigate", gated(investigate))``.

    ``endpoint`` is a Starlette request/response function or an ASGI app.
    """
    if inspect.isfunction(endpoint) or inspect.ismethod(endpoint):
        from starlette.routing import request_response  # noqa: PLC0415 - optional dependency

        return _Gated(request_response(endpoint), state_key)
    return _Gated(endpoint, state_key)


# -- admin endpoints ----------------------------------------------------------------------------


def _status(reloader: HotReloader[Any]) -> dict[str, Any]:
    """``{"status": "ok"}``, or ``{"status": "degraded", "reason": why}``: one word, one meaning,
    the same in ``/-/config`` and ``/-/readyz``."""
    last = reloader.last_outcome
    if reloader.degraded is not None:
        return {"status": "degraded", "reason": reloader.degraded}
    if last is not None and last.error is not None:
        return {
            "status": "degraded",
            "reason": f"latest version rejected, previous kept: {last.error}",
        }
    return {"status": "ok", "reason": None}


def config_report(
    reloader: HotReloader[Any], *, include_config: bool = True, origins: bool = False
) -> dict[str, Any]:
    """What ``GET /-/config`` answers: the process id, the version in force, the last outcome
    and its error, the pending change, restart-required fields, failure records, the probation
    in progress (until when, the evidence so far), the quarantined versions and the fleet
    rollout (role, the hash awaiting a verdict, verdicts seen). Never a
    secret value. ``origins`` (``?origins=1``) adds where each value came from, dotted path ->
    ``file:line`` or ``$VARIABLE`` (null: the schema's default).
    """
    snapshot = reloader.snapshot
    last = reloader.last_outcome
    pending = reloader.pending
    report: dict[str, Any] = {
        "name": reloader.name,
        "pid": os.getpid(),  # which worker answered: each worker process has its own reloader
        **snapshot_dict(snapshot),
        **_status(reloader),
        "last_outcome": None if last is None else outcome_dict(last),
        "pending": None
        if pending is None
        else {
            "generation": pending.generation,
            "config_hash": pending.config_hash,
            "since": (reloader.pending_since or pending.loaded_at).isoformat(),
        },
        "active_sessions": reloader.active_sessions,
        "restart_required": list(reloader.restart_required),
        "failures": failure_dict(reloader.failures.values()),
        "refused": list(last.refused) if last is not None else [],
        "probation": reloader.probation_report(),
        "quarantined": msgspec.to_builtins(reloader.quarantined),
        "rollout": reloader.rollout_report(),
        "derived": [
            {"name": d.name, "generation": d.generation, "draining": d.draining}
            for d in reloader.derived_resources
        ],
    }
    if include_config:
        report["config"] = redacted(to_builtins(snapshot.config), reloader.policy)
        if origins:
            report["origins"] = {
                e.path: None if e.origin is None else str(e.origin) for e in reloader.explain()
            }
    shown: dict[str, Any] = scrubbed(report, reloader.policy, to_builtins(snapshot.config))
    return shown


_GET = ("GET", "HEAD")


def _wants_origins(scope: Scope) -> bool:
    """``?origins=1`` (or ``true``/``yes``) on ``GET /-/config``."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return query.get("origins", [""])[-1].lower() in ("1", "true", "yes")


class HotReloadAdmin:
    """Admin endpoints as one ASGI app; mount it (``Mount("/", app=admin)`` last, or under a
    prefix) or use `admin_routes` to add them to a Starlette/FastAPI router.

    * ``GET /-/config``: JSON report (`config_report`); secrets are ``***``; ``?origins=1``
      adds where each value came from (file:line, ``$VARIABLE``).
    * ``POST /-/reload``: a forced re-check, answering its outcome. Off (404) unless
      ``reload_token`` is set; ``Authorization: Bearer <token>`` is compared in constant time:
      none → 401, wrong → 403.
    * ``POST /-/quarantine/release`` with ``{"config_hash": "..."}``: lift a quarantine
      (`HotReloader.release`) and answer the re-check's outcome; 404 if that hash is not
      quarantined, 400 for a body that does not name one. Same token, same answers as
      ``/-/reload``.
    * ``GET /metrics``: Prometheus text from ``registry`` (default: the reloader's).
    * ``GET /-/healthz``: the process answers. ``GET /-/readyz``: 200 while a valid config is in
      force, even when the latest version was rejected (``"status": "degraded"`` and why); with
      ``strict_ready=True`` a rejected latest version answers 503.
    """

    PATHS = (
        "/-/config",
        "/-/reload",
        "/-/quarantine/release",
        "/metrics",
        "/-/healthz",
        "/-/readyz",
    )
    #: The endpoints that change something: POST, and only with a token.
    POSTS = ("/-/reload", "/-/quarantine/release")

    def __init__(
        self,
        reloader: HotReloader[Any] | None = None,
        *,
        reload_token: str | None = None,
        registry: CollectorRegistry | None = None,
        strict_ready: bool = False,
        include_config: bool = True,
        state_key: str = STATE_KEY,
    ) -> None:
        if reload_token is not None and not reload_token:
            raise ValueError("reload_token must not be empty (None disables /-/reload)")
        self.reloader = reloader
        self.strict_ready = strict_ready
        self.include_config = include_config
        self.state_key = state_key
        self._token = None if reload_token is None else reload_token.encode()
        self._registry = registry

    @property
    def reload_enabled(self) -> bool:
        return self._token is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = _route_path(scope)
        method = scope.get("method", "GET")
        if path not in self.PATHS or (path in self.POSTS and not self.reload_enabled):
            await _json(send, 404, {"error": "not found"})
            return
        allowed = ("POST",) if path in self.POSTS else _GET
        if method not in allowed:
            await _json(send, 405, {"error": "method not allowed"}, allow=", ".join(allowed))
            return
        if path == "/-/healthz":
            await _json(send, 200, {"status": "alive"})
            return
        reloader = self.reloader or reloader_for(scope, self.state_key)
        if reloader is None:
            await _json(send, 503, {"status": "starting", "reason": "no config loaded yet"})
        elif path == "/-/config":
            report = config_report(
                reloader, include_config=self.include_config, origins=_wants_origins(scope)
            )
            await _json(send, 200, report)
        elif path == "/-/readyz":
            await self._ready(reloader, send)
        elif path == "/metrics":
            await self._metrics(reloader, send)
        elif await self._authorized(scope, send):
            if path == "/-/reload":
                await self._reload(reloader, send)
            else:
                await self._release(reloader, receive, send)

    async def _ready(self, reloader: HotReloader[Any], send: Send) -> None:
        snapshot = reloader.snapshot
        body: dict[str, Any] = {
            "status": "ready",
            "generation": snapshot.generation,
            "config_hash": snapshot.config_hash,
        }
        state = _status(reloader)
        status = 503 if state["status"] == "degraded" and self.strict_ready else 200
        if state["status"] == "degraded":
            body.update(state)
        await _json(send, status, scrubbed(body, reloader.policy, to_builtins(snapshot.config)))

    async def _metrics(self, reloader: HotReloader[Any], send: Send) -> None:
        registry = self._registry or _registry_of(reloader)
        await _respond(send, 200, generate_latest(registry), CONTENT_TYPE_LATEST)

    async def _authorized(self, scope: Scope, send: Send) -> bool:
        """The bearer token, compared in constant time; answers 401/403 itself when wrong."""
        assert self._token is not None  # noqa: S101 - checked by the caller
        given = _bearer(scope)
        if given is None:
            await _json(
                send,
                401,
                {"error": "a bearer token is required"},
                www_authenticate='Bearer realm="hotreload"',
            )
            return False
        if not hmac.compare_digest(given, self._token):
            await _json(send, 403, {"error": "wrong token"})
            return False
        return True

    async def _reload(self, reloader: HotReloader[Any], send: Send) -> None:
        outcome = await reloader.reload()
        config = to_builtins(reloader.snapshot.config)
        await _json(send, 200, scrubbed(outcome_dict(outcome), reloader.policy, config))

    async def _release(self, reloader: HotReloader[Any], receive: Receive, send: Send) -> None:
        body = await _body(receive, _RELEASE_BODY_MAX)
        config_hash = None
        if body is not None:
            try:
                asked = msgspec.json.decode(body)
            except msgspec.DecodeError:
                asked = None
            if isinstance(asked, dict) and isinstance(asked.get("config_hash"), str):
                config_hash = asked["config_hash"]
        if config_hash is None:
            await _json(send, 400, {"error": 'the body must be {"config_hash": "<hash>"}'})
            return
        outcome = await reloader.release(config_hash)
        if outcome is None:
            await _json(send, 404, {"error": "that config_hash is not quarantined"})
            return
        config = to_builtins(reloader.snapshot.config)
        await _json(send, 200, scrubbed(outcome_dict(outcome), reloader.policy, config))


def admin_routes(
    reloader: HotReloader[Any] | None = None,
    *,
    reload_token: str | None = None,
    registry: CollectorRegistry | None = None,
    strict_ready: bool = False,
    include_config: bool = True,
    state_key: str = STATE_KEY,
) -> list[Any]:
    """The admin endpoints as Starlette routes (FastAPI: ``app.router.routes.extend(...)``).

    Same options as `HotReloadAdmin`; ``/-/reload`` is left out unless a token is set.
    """
    from starlette.routing import Route  # noqa: PLC0415 - optional dependency

    admin = HotReloadAdmin(
        reloader,
        reload_token=reload_token,
        registry=registry,
        strict_ready=strict_ready,
        include_config=include_config,
        state_key=state_key,
    )
    return [
        Route(path, admin, methods=["POST"] if path in HotReloadAdmin.POSTS else ["GET"])
        for path in HotReloadAdmin.PATHS
        if path not in HotReloadAdmin.POSTS or admin.reload_enabled
    ]


def _registry_of(reloader: HotReloader[Any]) -> CollectorRegistry:
    return reloader.registry


#: A release names one hash: a body larger than this is not one.
_RELEASE_BODY_MAX = 4096


async def _body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it grows past ``limit`` bytes (or the client leaves)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            scheme, _, token = bytes(value).strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return None
    return None


def _route_path(scope: Scope) -> str:
    """The path below the mount point (what Starlette's ``get_route_path`` computes)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
        return path[len(root) :]
    return path


async def _json(send: Send, status: int, body: Any, **headers: str) -> None:
    await _respond(send, status, msgspec.json.encode(body), "application/json", **headers)


async def _respond(send: Send, status: int, body: bytes, content_type: str, **headers: str) -> None:
    raw = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *((k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
