"""`FieldPolicy` (restart-required and secret fields) and the diff helpers."""

from __future__ import annotations

import copy
from typing import Annotated, Any, Optional

import msgspec
import pytest

from hotreload._diff import changed_paths, get_path, retain
from hotreload._fields import FieldPolicy, Path, RestartRequired, Secret, format_path


class Server(msgspec.Struct, frozen=True):
    host: Annotated[str, RestartRequired]
    password: Annotated[str, Secret] = ""


class Pool(msgspec.Struct, frozen=True, rename="camel"):
    pool_size: Annotated[int, RestartRequired] = 1
    conn_string: Annotated[str, Secret] = ""
    idle_seconds: int = 30


class Node(msgspec.Struct, frozen=True):
    """Refers to itself: collecting markers must terminate."""

    label: str = ""
    auth: Annotated[str, Secret] = ""
    children: list[Node] = []


class Schema(msgspec.Struct, frozen=True):
    servers: dict[str, Server] = {}
    pool: Optional[Pool] = None  # noqa: UP045 - the Optional[...] spelling is what is tested
    backup: Pool | None = None
    bind_port: Annotated[int, RestartRequired] = msgspec.field(default=80, name="port")
    cert: Annotated[str | None, Secret] = msgspec.field(default=None, name="tlsCert")
    tree: Node = Node()
    replicas: list[Annotated[Server, RestartRequired]] = []
    model: str = "gpt-4"


@pytest.fixture
def policy() -> FieldPolicy:
    return FieldPolicy(Schema)


# --- collecting markers ----------------------------------------------------------------------


def test_restart_required_markers_are_collected(policy: FieldPolicy) -> None:
    assert set(policy.restart_required) == {
        ("servers", "*", "host"),
        ("pool", "poolSize"),
        ("backup", "poolSize"),
        ("port",),
        ("replicas",),
        # The list's items are walked too (a list adds no path segment).
        ("replicas", "host"),
    }


def test_secret_markers_are_collected(policy: FieldPolicy) -> None:
    assert set(policy.secrets) == {
        ("servers", "*", "password"),
        ("pool", "connString"),
        ("backup", "connString"),
        ("tlsCert",),
        ("tree", "auth"),
        ("replicas", "password"),
    }


def test_renamed_fields_use_the_encoded_name(policy: FieldPolicy) -> None:
    assert ("port",) in policy.restart_required
    assert ("bind_port",) not in policy.restart_required
    assert ("pool", "poolSize") in policy.restart_required
    assert ("pool", "pool_size") not in policy.restart_required
    assert policy.restart_root(("port",)) == ("port",)
    assert policy.restart_root(("bind_port",)) is None


def test_unmarked_schema_has_no_policy() -> None:
    class Plain(msgspec.Struct):
        model: str = "x"
        retries: int = 3

    policy = FieldPolicy(Plain)
    assert policy.restart_required == ()
    assert policy.secrets == ()


def test_patterns_are_added_after_markers_without_duplicates() -> None:
    policy = FieldPolicy(
        Schema,
        restart_required=["kubernetes.*", "port", "db.*.url", "..x.."],
        secrets=["extra.cert", "tlsCert"],
    )
    assert policy.restart_required[-3:] == (("kubernetes",), ("db", "*", "url"), ("x",))
    assert policy.restart_required.count(("port",)) == 1
    assert policy.secrets[-1] == ("extra", "cert")
    assert policy.secrets.count(("tlsCert",)) == 1


# --- restart_root ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "root"),
    [
        (("port",), ("port",)),
        (("servers", "eu", "host"), ("servers", "eu", "host")),
        (("servers", "eu", "host", "deep"), ("servers", "eu", "host")),
        (("servers", "eu", "password"), None),
        (("servers", "eu"), None),
        (("servers",), None),
        (("pool", "poolSize"), ("pool", "poolSize")),
        (("pool", "idleSeconds"), None),
        (("replicas",), ("replicas",)),
        (("model",), None),
        ((), None),
    ],
)
def test_restart_root(policy: FieldPolicy, path: Path, root: Path | None) -> None:
    assert policy.restart_root(path) == root


