"""``config.yaml`` + ``sdk-config.yaml``, merged as the HolmesGPT API service merged them.

The service (jordigilh/kubernaut ``holmesgpt-api/``, Issue #390, last at ba67a288) split its
config in two ConfigMaps: the service's ``config.yaml`` and the SDK's ``sdk-config.yaml``
(``llm``, ``toolsets``, ``mcp_servers``), mounted at ``/etc/holmesgpt/sdk/``. Its
``ConfigManager`` merged the SDK file at every reload with ``merge_sdk_config``: only those
three keys are taken from it; each is merged one level deep (``config[key].update(sdk[key])``:
an SDK entry replaces the main file's entry of the same name whole, the others of both stay),
the SDK file winning; a missing or broken SDK file was logged and skipped. Here the two files
are two layers of one source: both watched, one kubelet update of both one commit, and a value
the schema refuses is named with the file and line it came from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ._errors import ConfigValidationError
from ._layers import Layer, Layers
from ._logging import ContextLogger, capped
from ._provenance import Document, NodePath, Origin, Parsed, merge

__all__ = ["SDK_MERGE_KEYS", "ServiceLayers"]

#: The keys the service takes from ``sdk-config.yaml`` (``sdk_loader.SDK_MERGE_KEYS``).
SDK_MERGE_KEYS = ("llm", "toolsets", "mcp_servers")


class ServiceLayers(Layers):
    """``config.yaml`` then ``sdk-config.yaml`` (optional, fallible), merged as the service did.

    A missing SDK file logs ``holmes_sdk_config_missing`` (a warning) at each version read
    without it, and the main file alone is the config, as the service ran. An SDK file that is
    not a mapping with ``llm:`` is invalid (the service refused it too); one that is invalid
    at start, with no last-known-good copy, starts the reloader on the main file alone,
    ``degraded`` (`Layer` ``fallible``). SDK keys other than `SDK_MERGE_KEYS` are ignored, as
    the service ignored them, and named (``holmes_sdk_keys_ignored``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sdk_config: str | os.PathLike[str],
        **file_options: Any,
    ) -> None:
        super().__init__(path, Layer(sdk_config, optional=True, fallible=True), **file_options)
        self.sdk_path = self.layers[1].uri
        self._log = ContextLogger("hotreload.holmes", sdk_config=self.sdk_path)

    def _combine(
        self, parsed: Sequence[Parsed | None], dropped: Sequence[bool], env: Parsed | None
    ) -> Document:
        main, sdk = parsed
        layers = [] if main is None else [main]
        if sdk is None:
            if not dropped[1]:  # a degraded start left it out: that is logged as such
                self._log.warning(
                    "holmes_sdk_config_missing",
                    detail="running on the main config alone: no llm, toolsets or "
                    "mcp_servers from the SDK file",
                )
        else:
            layers = _service_merge(main, sdk, self.sdk_path, self._log)
        return merge(layers if env is None else [*layers, env], self.uri)


def _service_merge(
    main: Parsed | None, sdk: Parsed, sdk_path: str, log: ContextLogger
) -> list[Parsed]:
    """The two layers to deep-merge for ``merge_sdk_config``'s result: the main file less the
    entries the SDK file replaces whole, and the SDK file's `SDK_MERGE_KEYS`."""
    data = sdk.data
    if not isinstance(data, dict) or "llm" not in data:
        what = "empty" if data is None else "not a mapping" if not isinstance(data, dict) else ""
        raise ConfigValidationError(
            sdk_path,
            f"the SDK config is {what or 'missing its required `llm` section'}: the service "
            "needs at least llm.provider and llm.model from it",
            field_path="llm",
            line=1,
            column=1,
        )
    ignored = [str(key) for key in data if key not in SDK_MERGE_KEYS]
    if ignored:
        log.warning("holmes_sdk_keys_ignored", keys=capped(ignored), count=len(ignored))
    taken = _only(sdk, SDK_MERGE_KEYS)
    if main is None or not isinstance(main.data, dict):
        return [taken] if main is None else [main, taken]
    replaced: list[NodePath] = []
    for key, value in taken.data.items():
        if key not in main.data:
            continue
        mine = main.data[key]
        if isinstance(mine, dict) and isinstance(value, dict):
            replaced.extend((key, name) for name in value if name in mine)
        else:
            replaced.append((key,))
    return [_without(main, replaced), taken]


def _only(parsed: Parsed, keys: Iterable[str]) -> Parsed:
    """``parsed`` with only the top-level ``keys`` (and their origins)."""
    wanted = set(keys)
    data = {k: v for k, v in parsed.data.items() if k in wanted}

    def kept(path: NodePath) -> bool:
        return not path or path[0] in wanted

    return Parsed(data, _paths(parsed.values, kept), _paths(parsed.keys, kept))


def _without(parsed: Parsed, paths: Sequence[NodePath]) -> Parsed:
    """``parsed`` with the entries at ``paths`` (one or two keys deep) removed, and every
    origin under them."""
    if not paths:
        return parsed
    data = dict(parsed.data)
    for path in paths:
        if len(path) == 1:
            data.pop(path[0], None)
        else:
            section = dict(data[path[0]])
            section.pop(path[1], None)
            data[path[0]] = section

    def kept(path: NodePath) -> bool:
        return not any(path[: len(gone)] == gone for gone in paths)

    return Parsed(data, _paths(parsed.values, kept), _paths(parsed.keys, kept))


def _paths(
    table: Mapping[NodePath, Origin], keep: Callable[[NodePath], bool]
) -> dict[NodePath, Origin]:
    return {path: origin for path, origin in table.items() if keep(path)}
