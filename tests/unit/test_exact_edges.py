"""The pure core at its exact edges: each limit on both sides of the line, masked text checked
for what it holds (not only for what it lacks), documents only the JSON parser reads the way
it does, and the diff's corner cases. Found by mutation testing (``nox -s mutate``): every
test here fails on a mutant that the rest of the suite let through."""

from __future__ import annotations

import datetime
import hashlib
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pytest
import yaml

import hotreload._parsing
from hotreload import ConfigParseError, ConfigReadError, ConfigValidationError, Secret
from hotreload._diff import changed_paths, retain
from hotreload._fields import FieldPolicy, RestartRequired
from hotreload._file_source import read_file
from hotreload._parsing import (
    MAX_DEPTH,
    MAX_EXPANDED_NODES,
    Format,
    locate,
    parse,
    parse_node,
)
from hotreload._pipeline import Pipeline
from hotreload._provenance import Document


def pipeline_for(
    schema: type[Any],
    source: str,
    *,
    fmt: Format = "yaml",
    validators: Sequence[Any] = (),
    policy: FieldPolicy | None = None,
) -> Pipeline[Any]:
    return Pipeline(
        schema,
        source=source,
        fmt=fmt,
        max_bytes=4096,
        validators=validators,
        policy=policy or FieldPolicy(schema),
    )


# -- limits -------------------------------------------------------------------------------------


def nested(levels: int) -> bytes:
    """``levels`` lists, each inside the one before, the innermost empty."""
    return b"[" * levels + b"]" * levels


def flat(items: int) -> bytes:
    """One list of ``items`` scalars: ``items + 1`` nodes (every node counts, the root too)."""
    return b"[" + b",".join([b"1"] * items) + b"]"


def test_the_limits_are_the_documented_ones() -> None:
    assert (MAX_DEPTH, MAX_EXPANDED_NODES) == (200, 100_000)


def test_exactly_max_depth_levels_are_accepted_and_one_more_refused() -> None:
    data = parse(nested(MAX_DEPTH), "yaml", "deep.yaml")
    for _ in range(MAX_DEPTH - 1):
        [data] = data
    assert data == []
    with pytest.raises(ConfigParseError, match=f"nesting is deeper than {MAX_DEPTH} levels") as e:
        parse(nested(MAX_DEPTH + 1), "yaml", "deep.yaml")
    assert e.value.source == "deep.yaml"


def test_exactly_max_nodes_are_accepted_and_one_more_refused() -> None:
    assert len(parse(flat(MAX_EXPANDED_NODES - 1), "yaml", "big.yaml")) == MAX_EXPANDED_NODES - 1
    with pytest.raises(ConfigParseError, match=f"more than {MAX_EXPANDED_NODES} nodes") as e:
        parse(flat(MAX_EXPANDED_NODES), "yaml", "big.yaml")
    assert e.value.source == "big.yaml"


def test_an_alias_expansion_at_the_node_limit_is_accepted_and_one_over_refused() -> None:
    """An alias counts as often as it is referenced: 1 root + 2 keys + (1 + k) + 1 list
    + (1 + k) aliased = 6 + 2k nodes."""
    k = (MAX_EXPANDED_NODES - 6) // 2
    items = b",".join([b"1"] * k)
    at_limit = b"a: &a [" + items + b"]\nb: [*a]\n"
    assert len(parse(at_limit, "yaml", "alias.yaml")["b"][0]) == k
    over = b"a: &a [" + items + b"]\nb: [*a, 1]\n"
    with pytest.raises(ConfigParseError) as info:
        parse(over, "yaml", "alias.yaml")
    assert info.value.message == f"aliases expand to more than {MAX_EXPANDED_NODES} nodes"
    assert info.value.source == "alias.yaml"


