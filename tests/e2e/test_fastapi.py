"""The same pieces under FastAPI: lifespan, middleware, admin routes, a typed current_config."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from hotreload.asgi import HotReloadMiddleware, admin_routes, current_config, hotreload_lifespan
from hotreload.holmes import ApiConfig, create_reloader
from hotreload.testing import write_atomic

from .conftest import serving


async def test_fastapi_app_reads_the_pinned_config_and_serves_admin_routes(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("llm: {provider: openai, model: gpt-4, api_key: sk-PLANTED-fa57}\n")
    reloader = create_reloader(path, registry=registry, poll_interval=0)
    app = FastAPI(lifespan=hotreload_lifespan(reloader))
    app.add_middleware(HotReloadMiddleware)
    app.router.routes.extend(admin_routes(reload_token="t0ken-for-fastapi"))  # noqa: S106

    @app.get("/model")
    async def model() -> dict[str, str]:
        return {"model": current_config(ApiConfig).llm.model}

    async with serving(app) as client:
        assert app.state.hotreload is reloader
        assert (await client.get("/model")).json() == {"model": "gpt-4"}
        write_atomic(path, "llm: {provider: openai, model: gpt-4o, api_key: sk-PLANTED-fa57}\n")
        await reloader.wait_for_generation(2, timeout=5)
        assert (await client.get("/model")).json() == {"model": "gpt-4o"}
        config = await client.get("/-/config")
        assert config.json()["generation"] == 2
        assert "PLANTED" not in config.text
        assert (await client.post("/-/reload")).status_code == 401
        assert "holmesgpt_config_reload_total" in (await client.get("/metrics")).text
