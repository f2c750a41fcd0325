"""`schema_for`: one adapter per schema type, shared by every reloader of it (memory), while a
mutable schema is refused every time and an unhashable one still gets an adapter."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import msgspec
import pytest

from hotreload._schema import schema_for


class Frozen(msgspec.Struct, frozen=True):
    value: int


class Mutable(msgspec.Struct):
    value: int


def test_reloaders_of_one_schema_share_its_adapter() -> None:
    assert schema_for(Frozen) is schema_for(Frozen)
    assert schema_for(Frozen).convert({"value": 1}) == Frozen(1)


def test_a_mutable_schema_is_refused_every_time_not_only_the_first() -> None:
    for _ in range(2):
        with pytest.raises(TypeError, match="Mutable must be declared with frozen=True"):
            schema_for(Mutable)


def test_a_schema_made_per_call_is_not_mistaken_for_another() -> None:
    @dataclasses.dataclass(frozen=True)
    class One:
        value: int

    @dataclasses.dataclass(frozen=True)
    class Two:  # same shape, another type: its own adapter
        value: str

    one: object = schema_for(One)
    assert one is not schema_for(Two)
    assert schema_for(Two).convert({"value": "x"}) == Two("x")


def test_an_unhashable_schema_gets_an_adapter_of_its_own() -> None:
    unhashable = Annotated[int, {"note": "a dict makes the alias unhashable"}]
    with pytest.raises(TypeError):
        hash(unhashable)
    adapter = schema_for(unhashable)
    assert adapter.convert(3) == 3
    assert adapter is not schema_for(unhashable)