def test_restart_root_from_pattern() -> None:
    policy = FieldPolicy(Schema, restart_required=["kubernetes.*"])
    assert policy.restart_root(("kubernetes", "namespace")) == ("kubernetes",)
    assert policy.restart_root(("kubernetes",)) == ("kubernetes",)
    assert policy.restart_root(("kube",)) is None


# --- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ("llm", "api_key"),
        ("llm", "API_KEY"),
        ("apiKey",),
        ("auth_token",),
        ("AccessToken",),
        ("db", "password"),
        ("db", "PASSWORD"),
        ("db", "passwd"),
        ("client_secret",),
        ("Secrets", "value"),
        ("aws_credentials",),
    ],
)
def test_secret_looking_names_are_secret(policy: FieldPolicy, path: Path) -> None:
    assert policy.is_secret(path) is True


@pytest.mark.parametrize(
    "path",
    [("model",), ("llm", "model"), ("servers", "eu", "host"), ("port",), ("log_level",), ()],
)
def test_ordinary_names_are_not_secret(policy: FieldPolicy, path: Path) -> None:
    assert policy.is_secret(path) is False


def test_declared_secrets_are_secret(policy: FieldPolicy) -> None:
    assert policy.is_secret(("tlsCert",)) is True
    assert policy.is_secret(("pool", "connString")) is True
    assert policy.is_secret(("tree", "auth")) is True
    # Through a dict-value wildcard.
    assert policy.is_secret(("servers", "anything", "password")) is True


def test_declared_secret_pattern_covers_its_subtree() -> None:
    policy = FieldPolicy(Schema, secrets=["extra.cert"])
    assert policy.is_secret(("extra", "cert")) is True
    assert policy.is_secret(("extra", "cert", "pem")) is True
    assert policy.is_secret(("extra", "ca")) is False


def test_redact(policy: FieldPolicy) -> None:
    value = {"nested": [1, 2]}
    assert policy.redact(("llm", "api_key"), "sk-123") == "***"
    # Only strings are masked by name: a secret field's map keeps its shape and numbers.
    assert policy.redact(("tlsCert",), {"nested": [1, "pem"]}) == {"nested": [1, "***"]}
    assert policy.redact(("tlsCert",), value) == value
    assert policy.redact(("model",), "gpt-4") == "gpt-4"
    assert policy.redact(("servers", "eu", "host"), value) == value


def test_format_path() -> None:
    assert format_path(("llm", "model")) == "llm.model"
    assert format_path(("port",)) == "port"
    assert format_path(()) == ""


# --- changed_paths ---------------------------------------------------------------------------


def paths(old: Any, new: Any) -> list[Path]:
    return list(changed_paths(old, new))


def test_no_changes() -> None:
    data = {"a": 1, "b": {"c": [1, 2], "d": None}}
    assert paths(data, copy.deepcopy(data)) == []


def test_changed_nested_key() -> None:
    old = {"llm": {"model": "a", "temperature": 0.5}, "port": 1}
    new = {"llm": {"model": "b", "temperature": 0.5}, "port": 1}
    assert paths(old, new) == [("llm", "model")]


def test_added_and_removed_keys() -> None:
    old = {"llm": {"model": "a", "old": 1}, "gone": True}
    new = {"llm": {"model": "a", "new": 2}, "fresh": {"x": 1}}
    assert paths(old, new) == [("fresh",), ("gone",), ("llm", "new"), ("llm", "old")]


def test_key_changed_to_none_is_a_change_not_a_removal() -> None:
    assert paths({"a": 1}, {"a": None}) == [("a",)]
    assert paths({"a": None}, {}) == [("a",)]


