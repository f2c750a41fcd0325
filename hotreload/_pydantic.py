"""Frozen pydantic v2 models as schemas (the ``pydantic`` extra).

Imported only when a pydantic model is given (see `hotreload._schema`). A model is validated
as pydantic validates it (lax unless the model says ``strict=True``), so a FastAPI service's
existing settings model works unchanged. The engine's own rules still hold: the model must be
frozen, ``SecretStr``/``SecretBytes``/``Secret[...]`` fields are secrets whatever they are
called, and ``Annotated[..., RestartRequired]`` / ``Annotated[..., Secret]`` mark fields.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec
import pydantic
import pydantic_core

from ._schema import RICH, Problem

__all__ = ["PydanticSchema", "fields", "is_secret_type", "json_builtins"]

T = TypeVar("T")

_ANNOTATED: Any = typing.Annotated
_SECRET_TYPES = (pydantic.SecretStr, pydantic.SecretBytes, pydantic.Secret)


class PydanticSchema(Generic[T]):
    """A frozen ``pydantic.BaseModel`` subclass: ``model_validate`` and a canonical dump."""

    __slots__ = ("convert", "schema")

    #: A model validator may raise anything (pydantic wraps only ValueError and
    #: AssertionError): whatever it raises refuses the version, it never stops the reloader.
    errors: tuple[type[Exception], ...] = (Exception,)

    def __init__(self, schema: type[T]) -> None:
        model: Any = schema
        mutable = _mutable_model(model, set())
        if mutable is not None:
            inside = "" if mutable is model else f" (used in {model.__qualname__})"
            raise TypeError(
                f"{mutable.__qualname__}{inside} must be declared with "
                "model_config = ConfigDict(frozen=True): readers share it"
            )
        self.schema = schema
        self.convert: Callable[[Any], T] = model.model_validate

    @staticmethod
    def to_builtins(config: Any) -> Any:
        return msgspec.to_builtins(
            dump(config), builtin_types=RICH, order="sorted", enc_hook=_plain
        )

    def has_field(self, name: str) -> bool:
        model: Any = self.schema
        return name in model.model_fields

    def problem(self, exc: Exception, data: Any) -> Problem:
        """The first error pydantic reports, its ``loc`` walked through the document.

        A ``loc`` also holds steps that are not in the document (the member a union tried,
        ``[key]`` for a mapping's key): those are skipped, so the path names only real keys.
        """
        if not isinstance(exc, pydantic.ValidationError):
            return Problem(f"rejected by the model: {type(exc).__name__}: {exc}", [], [])
        found = exc.errors(include_url=False, include_input=False, include_context=False)
        first = found[0]
        message = first["msg"]
        if len(found) > 1:
            message += f" (and {len(found) - 1} more error{'s' if len(found) > 2 else ''})"
        located: list[str | int] = []
        node = data
        missing: str | int | None = None
        loc = first["loc"]
        for i, step in enumerate(loc):
            if _has(node, step):
                node = node[step]
                located.append(step)
            elif i == len(loc) - 1 and first["type"] == "missing":
                missing = step
        if missing is not None:
            return Problem(message, located, [*located, missing])
        at_key = first["type"] == "extra_forbidden"
        return Problem(message, located, list(located), at_key=at_key)


def json_builtins(config: Any) -> Any:
    """JSON-ready builtins (dates as strings); secrets in clear, for the caller to mask."""
    return msgspec.to_builtins(dump(config), order="sorted", enc_hook=_plain)


def dump(value: Any) -> Any:
    """The validated values, field by field, keyed as the file spells them (aliases).

    Not ``model_dump``: that applies the model's serializers and leaves out ``exclude=True``
    fields, so a change to such a field would hash the same and a restart-required value put
    back would not validate again. Computed fields are derived, not input: left out. Extra
    keys a model allows are config too: kept.
    """
    kind: Any = type(value)
    if kind in _LEAVES:
        return value
    if isinstance(value, pydantic.BaseModel):
        state = value.__dict__  # where pydantic keeps a model's field values
        out = {key: dump(state[name]) for name, key in _keys(kind)}
        if value.__pydantic_extra__:
            out.update((key, dump(v)) for key, v in value.__pydantic_extra__.items())
        return out
    if isinstance(value, dict):
        return {key: dump(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [dump(v) for v in value]
    return value  # sets, dates, enums, secrets: msgspec and `_plain` take them


_LEAVES = frozenset({str, int, float, bool, type(None)})


@functools.lru_cache(maxsize=512)
def _keys(model: type[pydantic.BaseModel]) -> tuple[tuple[str, str], ...]:
    """(attribute, name in the file) per field, looked up once per model class."""
    return tuple((name, info.alias or name) for name, info in model.model_fields.items())


def fields(model: Any) -> list[tuple[str, Any]]:
    """(name in the file, annotation with its ``Annotated`` markers) for each field.

    pydantic moves a field's ``Annotated`` extras into ``FieldInfo.metadata``: put them back
    so the marker walk sees ``RestartRequired`` and ``Secret`` as it does on a Struct.
    """
    out = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if info.metadata:
            params = (annotation, *info.metadata)
            annotation = _ANNOTATED[params]
        out.append((info.alias or name, annotation))
    return out


def _mutable_model(tp: Any, seen: set[Any]) -> Any:
    """The first model reachable from ``tp`` that is not frozen, or None.

    Nested models too: pydantic models are mutable by default, and a reader that could change
    ``config.llm`` in place would change the snapshot every other reader holds.
    """
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        if tp in seen:
            return None
        seen.add(tp)
        if not tp.model_config.get("frozen", False):
            return tp
        children = [annotation for _, annotation in fields(tp)]
    else:
        children = list(typing.get_args(tp))
    for child in children:
        found = _mutable_model(child, seen)
        if found is not None:
            return found
    return None


def is_secret_type(tp: Any) -> bool:
    tp = typing.get_origin(tp) or tp
    return isinstance(tp, type) and issubclass(tp, _SECRET_TYPES)


def _has(node: Any, step: str | int) -> bool:
    if isinstance(node, dict):
        return step in node
    return isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)


def _plain(value: Any) -> Any:
    """msgspec's fallback for what it cannot encode: a secret in clear (it is masked by path
    wherever it is shown, and must change the config hash), the rest as pydantic's JSON (or,
    for a type pydantic cannot serialise either, its ``str``)."""
    if isinstance(value, _SECRET_TYPES):
        return value.get_secret_value()
    return pydantic_core.to_jsonable_python(value, fallback=str)
