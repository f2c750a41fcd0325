"""Unknown keys: any schema that allows them gets them named, located and given a suggestion."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, TypedDict

import msgspec
import pytest

from hotreload import ConfigValidationError
from hotreload._fields import FieldPolicy
from hotreload._pipeline import Pipeline
from hotreload._unknown import find_unknown


class Retry(msgspec.Struct, frozen=True):
    attempts: int = 3
    backoff: float = 0.5


class Closed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    value: int = 0


class Cat(msgspec.Struct, frozen=True, tag="cat"):
    meows: bool = True


class Dog(msgspec.Struct, frozen=True, tag="dog"):
    barks: bool = True


@dataclasses.dataclass(frozen=True)
class Point:
    x: int = 0
    y: int = 0


class Labels(TypedDict, total=False):
    team: str


class Settings(msgspec.Struct, frozen=True, rename={"max_conns": "maxConnections"}):
    model: str = "gpt-4"
    retry: Annotated[Retry, "anything"] = msgspec.field(default_factory=Retry)
    backends: dict[str, Retry] = {}
    chain: tuple[Retry, ...] = ()
    optional: Retry | None = None
    pet: Cat | Dog | None = None
    point: Point = msgspec.field(default_factory=Point)
    labels: Labels = msgspec.field(default_factory=Labels)
    closed: Closed = msgspec.field(default_factory=Closed)
    free: dict[str, Any] = {}
    max_conns: int = 10


def unknown(data: dict[str, Any]) -> dict[str, str | None]:
    return {key.dotted: key.suggestion for key in find_unknown(Settings, data)}


def test_a_valid_document_has_none() -> None:
    assert unknown({"model": "x", "retry": {"attempts": 1}, "maxConnections": 3}) == {}


def test_keys_are_named_through_every_kind_of_container() -> None:
    data = {
        "modle": "x",
        "retry": {"attemps": 1},
        "backends": {"a": {"backof": 1.0}},
        "chain": [{}, {"extra": 1}],
        "optional": {"attempts": 2, "x": 1},
        "pet": {"type": "dog", "barkz": True},
        "point": {"z": 1},
        "labels": {"tema": "a"},
        "free": {"anything": {"goes": 1}},
        "max_conns": 5,  # the Python name, not the file's
    }
    assert unknown(data) == {
        "modle": "model",
        "retry.attemps": "retry.attempts",
        "backends.a.backof": "backends.a.backoff",
        "chain[1].extra": None,
        "optional.x": None,
        "pet.barkz": "pet.barks",
        "point.z": None,
        "labels.tema": "labels.team",
        "max_conns": None,
    }


def test_a_struct_that_forbids_unknown_fields_is_left_to_msgspec() -> None:
    assert unknown({"closed": {"valeu": 1}}) == {}


def pipeline(strict: bool) -> Pipeline[Settings]:
    return Pipeline(
        Settings,
        source="s.yaml",
        fmt="yaml",
        max_bytes=1 << 20,
        validators=(),
        policy=FieldPolicy(Settings),
        strict=strict,
    )


DOC = b"model: gpt-4\nretry:\n  attempts: 2\n  backof: 1.0\nnew_section: {a: 1}\n"


def test_the_pipeline_locates_them_and_keeps_the_config() -> None:
    active = pipeline(strict=False).load(DOC)
    assert active.config.retry.attempts == 2
    assert [(k.dotted, k.line, k.column, k.suggestion) for k in active.unknown] == [
        ("retry.backof", 4, 3, "retry.backoff"),
        ("new_section", 5, 1, None),
    ]
    assert str(active.unknown[0]) == (
        "unknown key `retry.backof` (line 4): did you mean `retry.backoff`?"
    )


def test_strict_refuses_them_naming_all_with_the_first_ones_position() -> None:
    with pytest.raises(ConfigValidationError) as caught:
        pipeline(strict=True).load(DOC)
    error = caught.value
    assert (error.reason, error.field_path, error.line, error.column) == (
        "unknown_key",
        "retry.backof",
        4,
        3,
    )
    assert str(error) == (
        "s.yaml:4:3: unknown field `backof` (did you mean `retry.backoff`?), and 1 more: "
        "unknown key `new_section` (line 5) at `retry.backof`"
    )


def test_an_evaluation_carries_them_even_when_the_config_is_unchanged() -> None:
    lenient = pipeline(strict=False)
    active = lenient.load(b"model: gpt-4\n")
    evaluation = lenient.evaluate(b"model: gpt-4\nmodle: gpt-5\n", active)
    assert evaluation.result.value == "config_unchanged"
    assert evaluation.unknown is not None
    assert [k.dotted for k in evaluation.unknown] == ["modle"]
    same = lenient.evaluate(b"model: gpt-4\n", active)
    assert same.unknown is None  # same bytes: not parsed again, nothing new to say
    refused = pipeline(strict=True).evaluate(b"model: gpt-4\nmodle: gpt-5\n", active)
    assert refused.result.value == "validation_failed"
