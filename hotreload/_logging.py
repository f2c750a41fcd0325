"""The package's logging, and log-level hot reload (HOLMES FR-4), without configuring anyone's.

Every module logs through `ContextLogger`: structlog when the application configured it, the
stdlib logger ``hotreload[.part]`` when nobody did.

The stdlib logger level is the one switch: the reloader sets it on the loggers it was given
(the root logger by default) and nothing else. structlog setups that route through stdlib
already obey it (``structlog.stdlib.filter_by_level``); setups that do not can add
`filter_by_stdlib_level` to their processors, so a structlog-only service follows the same
switch instead of a level frozen in at ``structlog.configure`` time.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import structlog

__all__ = [
    "LOG_LIST_MAX",
    "ContextLogger",
    "apply_log_level",
    "capped",
    "filter_by_stdlib_level",
    "level_number",
    "render",
]

#: A log line names at most this many items (changed paths, unknown keys): a change of
#: thousands of keys must not make one line of megabytes. The count says how many there were.
LOG_LIST_MAX = 20

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


#: structlog's global configuration: a bound logger is assembled again only when it changed.
_STRUCTLOG_CONFIG: Any = getattr(getattr(structlog, "_config", None), "_CONFIG", None)
#: Per logger name: the structlog configuration it was assembled under, and the bound logger.
_bound: dict[str, tuple[tuple[Any, ...], Any]] = {}


def _structlog_logger(name: str) -> Any:
    """The application's structlog logger for ``name``, assembled once per configuration.

    structlog's lazy proxy assembles a new bound logger (context, wrapper, a logger from the
    factory) on every call unless the application asked for ``cache_logger_on_first_use``:
    most of a reload's log line. It is kept here instead, keyed by the configuration objects
    it was assembled from, so a later ``structlog.configure`` (or ``capture_logs``) is obeyed
    from the next event on, as the proxy would; so is a swapped ``sys.stdout``."""
    config = _STRUCTLOG_CONFIG
    if config is None:  # pragma: no cover - a structlog without the module-level config
        return structlog.get_logger(name)
    key = (
        config.default_processors,
        config.default_wrapper_class,
        config.default_context_class,
        config.logger_factory,
        # A print or write logger made without a file takes the standard stream of the
        # moment it is made (pytest's capture swaps them): a new stream, a new logger.
        sys.stdout,
        sys.stderr,
    )
    cached = _bound.get(name)
    if cached is not None and _same(cached[0], key):
        return cached[1]
    logger = structlog.get_logger(name).bind()
    _bound[name] = (key, logger)
    return logger


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return all(x is y for x, y in zip(a, b, strict=True))


class ContextLogger:
    """The package's one way to log: an event name with key-value fields and fixed context.

    When the application configured structlog, events go through it as they always did, and
    structlog's configuration is resolved per call (``structlog.get_logger().bind()`` would
    freeze the processors in force at bind time, ignoring a later ``structlog.configure`` or
    ``structlog.testing.capture_logs``). When nobody configured structlog, its default would
    print every event, DEBUG included, to stdout, into the application's own output; events
    go to the stdlib logger of the same name (under ``hotreload``) instead, so the stdlib
    level applies, as it does for the log-level switch, and an unconfigured application sees
    only warnings and errors, on stderr.
    """

    __slots__ = ("_ctx", "_stdlib")

    def __init__(self, name: str, **context: Any) -> None:
        self._stdlib = logging.getLogger(name)
        self._ctx = context

    def debug(self, event: str, **kw: Any) -> None:
        self._emit(logging.DEBUG, "debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._emit(logging.INFO, "info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._emit(logging.WARNING, "warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        self._emit(logging.ERROR, "error", event, kw)

    def exception(self, event: str, **kw: Any) -> None:
        self._emit(logging.ERROR, "exception", event, kw)

    def _emit(self, level: int, method: str, event: str, kw: dict[str, Any]) -> None:
        if structlog.is_configured():
            # One per logger name, not per reloader: the context is given per call.
            logger = _structlog_logger(self._stdlib.name)
            getattr(logger, method)(event, **self._ctx, **kw)
            return
        server = _server_logger(self._stdlib)
        if server is not None:
            self._to_server(server, level, method, event, kw)
        elif self._stdlib.isEnabledFor(level):  # below the level: not even formatted
            self._stdlib.log(
                level,
                "%s",
                render(event, {**self._ctx, **kw}),
                exc_info=method == "exception",
                stacklevel=3,  # the record names the caller, not this module
            )

    def _to_server(
        self, server: logging.Logger, level: int, method: str, event: str, kw: dict[str, Any]
    ) -> None:
        """The record, still named ``hotreload[.part]``, through the server's own handlers.

        Shown at the server's level (``uvicorn --log-level``) or at the package's own, if a
        log-level switch set it lower (``log_level: DEBUG`` in the config).
        """
        if level < min(server.getEffectiveLevel(), self._stdlib.getEffectiveLevel()):
            return
        logger = self._stdlib
        fn, lno, func, _ = logger.findCaller(False, 4)  # the caller of info()
        record = logger.makeRecord(
            logger.name,
            level,
            fn,
            lno,
            "%s",
            (render(event, {**self._ctx, **kw}),),
            sys.exc_info() if method == "exception" else None,
            func,
        )
        server.handle(record)


#: Servers whose default logging configures their own loggers only (uvicorn's dictConfig:
#: ``uvicorn``, ``uvicorn.error``, ``uvicorn.access``): the package's records go to the first
#: one's handlers when nothing else would show them.
SERVER_LOGGERS = ("uvicorn.error",)


def _server_logger(own: logging.Logger) -> logging.Logger | None:
    """The server logger to show ``own``'s records through, or None (the stdlib as usual).

    Only when no handler at all would take them (none on the ``hotreload`` loggers, none on
    the root: the application configured no logging) and the server's logger has one. An
    application that configured logging, or structlog, keeps its own routing; an application
    that runs under no server sees only warnings and errors on stderr, as before.
    """
    if own.hasHandlers():
        return None
    for name in SERVER_LOGGERS:
        server = logging.Logger.manager.loggerDict.get(name)
        if isinstance(server, logging.Logger) and server.hasHandlers():
            return server
    return None


def capped(items: Iterable[str], limit: int = LOG_LIST_MAX) -> list[str]:
    """The first ``limit`` items, and ``"… N more"`` in place of the rest (a tuple or list is
    sliced, not walked: a change of a hundred thousand paths logs in the same time as one)."""
    if isinstance(items, (tuple, list)):
        head = list(items[:limit])
        if len(items) > limit:
            head.append(f"… {len(items) - limit} more")
        return head
    head = []
    extra = 0
    for item in items:
        if len(head) < limit:
            head.append(item)
        else:
            extra += 1
    if extra:
        head.append(f"… {extra} more")
    return head


def render(event: str, fields: Mapping[str, Any]) -> str:
    """``event key=value ...`` (keys sorted, as structlog's console renderer does)."""
    return " ".join([event, *(f"{key}={_value(fields[key])}" for key in sorted(fields))])


def _value(value: object) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c in "\\\"'=" for c in value):
        return value
    return repr(value)