def test_a_document_over_the_node_limit_is_refused_for_its_size_not_its_depth() -> None:
    """Nesting of exactly the limit is no reason to refuse: the exact walk (run once the
    cheap pass has found too much) must blame the size, however deep the rest goes."""
    doc = b"[" + flat(MAX_EXPANDED_NODES) + b"," + nested(MAX_DEPTH) + b"]"
    with pytest.raises(ConfigParseError, match=f"more than {MAX_EXPANDED_NODES} nodes") as info:
        parse(doc, "yaml", "wide.yaml")
    assert "nesting" not in info.value.message
    assert info.value.source == "wide.yaml"


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


def test_a_file_that_reports_no_size_is_read_whole_and_still_capped() -> None:
    """procfs files say st_size 0: the read asks for what the file has, not for that."""
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs /proc/self/status")
    assert os.stat(status).st_size == 0
    data = read_file(str(status), 1 << 16, "status")
    assert data.startswith(b"Name:")
    assert len(data) > 100
    with pytest.raises(ConfigReadError, match="16-byte limit"):
        read_file(str(status), 16, "status")


@pytest.mark.parametrize(("written", "allowed"), [(40, 64), (64, 64), (65, 64), (900, 64)])
def test_a_file_that_grew_after_its_size_was_taken_is_read_to_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: int, allowed: int
) -> None:
    """The size is a hint: a write landing between fstat and read (simulated by a stale
    size) is read whole up to the cap, and refused past it, as without the hint."""
    path = tmp_path / "growing.yaml"
    path.write_bytes(b"g" * written)
    real_fstat = os.fstat

    def stale(fd: int) -> os.stat_result:
        found = list(real_fstat(fd))
        found[stat.ST_SIZE] = 10  # what the file held a moment ago
        return os.stat_result(found)

    monkeypatch.setattr(os, "fstat", stale)
    if written > allowed:
        with pytest.raises(ConfigReadError, match="64-byte limit"):
            read_file(str(path), allowed, "growing.yaml")
    else:
        assert read_file(str(path), allowed, "growing.yaml") == b"g" * written


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


def test_only_yaml_comes_with_a_node_tree() -> None:
    data, node = parse_node(b"a: 1\n", "yaml", "c.yaml")
    assert (data, node.start_mark.line if node is not None else None) == ({"a": 1}, 0)
    assert parse_node(b'{"a": 1}', "json", "c.json") == ({"a": 1}, None)
    assert parse_node(b"a = 1\n", "toml", "c.toml") == ({"a": 1}, None)


def test_toml_is_read_by_the_toml_parser() -> None:
    assert parse(b"a = 1979-05-27\n", "toml", "c.toml") == {"a": datetime.date(1979, 5, 27)}
    assert parse(b"a: 1979-05-27\n", "yaml", "c.yaml") == {"a": datetime.date(1979, 5, 27)}
    with pytest.raises(ConfigParseError):
        parse(b"a: 1979-05-27\n", "toml", "c.toml")


# -- merge keys -----------------------------------------------------------------------------------


def test_a_duplicate_key_after_a_merge_key_is_refused() -> None:
    doc = b"base: &b {x: 1}\nm:\n  <<: *b\n  y: 1\n  y: 2\n"
    with pytest.raises(ConfigParseError) as info:
        parse(doc, "yaml", "merge.yaml")
    assert info.value.message == "while constructing a mapping: found duplicate key 'y'"
    assert (info.value.line, info.value.column) == (5, 3)


def test_a_duplicate_key_after_an_unhashable_one_is_still_found() -> None:
    with pytest.raises(ConfigParseError) as info:
        parse(b"? [1]\n: x\na: 1\na: 2\n", "yaml", "keys.yaml")
    err = info.value
    assert (err.message, err.line, err.column) == (
        "while constructing a mapping: found duplicate key 'a'",
        4,
        1,
    )


def test_an_alias_that_refers_to_itself_is_refused() -> None:
    with pytest.raises(ConfigParseError) as info:
        parse(b"a: &a [1, *a]\n", "yaml", "cycle.yaml")
    err = info.value
    assert (err.source, err.message) == (
        "cycle.yaml",
        "an alias refers to itself (recursive structure)",
    )


