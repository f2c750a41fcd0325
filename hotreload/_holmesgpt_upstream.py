"""holmesgpt's own models decide what `hotreload.holmesgpt` accepts (the ``holmesgpt`` extra).

Imported only when a `hotreload.holmesgpt` schema is first used and the ``holmes`` package is
installed. Every new version is validated as holmesgpt validates it: the whole file by its
``holmes.config.Config``; each ``toolsets``/``mcp_servers`` entry by the class its loader picks
for it (``load_toolsets_from_config``: a built-in's overrides, a custom YAML toolset, an MCP
server, an HTTP, database or MongoDB toolset); an MCP server's ``config`` by the
``MCPConfig``/``StdioMCPConfig`` it connects with; a ``model_list.yaml`` entry by its
``ModelEntry``. What holmesgpt refuses is refused, with the file, line and column added; where
it would load the file and mark a toolset failed, the version is refused too (the running
toolset would be lost). The config readers get is the hand model's view of the same data.

Keys holmesgpt ignores without a word (a tool's, a parameter's, a prerequisite's, an MCP
config's) are named here with a "did you mean" from holmesgpt's own field names; ``strict``
refuses them. Not reproduced: ``{{ env.X }}`` substitution (it depends on the reading host)
and the checks holmesgpt makes when it connects.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import importlib.metadata
import os
import re
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

import msgspec

# litellm (imported by holmes) fetches its model price list over the network at import unless
# told to use the copy it ships: a config check must not call out.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pydantic

# Its dependencies warn at import about their own dependencies (typer about click's
# deprecations): not this package's to act on, and an application's ``-W error`` must not turn
# a config check into an ImportError.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    from holmes.config import Config
    from holmes.core.llm import ModelEntry
    from holmes.core.tools import (
        StaticPrerequisite,
        ToolParameter,
        ToolsetCommandPrerequisite,
        ToolsetEnvironmentPrerequisite,
        ToolsetYamlFromConfig,
        YAMLTool,
        YAMLToolset,
    )
    from holmes.core.toolset_manager import (
        DEPRECATED_TOOLSET_NAMES,
        REMOVED_TOOLSET_NAMES,
    )
    from holmes.core.transformers.transformer import Transformer
    from holmes.plugins.toolsets import load_builtin_toolsets
    from holmes.plugins.toolsets.database.database import DatabaseToolset
    from holmes.plugins.toolsets.http.http_toolset import HttpToolset
    from holmes.plugins.toolsets.mcp.toolset_mcp import (
        MCPConfig,
        MCPMode,
        RemoteMCPToolset,
        StdioMCPConfig,
    )
    from holmes.plugins.toolsets.mongodb.mongodb import MongoDBToolset

from ._located import LocatedRefusal, problem_at, with_typo
from ._provenance import dotted
from ._schema import RICH, MsgspecSchema, Problem
from ._unknown import UnknownKey
from .holmesgpt import _not_builtin

__all__ = [
    "VERSION",
    "Config",
    "UpstreamRefusal",
    "UpstreamSchema",
    "quiet_templates",
    "validate_model_entry",
]

T = TypeVar("T")

VERSION = importlib.metadata.version("holmesgpt")

Loc = tuple[str | int, ...]

#: The class holmesgpt's loader builds a toolset entry with, by its ``type``.
_BY_TYPE: dict[str, type[pydantic.BaseModel]] = {
    "mcp": RemoteMCPToolset,
    "http": HttpToolset,
    "database": DatabaseToolset,
    "mongodb": MongoDBToolset,
}
_SECTIONS = ("toolsets", "mcp_servers")
_MULTIPLE = re.compile(r"multiple values for keyword argument '(?P<f>\w+)'")


class UpstreamRefusal(LocatedRefusal):
    """holmesgpt refused a document: its message, and where (``loc``, in the document)."""


@contextlib.contextmanager
def quiet_templates() -> Iterator[None]:
    """holmesgpt reads its toolsets' instruction templates with ``open(path).read()``: each
    file closes as it is dropped, with a ResourceWarning that an application running with
    warnings as errors gets as an unraisable exception. Upstream's, not the user's: ignored
    while upstream loads toolsets, and only for files of its own package."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=_UPSTREAM_FILE, category=ResourceWarning, append=False
        )
        yield


_UPSTREAM_FILE = r"unclosed file <_io\.TextIOWrapper name='[^']*[/\\]holmes[/\\]"


