"""The log-level switch (FR-4): a config field whose value is applied to stdlib loggers on load
and on every change, and refused as invalid before it can be committed."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Generic, TypeVar

from ._errors import ConfigValidationError
from ._logging import ContextLogger, apply_log_level, level_number

__all__ = ["LOG_LEVEL_SLOTS", "LogLevelSwitch"]

#: The state this part owns: slots of the `HotReloader` façade (a part has none of its own,
#: so parts stand side by side as bases instead of stacked in a chain).
LOG_LEVEL_SLOTS = ("_applied_level", "_log_level_field", "_loggers")

T = TypeVar("T")


class LogLevelSwitch(Generic[T]):
    """A mixin of the reloader: ``_check_log_level`` is its first validator, and
    ``_apply_log_level`` runs at each commit."""

    # The concerns of `HotReloader` are stacked as mixins, one module each, each with the
    # slots of the state it owns, so the reloader keeps no __dict__.
    if not TYPE_CHECKING:  # mypy would refuse assigning the façade's slots from here
        __slots__ = ()  # its state's slots are the façade's: see LOG_LEVEL_SLOTS

    path: str
    _log: ContextLogger
    _log_level_field: str | None
    _loggers: tuple[str, ...]
    _applied_level: int | None

    def _check_log_level(self, config: T) -> None:
        value = getattr(config, self._log_level_field or "", None)
        if value is None:
            return
        try:
            level_number(value)
        except ValueError as exc:
            raise ConfigValidationError(
                self.path, str(exc), field_path=self._log_level_field or "", reason="validator"
            ) from None

    def _apply_log_level(self, config: T) -> None:
        if self._log_level_field is None:
            return
        value = getattr(config, self._log_level_field, None)
        if value is None:
            return
        level = level_number(value)
        if level != self._applied_level:
            apply_log_level(level, self._loggers)
            if self._applied_level is not None:
                self._log.info("log_level_applied", new_level=logging.getLevelName(level))
            self._applied_level = level
