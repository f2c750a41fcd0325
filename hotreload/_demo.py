"""``hotreload demo``: a small Starlette app serving a HolmesGPT API config that reloads live.

Imported only by the ``demo`` command, so Starlette and uvicorn (the ``demo`` extra) are needed
only there. ``/`` answers with the model and provider in use, the endpoint the LLM client in
force targets and how many replaced clients are still draining; the admin endpoints are
mounted. Like the service, the demo calls its toolsets (each one with a URL in its ``config``,
every second) and reports each call with ``record_failure`` / ``record_success``: point one at
a dead URL and probation rolls the change back. It serves a stand-in for the Prometheus toolset
itself (`TOOLSET_PATH`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ._present import outcome_line
from ._reloader import HotReloader
from .asgi import (
    HotReloadMiddleware,
    admin_routes,
    current_snapshot,
    hotreload_lifespan,
    reloader_for,
)
from .holmes import ApiConfig, create_reloader, derive_llm_client

__all__ = [
    "CONFIG_ENV",
    "DEMO_CONFIG",
    "TOKEN_ENV",
    "TOOLSET_PATH",
    "build_app",
    "create_app",
    "demo_config",
    "serve",
]

TOKEN_ENV = "HOTRELOAD_RELOAD_TOKEN"  # noqa: S105 - the variable's name, not a token
CONFIG_ENV = "HOTRELOAD_DEMO_CONFIG"

DEMO_CONFIG = """\
# The demo's config, in the HolmesGPT API's own format (the sections of its deploy ConfigMap).
# Edit and save, then reload http://127.0.0.1:<port>/ in a browser.
logging:
  level: INFO                       # DEBUG: debug lines appear at once
dev_mode: false
auth_enabled: true                  # restart-required, like api_host, api_port, kubernetes.*
api_host: "0.0.0.0"
api_port: 8080

llm:
  provider: openai
  model: gpt-4
  endpoint: https://api.openai.com/v1
  api_key: sk-demo-not-a-real-key   # a secret: never in logs or in /-/config
  max_retries: 3
  timeout_seconds: 60
  max_tokens_per_request: 4096
  temperature: 0.7

toolsets:
  kubernetes/core: {}
  prometheus/metrics:
    config:
      # The demo calls this every second and reports each call, as the service does. Point it
      # at a dead URL (http://127.0.0.1:9/) and save: three failures in a row roll it back.
      prometheus_url: http://127.0.0.1:8000/toolset/prometheus

context_api:
  url: http://context-api.kubernaut-system.svc.cluster.local:8091
  timeout_seconds: 10
  max_retries: 2

kubernetes:
  service_host: kubernetes.default.svc
  service_port: 443
  token_reviewer_enabled: true

data_storage:
  url: http://data-storage-service.kubernaut-system.svc.cluster.local:8080
  timeout: 60

public_endpoints: [/health, /ready, /metrics]

metrics:
  enabled: true
  endpoint: /metrics
  scrape_interval: 30s
"""


TOOLSET_PATH = "/toolset/prometheus"
#: How often the demo calls each toolset: three failures in a row condemn a commit on probation.
PROBE_INTERVAL = 1.0
_URL_KEYS = ("url", "prometheus_url")


def demo_config(port: int, scheme: str = "http") -> str:
    """`DEMO_CONFIG` with its toolset pointed at the demo's own stand-in on ``port``."""
    return DEMO_CONFIG.replace("http://127.0.0.1:8000", f"{scheme}://127.0.0.1:{port}")


def _toolset_urls(config: ApiConfig) -> dict[str, str]:
    """Each toolset with a URL in its ``config`` (``url`` or ``prometheus_url``), by name."""
    urls = {}
    for name, toolset in config.toolsets.items():
        settings = toolset.get("config") if isinstance(toolset, dict) else None
        if isinstance(settings, dict) and toolset.get("enabled", True) is not False:
            url = next((settings[k] for k in _URL_KEYS if isinstance(settings.get(k), str)), None)
            if url is not None:
                urls[name] = url
    return urls


async def _call_toolsets(reloader: HotReloader[ApiConfig], interval: float) -> None:
    """What the service does with its toolsets, in small: call each one, report how it went.
    The failures are what probation reads after a commit."""
    import httpx  # noqa: PLC0415 - the demo extra's; imported with the demo only

    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            for name, url in _toolset_urls(reloader.config).items():
                try:
                    (await http.get(url)).raise_for_status()
                except httpx.HTTPError as exc:
                    reloader.record_failure(name, type(exc).__name__, str(exc))
                else:
                    reloader.record_success(name)
            await anyio.sleep(interval)


async def _toolset_stand_in(request: Request) -> JSONResponse:
    """A Prometheus toolset's endpoint, as far as the demo's calls need one."""
    return JSONResponse({"status": "success", "data": {"version": "demo"}})


def _say(line: str) -> None:
    print(line, flush=True)


async def home(request: Request) -> JSONResponse:
    snapshot = current_snapshot()
    config: ApiConfig = snapshot.config
    body: dict[str, Any] = {
        "provider": config.llm.provider,
        "model": config.llm.model,
        "generation": snapshot.generation,
        "config_hash": snapshot.config_hash,
    }
    serial = getattr(request.app.state, "tls_serial", None)
    if serial is not None and serial() is not None:
        body["tls_serial"] = serial()  # the certificate new handshakes get (demo --tls)
    reloader = reloader_for(request.scope)
    for derived in () if reloader is None else reloader.derived_resources:
        if derived.name == "llm_client":  # the client pinned for this request
            body["llm_endpoint"] = str(derived.get().base_url)
            body["llm_clients_draining"] = derived.draining
    body["see"] = ["/-/config", "/-/readyz", "/metrics"]
    return JSONResponse(body)