@functools.cache
def builtin_names() -> frozenset[str]:
    """The names of holmesgpt's built-in toolsets (its loader treats those entries as
    overrides); loaded once per process."""
    with quiet_templates():
        return frozenset(toolset.name for toolset in load_builtin_toolsets())


def _plain(value: Any) -> Any:
    """A mutable deep copy (holmesgpt's loaders change what they are given)."""
    if isinstance(value, Mapping):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return copy.copy(value)


def _refusal(exc: pydantic.ValidationError, prefix: Loc, model: Any) -> UpstreamRefusal:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    message = first["msg"]
    kind = first["type"]
    loc = (*prefix, *first["loc"])
    if kind == "extra_forbidden":
        fields = list(getattr(model, "model_fields", {}))
        close = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.75)
        if close:
            message += f" (did you mean `{close[0]}`?)"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return UpstreamRefusal(
        f"holmesgpt {VERSION} refuses it: {message}",
        loc,
        at_key=kind == "extra_forbidden",
        missing=kind == "missing",
    )


def validate_config(data: Any) -> None:
    """``~/.holmes/config.yaml``: holmesgpt's ``Config``, then each toolset entry."""
    try:
        Config.model_validate(_plain(data))
    except pydantic.ValidationError as exc:
        raise _refusal(exc, (), Config) from None
    _validate_entries(data)


def validate_toolset_file(data: Any) -> None:
    """A toolsets file (``custom_toolsets``, the chart's ``custom_toolset.yaml``), as its
    ``_load_toolsets_from_paths`` reads one: entries, and at least one of them."""
    if not isinstance(data, Mapping):
        raise UpstreamRefusal(f"holmesgpt {VERSION} reads a toolsets file as a mapping", ())
    for section in _SECTIONS:
        if data.get(section) is not None and not isinstance(data[section], Mapping):
            raise UpstreamRefusal(f"holmesgpt {VERSION}: `{section}` is a mapping", (section,))
    if not data.get("toolsets") and not data.get("mcp_servers"):
        raise UpstreamRefusal(
            f"holmesgpt {VERSION} refuses it: no 'toolsets' or 'mcp_servers' key found", ()
        )
    _validate_entries(data)


def _validate_entries(data: Mapping[str, Any]) -> None:
    for section in _SECTIONS:
        for name, entry in (data.get(section) or {}).items():
            _validate_entry(section, str(name), entry)


def _validate_entry(section: str, name: str, raw: Any) -> None:
    """One entry, built as ``ToolsetManager._load_toolsets_from_config`` and
    ``load_toolsets_from_config`` build it (where they would mark it failed: refused)."""
    where: Loc = (section, name)
    if name in REMOVED_TOOLSET_NAMES:
        return  # skipped by holmesgpt with a warning
    if not isinstance(raw, Mapping):
        raise UpstreamRefusal(f"holmesgpt {VERSION} refuses it: a toolset is a mapping", where)
    entry = _plain(raw)
    if section == "mcp_servers":
        entry["type"] = "mcp"
    known = builtin_names()
    renamed = DEPRECATED_TOOLSET_NAMES.get(name, name)
    builtin = (renamed if renamed in known else name) in known
    if not builtin:
        entry.setdefault("type", "custom")
        entry["enabled"] = entry.get("enabled", True) is not False
    model = _BY_TYPE.get(entry.get("type") or "built-in")
    if model is None:
        model = ToolsetYamlFromConfig if builtin else YAMLToolset
    try:
        built = model(**entry, name=renamed)
    except pydantic.ValidationError as exc:
        refusal = _refusal(exc, where, model)
        if not builtin and refusal.missing and len(refusal.loc) == 3:
            refusal.message += f" ({_not_builtin(name)})"
        raise refusal from None
    except Exception as exc:  # noqa: BLE001 - what holmesgpt's loader catches, it fails the toolset
        raise _located(exc, where, entry) from None
    if isinstance(built, RemoteMCPToolset):
        _validate_mcp_config(built.config, where)


