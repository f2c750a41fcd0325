"""Redaction: the one place that decides what is a secret and masks it as ``***``.

Two kinds of rules, because a secret shows itself in two ways:

* by its **name**: a field (at any depth, dict keys included) named like a key, token,
  password, credential or an HTTP header that carries one (``authorization``, ``cookie``,
  ``x-api-key``) holds a secret whatever its value looks like;
* by its **shape**, in any string under any name: the password of a URL's userinfo
  (``postgresql://admin:***@db``), a bearer/basic credential (``Bearer ***``), a Slack
  webhook's path, a URL query parameter named like a secret.

Everything that leaves the process goes through here: the config shown by ``/-/config`` and
diffs (`redact`), and free text the engine did not write itself, such as a tool's error
message or a validator's refusal (`scrub`, which also replaces every secret value of the
config wherever it is quoted), and PyYAML's error messages, which quote the document
(`yaml_message`). Over-redacting is the safe side: ``bypass`` is masked too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "REDACTED",
    "is_secret_name",
    "mask_text",
    "redact",
    "scrub",
    "scrub_all",
    "secret_values",
    "yaml_message",
]

REDACTED = "***"

Path = tuple[str, ...]
IsSecret = Callable[[Path], bool]

#: A name holds a secret when it contains one of these. ``pass`` covers password, passwd and
#: passphrase; the header names are the ones that carry credentials.
_SECRET_NAME = re.compile(
    r"key|token|pass|pwd|secret|credential|authorization|cookie", re.IGNORECASE
)
#: One exception: ``tokens`` counts LLM tokens (``max_tokens_per_request``), it is no credential.
_NOT_SECRET = re.compile(r"tokens", re.IGNORECASE)

#: ``scheme://user:password@host``: the password (up to the last ``@`` of the authority).
_URL_USERINFO = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^\s:/?#@]*:)(?P<secret>[^\s/?#]*)(?=@)", re.IGNORECASE
)
#: ``Bearer <token>`` / ``Basic <base64>``, as in an ``Authorization`` header written anywhere
#: (8 characters at least: a credential, not the next word of "a bearer of bad news").
_AUTH_SCHEME = re.compile(
    r"(?P<head>\b(?:bearer|basic)\s+)(?P<secret>[\w\-.~+/]{8,}=*)", re.IGNORECASE
)
#: A Slack webhook URL is its own credential: everything after the host.
_SLACK_WEBHOOK = re.compile(
    r"(?P<head>\bhttps?://hooks\.slack(?:-gov)?\.com/)(?P<secret>[^\s\"'<>]+)", re.IGNORECASE
)
#: ``?api_key=...`` / ``&token=...``: a query parameter named like a secret.
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?P<name>[^\s=&#;?]+)=)(?P<secret>[^\s&#;\"'<>]+)", re.IGNORECASE
)
_SHAPES = (_URL_USERINFO, _AUTH_SCHEME, _SLACK_WEBHOOK)
#: A shape's secret shorter than this is not collected for replacement elsewhere in text
#: (masking every ``a`` in a message would ruin it); the shape itself is still masked.
_MIN_QUOTED = 4


def is_secret_name(segment: str) -> bool:
    """A field or key named like something that holds a credential."""
    return _SECRET_NAME.search(_NOT_SECRET.sub("", segment)) is not None


def mask_text(text: str) -> str:
    """``text`` with every secret-shaped part masked: URL passwords, bearer/basic credentials,
    Slack webhook paths and query parameters named like secrets."""
    for shape in _SHAPES:
        text = shape.sub(_mask_group, text)
    return _QUERY_SECRET.sub(_mask_query, text)


def _mask_group(found: re.Match[str]) -> str:
    return found.group("head") + REDACTED


def _mask_query(found: re.Match[str]) -> str:
    if not is_secret_name(found.group("name")):
        return found.group(0)
    return found.group("head") + REDACTED


def _shaped_secrets(text: str) -> Iterable[str]:
    for shape in _SHAPES:
        for found in shape.finditer(text):
            yield found.group("secret")
    for found in _QUERY_SECRET.finditer(text):
        if is_secret_name(found.group("name")):
            yield found.group("secret")


def redact(value: Any, is_secret: IsSecret, path: Path = ()) -> Any:
    """``value`` (builtins) with every secret field, at any depth, replaced by ``***`` and
    every secret-shaped part of any other string masked."""
    if path and is_secret(path):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, is_secret, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, is_secret, path) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def secret_values(value: Any, is_secret: IsSecret) -> set[str]:
    """Every secret string of a config (as builtins): whole values of secret fields and the
    secret parts of shaped strings, to find them again when some text quotes them."""
    found: set[str] = set()
    stack: list[tuple[Path, Any, bool]] = [((), value, False)]
    while stack:
        path, node, inside = stack.pop()
        inside = inside or (bool(path) and is_secret(path))
        if isinstance(node, dict):
            stack.extend(((*path, str(k)), v, inside) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((path, v, inside) for v in node)
        elif isinstance(node, str):
            if inside:
                found.add(node)
            found.update(_shaped_secrets(node))
    return {s for s in found if len(s) >= _MIN_QUOTED}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (longest first) and every secret shape masked."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return mask_text(text)


def scrub_all(value: Any, secrets: Iterable[str]) -> Any:
    """`scrub` applied to every string inside a JSON-like report (keys stay as they are)."""
    ordered = sorted(secrets, key=len, reverse=True)
    if isinstance(value, str):
        return scrub(value, ordered)
    if isinstance(value, dict):
        return {k: scrub_all(v, ordered) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_all(v, ordered) for v in value]
    return value


_YAML_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" + r'|"(?:[^"\\]|\\.)*"')
_YAML_UNKNOWN_TAG = re.compile(r"could not determine a constructor for the tag '(?P<tag>[^']*)'")
_YAML_STANDARD_TAG = "tag:yaml.org,2002:"


def yaml_message(message: str) -> str:
    """A YAML error message without the document's text in it.

    PyYAML quotes tags, anchors and alias names it did not expect, and those are document
    text: ``password: !Sup3r`` makes ``!Sup3r`` a tag, ``token: *xyz`` makes ``xyz`` an alias.
    Our own duplicate-key message keeps the key (a name, and the point of the message).
    """
    if message.startswith("found duplicate key "):
        return message
    found = _YAML_UNKNOWN_TAG.search(message)
    if found is not None:
        tag = found.group("tag")
        if tag.startswith(_YAML_STANDARD_TAG + "python/"):
            name = "!!" + tag[len(_YAML_STANDARD_TAG) :].split(":", 1)[0]
            return f"could not determine a constructor for the unsafe tag {name}"
        return (
            "could not determine a constructor for the tag "
            "(a value that starts with '!' is a YAML tag: quote it)"
        )
    return _YAML_QUOTED.sub(_keep_if_not_text, message)


def _keep_if_not_text(found: re.Match[str]) -> str:
    """A quoted character ('\\t') or token name ('<scalar>') stays; anything else goes."""
    quoted = found.group(0)
    if len(quoted) <= 4 or re.fullmatch(r"'<[a-z ]+>'", quoted):
        return quoted
    return "(...)"
