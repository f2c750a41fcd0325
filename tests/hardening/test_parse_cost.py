"""The hot path's cost: parsing and naming unknown keys stay near the floor
(``yaml.load(CSafeLoader)`` + ``msgspec.convert`` + sha256), and nothing is quadratic.

No wall clock: every cost is process CPU time (the best of several repeats), compared with a
baseline measured in the same test. Where the fix is "this is not done at all" (a second
compose, a Python override on the path every value takes), the test counts the calls instead.
"""

from __future__ import annotations

import difflib
import gc
import time
import typing
import weakref
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import yaml

import hotreload._parsing
from hotreload import ConfigParseError
from hotreload._fields import FieldPolicy
from hotreload._parsing import parse
from hotreload._pipeline import Pipeline
from hotreload._unknown import MAX_SUGGESTIONS, find_unknown


class Llm(msgspec.Struct, frozen=True):
    model: str = "gpt-4"
    temperature: float = 0.5


class Open(msgspec.Struct, frozen=True):
    """Unknown keys allowed: each is named, located and given a suggestion."""

    model: str = "gpt-4"
    retries: int = 3
    llm: Llm = msgspec.field(default_factory=Llm)


def pipeline(schema: Any = Open, *, strict: bool = False) -> Pipeline[Any]:
    return Pipeline(
        schema,
        source="cost.yaml",
        fmt="yaml",
        max_bytes=1 << 22,
        validators=(),
        policy=FieldPolicy(schema),
        strict=strict,
    )


