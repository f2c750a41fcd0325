"""Keys a document has that its schema does not know: found, located, and given a suggestion.

msgspec either refuses an unknown key (``forbid_unknown_fields=True``: the first one, fatal) or
drops it without a word (the default). A schema opts into this module by leaving unknown fields
allowed: every key a struct does not declare is then *named* (dotted path, file line, and
"did you mean" when it is close to a declared one) instead of silently dropped, and the reloader
logs each new set once. ``strict=True`` turns them into a validation error. Real config files
carry sections a schema may not know; a typo inside a known section (``llm.temprature``) is the
case that matters, since the value it was meant to set silently keeps its default.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from ._provenance import dotted
from ._schema import is_pydantic_model, model_fields

__all__ = ["KeyPath", "UnknownKey", "describe", "find_unknown"]

_NONE = type(None)

KeyPath = tuple[str | int, ...]
"""Mapping keys and list indexes from the document's root."""


@dataclass(frozen=True, slots=True)
class UnknownKey:
    """A key the schema does not declare. ``suggestion`` is the full path of a close known key;
    ``source`` the file (or layer) that has it."""

    path: KeyPath
    suggestion: str | None = None
    line: int | None = None
    column: int | None = None
    source: str | None = None

    @property
    def dotted(self) -> str:
        return dotted(self.path)

    def __str__(self) -> str:
        where = "" if self.line is None else f" (line {self.line})"
        hint = "" if self.suggestion is None else f": did you mean `{self.suggestion}`?"
        return f"unknown key `{self.dotted}`{where}{hint}"


def describe(keys: typing.Sequence[UnknownKey]) -> str:
    """One line naming every unknown key, for an error message or a log field."""
    return "; ".join(str(key) for key in keys)


def find_unknown(schema: Any, data: Any) -> list[UnknownKey]:
    """Every key of ``data`` that ``schema`` (a msgspec Struct, dataclass or TypedDict, and
    what they contain) does not declare, in document order. Positions are left for the caller
    (they need the raw bytes). Structs that forbid unknown fields are skipped: msgspec refuses
    their unknown keys itself."""
    return [UnknownKey(path, suggestion) for path, suggestion in _walk(schema, data, ())]


def _walk(tp: Any, data: Any, prefix: KeyPath) -> Iterator[tuple[KeyPath, str | None]]:
    tp = _strip(tp)
    fields = _fields_of(tp)
    if fields is not None:
        if not isinstance(data, dict):
            return
        declared, forbids = fields
        for key, value in data.items():
            name = str(key)
            if name in declared:
                yield from _walk(declared[name], value, (*prefix, name))
            elif not forbids:
                close = difflib.get_close_matches(name, list(declared), n=1, cutoff=0.75)
                yield (*prefix, name), (dotted((*prefix, close[0])) if close else None)
        return
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (dict, typing.get_origin(typing.Mapping[str, int])) and len(args) == 2:
        if isinstance(data, dict):
            for key, value in data.items():
                yield from _walk(args[1], value, (*prefix, str(key)))
    elif origin in (list, tuple, set, frozenset, typing.get_origin(typing.Sequence[int])):
        if isinstance(data, list):
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                for index, (item_type, item) in enumerate(zip(args, data, strict=False)):
                    yield from _walk(item_type, item, (*prefix, index))
            elif args:
                for index, item in enumerate(data):
                    yield from _walk(args[0], item, (*prefix, index))
    elif args and origin is not typing.Literal:  # a Union: follow the member that fits
        member = _member_for(args, data)
        if member is not None:
            yield from _walk(member, data, prefix)


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _fields_of(tp: Any) -> tuple[dict[str, Any], bool] | None:
    """A record type's fields by their name in the file, and whether it forbids others."""
    if not isinstance(tp, type):
        return None
    return _record_fields(tp)


@functools.lru_cache(maxsize=512)  # type hints are resolved once per type, not per reload
def _record_fields(tp: type) -> tuple[dict[str, Any], bool] | None:
    if issubclass(tp, msgspec.Struct):
        hints = typing.get_type_hints(tp, include_extras=True)
        declared = {f.encode_name: hints[f.name] for f in msgspec.structs.fields(tp)}
        config = tp.__struct_config__
        if config.tag_field is not None:
            declared.setdefault(config.tag_field, str)
        return declared, config.forbid_unknown_fields
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp, include_extras=True)
        return {f.name: hints[f.name] for f in dataclasses.fields(tp)}, False
    if typing.is_typeddict(tp):
        return dict(typing.get_type_hints(tp, include_extras=True)), False
    if is_pydantic_model(tp):
        # extra="forbid": pydantic refuses them itself; "allow": they are config, not unknown.
        closed = tp.model_config.get("extra") in ("forbid", "allow")  # type: ignore[attr-defined]
        return dict(model_fields(tp) or ()), closed
    return None


def _member_for(members: tuple[Any, ...], data: Any) -> Any:
    """The one Union member a value can be checked against; None when it is ambiguous."""
    stripped = [_strip(m) for m in members if m is not _NONE]
    if isinstance(data, dict):
        records = [m for m in stripped if _fields_of(m) is not None]
        mappings = [m for m in stripped if typing.get_origin(m) is dict]
        candidates = records or mappings
    elif isinstance(data, list):
        candidates = [m for m in stripped if typing.get_origin(m) in (list, tuple, set, frozenset)]
    else:
        return None
    if len(candidates) == 1:
        return candidates[0]
    tagged = [m for m in candidates if _tag_matches(m, data)]
    return tagged[0] if len(tagged) == 1 else None


def _tag_matches(tp: Any, data: Any) -> bool:
    if not (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
        return False
    config = tp.__struct_config__
    return config.tag_field is not None and data.get(config.tag_field) == config.tag
