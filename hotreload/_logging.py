"""Log-level hot reload (HOLMES FR-4) without configuring anyone's logging.

The stdlib logger level is the one switch: the reloader sets it on the loggers it was given
(the root logger by default) and nothing else. structlog setups that route through stdlib
already obey it (``structlog.stdlib.filter_by_level``); setups that do not can add
`filter_by_stdlib_level` to their processors, so a structlog-only service follows the same
switch instead of a level frozen in at ``structlog.configure`` time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

__all__ = ["ContextLogger", "apply_log_level", "filter_by_stdlib_level", "level_number"]

_LEVELS = {
    "CRITICAL": logging.CRITICAL,
    "FATAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
    "NOTSET": logging.NOTSET,
}


def level_number(value: object) -> int:
    """``"debug"``/``"DEBUG"``/``10`` → 10. Raises ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"not a log level: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().upper() in _LEVELS:
        return _LEVELS[value.strip().upper()]
    raise ValueError(f"unknown log level {value!r} (use one of {', '.join(_LEVELS)})")


def apply_log_level(value: object, loggers: Iterable[str]) -> int:
    """Set ``value`` as the level of each named stdlib logger ("" is the root logger)."""
    level = level_number(value)
    for name in loggers:
        logging.getLogger(name or None).setLevel(level)
    return level


def filter_by_stdlib_level(logger_name: str = "") -> structlog.types.Processor:
    """A structlog processor that drops events below the named stdlib logger's level.

    Add it to ``structlog.configure(processors=[...])`` so a log-level change in the config
    reaches structlog-only services too::

        structlog.configure(processors=[hotreload.filter_by_stdlib_level(), ...])
    """
    target = logging.getLogger(logger_name or None)

    def processor(_: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        level = _LEVELS.get(method_name.upper(), logging.INFO)
        if method_name == "exception":
            level = logging.ERROR
        if not target.isEnabledFor(level):
            raise structlog.DropEvent
        return event_dict

    return processor


class ContextLogger:
    """A structlog logger with fixed context that resolves structlog's configuration per call.

    ``structlog.get_logger().bind()`` freezes the processors in force at bind time; a library
    that binds at construction would ignore the service's later ``structlog.configure`` (and
    ``structlog.testing.capture_logs``). This keeps the lazy proxy and adds the context itself.
    """

    __slots__ = ("_ctx", "_logger")

    def __init__(self, name: str, **context: Any) -> None:
        self._logger = structlog.get_logger(name)
        self._ctx = context

    def debug(self, event: str, **kw: Any) -> None:
        self._logger.debug(event, **self._ctx, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._logger.info(event, **self._ctx, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._logger.warning(event, **self._ctx, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._logger.error(event, **self._ctx, **kw)

    def exception(self, event: str, **kw: Any) -> None:
        self._logger.exception(event, **self._ctx, **kw)
