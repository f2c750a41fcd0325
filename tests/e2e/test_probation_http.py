"""Probation with real parts (issue 25, item 3): a real uvicorn app calls a real local HTTP
server as its toolset and reports each call with ``record_failure`` / ``record_success``.

A commit that points the toolset at a closed port is rolled back by the failures the app's own
requests report; the condemned content stays out however it comes back (a kubelet re-sync,
SIGHUP, ``reload()``, ``POST /-/reload``, a restart with ``lkg_path``); a fixed config applies;
a dependency that was failing before a commit does not condemn it; a ``check`` returning False
rolls back with no request at all. Every wait is on an outcome, never on the clock.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from hotreload import HotReloader, Probation, ReloadOutcome, Snapshot, Stream
from hotreload.asgi import HotReloadMiddleware, admin_routes, current_snapshot, hotreload_lifespan
from hotreload.testing import ConfigMapVolume, write_atomic

from .conftest import serving

WAIT = 30.0
TOKEN = "probation-e2e-token"  # noqa: S105 - the test's own token
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Toolset(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str
    label: str = ""


class AppConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    toolset: Toolset


def config(url: str, label: str = "") -> str:
    return f"toolset: {{url: '{url}', label: '{label}'}}\n"


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def ask(request: Request) -> JSONResponse:
    """The app's unit of work: call the toolset its config names, report how it went. It
    answers either way: the service keeps serving, on whichever config is pinned."""
    snapshot = current_snapshot()
    reloader = request.state.hotreload
    url = snapshot.config.toolset.url
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            (await http.get(url)).raise_for_status()
    except httpx.HTTPError as exc:
        reloader.record_failure("toolset", type(exc).__name__, str(exc))
        ok = False
    else:
        reloader.record_success("toolset")
        ok = True
    return JSONResponse({"ok": ok, "url": url, "config_hash": snapshot.config_hash})


def app_for(reloader: HotReloader[AppConfig]) -> Starlette:
    app = Starlette(
        routes=[Route("/ask", ask), *admin_routes(reload_token=TOKEN)],
        lifespan=hotreload_lifespan(reloader, reload_on_sighup=True),
    )
    app.add_middleware(HotReloadMiddleware)
    return app


def reloader_for(path: Path, **options: Any) -> HotReloader[AppConfig]:
    options.setdefault("probation", Probation(window=30.0, failures=3))
    return HotReloader(path, schema=AppConfig, name="api", registry=CollectorRegistry(), **options)


@contextlib.asynccontextmanager
async def toolset_server() -> AsyncIterator[str]:
    toolset = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])
    async with serving(toolset) as client:
        yield str(client.base_url) + "/"


async def until(
    stream: Stream[ReloadOutcome], match: Callable[[ReloadOutcome], bool]
) -> ReloadOutcome:
    with anyio.fail_after(WAIT):  # a guard against a hang, not a bound under test
        async for outcome in stream:
            if match(outcome):
                return outcome
    raise AssertionError("the reloader closed")


def quarantined(outcome: ReloadOutcome) -> bool:
    return outcome.error is not None and outcome.error.reason == "quarantined"


async def roll_back_through_requests(
    client: httpx.AsyncClient, reloader: HotReloader[AppConfig], bad: Snapshot[AppConfig]
) -> list[dict[str, Any]]:
    """Serve requests until probation rolls ``bad`` back; every one is answered."""
    answers = []
    while reloader.snapshot.generation == bad.generation:
        response = await client.get("/ask")
        assert response.status_code == 200
        answers.append(response.json())
        await reloader.failures_settled()
    return answers


async def test_a_commit_pointing_the_toolset_at_a_closed_port_is_rolled_back_and_stays_out(
    tmp_path: Path,
) -> None:
    async with toolset_server() as healthy:
        dead = f"http://127.0.0.1:{closed_port()}/"
        volume = ConfigMapVolume(tmp_path / "cm", {"config.yaml": config(healthy)})
        reloader = reloader_for(volume.path("config.yaml"))
        async with serving(app_for(reloader)) as client:
            good = reloader.snapshot
            first = (await client.get("/ask")).json()
            assert first == {"ok": True, "url": healthy, "config_hash": good.config_hash}

            volume.update({"config.yaml": config(dead)})
            bad = await reloader.wait_for_generation(2, timeout=WAIT)
            report = (await client.get("/-/config")).json()
            assert report["probation"]["config_hash"] == bad.config_hash
            assert report["probation"]["until"]
            assert report["probation"]["evidence"] == []
            stream = reloader.outcomes()
            answers = await roll_back_through_requests(client, reloader, bad)
            assert all(a["config_hash"] in (good.config_hash, bad.config_hash) for a in answers)
            assert [a for a in answers if not a["ok"]]  # the failures that condemned it
            rolled = reloader.last_outcome
            assert rolled is not None
            assert (rolled.trigger, rolled.applied) == ("rollback", True)
            assert reloader.snapshot.config_hash == good.config_hash
            after = (await client.get("/ask")).json()
            assert after == {"ok": True, "url": healthy, "config_hash": good.config_hash}

            report = (await client.get("/-/config")).json()
            assert report["probation"] is None
            [entry] = report["quarantined"]
            assert entry["config_hash"] == bad.config_hash
            assert entry["reason"] == "failures"
            assert [e["name"] for e in entry["evidence"]] == ["toolset"]
            metrics = (await client.get("/metrics")).text
            assert 'hotreload_config_rollbacks_total{config="api",reason="failures"} 1.0' in metrics
            assert 'hotreload_config_quarantined{config="api"} 1.0' in metrics

            await stays_out(client, reloader, volume, stream, bad=config(dead), good=good)
            fixed = await fixed_applies(client, reloader, volume, config(healthy, label="fixed"))
            assert fixed.config.toolset.label == "fixed"
            assert [e.config_hash for e in reloader.quarantined] == [bad.config_hash]
            await release_through_the_endpoint(client, reloader, bad)


async def stays_out(
    client: httpx.AsyncClient,
    reloader: HotReloader[AppConfig],
    volume: ConfigMapVolume,
    stream: Stream[ReloadOutcome],
    *,
    bad: str,
    good: Snapshot[AppConfig],
) -> None:
    """The same bad content, however it comes back, stays quarantined."""
    volume.update({"config.yaml": bad})  # a kubelet re-sync
    assert quarantined(await until(stream, lambda o: o.trigger in ("watch", "rescan")))
    os.kill(os.getpid(), signal.SIGHUP)
    assert quarantined(await until(stream, lambda o: o.trigger == "signal"))
    assert quarantined(await reloader.reload())
    posted = (await client.post("/-/reload", headers=AUTH)).json()
    assert posted["applied"] is False
    assert posted["error"]["reason"] == "quarantined"
    assert reloader.snapshot.config_hash == good.config_hash
    assert (await client.get("/ask")).json()["ok"] is True
    metrics = (await client.get("/metrics")).text
    assert 'reload_failures_total{config="api",reason="quarantined"}' in metrics


async def fixed_applies(
    client: httpx.AsyncClient,
    reloader: HotReloader[AppConfig],
    volume: ConfigMapVolume,
    text: str,
) -> Snapshot[AppConfig]:
    """A fixed config applies, and the requests use it."""
    generation = reloader.snapshot.generation
    volume.update({"config.yaml": text})
    fixed = await reloader.wait_for_generation(generation + 1, timeout=WAIT)
    answer = (await client.get("/ask")).json()
    assert answer == {"ok": True, "url": fixed.config.toolset.url, "config_hash": fixed.config_hash}
    return fixed


async def release_through_the_endpoint(
    client: httpx.AsyncClient, reloader: HotReloader[AppConfig], bad: Snapshot[AppConfig]
) -> None:
    """Releasing is an operator's act: authenticated, and it names one hash."""
    release = "/-/quarantine/release"
    body = {"config_hash": bad.config_hash}
    assert (await client.post(release, json=body)).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await client.post(release, json=body, headers=wrong)).status_code == 403
    assert (await client.get(release, headers=AUTH)).status_code == 405
    assert (await client.post(release, content=b"{}", headers=AUTH)).status_code == 400
    assert (await client.post(release, content=b"[", headers=AUTH)).status_code == 400
    other = {"config_hash": "0" * 64}
    assert (await client.post(release, json=other, headers=AUTH)).status_code == 404
    lifted = await client.post(release, json=body, headers=AUTH)
    assert lifted.status_code == 200
    assert lifted.json()["trigger"] == "release"
    assert lifted.json()["applied"] is False  # the source holds the fixed config now
    assert reloader.quarantined == ()
    assert (await client.get("/-/config")).json()["quarantined"] == []


