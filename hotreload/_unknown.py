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
from dataclasses import dataclass
from typing import Any

import msgspec

from ._logging import LOG_LIST_MAX
from ._provenance import dotted
from ._schema import is_pydantic_model, model_fields

__all__ = ["KeyPath", "UnknownKey", "UnknownKeys", "describe", "find_unknown"]

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


class UnknownKeys(tuple[UnknownKey, ...]):
    """A version's unknown keys, with what the reloader reports of them worked out once, where
    the version is evaluated (the worker thread for a large document): their dotted names and
    the log line's capped list. On the loop, twenty thousand keys formatted one by one were a
    quarter of a second."""

    names: tuple[str, ...]
    shown: list[str]

    def __new__(cls, keys: typing.Iterable[UnknownKey] = ()) -> UnknownKeys:
        self = super().__new__(cls, keys)
        self.names = tuple(key.dotted for key in self)
        # Only the keys the line names are formatted (as `capped` would show them).
        self.shown = [str(key) for key in self[:LOG_LIST_MAX]]
        if len(self) > LOG_LIST_MAX:
            self.shown.append(f"… {len(self) - LOG_LIST_MAX} more")
        return self


def describe(keys: typing.Sequence[UnknownKey]) -> str:
    """One line naming every unknown key, for an error message or a log field."""
    return "; ".join(str(key) for key in keys)


#: Unknown keys of one document that get a "did you mean" (difflib costs about 100 µs a key:
#: a document of thousands of stray keys must not pay that for each). The rest are named
#: and located all the same, without a suggestion.
MAX_SUGGESTIONS = 32


def find_unknown(schema: Any, data: Any) -> list[UnknownKey]:
    """Every key of ``data`` that ``schema`` (a msgspec Struct, dataclass or TypedDict, and
    what they contain) does not declare, in document order. Positions are left for the caller
    (they need the raw bytes). Structs that forbid unknown fields are skipped: msgspec refuses
    their unknown keys itself. The first `MAX_SUGGESTIONS` get a suggestion.

    The walk follows a plan made once per schema type: it goes only where a record can be,
    never into ``Any`` or ``dict[str, Any]`` (free-form) subtrees.
    """
    plan = _plan_for(schema)
    if plan is None:
        return []
    found: list[tuple[KeyPath, _Record, str]] = []
    _run(plan, data, (), found)
    keys = []
    for count, (path, record, name) in enumerate(found):
        close = _suggest(record, name) if count < MAX_SUGGESTIONS else None
        keys.append(UnknownKey(path, None if close is None else dotted((*path[:-1], close))))
    return keys


class _Record:
    """A record type's fields by their name in the file (each with its own plan, None where
    there is nothing to look for), and whether it forbids others."""

    __slots__ = ("declared", "forbids", "names")

    def __init__(self, names: list[str], forbids: bool) -> None:
        self.declared: dict[str, _Plan | None] = {}
        self.names = names
        self.forbids = forbids


class _Values:
    """A mapping whose values, or a sequence whose items, all follow one plan."""

    __slots__ = ("item", "mapping")

    def __init__(self, item: _Plan, *, mapping: bool) -> None:
        self.item = item
        self.mapping = mapping


class _Fixed:
    """A fixed-length tuple: one plan per position."""

    __slots__ = ("items",)

    def __init__(self, items: list[_Plan | None]) -> None:
        self.items = items


#: A Union member a value may be checked against: its plan, and the tag that picks it.
_Member = tuple["_Plan | None", "tuple[str, Any] | None"]


class _Union:
    """A Union: the members a mapping or a list can be checked against (the one that fits)."""

    __slots__ = ("lists", "mappings")

    def __init__(self, mappings: list[_Member], lists: list[_Member]) -> None:
        self.mappings = mappings
        self.lists = lists


_Plan = _Record | _Values | _Fixed | _Union
_MISSING: Any = object()
_SEQUENCES = (list, tuple, set, frozenset, typing.get_origin(typing.Sequence[int]))
_MAPPINGS = (dict, typing.get_origin(typing.Mapping[str, int]))


def _plan_for(schema: Any) -> _Plan | None:
    try:
        return _cached_plan(schema)
    except TypeError:  # an unhashable annotation somewhere: planned for this call only
        return _plan(schema, {})


