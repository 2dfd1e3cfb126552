"""What every command shares: options, opening the engine, output, errors and exit codes.

Exit codes: 0 everything applied or ok; 1 something was refused or failed (or `verify`
found problems); 2 a usage error (bad options, unreadable input file, unknown event).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

import grantflow
from grantflow._canonical import plain
from grantflow.errors import (
    GrantflowError,
    InvalidInput,
    LifecycleDefinitionError,
    RuleDefinitionError,
    UnknownEvent,
)

__all__ = [
    "DEFAULT_DB",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "ActorIdOption",
    "DbOption",
    "EvidenceJsonOption",
    "EvidenceOption",
    "JsonOption",
    "OrgOption",
    "RoleOption",
    "emit_json",
    "emit_table",
    "evidence_from",
    "guarded",
    "make_actor",
    "open_engine",
    "stderr",
    "stdout",
    "usage_error",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

#: The database used when neither ``--db`` nor ``GRANTFLOW_DB`` says otherwise.
DEFAULT_DB = "sqlite:///grantflow.db"

DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="GRANTFLOW_DB",
        help="Database URL (sqlite:///file.db, postgresql+psycopg://..., memory://).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
ActorIdOption = Annotated[
    str | None, typer.Option("--actor", envvar="GRANTFLOW_ACTOR", help="Who acts (an id).")
]
RoleOption = Annotated[
    list[str] | None,
    typer.Option(
        "--role",
        envvar="GRANTFLOW_ROLE",
        help="A role of the actor; repeat for several (env: space-separated).",
    ),
]
OrgOption = Annotated[
    str | None, typer.Option("--org", envvar="GRANTFLOW_ORG", help="The actor's organisation.")
]
EvidenceOption = Annotated[
    list[str] | None,
    typer.Option("--evidence", "-e", help="Evidence as KEY=VALUE (dots nest); repeatable."),
]
EvidenceJsonOption = Annotated[
    str | None, typer.Option("--evidence-json", help="Evidence as a JSON object.")
]

P = ParamSpec("P")
R = TypeVar("R")

# Built per call, not at import: the console must look at the terminal it runs on.


def stdout() -> Console:
    """Return a console on standard output (plain text when it is not a terminal)."""
    return Console(soft_wrap=True)


def stderr() -> Console:
    """Return a console on standard error."""
    return Console(stderr=True, soft_wrap=True)


def usage_error(message: str) -> NoReturn:
    """Print `message` as a usage error and exit with code 2."""
    stderr().print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(EXIT_USAGE)


_USAGE_ERRORS = (InvalidInput, UnknownEvent, LifecycleDefinitionError, RuleDefinitionError)


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn grantflow errors raised by a command into a one-line message and an exit code.

    Bad input (`InvalidInput`, `UnknownEvent`, definition errors) exits 2; everything
    else from the `GrantflowError` tree (not found, store, concurrency, idempotency) 1.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except GrantflowError as exc:
            code = EXIT_USAGE if isinstance(exc, _USAGE_ERRORS) else EXIT_FAILED
            stderr().print(
                f"error: {type(exc).__name__}: {exc.message}", markup=False, highlight=False
            )
            raise typer.Exit(code) from exc

    return wrapper


def make_actor(actor: str | None, roles: Sequence[str] | None, org: str | None) -> grantflow.Actor:
    """Build the acting `Actor` from ``--actor/--role/--org``; usage error without an id."""
    if not actor:
        usage_error("name who acts with --actor ID (and --role ROLE), or set GRANTFLOW_ACTOR")
    split = [part for role in roles or () for part in role.replace(",", " ").split()]
    try:
        return grantflow.Actor(id=actor, roles=frozenset(split), organisation=org)
    except ValueError as exc:
        usage_error(f"invalid actor: {exc}")


@contextmanager
def open_engine(db: str) -> Iterator[grantflow.Engine]:
    """Open the engine on `db` and close it afterwards."""
    engine = grantflow.open(db)
    try:
        yield engine
    finally:
        engine.close()


def evidence_from(pairs: Sequence[str] | None, as_json: str | None) -> dict[str, Any]:
    """Build evidence from ``KEY=VALUE`` pairs (strings) and a JSON object (typed)."""
    evidence: dict[str, Any] = {}
    if as_json:
        try:
            parsed = json.loads(as_json, parse_float=Decimal)
        except ValueError as exc:
            usage_error(f"--evidence-json is not valid JSON: {exc}")
        if not isinstance(parsed, dict):
            usage_error("--evidence-json must be a JSON object")
        evidence.update(parsed)
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            usage_error(f"--evidence {pair!r}: use KEY=VALUE")
        target = evidence
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                usage_error(f"--evidence {pair!r}: {part} is not an object")
        target[leaf] = value
    return evidence


def emit_json(value: Any) -> None:
    """Print `value` as indented JSON (decimals and times as text)."""
    sys.stdout.write(json.dumps(plain(value), indent=2, ensure_ascii=False) + "\n")


def emit_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows as a rich table on a terminal, as tab-separated text otherwise."""
    console = stdout()
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    if console.is_terminal:
        table = Table(title=title)
        for column in columns:
            table.add_column(column)
        for row in cells:
            table.add_row(*row)
        console.print(table)
        return
    out = sys.stdout
    out.write("\t".join(columns) + "\n")
    for row in cells:
        out.write("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row) + "\n")
