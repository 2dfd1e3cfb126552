"""Typer application behind the ``grantflow`` command."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from rich.console import Console

import grantflow
from grantflow.cli import _bulk_command, _integrity, _projects, _reports
from grantflow.cli._common import DEFAULT_DB, DbOption, guarded, stdout
from grantflow.demo import DemoClock, render_report, run_demo
from grantflow.persistence import sql

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
@guarded
def demo(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same portfolio.")] = 7,
    projects: Annotated[int, typer.Option(min=10, max=20000, help="Projects to seed.")] = 500,
    db: Annotated[
        str,
        typer.Option(help="Database URL; default a fresh grantflow-demo.db here."),
    ] = "",
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Seed a realistic portfolio, drive it through the lifecycle, report and verify it.

    A city federation with district, street and industry unions and directly managed
    associations buys services from a few hundred providers; 500 projects go through
    reviews, approval, contracts, spending, mid-term (with rectification and
    termination), assessment and closing, in bulk, with refusals on purpose.
    """
    url = db or _fresh_demo_db()
    clock = DemoClock()
    console = Console(stderr=True)
    # The throwaway demo file trades power-loss durability for speed; a --db is left as is.
    options: dict[str, Any] = {"synchronous": "NORMAL"} if not db else {}
    with grantflow.open(url, clock=clock, **options) as engine:
        started = time.monotonic()
        with console.status("seeding the portfolio") as status:
            report = run_demo(
                engine,
                clock=clock,
                seed=seed,
                projects=projects,
                progress=lambda step: status.update(f"demo: {step}"),
            )
        elapsed = time.monotonic() - started
    if json_output:
        sys.stdout.write(json.dumps({**report.to_dict(), "seconds": round(elapsed, 2)}) + "\n")
    else:
        out = stdout()
        render_report(report, out)
        out.print(f"database: {url} ({elapsed:.1f} s)", markup=False, highlight=False)
    if not report.verified:
        raise typer.Exit(1)


def _fresh_demo_db() -> str:
    path = Path("grantflow-demo.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


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
