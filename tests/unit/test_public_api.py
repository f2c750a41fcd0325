"""The public surface: every ``__all__`` is true, and public names live at ``hotreload.X``.

Modules are discovered, not listed (as anyio's ``test_all_attributes`` does), so a new public
module or preset is covered the day it lands.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import traceback
import typing
from datetime import datetime, timezone
from types import GenericAlias, ModuleType
from typing import TypeVar

import msgspec
import pytest

import hotreload


def modules(*, public: bool) -> list[str]:
    """``hotreload`` and its submodules; public ones have no ``_``-prefixed part. Never
    ``__main__``, which runs the CLI when imported."""
    found = ["hotreload"]
    for _finder, name, _ispkg in pkgutil.walk_packages(hotreload.__path__, "hotreload."):
        if name != "hotreload.__main__" and (not public or "._" not in name):
            found.append(name)
    return found


def test_discovery_finds_the_public_modules() -> None:
    """The walk below is not empty by accident: the known public modules are among them."""
    assert {"hotreload", "hotreload.asgi", "hotreload.cli", "hotreload.holmes"} <= set(
        modules(public=True)
    )
    assert "hotreload.testing" in modules(public=True)
    assert "hotreload._watch" in modules(public=False)


#: Modules of an extra not in `dev` (CI installs it): skipped where it is not installed; their
#: import takes seconds (holmesgpt imports litellm), so they get a longer timeout.
OPTIONAL = {"hotreload._holmesgpt_upstream": "holmes"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.timeout(180)) if n in OPTIONAL else n
        for n in modules(public=False)
    ],
)
def test_every_name_in_all_exists(name: str) -> None:
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name])
    module = importlib.import_module(name)
    names = getattr(module, "__all__", None)
    assert isinstance(names, list | tuple), f"{name} has no __all__"
    assert all(isinstance(n, str) for n in names)
    assert len(set(names)) == len(names), f"{name}.__all__ repeats a name"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not have: {missing}"


def defined_here(module: ModuleType) -> set[str]:
    """Public classes and functions whose home is ``module``."""
    return {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }


@pytest.mark.parametrize("name", modules(public=True))
def test_every_public_class_and_function_is_in_all(name: str) -> None:
    module = importlib.import_module(name)
    left_out = defined_here(module) - set(module.__all__)
    assert not left_out, f"{name} defines {sorted(left_out)} but leaves them out of __all__"


# -- `hotreload.X`, not `hotreload._module.X` ---------------------------------------------------

PUBLIC = [getattr(hotreload, n) for n in hotreload.__all__]
#: Not the aliases: Python 3.10 still calls ``Callable[...]`` a class.
HOMED = [
    o
    for o in PUBLIC
    if (inspect.isclass(o) or inspect.isfunction(o)) and not isinstance(o, GenericAlias)
]


def test_public_classes_and_functions_say_hotreload() -> None:
    assert len(HOMED) > 15
    for obj in HOMED:
        assert obj.__module__ == "hotreload", obj
        assert getattr(hotreload, obj.__qualname__) is obj  # what pickle looks up
    assert repr(hotreload.HotReloader) == "<class 'hotreload.HotReloader'>"


def test_a_traceback_names_the_public_error() -> None:
    try:
        raise hotreload.ConfigParseError("app.yaml", "bad", line=2, column=1)
    except hotreload.ConfigParseError as exc:
        last = traceback.format_exception(exc)[-1]
    assert last == "hotreload.ConfigParseError: app.yaml:2:1: bad\n"


X = TypeVar("X")


def round_trip(obj: X) -> X:
    return pickle.loads(pickle.dumps(obj))  # type: ignore[no-any-return]  # noqa: S301 - ours


ERRORS = [
    hotreload.ConfigError("app.yaml", "broken"),
    hotreload.ConfigReadError("app.yaml", "gone", reason="missing"),
    hotreload.ConfigNotFoundError("app.yaml"),
    hotreload.ConfigParseError("app.yaml", "bad", line=2, column=1),
    hotreload.ConfigValidationError("app.yaml", "wrong type", field_path="llm.model"),
    hotreload.ConfigApplyError("app.yaml", "refused", hook="reconnect"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_still_pickle(error: hotreload.ConfigError) -> None:
    copy = round_trip(error)
    assert type(copy) is type(error)
    assert (str(copy), repr(copy), vars(copy)) == (str(error), repr(error), vars(error))
    if isinstance(error, OSError):  # the OSError fields live outside __dict__
        assert isinstance(copy, OSError)
        assert (copy.errno, copy.strerror, copy.filename) == (
            error.errno,
            error.strerror,
            error.filename,
        )


def test_enum_snapshot_and_record_still_pickle_and_decode() -> None:
    for member in hotreload.ReloadResult:
        assert round_trip(member) is member
    assert repr(hotreload.ReloadResult.ERROR) == "<ReloadResult.ERROR: 'error'>"
    snap = hotreload.Snapshot(
        config={"model": "gpt-4"},
        generation=1,
        config_hash="c",
        content_sha256="s",
        loaded_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        source="app.yaml",
    )
    assert round_trip(snap) == snap
    # msgspec resolves a Struct's annotations in its __module__: still right after the move.
    assert (
        msgspec.json.decode(msgspec.json.encode(snap), type=hotreload.Snapshot[dict[str, str]])
        == snap
    )
    record = hotreload.ToolsetFailureRecord("prometheus", 1, 1, 0.0, "E", "m")
    assert round_trip(record) == record


@pytest.mark.parametrize(
    "cls",
    [o for o in HOMED if inspect.isclass(o)],
    ids=lambda o: o.__name__,
)
def test_type_hints_of_public_classes_resolve(cls: type) -> None:
    """`typing.get_type_hints` (pydantic, FastAPI, msgspec) looks names up in ``__module__``."""
    typing.get_type_hints(cls)
