"""The layered merge, the environment layer and the origin tables: pure, no files, no loop."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hotreload._layers import env_layer
from hotreload._parsing import parse_node
from hotreload._present import Explained, explain_lines
from hotreload._provenance import Document, Origin, Parsed, merge, nest, walk_yaml, whole


def layer(text: str, name: str) -> Parsed:
    data, node = parse_node(text.encode(), "yaml", name)
    assert node is not None
    return walk_yaml(data, node, name)


BASE = """\
llm:
  provider: openai
  model: gpt-4o-mini
  temperature: 0.2
hosts: [a, b]
prompt: short
"""
PROD = """\
llm:
  model: gpt-4o
hosts: [c]
prompt: null
"""


def test_maps_deep_merge_later_wins_lists_and_null_replace() -> None:
    doc = merge([layer(BASE, "base.yaml"), layer(PROD, "prod.yaml")], "both")
    assert doc.data == {
        "llm": {"provider": "openai", "model": "gpt-4o", "temperature": 0.2},
        "hosts": ["c"],  # a list is replaced whole, never merged item by item
        "prompt": None,  # null is a value (it does not delete the key)
    }
    assert doc.values[("llm", "model")] == Origin("prod.yaml", 2, 10)
    assert doc.values[("llm", "provider")] == Origin("base.yaml", 2, 13)
    assert doc.values[("hosts", 0)] == Origin("prod.yaml", 3, 9)
    assert doc.values[("prompt",)] == Origin("prod.yaml", 4, 9)
    assert str(doc.values[("llm", "temperature")]) == "base.yaml:4"


def test_merge_does_not_modify_the_layers() -> None:
    base, prod = layer(BASE, "base.yaml"), layer(PROD, "prod.yaml")
    before = yaml.safe_load(BASE)
    merge([base, prod], "both")
    assert base.data == before


def test_a_map_replaces_a_scalar_and_a_scalar_a_map() -> None:
    a = whole({"x": 1, "y": {"z": 1}}, Origin("a"))
    b = whole({"x": {"k": 2}, "y": 3}, Origin("b"))
    assert merge([a, b], "ab").data == {"x": {"k": 2}, "y": 3}


def test_no_layers_is_an_empty_document() -> None:
    doc = merge([], "nothing")
    assert doc.data == {}
    assert doc.origin(("a", "b")) == Origin("nothing")


def test_origin_falls_back_to_the_deepest_known_node_and_keys_point_at_the_key() -> None:
    doc = merge([layer(BASE, "base.yaml"), layer("llm:\n  bogus: 1\n", "prod.yaml")], "both")
    # A missing field is reported at its mapping, an unknown one at its key.
    assert doc.origin(("llm", "absent")) == doc.values[("llm",)]
    assert doc.origin(("llm", "bogus"), at_key=True) == Origin("prod.yaml", 2, 3)
    assert doc.origin(("llm", "bogus")) == Origin("prod.yaml", 2, 10)


def test_yaml_merge_keys_name_the_value_in_force() -> None:
    text = "defaults: &d\n  a: 1\n  b: 2\nsvc:\n  <<: *d\n  b: 3\n"
    parsed = layer(text, "m.yaml")
    assert parsed.data["svc"] == {"a": 1, "b": 3}
    assert parsed.values[("svc", "b")] == Origin("m.yaml", 6, 6)
    assert parsed.values[("svc", "a")] == Origin("m.yaml", 2, 6)


def test_nest_places_a_document_under_a_key_path() -> None:
    parsed = nest(whole("PEM", Origin("tls.crt", 1, 1)), ("tls", "cert"))
    assert parsed.data == {"tls": {"cert": "PEM"}}
    assert parsed.values[("tls", "cert")] == Origin("tls.crt", 1, 1)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("8080", 8080),
        ("true", True),
        ("0.5", 0.5),
        ("gpt-4o", "gpt-4o"),
        ("[a, b]", ["a", "b"]),
        ("", ""),  # empty stays the empty string, never null
        ("null", None),
        ("'quoted: yes'", "quoted: yes"),
        ("a: b: c", "a: b: c"),  # not valid YAML: the text as it is
        ("*alias", "*alias"),
    ],
)
def test_env_values_are_read_as_yaml(value: str, parsed: Any) -> None:
    assert env_layer([("APP_X", value)], "APP_").data == {"x": parsed}


def test_env_names_nest_on_double_underscore_lower_case() -> None:
    got = env_layer(
        [
            ("HOLMES_LLM__MODEL", "gpt-4o"),
            ("HOLMES_API_PORT", "9090"),
            ("HOLMES_LLM", "ignored"),  # a scalar at a map's place: the nested names win
            ("HOLMES_A__", "no key"),
        ],
        "HOLMES_",
    )
    assert got.data == {"llm": {"model": "gpt-4o"}, "api_port": 9090}
    assert got.values[("llm", "model")] == Origin("$HOLMES_LLM__MODEL")
    assert str(got.values[("api_port",)]) == "$HOLMES_API_PORT"
    # Maps the environment only passes through keep their file's origin.
    assert ("llm",) not in got.values


def test_env_layer_wins_over_files() -> None:
    doc = merge([layer(BASE, "base.yaml"), env_layer([("H_LLM__MODEL", "o3")], "H_")], "x")
    assert doc.data["llm"]["model"] == "o3"
    assert doc.data["llm"]["provider"] == "openai"
    assert doc.origin(("llm", "model")) == Origin("$H_LLM__MODEL")


def test_a_lazy_document_works_its_tables_out_once() -> None:
    calls = []

    def tables() -> Parsed:
        calls.append(1)
        return layer(BASE, "base.yaml")

    doc = Document({"x": 1}, "base.yaml", lazy=tables)
    assert calls == []
    assert doc.origin(("llm", "model")) == Origin("base.yaml", 3, 10)
    assert doc.keys[("llm", "model")] == Origin("base.yaml", 3, 3)
    assert calls == [1]


def test_explain_lines_align_and_name_defaults() -> None:
    lines = explain_lines(
        [
            Explained("a", 1, Origin("base.yaml", 3, 1)),
            Explained("long.path", "***", Origin("$X")),
            Explained("c", [1], None),
        ]
    )
    assert lines == [
        "a = 1            # base.yaml:3",
        "long.path = ***  # $X",
        "c = [1]          # (default)",
    ]
