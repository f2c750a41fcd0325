"""holmesgpt's own tool executor, driven by hotreload from a ConfigMap-style directory.

Upstream's server rebuilds its executor only on ``POST /api/admin/reload/toolsets``; here
`derive_tool_executor` keeps one of upstream's real ``ToolExecutor`` objects (built by its own
``Config.create_server_tool_executor``, in-process, prerequisites checked live) in step with
the file: a toolset enabled or disabled in the file shows in the live executor; a version
upstream refuses, or whose toolsets fail to build, keeps the running one; an investigation
pinned in flight finishes on the executor it started with. Waits are on outcomes.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from hotreload import HotReloader, ReloadOutcome
from hotreload.holmesgpt import (
    HolmesGPTConfig,
    ToolsetBuildError,
    derive_model_registry,
    derive_tool_executor,
    upstream_config,
)
from hotreload.testing import ConfigMapVolume

from .conftest import need_upstream

WAIT = 30.0  # holmesgpt builds an executor in about half a second, more on a busy machine


def toolset(name: str, *, enabled: bool = True, prerequisite: str | None = None) -> str:
    check = f"\n    prerequisites: [{{command: '{prerequisite}'}}]" if prerequisite else ""
    return (
        f"  {name}:\n"
        f"    enabled: {str(enabled).lower()}\n"
        f"    description: {name} for the test\n"
        f"    tools: [{{name: {name.replace('/', '_')}_echo, description: echo, "
        f"command: 'echo {name}'}}]{check}\n"
    )


def config(*toolsets: str, model: str = "gpt-4o") -> str:
    return f"model: {model}\ntoolsets:\n" + "".join(toolsets)


def enabled(executor: object) -> set[str]:
    return {t.name for t in executor.enabled_toolsets}  # type: ignore[attr-defined]


def reloader_for(volume: ConfigMapVolume) -> HotReloader[HolmesGPTConfig]:
    return HotReloader(
        volume.path("config.yaml"),
        schema=HolmesGPTConfig,
        name="holmes",
        registry=CollectorRegistry(),
        poll_interval=0,
    )


async def next_outcome(reloader: HotReloader[HolmesGPTConfig]) -> ReloadOutcome:
    return await reloader.wait_for_outcome(lambda o: o.trigger == "watch", timeout=WAIT)


async def test_the_live_executor_follows_the_file_and_keeps_running_on_a_bad_one(
    tmp_path: Path,
) -> None:
    need_upstream()
    volume = ConfigMapVolume(tmp_path / "config", {"config.yaml": config(toolset("team/a"))})
    reloader = reloader_for(volume)
    executor = derive_tool_executor(reloader)
    async with reloader:
        first = executor.current
        assert type(first).__module__ == "holmes.core.tools_utils.tool_executor"
        assert "team/a" in enabled(first)
        assert first.get_tool_by_name("team_a_echo") is not None

        # Enabled in the file: in the live executor.
        volume.update({"config.yaml": config(toolset("team/a"), toolset("team/b"))})
        assert (await next_outcome(reloader)).applied
        second = executor.current
        assert second is not first
        assert {"team/a", "team/b"} <= enabled(second)

        # A version holmesgpt's own model refuses: the running executor and config stay.
        maybe = config(toolset("team/a")).replace("enabled: true", "enabled: maybe")
        volume.update({"config.yaml": maybe})
        refused = await next_outcome(reloader)
        assert not refused.applied
        assert refused.error is not None
        assert "toolsets.team/a.enabled" in str(refused.error)
        assert executor.current is second

        # One whose toolsets fail to build (a prerequisite fails): refused, kept.
        broken = config(toolset("team/a"), toolset("team/c", prerequisite="false"))
        volume.update({"config.yaml": broken})
        failed = await next_outcome(reloader)
        assert not failed.applied
        assert failed.error is not None
        assert failed.error.reason == "derive_build"
        assert f"{ToolsetBuildError.__name__}: holmesgpt could not build 1 toolset(s): " in str(
            failed.error
        )
        assert "toolsets.team/c: `false` failed with exit code 1" in str(failed.error)
        assert executor.current is second
        assert set(reloader.config.toolsets or {}) == {"team/a", "team/b"}

        # Disabled in the file: gone from the live executor.
        volume.update({"config.yaml": config(toolset("team/a"), toolset("team/b", enabled=False))})
        assert (await next_outcome(reloader)).applied
        assert "team/b" not in enabled(executor.current)
        assert "team/a" in enabled(executor.current)


async def test_an_investigation_in_flight_finishes_on_its_executor(tmp_path: Path) -> None:
    need_upstream()
    volume = ConfigMapVolume(tmp_path / "config", {"config.yaml": config(toolset("team/a"))})
    reloader = reloader_for(volume)
    executor = derive_tool_executor(reloader)
    async with reloader:
        with reloader.pin_resources():  # what HotReloadMiddleware does for each request
            started_with = executor.get()
            volume.update({"config.yaml": config(toolset("team/b"))})
            assert (await next_outcome(reloader)).applied
            assert executor.get() is started_with  # mid-investigation: the same tools
            assert "team/a" in enabled(executor.get())
        assert executor.get() is executor.current is not started_with
        assert enabled(executor.current) >= {"team/b"}
        assert "team/a" not in enabled(executor.current)


async def test_the_model_registry_is_rebuilt_when_the_model_changes(tmp_path: Path) -> None:
    need_upstream()
    volume = ConfigMapVolume(tmp_path / "config", {"config.yaml": config(model="gpt-4o")})
    reloader = reloader_for(volume)
    registry = derive_model_registry(reloader)
    executor = derive_tool_executor(reloader)
    async with reloader:
        first, tools = registry.current, executor.current
        assert "gpt-4o" in str(first.models)
        volume.update({"config.yaml": config(model="gpt-4.1")})
        assert (await next_outcome(reloader)).applied
        assert registry.current is not first
        assert "gpt-4.1" in str(registry.current.models)
        assert executor.current is tools  # no toolset key changed: not rebuilt


def test_upstream_config_gets_only_what_the_file_gave(tmp_path: Path) -> None:
    need_upstream()
    path = tmp_path / "config.yaml"
    path.write_text(config(toolset("team/a")))
    import msgspec
    import yaml

    parsed = msgspec.convert(yaml.safe_load(path.read_text()), HolmesGPTConfig)
    upstream = upstream_config(parsed)
    assert type(upstream).__module__ == "holmes.config"
    assert upstream.model == "gpt-4o"
    assert set(upstream.toolsets) == {"team/a"}
    assert "prerequisites" not in upstream.toolsets["team/a"]  # left to upstream's default
