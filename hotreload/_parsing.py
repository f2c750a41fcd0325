"""Bytes to plain Python data, safely: YAML (C loader when present), JSON and TOML.

YAML is the format most configs arrive in and the one with the sharpest edges, so the loader
is the safe one (no python tags), rejects duplicate keys instead of silently keeping the last,
and bounds what aliases and merge keys may expand to (a "billion laughs" document is a few
hundred bytes that become billions of nodes the moment anything walks it; one 50 KB string
aliased 20,000 times is a gigabyte of text) before anything is built from the document.
libyaml already refuses nesting deeper than 1000; the pure-Python fallback hits the recursion
limit, which is turned into the same typed error.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from typing import Any, ClassVar, Literal

import yaml

from ._errors import ConfigParseError
from ._redact import yaml_message

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["Format", "format_for", "locate_nodes", "parse", "parse_node", "parse_text"]

Format = Literal["yaml", "json", "toml"]

#: Nodes a document may expand to once aliases are followed (a real config has a few hundred).
MAX_EXPANDED_NODES = 100_000
#: Nesting depth a document may have (libyaml's own limit is 1000).
MAX_DEPTH = 200

_MERGE_TAG = "tag:yaml.org,2002:merge"
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
#: The safe loader's implicit resolvers as PyYAML ships them (bool, int, float, null,
#: timestamp, merge, ...), by the first character of a plain scalar, the wildcard ones after.
_IMPLICIT: dict[Any, list[tuple[str, re.Pattern[str]]]] = {
    first: list(resolvers) for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
_WILDCARD = tuple(_IMPLICIT.get(None, ()))
_BY_FIRST = {
    first: (*resolvers, *_WILDCARD) for first, resolvers in _IMPLICIT.items() if first is not None
}


class _StrictLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader, but a key given twice in one mapping is an error, not a silent override.

    Tags are resolved by its own copy of the safe resolvers, without path resolvers: libyaml's
    composer calls ``resolve``, ``descend_resolver`` and ``ascend_resolver`` in Python for
    every node, and PyYAML's general versions of them were a sixth of composing a config.
    """

    yaml_implicit_resolvers: ClassVar[dict[Any, Any]] = _IMPLICIT
    yaml_path_resolvers: ClassVar[dict[Any, Any]] = {}

    def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
        """`BaseResolver.resolve` for a resolver without path resolvers, tag for tag."""
        if kind is yaml.ScalarNode:
            if implicit[0]:
                for tag, regexp in _BY_FIRST.get(value[:1], _WILDCARD):
                    if regexp.match(value):
                        return tag
            return _STR_TAG
        return _SEQ_TAG if kind is yaml.SequenceNode else _MAP_TAG

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        """Nothing to do: no path resolvers (PyYAML's own checks that, per node)."""

    def ascend_resolver(self) -> None:
        """Nothing to do: no path resolvers."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable key: SafeConstructor reports it below
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value its explicit tag cannot hold (``!!int abc``, ``!!timestamp x``) makes PyYAML's
        constructors raise bare ValueError, KeyError or AttributeError; make it a YAML error at
        the node. The message names the tag, never the value (it may be a secret)."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, AttributeError, LookupError, ArithmeticError):
            raise yaml.constructor.ConstructorError(
                None, None, f"the value cannot be read as {node.tag}", node.start_mark
            ) from None


def format_for(path: str) -> Format:
    """The format a file's suffix implies; anything not JSON or TOML is read as YAML."""
    lower = path.lower()
    if lower.endswith(".json"):
        return "json"
    if lower.endswith(".toml"):
        return "toml"
    return "yaml"


def parse(raw: bytes, fmt: Format, source: str, *, max_text: int | None = None) -> Any:
    """Decode and parse ``raw``; raise `ConfigParseError` with a 1-based line and column.

    ``max_text`` bounds the bytes of scalar text a YAML document may expand to through its
    aliases (the reloader passes its ``max_bytes``: a document without aliases never has more
    text than bytes, so only an expansion can break it).
    """
    return parse_node(raw, fmt, source, max_text=max_text)[0]