def _located(exc: Exception, where: Loc, entry: dict[str, Any]) -> UpstreamRefusal:
    """A loader failure that is not a validation error, pinned to the key or tool it is of."""
    message = f"holmesgpt {VERSION} fails this toolset: {type(exc).__name__}: {exc}"
    repeated = _MULTIPLE.search(str(exc))
    if repeated:
        return UpstreamRefusal(message, (*where, repeated.group("f")), at_key=True)
    for index, tool in enumerate(entry.get("tools") or []):
        try:
            YAMLTool(**tool)
        except Exception as tool_exc:  # noqa: BLE001 - the first tool that fails alone
            detail = f"{type(tool_exc).__name__}: {tool_exc}"
            if isinstance(tool, Mapping) and tool.get("command") is None is tool.get("script"):
                detail = "a tool needs a `command` or a `script`"
            return UpstreamRefusal(
                f"holmesgpt {VERSION} fails this toolset: {detail}", (*where, "tools", index)
            )
    return UpstreamRefusal(message, where)


def _validate_mcp_config(config: Any, where: Loc) -> None:
    """What ``RemoteMCPToolset.prerequisites_callable`` checks before it connects."""
    at: Loc = (*where, "config")
    if not config:
        raise UpstreamRefusal(f"holmesgpt {VERSION} refuses it: Config is required", where)
    mode = config.get("mode", MCPMode.SSE.value)
    allowed = [m.value for m in MCPMode]
    if mode not in allowed:
        raise UpstreamRefusal(
            f'holmesgpt {VERSION} refuses it: invalid mode "{mode}", allowed modes are '
            + ", ".join(allowed),
            (*at, "mode"),
        )
    model: Any = StdioMCPConfig if mode == MCPMode.STDIO.value else MCPConfig
    try:
        model(**config)
    except pydantic.ValidationError as exc:
        raise _refusal(exc, at, model) from None


def validate_model_entry(name: str, entry: Any) -> UpstreamRefusal | None:
    """A ``model_list.yaml`` entry as ``LLMModelRegistry`` reads it: its ``ModelEntry``."""
    try:
        ModelEntry.model_validate(_plain(entry))
    except pydantic.ValidationError as exc:
        return _refusal(exc, (name,), ModelEntry)
    return None


# -- keys holmesgpt ignores ------------------------------------------------------------------


def _names(*models: Any) -> list[str]:
    return list(dict.fromkeys(n for m in models for n in m.model_fields))


_TOOL = _names(YAMLTool)
_PARAMETER = _names(ToolParameter)
_TRANSFORMER = _names(Transformer)
_PREREQUISITE = _names(
    StaticPrerequisite, ToolsetCommandPrerequisite, ToolsetEnvironmentPrerequisite
)
_MCP_CONFIG = _names(MCPConfig, StdioMCPConfig)


def unknown_keys(data: Any, *, top: list[str] | None = None) -> list[UnknownKey]:
    """Keys holmesgpt reads past: of a tool, a parameter, a transformer, a prerequisite, an MCP
    server's config (and, ``top`` given, of the document itself), with a suggestion among its
    field names. Where holmesgpt refuses unknown keys (a toolset, its ``Config``) it said so."""
    found: list[tuple[Loc, list[str]]] = []
    if not isinstance(data, Mapping):
        return []
    if top is not None:
        found.extend(((str(k),), top) for k in data if k not in top)
    for section in _SECTIONS:
        entries = data.get(section)
        if not isinstance(entries, Mapping):
            continue
        for name, entry in entries.items():
            if isinstance(entry, Mapping):
                found.extend(_in_toolset((section, str(name)), entry, section == "mcp_servers"))
    keys = []
    for path, names in found:
        close = difflib.get_close_matches(str(path[-1]), names, n=1, cutoff=0.75)
        keys.append(UnknownKey(path, dotted((*path[:-1], close[0])) if close else None))
    return keys


def _in_toolset(at: Loc, toolset: Mapping[str, Any], mcp: bool) -> Iterator[tuple[Loc, list[str]]]:
    for index, tool in enumerate(_items(toolset.get("tools"))):
        yield from _extra((*at, "tools", index), tool, _TOOL)
        if isinstance(tool, Mapping):
            for name, parameter in _entries(tool.get("parameters")):
                yield from _in_parameter((*at, "tools", index, "parameters", name), parameter)
            for t, transformer in enumerate(_items(tool.get("transformers"))):
                yield from _extra(
                    (*at, "tools", index, "transformers", t), transformer, _TRANSFORMER
                )
    for t, transformer in enumerate(_items(toolset.get("transformers"))):
        yield from _extra((*at, "transformers", t), transformer, _TRANSFORMER)
    for p, prerequisite in enumerate(_items(toolset.get("prerequisites"))):
        yield from _extra((*at, "prerequisites", p), prerequisite, _PREREQUISITE)
    if mcp:
        yield from _extra((*at, "config"), toolset.get("config"), _MCP_CONFIG)


