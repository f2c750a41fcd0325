"""The Holmes preset on probation (issue 25, item 4), against a real local "LLM" server.

``create_reloader`` puts every commit on probation with the spec's threshold; given the
service's reachability call (``llm_probe``), probation runs it once after each commit on the
LLM client ``derive_llm_client`` keeps in force. An endpoint that does not answer rolls the
commit back: the client goes back to the old endpoint, the condemned version is quarantined.
The server is a real uvicorn app; the probe a real httpx call. Waits are on outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hotreload import HotReloader, Probation, ReloadOutcome, Snapshot, Stream
from hotreload.holmes import (
    ApiConfig,
    LLMConfig,
    LLMReachable,
    create_reloader,
    derive_llm_client,
    probation_from_env,
)
from hotreload.testing import write_atomic

from .conftest import serving
from .test_probation_http import closed_port

WAIT = 30.0


def config(endpoint: str, model: str = "gpt-4o") -> str:
    return (
        "llm:\n"
        "  provider: openai\n"
        f"  model: {model}\n"
        f"  endpoint: {endpoint}\n"
        "  api_key: sk-probation-test-key\n"
        "  max_retries: 0\n"
        "  timeout_seconds: 5\n"
    )


class Models:
    """The service's reachability call: does the endpoint list the configured model? Records
    each probe (the client's base URL, the model) and says when one has returned."""

    __qualname__ = "models"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.returned = asyncio.Event()

    async def __call__(self, client: httpx.AsyncClient, llm: LLMConfig) -> bool:
        self.calls.append((str(client.base_url), llm.model))
        try:
            response = await client.get("/models")
            response.raise_for_status()
            return llm.model in {m["id"] for m in response.json()["data"]}
        finally:
            self.returned.set()


@contextlib.asynccontextmanager
async def llm_server() -> AsyncIterator[str]:
    """An OpenAI-shaped ``/v1/models`` that serves two models, checking the bearer key."""

    async def listing(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != "Bearer sk-probation-test-key":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return JSONResponse({"data": [{"id": "gpt-4o"}, {"id": "gpt-4.1"}]})

    async with serving(Starlette(routes=[Route("/v1/models", listing)])) as client:
        yield f"{client.base_url}/v1"


async def rolled_back(
    reloader: HotReloader[ApiConfig], outcomes: Stream[ReloadOutcome], generation: int
) -> Snapshot[ApiConfig]:
    """The rollback of ``generation``, from a stream opened before the change was made."""
    with anyio.fail_after(WAIT):  # a guard against a hang, not a bound under test
        async for outcome in outcomes:
            if outcome.trigger == "rollback":
                assert outcome.generation == generation + 1
                return reloader.snapshot
    raise AssertionError("the reloader closed")


def probed_reloader(path: Path, endpoint: str, models: Models) -> HotReloader[ApiConfig]:
    """The preset on ``path`` (written with ``endpoint``), ``models`` its LLM probe."""
    path.write_text(config(endpoint))
    return create_reloader(
        path, environ={}, llm_probe=models, registry=CollectorRegistry(), poll_interval=0
    )


def test_the_preset_puts_commits_on_probation_with_the_spec_threshold(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    reloader = create_reloader(path, environ={}, registry=CollectorRegistry())
    assert reloader.probation == Probation(window=60.0, failures=3)
    assert reloader.probation is not None
    assert reloader.probation.check is None
    env = {"TOOLSET_MAX_FAILURES_BEFORE_RELOAD": "5"}
    assert create_reloader(path, environ=env, registry=CollectorRegistry()).probation == Probation(
        failures=5
    )
    off = create_reloader(path, environ={}, probation=None, registry=CollectorRegistry())
    assert off.probation is None
    with pytest.raises(TypeError, match="llm_probe or probation"):
        create_reloader(path, llm_probe=Models(), probation=Probation(), environ={})
    assert probation_from_env({}).failures == 3


async def test_an_llm_endpoint_that_does_not_answer_is_rolled_back(tmp_path: Path) -> None:
    models = Models()
    path = tmp_path / "config.yaml"
    async with llm_server() as endpoint:
        reloader = probed_reloader(path, endpoint, models)
        assert isinstance(reloader.probation.check, LLMReachable)  # type: ignore[union-attr]
        llm = derive_llm_client(reloader)
        async with reloader:
            good = reloader.snapshot
            assert str(llm.current.base_url) == f"{endpoint}/"

            outcomes = reloader.outcomes()
            dead = f"http://127.0.0.1:{closed_port()}/v1"
            write_atomic(path, config(dead))
            bad = await reloader.wait_for_generation(2, timeout=WAIT)
            back = await rolled_back(reloader, outcomes, bad.generation)

            assert back.config_hash == good.config_hash
            assert str(llm.current.base_url) == f"{endpoint}/"  # the client came back too
            assert (f"{dead}/", "gpt-4o") in models.calls  # it probed the derived client
            [entry] = reloader.quarantined
            assert (entry.config_hash, entry.reason) == (bad.config_hash, "check")
            [evidence] = entry.evidence
            assert evidence.name.startswith("llm_reachable(models")
            assert evidence.error_type == "ConnectError"
            assert "sk-probation-test-key" not in evidence.error_message

            # A model the endpoint does not serve: the probe says False, also rolled back.
            write_atomic(path, config(endpoint, model="gpt-3"))
            unknown = await reloader.wait_for_generation(back.generation + 1, timeout=WAIT)
            await rolled_back(reloader, outcomes, unknown.generation)
            assert reloader.snapshot.config_hash == good.config_hash
            assert [e.reason for e in reloader.quarantined] == ["check", "check"]

            # One it serves applies, and stays.
            models.returned.clear()
            write_atomic(path, config(endpoint, model="gpt-4.1"))
            served = await reloader.wait_for_outcome(
                lambda o: o.applied and o.trigger != "rollback", timeout=WAIT
            )
            # The engine records the verdict before this wakes: the probe's return and the
            # rest of the check run in one step of its task.
            await asyncio.wait_for(models.returned.wait(), WAIT)
            report = reloader.probation_report()
            assert report is not None
            assert report["check"] == "passed"
            assert reloader.snapshot.generation == served.generation
            assert reloader.snapshot.config.llm.model == "gpt-4.1"


async def test_without_a_derived_client_the_probe_gets_one_of_its_own(tmp_path: Path) -> None:
    models = Models()
    path = tmp_path / "config.yaml"
    async with llm_server() as endpoint:
        reloader = probed_reloader(path, endpoint, models)
        async with reloader:
            outcomes = reloader.outcomes()
            write_atomic(path, config(endpoint, model="gpt-3"))
            bad = await reloader.wait_for_generation(2, timeout=WAIT)
            await rolled_back(reloader, outcomes, bad.generation)
            assert models.calls == [(f"{endpoint}/", "gpt-3")]
