"""A layered config served by a real uvicorn: ``/-/config?origins=1`` says where each value came
from, an overlay edit is visible to the next request, and no secret ever leaves."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hotreload import HotReloader
from hotreload.asgi import HotReloadMiddleware, admin_routes, current_config, hotreload_lifespan
from hotreload.holmes import ApiConfig
from hotreload.testing import write_atomic

from .conftest import serving

SECRET = "sk-PLANTED-layers-51c0"  # noqa: S105 - planted to prove it never leaks
BASE = "llm:\n  provider: openai\n  model: gpt-4\n"
OVERLAY = "llm:\n  model: gpt-4o\n"


def app_for(reloader: HotReloader[ApiConfig]) -> Starlette:
    async def home(request: Request) -> JSONResponse:
        return JSONResponse({"model": current_config(ApiConfig).llm.model})

    return Starlette(
        routes=[Route("/", home), *admin_routes()],
        middleware=[Middleware(HotReloadMiddleware)],
        lifespan=hotreload_lifespan(reloader),
    )


async def test_config_shows_origins_and_an_overlay_edit_is_served(
    tmp_path: Path, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, overlay = tmp_path / "config.yaml", tmp_path / "config.prod.yaml"
    base.write_text(BASE)
    overlay.write_text(OVERLAY)
    monkeypatch.setenv("HOLMES_LLM__API_KEY", SECRET)
    reloader = HotReloader(
        [base, overlay],
        env_prefix="HOLMES_",
        schema=ApiConfig,
        registry=registry,
        poll_interval=0,
    )
    async with serving(app_for(reloader)) as client:
        assert (await client.get("/")).json() == {"model": "gpt-4o"}
        assert "origins" not in (await client.get("/-/config")).json()  # only when asked
        response = await client.get("/-/config", params={"origins": "1"})
        report = response.json()
        assert report["origins"]["llm.model"] == f"{overlay}:2"
        assert report["origins"]["llm.provider"] == f"{base}:2"
        assert report["origins"]["llm.api_key"] == "$HOLMES_LLM__API_KEY"
        assert report["origins"]["llm.temperature"] is None  # the schema's default
        assert report["config"]["llm"]["api_key"] == "***"
        assert SECRET not in response.text

        changes = reloader.changes()
        write_atomic(overlay, "llm:\n  model: o3\n")
        await anext(changes)
        assert (await client.get("/")).json() == {"model": "o3"}
        response = await client.get("/-/config?origins=true")
        assert response.json()["origins"]["llm.model"] == f"{overlay}:2"
        assert SECRET not in response.text
