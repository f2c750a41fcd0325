"""hotreload.asgi under a real uvicorn server: pinning, admin endpoints, readiness, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from hotreload import ConfigParseError, HotReloader, ReloadResult
from hotreload.asgi import (
    HotReloadAdmin,
    HotReloadMiddleware,
    admin_routes,
    current_config,
    current_snapshot,
    hotreload_lifespan,
)
from hotreload.holmes import ApiConfig, create_reloader
from hotreload.testing import write_atomic, write_in_place

from .conftest import serving

SECRET = "sk-PLANTED-e2e-7f3a9c"  # noqa: S105 - planted to prove it never leaks
CONFIG = f"""\
llm:
  provider: openai
  model: gpt-4
  api_key: {SECRET}
toolsets:
  prometheus: {{enabled: true}}
"""
TOKEN = "reload-token-for-tests"  # noqa: S105 - the test's own token


def holmes_app(
    reloader: HotReloader[ApiConfig], *, strict_ready: bool = False, extra: Sequence[Route] = ()
) -> Starlette:
    async def home(request: Request) -> JSONResponse:
        config = current_config(ApiConfig)
        snapshot = current_snapshot()
        assert request.state.hotreload_snapshot is snapshot
        return JSONResponse({"model": config.llm.model, "generation": snapshot.generation})

    return Starlette(
        routes=[
            Route("/", home),
            *extra,
            *admin_routes(reload_token=TOKEN, strict_ready=strict_ready),
        ],
        middleware=[Middleware(HotReloadMiddleware)],
        lifespan=hotreload_lifespan(reloader),
    )


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "conf" / "config.yaml"
    path.parent.mkdir()
    path.write_text(CONFIG)
    return path


def reloader_for(path: Path, registry: CollectorRegistry) -> HotReloader[ApiConfig]:
    return create_reloader(path, registry=registry, poll_interval=0)


async def test_an_edit_is_visible_to_the_next_request(
    config_file: Path, registry: CollectorRegistry
) -> None:
    reloader = reloader_for(config_file, registry)
    async with serving(holmes_app(reloader)) as client:
        assert (await client.get("/")).json() == {"model": "gpt-4", "generation": 1}
        write_atomic(config_file, CONFIG.replace("gpt-4", "gpt-4o"))
        await reloader.wait_for_generation(2, timeout=5)
        assert (await client.get("/")).json() == {"model": "gpt-4o", "generation": 2}
        report = (await client.get("/-/config")).json()
        assert report["generation"] == 2
        assert report["last_outcome"]["changed"] == ["llm.model"]


async def test_a_request_in_flight_keeps_its_pinned_snapshot(
    config_file: Path, registry: CollectorRegistry
) -> None:
    """The handler pins gen 1, the edit commits gen 2 meanwhile (pinning never holds it back),
    and the handler still answers from gen 1 when it resumes."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(request: Request) -> JSONResponse:
        entered.set()
        await release.wait()
        return JSONResponse({"model": current_config(ApiConfig).llm.model})

    reloader = reloader_for(config_file, registry)
    async with serving(holmes_app(reloader, extra=[Route("/slow", slow)])) as client:
        in_flight = asyncio.create_task(client.get("/slow"))
        await asyncio.wait_for(entered.wait(), 5)
        assert reloader.active_sessions == 0  # pinning is not a gating session
        write_in_place(config_file, CONFIG.replace("gpt-4", "claude-3-5-sonnet"))
        await reloader.wait_for_generation(2, timeout=5)  # committed while the request runs
        assert (await client.get("/")).json()["model"] == "claude-3-5-sonnet"
        release.set()
        assert (await in_flight).json() == {"model": "gpt-4"}