async def test_a_restart_with_lkg_path_does_not_apply_the_quarantined_content(
    tmp_path: Path,
) -> None:
    async with toolset_server() as healthy:
        dead = f"http://127.0.0.1:{closed_port()}/"
        path = tmp_path / "config.yaml"
        lkg = tmp_path / "state" / "lkg.json"
        path.write_text(config(healthy))
        reloader = reloader_for(path, lkg_path=lkg)
        async with serving(app_for(reloader)) as client:
            good = reloader.snapshot
            write_atomic(path, config(dead))
            bad = await reloader.wait_for_generation(2, timeout=WAIT)
            await roll_back_through_requests(client, reloader, bad)
        assert path.read_text() == config(dead)  # nobody fixed the file
        again = reloader_for(path, lkg_path=lkg)
        async with serving(app_for(again)) as client:
            assert again.snapshot.config_hash == good.config_hash
            answer = (await client.get("/ask")).json()
            assert answer == {"ok": True, "url": healthy, "config_hash": good.config_hash}
            ready = (await client.get("/-/readyz")).json()
            assert ready["status"] == "degraded"
            assert "quarantined" in ready["reason"]
            report = (await client.get("/-/config")).json()
            assert [e["config_hash"] for e in report["quarantined"]] == [bad.config_hash]


