"""The one-pass builder for plain YAML trees builds what PyYAML's safe loader builds.

`_parsing._build_plain` replaces `SafeConstructor.construct_document` on the path almost every
config takes, so it must agree with it value for value and type for type (``1`` is not
``True``, ``1.0`` is not ``1``), on every scalar spelling YAML 1.1 gives a type to, and it
must hand every document it does not fully understand to the general path instead of
guessing.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hotreload import ConfigParseError
from hotreload._parsing import _build_plain, _NotPlain, parse_node

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Scalar spellings with a YAML 1.1 type (and near misses that stay strings).
SPELLINGS = [
    "1", "-1", "+1", "0x1F", "0o17", "017", "1_000", "1:30", "0b101", "1.5", "-.5", "1e3",
    "1.0e+3", ".inf", "-.Inf", ".nan", "~", "null", "Null", "", "true", "False", "yes", "NO",
    "on", "Off", "y", "n", "2024-01-02", "2024-01-02T03:04:05Z", "2024-01-02 03:04:05.5 +01:00",
    "abc", "'quoted'", '"dq\\n"', "!!str 1", "!!int 7", "!!float 1", "!!binary aGVsbG8=",
    "!!bool yes", "!!null ''", "0.1.2", "1_0.5", "-", "a b", "'1'", "1__0", "0x_1",
]  # fmt: skip

keys = st.sampled_from(["a", "b", "1", "true", "null", "2024-01-02", "1.5", "k k", "x"])
scalars = st.sampled_from(SPELLINGS)


def _block(value: Any, indent: int) -> str:
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return " {}\n"
        lines = ["\n"]
        for key, item in value.items():
            lines.append(f"{pad}{key}:{_block(item, indent + 2)}")
        return "".join(lines)
    if isinstance(value, list):
        if not value:
            return " []\n"
        return "\n" + "".join(f"{pad}-{_block(item, indent + 2)}" for item in value)
    return f" {value}\n"


documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same type all the way down (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _composes(spelling: str) -> bool:
    try:
        yaml.compose(f"k: {spelling}\n", Loader=_Loader)
    except yaml.YAMLError:
        return False
    return True


def compose(text: str) -> yaml.Node:
    node = yaml.compose(text, Loader=_Loader)
    assert node is not None
    return node


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(keys, documents, min_size=1, max_size=5))
def test_the_plain_builder_builds_what_the_safe_constructor_builds(doc: dict[str, Any]) -> None:
    text = "".join(f"{key}:{_block(value, 2)}" for key, value in doc.items())
    try:
        node = compose(text)
    except yaml.YAMLError:
        return  # not YAML (a generated spelling broke the syntax): nothing to compare
    try:
        expected = yaml.constructor.SafeConstructor().construct_document(node)
    except (yaml.YAMLError, ValueError, TypeError):
        expected = _NotPlain
    try:
        built = _build_plain(compose(text))
    except _NotPlain:
        # Only what the general path must read: a duplicate key, a failure, an odd tag.
        return
    assert expected is not _NotPlain, text
    assert same(built, expected), text


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\na: 2\n",  # a duplicate key
        "a: 1\n1: x\n1: y\n",  # a duplicate non-string key
        "? [1, 2]\n: x\n",  # an unhashable key
        "a: !!set {x, y}\n",  # a collection tag
        "a: !!omap [{x: 1}]\n",
        "a: !!int abc\n",  # a value its tag cannot hold
        "a: !custom x\n",  # an unknown tag
        "a: &x 1\nb: *x\n",  # an alias
        "base: &b {x: 1}\nc:\n  <<: *b\n",  # a merge key
        "a: " + "[" * 300 + "]" * 300 + "\n",  # deeper than the limit
    ],
)
def test_what_the_plain_builder_does_not_understand_goes_to_the_general_path(text: str) -> None:
    try:
        node = compose(text)
    except yaml.YAMLError:  # pragma: no cover - every case above is YAML
        pytest.fail("not YAML")
    if "*" in text:  # an alias: the builder would copy, the general path shares
        assert parse_node(text.encode(), "yaml", "t.yaml")[0]
        return
    with pytest.raises(_NotPlain):
        _build_plain(node)


def test_the_general_path_still_names_what_is_wrong() -> None:
    with pytest.raises(ConfigParseError, match="duplicate key 'a'") as caught:
        parse_node(b"x: 0\na: 1\na: 2\n", "yaml", "t.yaml")
    assert (caught.value.line, caught.value.column) == (3, 1)
    with pytest.raises(ConfigParseError, match=r"cannot be read as tag:yaml\.org,2002:int"):
        parse_node(b"a: !!int abc\n", "yaml", "t.yaml")


def test_a_timestamp_and_binary_value_are_built_by_the_safe_constructor_s_own_functions() -> None:
    text = "t: 2024-01-02 03:04:05Z\nb: !!binary aGVsbG8=\nd: 2024-01-02\n"
    data, _ = parse_node(text.encode(), "yaml", "t.yaml")
    assert same(data, yaml.load(text, Loader=_Loader))  # noqa: S506 - the C *safe* loader
    assert data["b"] == b"hello"
    assert isinstance(data["t"], datetime.datetime)
    assert isinstance(data["d"], datetime.date)


@pytest.mark.parametrize("name", ["demo", "spellings"])
def test_real_documents_take_the_plain_path_and_build_the_same(name: str) -> None:
    from hotreload._demo import DEMO_CONFIG

    text = (
        DEMO_CONFIG
        if name == "demo"
        else "".join(f"k{i}: {s}\n" for i, s in enumerate(SPELLINGS) if _composes(s))
    )
    expected = yaml.constructor.SafeConstructor().construct_document(compose(text))
    assert same(_build_plain(compose(text)), expected)  # no _NotPlain: the fast path is taken


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(scalars, st.text(max_size=12)),
    kind=st.sampled_from([yaml.ScalarNode, yaml.SequenceNode, yaml.MappingNode]),
    implicit=st.tuples(st.booleans(), st.booleans()),
)
def test_the_loader_s_own_resolver_gives_pyyaml_s_tags(
    value: str, kind: type[yaml.Node], implicit: tuple[bool, bool]
) -> None:
    """`_StrictLoader.resolve` (no path resolvers, its own copy of the safe resolvers) is
    PyYAML's general resolver tag for tag, on every spelling YAML 1.1 types and any text."""
    from hotreload._parsing import _StrictLoader

    ours = _StrictLoader("a: 1")
    theirs: Any = yaml.SafeLoader("a: 1")
    try:
        assert ours.resolve(kind, value, implicit) == theirs.resolve(kind, value, implicit)
    finally:
        ours.dispose()
        theirs.dispose()
