"""Derived resources and the ``refuse`` policy, with real files and the real watcher.

The resources here are small objects that record their own close, so every ordering (built
inside the commit, closed after the last pin, closed once) can be asserted exactly; the HTTP
client scenarios against a real server are in tests/e2e/test_derived_http.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from hotreload import (
    ConfigBuildError,
    ConfigRefusedError,
    Fields,
    HotReloader,
    ReloadResult,
    RestartRequired,
    Secret,
)
from hotreload.asgi import config_report
from hotreload.testing import write_in_place
from tests.conftest import MetricReader

WAIT = 5.0
Logs = list[MutableMapping[str, Any]]


class LLM(msgspec.Struct, frozen=True, kw_only=True):
    endpoint: str
    api_key: Annotated[str, Secret] = ""
    provider: Annotated[str, RestartRequired("refuse")] = "openai"


class Conf(msgspec.Struct, frozen=True, kw_only=True):
    llm: LLM
    log_level: str = "INFO"
    retries: int = 3


def conf(endpoint: str, *, retries: int = 3, provider: str = "openai") -> str:
    return (
        f"llm:\n  endpoint: {endpoint}\n  api_key: sk-PLANTED-KEY\n  provider: {provider}\n"
        f"retries: {retries}\n"
    )


class Client:
    """A stand-in resource that knows its endpoint and how often it was closed."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.closes = 0
        self.closed = asyncio.Event()

    async def aclose(self) -> None:
        self.closes += 1
        self.closed.set()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "conf" / "config.yaml"
    p.parent.mkdir()
    p.write_text(conf("http://a"))
    return p


def reloader(path: Path, registry: CollectorRegistry, **options: Any) -> HotReloader[Conf]:
    return HotReloader(path, schema=Conf, name="d", registry=registry, **options)


async def test_built_at_start_and_rebuilt_only_when_a_path_under_on_changes(
    path: Path, registry: CollectorRegistry
) -> None:
    built: list[Client] = []

    async def build(config: Conf) -> Client:  # async build: awaited inside the commit
        built.append(Client(config.llm.endpoint))
        return built[-1]

    r = reloader(path, registry)
    llm = r.derive(build, on=("llm",), name="llm")
    async with r:
        assert (llm.current.endpoint, llm.generation, llm.get()) == ("http://a", 1, llm.current)
        write_in_place(path, conf("http://a", retries=5))
        await r.wait_for_generation(2, timeout=WAIT)
        assert len(built) == 1  # retries is not under llm: nothing rebuilt
        assert llm.generation == 1
        write_in_place(path, conf("http://b", retries=5))
        await r.wait_for_generation(3, timeout=WAIT)
        assert (llm.current.endpoint, llm.generation) == ("http://b", 3)
        await built[0].closed.wait()  # nothing pinned it: closed in the background
        assert built[0].closes == 1
        assert built[1].closes == 0
    assert [c.closes for c in built] == [1, 1]  # exit closed the current one, once


async def test_a_session_keeps_the_resource_it_started_with_and_it_closes_after(
    path: Path, registry: CollectorRegistry
) -> None:
    r = reloader(path, registry, max_drain_wait=0)  # sessions pin but never hold changes
    llm = r.derive(lambda c: Client(c.llm.endpoint), name="llm")
    async with r:
        first = llm.current
        async with r.session() as snap:
            write_in_place(path, conf("http://b"))
            await r.wait_for_generation(2, timeout=WAIT)
            assert llm.current.endpoint == "http://b"
            assert (snap.generation, llm.get()) == (1, first)  # pinned with the snapshot
            assert (first.closes, llm.draining) == (0, 1)
            await asyncio.sleep(0)  # sleep-ok: let any (wrong) background close run now
            assert first.closes == 0
        await llm.wait_drained(timeout=WAIT)
        assert (first.closes, llm.draining, llm.get()) == (1, 0, llm.current)


async def test_pin_resources_keeps_a_swap_from_closing_what_a_request_uses(
    path: Path, registry: CollectorRegistry
) -> None:
    r = reloader(path, registry)
    llm = r.derive(lambda c: Client(c.llm.endpoint), name="llm")
    async with r:
        first = llm.current
        with r.pin_resources():
            write_in_place(path, conf("http://b"))
            await r.wait_for_generation(2, timeout=WAIT)
            with r.pin_resources():  # a nested pin (a session inside a request)
                assert llm.get().endpoint == "http://b"
            assert llm.get() is first
            assert first.closes == 0
        await first.closed.wait()
        assert first.closes == 1


