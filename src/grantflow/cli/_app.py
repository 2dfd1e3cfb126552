"""Typer application behind the ``grantflow`` command."""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer

import grantflow
from grantflow._log import log_to_console
from grantflow.cli import _bulk_command, _integrity, _projects, _reports, _time
from grantflow.cli._common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    QuietOption,
    emit_json,
    guarded,
    open_engine,
    stdout,
    usage_error,
)
from grantflow.cli._database import check_url, creatable_database
from grantflow.cli._errors import DEBUG_ENV, report
from grantflow.cli._outbox import outbox_app
from grantflow.cli._progress import meter
from grantflow.demo import DemoClock, render_report, run_demo
from grantflow.persistence import sql

__all__ = ["DEMO_STEPS", "app", "main"]

#: Steps a demo run reports (``run_demo``'s `progress` calls) for 40 to 2,000 projects;
#: the demo's bar counts them. A run with more steps stretches the bar.
DEMO_STEPS = 35

app = typer.Typer(
    name="grantflow",
    help="Run purchased-service projects (grants) through their lifecycle.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(outbox_app, name="outbox")

for _command in (
    _projects.fire,
    _bulk_command.bulk,
    _projects.show,
    _projects.history,
    _projects.list_projects,
    _projects.explain,
    _integrity.verify,
    _integrity.checkpoint,
    _integrity.prove,
    _reports.report,
    _reports.diagram,
    _reports.export,
    _time.due,
    _time.sweep,
):
    # `list_projects` is `grantflow list` (a Python function may not be named list).
    app.command(name=_command.__name__.removesuffix("_projects"))(_command)


def _package_version() -> str:
    try:
        return version("grantflow")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return grantflow.__version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"grantflow {_package_version()}")
        raise typer.Exit


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar=DEBUG_ENV,
            help="Print the traceback of an error (allowed after the command name too).",
        ),
    ] = False,
) -> None:
    """Run purchased-service projects (grants) through their lifecycle."""
    if debug:
        os.environ[DEBUG_ENV] = "1"


@db_app.command("upgrade")
@guarded
def db_upgrade(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """Create grantflow's tables, or migrate them to this version's schema."""
    url = check_url(db)
    if url is None:
        usage_error("memory:// holds nothing to upgrade; name a database with --db")
    creatable_database(db)
    schema_version = sql.upgrade(db)
    shown = url.render_as_string(hide_password=True)
    if as_json:
        emit_json({"database": shown, "schema_version": schema_version})
        return
    stdout().print(
        f"database {shown} is at schema version {schema_version}", markup=False, highlight=False
    )


@app.command()
@guarded
def demo(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same portfolio.")] = 7,
    projects: Annotated[int, typer.Option(min=10, max=20000, help="Projects to seed.")] = 500,
    db: Annotated[
        str,
        typer.Option(help="Database URL; default a fresh grantflow-demo.db here."),
    ] = "",
    add: Annotated[
        bool,
        typer.Option("--add", help="Add the demo to a --db that already holds projects."),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Seed a realistic portfolio, drive it through the lifecycle, report and verify it.

    A city federation with district, street and industry unions and directly managed
    associations buys services from a few hundred providers; 500 projects go through
    reviews, approval, contracts, spending, mid-term (with rectification and
    termination), assessment and closing, in bulk, with refusals on purpose.
    """
    url = db or _fresh_demo_db()
    clock = DemoClock()
    # The throwaway demo file trades power-loss durability for speed; a --db is left as is.
    options: dict[str, Any] = {"synchronous": "NORMAL"} if not db else {}
    with open_engine(url, create=True, clock=clock, **options) as engine:
        _check_demo_target(engine, url, add=add)
        started = time.monotonic()
        with meter("demo", DEMO_STEPS, unit="steps", quiet=quiet) as bar:
            steps = 0

            def step(label: str) -> None:
                nonlocal steps
                steps += 1
                bar.set(steps - 1, total=max(DEMO_STEPS, steps))
                bar.describe(f"demo: {label}")

            report = run_demo(engine, clock=clock, seed=seed, projects=projects, progress=step)
            bar.set(max(DEMO_STEPS, steps), total=max(DEMO_STEPS, steps))
        elapsed = time.monotonic() - started
    if json_output:
        sys.stdout.write(json.dumps({**report.to_dict(), "seconds": round(elapsed, 2)}) + "\n")
    else:
        out = stdout()
        render_report(report, out)
        out.print(f"database: {url} ({elapsed:.1f} s)", markup=False, highlight=False)
    if not report.verified:
        raise typer.Exit(1)


def _check_demo_target(engine: grantflow.Engine, url: str, *, add: bool) -> None:
    """Refuse a database that holds projects (unless `add`) or the demo's own projects."""
    store = engine.store
    held = store.count_projects({})
    if held and not add:
        usage_error(
            f"{url} already holds {held} projects; use a fresh --db, or --add to add the "
            "demo portfolio to them"
        )
    for first in ("P-2025-0001", "P-2026-0001"):
        if store.load(first) is not None:
            usage_error(
                f"{url} already holds the demo portfolio ({first}); run the demo on a fresh --db"
            )


def _fresh_demo_db() -> str:
    path = Path("grantflow-demo.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


#: The collector's first threshold in the command (CPython's default is 700).
COLLECT_EVERY = 10_000


def tune_collector() -> None:
    """Tune CPython's cyclic garbage collector for the command's own, short-lived process.

    Everything imported by now lives as long as the process: `gc.freeze` moves it out of
    the collector's sight, so that a full collection walks only what the command made.
    The first threshold is raised from 700 to `COLLECT_EVERY`: a bulk run makes and drops
    tens of objects per item, and collecting every 700 of them cost a quarter of the
    demo's time (docs/performance.md). Memory stays bounded: at most that many objects
    wait for a collection. The library never does this (the interpreter is its host's).
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(COLLECT_EVERY, middle, oldest)


def main() -> None:
    """Entry point of the ``grantflow`` console script.

    The command is an application, not a library, so it may configure logging: only
    warnings and errors, on stderr, so that output stays clean for pipes. ``--debug``
    may come anywhere before ``--``; it is moved in front of the command name. It also
    tunes the garbage collector for its process (`tune_collector`).
    """
    tune_collector()
    # grantflow logs on the standard `grantflow` logger; structlog renders it for people
    # (the library itself never configures structlog or any handler).
    log_to_console(
        logging.WARNING,
        sys.stderr,
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.dev.ConsoleRenderer(colors=False),
            foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.ExtraAdder()],
        ),
    )
    args = sys.argv[1:]
    end = args.index("--") if "--" in args else len(args)
    if "--debug" in args[:end]:
        args = ["--debug", *[a for a in args[:end] if a != "--debug"], *args[end:]]
    try:
        app(args=args, prog_name="grantflow")
    except (Exception, KeyboardInterrupt) as exc:
        sys.exit(report(exc))
