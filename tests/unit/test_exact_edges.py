"""The pure core at its exact edges: each limit on both sides of the line, masked text checked
for what it holds (not only for what it lacks), documents only the JSON parser reads the way
it does, and the diff's corner cases. Found by mutation testing (``nox -s mutate``): every
test here fails on a mutant that the rest of the suite let through."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pytest

from hotreload import ConfigParseError, ConfigReadError, ConfigValidationError, Secret
from hotreload._diff import changed_paths, retain
from hotreload._fields import FieldPolicy, RestartRequired
from hotreload._file_source import read_file
from hotreload._parsing import MAX_DEPTH, MAX_EXPANDED_NODES, parse
from hotreload._pipeline import Pipeline

# -- limits -------------------------------------------------------------------------------------


def nested(levels: int) -> bytes:
    """``levels`` lists, each inside the one before, the innermost empty."""
    return b"[" * levels + b"]" * levels


def flat(items: int) -> bytes:
    """One list of ``items`` scalars: the root and ``items`` nodes below it."""
    return b"[" + b",".join([b"1"] * items) + b"]"


def test_the_limits_are_the_documented_ones() -> None:
    assert (MAX_DEPTH, MAX_EXPANDED_NODES) == (200, 100_000)


def test_exactly_max_depth_levels_are_accepted_and_one_more_refused() -> None:
    data = parse(nested(MAX_DEPTH), "yaml", "deep.yaml")
    for _ in range(MAX_DEPTH - 1):
        [data] = data
    assert data == []
    with pytest.raises(ConfigParseError, match=f"nesting is deeper than {MAX_DEPTH} levels"):
        parse(nested(MAX_DEPTH + 1), "yaml", "deep.yaml")


def test_exactly_max_nodes_are_accepted_and_one_more_refused() -> None:
    assert len(parse(flat(MAX_EXPANDED_NODES), "yaml", "big.yaml")) == MAX_EXPANDED_NODES
    with pytest.raises(ConfigParseError, match=f"more than {MAX_EXPANDED_NODES} nodes"):
        parse(flat(MAX_EXPANDED_NODES + 1), "yaml", "big.yaml")


def test_an_alias_expansion_at_the_node_limit_is_accepted_and_one_over_refused() -> None:
    """The exact walk (used once the cheap pass runs out of budget) draws the same line."""
    half = MAX_EXPANDED_NODES // 2
    items = b",".join([b"1"] * (half - 1))
    at_limit = b"a: &a [" + items + b"]\nb: *a\n"  # 2 keys + 2 x (half - 1) items
    assert len(parse(at_limit, "yaml", "alias.yaml")["b"]) == half - 1
    over = b"a: &a [" + items + b",1]\nb: *a\nc: 1\n"
    with pytest.raises(ConfigParseError, match=f"more than {MAX_EXPANDED_NODES} nodes"):
        parse(over, "yaml", "alias.yaml")


def test_a_deep_document_that_also_runs_out_of_budget_is_refused_for_its_size() -> None:
    """Nesting of exactly the limit is no reason to refuse: the exact walk must not say it is."""
    wide = b"[" * (MAX_DEPTH - 1) + flat(MAX_EXPANDED_NODES) + b"]" * (MAX_DEPTH - 1)
    with pytest.raises(ConfigParseError, match="nodes") as info:
        parse(wide, "yaml", "deep.yaml")
    assert "nesting" not in info.value.message


def test_the_read_is_bounded_at_max_bytes_plus_one(tmp_path: Path) -> None:
    """A file far over the limit is refused after reading max_bytes + 1, not the whole file:
    the process's read counter (Linux ``rchar``) moves by one buffer, not by the file's size."""
    io = Path("/proc/self/io")
    if not io.exists():
        pytest.skip("needs /proc/self/io")
    path = tmp_path / "huge.yaml"
    size = 8 << 20
    path.write_bytes(b"a" * size)

    def rchar() -> int:
        fields = dict(line.split(": ") for line in io.read_text().splitlines())
        return int(fields["rchar"])

    before = rchar()
    with pytest.raises(ConfigReadError) as info:
        read_file(str(path), 16, "huge.yaml")
    moved = rchar() - before
    assert info.value.reason == "too_large"
    assert moved < size // 8, f"read {moved} bytes of an {size}-byte file to refuse it"


def test_the_read_limit_is_exact(tmp_path: Path) -> None:
    """A file exactly max_bytes + 1 long is refused; one of max_bytes is read whole."""
    path = tmp_path / "edge.yaml"
    path.write_bytes(b"b" * 17)
    with pytest.raises(ConfigReadError, match="16-byte limit"):
        read_file(str(path), 16, "edge.yaml")
    path.write_bytes(b"b" * 16)
    assert read_file(str(path), 16, "edge.yaml") == b"b" * 16
    os.truncate(path, 0)
    assert read_file(str(path), 16, "edge.yaml") == b""


# -- JSON is read by the JSON parser ------------------------------------------------------------


def test_json_reads_1e3_as_a_number_where_yaml_reads_text() -> None:
    assert parse(b'{"a": 1e3}', "json", "c.json") == {"a": 1000.0}
    assert parse(b'{"a": 1e3}', "yaml", "c.yaml") == {"a": "1e3"}


def test_a_json_null_document_is_called_null() -> None:
    with pytest.raises(ConfigParseError) as info:
        parse(b"null", "json", "c.json")
    assert info.value.message == "the document is null"
    with pytest.raises(ConfigParseError) as info:
        parse(b"null", "yaml", "c.yaml")
    assert info.value.message == "the document is empty (it holds only comments)"


def test_toml_is_read_by_the_toml_parser() -> None:
    assert parse(b"a = 1979-05-27\n", "toml", "c.toml") == {"a": datetime.date(1979, 5, 27)}
    assert parse(b"a: 1979-05-27\n", "yaml", "c.yaml") == {"a": datetime.date(1979, 5, 27)}
    with pytest.raises(ConfigParseError):
        parse(b"a: 1979-05-27\n", "toml", "c.toml")


# -- merge keys -----------------------------------------------------------------------------------


def test_a_duplicate_key_after_a_merge_key_is_refused() -> None:
    doc = b"base: &b {x: 1}\nm:\n  <<: *b\n  y: 1\n  y: 2\n"
    with pytest.raises(ConfigParseError, match="found duplicate key 'y'") as info:
        parse(doc, "yaml", "merge.yaml")
    assert (info.value.line, info.value.column) == (5, 3)


def test_a_key_that_overrides_a_merged_one_is_not_a_duplicate() -> None:
    doc = b"base: &b {x: 1, z: 3}\nm:\n  <<: *b\n  x: 2\n"
    assert parse(doc, "yaml", "merge.yaml")["m"] == {"x": 2, "z": 3}


# -- secrets: masked in place ---------------------------------------------------------------------


class Creds(msgspec.Struct, forbid_unknown_fields=True):
    api_key: str
    note: str = ""
    vault: Annotated[str, Secret] = ""


def test_a_four_character_secret_is_masked_and_a_three_character_one_is_not() -> None:
    """Three characters would mask every ``the`` in a message; four is the shortest secret."""
    policy = FieldPolicy(Creds)
    assert policy.secret_values({"api_key": "abcd", "note": "wxyz"}) == {"abcd"}
    assert policy.secret_values({"api_key": "abc"}) == set()
    assert policy.scrub("key abcd, not abc", {"api_key": "abcd"}) == "key ***, not abc"
    assert policy.scrub("key abc stays", {"api_key": "abc"}) == "key abc stays"


def test_every_secret_is_masked_where_it_was_and_the_rest_is_kept() -> None:
    policy = FieldPolicy(Creds)
    data = {"api_key": "sk-1234", "vault": "sk-1234-long", "note": "plain"}
    text = "refused sk-1234-long and sk-1234 for plain reasons"
    assert policy.scrub(text, data) == "refused *** and *** for plain reasons"


def test_a_validator_quoting_a_secret_is_masked_in_the_error_in_place() -> None:
    def no_test_keys(c: Creds) -> None:
        if c.api_key.startswith("sk-test"):
            raise ValueError(f"{c.api_key} is a test key")

    pipeline = Pipeline(
        Creds,
        source="creds.yaml",
        fmt="yaml",
        max_bytes=4096,
        validators=[no_test_keys],
        policy=FieldPolicy(Creds),
    )
    with pytest.raises(ConfigValidationError) as info:
        pipeline.load(b"api_key: sk-test-9f8e7d\n")
    err = info.value
    expected = "rejected by validator no_test_keys: *** is a test key"
    assert err.message == expected
    assert err.args == ("creds.yaml", expected)
    assert str(err) == f"creds.yaml: {expected}"


class Mode(msgspec.Struct):
    token: Literal["fast", "slow"]


def test_an_enum_value_quoted_by_msgspec_is_masked_in_place() -> None:
    pipeline = Pipeline(
        Mode, source="m.yaml", fmt="yaml", max_bytes=4096, validators=[], policy=FieldPolicy(Mode)
    )
    evaluation = pipeline.evaluate(b"token: hunter22\n", pipeline.load(b"token: fast\n"))
    err = evaluation.error
    assert isinstance(err, ConfigValidationError)
    assert "hunter22" not in str(err)
    assert err.message.startswith("Invalid enum value ")
    assert "***" in err.message
    assert err.field_path == "token"


# -- the diff ------------------------------------------------------------------------------------


def test_changed_paths_of_mixed_key_types_are_sorted_as_text() -> None:
    old: dict[Any, Any] = {1: "a", "b": 2, "c": 1}
    new: dict[Any, Any] = {1: "z", "b": 2, "c": 2}
    assert list(changed_paths(old, new)) == [("1",), ("c",)]


def test_a_key_added_with_a_null_value_is_a_change() -> None:
    assert list(changed_paths({}, {"a": None})) == [("a",)]
    assert list(changed_paths({"a": None}, {})) == [("a",)]


class Held(msgspec.Struct):
    a: dict[str, int] | None = None
    b: Annotated[int, RestartRequired] = 0


def test_retain_keeps_every_root_even_after_one_it_cannot_put_back() -> None:
    """A root whose parent is gone from the new file is skipped; the next is still kept."""
    policy = FieldPolicy(Held, restart_required=["a.x"])
    running = {"a": {"x": 1}, "b": 1}
    new = {"a": None, "b": 2}
    changed = list(changed_paths(running, new))
    effective, roots = retain(running, new, [("a", "x"), *changed], policy)
    assert roots == [("a", "x"), ("b",)]
    assert effective == {"a": None, "b": 1}