def parse_node(
    raw: bytes, fmt: Format, source: str, *, max_text: int | None = None
) -> tuple[Any, yaml.Node | None]:
    """`parse`, also returning the YAML node tree the data was built from (``None`` for JSON
    and TOML): where each value sits in the file, without composing the document twice."""
    text = _decode(raw, source)
    if not text.strip():
        raise ConfigParseError(source, "the document is empty", line=1, column=1)
    node: yaml.Node | None = None
    if fmt == "json":
        data = _parse_json(text, source)
    elif fmt == "toml":
        data = _parse_toml(text, source)
    else:
        data, node = _parse_yaml(text, source, max_text)
    if data is None or (fmt == "toml" and data == {}):
        # Comments only: no config at all. Refused like an empty file, never taken as
        # "all defaults" (a ConfigMap emptied by mistake must not reset the service).
        what = "is null" if fmt == "json" else "is empty (it holds only comments)"
        raise ConfigParseError(source, f"the document {what}", line=1, column=1)
    return data, node


def _decode(raw: bytes, source: str) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 BOM is not part of the text
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(raw[: exc.start].decode("utf-8", "replace"))
        raise ConfigParseError(
            source, f"invalid UTF-8 byte 0x{raw[exc.start]:02x}", line=line, column=column
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        line, column = _position(text[:nul])
        raise ConfigParseError(source, "NUL byte in document", line=line, column=column)
    return text


def _position(prefix: str) -> tuple[int, int]:
    """1-based line and column of the character that follows ``prefix``."""
    line = prefix.count("\n") + 1
    return line, len(prefix) - (prefix.rfind("\n") + 1) + 1


def _parse_yaml(text: str, source: str, max_text: int | None) -> tuple[Any, yaml.Node | None]:
    try:
        return _load_yaml(text, max_text)
    except (_TooBig, yaml.YAMLError, RecursionError) as exc:
        error = _yaml_error(exc, text, source)
    # Raised outside the handler: the error has no __context__ that keeps the node graph
    # (a `_TooBig`'s node, the frames that composed it) alive for as long as it is kept.
    raise error


def _yaml_error(
    exc: _TooBig | yaml.YAMLError | RecursionError, text: str, source: str
) -> ConfigParseError:
    """The typed error for a YAML failure, at its 1-based line and column when it has one."""
    if isinstance(exc, _TooBig):
        mark = exc.node.start_mark
        return ConfigParseError(source, exc.message, line=mark.line + 1, column=mark.column + 1)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        parts = [yaml_message(p) for p in (exc.context, exc.problem) if p]
        message = ": ".join(parts) or "invalid YAML"
        if mark is None:
            return ConfigParseError(source, message)
        return ConfigParseError(source, message, line=mark.line + 1, column=mark.column + 1)
    if isinstance(exc, yaml.reader.ReaderError):
        line, column = _position(text[: exc.position])
        return ConfigParseError(
            source, f"character {exc.character!r} is not allowed in YAML", line=line, column=column
        )
    if isinstance(exc, yaml.YAMLError):
        return ConfigParseError(source, type(exc).__name__)
    return ConfigParseError(source, "the document is nested too deeply")


def parse_text(text: str, source: str, *, max_text: int | None = None) -> Any:
    """One value written as YAML text (an environment variable's: ``8080`` is a number,
    ``[a, b]`` a list), read under the limits a document is read under.

    Text that is not YAML (a syntax error, a tag its value does not fit) stays the string it
    is, and so does blank text; a comment or ``null`` is None. What a document would be
    refused for, an alias expansion past a limit, nesting too deep, a key given twice, raises
    `ConfigParseError` naming ``source`` (``$NAME``) and the line and column in the text.
    """
    if not text.strip():
        return text
    try:
        return _load_yaml(text, max_text)[0]
    except (_TooBig, RecursionError) as exc:
        error = _yaml_error(exc, text, source)
    except yaml.constructor.ConstructorError as exc:
        if not (exc.problem or "").startswith("found duplicate key"):
            return text
        error = _yaml_error(exc, text, source)
    except yaml.YAMLError:
        return text
    raise error  # outside the handler, as in `_parse_yaml`


def _load_yaml(text: str, max_text: int | None) -> tuple[Any, yaml.Node | None]:
    """``yaml.load``'s own steps, with the node graph measured between composing and
    constructing, and kept (where each value sits in the file).

    Composing is libyaml's C code and linear in the file; everything after it (merge-key
    flattening, constructing, converting, hashing, serving ``/-/config``) pays for the document
    as aliases expand it. So the limits are checked on the composed nodes, before any of that.

    The document is built by the plain safe constructor (no Python override on the path every
    value takes); duplicate keys are found on the nodes. Only a document that fails (a
    duplicate, a value its tag cannot hold, an unhashable key) is read again by
    `_StrictLoader`, whose error says what is wrong and where.
    """
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()  # libyaml's parser: no Python override on this path
    finally:
        loader.dispose()
    if node is None:
        return None, None
    expands = _may_expand(text, max_text)
    if not expands:
        with contextlib.suppress(_NotPlain):
            return _build_plain(node), node
    constructor = yaml.constructor.SafeConstructor()
    if not _check_tree(node, constructor, expands):
        _check_nodes(node, max_text)
        if _duplicates(node, constructor):
            return _load_strict(text, max_text)
    try:
        return constructor.construct_document(node), node
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, LookupError, ArithmeticError):
        return _load_strict(text, max_text)