class Model(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str = ""


class Merged(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    base: dict[str, int] = {}
    llm: Model = Model()


def test_an_unknown_field_brought_in_by_a_merge_key_points_at_the_mapping() -> None:
    """The key is not written in ``llm`` itself: the error points at the mapping that merged it."""
    pipeline = pipeline_for(Merged, "m.yaml")
    with pytest.raises(ConfigValidationError) as info:
        pipeline.load(b"base: &b {extra: 1}\nllm:\n  <<: *b\n  model: x\n")
    err = info.value
    assert (err.message, err.field_path, err.line, err.column) == (
        "Object contains unknown field `extra`",
        "llm.extra",
        3,
        3,
    )


def test_a_position_is_the_keys_or_the_values() -> None:
    raw = b"llm:\n  extra: 1\n"
    assert locate(raw, "yaml", ["llm", "extra"], at_key=True) == (2, 3)
    assert locate(raw, "yaml", ["llm", "extra"]) == (2, 10)
    assert locate(raw, "json", ["llm"]) is None


def test_a_key_that_overrides_a_merged_one_is_not_a_duplicate() -> None:
    doc = b"base: &b {x: 1, z: 3}\nm:\n  <<: *b\n  x: 2\n"
    assert parse(doc, "yaml", "merge.yaml")["m"] == {"x": 2, "z": 3}


# -- secrets: masked in place ---------------------------------------------------------------------


class Creds(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
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

    pipeline = pipeline_for(Creds, "creds.yaml", validators=[no_test_keys])
    with pytest.raises(ConfigValidationError) as info:
        pipeline.load(b"api_key: sk-test-9f8e7d\n")
    err = info.value
    expected = "rejected by validator no_test_keys: *** is a test key"
    assert err.message == expected
    assert err.args == ("creds.yaml", expected)
    assert str(err) == f"creds.yaml: {expected}"


class Mode(msgspec.Struct, frozen=True):
    token: Literal["fast", "slow"]


def test_an_enum_value_quoted_by_msgspec_is_masked_in_place() -> None:
    pipeline = pipeline_for(Mode, "m.yaml")
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


class Held(msgspec.Struct, frozen=True):  # nested in Timed: a mutable one is refused
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


# -- every refusal names its file and, where it can, the place -------------------------------------

REFUSALS: list[tuple[bytes, Format, str, int | None, int | None]] = [
    (b"  \n", "yaml", "the document is empty", 1, 1),
    (b"# only a comment\n", "yaml", "the document is empty (it holds only comments)", 1, 1),
    (b"# only a comment\n", "toml", "the document is empty (it holds only comments)", 1, 1),
    (b"null", "json", "the document is null", 1, 1),
    (b"a: \xff\n", "yaml", "invalid UTF-8 byte 0xff", 1, 4),
    (b"a: 1\nb: \x00\nc: \x00\n", "yaml", "NUL byte in document", 2, 4),
    (b"\x00a: 1\n", "yaml", "NUL byte in document", 1, 1),
    (b"a: \x07\n", "yaml", "character 7 is not allowed in YAML", 1, 4),
    (b'{"a": }', "json", "Expecting value", 1, 7),
    (b'{"a": 1, "a": 2}', "json", "duplicate key 'a'", None, None),
    (b"a = \n", "toml", "Invalid value", 1, 5),
    (
        b"a = 1\n[",
        "toml",
        "Invalid initial character for a key part (at end of document)",
        None,
        None,
    ),
    (b"[" * 100_000, "json", "the document is nested too deeply", None, None),
    (b"a = " + b"[" * 100_000, "toml", "the document is nested too deeply", None, None),
    (
        b"a: !!python/name:os:system x\n",
        "yaml",
        "could not determine a constructor for the unsafe tag !!python/name",
        1,
        4,
    ),
    (
        b"a: !Sup3r x\n",
        "yaml",
        "could not determine a constructor for the tag "
        "(a value that starts with '!' is a YAML tag: quote it)",
        1,
        4,
    ),
    (b"a: [1\n", "yaml", "while parsing a flow sequence: did not find expected ',' or ']'", 2, 1),
]


@pytest.mark.parametrize(("raw", "fmt", "message", "line", "column"), REFUSALS)
def test_a_refusal_names_the_file_the_problem_and_the_place(
    raw: bytes, fmt: Format, message: str, line: int | None, column: int | None
) -> None:
    with pytest.raises(ConfigParseError) as info:
        parse(raw, fmt, "conf/app.cfg")
    err = info.value
    assert (err.source, err.message, err.line, err.column) == (
        "conf/app.cfg",
        message,
        line,
        column,
    )


class _Raising(yaml.SafeLoader):
    """A loader that fails the way libyaml never does, to reach the last-resort branches."""

    error: BaseException = yaml.YAMLError()

    def get_single_node(self) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (yaml.YAMLError(), "YAMLError"),
        (yaml.MarkedYAMLError(), "invalid YAML"),
        (RecursionError(), "the document is nested too deeply"),
    ],
)
def test_a_yaml_failure_without_details_is_still_a_typed_error_naming_the_file(
    error: BaseException, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Raising, "error", error)
    monkeypatch.setattr(hotreload._parsing, "_StrictLoader", _Raising)
    with pytest.raises(ConfigParseError) as info:
        parse(b"a: 1\n", "yaml", "conf/app.yaml")
    err = info.value
    assert (err.source, err.message, err.line, err.column) == ("conf/app.yaml", message, None, None)


# -- the pipeline's verdicts, exactly -------------------------------------------------------------


class Timed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    zeta: int = 0
    at: datetime.datetime | None = None
    alpha: Annotated[int, RestartRequired] = 0
    api_key: str = ""
    toolsets: dict[str, Held] = {}


def timed(fmt: Format = "yaml", validators: list[Any] | None = None) -> Pipeline[Timed]:
    return pipeline_for(Timed, "timed.cfg", fmt=fmt, validators=validators or [])


def test_conversion_is_strict_a_quoted_number_is_refused_with_msgspecs_own_words() -> None:
    with pytest.raises(ConfigValidationError) as info:
        timed().load(b'zeta: "3"\n')
    err = info.value
    assert (err.message, err.field_path, err.line, err.column) == (
        "Expected `int`, got `str`",
        "zeta",
        1,
        7,
    )


def test_a_dict_entry_only_strict_conversion_refuses_is_still_named() -> None:
    with pytest.raises(ConfigValidationError) as info:
        timed().load(b'toolsets:\n  ok: {b: 1}\n  bad: {b: "2"}\n')
    assert info.value.field_path == "toolsets.bad.b"


def test_builtins_keep_rich_types_and_sorted_keys() -> None:
    active = timed().load(b"zeta: 1\nat: 2026-01-02T03:04:05Z\nalpha: 2\n")
    assert isinstance(active.builtins["at"], datetime.datetime)
    assert list(active.builtins) == sorted(active.builtins)


def test_evaluate_reads_with_the_pipelines_format_and_names_its_source() -> None:
    pipeline = timed("json")
    active = pipeline.load(b'{"zeta": 1}')
    changed = pipeline.evaluate(b'{"zeta": 1e3}', active)
    assert changed.error is not None  # 1e3 is a float to JSON: not an int
    assert changed.error.source == "timed.cfg"
    broken = pipeline.evaluate(b'{"zeta": }', active)
    assert isinstance(broken.error, ConfigParseError)
    assert (broken.error.source, broken.error.line) == ("timed.cfg", 1)


def test_evaluate_masks_a_secret_a_validator_quotes() -> None:
    def no_test_keys(c: Timed) -> None:
        if c.api_key.startswith("sk-test"):
            raise ValueError(f"{c.api_key} is a test key")

    pipeline = timed(validators=[no_test_keys])
    active = pipeline.load(b"api_key: sk-live-1\n")
    evaluation = pipeline.evaluate(b"api_key: sk-test-2\n", active)
    assert evaluation.error is not None
    assert evaluation.error.message == "rejected by validator no_test_keys: *** is a test key"


class NoZeta:
    """A validator that is an object, not a function: named by its type."""

    def __call__(self, c: Timed) -> None:
        if c.zeta == 13:
            exc = ValueError("unlucky")
            exc.field_path = "zeta"  # type: ignore[attr-defined]
            raise exc
        if c.zeta == 14:
            raise ValueError("also unlucky")


def test_a_refusing_validator_object_is_named_by_its_type_with_its_field_path() -> None:
    pipeline = timed(validators=[NoZeta()])
    active = pipeline.load(b"zeta: 1\n")
    err = pipeline.evaluate(b"zeta: 13\n", active).error
    assert isinstance(err, ConfigValidationError)
    assert (err.message, err.field_path) == ("rejected by validator NoZeta: unlucky", "zeta")
    err = pipeline.evaluate(b"zeta: 14\n", active).error
    assert isinstance(err, ConfigValidationError)
    assert (err.message, err.field_path) == ("rejected by validator NoZeta: also unlucky", "")


def test_a_removed_restart_required_entry_has_its_own_stable_digest() -> None:
    policy = FieldPolicy(Timed, restart_required=["toolsets.x"])
    pipeline = pipeline_for(Timed, "timed.cfg", policy=policy)
    active = pipeline.load(b"toolsets: {x: {b: 1}}\n")
    removed = pipeline.evaluate(b"toolsets: {}\n", active)
    again = pipeline.evaluate(b"toolsets: {}\nzeta: 0\n", active)
    changed = pipeline.evaluate(b"toolsets: {x: {b: 2}}\n", active)
    [(root, digest)] = removed.restart_required
    assert root == ("toolsets", "x")
    assert again.restart_required == removed.restart_required
    assert changed.restart_required[0][1] != digest
    assert len(digest) == 16


# -- field policy details -------------------------------------------------------------------------


class Vaulted(msgspec.Struct, frozen=True):
    creds: Mapping[str, Annotated[str, Secret]] = {}


def test_markers_name_themselves_and_patterns_drop_a_trailing_star() -> None:
    assert (repr(Secret), repr(RestartRequired)) == (
        "hotreload.Secret",
        "hotreload.RestartRequired",
    )
    policy = FieldPolicy(Held, restart_required=["a.x.*", "a.*"])
    assert policy.restart_required == (("b",), ("a", "x"), ("a",))


def test_a_secret_inside_a_mapping_value_is_found_below_any_key() -> None:
    policy = FieldPolicy(Vaulted)
    assert policy.secrets == (("creds", "*"),)
    assert policy.is_secret(("creds", "github"))


def test_the_longest_secret_is_masked_first_even_when_it_sorts_first() -> None:
    """``bcde`` sorts after ``abcde``: masked first, it would leave ``a***`` and the rest."""
    policy = FieldPolicy(Creds)
    data = {"api_key": "abcde", "vault": "bcde"}
    assert policy.scrub("got abcde and bcde", data) == "got *** and ***"


# -- the exact node walk (issue 18 follow-up) ------------------------------------------------------


def test_a_plain_document_over_the_node_limit_is_not_blamed_on_aliases() -> None:
    with pytest.raises(ConfigParseError) as info:
        parse(flat(MAX_EXPANDED_NODES), "yaml", "big.yaml")
    assert info.value.message == f"the document has more than {MAX_EXPANDED_NODES} nodes"


def test_scalar_aliases_alone_are_blamed_for_an_expansion_over_the_node_limit() -> None:
    """Only scalars are aliased: 1 root + 2 keys + 1 anchored scalar + 1 list + the aliases."""
    over = b"a: &x 1\nb: [" + b",".join([b"*x"] * (MAX_EXPANDED_NODES - 4)) + b"]\n"
    with pytest.raises(ConfigParseError) as info:
        parse(over, "yaml", "alias.yaml")
    assert info.value.message == f"aliases expand to more than {MAX_EXPANDED_NODES} nodes"
    assert len(parse(over.replace(b"[*x,", b"["), "yaml", "alias.yaml")["b"]) == (
        MAX_EXPANDED_NODES - 5
    )


def test_a_scalar_is_one_level_deep() -> None:
    """``MAX_DEPTH - 1`` lists around a scalar are exactly ``MAX_DEPTH`` levels."""
    data = parse(b"[" * (MAX_DEPTH - 1) + b"1" + b"]" * (MAX_DEPTH - 1), "yaml", "deep.yaml")
    for _ in range(MAX_DEPTH - 1):
        [data] = data
    assert data == 1
    with pytest.raises(ConfigParseError, match=f"nesting is deeper than {MAX_DEPTH} levels"):
        parse(b"[" * MAX_DEPTH + b"1" + b"]" * MAX_DEPTH, "yaml", "deep.yaml")


def test_a_limit_refusal_points_at_the_node_that_broke_it() -> None:
    """The outermost list is the one ``MAX_DEPTH + 1`` levels deep: line 2, column 4."""
    doc = b"a: 1\nb: " + nested(MAX_DEPTH + 1) + b"\n"
    with pytest.raises(ConfigParseError) as info:
        parse(doc, "yaml", "deep.yaml")
    assert (info.value.line, info.value.column) == (2, 4)
    assert str(info.value) == f"deep.yaml:2:4: nesting is deeper than {MAX_DEPTH} levels"


def test_the_text_limit_is_exact_in_bytes_and_points_at_the_node() -> None:
    """``max_text`` counts the UTF-8 bytes of every scalar, keys too (``k`` + 4 x 2 bytes = 9);
    a container adds none."""
    doc = "x: 1\nk: [éééé]\n".encode()  # 1 + 1 + 1 + 8 = 11 bytes of text
    assert parse(doc, "yaml", "t.yaml", max_text=11) == {"x": 1, "k": ["éééé"]}
    assert parse_node(doc, "yaml", "t.yaml", max_text=11)[0] == {"x": 1, "k": ["éééé"]}
    with pytest.raises(ConfigParseError) as info:
        parse(doc, "yaml", "t.yaml", max_text=10)
    assert info.value.message == "aliases expand to more than 10 bytes of text (max_bytes)"
    assert (info.value.line, info.value.column) == (1, 1)  # the root mapping holds the 11th byte
    with pytest.raises(ConfigParseError) as inner:
        parse(doc, "yaml", "t.yaml", max_text=7)  # the list alone holds 8
    assert inner.value.message == "aliases expand to more than 7 bytes of text (max_bytes)"
    assert (inner.value.line, inner.value.column) == (2, 4)
    assert parse(doc, "yaml", "t.yaml") == {"x": 1, "k": ["éééé"]}


# -- JSON: a lone surrogate escape ----------------------------------------------------------------


def test_a_json_lone_surrogate_escape_is_refused_at_its_place() -> None:
    doc = b'{"a": 1,\n "b": "ok \\ud800 end"}'
    with pytest.raises(ConfigParseError) as info:
        parse(doc, "json", "s.json")
    assert info.value.source == "s.json"
    assert info.value.message == (
        "a \\u escape is half of a UTF-16 surrogate pair, which is not a character"
    )
    assert (info.value.line, info.value.column) == (2, 11)


def test_json_surrogate_pairs_and_escaped_backslashes_are_not_lone_surrogates() -> None:
    """A high + low pair is one character; ``\\\\ud800`` is a backslash and the text ``ud800``
    (the pattern sees it, but the decoded value is fine, so it is kept)."""
    assert parse(b'{"a": "\\ud83d\\ude00"}', "json", "s.json") == {"a": "\U0001f600"}
    assert parse(b'{"a": "\\\\ud800"}', "json", "s.json") == {"a": "\\ud800"}


def test_a_mapping_holding_max_depth_levels_is_built_without_recursing() -> None:
    """The loader builds nested values one at a time (``deep=False``): building them deeply
    would recurse once per level through several frames and fail well before ``MAX_DEPTH``."""
    data = parse(b"a: " + nested(MAX_DEPTH - 1), "yaml", "deep.yaml")["a"]
    for _ in range(MAX_DEPTH - 2):
        [data] = data
    assert data == []
    mappings = b"{a: " * (MAX_DEPTH - 1) + b"1" + b"}" * (MAX_DEPTH - 1)
    data = parse(mappings, "yaml", "deep.yaml")
    for _ in range(MAX_DEPTH - 1):
        data = data["a"]
    assert data == 1


# -- the pipeline's builtins and limits (issue 18 follow-up) ---------------------------------------


class Free(msgspec.Struct, frozen=True):
    extra: dict[Any, Any] = {}


def test_keys_of_several_types_keep_file_order_and_rich_values() -> None:
    """Keys that do not sort fall back to msgspec's own builtins, rich types (a date) kept."""
    active = pipeline_for(Free, "free.yaml").load(b"extra: {404: a, x: 2024-01-02, true: 2}\n")
    assert active.builtins == {"extra": {404: "a", "x": datetime.date(2024, 1, 2), True: 2}}
    assert list(active.builtins["extra"]) == [404, "x", True]
    assert isinstance(active.builtins["extra"]["x"], datetime.date)


def test_a_config_with_no_canonical_form_is_a_typed_error_naming_the_source() -> None:
    """Only a layered source's decoder can hand over such data (the parsers refuse it)."""
    for data in ({"extra": {"a": "\ud800"}}, {"extra": {1: "\ud800", "b": 1}}):

        def decode(raw: bytes, data: dict[str, Any] = data) -> Document:
            return Document(data, "layers.yaml")

        pipeline = Pipeline(
            Free,
            source="layers.yaml",
            fmt="yaml",
            max_bytes=4096,
            validators=(),
            policy=FieldPolicy(Free),
            decode=decode,
        )
        with pytest.raises(ConfigValidationError) as info:
            pipeline.load(b"ignored")
        assert info.value.source == "layers.yaml"
        assert info.value.message == "the config has no canonical form (UnicodeEncodeError)"


def test_a_pipeline_is_lenient_about_unknown_keys_unless_told_otherwise() -> None:
    active = pipeline_for(Free, "free.yaml").load(b"extra: {x: 1}\nzzz: 2\n")
    assert active.builtins == {"extra": {"x": 1}}
    assert [(k.path, k.line, k.column) for k in active.unknown] == [(("zzz",), 2, 1)]


def test_a_pipeline_bounds_alias_expansion_by_its_max_bytes() -> None:
    """50 aliases of a 100-byte scalar expand to 5000 bytes of text: over ``max_bytes=4096``."""
    doc = b"a: &x " + b"y" * 100 + b"\nb: [" + b",".join([b"*x"] * 50) + b"]\n"
    with pytest.raises(ConfigParseError) as info:
        pipeline_for(Free, "free.yaml").load(doc)
    assert info.value.message == "aliases expand to more than 4096 bytes of text (max_bytes)"
    assert (info.value.source, info.value.line, info.value.column) == ("free.yaml", 2, 4)


def test_a_removed_restart_required_entry_digests_as_absent() -> None:
    """The digest of a removed entry is that of the ``<absent>`` marker: stable across runs."""
    policy = FieldPolicy(Timed, restart_required=["toolsets.x"])
    pipeline = pipeline_for(Timed, "timed.cfg", policy=policy)
    active = pipeline.load(b"toolsets: {x: {b: 1}}\n")
    [(_, digest)] = pipeline.evaluate(b"toolsets: {}\n", active).restart_required
    assert digest == hashlib.sha256(b"<absent>").hexdigest()[:16]
