"""What every command shares: options, opening the engine, output and input files.

Exit codes (see `grantflow.cli._errors`): 0 everything applied or ok; 1 something was
refused or failed (or `verify` found problems); 2 a usage error (bad options,
unreadable input file, unknown event, a database that is missing or not grantflow's).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

import grantflow
from grantflow._canonical import iso_utc, plain
from grantflow.cli._database import (
    MEMORY,
    UnusableDatabaseError,
    creatable_database,
    require_database,
)
from grantflow.cli._errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, guarded
from grantflow.errors import SchemaVersionError

__all__ = [
    "DEFAULT_DB",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "STDIN",
    "ActorIdOption",
    "DbOption",
    "EvidenceJsonOption",
    "EvidenceOption",
    "JsonOption",
    "OrgOption",
    "QuietOption",
    "RoleOption",
    "cell",
    "emit_json",
    "emit_table",
    "evidence_from",
    "guarded",
    "make_actor",
    "open_engine",
    "output_path",
    "read_input",
    "say",
    "stderr",
    "stdin_to_file",
    "stdout",
    "usage_error",
]

#: The database used when neither ``--db`` nor ``GRANTFLOW_DB`` says otherwise.
DEFAULT_DB = "sqlite:///grantflow.db"
#: A file argument of ``-`` means standard input.
STDIN = "-"

DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="GRANTFLOW_DB",
        help="Database URL (sqlite:///file.db, postgresql+psycopg://..., memory://).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar (it is drawn on a terminal only).")
]
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
    str | None,
    typer.Option("--evidence-json", help="Evidence as a JSON object (- reads standard input)."),
]

# Built per call, not at import: the console must look at the terminal it runs on.


def stdout() -> Console:
    """Return a console on standard output (plain text when it is not a terminal)."""
    return Console(soft_wrap=True)


def say(text: str) -> None:
    """Print one line of plain text on standard output (no markup, no highlighting)."""
    stdout().print(text, markup=False, highlight=False)


def stderr() -> Console:
    """Return a console on standard error."""
    return Console(stderr=True, soft_wrap=True)


def usage_error(message: str) -> NoReturn:
    """Print `message` as a usage error and exit with code 2."""
    stderr().print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(EXIT_USAGE)


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
def open_engine(db: str, *, create: bool = False, **options: Any) -> Iterator[grantflow.Engine]:
    """Open the engine on `db` and close it afterwards.

    Without `create` the database must already hold grantflow's tables: nothing is
    created, not even an empty SQLite file (see `grantflow.cli._database`).
    """
    if create:
        creatable_database(db)
    else:
        require_database(db)
    if db != MEMORY:
        options.setdefault("create", create)
    try:
        engine = grantflow.open(db, **options)
    except SchemaVersionError as exc:
        if exc.found is not None:
            raise
        raise UnusableDatabaseError(
            f"no grantflow database at {db}: run `grantflow db upgrade --db {db}`"
        ) from None
    try:
        yield engine
    finally:
        engine.close()


def evidence_from(pairs: Sequence[str] | None, as_json: str | None) -> dict[str, Any]:
    """Build evidence from ``KEY=VALUE`` pairs (strings) and a JSON object (typed)."""
    evidence: dict[str, Any] = {}
    if as_json == STDIN:
        as_json = sys.stdin.read()
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


def cell(value: Any) -> str:  # noqa: PLR0911 - one return per kind of value
    """Return `value` as the text of one table cell: the same spellings as ``--json``.

    Times are ISO-8601 UTC with microseconds and a ``Z`` (as in the audit trail),
    decimals plain, nested data compact JSON, ``None`` empty: never a Python repr.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date | int | Decimal):
        return str(value)
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return json.dumps(plain(value), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return str(value)


def emit_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows as a rich table on a terminal, as tab-separated text otherwise."""
    console = stdout()
    cells = [[cell(value) for value in row] for row in rows]
    if console.is_terminal:
        table = Table(title=title)
        for column in columns:
            table.add_column(column)
        for row in cells:
            table.add_row(*(Text(text) for text in row))
        console.print(table)
        return
    out = sys.stdout
    out.write("\t".join(columns) + "\n")
    for row in cells:
        out.write("\t".join(text.replace("\t", " ").replace("\n", " ") for text in row) + "\n")


def output_path(path: Path | None, option: str) -> Path | None:
    """Return `path` (``None`` for ``-`` or no path: standard output) once it can be written.

    Checked before any work is done, so that a typo in a folder name does not throw
    away a finished run: a usage error if the folder is missing or `path` is a folder.
    """
    if path is None or str(path) == STDIN:
        return None
    if path.is_dir():
        usage_error(f"{option} {path} is a folder; name a file")
    if not path.parent.is_dir():
        usage_error(f"{option} {path}: the folder {path.parent} does not exist")
    return path


def read_input(path: Path, what: str) -> bytes:
    """Return the bytes of `path` (standard input for ``-``); a usage error if unreadable."""
    if str(path) == STDIN:
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        usage_error(f"cannot read {what} {path}: {exc.strerror}")


@contextmanager
def stdin_to_file(suffix: str) -> Iterator[Path]:
    """Copy standard input to a temporary file (removed afterwards) and yield its path."""
    with tempfile.TemporaryDirectory(prefix="grantflow-stdin-") as folder:
        path = Path(folder) / f"stdin{suffix}"
        with path.open("wb") as out:
            for block in iter(lambda: sys.stdin.buffer.read(1 << 16), b""):
                out.write(block)
        yield path