class _NotPlain(Exception):
    """The document needs the safe constructor's general path (or its errors)."""


#: The safe constructor's own function for each scalar tag it knows (int, float, bool, null,
#: timestamp, binary, ...): each is pure, reads only the node it is given.
_SCALARS: dict[Any, Any] = {
    tag: fn
    for tag, fn in yaml.constructor.SafeConstructor.yaml_constructors.items()
    if tag not in (_MAP_TAG, _SEQ_TAG, None)
    and tag.startswith("tag:yaml.org,2002:")
    and tag.rsplit(":", 1)[1] not in ("omap", "pairs", "set")
}


def _build_plain(root: yaml.Node) -> Any:
    """The value of a document that is a plain tree (no alias, no merge key, no collection
    tag), built in one pass that also checks the limits `_check_tree` checks: nodes, depth and
    duplicate keys.

    What `SafeConstructor.construct_document` builds, value for value: scalars go through its
    own functions, and mappings and sequences are plain dicts and lists in document order. It
    skips what only aliases and merge keys need (a table of built objects, generators for
    recursive structures, merge flattening), which was half the cost of reading a config. Any
    other document raises `_NotPlain`, and the general path reads it."""
    constructor = yaml.constructor.SafeConstructor()
    budget = [MAX_EXPANDED_NODES]

    def build(node: yaml.Node, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0 or depth > MAX_DEPTH:
            raise _NotPlain
        tag = node.tag
        value = node.value
        if isinstance(value, str):
            if tag == _STR_TAG:
                return value
            fn = _SCALARS.get(tag)
            if fn is None:
                raise _NotPlain
            return fn(constructor, node)
        if tag == _SEQ_TAG:
            return [build(item, depth + 1) for item in value]
        if tag != _MAP_TAG:
            raise _NotPlain
        mapping: dict[Any, Any] = {}
        for key_node, value_node in value:
            key = build(key_node, depth + 1)
            try:
                if key in mapping:  # a duplicate: the general path says where
                    raise _NotPlain
            except TypeError:  # an unhashable key: the general path says what it is
                raise _NotPlain from None
            mapping[key] = build(value_node, depth + 1)
        return mapping

    try:
        return build(root, 1)
    except (ValueError, TypeError, AttributeError, LookupError, ArithmeticError):
        raise _NotPlain from None  # a value its tag cannot hold: the strict path says so
    except yaml.YAMLError:
        raise _NotPlain from None


def _load_strict(text: str, max_text: int | None) -> tuple[Any, yaml.Node | None]:
    """The error path: compose again and construct with `_StrictLoader`, which raises the
    error at the node at fault (the fast path only knows that something failed)."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:  # pragma: no cover - the fast path had a node
            return None, None
        _check_nodes(node, max_text)
        return loader.construct_document(node), node
    finally:
        loader.dispose()


#: What may come right before an alias (``*name``) begins, besides white space: the start of
#: the text or a flow indicator. A ``*`` inside a word or a comment's ``kubernetes.*`` starts
#: none; a glob in a quoted string is a false alarm, which only costs the full walk.
_BEFORE_ALIAS = frozenset("\ufeff[{,:?-")
#: What cannot follow the ``*`` of an alias (its name is at least one other character).
_NOT_IN_ALIAS_NAME = frozenset("[]{},")


def _may_hold_alias(text: str) -> bool:
    """Whether ``text`` has a ``*`` where an alias can start (a scan of each ``*`` only)."""
    at = text.find("*")
    while at >= 0:
        before = text[at - 1] if at else " "
        after = text[at + 1 : at + 2]
        if (
            (before.isspace() or before in _BEFORE_ALIAS)
            and after
            and not after.isspace()
            and after not in _NOT_IN_ALIAS_NAME
        ):
            return True
        at = text.find("*", at + 1)
    return False


def _may_expand(text: str, max_text: int | None) -> bool:
    """Whether the document can break a limit that only the full `_check_nodes` walk finds:
    an alias (``*name``) or a merge key (``<<``) can make it expand, and a document may have
    more scalar text than its bytes (``\\L`` is two bytes of escape for three of text), so
    one over two thirds of ``max_text`` is measured too."""
    if "<<" in text or _may_hold_alias(text):
        return True
    if max_text is None:
        return False
    size = len(text) if text.isascii() else len(text.encode())
    return 3 * size > 2 * max_text


#: The attribute of a mapping node with merge keys that holds the pairs written in it.
_OWN = "hotreload_own_pairs"


def _check_tree(root: yaml.Node, loader: yaml.constructor.SafeConstructor, expands: bool) -> bool:
    """The cheap walk, for a document without aliases (a tree): count its nodes, measure its
    depth and look for duplicate keys, level by level. True when it is within the limits and
    has no duplicate; False when the full walk (and, for a duplicate, `_StrictLoader`) must
    say what is wrong, and for any document that may expand (``expands``)."""
    if expands:
        return False
    count = 0
    depth = 0
    level: list[yaml.Node] = [root]
    while level:
        depth += 1
        count += len(level)
        if depth > MAX_DEPTH or count > MAX_EXPANDED_NODES:
            return False
        below: list[yaml.Node] = []
        for node in level:
            value = node.value
            if isinstance(value, str):  # a scalar
                continue
            if isinstance(node, yaml.SequenceNode):
                below += value
                continue
            for pair in value:
                below += pair
            if _mapping_has_duplicate(node, loader):
                return False
        level = below
    return True


def _duplicates(root: yaml.Node, loader: yaml.constructor.SafeConstructor) -> bool:
    """Whether any mapping of a node graph (aliases shared, each node seen once) has a key
    twice."""
    seen: set[int] = set()
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen or isinstance(node.value, str):
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack += node.value
            continue
        for pair in node.value:
            stack += pair
        if _mapping_has_duplicate(node, loader):
            return True
    return False


def _mapping_has_duplicate(node: yaml.Node, loader: Any) -> bool:
    """A key given twice: string keys compared by their text, any other scalar key (``1``,
    ``true``, ``2024-01-01``) constructed first (``1`` and ``0x1`` are the same key). A key
    that cannot be constructed counts as a duplicate: `_StrictLoader` then says what it is.

    A mapping with a merge key is marked with the pairs written in it: constructing flattens
    the merged pairs into it, and an error about a merged-in key points at the mapping."""
    pairs: list[tuple[yaml.Node, yaml.Node]] = node.value
    names: set[str] = set()
    others: list[yaml.Node] = []
    merges = False
    for key, _ in pairs:
        tag = key.tag
        if tag == _STR_TAG:
            name = key.value
            if name in names:
                return True
            names.add(name)
        elif tag == _MERGE_TAG:
            merges = True
        elif isinstance(key, yaml.ScalarNode):
            others.append(key)
    if merges:
        setattr(node, _OWN, [pair for pair in pairs if pair[0].tag != _MERGE_TAG])
    if not others:
        return False
    values: set[Any] = set()
    for key in others:
        try:
            value = loader.construct_object(key, deep=True)
        except Exception:  # noqa: BLE001 - whatever it is, the strict loader reports it
            return True
        try:
            if value in values:
                return True
            values.add(value)
        except TypeError:  # unhashable: the constructor reports it
            return True
    return False


class _TooBig(Exception):
    """A limit broken at ``node``: turned into a `ConfigParseError` that points at it."""

    def __init__(self, message: str, node: yaml.Node) -> None:
        super().__init__(message)
        self.message = message
        self.node = node


def _check_nodes(root: yaml.Node, max_text: int | None) -> None:
    """Refuse a node graph that expands past `MAX_EXPANDED_NODES` nodes, ``max_text`` bytes
    of scalar text or `MAX_DEPTH` levels, or that refers to itself.

    One post-order walk, memoised by identity: a node an alias shares is measured once and
    counted as often as it is referenced, so the cost is that of the file, not of what it
    expands to. A merge key (``<<: *base``) counts like any other entry: PyYAML copies the
    merged pairs into every mapping that merges them before it drops duplicates.
    """
    measured: dict[int, tuple[int, int, int]] = {}  # id -> (nodes, text bytes, depth)
    on_path: set[int] = set()
    aliased = False
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            if key in measured:
                aliased = True
            else:
                value: str = node.value
                measured[key] = (1, len(value) if value.isascii() else len(value.encode()), 1)
            continue
        if not children_done and key in measured:
            aliased = True
            continue
        children = _children(node)
        if children_done:
            on_path.discard(key)
            nodes, size, depth = 1, 0, 0
            for child in children:
                n, t, d = measured[id(child)]
                nodes, size, depth = nodes + n, size + t, max(depth, d)
            depth += 1
            if nodes > MAX_EXPANDED_NODES:
                what = "aliases expand to" if aliased else "the document has"
                raise _TooBig(f"{what} more than {MAX_EXPANDED_NODES} nodes", node)
            if max_text is not None and size > max_text:
                raise _TooBig(
                    f"aliases expand to more than {max_text} bytes of text (max_bytes)", node
                )
            if depth > MAX_DEPTH:
                raise _TooBig(f"nesting is deeper than {MAX_DEPTH} levels", node)
            measured[key] = (nodes, size, depth)
            continue
        if key in on_path:
            raise _TooBig("an alias refers to itself (recursive structure)", node)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


#: ``\\ud800``-``\\udfff`` escapes not in a high + low pair: JSON can spell a lone surrogate,
#: which is no character, cannot be encoded as UTF-8 and so cannot be hashed or served.
_LONE_SURROGATE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def _parse_json(text: str, source: str) -> Any:
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as exc:
        raise ConfigParseError(source, exc.msg, line=exc.lineno, column=exc.colno) from None
    except ValueError as exc:  # duplicate key; the decoder does not say where
        raise ConfigParseError(source, str(exc)) from None
    except RecursionError:
        raise ConfigParseError(source, "the document is nested too deeply") from None
    lone = _LONE_SURROGATE.search(text)
    if lone is not None and not _encodable(data):
        line, column = _position(text[: lone.start()])
        raise ConfigParseError(
            source,
            "a \\u escape is half of a UTF-16 surrogate pair, which is not a character",
            line=line,
            column=column,
        )
    return data


def _encodable(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _parse_toml(text: str, source: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        if found is None:
            raise ConfigParseError(source, message) from None
        raise ConfigParseError(
            source,
            message[: found.start()],
            line=int(found.group(1)),
            column=int(found.group(2)),
        ) from None
    except RecursionError:
        raise ConfigParseError(source, "the document is nested too deeply") from None


def locate(
    raw: bytes, fmt: Format, path: list[str | int], *, at_key: bool = False
) -> tuple[int, int] | None:
    """1-based line and column of the node at ``path`` in a YAML document, if it can be found.

    Only called on the error path, so composing the document a second time costs nothing that
    matters. The walk stops at the deepest node it can find (a ``[...]`` segment, for a dict
    key the schema error did not name, stops it at the enclosing mapping). ``at_key`` points at
    the last key rather than its value (for an unknown field). JSON and TOML give no position.
    """
    return locate_all(raw, fmt, [path], at_key=at_key)[0]


def locate_all(
    raw: bytes, fmt: Format, paths: list[list[str | int]], *, at_key: bool = False
) -> list[tuple[int, int] | None]:
    """`locate` for several paths, composing the document once."""
    if fmt != "yaml":
        return [None] * len(paths)
    try:
        root: yaml.Node | None = yaml.compose(raw.decode("utf-8", "replace"), Loader=_BaseLoader)
    except (yaml.YAMLError, RecursionError):
        return [None] * len(paths)
    return locate_nodes(root, paths, at_key=at_key)


def locate_nodes(
    root: yaml.Node | None, paths: list[list[str | int]], *, at_key: bool = False
) -> list[tuple[int, int] | None]:
    """`locate_all` on a node tree `parse_node` already made (no second compose).

    Each mapping on the way is indexed by key once, when a path first goes through it, so
    any number of paths cost one pass over the mappings they visit (a key given twice, as a
    merged-in key and an own key: the later pair, the one in force, wins).
    """
    index: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = {}
    return [_node_position(root, path, at_key, index) for path in paths]


def _node_position(
    node: yaml.Node | None,
    path: list[str | int],
    at_key: bool,
    index: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]],
) -> tuple[int, int] | None:
    key: yaml.Node | None = None
    for seg in path:
        key = None
        if isinstance(node, yaml.MappingNode) and isinstance(seg, str):
            pairs = index.get(id(node))
            if pairs is None:
                own: list[tuple[yaml.Node, yaml.Node]] = getattr(node, _OWN, node.value) or []
                pairs = {k.value: (k, v) for k, v in own if isinstance(k.value, str)}
                index[id(node)] = pairs
            pair = pairs.get(seg)
            if pair is None:
                break
            key, node = pair
        elif isinstance(node, yaml.SequenceNode) and isinstance(seg, int) and seg < len(node.value):
            node = node.value[seg]
        else:
            break
    target = key if at_key and key is not None else node
    if target is None:
        return None
    return target.start_mark.line + 1, target.start_mark.column + 1