def build_app(
    factory: Callable[[], HotReloader[Any]],
    *,
    reload_token: str | None = None,
    on_ready: Callable[[HotReloader[Any]], None] = lambda _: None,
    call_toolsets: float | None = None,
) -> Starlette:
    """The demo app; ``on_ready`` runs once the config is loaded, before requests are served.
    SIGHUP makes it re-check its file. ``call_toolsets``: call the config's toolsets every so
    many seconds, reporting each call (what probation reads)."""
    reloading = hotreload_lifespan(factory, reload_on_sighup=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with reloading(app) as state, anyio.create_task_group() as tg:
            reloader: HotReloader[Any] = state["hotreload"]
            outcomes = reloader.outcomes()
            on_ready(reloader)
            tg.start_soon(_print_outcomes, outcomes)
            if call_toolsets is not None:
                tg.start_soon(_call_toolsets, reloader, call_toolsets)
            yield state
            tg.cancel_scope.cancel()

    return Starlette(
        routes=[
            Route("/", home),
            Route(TOOLSET_PATH, _toolset_stand_in),
            *admin_routes(reload_token=reload_token),
        ],
        middleware=[Middleware(HotReloadMiddleware)],
        lifespan=lifespan,
    )


def create_app() -> Starlette:
    """The demo app for any ASGI server, several worker processes included::

        HOTRELOAD_DEMO_CONFIG=config.yaml uvicorn --factory hotreload._demo:create_app --workers 2

    Each worker process runs its own reloader on the file named by ``HOTRELOAD_DEMO_CONFIG``.
    """
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"set {CONFIG_ENV} to the config file the demo serves")
    return build_app(
        lambda: create_reloader(Path(path), name="demo", poll_interval=5.0),
        reload_token=os.environ.get(TOKEN_ENV) or None,
    )


async def _print_outcomes(outcomes: AsyncIterator[Any]) -> None:
    last = ""
    async for outcome in outcomes:
        if outcome.trigger == "rescan" and outcome.error is None:
            continue  # the watcher re-scanning is not news
        line = outcome_line(outcome)
        if outcome.trigger == "poll" and line == last:
            continue  # the safety poll finding the same refused version again is not news
        last = line
        _say(line)


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    path: Path, port: int, *, tls: bool = False, rotate: float | None = None, fresh: bool = False
) -> int:
    """Serve the demo on 127.0.0.1:``port`` (0: any free port) until Ctrl-C; the exit code.
    ``tls``: over HTTPS, with a certificate made in ``path``'s directory (``tls/``) and kept
    current by `hotreload.tls`; ``rotate``: renew it every so many seconds. ``fresh``: ``path``
    is the demo's own copy, written again with `demo_config` once the port is known."""
    try:
        sock = _listen(port)
    except OSError as exc:
        print(f"hotreload demo: cannot listen on 127.0.0.1:{port}: {exc.strerror}", file=sys.stderr)
        print("hotreload demo: try --port 0 (any free port)", file=sys.stderr)
        return 1
    if fresh:  # the toolset's URL names the port the demo got
        path.write_text(demo_config(sock.getsockname()[1], "https" if tls else "http"))
    certificates = None
    if tls:
        try:
            from .tls._demo import DemoCertificates  # noqa: PLC0415 - needs the `tls` extra
        except ImportError as exc:
            sock.close()
            print(
                f"hotreload demo --tls needs the tls extra ({exc.name} is missing):",
                file=sys.stderr,
            )
            print('  pip install "hotreload-engine[tls]"', file=sys.stderr)
            return 1
        certificates = DemoCertificates(path.parent / "tls", _say)
    scheme = "https" if certificates is not None else "http"
    url = f"{scheme}://127.0.0.1:{sock.getsockname()[1]}/"
    token = os.environ.get(TOKEN_ENV) or None

    def ready(reloader: HotReloader[Any]) -> None:
        snapshot = reloader.snapshot
        _say(f"hotreload demo: serving {url}  (also {url}-/config, {url}-/readyz, {url}metrics)")
        reload_state = "enabled" if token else f"disabled (set {TOKEN_ENV} to enable it)"
        _say(f"hotreload demo: POST {url}-/reload is {reload_state}")
        _say("Every save is validated and applied live; break the YAML to see it kept.")
        _say("Press Ctrl-C to stop.")
        _say(f"[gen {snapshot.generation}] loaded (config_hash {snapshot.config_hash[:12]})")

    def factory() -> HotReloader[ApiConfig]:
        reloader = create_reloader(path, name="demo", poll_interval=5.0)
        derive_llm_client(reloader)
        return reloader

    # Over TLS the stand-in's certificate is the demo's own, which a client would not trust:
    # the toolset calls (and the rollback they show) are the plain-HTTP demo's.
    calls = None if certificates is not None else PROBE_INTERVAL
    app = build_app(factory, reload_token=token, on_ready=ready, call_toolsets=calls)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        ws="none",
        http="h11",
        timeout_graceful_shutdown=2,
        ssl_context_factory=None if certificates is None else certificates.factory,
    )
    if certificates is not None:
        app.state.tls_serial = certificates.serial
        if rotate:
            certificates.rotate_every(rotate)
    server = uvicorn.Server(config)
    with sock, contextlib.ExitStack() as stack:
        if certificates is not None:
            stack.callback(certificates.stop)
        try:
            anyio.run(server.serve, [sock])
        except asyncio.CancelledError:
            # Python 3.10: the Ctrl-C uvicorn raises again after its graceful shutdown leaves
            # anyio's runner as CancelledError (no Task.uncancel); 3.11+ raises this itself.
            raise KeyboardInterrupt from None
    return 0 if server.started else 1