async def test_a_failed_build_refuses_the_change_and_keeps_config_and_resource(
    path: Path, registry: CollectorRegistry, metric: MetricReader, logs: Logs
) -> None:
    broken = [False]
    built: list[Client] = []

    def build(config: Conf) -> Client:
        if broken[0]:
            raise ConnectionError(f"cannot reach {config.llm.endpoint} with {config.llm.api_key}")
        built.append(Client(config.llm.endpoint))
        return built[-1]

    r = reloader(path, registry)
    llm = r.derive(build, name="llm")
    async with r:
        broken[0] = True
        write_in_place(path, conf("http://b"))
        outcome = await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        assert isinstance(outcome.error, ConfigBuildError)
        assert outcome.error.resource == "llm"
        assert "derived resource llm failed: ConnectionError" in str(outcome.error)
        assert "PLANTED" not in f"{outcome.error} {logs}"
        assert (r.snapshot.generation, r.config.llm.endpoint) == (1, "http://a")
        assert (llm.current, llm.generation) == (built[0], 1)
        assert metric("hotreload_config_reload_failures_total", config="d", reason="derive_build")
        broken[0] = False
        retried = await r.reload()  # like a refused apply hook: reload() tries again
        assert retried.applied
        assert (llm.current.endpoint, llm.generation) == ("http://b", 2)


async def test_a_build_that_hangs_times_out_and_a_refused_change_runs_no_hook(
    path: Path, registry: CollectorRegistry
) -> None:
    hooks: list[str] = []

    async def hook(new: Any, old: Any) -> None:
        hooks.append(new.config.llm.endpoint)

    async def build(config: Conf) -> Client:
        if config.llm.endpoint == "http://hang":
            await asyncio.Event().wait()
        return Client(config.llm.endpoint)

    r = reloader(path, registry, hook_timeout=0.1, on_apply=[hook])
    r.derive(build, name="llm")
    async with r:
        write_in_place(path, conf("http://hang"))
        outcome = await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        assert "timed out" in str(outcome.error)
        assert hooks == []  # built before the hooks: a failed build runs none of them


async def test_a_build_ending_in_a_foreign_cancelled_error_refuses_and_the_worker_lives(
    path: Path, registry: CollectorRegistry
) -> None:
    async def build(config: Conf) -> Client:
        if config.llm.endpoint == "http://cancelled":
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.cancel()  # someone else's future, cancelled
            await future
        return Client(config.llm.endpoint)

    r = reloader(path, registry)
    llm = r.derive(build, name="llm")
    async with r:
        write_in_place(path, conf("http://cancelled"))
        outcome = await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        assert "derived resource llm failed: CancelledError" in str(outcome.error)
        write_in_place(path, conf("http://b"))
        await r.wait_for_generation(2, timeout=WAIT)
        assert llm.current.endpoint == "http://b"


async def test_a_refused_hook_closes_what_was_built_for_the_change(
    path: Path, registry: CollectorRegistry
) -> None:
    async def refuse(new: Any, old: Any) -> None:
        raise RuntimeError("no")

    built: list[Client] = []

    def build(config: Conf) -> Client:
        built.append(Client(config.llm.endpoint))
        return built[-1]

    r = reloader(path, registry, on_apply=[refuse])
    llm = r.derive(build, name="llm")
    async with r:
        write_in_place(path, conf("http://b"))
        await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        await built[1].closed.wait()  # never used: closed
        assert (llm.current, built[0].closes) == (built[0], 0)