def cpu(fn: Callable[[], object], *, repeats: int = 5, number: int = 1) -> float:
    """The best of ``repeats`` runs of ``number`` calls, in process CPU seconds.

    The cyclic collector is off while it runs: a full collection scans every live object,
    so its share grows with the test process's heap, not with the code measured."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            started = time.process_time()
            for _ in range(number):
                fn()
            best = min(best, time.process_time() - started)
        finally:
            gc.enable()
    return best


def block_document(sections: int = 300) -> bytes:
    """A block-style config of nested mappings and scalars, without aliases."""
    lines = ["model: gpt-5"]
    for i in range(sections):
        lines += [
            f"section_{i}:",
            f"  name: item-{i}",
            "  enabled: true",
            "  retries: 3",
            "  ratio: 0.5",
            "  tags: [a, b, c]",
            "  nested:",
            "    deep: value   # a comment with a glob: kubernetes.*",
        ]
    return ("\n".join(lines) + "\n").encode()


# -- 1. the document is composed once --------------------------------------------------------


@pytest.fixture
def composes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every compose of a document: the parser's and any `yaml.compose`."""
    count = [0]
    strict = hotreload._parsing._StrictLoader
    original = strict.get_single_node

    def get_single_node(self: Any) -> Any:
        count[0] += 1
        return original(self)

    original_compose = yaml.compose

    def compose(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original_compose(*args, **kwargs)

    monkeypatch.setattr(strict, "get_single_node", get_single_node)
    monkeypatch.setattr(yaml, "compose", compose)
    return count


def test_unknown_keys_are_located_without_composing_the_document_again(
    composes: list[int],
) -> None:
    p = pipeline()
    active = p.load(b"model: a\n")
    composes[0] = 0
    evaluation = p.evaluate(b"model: b\nmodle: x\nllm:\n  temprature: 1\n", active)
    assert evaluation.unknown is not None
    assert [(k.dotted, k.line, k.column) for k in evaluation.unknown] == [
        ("modle", 2, 1),
        ("llm.temprature", 4, 3),
    ]
    assert composes[0] == 1


def test_a_schema_error_is_located_without_composing_the_document_again(
    composes: list[int],
) -> None:
    p = pipeline()
    active = p.load(b"model: a\n")
    composes[0] = 0
    evaluation = p.evaluate(b"model: b\nllm:\n  temperature: hot\n", active)
    error = evaluation.error
    assert error is not None
    assert (error.field_path, error.line, error.column) == ("llm.temperature", 3, 16)  # type: ignore[attr-defined]
    assert composes[0] == 1


@pytest.mark.parametrize("strict", [False, True], ids=["schema-error", "strict-unknown"])
def test_a_kept_error_does_not_keep_the_node_tree_alive(
    strict: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error outlives the change (the reloader keeps the last one): the node tree the
    document was built from, and that located the error, must not live as long."""
    roots: list[weakref.ref[yaml.Node]] = []
    loader = hotreload._parsing._StrictLoader
    original = loader.get_single_node

    def get_single_node(self: Any) -> Any:
        node = original(self)
        roots.append(weakref.ref(node))
        return node

    monkeypatch.setattr(loader, "get_single_node", get_single_node)
    p = pipeline(strict=strict)
    active = p.load(b"model: a\n")
    roots.clear()
    bad = b"model: b\nmodle: x\n" if strict else b"model: b\nllm:\n  temperature: hot\n"
    evaluation = p.evaluate(bad, active)
    assert evaluation.error is not None
    assert evaluation.error.line is not None  # type: ignore[attr-defined]
    gc.collect()
    assert roots
    assert all(root() is None for root in roots)


def test_a_kept_parse_error_does_not_keep_the_node_graph_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refused bomb's error is kept too: its context (the limit broken, at a node) must not
    keep the composed graph alive with it."""
    roots: list[weakref.ref[yaml.Node]] = []
    strict = hotreload._parsing._StrictLoader
    original = strict.get_single_node

    def get_single_node(self: Any) -> Any:
        node = original(self)
        roots.append(weakref.ref(node))
        return node

    monkeypatch.setattr(strict, "get_single_node", get_single_node)
    with pytest.raises(ConfigParseError) as info:
        parse(b"a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n", "yaml", "x", max_text=9)
    kept = info.value
    info = None  # type: ignore[assignment]
    assert "more than 9 bytes of text" in kept.message
    gc.collect()
    assert roots
    assert all(root() is None for root in roots)


# -- 2. unknown keys cost O(N) -----------------------------------------------------------------


def stray(count: int) -> bytes:
    return ("model: b\n" + "".join(f"stray_{i:05d}: {i}\n" for i in range(count))).encode()


def test_unknown_keys_cost_linear_time() -> None:
    """4,000 stray keys (43 KB) held the loop for up to a second and 6,000 for 3 s: each was
    located by scanning its mapping again. Eight times the keys must cost about eight times as
    much (64 times, quadratic); the bound leaves room for a noisy, shared machine."""
    p = pipeline()
    active = p.load(b"model: a\n")
    small, large = stray(1_000), stray(8_000)
    assert len(p.evaluate(large, active).unknown or ()) == 8_000
    last = p.evaluate(large, active).unknown
    assert last is not None
    assert (last[-1].dotted, last[-1].line, last[-1].column) == ("stray_07999", 8_001, 1)
    ratio = cpu(lambda: p.evaluate(large, active), repeats=5) / cpu(
        lambda: p.evaluate(small, active), repeats=5
    )
    assert ratio < 24, f"8x the unknown keys cost {ratio:.1f}x"


def test_a_key_merged_in_and_given_again_is_located_at_the_one_in_force() -> None:
    """The per-mapping index keeps the last pair of a key: the mapping's own, not the
    merged-in one it overrides."""
    p = pipeline()
    active = p.load(b"model: a\n")
    raw = b"base: &b {modle: 1}\nllm:\n  <<: *b\n  modle: 2\n"
    evaluation = p.evaluate(raw, active)
    assert evaluation.unknown is not None
    where = {k.dotted: (k.line, k.column) for k in evaluation.unknown}
    assert where == {"base": (1, 1), "llm.modle": (4, 3)}


# -- 3. the unknown-key walk: a plan per schema, free-form subtrees skipped ----------------


class Tool(msgspec.Struct, frozen=True):
    enabled: bool = True
    config: dict[str, Any] = {}


class Catalog(msgspec.Struct, frozen=True):
    model: str = "gpt-4"
    tools: dict[str, Tool] = {}
    extra: Any = None


def catalog(size: int) -> dict[str, Any]:
    """``size`` tools whose free-form ``config`` holds 100 nested values each, plus one
    unknown key per tool."""
    free = {f"k{i}": {"a": [1, 2, {"b": i}]} for i in range(25)}
    tools = {f"t{i}": {"enabled": True, "config": free, "enabld": False} for i in range(size)}
    return {"model": "x", "tools": tools, "extra": {"deep": [free] * size}}


def test_the_walk_does_not_descend_into_free_form_subtrees() -> None:
    """``dict[str, Any]`` and ``Any`` hold no record: their size must not matter."""
    small, large = catalog(20), catalog(20)
    big = {f"k{i}": {"a": [1, 2, {"b": i}]} for i in range(2_500)}
    for tool in large["tools"].values():
        tool["config"] = big
    large["extra"] = {"deep": [big] * 20}
    assert len(find_unknown(Catalog, large)) == len(find_unknown(Catalog, small)) == 20
    ratio = cpu(lambda: find_unknown(Catalog, large), number=20) / cpu(
        lambda: find_unknown(Catalog, small), number=20
    )
    assert ratio < 3, f"100 times the free-form values cost {ratio:.1f}x"


def test_the_plan_is_made_once_per_schema_and_suggestions_once_per_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Fresh(msgspec.Struct, frozen=True):  # a type no other test planned for
        model: str = ""
        tools: dict[str, Tool] = {}

    data = {"modle": "x", "tools": {"a": {"enabld": True}, "b": {"enabled": True}}}
    first = [(k.dotted, k.suggestion) for k in find_unknown(Fresh, data)]
    assert first == [("modle", "model"), ("tools.a.enabld", "tools.a.enabled")]
    calls = {"get_origin": 0, "get_close_matches": 0}
    for module, name in ((typing, "get_origin"), (difflib, "get_close_matches")):
        original = getattr(module, name)

        def counted(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            calls[_name] += 1
            return _original(*args, **kw)

        monkeypatch.setattr(module, name, counted)
    again = [(k.dotted, k.suggestion) for k in find_unknown(Fresh, data)]
    assert again == first
    assert calls == {"get_origin": 0, "get_close_matches": 0}


def test_suggestions_are_capped_per_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """difflib costs about 100 µs a key: only the first 32 of a document get a suggestion."""
    calls = [0]
    original = difflib.get_close_matches

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counted)
    data = {f"modl_{i:04d}": i for i in range(500)}
    found = find_unknown(Open, data)
    assert len(found) == 500
    assert calls[0] == MAX_SUGGESTIONS == 32
    assert all(key.suggestion is None for key in found[32:])


# -- 4. constructing on libyaml's fast path ----------------------------------------------------


@pytest.fixture
def strict_constructions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the calls of `_StrictLoader`'s Python overrides (the error path's constructor)."""
    count = [0]
    strict = hotreload._parsing._StrictLoader
    for name in ("construct_object", "construct_mapping"):
        original = getattr(strict, name)

        def counted(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            count[0] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(strict, name, counted)
    return count


def test_a_valid_document_is_built_without_the_strict_constructor(
    strict_constructions: list[int],
) -> None:
    data = parse(block_document(20), "yaml", "cost.yaml")
    assert data["section_3"]["nested"] == {"deep": "value"}
    assert strict_constructions[0] == 0


@pytest.mark.parametrize(
    ("raw", "message", "where"),
    [
        (b"a: 1\nb: 2\na: 3\n", "found duplicate key 'a'", (3, 1)),
        (b"x:\n  1: a\n  0x1: b\n", "found duplicate key 1", (3, 3)),
        (b"1: a\ntrue: b\n", "found duplicate key True", (2, 1)),
        (b"a: &x {k: 1}\nb: *x\nc: {k: 1, k: 2}\n", "found duplicate key 'k'", (3, 11)),
        (b"a: !!int abc\n", "the value cannot be read as tag:yaml.org,2002:int", (1, 4)),
        (b"? [1]\n: a\n", "found unhashable key", (1, 3)),
    ],
    ids=["str", "int-spellings", "bool-is-int", "aliased-document", "bad-tag", "unhashable"],
)
def test_errors_found_on_the_fast_path_are_reported_by_the_strict_one(
    raw: bytes, message: str, where: tuple[int, int], strict_constructions: list[int]
) -> None:
    with pytest.raises(ConfigParseError) as info:
        parse(raw, "yaml", "cost.yaml")
    assert message in info.value.message
    assert (info.value.line, info.value.column) == where
    assert strict_constructions[0] > 0


def test_keys_that_only_look_alike_are_not_duplicates() -> None:
    assert parse(b'"1": a\n1: b\n"false": c\nfalse: d\n', "yaml", "cost.yaml") == {
        "1": "a",
        1: "b",
        "false": "c",
        False: "d",
    }


# -- 5. the alias walk only where there can be an alias ----------------------------------------


@pytest.fixture
def alias_walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    count = [0]
    original = hotreload._parsing._check_nodes

    def check_nodes(*args: Any, **kwargs: Any) -> None:
        count[0] += 1
        original(*args, **kwargs)

    monkeypatch.setattr(hotreload._parsing, "_check_nodes", check_nodes)
    return count


@pytest.mark.parametrize(
    ("raw", "walks"),
    [
        (b"a: 1\nb: [x, y]  # kubernetes.*, a*b\nc: '*.yaml'\n", 0),
        (b"a: &x [1]\nb: *x\n", 1),
        (b"a: {k: 1}\nb:\n  <<: {k: 2}\n", 1),
    ],
    ids=["no-alias", "alias", "merge-key"],
)
def test_the_alias_walk_runs_only_where_an_alias_or_merge_key_can_be(
    raw: bytes, walks: int, alias_walks: list[int]
) -> None:
    parse(raw, "yaml", "cost.yaml", max_text=1 << 20)
    assert alias_walks[0] == walks


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"a: " + b"[" * 300 + b"]" * 300 + b"\n", "nesting is deeper than 200 levels"),
        (b"a: [" + b"x, " * 100_001 + b"]\n", "the document has more than 100000 nodes"),
        (b'a: "' + b"\\L" * 600 + b'"\n', "aliases expand to more than 1000 bytes of text"),
    ],
    ids=["depth", "nodes", "escapes-longer-than-their-bytes"],
)
def test_the_limits_hold_without_aliases(raw: bytes, message: str) -> None:
    with pytest.raises(ConfigParseError) as info:
        parse(raw, "yaml", "cost.yaml", max_text=1000)
    assert message in info.value.message


def test_parsing_an_alias_free_document_costs_about_what_libyaml_does() -> None:
    """The floor is ``yaml.load(CSafeLoader)``: the alias walk and the Python overrides of the
    constructor were a third again on top of it (1.4 to 1.5 times; now 1.0 to 1.15)."""
    raw = block_document()
    floor = cpu(lambda: yaml.load(raw, Loader=yaml.CSafeLoader), number=5)
    ours = cpu(lambda: parse(raw, "yaml", "cost.yaml", max_text=1 << 22), number=5)
    assert ours < 1.3 * floor, f"parse costs {ours / floor:.2f} times yaml.load"
