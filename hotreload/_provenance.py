"""Where each value of a config came from, and the layered merge that keeps track of it.

A parsed layer is its data plus, for every node path in it, the `Origin` of the value (file,
line, column; or the environment variable's name). Merging layers (maps deep-merge in order,
a later layer wins, anything else - lists, scalars, ``null`` - replaces whole) merges those
tables with one ``dict.update`` per layer: a later layer records every path it supplies, so
every path present in the merged data ends up naming the layer whose value is in force.
Pure: no I/O, no clock. The tables answer three questions: `hotreload check --explain`,
``GET /-/config?origins=1``, and which layer and line a validation error is about.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ._redact import mask_key

__all__ = [
    "Document",
    "NodePath",
    "Origin",
    "Parsed",
    "dotted",
    "leaves",
    "merge",
    "nest",
    "walk_yaml",
    "whole",
]

#: A node's place in a document: map keys and list indices from the root.
NodePath = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where one value came from: ``source`` is a file's path as given (or ``$NAME`` for an
    environment variable); ``line`` and ``column`` are 1-based, None where the format has none
    (JSON, TOML, the environment)."""

    source: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        return self.source if self.line is None else f"{self.source}:{self.line}"


@dataclass(frozen=True, slots=True)
class Parsed:
    """One layer, parsed: its data, the origin of every node path in it (``values``), and of
    every mapping key (``keys``: where an unknown field is named)."""

    data: Any
    values: Mapping[NodePath, Origin]
    keys: Mapping[NodePath, Origin] = field(default_factory=dict)


class Document:
    """A document ready for the schema: the (merged) data and where each part of it came from.

    ``source`` names the whole (a file, or the layered source's ``uri``): the fallback origin
    of anything that has none of its own. ``lazy`` works the tables out on first use instead
    (a single file: its origins are only wanted by ``explain``, never on the reload path).
    """

    __slots__ = ("_keys", "_lazy", "_values", "data", "source")

    def __init__(
        self,
        data: Any,
        source: str,
        values: Mapping[NodePath, Origin] | None = None,
        keys: Mapping[NodePath, Origin] | None = None,
        *,
        lazy: Callable[[], Parsed] | None = None,
    ) -> None:
        self.data = data
        self.source = source
        self._values = values
        self._keys = keys
        self._lazy = lazy

    def _tables(self) -> tuple[Mapping[NodePath, Origin], Mapping[NodePath, Origin]]:
        if self._values is None or self._keys is None:
            parsed = self._lazy() if self._lazy is not None else Parsed(self.data, {}, {})
            self._values, self._keys, self._lazy = parsed.values, parsed.keys, None
        return self._values, self._keys

    @property
    def values(self) -> Mapping[NodePath, Origin]:
        """The origin of every node path of ``data``."""
        return self._tables()[0]

    @property
    def keys(self) -> Mapping[NodePath, Origin]:
        """The origin of every mapping key (where an unknown field is named)."""
        return self._tables()[1]

    def origin(self, path: Sequence[str | int], *, at_key: bool = False) -> Origin:
        """The origin of the deepest node on ``path`` that has one (``at_key``: of its key)."""
        values, keys = self._tables()
        probe = tuple(path)
        while probe:
            found = (keys.get(probe) if at_key else None) or values.get(probe)
            if found is not None:
                return found
            probe = probe[:-1]
        return values.get((), Origin(self.source))


def walk_yaml(data: Any, node: yaml.Node, source: str, prefix: NodePath = ()) -> Parsed:
    """The origins of ``data`` read off the node tree it was constructed from.

    Iterative, and bounded by the node budget `parse` already enforced on ``data``. Keys are
    matched by their text (YAML keys of a config are strings); a key the walk cannot match
    keeps its mapping's origin. Merge keys (``<<``) were flattened into the node by the
    constructor, own keys last, so the value in force is the last one recorded.
    """
    values: dict[NodePath, Origin] = {}
    keys: dict[NodePath, Origin] = {}
    stack: list[tuple[Any, yaml.Node, NodePath]] = [(data, node, prefix)]
    while stack:
        value, at, path = stack.pop()
        mark = at.start_mark
        values[path] = Origin(source, mark.line + 1, mark.column + 1)
        if isinstance(at, yaml.MappingNode) and isinstance(value, dict):
            pairs: dict[str, tuple[yaml.Node, yaml.Node]] = {}
            for key_node, value_node in at.value:  # a later pair (an own key) wins
                key = getattr(key_node, "value", None)
                if key_node.tag != _MERGE_TAG and isinstance(key, str) and key in value:
                    pairs[key] = (key_node, value_node)
            for key, (key_node, value_node) in pairs.items():
                sub = (*path, key)
                km = key_node.start_mark
                keys[sub] = Origin(source, km.line + 1, km.column + 1)
                stack.append((value[key], value_node, sub))
        elif isinstance(at, yaml.SequenceNode) and isinstance(value, list):
            for index, (item, item_node) in enumerate(zip(value, at.value, strict=False)):
                stack.append((item, item_node, (*path, index)))
    return Parsed(data, values, keys)


def whole(data: Any, origin: Origin, prefix: NodePath = ()) -> Parsed:
    """A layer whose every node has one origin (JSON, TOML, a text file, one variable)."""
    return Parsed(data, {path: origin for path, _ in _nodes(data, prefix)})


def nest(parsed: Parsed, at: NodePath) -> Parsed:
    """``parsed`` placed under the key path ``at`` (a layer mounted at ``tls.crt``, say)."""
    if not at:
        return parsed
    data = parsed.data
    for key in reversed(at):
        data = {key: data}
    anchor = parsed.values.get(())
    values = {(*at, *p): o for p, o in parsed.values.items()}
    if anchor is not None:
        for depth in range(len(at)):
            values[at[:depth]] = anchor
    keys = {(*at, *p): o for p, o in parsed.keys.items()}
    return Parsed(data, values, keys)


def merge(layers: Sequence[Parsed], source: str) -> Document:
    """Deep-merge ``layers`` in order: maps merge key by key, a later layer wins, anything
    else (a list, a scalar, ``null``) replaces what was there whole."""
    if not layers:
        return Document({}, source, {}, {})
    data: Any = layers[0].data
    values = dict(layers[0].values)
    keys = dict(layers[0].keys)
    for layer in layers[1:]:
        data = _merge(data, layer.data)
        values.update(layer.values)
        keys.update(layer.keys)
    return Document(data, source, values, keys)


def _merge(base: Any, over: Any) -> Any:
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return over
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if key in out else value
    return out


def leaves(data: Any, prefix: NodePath = ()) -> Iterator[tuple[NodePath, Any]]:
    """Every leaf of ``data`` (an empty map or list counts as a leaf), in document order."""
    for path, value in _nodes(data, prefix):
        if not isinstance(value, (dict, list)) or not value:
            yield path, value


def _nodes(data: Any, prefix: NodePath) -> Iterator[tuple[NodePath, Any]]:
    stack: list[tuple[NodePath, Any]] = [(prefix, data)]
    while stack:
        path, value = stack.pop()
        yield path, value
        if isinstance(value, dict):
            stack.extend(((*path, k), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(value))))


def dotted(path: Sequence[str | int]) -> str:
    """``("toolsets", "k8s", "args", 0)`` as ``toolsets.k8s.args[0]``; each key redacted
    like a value (`hotreload._redact.mask_key`)."""
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            key = mask_key(seg)
            out += f".{key}" if out else key
    return out
