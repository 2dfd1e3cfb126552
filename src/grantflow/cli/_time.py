"""Commands about time: ``due`` lists open obligations, ``sweep`` fires due timers (cron)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from grantflow.cli._common import (
    DEFAULT_DB,
    EXIT_FAILED,
    DbOption,
    JsonOption,
    QuietOption,
    emit_json,
    emit_table,
    guarded,
    open_engine,
    say,
    usage_error,
)
from grantflow.cli._progress import meter

__all__ = ["due", "sweep"]


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        usage_error(f"{option} {value!r} is not a date (YYYY-MM-DD)")


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        usage_error(f"--now {value!r} is not an ISO time (2025-06-20T09:00:00+08:00)")
    if moment.tzinfo is None:
        usage_error(f"--now {value!r} needs a time zone (Z or +08:00)")
    return moment


@guarded
def due(
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only obligations past their due date.")
    ] = False,
    before: Annotated[
        str | None, typer.Option("--before", help="Only those due before this day (YYYY-MM-DD).")
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", help="Only this kind (progress_report, ...); repeatable."),
    ] = None,
    hub: Annotated[str | None, typer.Option("--hub", help="Only projects of this hub.")] = None,
    subtree: Annotated[
        bool, typer.Option("--subtree", help="With --hub, the hubs below it too.")
    ] = False,
    reindex: Annotated[
        bool,
        typer.Option(
            "--reindex",
            help="Rebuild the due-date index from every project first (once after db upgrade).",
        ),
    ] = False,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """List open obligations (due dates) by date: reports, re-checks, refunds, contract ends."""
    last = _day(before, "--before")
    with open_engine(db) as engine:
        if reindex:
            engine.reindex_obligations()
        found = engine.due(before=last, overdue=overdue, hub=hub, subtree=subtree, kind=kind)
        today = datetime.now(ZoneInfo(engine.policy.timezone)).date()
    if as_json:
        emit_json([{**o.model_dump(mode="json"), "overdue": o.is_overdue(today)} for o in found])
        return
    if not found:
        say("nothing due")
        return
    rows = [
        (o.due_on, o.project_id, o.kind, o.label_zh, o.hub, "yes" if o.is_overdue(today) else "")
        for o in found
    ]
    emit_table("due", ["due on", "project", "kind", "中文", "hub", "overdue"], rows)


@guarded
def sweep(
    now: Annotated[
        str | None,
        typer.Option("--now", help="Judge timers at this time (ISO, with a zone); default now."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the timers due; fire nothing.")
    ] = False,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, max=100_000, help="Occurrences per transaction.")
    ] = 500,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Fire every due timer once (reminders, publicity close, termination proposals); for cron.

    Safe to run again, after a crash, or from several hosts at once: an occurrence fired
    already is skipped. Exits 1 if a timer was refused.
    """
    moment = _moment(now)
    with open_engine(db) as engine, meter("sweep", None, unit="timers", quiet=quiet) as bar:
        result = engine.sweep(moment, dry_run=dry_run, chunk_size=chunk_size, progress=bar.advance)
    if as_json:
        emit_json(result.to_dict())
    elif dry_run:
        say(f"{len(result.due)} timer(s) due at {result.at.isoformat()}")
        rows = [(d.fire_on, d.project_id, d.timer, d.obligation, d.due_on) for d in result.due]
        if rows:
            emit_table("due timers", ["fires on", "project", "timer", "obligation", "due on"], rows)
    else:
        skipped = result.count("skipped")
        say(f"fired {result.fired} of {len(result.due)} due timer(s); {skipped} skipped")
        for action, bulk in sorted(result.results.items()):
            for item in bulk.items:
                if item.status not in {"applied", "skipped"}:
                    say(f"  {item.project_id}: {action} {item.status} {item.error}".rstrip())
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)
