"""Bytes to plain Python data, safely: YAML (C loader when present), JSON and TOML.

YAML is the format most configs arrive in and the one with the sharpest edges, so the loader
is the safe one (no python tags), rejects duplicate keys instead of silently keeping the last,
and bounds what aliases may expand to (a "billion laughs" document is a few hundred bytes that
become billions of nodes the moment anything walks it). libyaml already refuses nesting deeper
than 1000; the pure-Python fallback hits the recursion limit, which is turned into the same
typed error.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Literal

import yaml

from ._errors import ConfigParseError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["Format", "format_for", "parse", "parse_node"]

Format = Literal["yaml", "json", "toml"]

#: Nodes a document may expand to once aliases are followed (a real config has a few hundred).
MAX_EXPANDED_NODES = 100_000
#: Nesting depth a document may have (libyaml's own limit is 1000).
MAX_DEPTH = 200

_MERGE_TAG = "tag:yaml.org,2002:merge"
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader, but a key given twice in one mapping is an error, not a silent override."""

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


def format_for(path: str) -> Format:
    """The format a file's suffix implies; anything not JSON or TOML is read as YAML."""
    lower = path.lower()
    if lower.endswith(".json"):
        return "json"
    if lower.endswith(".toml"):
        return "toml"
    return "yaml"


def parse(raw: bytes, fmt: Format, source: str) -> Any:
    """Decode and parse ``raw``; raise `ConfigParseError` with a 1-based line and column."""
    return parse_node(raw, fmt, source)[0]


def parse_node(raw: bytes, fmt: Format, source: str) -> tuple[Any, yaml.Node | None]:
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
        data, node = _parse_yaml(text, source)
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


def _parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    # yaml.load's own steps, keeping the node tree it builds the data from.
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        parts = [_scrub(p) for p in (exc.context, exc.problem) if p]
        message = ": ".join(parts) or "invalid YAML"
        if mark is None:
            raise ConfigParseError(source, message) from None
        raise ConfigParseError(
            source, message, line=mark.line + 1, column=mark.column + 1
        ) from None
    except yaml.reader.ReaderError as exc:
        line, column = _position(text[: exc.position])
        raise ConfigParseError(
            source, f"character {exc.character!r} is not allowed in YAML", line=line, column=column
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigParseError(source, type(exc).__name__) from None
    except RecursionError:
        raise ConfigParseError(source, "the document is nested too deeply") from None
    finally:
        loader.dispose()
    _check_shape(data, source)
    return data, node


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" + r'|"(?:[^"\\]|\\.)*"')
_UNKNOWN_TAG = re.compile(r"could not determine a constructor for the tag '(?P<tag>[^']*)'")
_STANDARD_TAG = "tag:yaml.org,2002:"


def _scrub(message: str) -> str:
    """A YAML error message without the document's text in it.

    PyYAML quotes tags, anchors and alias names it did not expect, and those are document
    text: ``password: !Sup3r`` makes ``!Sup3r`` a tag, ``token: *xyz`` makes ``xyz`` an alias.
    Our own duplicate-key message keeps the key (a name, and the point of the message).
    """
    if message.startswith("found duplicate key "):
        return message
    found = _UNKNOWN_TAG.search(message)
    if found is not None:
        tag = found.group("tag")
        if tag.startswith(_STANDARD_TAG + "python/"):
            name = "!!" + tag[len(_STANDARD_TAG) :].split(":", 1)[0]
            return f"could not determine a constructor for the unsafe tag {name}"
        return (
            "could not determine a constructor for the tag "
            "(a value that starts with '!' is a YAML tag: quote it)"
        )
    return _QUOTED.sub(_keep_if_not_text, message)


def _keep_if_not_text(found: re.Match[str]) -> str:
    """A quoted character ('\\t') or token name ('<scalar>') stays; anything else goes."""
    quoted = found.group(0)
    if len(quoted) <= 4 or re.fullmatch(r"'<[a-z ]+>'", quoted):
        return quoted
    return "(...)"


def _check_shape(data: Any, source: str) -> None:
    """Bound depth and expanded size in one cheap pass (a shared subtree is walked each time it
    is referenced, so the budget is what anything walking the config later would pay).

    Only when the budget runs out is the exact, memoised walk used to say why.
    """
    budget = MAX_EXPANDED_NODES
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            _check_expansion(data, source)  # says "refers to itself" when it is a cycle
            raise ConfigParseError(source, f"nesting is deeper than {MAX_DEPTH} levels")
        budget -= len(node)
        if budget < 0:
            _check_expansion(data, source)
            raise ConfigParseError(source, f"the document has more than {MAX_EXPANDED_NODES} nodes")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def _check_expansion(data: Any, source: str) -> None:
    """Reject alias cycles, documents that expand past `MAX_EXPANDED_NODES`, or nest too deep.

    One post-order walk over the object graph, memoised by identity, so shared subtrees are
    costed as often as they are referenced without being visited more than once.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, children_done = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        key = id(node)
        if not children_done and key in size:
            continue  # a shared subtree already costed: skip before touching its children
        children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
        containers = [c for c in children if isinstance(c, (dict, list))]
        if children_done:
            on_path.discard(key)
            size[key] = 1 + len(children) + sum(size[id(c)] - 1 for c in containers)
            depth[key] = 1 + max((depth[id(c)] for c in containers), default=0)
            if size[key] > MAX_EXPANDED_NODES:
                raise ConfigParseError(
                    source, f"aliases expand to more than {MAX_EXPANDED_NODES} nodes"
                )
            if depth[key] > MAX_DEPTH:
                raise ConfigParseError(source, f"nesting is deeper than {MAX_DEPTH} levels")
            continue
        if key in on_path:
            raise ConfigParseError(source, "an alias refers to itself (recursive structure)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in containers if id(c) not in size)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as exc:
        raise ConfigParseError(source, exc.msg, line=exc.lineno, column=exc.colno) from None
    except ValueError as exc:  # duplicate key; the decoder does not say where
        raise ConfigParseError(source, str(exc)) from None
    except RecursionError:
        raise ConfigParseError(source, "the document is nested too deeply") from None


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
    return [_node_position(root, path, at_key) for path in paths]


def _node_position(
    node: yaml.Node | None, path: list[str | int], at_key: bool
) -> tuple[int, int] | None:
    key: yaml.Node | None = None
    for seg in path:
        key = None
        if isinstance(node, yaml.MappingNode) and isinstance(seg, str):
            pair = next((kv for kv in node.value if getattr(kv[0], "value", None) == seg), None)
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