async def test_an_invalid_edit_keeps_the_old_config_and_config_shows_the_error(
    config_file: Path, registry: CollectorRegistry
) -> None:
    reloader = reloader_for(config_file, registry)
    async with serving(holmes_app(reloader)) as client:
        broken = CONFIG.replace("  model: gpt-4\n", "  model: [gpt-4\n")
        write_atomic(config_file, broken)
        await reloader.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=5)
        assert (await client.get("/")).json() == {"model": "gpt-4", "generation": 1}
        response = await client.get("/-/config")
        assert response.status_code == 200
        report = response.json()
        error = report["last_outcome"]["error"]
        assert report["status"] == "degraded"
        assert report["reason"].startswith("latest version rejected, previous kept: ")
        assert "degraded" not in report  # one word for one meaning: "status" says it
        assert (report["generation"], report["last_outcome"]["result"]) == (1, "validation_failed")
        assert (error["reason"], error["file"]) == ("parse", str(config_file))
        assert isinstance(error["line"], int)
        assert isinstance(error["column"], int)
        assert error["error"].startswith(f"{config_file}:{error['line']}:{error['column']}: ")

        write_atomic(config_file, CONFIG.replace("provider: openai", "provider: [openai]"))
        await reloader.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=5)
        error = (await client.get("/-/config")).json()["last_outcome"]["error"]
        assert (error["reason"], error["field_path"], error["line"]) == (
            "schema",
            "llm.provider",
            2,
        )
        assert SECRET not in response.text


async def test_config_report_never_shows_a_secret(
    config_file: Path, registry: CollectorRegistry
) -> None:
    reloader = reloader_for(config_file, registry)
    async with serving(holmes_app(reloader)) as client:
        response = await client.get("/-/config")
        report = response.json()
        assert report["config"]["llm"]["api_key"] == "***"
        assert report["config"]["llm"]["model"] == "gpt-4"
        assert (report["name"], report["source"]) == ("holmesgpt-api", str(config_file))
        assert report["config_hash"] == reloader.snapshot.config_hash
        assert report["loaded_at"] == reloader.snapshot.loaded_at.isoformat()
        assert report["restart_required"] == []
        assert report["pending"] is None
        assert SECRET not in response.text
        write_atomic(config_file, CONFIG.replace("toolsets:", "api_port: 9090\ntoolsets:"))
        await reloader.wait_for_outcome(lambda o: bool(o.restart_required), timeout=5)
        response = await client.get("/-/config")
        assert response.json()["restart_required"] == ["api_port"]
        assert SECRET not in response.text


async def test_metrics_shows_the_counters(config_file: Path, registry: CollectorRegistry) -> None:
    reloader = reloader_for(config_file, registry)
    async with serving(holmes_app(reloader)) as client:
        write_atomic(config_file, CONFIG.replace("gpt-4", "gpt-4o"))
        await reloader.wait_for_generation(2, timeout=5)
        write_atomic(config_file, "llm: [\n")
        await reloader.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=5)
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=")
        lines = response.text.splitlines()
        label = 'config="holmesgpt-api"'
        assert f"holmesgpt_config_reload_total{{{label}}} 1.0" in lines
        assert f'holmesgpt_config_reload_failures_total{{{label},reason="parse"}} 1.0' in lines
        assert f"holmesgpt_config_generation{{{label}}} 2.0" in lines
        assert f"holmesgpt_config_last_reload_successful{{{label}}} 0.0" in lines


