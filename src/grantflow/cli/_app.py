"""Typer application behind the ``grantflow`` command."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import structlog
import typer
from rich.console import Console
from rich.table import Table

import grantflow
from grantflow.cli import _bulk_command, _integrity, _projects, _reports
from grantflow.cli._common import DEFAULT_DB, DbOption, guarded, stdout
from grantflow.persistence import sql
from grantflow.rules import RuleBook

__all__ = ["app", "main"]

app = typer.Typer(
    name="grantflow",
    help="Run purchased-service projects (grants) through their lifecycle.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

for _command in (
    _projects.fire,
    _bulk_command.bulk,
    _projects.show,
    _projects.history,
    _projects.explain,
    _integrity.verify,
    _integrity.checkpoint,
    _reports.report,
    _reports.diagram,
    _reports.export,
):
    app.command()(_command)


@db_app.command("upgrade")
@guarded
def db_upgrade(db: DbOption = DEFAULT_DB) -> None:
    """Create grantflow's tables, or migrate them to this version's schema."""
    version = sql.upgrade(db)
    stdout().print(f"database {db} is at schema version {version}", markup=False, highlight=False)


@app.command()
def demo(
    db: Annotated[str, typer.Option(help="Database URL.")] = "memory://",
) -> None:
    """Run one scripted project through the main line and print its history."""
    console = Console()
    applicant = grantflow.Actor(id="org-heart", roles=frozenset({"applicant"}))
    staff = grantflow.Actor(id="city-staff", roles=frozenset({"purchaser"}))
    with grantflow.open(db, rules=RuleBook(), discover_rules=False) as engine:
        pid = engine.submit(actor=applicant, data={"title": "Heart station EAP"}).project_id
        engine.fire(pid, "close", actor=staff)
        for event in ("approve", "sign", "pass_midterm", "assess", "close"):
            engine.fire(pid, event, actor=staff).raise_for_refusal()
        table = Table(title=f"History of {pid}")
        for column in ("seq", "event", "from", "to", "accepted", "refusals"):
            table.add_column(column)
        for entry in engine.history(pid):
            table.add_row(
                str(entry.seq),
                entry.event,
                entry.from_state or "",
                entry.to_state or "",
                "yes" if entry.accepted else "no",
                "; ".join(str(r) for r in entry.refusals),
            )
        console.print(table)
        report = engine.verify()
        console.print(f"audit chain verified: {report.ok} ({report.entries} entries)")


def main() -> None:
    """Entry point of the ``grantflow`` console script.

    The command is an application, not a library, so it may configure logging: only
    warnings and errors, on stderr, so that output stays clean for pipes.
    """
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    app()
