"""No schema type lets a reader change the config every other reader shares (issue 24).

A frozen record refuses ``config.field = x``, but a ``dict``/``list``/``set`` inside it used to
take ``config.items["x"] = y``: the shared snapshot changed, and the next reload compared the
file with the changed value (``config_unchanged``, the mutation kept). Every schema kind the
library accepts is tried here with every way to mutate it; the config must stay equal to the
file, and a reload of the same file must find it so.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
import pydantic
import pytest
import yaml
from prometheus_client import CollectorRegistry

from hotreload import HotReloader, ReloadResult
from hotreload._present import to_builtins
from hotreload._schema import schema_for

DOC = """\
name: svc
tags: [a, b]
ports: [80, 443]
labels: {team: core, tier: web}
toolsets:
  kubernetes/core: {enabled: true, config: {timeout: 5, paths: [/x, /y]}}
extra: {nested: [{deep: {k: v}}, [1, 2]]}
"""


class StructToolset(msgspec.Struct, frozen=True):
    enabled: bool = False
    config: dict[str, Any] = {}


class StructConfig(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    tags: list[str] = []
    ports: set[int] = set()
    labels: dict[str, str] = {}
    toolsets: dict[str, StructToolset] = {}
    extra: Any = None


@dataclasses.dataclass(frozen=True)
class DataToolset:
    enabled: bool = False
    config: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
    name: str
    tags: list[str] = dataclasses.field(default_factory=list)
    ports: set[int] = dataclasses.field(default_factory=set)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    toolsets: dict[str, DataToolset] = dataclasses.field(default_factory=dict)
    extra: Any = None


class ModelToolset(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)
    enabled: bool = False
    config: dict[str, Any] = {}


class ModelConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)
    name: str
    tags: list[str] = []
    ports: set[int] = set()
    labels: dict[str, str] = {}
    toolsets: dict[str, ModelToolset] = {}
    extra: Any = None


class ModelWithExtras(pydantic.BaseModel):
    """Keys the model does not declare are kept as config (``extra="allow"``)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="allow")
    name: str


SCHEMAS: list[Any] = [
    StructConfig,
    DataConfig,
    ModelConfig,
    ModelWithExtras,
    dict,
    dict[str, Any],
    Mapping[str, Any],
]


def containers(value: Any) -> Iterator[Any]:
    """Every container and record in ``value``, at any depth."""
    if isinstance(value, Mapping):
        yield value
        for v in value.values():
            yield from containers(v)
    elif isinstance(value, list | tuple | set | frozenset):
        yield value
        for v in value:
            yield from containers(v)
    elif isinstance(value, msgspec.Struct | pydantic.BaseModel) or dataclasses.is_dataclass(value):
        yield value
        names: Any
        if isinstance(value, msgspec.Struct):
            names = value.__struct_fields__
        elif isinstance(value, pydantic.BaseModel):
            names = [*type(value).model_fields, *(value.__pydantic_extra__ or {})]
        else:
            names = [f.name for f in dataclasses.fields(value)]
        for name in names:
            yield from containers(getattr(value, name))


def mutations(value: Any) -> list[tuple[str, tuple[Any, ...]]]:
    """Each way a reader could try to change ``value`` in place: (method, arguments)."""
    if isinstance(value, Mapping):
        key = next(iter(value), "k")
        return [
            ("__setitem__", ("new", 1)),
            ("__setitem__", (key, 1)),
            ("__delitem__", (key,)),
            ("__ior__", ({"new": 1},)),
            ("update", ({"new": 1},)),
            ("setdefault", ("new", 1)),
            ("pop", (key,)),
            ("popitem", ()),
            ("clear", ()),
        ]
    if isinstance(value, list | tuple):
        first = value[0] if value else 1
        return [
            ("append", (1,)),
            ("extend", ([1],)),
            ("insert", (0, 1)),
            ("__setitem__", (0, 1)),
            ("__setitem__", (slice(0, 0), [1])),
            ("__delitem__", (0,)),
            ("__iadd__", ([1],)),
            ("__imul__", (2,)),
            ("pop", ()),
            ("remove", (first,)),
            ("sort", ()),
            ("reverse", ()),
            ("clear", ()),
        ]
    if isinstance(value, set | frozenset):
        return [("add", (1,)), ("discard", (next(iter(value), 1),)), ("update", ({1},))]
    return [("__setattr__", ("name", "changed")), ("__setattr__", ("injected", 1))]


