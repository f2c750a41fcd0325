"""The HolmesGPT API preset (BR-HAPI-199): its config schema and a ready-made reloader.

Hot-reloadable: ``llm.*``, ``toolsets.*`` and ``log_level``. Restart-required (the running value
stays until the pod restarts, with a warning and a gauge): ``api_host``, ``api_port``,
``auth_enabled``, ``kubernetes.*`` and ``data_storage_url``. Metrics are under ``holmesgpt_``.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ._fields import RestartRequired, Secret
from ._reloader import HotReloader

__all__ = ["NAMESPACE", "ApiConfig", "LLMConfig", "create_reloader"]

NAMESPACE = "holmesgpt"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class LLMConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Which model answers, and how it is called. All of it reloads live."""

    provider: Annotated[str, Meta(min_length=1)]
    model: Annotated[str, Meta(min_length=1)]
    endpoint: str | None = None
    max_retries: Annotated[int, Meta(ge=0, le=100)] = 3
    timeout_seconds: Annotated[int, Meta(gt=0, le=3600)] = 60
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] = 0.7
    max_tokens_per_request: Annotated[int, Meta(gt=0)] = 4096
    api_key: Annotated[str | None, Secret] = None


class ApiConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The HolmesGPT API's ConfigMap (``config.yaml``)."""

    llm: LLMConfig
    toolsets: dict[str, dict[str, Any]] = {}
    log_level: LogLevel = "INFO"
    api_host: Annotated[str, RestartRequired] = "0.0.0.0"  # noqa: S104 - a pod binds all
    api_port: Annotated[int, Meta(ge=1, le=65535), RestartRequired] = 8080
    auth_enabled: Annotated[bool, RestartRequired] = True
    kubernetes: Annotated[dict[str, Any], RestartRequired] = {}
    data_storage_url: Annotated[str | None, RestartRequired] = None


def create_reloader(
    path: str | os.PathLike[str] = "/etc/holmesgpt/config.yaml",
    *,
    name: str = "holmesgpt-api",
    **options: Any,
) -> HotReloader[ApiConfig]:
    """A `HotReloader` for `ApiConfig` with the Holmes metric namespace; options pass through."""
    options.setdefault("namespace", NAMESPACE)
    return HotReloader(path, schema=ApiConfig, name=name, **options)
