"""Typed errors: every rejection names the file and where in it things went wrong.

Messages never quote the offending text itself (a YAML error's usual snippet could hold a
secret), only the file, the position or field path, and what was wrong.
"""

from __future__ import annotations

import errno
import os

__all__ = [
    "ConfigApplyError",
    "ConfigBuildError",
    "ConfigError",
    "ConfigNotFoundError",
    "ConfigParseError",
    "ConfigReadError",
    "ConfigRefusedError",
    "ConfigValidationError",
]


class ConfigError(Exception):
    """Base class: the new config was rejected and the previous one stays in force.

    ``source`` is the file (or other source) the bad input came from and ``reason`` a short,
    stable label that metrics use (``missing``, ``read``, ``too_large``, ``parse``, ``schema``,
    ``validator``).
    """

    reason: str = "error"

    def __init__(self, source: str, message: str) -> None:
        super().__init__(source, message)
        self.source = source
        self.message = message

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[ConfigError], state: dict[str, object]) -> ConfigError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("source"), state.get("message"))
    err.__dict__.update(state)
    return err


class ConfigReadError(ConfigError):
    """The source could not be read: missing, unreadable, not a file, or over the size cap."""

    def __init__(self, source: str, message: str, *, reason: str = "read") -> None:
        super().__init__(source, message)
        self.reason = reason


class ConfigNotFoundError(ConfigReadError, FileNotFoundError):
    """The config file does not exist (``reason`` ``missing``).

    Also a `FileNotFoundError` (``errno`` ``ENOENT``, ``filename`` the file), so code written
    as ``except FileNotFoundError`` around loading a config file keeps working.
    """

    def __init__(self, source: str, message: str = "file not found") -> None:
        super().__init__(source, message, reason="missing")
        _as_enoent(self)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_not_found, (type(self), self.__dict__))


def _as_enoent(err: ConfigNotFoundError) -> None:
    """The `OSError` fields (slots of the C type, not in ``__dict__``, so not pickled)."""
    err.errno = errno.ENOENT
    err.strerror = os.strerror(errno.ENOENT)
    err.filename = err.source


def _rebuild_not_found(cls: type[ConfigNotFoundError], state: dict[str, object]) -> ConfigError:
    err = _rebuild(cls, state)
    assert isinstance(err, ConfigNotFoundError)  # noqa: S101 - built from cls just above
    _as_enoent(err)
    return err


class ConfigParseError(ConfigError):
    """The bytes are not a well-formed document. ``line`` and ``column`` are 1-based."""

    reason = "parse"

    def __init__(
        self, source: str, message: str, *, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(source, message)
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.source}: {self.message}"
        return f"{self.source}:{self.line}:{self.column}: {self.message}"


class ConfigValidationError(ConfigError):
    """The document parsed but does not fit the schema, or a validator refused it.

    ``field_path`` is dotted (``llm.temperature``, ``toolsets[2].name``; empty for the root);
    ``line``/``column`` point at that field in the file when they can be found.
    """

    reason = "schema"

    def __init__(
        self,
        source: str,
        message: str,
        *,
        field_path: str = "",
        line: int | None = None,
        column: int | None = None,
        reason: str = "schema",
    ) -> None:
        super().__init__(source, message)
        self.field_path = field_path
        self.line = line
        self.column = column
        self.reason = reason

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}:{self.column}"
        field = f" at `{self.field_path}`" if self.field_path else ""
        return f"{where}: {self.message}{field}"


class ConfigApplyError(ConfigError):
    """A valid new config was refused by an apply hook; the previous one stays in force.

    ``hook`` names the hook that raised. The message carries the hook's exception type and
    text with any secret value of the config replaced by ``***``.
    """

    reason = "apply_hook"

    def __init__(self, source: str, message: str, *, hook: str) -> None:
        super().__init__(source, message)
        self.hook = hook


class ConfigRefusedError(ConfigError):
    """A valid new config changes a field whose policy is ``refuse``: the whole change is
    refused (nothing of it applies) until the process restarts with it.

    ``fields`` are the dotted paths that changed (``field_path`` is the first). Distinct from
    an invalid file: ``reason`` is ``restart_refused``, the outcome's result ``error``.

    Also the refusal of a quarantined version (probation rolled it back): ``reason`` is
    ``quarantined`` and ``fields`` is empty.
    """

    reason = "restart_refused"

    def __init__(
        self,
        source: str,
        message: str,
        *,
        fields: tuple[str, ...],
        reason: str = "restart_refused",
    ) -> None:
        super().__init__(source, message)
        self.reason = reason
        self.fields = fields
        self.field_path = fields[0] if fields else ""


class ConfigBuildError(ConfigApplyError):
    """A derived resource's build failed or timed out for a valid new config: the change is
    refused like an apply hook refuses it, and the old config and resources stay.

    ``resource`` names the derived resource (``hook`` too, as for any apply refusal).
    """

    reason = "derive_build"

    def __init__(self, source: str, message: str, *, resource: str) -> None:
        super().__init__(source, message, hook=resource)
        self.resource = resource