def attempt(node: Any, method: str, args: tuple[Any, ...]) -> None:
    """Call ``node.method(*args)``; fail the test if it changed the node."""
    try:
        getattr(node, method)(*args)
    except (TypeError, AttributeError, pydantic.ValidationError):
        return
    pytest.fail(f"{method}{args!r} changed a {type(node).__name__} of the config")


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: getattr(s, "__name__", str(s)))
async def test_no_schema_lets_a_reader_change_the_shared_config(
    tmp_path: Path, registry: CollectorRegistry, schema: Any
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(DOC)
    expected = to_builtins(schema_for(schema).convert(yaml.safe_load(DOC)))
    async with HotReloader(path, schema=schema, registry=registry) as r:
        snapshot = r.snapshot
        tried = 0
        for node in containers(r.config):
            for method, args in mutations(node):
                tried += 1
                attempt(node, method, args)
        assert tried > 40
        assert to_builtins(r.config) == expected
        assert r.snapshot is snapshot
        path.write_text(DOC + "# the same config, other bytes: parsed and compared again\n")
        assert (await r.reload()).result is ReloadResult.CONFIG_UNCHANGED
        assert to_builtins(r.config) == expected


async def test_a_mutated_value_cannot_survive_a_reload(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    """The issue's own steps: ``schema=dict``, ``config["model"] = "x"``, then ``reload()``."""
    path = tmp_path / "config.yaml"
    path.write_text("model: gpt-4\n")
    async with HotReloader(path, schema=dict, registry=registry) as r:
        with pytest.raises(TypeError, match="read-only: readers share it"):
            r.config["model"] = "x"
        assert r.config == {"model": "gpt-4"}
        path.write_text("model: x\n")
        outcome = await r.reload()
        assert outcome.result is ReloadResult.CONFIG_CHANGED
        assert outcome.changed == ("model",)
        assert r.config == {"model": "x"}


def test_a_read_only_config_still_compares_encodes_copies_and_pickles() -> None:
    config = schema_for(StructConfig).convert(yaml.safe_load(DOC))
    assert config.labels == {"team": "core", "tier": "web"}
    assert isinstance(config.labels, dict)
    assert config.tags == ["a", "b"]
    assert isinstance(config.tags, list)
    assert config.ports == {80, 443}
    assert json.loads(json.dumps(config.extra)) == {"nested": [{"deep": {"k": "v"}}, [1, 2]]}
    assert msgspec.json.decode(msgspec.json.encode(config), type=StructConfig) == config
    assert copy.deepcopy(config) == config
    assert pickle.loads(pickle.dumps(config.labels)) == config.labels  # noqa: S301 - our own
    mutable = dict(config.labels) | {"new": "1"}  # a copy is an ordinary dict
    mutable["x"] = "y"
    assert [*config.tags, "c"] == ["a", "b", "c"]
    assert repr(config.labels) == "{'team': 'core', 'tier': 'web'}"


class Loose(msgspec.Struct):
    value: int = 0


@dataclasses.dataclass
class LooseData:
    value: int = 0


class HoldsLoose(msgspec.Struct, frozen=True):
    inner: dict[str, Loose] = {}


class HoldsLooseData(msgspec.Struct, frozen=True):
    inner: LooseData | None = None


@dataclasses.dataclass(frozen=True)
class HoldsBytes:
    blob: bytearray | None = None


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (HoldsLoose, "Loose (used in HoldsLoose) must be declared with frozen=True: readers share"),
        (HoldsLooseData, "LooseData (used in HoldsLooseData) must be a frozen dataclass"),
        (list[Loose], "Loose must be declared with frozen=True: readers share it"),
        (HoldsBytes, "bytearray (used in HoldsBytes) is mutable"),
    ],
)
def test_a_mutable_record_inside_a_frozen_one_is_refused(schema: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        HotReloader("x.yaml", schema=schema)


def test_a_schema_without_containers_is_not_walked() -> None:
    """Only schemas that can hold a container pay for the walk."""

    class Flat(msgspec.Struct, frozen=True):
        model: str = "x"
        retries: int = 3
        ratio: tuple[float, ...] = ()

    adapter = schema_for(Flat)
    assert getattr(adapter.convert, "func", None) is msgspec.convert
