"""Per-field policy: which fields need a restart to change and which hold secrets.

A restart-required field either keeps its running value while the rest of a change applies
(``keep``, the default) or refuses the whole change (``refuse``: an identity such as an LLM
provider, where half a change would pair the new credentials with the old provider).

Both are declared on the schema with ``typing.Annotated`` markers (or passed as dotted path
patterns), so the schema stays the one place that describes the config. Paths use the names
as they appear in the file (a struct's ``rename`` is honoured); ``*`` matches one segment and a
pattern covers everything below it.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from . import _redact
from ._redact import Secrets
from ._schema import model_fields, secret_type

__all__ = [
    "FieldPolicy",
    "Path",
    "RestartMode",
    "RestartRequired",
    "Secret",
    "Secrets",
    "format_path",
]

RestartMode = Literal["keep", "refuse"]

Path = tuple[str, ...]


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"hotreload.{self._name}"


class _RestartMarker(_Marker):
    """`RestartRequired` (mode ``keep``), and ``RestartRequired("refuse")`` for the other mode."""

    __slots__ = ("mode",)

    def __init__(self, mode: RestartMode) -> None:
        super().__init__("RestartRequired" if mode == "keep" else f"RestartRequired({mode!r})")
        self.mode: RestartMode = mode

    def __call__(self, mode: RestartMode) -> _RestartMarker:
        if mode not in ("keep", "refuse"):
            raise ValueError(f"RestartRequired mode must be 'keep' or 'refuse', got {mode!r}")
        return _RestartMarker(mode)


RestartRequired: Any = _RestartMarker("keep")
"""``Annotated[int, RestartRequired]``: a change is not applied live; the running value stays
and the rest applies. ``Annotated[str, RestartRequired("refuse")]``: a change to the field
refuses the whole new version (the outcome names the field)."""

Secret: Any = _Marker("Secret")
"""``Annotated[str, Secret]``: the value is never logged or shown; diffs print ``***``."""


#: How many paths `FieldPolicy.is_secret` remembers at most.
_MEMO = 4096


def format_path(path: Path) -> str:
    """``path`` dotted, each key redacted like a value (`hotreload._redact.mask_key`): a
    secret-shaped key never shows in a changed path, a log line or a diff."""
    return ".".join(_redact.mask_key(seg) for seg in path)


def _split(pattern: str) -> Path:
    parts = tuple(p for p in pattern.split(".") if p)
    while parts and parts[-1] == "*":  # "kubernetes.*" covers the same subtree as "kubernetes"
        parts = parts[:-1]
    return parts


def _prefix_matches(pattern: Path, path: Path) -> bool:
    if len(path) < len(pattern):
        return False
    return all(p in ("*", seg) for p, seg in zip(pattern, path, strict=False))


def _root_in(patterns: tuple[Path, ...], path: Path) -> Path | None:
    for pattern in patterns:
        if _prefix_matches(pattern, path):
            return path[: len(pattern)]
    return None


class FieldPolicy:
    """Restart-required and secret fields of one schema, resolved once at start-up."""

    __slots__ = ("_roots", "_secret_paths", "refused", "restart_required", "secrets")

    def __init__(
        self,
        schema: Any,
        *,
        restart_required: Iterable[str] = (),
        secrets: Iterable[str] = (),
        refuse_changes: Iterable[str] = (),
    ) -> None:
        marked_restart, marked_secret, marked_refuse = _marked(schema)
        self.refused: tuple[Path, ...] = tuple(
            dict.fromkeys([*marked_refuse, *(_split(p) for p in refuse_changes)])
        )
        """Patterns whose change refuses the whole new version (mode ``refuse``)."""
        self.restart_required: tuple[Path, ...] = tuple(
            p
            for p in dict.fromkeys([*marked_restart, *(_split(p) for p in restart_required)])
            if p not in self.refused  # ``refuse`` wins over ``keep`` for the same field
        )
        self.secrets: tuple[Path, ...] = tuple(
            dict.fromkeys([*marked_secret, *(_split(p) for p in secrets)])
        )
        self._secret_paths: dict[Path, bool] = {}  # is_secret's answers, at most _MEMO of them
        # restart_root's and refuse_root's answers per changed path (made on the first change)
        self._roots: dict[Path, tuple[Path | None, Path | None]] | None = None

    def restart_root(self, path: Path) -> Path | None:
        """The restart-required subtree ``path`` lies in, if any."""
        return self._roots_of(path)[0]

    def refuse_root(self, path: Path) -> Path | None:
        """The ``refuse`` subtree ``path`` lies in, if any."""
        return self._roots_of(path)[1]

    def _roots_of(self, path: Path) -> tuple[Path | None, Path | None]:
        """Both roots of a changed path, memoised like `is_secret` (every change asks twice
        per path, against every pattern)."""
        memo = self._roots
        if memo is None:
            memo = self._roots = {}
        known = memo.get(path)
        if known is not None:
            return known
        answer = (_root_in(self.restart_required, path), _root_in(self.refused, path))
        if len(memo) >= _MEMO:
            memo.clear()
        memo[path] = answer
        return answer

    def is_secret(self, path: Path) -> bool:
        """Declared secret, or any segment named like a secret (see `hotreload._redact`).

        Memoised per path (a config's paths repeat from one version to the next); the memo
        is emptied when it reaches `_MEMO` entries, so free-form keys cannot grow it.
        """
        known = self._secret_paths.get(path)
        if known is not None:
            return known
        answer = any(_redact.is_secret_name(seg) for seg in path) or any(
            _prefix_matches(pattern, path) for pattern in self.secrets
        )
        if len(self._secret_paths) >= _MEMO:
            self._secret_paths.clear()
        self._secret_paths[path] = answer
        return answer

    def secrets_of(self, builtins: Any) -> Secrets:
        """The secret strings of a config (as builtins), worked out on first use."""
        return Secrets(builtins, self.is_secret)

    def redact(self, path: Path, value: Any) -> Any:
        """``value`` (builtins) as it may be shown, found at ``path``."""
        return _redact.redact(value, self.is_secret, path)

    def secret_values(self, builtins: Any) -> set[str]:
        """The secret strings of a config (as builtins), to scrub them out of text the engine
        did not write itself, such as an apply hook's error."""
        return _redact.secret_values(builtins, self.is_secret)

    def scrub(self, text: str, builtins: Any) -> str:
        """``text`` with every secret value of the config, and every secret shape, masked."""
        return _redact.scrub(text, self.secret_values(builtins))


def _marked(schema: Any) -> tuple[tuple[Path, ...], tuple[Path, ...], tuple[Path, ...]]:
    """The paths ``schema`` marks restart-required, secret and ``refuse``: worked out once per
    schema type (a thousand reloaders of one schema walk it once)."""
    try:
        return _marked_cached(schema)
    except TypeError:  # an unhashable schema spelling: walked each time
        return _walk_marks(schema)


@functools.lru_cache(maxsize=256)
def _marked_cached(schema: Any) -> tuple[tuple[Path, ...], tuple[Path, ...], tuple[Path, ...]]:
    return _walk_marks(schema)


def _walk_marks(schema: Any) -> tuple[tuple[Path, ...], tuple[Path, ...], tuple[Path, ...]]:
    restart: list[Path] = []
    secret: list[Path] = []
    refuse: list[Path] = []
    _collect(schema, (), restart, secret, set(), refuse=refuse)
    return tuple(restart), tuple(secret), tuple(refuse)


def _collect(
    tp: Any,
    prefix: Path,
    restart: list[Path],
    secret: list[Path],
    seen: set[Any],
    *,
    refuse: list[Path],
) -> None:
    """Walk a schema type for Annotated markers, through structs, pydantic models, optionals,
    dicts and lists. A pydantic ``SecretStr`` (or ``SecretBytes``, ``Secret[...]``) is secret."""
    if secret_type(tp):
        secret.append(prefix)
        return
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        inner, *extras = typing.get_args(tp)
        for extra in extras:
            if isinstance(extra, _RestartMarker):
                (refuse if extra.mode == "refuse" else restart).append(prefix)
        if any(e is Secret for e in extras):
            secret.append(prefix)
        _collect(inner, prefix, restart, secret, seen, refuse=refuse)
        return
    fields = model_fields(tp)
    if fields is not None:
        if tp in seen:
            return
        seen.add(tp)
        for name, annotation in fields:
            _collect(annotation, (*prefix, name), restart, secret, seen, refuse=refuse)
        seen.discard(tp)
        return
    args: Sequence[Any] = typing.get_args(tp)
    if origin in (dict, typing.get_origin(typing.Mapping[str, int])) and len(args) == 2:
        _collect(args[1], (*prefix, "*"), restart, secret, seen, refuse=refuse)
    elif args:  # Optional / Union / list / tuple: the markers of any member apply here
        for arg in args:
            if arg is not Ellipsis:
                _collect(arg, prefix, restart, secret, seen, refuse=refuse)
