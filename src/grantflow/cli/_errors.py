"""Every error a command meets becomes one line on stderr and an exit code, never a traceback.

Exit codes: 1 when something failed or was refused, 2 for a usage error (a bad option,
an unreadable input, a database that is missing or not grantflow's), 130 when
interrupted. An error grantflow did not foresee (a database that went away, a full
disk) prints its type and message with a hint to rerun with ``--debug``, which prints
the traceback as well.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click
import typer
from rich.console import Console
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from grantflow.cli._database import UnusableDatabaseError
from grantflow.errors import (
    GrantflowError,
    InvalidInput,
    LifecycleDefinitionError,
    RuleDefinitionError,
    SchemaVersionError,
    StoreError,
    UnknownEvent,
)

__all__ = [
    "DEBUG_ENV",
    "DEBUG_HINT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "describe",
    "guarded",
    "report",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: Set (to anything but ``0`` or empty) by ``--debug``; children of ``bulk --workers`` inherit it.
DEBUG_ENV = "GRANTFLOW_DEBUG"
DEBUG_HINT = "(rerun with --debug to see the traceback)"

_USAGE_ERRORS = (
    InvalidInput,
    UnknownEvent,
    LifecycleDefinitionError,
    RuleDefinitionError,
    SchemaVersionError,
)

P = ParamSpec("P")
R = TypeVar("R")


def _first_line(text: object) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def describe(exc: BaseException) -> tuple[str, int, bool]:  # noqa: PLR0911 - one per kind
    """Return (one-line message, exit code, whether to add the ``--debug`` hint)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED, False
    if isinstance(exc, UnusableDatabaseError):
        return exc.message, EXIT_USAGE, False
    if isinstance(exc, StoreError) and isinstance(exc.__cause__, SQLAlchemyError | DBAPIError):
        # The database itself failed (down, killed, read-only): as before the store
        # wrapped driver errors, one line naming it and the --debug hint.
        text = re.sub(r"^database error \(\w+\): ", "", _first_line(exc.message))
        return f"database error: {text}", EXIT_FAILED, True
    if isinstance(exc, GrantflowError):
        code = EXIT_USAGE if isinstance(exc, _USAGE_ERRORS) else EXIT_FAILED
        return f"{type(exc).__name__}: {_first_line(exc.message)}", code, False
    if isinstance(exc, DBAPIError):
        return f"database error: {_first_line(exc.orig)}", EXIT_FAILED, True
    if isinstance(exc, SQLAlchemyError):
        return f"database error: {_first_line(exc)}", EXIT_FAILED, True
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}", EXIT_FAILED, True
    text = _first_line(exc)
    return f"{type(exc).__name__}{': ' + text if text else ''}", EXIT_FAILED, True


def debugging() -> bool:
    """Whether ``--debug`` (or ``GRANTFLOW_DEBUG``) asked for tracebacks."""
    return os.environ.get(DEBUG_ENV, "") not in {"", "0"}


def report(exc: BaseException) -> int:
    """Print `exc` as one line on stderr (after its traceback with ``--debug``); return the code."""
    message, code, hint = describe(exc)
    if debugging():
        traceback.print_exception(exc, file=sys.stderr)
    elif hint:
        message = f"{message} {DEBUG_HINT}"
    Console(stderr=True, soft_wrap=True).print(f"error: {message}", markup=False, highlight=False)
    return code


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn any exception a command raises into a one-line message and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except (Exception, KeyboardInterrupt) as exc:
            raise typer.Exit(report(exc)) from exc

    return wrapper