def _in_parameter(at: Loc, parameter: Any) -> Iterator[tuple[Loc, list[str]]]:
    yield from _extra(at, parameter, _PARAMETER)
    if not isinstance(parameter, Mapping):
        return
    for name, sub in _entries(parameter.get("properties")):
        yield from _in_parameter((*at, "properties", name), sub)
    if isinstance(parameter.get("items"), Mapping):
        yield from _in_parameter((*at, "items"), parameter["items"])
    for index, sub in enumerate(_items(parameter.get("any_of"))):
        yield from _in_parameter((*at, "any_of", index), sub)


def _extra(at: Loc, record: Any, names: list[str]) -> Iterator[tuple[Loc, list[str]]]:
    if isinstance(record, Mapping):
        for key in record:
            if key not in names:
                yield (*at, str(key)), names


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _entries(value: Any) -> list[tuple[str, Any]]:
    return [(str(k), v) for k, v in value.items()] if isinstance(value, Mapping) else []


# -- the adapter -----------------------------------------------------------------------------


class UpstreamSchema(Generic[T]):
    """A `hotreload.holmesgpt` schema validated by holmesgpt, its config the hand model's view.

    ``validate`` is holmesgpt's verdict on the raw document. Past it, the view is converted
    leniently (keys holmesgpt knows that the view does not are left out of it, as keys it
    ignores are), so the view never refuses what holmesgpt accepts.
    """

    __slots__ = ("_view", "convert", "schema", "to_builtins", "top", "validate")

    errors: tuple[type[Exception], ...] = (UpstreamRefusal, msgspec.ValidationError)

    def __init__(
        self, schema: type[T], validate: Callable[[Any], None], *, top: list[str] | None
    ) -> None:
        self.schema = schema
        self.validate = validate
        self.top = top
        self._view = MsgspecSchema(schema)
        self.to_builtins: Callable[[Any], Any] = functools.partial(
            msgspec.to_builtins, builtin_types=RICH, order="sorted"
        )
        self.convert: Callable[[Any], T] = self._convert

    def _convert(self, data: Any) -> T:
        self.validate(data)
        view: T = msgspec.convert(_prune(self.schema, data), self.schema, strict=False)
        return view

    def has_field(self, name: str) -> bool:
        return self._view.has_field(name)

    def find_unknown(self, data: Any) -> list[UnknownKey]:
        return unknown_keys(data, top=self.top)

    def problem(self, exc: Exception, data: Any) -> Problem:
        if not isinstance(exc, UpstreamRefusal):  # the view lags holmesgpt: say so
            problem = self._view.problem(exc, data)
            message = f"holmesgpt {VERSION} accepts it, hotreload's view does not: "
            return Problem(message + problem.message, problem.located, problem.shown)
        return with_typo(problem_at(exc, data), unknown_keys(data))


def _prune(tp: Any, data: Any) -> Any:
    """``data`` without the keys a closed record of the view does not declare (holmesgpt
    accepted them: they are not unknown, only not in the view)."""
    record = _closed_fields(tp)
    if record is None or not isinstance(data, Mapping):
        return data
    fields, closed = record
    out = {}
    for key, value in data.items():
        sub = fields.get(key)
        if sub is None:
            if closed:
                continue
            out[key] = value
        else:
            out[key] = _prune_in(sub, value)
    return out


def _prune_in(tp: Any, value: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if _closed_fields(tp) is not None:
        return _prune(tp, value)
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin is dict and len(args) == 2 and isinstance(value, Mapping):
        return {k: _prune_in(args[1], v) for k, v in value.items()}
    if origin is list and args and isinstance(value, list):
        return [_prune_in(args[0], v) for v in value]
    if args and origin is not typing.Literal:
        records = [a for a in args if _closed_fields(a) is not None]
        if len(records) == 1:
            return _prune_in(records[0], value)
        dicts = [a for a in args if typing.get_origin(a) is dict]
        if len(dicts) == 1 and isinstance(value, Mapping):
            return _prune_in(dicts[0], value)
    return value


@functools.cache
def _closed_fields(tp: Any) -> tuple[dict[str, Any], bool] | None:
    if not (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
        return None
    hints = typing.get_type_hints(tp, include_extras=True)
    fields = {f.encode_name: hints[f.name] for f in msgspec.structs.fields(tp)}
    return fields, tp.__struct_config__.forbid_unknown_fields