async def test_reload_refuses_a_missing_or_wrong_token(
    config_file: Path, registry: CollectorRegistry
) -> None:
    reloader = reloader_for(config_file, registry)
    async with serving(holmes_app(reloader)) as client:
        missing = await client.post("/-/reload")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        basic = await client.post("/-/reload", headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401
        wrong = await client.post("/-/reload", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        prefix = await client.post("/-/reload", headers={"Authorization": "Bearer reload"})
        assert prefix.status_code == 403
        assert (await client.get("/-/reload")).status_code == 405
        write_in_place(config_file, CONFIG.replace("gpt-4", "gpt-4-turbo"))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        ok = await client.post("/-/reload", headers=auth)
        assert ok.status_code == 200
        outcome = ok.json()
        # The watcher may have committed it first; either way gen 2 is in force and reported.
        assert outcome["generation"] == 2
        assert outcome["trigger"] == "manual"
        assert outcome["result"] in ("config_changed", "config_unchanged")
        assert (await client.get("/")).json()["model"] == "gpt-4-turbo"
        again = (await client.post("/-/reload", headers=auth)).json()
        assert (again["result"], again["applied"], again["error"]) == (
            "config_unchanged",
            False,
            None,
        )


async def test_reload_is_off_without_a_token(
    config_file: Path, registry: CollectorRegistry
) -> None:
    reloader = reloader_for(config_file, registry)
    app = Starlette(
        routes=[Mount("/ops", app=HotReloadAdmin())], lifespan=hotreload_lifespan(reloader)
    )
    async with serving(app) as client:
        refused = await client.post("/ops/-/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert refused.status_code == 404
        assert (await client.get("/ops/-/config")).json()["generation"] == 1
        assert (await client.get("/ops/-/healthz")).json() == {"status": "alive"}


@pytest.mark.parametrize("strict", [False, True])
async def test_readyz_stays_ready_but_degraded_unless_strict(
    config_file: Path, registry: CollectorRegistry, strict: bool
) -> None:
    """A bad push must not take a healthy fleet out of rotation (unless asked to)."""
    reloader = reloader_for(config_file, registry)
    async with serving(holmes_app(reloader, strict_ready=strict)) as client:
        ready = await client.get("/-/readyz")
        assert (ready.status_code, ready.json()["status"]) == (200, "ready")
        write_atomic(config_file, CONFIG + "api_port: 0\n")
        await reloader.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=5)
        degraded = await client.get("/-/readyz")
        assert degraded.status_code == (503 if strict else 200)
        body = degraded.json()
        assert body["status"] == "degraded"
        assert "api_port" in body["reason"]
        assert body["generation"] == 1
        assert (await client.get("/-/healthz")).status_code == 200
        write_atomic(config_file, CONFIG.replace("gpt-4", "gpt-4o"))
        await reloader.wait_for_generation(2, timeout=5)
        recovered = await client.get("/-/readyz")
        assert (recovered.status_code, recovered.json()["status"]) == (200, "ready")


async def test_an_invalid_file_at_start_fails_the_start_up(
    config_file: Path, registry: CollectorRegistry
) -> None:
    """Fail fast: the lifespan raises, so the server never starts serving a bad config."""
    config_file.write_text("llm: [\n")
    app = holmes_app(reloader_for(config_file, registry))
    with pytest.raises(ConfigParseError):
        async with app.router.lifespan_context(app):
            pass


def test_current_snapshot_outside_a_request_says_what_is_missing() -> None:
    with pytest.raises(LookupError, match="HotReloadMiddleware"):
        current_snapshot()
    with pytest.raises(LookupError):
        current_config()


async def test_config_report_shows_a_token_count_that_is_no_secret(
    config_file: Path, registry: CollectorRegistry
) -> None:
    reloader = reloader_for(config_file, registry)
    async with serving(holmes_app(reloader)) as client:
        llm = (await client.get("/-/config")).json()["config"]["llm"]
        assert llm["api_key"] == "***"
        assert llm["max_tokens_per_request"] == 4096


async def test_a_start_on_the_last_known_good_copy_shows_as_degraded(
    config_file: Path, registry: CollectorRegistry, tmp_path: Path
) -> None:
    lkg = tmp_path / "lkg.json"
    async with create_reloader(config_file, registry=registry, lkg_path=lkg):
        pass  # a good start leaves the cached copy
    write_in_place(config_file, "llm: [\n")  # a bad push, then the pod restarts
    reloader = create_reloader(config_file, registry=registry, poll_interval=0, lkg_path=lkg)
    async with serving(holmes_app(reloader, strict_ready=True)) as client:
        assert (await client.get("/")).json()["model"] == "gpt-4"
        report = (await client.get("/-/config")).json()
        assert report["status"] == "degraded"
        assert "last-known-good" in report["reason"]
        assert "config.yaml:2:1" in report["reason"]
        assert "degraded" not in report  # one word, one meaning: "status" says it
        ready = await client.get("/-/readyz")
        assert ready.status_code == 503  # strict: a degraded pod is taken out of rotation
        assert "last-known-good" in ready.json()["reason"]
        assert SECRET not in ready.text + str(report)