def test_lists_are_compared_whole() -> None:
    old = {"items": [{"name": "a"}, {"name": "b"}], "tags": [1, 2]}
    new = {"items": [{"name": "a"}, {"name": "c"}], "tags": [1, 2]}
    assert paths(old, new) == [("items",)]


def test_type_change_is_reported_at_the_key() -> None:
    assert paths({"a": {"b": 1}}, {"a": [1]}) == [("a",)]
    assert paths({"a": 1}, {"a": {"b": 1}}) == [("a",)]


def test_paths_are_sorted_and_deep() -> None:
    old = {"z": 1, "a": {"y": {"k": 1}, "b": 2}}
    new = {"z": 2, "a": {"y": {"k": 2}, "b": 3}}
    assert paths(old, new) == [("a", "b"), ("a", "y", "k"), ("z",)]


def test_non_string_keys_are_stringified() -> None:
    assert paths({1: "a"}, {1: "b"}) == [("1",)]


def test_changed_root_scalar() -> None:
    assert paths(1, 2) == [()]


def test_get_path() -> None:
    data = {"a": {"b": {"c": 3}}, "n": None}
    assert get_path(data, ("a", "b", "c")) == 3
    assert get_path(data, ()) is data
    assert get_path(data, ("n",)) is None
    missing = get_path(data, ("a", "x"))
    assert missing != None  # noqa: E711 - the sentinel compares unequal even to None
    assert missing != 3
    assert get_path(data, ("a", "b", "c", "d")) is missing


# --- retain ----------------------------------------------------------------------------------


def test_retain_puts_restart_required_subtrees_back(policy: FieldPolicy) -> None:
    running = {
        "port": 80,
        "model": "a",
        "servers": {"eu": {"host": "eu-1", "password": "p"}},
    }
    new = {
        "port": 8080,
        "model": "b",
        "servers": {"eu": {"host": "eu-2", "password": "q"}},
    }
    new_before = copy.deepcopy(new)
    running_before = copy.deepcopy(running)
    changed = list(changed_paths(running, new))
    effective, roots = retain(running, new, changed, policy)
    assert effective == {
        "port": 80,
        "model": "b",
        "servers": {"eu": {"host": "eu-1", "password": "q"}},
    }
    assert roots == [("port",), ("servers", "eu", "host")]
    assert new == new_before
    assert running == running_before
    assert effective is not new


def test_retain_copies_running_values(policy: FieldPolicy) -> None:
    running = {"replicas": [{"host": "a"}], "model": "x"}
    new = {"replicas": [{"host": "b"}], "model": "y"}
    effective, _ = retain(running, new, list(changed_paths(running, new)), policy)
    assert effective["replicas"] == [{"host": "a"}]
    assert effective["replicas"] is not running["replicas"]
    effective["replicas"][0]["host"] = "mutated"
    assert running["replicas"] == [{"host": "a"}]


def test_retain_removes_a_restart_required_key_the_running_config_lacks(
    policy: FieldPolicy,
) -> None:
    running = {"servers": {}, "model": "x"}
    new = {"servers": {"us": {"host": "us-1"}}, "model": "x"}
    changed = list(changed_paths(running, new))
    assert changed == [("servers", "us")]
    # ("servers", "us") is above the ("servers", "*", "host") pattern: a live change.
    effective, roots = retain(running, new, changed, policy)
    assert roots == []
    assert effective is new

    running2 = {"port": 80}
    new2: dict[str, Any] = {}
    effective2, roots2 = retain(running2, new2, [("port",)], policy)
    assert roots2 == [("port",)]
    assert effective2 == {"port": 80}
    assert new2 == {}


def test_retain_drops_a_field_added_under_a_restart_required_root() -> None:
    policy = FieldPolicy(Schema, restart_required=["kubernetes"])
    running = {"model": "a"}
    new = {"model": "a", "kubernetes": {"namespace": "x"}}
    effective, roots = retain(running, new, list(changed_paths(running, new)), policy)
    assert roots == [("kubernetes",)]
    assert effective == {"model": "a"}
    assert new == {"model": "a", "kubernetes": {"namespace": "x"}}


