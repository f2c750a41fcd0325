"""The chart's ConfigMap hot-reloaded: what the pod restart on every toolset change becomes.

Upstream's chart puts a checksum of ``custom-toolsets-configmap`` on the pod, so each change
of ``toolsets``, ``mcp_servers`` or ``modelList`` restarts HolmesGPT. Here the ConfigMap is
mounted as kubelet mounts it (no ``subPath``) and both keys reload in place.
"""

from __future__ import annotations

from pathlib import Path

from hotreload import ReloadResult
from hotreload.holmesgpt import (
    McpServer,
    Toolset,
    create_model_list_reloader,
    create_toolset_reloader,
)
from hotreload.testing import ConfigMapVolume

DATA = Path(__file__).parent / "data" / "chart"
TOOLSETS = (DATA / "default-custom_toolset.yaml").read_text()
MODELS = (
    DATA / "docs-ai-providers-anthropic-0-model_list.yaml"
).read_text() + "\n"  # |- in the chart
AWS_TOOLSETS = (DATA / "aws-mcp-custom_toolset.yaml").read_text()


def enabled(toolsets: dict[str, Toolset] | None) -> list[str]:
    return sorted(name for name, t in (toolsets or {}).items() if t.enabled)


async def test_a_configmap_update_reloads_toolsets_and_models_in_place(tmp_path: Path) -> None:
    volume = ConfigMapVolume(
        tmp_path / "config", {"custom_toolset.yaml": TOOLSETS, "model_list.yaml": MODELS}
    )
    async with (
        create_toolset_reloader(volume.path("custom_toolset.yaml"), poll_interval=0) as toolsets,
        create_model_list_reloader(volume.path("model_list.yaml"), poll_interval=0) as models,
    ):
        assert "prometheus/metrics" in enabled(toolsets.config.toolsets)
        assert toolsets.config.mcp_servers == {}
        sonnet = models.config["claude-sonnet-4"]
        assert sonnet["thinking"] == {"budget_tokens": 10000, "type": "enabled"}  # for LiteLLM

        # `helm upgrade --set mcpAddons.aws.enabled=true`, another model: one kubelet swap
        more_models = MODELS + "gpt-4o:\n  model: openai/gpt-4o\n  reasoning_effort: low\n"
        volume.update({"custom_toolset.yaml": AWS_TOOLSETS, "model_list.yaml": more_models})
        await toolsets.wait_for_generation(2, timeout=10)
        await models.wait_for_generation(2, timeout=10)
        servers = toolsets.config.mcp_servers or {}
        assert isinstance(servers["aws_api"], McpServer)
        assert (
            servers["aws_api"].url == "http://holmes-aws-mcp-server.default.svc.cluster.local:8000"
        )
        assert models.config["gpt-4o"] == {"model": "openai/gpt-4o", "reasoning_effort": "low"}


async def test_a_typo_is_refused_and_the_running_toolsets_stay(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "config", {"custom_toolset.yaml": TOOLSETS})
    async with create_toolset_reloader(
        volume.path("custom_toolset.yaml"), poll_interval=0
    ) as reloader:
        before = reloader.snapshot
        volume.update(
            {"custom_toolset.yaml": TOOLSETS.replace("enabled: true", "enabeld: true", 1)}
        )
        outcome = await reloader.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=10)
        assert outcome.error is not None
        assert getattr(outcome.error, "field_path", None) == "toolsets.internet.enabeld"
        assert getattr(outcome.error, "line", None) == 3
        assert reloader.snapshot is before  # upstream would have run without `internet`

        volume.update(
            {"custom_toolset.yaml": TOOLSETS.replace("enabled: true", "enabled: false", 1)}
        )
        await reloader.wait_for_generation(2, timeout=10)
        assert "internet" not in enabled(reloader.config.toolsets)


async def test_a_model_entry_without_model_is_refused(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "config", {"model_list.yaml": MODELS})
    async with create_model_list_reloader(volume.path("model_list.yaml"), poll_interval=0) as r:
        before = r.snapshot
        volume.update({"model_list.yaml": MODELS + "broken:\n  temperature: 1\n"})
        outcome = await r.wait_for_outcome(ReloadResult.VALIDATION_FAILED, timeout=10)
        assert getattr(outcome.error, "field_path", None) == "broken.model"
        assert r.snapshot is before
