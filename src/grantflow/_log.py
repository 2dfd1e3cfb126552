"""grantflow's logger: the standard `logging` logger ``grantflow``, silent unless asked.

A library must not decide where its messages go. grantflow logs through
``logging.getLogger("grantflow")``, which carries a `logging.NullHandler`, so nothing
reaches Python's last-resort handler (stderr) and nothing is printed until the
application configures logging (``logging.basicConfig(level=logging.INFO)``, its own
handlers, or structlog's stdlib integration). structlog is never configured here.

Calls use structlog's convention, ``log.info("grantflow.audit", project_id=..., ...)``.
The level is checked first: a disabled call builds no event dict and no `LogRecord`,
so the audit log costs nothing in a run that does not want it. An enabled call
produces a record whose message reads ``grantflow.audit project_id='p-1' seq=2 ...``
and whose attributes hold the fields (``record.project_id``, ...) for structured
handlers; ``record.event`` is the event name.

Applications that want the events on a terminal call `log_to_console` (the
``grantflow`` command does, for warnings and errors on stderr).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TextIO

__all__ = ["LOGGER_NAME", "Logger", "get_logger", "log_to_console"]

#: The name of grantflow's standard-library logger.
LOGGER_NAME = "grantflow"

_stdlib = logging.getLogger(LOGGER_NAME)
_stdlib.addHandler(logging.NullHandler())

# Attributes a LogRecord already has: a field of the same name is passed with a prefix.
_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "event"}
_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})


class _Message:
    """The record's message, rendered only if a handler formats it."""

    __slots__ = ("event", "fields")

    def __init__(self, event: str, fields: Mapping[str, Any]) -> None:
        self.event = event
        self.fields = fields

    def __str__(self) -> str:
        parts = [f"{key}={value!r}" for key, value in self.fields.items()]
        return " ".join([self.event, *parts])


class Logger:
    """A bound logger with structlog's calling convention on a standard-library logger."""

    __slots__ = ("_context", "_logger")

    def __init__(self, logger: logging.Logger, context: Mapping[str, Any] = _NO_FIELDS) -> None:
        self._logger = logger
        self._context = context

    def __repr__(self) -> str:
        return f"Logger({self._logger.name!r}, context={dict(self._context)!r})"

    def bind(self, **values: Any) -> Logger:
        """Return a logger that adds `values` to every event."""
        return Logger(self._logger, {**self._context, **values})

    def enabled(self, level: int) -> bool:
        """Whether a call at `level` would make a record (check before building values)."""
        return self._logger.isEnabledFor(level)

    def debug(self, event: str, /, **values: Any) -> None:
        """Log `event` at DEBUG level."""
        if self._logger.isEnabledFor(logging.DEBUG):
            self._emit(logging.DEBUG, event, values)

    def info(self, event: str, /, **values: Any) -> None:
        """Log `event` at INFO level."""
        if self._logger.isEnabledFor(logging.INFO):
            self._emit(logging.INFO, event, values)

    def warning(self, event: str, /, **values: Any) -> None:
        """Log `event` at WARNING level."""
        if self._logger.isEnabledFor(logging.WARNING):
            self._emit(logging.WARNING, event, values)

    def error(self, event: str, /, **values: Any) -> None:
        """Log `event` at ERROR level."""
        if self._logger.isEnabledFor(logging.ERROR):
            self._emit(logging.ERROR, event, values)

    def _emit(self, level: int, event: str, values: Mapping[str, Any]) -> None:
        fields = {**self._context, **values} if self._context else dict(values)
        extra = {("field_" + k if k in _RESERVED else k): v for k, v in fields.items()}
        extra["event"] = event
        self._logger.log(level, _Message(event, fields), extra=extra, stacklevel=3)


def get_logger(name: str = LOGGER_NAME) -> Logger:
    """Return a `Logger` on the standard-library logger `name` (grantflow's by default)."""
    return Logger(logging.getLogger(name))


def log_to_console(
    level: int = logging.WARNING,
    stream: TextIO | None = None,
    formatter: logging.Formatter | None = None,
) -> Callable[[], None]:
    """Show grantflow's events from `level` up on `stream` (stderr); return an undo function.

    For applications such as the ``grantflow`` command: a library embedding grantflow
    configures logging its own way and never needs this.
    """
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setLevel(level)
    handler.setFormatter(formatter or logging.Formatter("%(levelname)s %(message)s"))
    previous = _stdlib.level
    _stdlib.addHandler(handler)
    if previous == logging.NOTSET or previous > level:
        _stdlib.setLevel(level)

    def undo() -> None:
        _stdlib.removeHandler(handler)
        _stdlib.setLevel(previous)

    return undo