def test_retain_without_restart_required_changes_returns_new(policy: FieldPolicy) -> None:
    running = {"model": "a", "port": 80}
    new = {"model": "b", "port": 80}
    effective, roots = retain(running, new, list(changed_paths(running, new)), policy)
    assert effective is new
    assert roots == []


def test_retain_reports_each_root_once() -> None:
    policy = FieldPolicy(Schema, restart_required=["kubernetes"])
    running = {"kubernetes": {"a": 1, "b": 2}}
    new = {"kubernetes": {"a": 2, "b": 3}}
    changed = list(changed_paths(running, new))
    assert changed == [("kubernetes", "a"), ("kubernetes", "b")]
    effective, roots = retain(running, new, changed, policy)
    assert roots == [("kubernetes",)]
    assert effective == running


def test_a_key_that_is_not_a_string_is_found_by_its_path_segment() -> None:
    """``changed_paths`` names ``{404: x}`` as ``status_map.404``: ``get_path`` finds it back
    (``check --against`` shows its old and new values, not "absent")."""
    old, new = {"status_map": {404: "retry"}}, {"status_map": {404: "fail"}}
    [path] = paths(old, new)
    assert path == ("status_map", "404")
    assert (get_path(old, path), get_path(new, path)) == ("retry", "fail")


def test_nan_equals_itself_and_numbers_of_other_types_differ() -> None:
    nan = float("nan")
    assert paths({"t": nan, "u": 1}, {"t": float("nan"), "u": 1}) == []
    assert paths({"u": 1}, {"u": 1.0}) == [("u",)]
    assert paths({"u": [1]}, {"u": [True]}) == [("u",)]
    assert paths({"t": float("inf")}, {"t": -float("inf")}) == [("t",)]


def test_changed_paths_names_only_what_changed_leaf_and_top_level() -> None:
    """An equal leaf beside a changed one is not reported; equal scalars are no change."""
    assert list(changed_paths({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}})) == [("b", "c")]
    assert list(changed_paths(5, 5)) == []
    assert list(changed_paths(5, 6)) == [()]


def test_get_path_finds_a_non_string_key_by_its_text() -> None:
    """``"404"`` finds the int key 404, not another non-string key that merely comes first."""
    data = {"x": "wrong", 500: "wrong", 404: "right"}
    assert get_path(data, ("404",)) == "right"


def test_a_null_field_given_a_value_or_dropped_is_a_change() -> None:
    """Kills `changed_paths__mutmut_22`: a key whose old value is None is compared, not skipped
    (null to a value, a value to null, and a null key that is removed)."""
    assert paths({"a": None}, {"a": 1}) == [("a",)]
    assert paths({"a": {"b": None}}, {"a": {"b": {"c": 1}}}) == [("a", "b")]
    assert paths({"a": None}, {}) == [("a",)]
    assert paths({}, {"a": None}) == [("a",)]


def test_retain_with_overlapping_restart_patterns() -> None:
    """Kills `retain__mutmut_27`: ``a.b`` before ``a``; once ``a`` is put back, ``a.b`` is no
    longer there to remove, and that is not an error."""
    policy = FieldPolicy(Schema, restart_required=["a.b", "a"])
    running: dict[str, Any] = {"a": {"a": 1}}
    new: dict[str, Any] = {"a": {"a": 2, "b": 3}}
    changed = list(changed_paths(running, new))
    assert changed == [("a", "a"), ("a", "b")]
    effective, roots = retain(running, new, changed, policy)
    assert roots == [("a",), ("a", "b")]
    assert effective == {"a": {"a": 1}}
    assert new == {"a": {"a": 2, "b": 3}}
