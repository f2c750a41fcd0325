"""Which key paths differ between two configs, and keeping restart-required ones as they run."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import msgspec

from ._fields import FieldPolicy, Path
from ._snapshot import canonical_json

__all__ = ["changed_paths", "get_path", "retain", "same"]

_MISSING: Any = object()


def changed_paths(
    old: Any, new: Any, prefix: Path = (), *, encoded: tuple[bytes, bytes] | None = None
) -> Iterator[Path]:
    """Paths (as tuples) whose values differ; mappings are compared key by key, the rest whole.

    "Differ" means a different canonical form (`canonical_json`), not ``!=``: ``.nan`` equals
    itself here, and ``1``, ``1.0`` and ``true`` are three values.

    ``encoded`` is both sides' canonical encodings when the caller has them (the pipeline
    does: one encoding per version, made once for its hash). The comparison then reads them
    instead of encoding every subtree again at every level: each mapping is split into its
    entries' encoded bytes by msgspec (``Raw``, in C, without building the values), and only
    the entries whose bytes differ are split further.
    """
    if encoded is not None and all(encoded) and _plain(*encoded):
        yield from _changed_encoded(*encoded, prefix)
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys(), key=str):
            a, b = old.get(key, _MISSING), new.get(key, _MISSING)
            if a is _MISSING or b is _MISSING:
                yield (*prefix, str(key))
            elif not same(a, b):
                yield from changed_paths(a, b, (*prefix, str(key)))
    elif not same(old, new):
        yield prefix


_ENTRIES = dict[str, msgspec.Raw]
#: `canonical_json` spells a non-string key or a non-finite float out with a NUL escape; such
#: an encoding's keys are not the paths' segments, so it is compared the slow way.
_SPELLED_OUT = b"\\u0000"


def _plain(a: bytes, b: bytes) -> bool:
    return _SPELLED_OUT not in a and _SPELLED_OUT not in b


def _changed_encoded(
    a: bytes | msgspec.Raw, b: bytes | msgspec.Raw, prefix: Path
) -> Iterator[Path]:
    if a == b:
        return
    if bytes(memoryview(a)[:1]) == b"{" == bytes(memoryview(b)[:1]):
        old = msgspec.json.decode(a, type=_ENTRIES)
        new = msgspec.json.decode(b, type=_ENTRIES)
        for key in sorted(old.keys() | new.keys()):
            x, y = old.get(key), new.get(key)
            if x is None or y is None:
                yield (*prefix, key)
            elif x != y:
                yield from _changed_encoded(x, y, (*prefix, key))
    else:
        yield prefix


def same(a: Any, b: Any) -> bool:
    """Whether two builtins values are the same config (their canonical forms are equal)."""
    return a is b or canonical_json(a) == canonical_json(b)


def get_path(data: Any, path: Path) -> Any:
    """The value at ``path``, or a sentinel that compares unequal to everything real."""
    for seg in path:
        if not isinstance(data, dict):
            return _MISSING
        key: Any = seg
        if key not in data:  # a key that is not a string (``404:``) is named by its str()
            key = next((k for k in data if not isinstance(k, str) and str(k) == seg), _MISSING)
            if key is _MISSING:
                return _MISSING
        data = data[key]
    return data


def retain(
    running: Any, new: Any, changed: list[Path], policy: FieldPolicy
) -> tuple[Any, list[Path]]:
    """``new`` with every changed restart-required subtree put back to its running value.

    Returns the effective builtins and the restart-required roots the file wants changed.
    ``new`` is not modified.
    """
    roots = list(dict.fromkeys(r for p in changed if (r := policy.restart_root(p)) is not None))
    if not roots:
        return new, []
    effective = copy.deepcopy(new)
    for root in roots:
        parent = get_path(effective, root[:-1])
        if not isinstance(parent, dict):
            continue
        value = get_path(running, root)
        if value is _MISSING:
            parent.pop(root[-1], None)
        else:
            parent[root[-1]] = copy.deepcopy(value)
    return effective, roots
