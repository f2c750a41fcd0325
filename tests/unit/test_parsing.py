"""`parse`, `locate` and `format_for`: bytes to plain data, safely, with positions on failure."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from hotreload._errors import ConfigParseError
from hotreload._parsing import (
    MAX_DEPTH,
    MAX_EXPANDED_NODES,
    Format,
    format_for,
    locate,
    locate_all,
    locate_nodes,
    parse,
    parse_node,
)

SOURCE = "conf/config.yaml"


def parse_error(raw: bytes, fmt: Format = "yaml") -> ConfigParseError:
    """The `ConfigParseError` that parsing ``raw`` raises (fails the test if none is raised)."""
    with pytest.raises(ConfigParseError) as info:
        parse(raw, fmt, SOURCE)
    return info.value


# --- well-formed documents -------------------------------------------------------------------


def test_valid_yaml() -> None:
    raw = b"llm:\n  model: gpt-4\n  temperature: 0.5\ntoolsets:\n  - a\n  - b\nenabled: true\n"
    assert parse(raw, "yaml", SOURCE) == {
        "llm": {"model": "gpt-4", "temperature": 0.5},
        "toolsets": ["a", "b"],
        "enabled": True,
    }


def test_valid_json() -> None:
    raw = b'{"llm": {"model": "gpt-4", "temperature": 0.5}, "toolsets": ["a"], "n": null}'
    assert parse(raw, "json", SOURCE) == {
        "llm": {"model": "gpt-4", "temperature": 0.5},
        "toolsets": ["a"],
        "n": None,
    }


def test_valid_toml() -> None:
    raw = b'log_level = "DEBUG"\n\n[llm]\nmodel = "gpt-4"\ntemperature = 0.5\n'
    assert parse(raw, "toml", SOURCE) == {
        "log_level": "DEBUG",
        "llm": {"model": "gpt-4", "temperature": 0.5},
    }


def test_yaml_uses_the_safe_schema_for_scalars() -> None:
    # YAML 1.1 booleans and numbers still come out typed; plain strings stay strings.
    assert parse(b"a: yes\nb: 0x10\nc: '10'\nd: ~\n", "yaml", SOURCE) == {
        "a": True,
        "b": 16,
        "c": "10",
        "d": None,
    }


# --- syntax errors: position, and no document text in the message ---------------------------


def test_yaml_syntax_error_has_one_based_line_and_column() -> None:
    raw = b"llm:\n  model: gpt-4\n  api_key: sk-LEAK-0123: oops\n"
    err = parse_error(raw)
    # The second ':' on line 3 ("  api_key: sk-LEAK-0123" is 23 characters long).
    assert (err.line, err.column) == (3, 24)
    assert err.source == SOURCE
    assert err.reason == "parse"
    assert str(err).startswith(f"{SOURCE}:3:24: ")
    assert "mapping values are not allowed" in err.message


def test_yaml_syntax_error_on_first_line_is_line_one() -> None:
    err = parse_error(b"a: : b\n")
    assert (err.line, err.column) == (1, 4)


@pytest.mark.parametrize(
    ("raw", "fmt"),
    [
        pytest.param(b'llm:\n  api_key: "sk-LEAK-0123\n', "yaml", id="unclosed-double-quote"),
        pytest.param(b"llm:\n  api_key: 'sk-LEAK-0123\n", "yaml", id="unclosed-single-quote"),
        pytest.param(b"llm:\n  api_key: sk-LEAK-0123: x\n", "yaml", id="stray-colon"),
        pytest.param(b"api_key: [sk-LEAK-0123\n", "yaml", id="unclosed-flow"),
        pytest.param(b"llm:\n\tapi_key: sk-LEAK-0123\n", "yaml", id="tab-indent"),
        pytest.param(b"api_key: sk-LEAK-0123\x07\n", "yaml", id="control-character"),
        pytest.param(b"api_key: sk-LEAK-0123\xff\n", "yaml", id="invalid-utf8"),
        pytest.param(b"api_key: sk-LEAK-0123\x00\n", "yaml", id="nul-byte"),
        pytest.param(b"a: 1\napi_key: sk-LEAK-0123\napi_key: sk-LEAK-4567\n", "yaml", id="dup"),
        pytest.param(b'{"api_key": "sk-LEAK-0123}', "json", id="json-unterminated"),
        pytest.param(b'{"api_key": "sk-LEAK-0123" "x": 1}', "json", id="json-missing-comma"),
        pytest.param(b'{"api_key": "sk-LEAK-0123", "api_key": 1}', "json", id="json-dup"),
        pytest.param(b'api_key = "sk-LEAK-0123\n', "toml", id="toml-unterminated"),
        pytest.param(b"api_key = sk-LEAK-0123\n", "toml", id="toml-bare-value"),
    ],
)
def test_error_message_never_contains_document_text(raw: bytes, fmt: Format) -> None:
    err = parse_error(raw, fmt)
    assert "sk-LEAK" not in str(err)
    assert "sk-LEAK" not in repr(err)
    assert all("sk-LEAK" not in str(arg) for arg in err.args)
    # Nor does a chained exception (whose text may quote the document) show in a traceback.
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__


def test_json_syntax_error_has_position() -> None:
    err = parse_error(b'{\n  "a": 1,\n  "b": [1, 2}\n', "json")
    assert (err.line, err.column) == (3, 13)


def test_toml_syntax_error_has_position_and_no_position_suffix_in_message() -> None:
    err = parse_error(b'a = 1\nb = "x"\nc = = 2\n', "toml")
    assert err.line == 3
    assert err.column is not None
    assert "(at line" not in err.message


# --- empty documents -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["yaml", "json", "toml"])
@pytest.mark.parametrize(
    "raw",
    [b"", b"   ", b"\n\n", b" \t\r\n  \n", b"\xef\xbb\xbf", b"\xef\xbb\xbf  \n"],
    ids=["empty", "spaces", "newlines", "mixed-whitespace", "bom-only", "bom-whitespace"],
)
def test_empty_or_whitespace_only_document_is_rejected(raw: bytes, fmt: Format) -> None:
    err = parse_error(raw, fmt)
    assert "empty" in err.message
    assert (err.line, err.column) == (1, 1)


@pytest.mark.parametrize(
    ("raw", "fmt"),
    [
        pytest.param(b"# nothing here yet\n", "yaml", id="yaml-one-comment"),
        pytest.param(b"# a\n\n   # indented comment\n# b\n", "yaml", id="yaml-comments"),
        pytest.param(b"# nothing here yet\n", "toml", id="toml-one-comment"),
    ],
)
def test_comment_only_document_is_rejected_as_empty(raw: bytes, fmt: Format) -> None:
    # A document with nothing but comments holds no config, exactly like an empty one.
    err = parse_error(raw, fmt)
    assert "empty" in err.message


# --- duplicate keys --------------------------------------------------------------------------


def test_yaml_duplicate_key_is_rejected_and_named() -> None:
    err = parse_error(b"model: gpt-4\ntimeout: 5\ntimeout: 10\n")
    assert "duplicate key" in err.message
    assert "'timeout'" in err.message
    assert (err.line, err.column) == (3, 1)


def test_yaml_nested_duplicate_key_is_rejected() -> None:
    err = parse_error(b"llm:\n  model: a\n  provider: x\n  model: b\n")
    assert "'model'" in err.message
    assert (err.line, err.column) == (4, 3)


def test_yaml_duplicate_key_in_flow_mapping_is_rejected() -> None:
    err = parse_error(b"llm: {model: a, model: b}\n")
    assert "'model'" in err.message


def test_json_duplicate_key_is_rejected() -> None:
    err = parse_error(b'{"llm": {"model": "a", "model": "b"}}', "json")
    assert "duplicate key" in err.message
    assert "'model'" in err.message


def test_same_key_in_different_mappings_is_not_a_duplicate() -> None:
    assert parse(b"a:\n  name: x\nb:\n  name: y\n", "yaml", SOURCE) == {
        "a": {"name": "x"},
        "b": {"name": "y"},
    }
    assert parse(b'{"a": {"name": 1}, "b": {"name": 2}}', "json", SOURCE) == {
        "a": {"name": 1},
        "b": {"name": 2},
    }


# --- unsafe tags -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"cmd: !!python/object:os.system {}\n",
        b"cmd: !!python/name:os.system\n",
        b"cmd: !!python/object/apply:os.system ['true']\n",
        b"cmd: !!python/module:os\n",
    ],
    ids=["object", "name", "object-apply", "module"],
)
def test_python_tags_are_rejected(raw: bytes) -> None:
    err = parse_error(raw)
    assert "constructor" in err.message
    assert (err.line, err.column) == (1, 6)


def test_python_apply_tag_does_not_run_anything(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    raw = f"x: !!python/object/apply:os.mkdir ['{target}']\n".encode()
    parse_error(raw)
    assert not target.exists()


# --- alias bombs, cycles and depth -----------------------------------------------------------


def test_billion_laughs_is_rejected_quickly() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    raw = ("\n".join(lines) + "\n").encode()
    assert len(raw) < 1000
    start = time.thread_time()  # CPU time: a busy machine does not stretch it
    err = parse_error(raw)
    refusing = time.thread_time() - start
    assert str(MAX_EXPANDED_NODES) in err.message
    assert "alias" in err.message
    # Quickly, as a ratio: refusing the bomb costs less than accepting the largest plain
    # document the limit admits (measured: a twentieth), so the count stops it early.
    largest = ("a: [" + ", ".join(["lol"] * (MAX_EXPANDED_NODES - 10)) + "]\n").encode()
    start = time.thread_time()
    parse(largest, "yaml", SOURCE)
    accepting = time.thread_time() - start
    assert refusing < accepting, f"{refusing:.3f} s of CPU to refuse, {accepting:.3f} s to accept"


def test_wide_alias_fan_out_beyond_node_limit_is_rejected() -> None:
    # One anchored list of 1,000 items referenced 200 times: 200,000 nodes once expanded.
    items = ", ".join(["x"] * 1000)
    refs = ", ".join(["*base"] * 200)
    raw = f"base: &base [{items}]\nfan: [{refs}]\n".encode()
    err = parse_error(raw)
    assert str(MAX_EXPANDED_NODES) in err.message


def test_moderate_alias_use_is_accepted() -> None:
    # 100 references to a 100-item list: 10,000 nodes, well inside the limit.
    items = ", ".join(["x"] * 100)
    refs = ", ".join(["*base"] * 100)
    data = parse(f"base: &base [{items}]\nfan: [{refs}]\n".encode(), "yaml", SOURCE)
    assert len(data["fan"]) == 100
    assert data["fan"][99] == ["x"] * 100


def test_anchor_and_alias_in_an_ordinary_config_work() -> None:
    raw = b"defaults: &d {retries: 3}\na: *d\nb: *d\n"
    assert parse(raw, "yaml", SOURCE) == {
        "defaults": {"retries": 3},
        "a": {"retries": 3},
        "b": {"retries": 3},
    }


@pytest.mark.parametrize(
    "raw",
    [b"a: &a [*a]\n", b"a: &a {b: *a}\n", b"a: &a\n  b:\n    - c: *a\n"],
    ids=["list", "mapping", "nested"],
)
def test_self_referencing_alias_is_rejected(raw: bytes) -> None:
    err = parse_error(raw)
    assert "refers to itself" in err.message


@pytest.mark.parametrize(
    ("raw", "fmt"),
    [
        pytest.param(b"[" * 10000, "yaml", id="yaml-flow-unclosed"),
        pytest.param(b"[" * 10000 + b"]" * 10000, "yaml", id="yaml-flow-closed"),
        pytest.param(b"{a: " * 10000 + b"1" + b"}" * 10000, "yaml", id="yaml-flow-mapping"),
        pytest.param(b"[" * 10000 + b"]" * 10000, "json", id="json"),
        pytest.param(b"a = " + b"[" * 10000 + b"]" * 10000, "toml", id="toml"),
    ],
)
def test_very_deep_nesting_is_a_parse_error_not_a_crash(raw: bytes, fmt: Format) -> None:
    err = parse_error(raw, fmt)
    assert "nest" in err.message


@pytest.mark.parametrize(
    "prefix",
    [b"", b"team: R&D\n"],
    ids=["no-ampersand", "ampersand-in-a-string"],
)
def test_nesting_beyond_max_depth_is_rejected_whatever_else_the_document_holds(
    prefix: bytes,
) -> None:
    # MAX_DEPTH is the nesting a document may have; whether an unrelated "&" appears in a
    # string value must not change the verdict on the same structure.
    depth = MAX_DEPTH + 50
    raw = prefix + b"a: " + b"[" * depth + b"]" * depth + b"\n"
    err = parse_error(raw)
    assert str(MAX_DEPTH) in err.message


def test_nesting_within_max_depth_is_accepted() -> None:
    depth = 50
    data = parse(b"a: " + b"[" * depth + b"]" * depth + b"\n", "yaml", SOURCE)
    node = data["a"]
    for _ in range(depth - 1):
        assert isinstance(node, list)
        assert len(node) == 1
        node = node[0]
    assert node == []


# --- encoding --------------------------------------------------------------------------------


def test_invalid_utf8_is_rejected_with_position() -> None:
    err = parse_error(b"model: \xff\n")
    assert (err.line, err.column) == (1, 8)
    assert "UTF-8" in err.message
    assert "0xff" in err.message


def test_invalid_utf8_on_a_later_line() -> None:
    err = parse_error(b"a: 1\nbb: ok\nmodel: caf\xe9\n")
    assert (err.line, err.column) == (3, 11)


def test_invalid_utf8_is_rejected_for_json_and_toml_too() -> None:
    assert parse_error(b'{"a": "\xff"}', "json").column == 8
    assert parse_error(b'a = "\xff"\n', "toml").column == 6


def test_nul_byte_is_rejected_with_position() -> None:
    err = parse_error(b"model: gpt\nx: a\x00b\n")
    assert (err.line, err.column) == (2, 5)
    assert "NUL" in err.message


def test_utf8_bom_is_accepted() -> None:
    assert parse(b"\xef\xbb\xbfmodel: gpt-4\n", "yaml", SOURCE) == {"model": "gpt-4"}
    assert parse(b'\xef\xbb\xbf{"model": "gpt-4"}', "json", SOURCE) == {"model": "gpt-4"}
    assert parse(b'\xef\xbb\xbfmodel = "gpt-4"\n', "toml", SOURCE) == {"model": "gpt-4"}


@pytest.mark.parametrize(
    "bad",
    [b"\xff", b"\x00", b": x"],
    ids=["invalid-utf8", "nul", "yaml-syntax"],
)
def test_bom_does_not_shift_first_line_columns(bad: bytes) -> None:
    # The BOM is not part of the document: an error on line 1 is at the same column with or
    # without it, whichever check finds it.
    plain = parse_error(b"model: " + bad + b"\n")
    with_bom = parse_error(b"\xef\xbb\xbfmodel: " + bad + b"\n")
    assert (with_bom.line, with_bom.column) == (plain.line, plain.column) == (1, 8)


def test_non_ascii_text_is_kept() -> None:
    assert parse("greeting: héllo ✓\n".encode(), "yaml", SOURCE) == {"greeting": "héllo ✓"}


# --- merge keys and multiple documents -------------------------------------------------------


def test_yaml_merge_key_works_and_is_not_a_duplicate() -> None:
    raw = (
        b"base: &base\n  model: gpt-4\n  temperature: 0.5\nprod:\n  <<: *base\n  temperature: 0.1\n"
    )
    assert parse(raw, "yaml", SOURCE) == {
        "base": {"model": "gpt-4", "temperature": 0.5},
        "prod": {"model": "gpt-4", "temperature": 0.1},
    }


def test_yaml_merge_of_several_mappings() -> None:
    raw = b"a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: [*a, *b]\n  z: 3\n"
    assert parse(raw, "yaml", SOURCE)["c"] == {"x": 1, "y": 2, "z": 3}


def test_duplicate_key_next_to_a_merge_key_is_still_rejected() -> None:
    raw = b"base: &base {a: 1}\nchild:\n  <<: *base\n  b: 2\n  b: 3\n"
    err = parse_error(raw)
    assert "'b'" in err.message


@pytest.mark.parametrize(
    "raw",
    [b"a: 1\n---\nb: 2\n", b"---\na: 1\n---\nb: 2\n"],
    ids=["two", "two-with-leading-marker"],
)
def test_multiple_yaml_documents_are_rejected(raw: bytes) -> None:
    err = parse_error(raw)
    assert "single document" in err.message
    assert err.line is not None
    assert err.line >= 2


def test_single_document_with_explicit_markers_is_accepted() -> None:
    assert parse(b"---\na: 1\n...\n", "yaml", SOURCE) == {"a": 1}


# --- format_for ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("config.yaml", "yaml"),
        ("/etc/holmesgpt/config.yml", "yaml"),
        ("settings.json", "json"),
        ("pyproject.toml", "toml"),
        ("CONFIG.JSON", "json"),
        ("Config.Toml", "toml"),
        ("CONFIG.YAML", "yaml"),
        ("config", "yaml"),
        ("/etc/app/..data/config", "yaml"),
        ("config.conf", "yaml"),
        ("config.json.bak", "yaml"),
    ],
)
def test_format_for_suffix(path: str, expected: Format) -> None:
    assert format_for(path) == expected


# --- locate ----------------------------------------------------------------------------------

LOCATE_DOC = b"llm:\n  model: gpt-4\n  temperature: hot\nitems:\n  - name: a\n  - name: 3\n"


def test_locate_points_at_the_value() -> None:
    assert locate(LOCATE_DOC, "yaml", ["llm", "temperature"]) == (3, 16)


def test_locate_at_key_points_at_the_key() -> None:
    assert locate(LOCATE_DOC, "yaml", ["llm", "temperature"], at_key=True) == (3, 3)


def test_locate_through_a_list_index() -> None:
    assert locate(LOCATE_DOC, "yaml", ["items", 1, "name"]) == (6, 11)


def test_locate_stops_at_the_deepest_node_found() -> None:
    # "llm.missing" does not exist: the walk stops at the llm mapping itself.
    assert locate(LOCATE_DOC, "yaml", ["llm", "missing"]) == (2, 3)
    # An index past the end stops at the sequence.
    assert locate(LOCATE_DOC, "yaml", ["items", 7]) == (5, 3)


def test_locate_gives_none_for_json_toml_and_broken_yaml() -> None:
    assert locate(b'{"llm": {"model": 1}}', "json", ["llm", "model"]) is None
    assert locate(b"[llm]\nmodel = 1\n", "toml", ["llm", "model"]) is None
    assert locate(b"a: [\n", "yaml", ["a"]) is None


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("a: 1\nb: !!int sk-PLANTED-tag\n", "int"),
        ("a: 1\nb: !!timestamp sk-PLANTED-tag\n", "timestamp"),
        ("a: 1\nb: !!float sk-PLANTED-tag\n", "float"),
        ("a: 1\nb: [!!bool sk-PLANTED-tag]\n", "bool"),
    ],
)
def test_a_value_its_explicit_tag_cannot_hold_is_a_parse_error_at_its_node(
    text: str, tag: str
) -> None:
    """PyYAML's constructors raise bare ValueError/AttributeError here; ours say where, and
    never quote the value."""
    with pytest.raises(ConfigParseError) as info:
        parse(text.encode(), "yaml", "c.yaml")
    error = info.value
    assert (error.line, error.source) == (2, "c.yaml")
    assert f"cannot be read as tag:yaml.org,2002:{tag}" in str(error)
    assert "PLANTED" not in str(error)


def test_a_name_on_no_node_or_on_a_scalar_or_a_list_locates_nothing() -> None:
    # Kills _node_position's `isinstance(node, MappingNode) or isinstance(seg, str)`
    # (__mutmut_3, #23): a field name meets no tree (JSON and TOML have none), a scalar or a
    # sequence; none of them is indexed by key (None has no `.value`, a scalar's text and a
    # list's nodes are not pairs): the walk stops where it is.
    assert locate_nodes(None, [["llm", "model"]]) == [None]
    _, node = parse_node(b"llm: abc\nitems: [x, y]\n", "yaml", "s.yaml")
    assert locate_nodes(node, [["llm", "model"], ["items", "name"]]) == [(1, 6), (2, 8)]


def test_a_path_stops_at_the_deepest_node_it_finds() -> None:
    # Kills _node_position's `key = ""` before the walk (__mutmut_1: an empty path with
    # `at_key` is the root itself), `return` for `break` at a missing key (__mutmut_22: the
    # mapping that lacks it is named) and `seg <= len` (__mutmut_26: one past the last item is
    # the list, not an IndexError) (#23).
    _, node = parse_node(b"llm:\n  model: x\nitems:\n  - a\n", "yaml", "s.yaml")
    assert locate_nodes(node, [[]], at_key=True) == [(1, 1)]
    assert locate_nodes(node, [["llm", "missing"]]) == [(2, 3)]
    assert locate_nodes(node, [["items", 1]]) == [(4, 3)]


def test_a_duplicate_inside_a_mapping_key_is_reported_as_such() -> None:
    # Kills _StrictLoader.construct_mapping's key built with `deep` None, left out or False
    # (__mutmut_7/9/10) and construct_object's `deep` not passed on (__mutmut_3/5) (#23): a
    # key built shallow is an empty dict still to be filled, refused as unhashable before its
    # own duplicate is seen; built deep, the duplicate inside it is the error, where it is.
    with pytest.raises(ConfigParseError) as info:
        parse(b"? {a: 1, a: 2}\n: x\n", "yaml", "s.yaml")
    assert "found duplicate key 'a'" in info.value.message
    assert (info.value.line, info.value.column) == (1, 10)


def test_locate_all_points_at_values_by_default() -> None:
    # Kills locate_all's `at_key=True` default (__mutmut_1, #23).
    assert locate_all(b"model: gpt-4\n", "yaml", [["model"]]) == [(1, 8)]


def test_locate_all_reads_invalid_utf8_with_replacement_characters() -> None:
    # Kills locate_all's decode made strict or given an unknown error handler
    # (__mutmut_14/17/18, #23): `locate` is asked about any bytes, and answers, never raises.
    assert locate_all(b"a: \xff\nb: 2\n", "yaml", [["b"]]) == [(2, 4)]


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="libyaml is not installed")
def test_locate_all_composes_deep_nesting_with_libyaml() -> None:
    # Kills locate_all's `yaml.compose` with its default (pure-Python) Loader (__mutmut_10,
    # #23): libyaml composes 500 levels, the pure-Python composer runs out of recursion.
    raw = b"[" * 500 + b"]" * 500
    assert locate_all(raw, "yaml", [[0, 0]]) == [(1, 3)]
