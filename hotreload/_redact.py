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

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = [
    "REDACTED",
    "Secrets",
    "is_secret_name",
    "mask_key",
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

#: ``scheme://userinfo@host``: the userinfo (up to the last ``@`` of the authority), whose
#: secret part `_userinfo_secret` picks. The scheme starts where a run of scheme characters
#: starts (never inside one: a ``a.b.c...`` run is scanned once, not once per character).
_URL_USERINFO = re.compile(
    r"(?<![a-z0-9+.\-])(?P<head>[a-z][a-z0-9+.\-]*://)(?P<userinfo>[^\s/?#]*)@", re.IGNORECASE
)
#: A userinfo that is a token whole (``https://ghp_...@github.com/``): a known token prefix.
_TOKEN_PREFIX = re.compile(r"gh[pousr]_|github_pat_|glpat-|xox[a-z]-|sk-", re.IGNORECASE)
#: ... or 20 characters at least with a digit in them (no user name looks like that).
_TOKEN_LENGTH = 20
_DIGIT = re.compile(r"[0-9]")
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
#: ``host=db user=app password=s3cret``: a libpq keyword DSN's ``keyword=`` (its value is
#: read by `_dsn_spans`: a bare word, or a quoted string with backslash escapes).
_DSN_KEYWORD = re.compile(r"(?<!\S)(?P<name>[a-z_]+)[ \t]*=[ \t]*", re.IGNORECASE)
_DSN_BARE = re.compile(r"[^\s'\"]*")
#: ``Authorization: Token abc``, ``Cookie: ...``, ``X-Api-Key: abc``: a header written as a
#: string (an item of a list of headers); the value runs to the end of the line.
_HEADER = re.compile(
    r"(?<![\w-])(?P<name>(?:proxy-)?authorization|(?:set-)?cookie|x-[a-z0-9-]+)[ \t]*:[ \t]*",
    re.IGNORECASE,
)
#: The scheme word of an ``Authorization`` value (``Bearer``, ``Token``): kept.
_HEADER_SCHEME = re.compile(r"[a-z][a-z0-9-]*[ \t]+(?=\S)", re.IGNORECASE)
_LINE_END = re.compile(r"[\r\n]")
#: A shape's secret shorter than this is not collected for replacement elsewhere in text
#: (masking every ``a`` in a message would ruin it); the shape itself is still masked.
_MIN_QUOTED = 4

#: Where one secret-shaped part of a text is: its start and end.
Span = tuple[int, int]


def is_secret_name(segment: str) -> bool:
    """A field or key named like something that holds a credential."""
    return _SECRET_NAME.search(_NOT_SECRET.sub("", segment)) is not None


def mask_text(text: str) -> str:
    """``text`` with every secret-shaped part masked: URL passwords and userinfo tokens,
    bearer/basic credentials, Slack webhook paths, query parameters and libpq keywords named
    like secrets, and the values of credential headers written as text."""
    for spans in _PASSES:
        text = _masked(text, spans(text))
    return text


def _masked(text: str, spans: Iterable[Span]) -> str:
    out: list[str] = []
    done = 0
    for start, end in spans:
        out.append(text[done:start])
        out.append(REDACTED)
        done = end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _shaped_secrets(text: str) -> Iterable[str]:
    for spans in _PASSES:
        for start, end in spans(text):
            yield text[start:end]


def _is_token(text: str) -> bool:
    return _TOKEN_PREFIX.match(text) is not None or (
        len(text) >= _TOKEN_LENGTH and _DIGIT.search(text) is not None
    )


def _userinfo_spans(text: str) -> Iterator[Span]:
    """The password of ``user:password@`` (everything after the first ``:``), or the whole
    userinfo when it is a token."""
    for found in _URL_USERINFO.finditer(text):
        start, end = found.span("userinfo")
        colon = text.find(":", start, end)
        if colon >= 0:
            yield colon + 1, end
        elif _is_token(found.group("userinfo")):
            yield start, end


def _group_spans(pattern: re.Pattern[str]) -> Callable[[str], Iterator[Span]]:
    def spans(text: str) -> Iterator[Span]:
        for found in pattern.finditer(text):
            yield found.span("secret")

    return spans


def _query_spans(text: str) -> Iterator[Span]:
    for found in _QUERY_SECRET.finditer(text):
        if is_secret_name(found.group("name")):
            yield found.span("secret")


def _dsn_spans(text: str) -> Iterator[Span]:
    """The value of each ``keyword=value`` whose keyword is named like a secret. A scanning
    loop: a quoted value is read by `_quote_end` (linear whatever the escapes)."""
    at = 0
    while (found := _DSN_KEYWORD.search(text, at)) is not None:
        start = found.end()
        if text.startswith("'", start):  # the quotes stay: ``password='***'``
            end = _quote_end(text, start)
            closed = end - start >= 2 and text[end - 1] == "'"
            start, end = start + 1, end - 1 if closed else end
        else:
            bare = _DSN_BARE.match(text, start)
            end = start if bare is None else bare.end()
        if end > start and is_secret_name(found.group("name")):
            yield start, end
        at = max(end, start)


def _header_spans(text: str) -> Iterator[Span]:
    """The value of a credential header (to the end of its line); an ``Authorization``
    value keeps its scheme word (``Authorization: Bearer ***``)."""
    at = 0
    while (found := _HEADER.search(text, at)) is not None:
        name = found.group("name")
        start = found.end()
        line_end = _LINE_END.search(text, start)
        end = len(text) if line_end is None else line_end.start()
        if name.lower().startswith("x-") and not is_secret_name(name):
            at = start
            continue
        if name.lower().endswith("authorization"):
            scheme = _HEADER_SCHEME.match(text, start, end)
            if scheme is not None:
                start = scheme.end()
        if end > start:
            yield start, end
        at = max(end, start)


def _quote_end(text: str, start: int) -> int:
    """Where the quoted string opening at ``start`` ends (after its closing quote), backslash
    escapes honoured; one left open runs to the end. Each character is looked at once."""
    stop = _QUOTE_STOP[text[start]]
    at = start + 1
    while (found := stop.search(text, at)) is not None and found.group() == "\\":
        at = found.end() + 1  # the escaped character
    return len(text) if found is None else found.end()


_PASSES: tuple[Callable[[str], Iterable[Span]], ...] = (
    _userinfo_spans,
    _group_spans(_AUTH_SCHEME),
    _group_spans(_SLACK_WEBHOOK),
    _query_spans,
    _dsn_spans,
    _header_spans,
)


#: A key that is a token whole: a known token prefix, or a long run of token characters with
#: letters and digits in it and no separator (hex, base64: no field name looks like that).
_KEY_TOKEN = re.compile(r"[A-Za-z0-9+/=]{32,}")
_LETTER = re.compile(r"[A-Za-z]")


@functools.lru_cache(maxsize=4096)
def mask_key(key: str) -> str:
    """A mapping key as it may be shown: redacted like a value (a Slack webhook URL used as
    a key shows ``https://hooks.slack.com/***``; a key that is a token shows ``***``)."""
    if _TOKEN_PREFIX.match(key) is not None or (
        _KEY_TOKEN.fullmatch(key) is not None
        and _DIGIT.search(key) is not None
        and _LETTER.search(key) is not None
    ):
        return REDACTED
    return mask_text(key)


def redact(value: Any, is_secret: IsSecret, path: Path = (), *, inside: bool = False) -> Any:
    """``value`` (builtins) with every string of a secret field, at any depth, replaced by
    ``***`` and every secret-shaped part of any other string masked.

    Only strings are masked by name: a boolean, a number or ``null`` is never a credential
    (``token_reviewer_enabled: true`` shows ``true``), and a secret field's map or list keeps
    its shape, each string in it masked (``inside``: below a secret field).
    """
    inside = inside or (bool(path) and is_secret(path))
    if isinstance(value, str):
        return REDACTED if inside else mask_text(value)
    if isinstance(value, dict):
        return _distinct_keys(
            (
                (mask_key(k) if isinstance(k, str) else k),
                redact(v, is_secret, (*path, str(k)), inside=inside),
            )
            for k, v in value.items()
        )
    if isinstance(value, list):
        return [redact(v, is_secret, path, inside=inside) for v in value]
    return value


def _distinct_keys(pairs: Iterable[tuple[Any, Any]]) -> dict[Any, Any]:
    """A mapping from pairs whose keys were masked: two keys that mask alike (two webhook URLs,
    two tokens) stay two entries, the later ones numbered (``***``, ``*** (2)``), so masking
    hides a key, never an entry."""
    out: dict[Any, Any] = {}
    for key, value in pairs:
        shown = key
        n = 1
        while shown in out:
            n += 1
            shown = f"{key} ({n})"
        out[shown] = value
    return out


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
    return _scrub_sorted(text, sorted(secrets, key=len, reverse=True))


def _scrub_sorted(text: str, ordered: Iterable[str]) -> str:
    for secret in ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return mask_text(text)


class Secrets:
    """The secret strings of one config, worked out on first use (longest first), not when
    the config is committed: most versions never have a message to scrub, and walking a
    large config on the event loop at every commit would hold it for nothing."""

    __slots__ = ("_builtins", "_is_secret", "_values")

    def __init__(self, builtins: Any = None, is_secret: IsSecret | None = None) -> None:
        self._builtins = builtins
        self._is_secret = is_secret
        self._values: tuple[str, ...] | None = None if is_secret is not None else ()

    @property
    def values(self) -> tuple[str, ...]:
        """The secret strings, longest first (a secret inside another goes after it)."""
        if self._values is None:
            assert self._is_secret is not None  # noqa: S101 - set with _values None
            found = secret_values(self._builtins, self._is_secret)
            self._values = tuple(sorted(found, key=len, reverse=True))
            self._builtins = self._is_secret = None  # the config may go; the strings stay
        return self._values

    def scrub(self, text: str) -> str:
        """``text`` with each secret value and every secret shape masked (see `scrub`)."""
        return _scrub_sorted(text, self.values)


def scrub_all(value: Any, secrets: Iterable[str]) -> Any:
    """`scrub` applied to every string inside a JSON-like report, keys included."""
    return _scrub_all(value, sorted(secrets, key=len, reverse=True))


def _scrub_all(value: Any, ordered: list[str]) -> Any:
    if isinstance(value, str):
        return _scrub_sorted(value, ordered)
    if isinstance(value, dict):
        return _distinct_keys(
            ((_scrub_sorted(k, ordered) if isinstance(k, str) else k), _scrub_all(v, ordered))
            for k, v in value.items()
        )
    if isinstance(value, list):
        return [_scrub_all(v, ordered) for v in value]
    return value


#: Where a quoted string starts, and what ends one (or escapes the next character).
_YAML_QUOTE = re.compile(r"['\"]")
_QUOTE_STOP = {"'": re.compile(r"['\\]"), '"': re.compile(r'["\\]')}
_YAML_TOKEN_NAME = re.compile(r"'<[a-z ]+>'")
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
    out: list[str] = []
    done = 0
    for start, end in _quoted(message):
        out.append(message[done:start])
        out.append(_keep_if_not_text(message, start, end))
        done = end
    out.append(message[done:])
    return "".join(out)


def _quoted(message: str) -> Iterator[tuple[int, int]]:
    """The span of each quoted string of ``message`` (see `_quote_end`). A scanning loop,
    not one regex: the regex spelling backtracks from every later quote of ``'\\'\\...``."""
    at = 0
    while (opening := _YAML_QUOTE.search(message, at)) is not None:
        at = _quote_end(message, opening.start())
        yield opening.start(), at


def _keep_if_not_text(message: str, start: int, end: int) -> str:
    """A quoted character ('\\t') or token name ('<scalar>') stays; anything else goes."""
    if end - start <= 4 or _YAML_TOKEN_NAME.fullmatch(message, start, end):
        return message[start:end]
    return "(...)"
