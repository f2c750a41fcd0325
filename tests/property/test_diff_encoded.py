"""The diff that reads both versions' canonical encodings names exactly the paths the diff
that re-encodes every subtree names, on any pair of configs (as builtins)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hotreload._diff import changed_paths
from hotreload._snapshot import canonical_json

_keys = st.sampled_from(["a", "b", "c", "é", 'q"uote', "\\", "a.b", ""])
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, -0.0, 2.5, float("nan"), float("inf")]),
    st.text(max_size=4),
)
_values: st.SearchStrategy[Any] = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(_keys, inner, max_size=4),
        st.dictionaries(st.integers(0, 3), inner, max_size=2),  # keys YAML reads as ints
    ),
    max_leaves=12,
)
_configs = st.dictionaries(_keys, _values, max_size=5)


@given(_configs, _configs)
def test_the_encoded_diff_names_the_same_paths(old: dict[str, Any], new: dict[str, Any]) -> None:
    slow = list(changed_paths(old, new))
    fast = list(changed_paths(old, new, encoded=(canonical_json(old), canonical_json(new))))
    assert fast == slow


@given(_configs)
def test_a_config_compared_with_itself_changes_nothing(config: dict[str, Any]) -> None:
    encoded = canonical_json(config)
    assert list(changed_paths(config, config, encoded=(encoded, encoded))) == []
