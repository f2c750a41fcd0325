"""What the engine needs from a schema library, and msgspec's answers (the default, fast path).

A schema turns parsed data into a frozen config, turns that config back into canonical
builtins (key-sorted, secrets in clear, dates and the like kept as objects), names where a
refusal happened, and lists its fields for the restart-required/secret walk. msgspec Structs
and frozen dataclasses are served here; a pydantic v2 model by `hotreload._pydantic`, imported
only when such a model is given, so ``import hotreload`` never imports pydantic.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import functools
import re
import sys
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from ._readonly import freezer

__all__ = ["Problem", "Schema", "json_builtins", "model_fields", "schema_for", "secret_type"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: Kept as objects by to_builtins: JSON-encodable for the hash and convertible straight back.
RICH = (_dt.datetime, _dt.date, _dt.time, _dt.timedelta, decimal.Decimal, uuid.UUID, bytes)
_MSGSPEC_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_PATH_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_UNKNOWN = re.compile(r"unknown field `(?P<f>[^`]+)`")
_MISSING = re.compile(r"missing required field `(?P<f>[^`]+)`")


@dataclass(frozen=True, slots=True)
class Problem:
    """Where a schema refused a document.

    ``located`` is the path to look up in the document (the deepest node that exists);
    ``shown`` the field path to name (it may end in a missing field); ``at_key`` points the
    position at the last key itself (an unknown field) rather than at its value.
    """

    message: str
    located: list[str | int]
    shown: list[str | int]
    at_key: bool = False


class Schema(Protocol[T_co]):
    """One schema class, as the pipeline uses it.

    ``convert`` and ``to_builtins`` are plain callables (not methods) so the msgspec path
    calls straight into C: the pipeline adds no Python frame to a reload. An adapter may also
    have ``find_unknown(data)``: the document's unknown keys (`UnknownKey` paths and
    suggestions), named by it instead of by the walk of the schema type.
    """

    @property
    def convert(self) -> Callable[[Any], T_co]:
        """Parsed data to a validated config; raises one of ``errors``."""

    @property
    def to_builtins(self) -> Callable[[Any], Any]:
        """A config to canonical builtins (key-sorted; secrets in clear, for the hash)."""

    @property
    def errors(self) -> tuple[type[Exception], ...]: ...

    def problem(self, exc: Exception, data: Any) -> Problem:
        """Where in ``data`` the refusal ``exc`` (one of ``errors``) happened."""

    def has_field(self, name: str) -> bool: ...


def schema_for(schema: type[T]) -> Schema[T]:
    """The adapter for ``schema``; refuses a mutable one (readers share the config).

    A schema type may bring its own: a classmethod ``__hotreload_adapter__()`` returning a
    `Schema` (or None for the default one), as `hotreload.holmesgpt` does when holmesgpt's own
    models are installed to decide validity.

    Adapters hold nothing per reloader, so reloaders of one schema share one: a thousand
    reloaders should not carry a thousand. The cache is bounded (a schema type made per call
    is not kept forever); an unhashable schema gets its own adapter.
    """
    key: Any = schema
    try:
        hash(key)
    except TypeError:
        return _adapter.__wrapped__(key)
    return _adapter(key)


@functools.lru_cache(maxsize=256)
def _adapter(schema: Any) -> Schema[Any]:
    own = getattr(schema, "__hotreload_adapter__", None)
    adapter: Any = own() if callable(own) else None  # a schema may bring its own (or None)
    if adapter is None and is_pydantic_model(schema):
        from ._pydantic import PydanticSchema  # noqa: PLC0415 - the optional extra, only here

        adapter = PydanticSchema(schema)
    elif adapter is None:
        adapter = MsgspecSchema(schema)
    # A dict, list or set anywhere in the config becomes read-only after conversion (and a
    # mutable record inside a frozen one is refused): a frozen record alone does not stop
    # ``config.items["x"] = y`` from changing every reader's config.
    adapter.convert = freezer(schema, adapter.convert)
    kind: Schema[Any] = adapter
    return kind


def is_pydantic_model(tp: Any) -> bool:
    """Without importing pydantic: a model class can only exist if pydantic is imported."""
    pydantic = sys.modules.get("pydantic")
    base = getattr(pydantic, "BaseModel", None)
    return base is not None and isinstance(tp, type) and issubclass(tp, base)


def model_fields(tp: Any) -> list[tuple[str, Any]] | None:
    """A record type's fields as (name in the file, annotation with its markers), or None."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        hints = typing.get_type_hints(tp, include_extras=True)
        return [(f.encode_name, hints[f.name]) for f in msgspec.structs.fields(tp)]
    if is_pydantic_model(tp):
        from ._pydantic import fields  # noqa: PLC0415 - the optional extra, only here

        return fields(tp)
    return None


