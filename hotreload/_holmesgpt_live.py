"""holmesgpt's own live objects, kept in step with its config file: derived resources.

holmesgpt's server rebuilds its tool executor and its model registry only when someone calls
``POST /api/admin/reload/toolsets`` or ``/reload/models``, and it clears its caches before it
knows the new file builds. Here they are `Derived` resources of a reloader of
`HolmesGPTConfig`: rebuilt inside the commit when their keys change, from upstream's own
``holmes.config.Config``, in a thread (a build runs prerequisite checks: commands, HTTP calls).
A build that fails refuses the version, so the running executor and config stay; an
investigation pinned with ``reloader.session()`` or ``reloader.pin_resources()`` finishes on
the executor it started with. Needs the ``holmesgpt`` extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import msgspec

from ._derive import Derived
from ._reloader import HotReloader

if TYPE_CHECKING:
    from holmes.config import Config
    from holmes.core.llm import LLMModelRegistry
    from holmes.core.tools_utils.tool_executor import ToolExecutor

    from .holmesgpt import HolmesGPTConfig

__all__ = [
    "EXECUTOR_KEYS",
    "MODEL_KEYS",
    "ToolsetBuildError",
    "derive_model_registry",
    "derive_tool_executor",
    "upstream_config",
]

#: What upstream's ``reload_toolsets`` re-reads: a change under any of them rebuilds the executor.
EXECUTOR_KEYS = ("toolsets", "mcp_servers", "custom_toolsets", "additional_toolsets")
#: What upstream's ``reload_models`` re-reads: a change under any rebuilds the model registry.
MODEL_KEYS = ("model", "fast_model", "api_key", "api_base", "api_version")


class ToolsetBuildError(ValueError):
    """Toolsets the file enables that holmesgpt could not build (a prerequisite failed, a
    server did not answer): ``failed`` maps each name to upstream's error. The version is
    refused, so the running executor stays, as an unbuildable file should leave it."""

    def __init__(self, failed: Mapping[str, str]) -> None:
        self.failed = dict(failed)
        listed = "; ".join(f"toolsets.{name}: {error}" for name, error in self.failed.items())
        super().__init__(f"holmesgpt could not build {len(self.failed)} toolset(s): {listed}")


def _explicit(value: Any) -> Any:
    """Builtins of ``value`` with every Struct field left at its default dropped: what the
    file gave, so upstream applies its own defaults (and a built-in toolset's override
    replaces only what it names, as upstream's loader does with the YAML)."""
    if isinstance(value, msgspec.Struct):
        out = {}
        for field in msgspec.structs.fields(value):
            item = getattr(value, field.name)
            if field.default is not msgspec.NODEFAULT:
                default = field.default
            elif field.default_factory is not msgspec.NODEFAULT:
                default = field.default_factory()
            else:  # required: always given
                default = msgspec.NODEFAULT
            if item != default:
                out[field.encode_name] = _explicit(item)
        return out
    if isinstance(value, dict):
        return {k: _explicit(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_explicit(v) for v in value]
    return value


def upstream_config(config: HolmesGPTConfig) -> Config:
    """holmesgpt's own ``Config`` for ``config`` (its pydantic model, its defaults)."""
    from ._holmesgpt_upstream import Config  # noqa: PLC0415 - the holmesgpt extra, when used

    return Config(**_explicit(config))


def _tool_executor(config: HolmesGPTConfig) -> ToolExecutor:
    """The server's executor for ``config`` (checks run live, nothing cached on disk); the
    toolsets the file enables must all be enabled in it."""
    from holmes.core.tools import ToolsetStatusEnum  # noqa: PLC0415 - the holmesgpt extra

    from ._holmesgpt_upstream import quiet_templates  # noqa: PLC0415 - the same

    with quiet_templates():
        executor = upstream_config(config).create_server_tool_executor()
    wanted = {name for name, toolset in (config.toolsets or {}).items() if toolset.enabled}
    wanted |= {name for name, server in (config.mcp_servers or {}).items() if server.enabled}
    failed = {
        toolset.name: toolset.error or toolset.status.value
        for toolset in executor.toolsets
        if toolset.name in wanted and toolset.status != ToolsetStatusEnum.ENABLED
    }
    if failed:
        raise ToolsetBuildError(failed)
    return executor


def _model_registry(config: HolmesGPTConfig) -> LLMModelRegistry:
    from ._holmesgpt_upstream import quiet_templates  # noqa: PLC0415 - the holmesgpt extra

    with quiet_templates():
        return upstream_config(config).llm_model_registry


async def _in_thread_executor(config: HolmesGPTConfig) -> ToolExecutor:
    return await anyio.to_thread.run_sync(_tool_executor, config)


async def _in_thread_registry(config: HolmesGPTConfig) -> LLMModelRegistry:
    return await anyio.to_thread.run_sync(_model_registry, config)


def derive_tool_executor(reloader: HotReloader[HolmesGPTConfig]) -> Derived[ToolExecutor]:
    """holmesgpt's server tool executor, rebuilt when `EXECUTOR_KEYS` change. Derive it
    before ``async with`` starts the reloader (its build is awaited there)."""
    return reloader.derive(_in_thread_executor, on=EXECUTOR_KEYS, name="tool_executor")


def derive_model_registry(reloader: HotReloader[HolmesGPTConfig]) -> Derived[LLMModelRegistry]:
    """holmesgpt's model registry, rebuilt when `MODEL_KEYS` change (before ``async with``)."""
    return reloader.derive(_in_thread_registry, on=MODEL_KEYS, name="model_registry")