async def test_a_commit_whose_dependency_was_already_failing_is_not_condemned(
    tmp_path: Path,
) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/"
    path = tmp_path / "config.yaml"
    path.write_text(config(dead))
    reloader = reloader_for(path)
    async with serving(app_for(reloader)) as client:
        assert (await client.get("/ask")).json()["ok"] is False
        await reloader.failures_settled()
        write_atomic(path, config(dead, label="unrelated change"))
        commit = await reloader.wait_for_generation(2, timeout=WAIT)
        for _ in range(6):  # past both the probation and the re-check thresholds
            assert (await client.get("/ask")).json()["ok"] is False
        await reloader.failures_settled()
        assert reloader.snapshot.generation == commit.generation
        assert reloader.quarantined == ()
        report = (await client.get("/-/config")).json()
        assert report["probation"]["config_hash"] == commit.config_hash
        assert report["probation"]["evidence"] == []


async def test_a_check_returning_false_rolls_back(tmp_path: Path) -> None:
    async def reachable(snapshot: Snapshot[AppConfig]) -> bool:
        """The app's own probe of its toolset: no request needs to fail first."""
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                (await http.get(snapshot.config.toolset.url)).raise_for_status()
        except httpx.HTTPError:
            return False
        return True

    async with toolset_server() as healthy:
        dead = f"http://127.0.0.1:{closed_port()}/"
        path = tmp_path / "config.yaml"
        path.write_text(config(healthy))
        probation = Probation(window=30.0, failures=3, check=reachable)
        reloader = reloader_for(path, probation=probation)
        async with serving(app_for(reloader)) as client:
            good = reloader.snapshot
            stream = reloader.outcomes()
            write_atomic(path, config(healthy, label="still fine"))
            fine = await reloader.wait_for_generation(2, timeout=WAIT)
            write_atomic(path, config(dead))
            rolled = await until(stream, lambda o: o.trigger == "rollback")
            assert rolled.config_hash == fine.config_hash != good.config_hash
            [entry] = reloader.quarantined
            assert entry.reason == "check"
            assert entry.evidence[0].name.endswith("reachable")
            assert entry.evidence[0].error_message == "returned False"
            metrics = (await client.get("/metrics")).text
            assert 'hotreload_config_rollbacks_total{config="api",reason="check"} 1.0' in metrics
