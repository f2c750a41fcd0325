"""The shipped alert rules in a real Prometheus that scrapes a real uvicorn app's /metrics.

Prometheus scrapes and evaluates every second; the tests wait on the alert's state in
/api/v1/alerts, never on a duration. The rules are the shipped file, except that a rule's
``for:`` wait is cut to one second where a test could not wait minutes (promtool's tests in
test_rules.py check the real durations).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

import hotreload
from hotreload import HotReloader
from hotreload.asgi import HotReloadMiddleware, admin_routes, current_config, hotreload_lifespan
from hotreload.testing import write_in_place
from tests.e2e.conftest import serving
from tests.e2e.processes import free_port

from .rules import RULES, for_durations
from .server import Prometheus, prometheus

pytestmark = pytest.mark.timeout(240)


class Settings(msgspec.Struct, frozen=True):
    model: str


class Toolset(msgspec.Struct, frozen=True):
    url: str


class ToolsetSettings(msgspec.Struct, frozen=True):
    toolset: Toolset


def target(client: httpx.AsyncClient) -> str:
    """The ``host:port`` Prometheus scrapes (and its ``instance`` label)."""
    return f"{client.base_url.host}:{client.base_url.port}"


async def in_force(prom: Prometheus, instance: str, config_hash: str) -> list[dict[str, Any]]:
    """Prometheus has scraped ``config_hash`` as the version in force on ``instance``."""
    found = await prom.query(
        f'hotreload_config_info{{job="api",instance="{instance}",config="api"}}'
    )
    return [s for s in found if s["metric"]["config_hash"] == config_hash]


async def firing(prom: Prometheus, name: str) -> list[dict[str, Any]]:
    return [a for a in await prom.alerts(name) if a["state"] == "firing"]


async def test_a_refused_version_fires_reload_failing_and_a_fixed_one_clears_it(
    tmp_path: Path, prometheus_bin: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("model: gpt-4\n")
    reloader = HotReloader(path, schema=Settings, name="api", registry=CollectorRegistry())
    app = Starlette(routes=admin_routes(), lifespan=hotreload_lifespan(reloader))
    rules = for_durations(RULES.read_text(), "1s")
    async with (
        serving(app) as client,
        prometheus(prometheus_bin, tmp_path / "prom", rules, [target(client)]) as prom,
    ):
        good = reloader.snapshot.config_hash
        await prom.until(lambda: in_force(prom, target(client), good), "the first hash")
        await prom.rule_evaluated()
        assert await prom.alerts("HotreloadReloadFailing") == []

        write_in_place(path, "model: [gpt-4o\n")  # a YAML error: refused, gpt-4 stays
        [alert] = await prom.until(
            lambda: firing(prom, "HotreloadReloadFailing"), "HotreloadReloadFailing firing"
        )
        assert reloader.last_outcome is not None
        assert reloader.last_outcome.error is not None
        assert reloader.snapshot.config_hash == good
        labels = alert["labels"]
        assert (labels["config"], labels["instance"], labels["job"]) == (
            "api",
            target(client),
            "api",
        )
        assert labels["severity"] == "warning"
        summary = alert["annotations"]["summary"]
        assert summary == (
            f"Config api on {target(client)}: the new version is refused, still on "
            f"config_hash {good}"
        )

        write_in_place(path, "model: gpt-4o\n")
        await reloader.wait_for_generation(2, timeout=30)
        await prom.until(
            lambda: in_force(prom, target(client), reloader.snapshot.config_hash),
            "the fixed version scraped",
        )
        await prom.rule_evaluated()
        assert await prom.alerts("HotreloadReloadFailing") == []


@pytest.mark.skipif(
    not hasattr(hotreload, "Probation"), reason="probation (issue 25, item 1) is not in yet"
)
async def test_a_rollback_fires_the_rollback_alert(tmp_path: Path, prometheus_bin: str) -> None:
    """A commit points the app's toolset (a real local HTTP server) at a closed port; the
    app's calls fail, probation rolls the commit back, and Prometheus fires the shipped
    rollback rule, as it is, naming the hash that is back in force."""
    toolset = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])

    async def ask(request: Request) -> JSONResponse:
        url = current_config(ToolsetSettings).toolset.url
        reloader = request.state.hotreload
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                (await http.get(url)).raise_for_status()
        except httpx.HTTPError as exc:
            reloader.record_failure("toolset", type(exc).__name__, str(exc))
            return JSONResponse({"url": url, "ok": False}, status_code=502)
        reloader.record_success("toolset")
        return JSONResponse({"url": url, "ok": True})

    async with serving(toolset) as toolset_client:
        healthy = f"http://{target(toolset_client)}/"
        dead = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
        path = tmp_path / "config.yaml"
        path.write_text(f"toolset: {{url: '{healthy}'}}\n")
        # Probation by name until the engine has it (the skip above): mypy knows no such option.
        probation: dict[str, Any] = {
            "probation": getattr(hotreload, "Probation")(window=60.0, failures=3)  # noqa: B009
        }
        reloader = HotReloader(
            path, schema=ToolsetSettings, name="api", registry=CollectorRegistry(), **probation
        )
        app = Starlette(
            routes=[Route("/ask", ask), *admin_routes()],
            lifespan=hotreload_lifespan(reloader),
        )
        app.add_middleware(HotReloadMiddleware)
        async with (
            serving(app) as client,
            prometheus(
                prometheus_bin, tmp_path / "prom", RULES.read_text(), [target(client)]
            ) as prom,
        ):
            good = reloader.snapshot.config_hash
            assert (await client.get("/ask")).json() == {"url": healthy, "ok": True}
            await prom.until(lambda: in_force(prom, target(client), good), "the first hash")
            await prom.rule_evaluated()
            assert await prom.alerts("HotreloadConfigRolledBack") == []

            write_in_place(path, f"toolset: {{url: '{dead}'}}\n")
            await reloader.wait_for_generation(2, timeout=30)
            assert reloader.snapshot.config_hash != good
            while reloader.snapshot.generation == 2:
                response = await client.get("/ask")
                if response.status_code == 200:
                    break  # already rolled back: this request ran on the old config
                assert response.json() == {"url": dead, "ok": False}
                await reloader.failures_settled()
            await reloader.wait_for_generation(3, timeout=30)
            assert reloader.snapshot.config_hash == good
            assert reloader.last_outcome is not None
            assert reloader.last_outcome.trigger == "rollback"
            assert (await client.get("/ask")).json() == {"url": healthy, "ok": True}

            [alert] = await prom.until(
                lambda: firing(prom, "HotreloadConfigRolledBack"), "the rollback alert firing"
            )
            labels = alert["labels"]
            assert (labels["config"], labels["instance"], labels["job"]) == (
                "api",
                target(client),
                "api",
            )
            summary = alert["annotations"]["summary"]
            assert summary.startswith(f"Config api on {target(client)} was rolled back (")
            assert summary.endswith(f"); back on config_hash {good}")