async def test_a_slow_close_never_delays_the_next_commit(
    path: Path, registry: CollectorRegistry
) -> None:
    """The first close blocks until the test lets it go (standing in for a 2 s close): two
    more commits happen while it is still running."""
    release = asyncio.Event()
    both_closing = asyncio.Event()
    closing: list[str] = []
    closed: list[str] = []

    async def slow_close(client: Client) -> None:
        closing.append(client.endpoint)
        if len(closing) == 2:
            both_closing.set()
        await release.wait()
        closed.append(client.endpoint)

    r = reloader(path, registry)
    llm = r.derive(lambda c: Client(c.llm.endpoint), close=slow_close, name="llm")
    async with r:
        write_in_place(path, conf("http://b"))
        await r.wait_for_generation(2, timeout=WAIT)
        write_in_place(path, conf("http://c"))
        await r.wait_for_generation(3, timeout=WAIT)
        assert llm.current.endpoint == "http://c"
        await asyncio.wait_for(both_closing.wait(), WAIT)
        assert (closing, closed, llm.draining) == (["http://a", "http://b"], [], 2)
        release.set()
    assert sorted(closed) == ["http://a", "http://b", "http://c"]


async def test_close_errors_are_logged_and_counted_never_raised(
    path: Path, registry: CollectorRegistry, metric: MetricReader, logs: Logs
) -> None:
    def bad_close(client: Client) -> None:
        raise OSError("socket already gone")

    r = reloader(path, registry)
    llm = r.derive(lambda c: Client(c.llm.endpoint), close=bad_close, name="llm")
    async with r:
        write_in_place(path, conf("http://b"))
        await r.wait_for_generation(2, timeout=WAIT)
        await llm.wait_drained(timeout=WAIT)
        assert metric("hotreload_derived_close_errors_total", config="d", resource="llm") == 1
        write_in_place(path, conf("http://c"))
        await r.wait_for_generation(3, timeout=WAIT)  # the loop is fine
    failed = [e for e in logs if e["event"] == "derived_close_failed"]
    assert [e["error_type"] for e in failed] == ["OSError", "OSError", "OSError"]


async def test_exit_closes_pinned_resources_after_their_pins_end(
    path: Path, registry: CollectorRegistry
) -> None:
    """Two requests: one pinned the replaced resource, one the current one. The exit closes
    neither while its request runs, and each exactly once when it ends."""
    closed_while_pinned: list[str] = []
    pinned: set[str] = set()

    async def close(client: Client) -> None:
        if client.endpoint in pinned:
            closed_while_pinned.append(client.endpoint)
        await client.aclose()

    r = reloader(path, registry)
    llm = r.derive(lambda c: Client(c.llm.endpoint), close=close, name="llm")
    done = asyncio.Event()

    async def request(started: asyncio.Event) -> None:
        with r.pin_resources():
            endpoint = llm.get().endpoint
            pinned.add(endpoint)
            started.set()
            await done.wait()
            pinned.discard(endpoint)

    async with r:
        first = llm.current
        on_first, on_second = asyncio.Event(), asyncio.Event()
        requests = [asyncio.create_task(request(on_first))]
        await on_first.wait()
        write_in_place(path, conf("http://b"))
        await r.wait_for_generation(2, timeout=WAIT)
        second = llm.current
        requests.append(asyncio.create_task(request(on_second)))
        await on_second.wait()
        exiting = asyncio.create_task(r.__aexit__(None, None, None))
        # Give a wrong exit every chance to close a pinned resource (nothing to wait for: the
        # event under test is one that must not happen).
        await asyncio.sleep(0.1)  # sleep-ok: see above
        assert (first.closes, second.closes, exiting.done()) == (0, 0, False)
        done.set()
        await asyncio.gather(*requests)
        await asyncio.wait_for(exiting, WAIT)
    assert closed_while_pinned == []
    assert (first.closes, second.closes) == (1, 1)


async def test_exit_waits_for_pins_at_most_max_drain_wait(
    path: Path, registry: CollectorRegistry, logs: Logs
) -> None:
    r = reloader(path, registry, max_drain_wait=0.05)
    llm = r.derive(lambda c: Client(c.llm.endpoint), name="llm")
    async with r:
        with r.pin_resources():  # a request that never ends
            await r.__aexit__(None, None, None)
            assert llm.current.closes == 1  # closed anyway: the wait is bounded
    assert any(e["event"] == "derived_closed_while_pinned" for e in logs)


