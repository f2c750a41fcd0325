"""Read-only containers for a converted config: readers share one snapshot, so none may change it.

A frozen Struct, dataclass or pydantic model refuses ``config.field = x``, but a ``dict``,
``list`` or ``set`` inside it would still take ``config.items["x"] = y`` and change the config
every other reader holds (and the next reload would compare against the changed value). After
conversion every such container is replaced, all the way down, by a read-only one:

* ``dict`` -> `ReadOnlyDict` (a ``dict`` subclass: ``isinstance``, ``==``, ``json.dumps`` and
  msgspec's encoders keep working; its mutators raise ``TypeError``),
* ``list`` -> `ReadOnlyList` (the same, for ``list``), ``set`` -> ``frozenset``.

Only the fields that can hold a container are walked (worked out once per schema type), and a
schema that has none is not walked at all. ``dict(value)`` / ``list(value)`` / ``.copy()``
give an ordinary mutable copy.
"""

from __future__ import annotations

import collections
import collections.abc
import dataclasses
import datetime as _dt
import decimal
import enum
import functools
import typing
import uuid
from collections.abc import Callable
from typing import Any, NoReturn

import msgspec

__all__ = ["ReadOnlyDict", "ReadOnlyList", "freezer", "read_only"]

_HINT = "readers share it (dict(...) / list(...) makes a copy to change)"


def _refuse(self: object, *_args: object, **_kwargs: object) -> NoReturn:
    raise TypeError(f"this {type(self).__name__} is part of a config and read-only: {_HINT}")


class ReadOnlyDict(dict[Any, Any]):
    """A ``dict`` of a config: every mutator raises ``TypeError``."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[Any, ...]:  # copy, deepcopy and pickle without __setitem__
        return (ReadOnlyDict, (dict(self),))

    def __repr__(self) -> str:
        return dict.__repr__(self)


class ReadOnlyList(list[Any]):
    """A ``list`` of a config: every mutator raises ``TypeError``."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReadOnlyList, (list(self),))

    def __repr__(self) -> str:
        return list.__repr__(self)


# -- which types can hold a container (once per schema type) ----------------------------------

_SCALARS = (
    str,
    int,
    float,
    bool,
    bytes,
    type(None),
    _dt.datetime,
    _dt.date,
    _dt.time,
    _dt.timedelta,
    decimal.Decimal,
    uuid.UUID,
    enum.Enum,
    msgspec.Raw,
)
_CONTAINERS = frozenset(
    {
        dict,
        list,
        set,
        collections.OrderedDict,
        collections.defaultdict,
        collections.Counter,
        collections.deque,
        collections.abc.Mapping,
        collections.abc.MutableMapping,
        collections.abc.Sequence,
        collections.abc.MutableSequence,
        collections.abc.Set,
        collections.abc.MutableSet,
        collections.abc.Collection,
        collections.abc.Iterable,
    }
)
_MUTABLE_BYTES = (bytearray, memoryview)


def _mutable(tp: Any, owner: Any, message: str) -> TypeError:
    inside = "" if owner is None or owner is tp else f" (used in {owner.__qualname__})"
    return TypeError(f"{tp.__qualname__}{inside} {message}: readers share it")


def can_hold_container(tp: Any, owner: Any = None, seen: set[Any] | None = None) -> bool:
    """Whether a value of type ``tp`` can hold a mutable container; raises ``TypeError`` for a
    type readers could change in place that cannot be made read-only (a mutable Struct or
    dataclass, ``bytearray``)."""
    seen = set() if seen is None else seen
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return can_hold_container(typing.get_args(tp)[0], owner, seen)
    if origin is typing.Literal or tp is typing.Literal:
        return False
    if origin is not None:
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if origin in _CONTAINERS:
            for arg in args:
                can_hold_container(arg, owner, seen)  # refusals inside still apply
            return True
        held = [can_hold_container(a, owner, seen) for a in args]  # every arg: refusals
        return any(held)
    if tp in _CONTAINERS or tp is typing.Any or tp is object or isinstance(tp, typing.TypeVar):
        return True
    if not isinstance(tp, type):
        return True  # a forward reference or something unforeseen: walk its values
    if issubclass(tp, _MUTABLE_BYTES):
        raise _mutable(tp, owner, "is mutable (use bytes)")
    if issubclass(tp, _SCALARS):
        return False
    if tp in seen:
        return False  # already counted where it was first met
    seen.add(tp)
    hints = _record_hints(tp, owner)
    if hints is None:
        return tp not in {tuple, frozenset}
    held = [can_hold_container(h, tp, seen) for h in hints.values()]  # every field: refusals
    return any(held)