@functools.lru_cache(maxsize=256)  # once per schema, not per reload
def _cached_plan(schema: Any) -> _Plan | None:
    return _plan(schema, {})


def _plan(tp: Any, records: dict[type, _Record]) -> _Plan | None:
    """What to look for under a value of type ``tp``; None: nothing (no record can be there).

    ``records`` holds the records planned so far, so a recursive schema ends."""
    tp = _strip(tp)
    fields = _fields_of(tp)
    if fields is not None:
        found = records.get(tp)
        if found is not None:
            return found
        declared, forbids = fields
        record = _Record(list(declared), forbids)
        records[tp] = record
        record.declared.update((name, _plan(sub, records)) for name, sub in declared.items())
        return record
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in _MAPPINGS and len(args) == 2:
        value = _plan(args[1], records)
        return None if value is None else _Values(value, mapping=True)
    if origin in _SEQUENCES:
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            items = [_plan(arg, records) for arg in args]
            return _Fixed(items) if any(item is not None for item in items) else None
        if args:
            item = _plan(args[0], records)
            return None if item is None else _Values(item, mapping=False)
        return None
    if args and origin is not typing.Literal:  # a Union: follow the member that fits
        return _union(args, records)
    return None


def _union(members: tuple[Any, ...], records: dict[type, _Record]) -> _Union | None:
    """`_member_for`'s choice, worked out per shape of value ahead of time."""
    stripped = [_strip(m) for m in members if m is not _NONE]
    typed = [m for m in stripped if _fields_of(m) is not None]
    mappings = typed or [m for m in stripped if typing.get_origin(m) is dict]
    lists = [m for m in stripped if typing.get_origin(m) in (list, tuple, set, frozenset)]
    for_mappings: list[_Member] = [(_plan(m, records), _tag_of(m)) for m in mappings]
    for_lists: list[_Member] = [(_plan(m, records), None) for m in lists]
    if all(plan is None for plan, _ in for_mappings + for_lists):
        return None
    return _Union(for_mappings, for_lists)


def _tag_of(tp: Any) -> tuple[str, Any] | None:
    if not (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
        return None
    config = tp.__struct_config__
    return None if config.tag_field is None else (config.tag_field, config.tag)


def _run(
    plan: _Plan, data: Any, prefix: KeyPath, found: list[tuple[KeyPath, _Record, str]]
) -> None:
    if isinstance(plan, _Record):
        if not isinstance(data, dict):
            return
        declared = plan.declared
        for key, value in data.items():
            name = key if isinstance(key, str) else str(key)
            sub = declared.get(name, _MISSING)
            if sub is _MISSING:
                if not plan.forbids:
                    found.append(((*prefix, name), plan, name))
            elif sub is not None:
                _run(sub, value, (*prefix, name), found)
    elif isinstance(plan, _Values):
        if plan.mapping:
            if isinstance(data, dict):
                for key, value in data.items():
                    _run(plan.item, value, (*prefix, str(key)), found)
        elif isinstance(data, list):
            for index, item in enumerate(data):
                _run(plan.item, item, (*prefix, index), found)
    elif isinstance(plan, _Fixed):
        if isinstance(data, list):
            for index, (sub, item) in enumerate(zip(plan.items, data, strict=False)):
                if sub is not None:
                    _run(sub, item, (*prefix, index), found)
    else:
        member = _member(plan, data)
        if member is not None:
            _run(member, data, prefix, found)


def _member(plan: _Union, data: Any) -> _Plan | None:
    """The one member a value can be checked against; None when it is ambiguous."""
    if isinstance(data, dict):
        candidates = plan.mappings
    elif isinstance(data, list):
        candidates = plan.lists
    else:
        return None
    if len(candidates) == 1:
        return candidates[0][0]
    tagged = [sub for sub, tag in candidates if tag is not None and data.get(tag[0]) == tag[1]]
    return tagged[0] if len(tagged) == 1 else None


@functools.lru_cache(maxsize=4096)  # the same unknown key, reload after reload
def _suggest(record: _Record, name: str) -> str | None:
    close = difflib.get_close_matches(name, record.names, n=1, cutoff=0.75)
    return close[0] if close else None


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