async def test_derive_while_running_builds_at_once_and_an_initial_failure_fails_fast(
    path: Path, registry: CollectorRegistry
) -> None:
    async with reloader(path, registry) as r:
        llm = r.derive(lambda c: Client(c.llm.endpoint), name="llm")
        assert (llm.current.endpoint, llm.generation) == ("http://a", 1)

        async def build(config: Conf) -> Client:
            return Client(config.llm.endpoint)

        with pytest.raises(RuntimeError, match="before `async with`"):
            r.derive(build, name="late")
        assert [d.name for d in r.derived_resources] == ["llm"]
        unnamed = [r.derive(lambda c: Client(c.llm.endpoint)) for _ in range(2)]
        assert [d.name for d in unnamed] == ["derived", "derived-2"]
        with pytest.raises(ValueError, match="'llm' exists already"):
            r.derive(lambda c: Client(c.llm.endpoint), name="llm")
        report = config_report(r)
        assert report["derived"][0] == {"name": "llm", "generation": 1, "draining": 0}

    def broken(config: Conf) -> Client:
        raise ValueError("no endpoint")

    r2 = reloader(path, CollectorRegistry())
    r2.derive(broken, name="llm")
    with pytest.raises(ConfigBuildError, match="derived resource llm failed: ValueError"):
        async with r2:
            pass


async def test_a_refuse_field_refuses_the_whole_change_distinct_from_an_invalid_file(
    path: Path, registry: CollectorRegistry, metric: MetricReader, logs: Logs
) -> None:
    r = reloader(path, registry, fields=Fields(refuse_changes=["log_level"]))
    llm = r.derive(lambda c: Client(c.llm.endpoint), name="llm")
    async with r:
        write_in_place(path, conf("http://b", provider="anthropic", retries=9))
        outcome = await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        assert isinstance(outcome.error, ConfigRefusedError)
        assert outcome.refused == ("llm.provider",)
        assert outcome.error.reason == "restart_refused"
        # Nothing of it applies: not the endpoint, not retries, not the client.
        assert (r.config.retries, r.config.llm.endpoint, llm.generation) == (3, "http://a", 1)
        failures = "hotreload_config_reload_failures_total"
        assert metric(failures, config="d", reason="restart_refused") == 1
        report = config_report(r)
        assert report["refused"] == ["llm.provider"]
        assert report["last_outcome"]["error"]["reason"] == "restart_refused"

        # A path pattern works the same way; and an invalid file stays distinct.
        write_in_place(path, conf("http://b") + "log_level: DEBUG\n")
        outcome = await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        assert outcome.refused == ("log_level",)
        write_in_place(path, "llm: [unclosed\n")
        outcome = await r.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=WAIT)
        assert (outcome.refused, config_report(r)["refused"]) == ((), [])

        write_in_place(path, conf("http://b"))  # without the refused fields: applies
        await r.wait_for_generation(2, timeout=WAIT)
        assert llm.current.endpoint == "http://b"
    rejected = [e for e in logs if e.get("reason") == "restart_refused"]
    assert rejected
    assert "PLANTED" not in repr(logs)


def test_restart_required_marker_modes() -> None:
    from hotreload._fields import FieldPolicy

    class S(msgspec.Struct, frozen=True):
        a: Annotated[int, RestartRequired] = 0
        b: Annotated[int, RestartRequired("keep")] = 0
        c: Annotated[int, RestartRequired("refuse")] = 0

    policy = FieldPolicy(S, restart_required=["c"])
    assert policy.restart_required == (("a",), ("b",))  # refuse wins over keep for c
    assert policy.refused == (("c",),)
    assert repr(RestartRequired("refuse")) == "hotreload.RestartRequired('refuse')"
    with pytest.raises(ValueError, match="'keep' or 'refuse'"):
        RestartRequired("never")


async def test_a_sync_close_method_is_used_and_on_empty_rebuilds_on_any_change(
    path: Path, registry: CollectorRegistry
) -> None:
    class Pool:
        def __init__(self, retries: int) -> None:
            self.retries = retries
            self.closes = 0

        def close(self) -> None:  # no aclose: the sync close() is called
            self.closes += 1

    r = reloader(path, registry)
    pools = r.derive(lambda c: Pool(c.retries), on=(), name="pool")
    async with r:
        first = pools.current
        write_in_place(path, conf("http://a", retries=7))  # not under llm: on=() still rebuilds
        await r.wait_for_generation(2, timeout=WAIT)
        await pools.wait_drained(timeout=WAIT)
        assert (pools.current.retries, first.closes) == (7, 1)
    assert pools.current.closes == 1
