"""Gating sessions are opt-in per route; failure records show in /-/config (issue-4 API)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route

from hotreload.asgi import (
    HotReloadMiddleware,
    current_config,
    current_snapshot,
    gated,
    hotreload_lifespan,
    session,
)
from hotreload.holmes import ApiConfig, create_reloader
from hotreload.testing import write_atomic

from .conftest import serving
from .test_asgi_server import CONFIG, SECRET, holmes_app


async def test_a_gated_route_holds_a_change_until_it_ends(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    entered, release = asyncio.Event(), asyncio.Event()

    async def investigate(request: StarletteRequest) -> JSONResponse:
        entered.set()
        await release.wait()
        return JSONResponse({"model": current_config(ApiConfig).llm.model})

    reloader = create_reloader(path, registry=registry, poll_interval=0, max_drain_wait=20)
    app = holmes_app(reloader, extra=[Route("/investigate", gated(investigate))])
    async with serving(app) as client:
        in_flight = asyncio.create_task(client.get("/investigate"))
        await asyncio.wait_for(entered.wait(), 5)
        assert reloader.active_sessions == 1
        write_atomic(path, CONFIG.replace("gpt-4", "gpt-4o"))
        held = await reloader.wait_for_outcome(lambda o: o.deferred, timeout=5)
        assert (held.generation, held.changed) == (1, ("llm.model",))
        report = (await client.get("/-/config")).json()
        assert (report["generation"], report["active_sessions"]) == (1, 1)
        assert report["pending"]["generation"] == 2
        assert report["pending"]["config_hash"] != report["config_hash"]
        assert report["last_outcome"]["deferred"] is True
        assert (await client.get("/")).json() == {"model": "gpt-4", "generation": 1}
        release.set()
        assert (await in_flight).json() == {"model": "gpt-4"}
        await reloader.wait_for_generation(2, timeout=5)
        assert (await client.get("/")).json() == {"model": "gpt-4o", "generation": 2}
        report = (await client.get("/-/config")).json()
        assert (report["pending"], report["active_sessions"]) == (None, 0)


async def test_a_session_block_in_a_fastapi_handler(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    entered, release = asyncio.Event(), asyncio.Event()
    reloader = create_reloader(path, registry=registry, poll_interval=0, max_drain_wait=20)
    app = FastAPI(lifespan=hotreload_lifespan(reloader))
    app.add_middleware(HotReloadMiddleware)

    @app.post("/investigate")
    async def investigate(request: Request) -> dict[str, object]:
        request_pin = current_snapshot()
        async with session(request) as snapshot:
            assert current_snapshot() is request.state.hotreload_snapshot is snapshot
            entered.set()
            await release.wait()
            pinned = current_config(ApiConfig).llm.model
        assert current_snapshot() is request.state.hotreload_snapshot is request_pin
        return {"model": pinned, "generation": snapshot.generation}

    async with serving(app) as client:
        in_flight = asyncio.create_task(client.post("/investigate"))
        await asyncio.wait_for(entered.wait(), 5)
        write_atomic(path, CONFIG.replace("gpt-4", "gpt-4o"))
        await reloader.wait_for_outcome(lambda o: o.deferred, timeout=5)
        assert reloader.snapshot.generation == 1
        release.set()
        assert (await in_flight).json() == {"model": "gpt-4", "generation": 1}
        await reloader.wait_for_generation(2, timeout=5)
        assert reloader.active_sessions == 0


async def test_failure_records_show_in_config_without_secrets(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    reloader = create_reloader(path, registry=registry, poll_interval=0)
    app = holmes_app(reloader)
    async with serving(app) as client:
        reloader.record_failure("prometheus", "ConnectionError", f"refused with key {SECRET}")
        await reloader.failures_settled()
        response = await client.get("/-/config")
        record = response.json()["failures"]["prometheus"]
        assert record["toolset_name"] == "prometheus"
        assert (record["consecutive_failures"], record["total_failures"]) == (1, 1)
        assert record["last_error_type"] == "ConnectionError"
        assert record["last_error_message"] == "refused with key ***"
        assert isinstance(record["last_failure_time"], float)
        assert SECRET not in response.text