def _record_hints(tp: type, owner: Any) -> dict[str, Any] | None:
    """The field annotations of a record type (a mutable one refused), or None."""
    if issubclass(tp, msgspec.Struct):
        if not tp.__struct_config__.frozen:
            raise _mutable(tp, owner, "must be declared with frozen=True")
        hints = typing.get_type_hints(tp, include_extras=True)
        return {name: hints[name] for name in tp.__struct_fields__}
    params = getattr(tp, "__dataclass_params__", None)
    if params is not None:
        if not params.frozen:
            raise _mutable(tp, owner, "must be a frozen dataclass")
        hints = typing.get_type_hints(tp, include_extras=True)
        return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(typing.cast(Any, tp))}
    fields = getattr(tp, "model_fields", None)  # a pydantic model (its frozenness is checked
    if isinstance(fields, dict):  # by its own adapter)
        hints = {name: info.annotation for name, info in fields.items()}
        if getattr(tp, "model_config", {}).get("extra") == "allow":
            hints["__pydantic_extra__"] = Any  # keys it does not declare: any value
        return hints
    if issubclass(tp, tuple) and hasattr(tp, "_fields"):  # a NamedTuple
        return typing.get_type_hints(tp, include_extras=True)
    return None


def _walked(tp: type) -> tuple[str, ...]:
    """The fields of a record type worth walking (those that can hold a container)."""
    hints = _record_hints(tp, None) or {}
    hints.pop("__pydantic_extra__", None)  # walked on its own
    return tuple(name for name, hint in hints.items() if can_hold_container(hint, tp))


_WALKED: dict[type, tuple[str, ...]] = {}


def read_only(value: Any) -> Any:
    """``value`` with every mutable container in it replaced by a read-only one."""
    kind = type(value)
    if kind is dict:
        return ReadOnlyDict({k: read_only(v) for k, v in value.items()})
    if kind is list:
        return ReadOnlyList([read_only(v) for v in value])
    if kind in _PLAIN or kind is ReadOnlyDict or kind is ReadOnlyList:
        return value
    if kind is set:
        return frozenset(value)
    names = _WALKED.get(kind)
    if names is None:
        names = _WALKED[kind] = _fields_of(value)
    for name in names:
        _put(value, name, read_only(getattr(value, name)))
    if isinstance(value, tuple):
        return _tuple(value)
    if isinstance(value, dict):  # OrderedDict, defaultdict and the like
        return ReadOnlyDict({k: read_only(v) for k, v in value.items()})
    if isinstance(value, list | collections.deque):
        return ReadOnlyList([read_only(v) for v in value])
    if isinstance(value, set):
        return frozenset(value)
    extra = getattr(value, "__pydantic_extra__", None)
    if extra:  # keys a pydantic model allows (extra="allow"): config too
        for key in extra:
            dict.__setitem__(extra, key, read_only(extra[key]))
    return value


_PLAIN = frozenset({str, int, float, bool, type(None), bytes, frozenset})


def _fields_of(value: Any) -> tuple[str, ...]:
    kind = type(value)
    if isinstance(value, msgspec.Struct) or dataclasses.is_dataclass(value):
        return _walked(kind)
    if isinstance(getattr(kind, "model_fields", None), dict):
        return _walked(kind)
    return ()


def _put(record: Any, name: str, value: Any) -> None:
    if value is getattr(record, name):
        return
    if isinstance(record, msgspec.Struct):
        msgspec.structs.force_setattr(record, name, value)
    elif hasattr(record, "__pydantic_fields_set__"):  # a pydantic model keeps them in __dict__
        record.__dict__[name] = value
    else:  # a frozen dataclass
        object.__setattr__(record, name, value)


def _tuple(value: tuple[Any, ...]) -> tuple[Any, ...]:
    items = [read_only(v) for v in value]
    if all(a is b for a, b in zip(items, value, strict=True)):
        return value
    if type(value) is tuple:
        return tuple(items)
    return type(value)(*items)  # a NamedTuple


def freezer(schema: Any, convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert`` followed by `read_only`, or ``convert`` itself when no value of ``schema``
    can hold a container (then nothing is walked: a config of scalars and frozen records)."""
    if not can_hold_container(schema):
        return convert
    return functools.partial(_convert_read_only, convert)


def _convert_read_only(convert: Callable[[Any], Any], data: Any) -> Any:
    return read_only(convert(data))
