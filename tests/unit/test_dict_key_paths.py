"""Schema errors inside ``dict[str, Struct]`` values name the key, which msgspec leaves out."""

from __future__ import annotations

import msgspec
import pytest

from hotreload import ConfigValidationError
from hotreload._fields import FieldPolicy
from hotreload._pipeline import Pipeline


class Toolset(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True


class Catalog(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    toolsets: dict[str, Toolset] = {}
    groups: dict[str, dict[str, Toolset]] = {}
    lists: list[dict[str, Toolset]] = []


def error_for(raw: bytes) -> ConfigValidationError:
    pipeline = Pipeline(
        Catalog,
        source="catalog.yaml",
        fmt="yaml",
        max_bytes=1 << 20,
        validators=(),
        policy=FieldPolicy(Catalog),
    )
    with pytest.raises(ConfigValidationError) as caught:
        pipeline.load(raw)
    return caught.value


def test_the_failing_entry_is_named_and_located() -> None:
    err = error_for(b"toolsets:\n  k8s: {enabled: true}\n  prom:\n    enabled: maybe\n")
    assert err.field_path == "toolsets.prom.enabled"
    assert (err.line, err.column) == (4, 14)


def test_nested_mappings_name_every_key() -> None:
    err = error_for(b"groups:\n  a:\n    x: {}\n  b:\n    y: {enabled: 1}\n")
    assert err.field_path == "groups.b.y.enabled"
    assert (err.line, err.column) == (5, 18)


def test_unknown_field_inside_an_entry_points_at_the_key() -> None:
    err = error_for(b"toolsets:\n  ok: {}\n  prom: {bogus: 1}\n")
    assert err.field_path == "toolsets.prom.bogus"
    assert (err.line, err.column) == (3, 10)


def test_mapping_inside_a_list() -> None:
    err = error_for(b"lists:\n  - {a: {}}\n  - {b: {enabled: 2}}\n")
    assert err.field_path == "lists[1].b.enabled"
    assert err.line == 3