def secret_type(tp: Any) -> bool:
    """A type whose values are secrets whatever the field is called (pydantic's SecretStr)."""
    if sys.modules.get("pydantic") is None:  # not imported (or blocked): no such type exists
        return False
    from ._pydantic import is_secret_type  # noqa: PLC0415 - the optional extra, only here

    return is_secret_type(tp)


def json_builtins(config: Any) -> Any:
    """JSON-ready builtins of a config (datetimes as strings; secrets in clear, to be masked
    by path by the caller), whichever library made it."""
    if is_pydantic_model(type(config)):
        from ._pydantic import json_builtins as dump  # noqa: PLC0415 - the optional extra

        return dump(config)
    return msgspec.to_builtins(config, order="sorted")


class MsgspecSchema(Generic[T]):
    """msgspec Structs and frozen dataclasses: ``msgspec.convert(strict=True)``."""

    __slots__ = ("convert", "schema", "to_builtins")

    errors: tuple[type[Exception], ...] = (msgspec.ValidationError,)

    def __init__(self, schema: type[T]) -> None:
        if (
            isinstance(schema, type)
            and issubclass(schema, msgspec.Struct)
            and not schema.__struct_config__.frozen
        ):
            raise TypeError(
                f"{schema.__qualname__} must be declared with frozen=True: readers share it"
            )
        params = getattr(schema, "__dataclass_params__", None)
        if params is not None and not params.frozen:
            raise TypeError(f"{schema.__qualname__} must be a frozen dataclass: readers share it")
        self.schema = schema
        self.convert: Callable[[Any], T] = functools.partial(
            msgspec.convert, type=schema, strict=True
        )
        self.to_builtins: Callable[[Any], Any] = functools.partial(
            msgspec.to_builtins, builtin_types=RICH, order="sorted"
        )

    def has_field(self, name: str) -> bool:
        schema: Any = self.schema
        if isinstance(schema, type) and issubclass(schema, msgspec.Struct):
            return name in schema.__struct_fields__
        return name in getattr(schema, "__dataclass_fields__", {})

    def problem(self, exc: Exception, data: Any) -> Problem:
        text = str(exc)
        found = _MSGSPEC_PATH.match(text)
        message = found.group("msg") if found else text
        tokens: list[str | int | None] = []
        for name, index in _PATH_TOKEN.findall(found.group("path") or "" if found else ""):
            tokens.append(name or (None if index == "..." else int(index)))
        located = self._name_dict_keys(data, tokens, text)
        shown = list(located)
        field = _UNKNOWN.search(message) or _MISSING.search(message)
        if field is None:
            return Problem(message, located, shown)
        shown.append(field.group("f"))
        if field.re is _UNKNOWN:
            return Problem(message, shown, shown, at_key=True)
        return Problem(message, located, shown)

    def _name_dict_keys(
        self, data: Any, tokens: list[str | int | None], text: str
    ) -> list[str | int]:
        """Fill in the dict keys msgspec's path leaves out (``toolsets[...].enabled``).

        For each unnamed key, convert the document again with that mapping cut down to one
        entry at a time: the entry that alone reproduces the same error is the one at fault.
        Error path only; a mapping of n entries costs n small conversions. If no single
        entry reproduces it, the path stops at the mapping.
        """
        named: list[str | int] = []
        for token in tokens:
            if token is not None:
                named.append(token)
                continue
            mapping = _get(data, named)
            culprit = None
            if isinstance(mapping, dict):
                for key in mapping:
                    trial = _replace(data, named, {key: mapping[key]})
                    try:
                        self.convert(trial)
                    except msgspec.ValidationError as exc:
                        if str(exc) == text:
                            culprit = key
                            break
            if culprit is None:
                return named
            named.append(str(culprit))
        return named


def _get(data: Any, path: list[str | int]) -> Any:
    for seg in path:
        try:
            data = data[seg]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _replace(data: Any, path: list[str | int], value: Any) -> Any:
    """A copy of ``data`` with the node at ``path`` replaced; only the path is copied."""
    if not path:
        return value
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[path[0]] = _replace(data[path[0]], path[1:], value)  # type: ignore[index]
    return copy
