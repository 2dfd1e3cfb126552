"""Commands about one project: ``fire``, ``explain``, ``show`` and ``history``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import typer

import grantflow
from grantflow.cli._common import DEFAULT_DB as _DB
from grantflow.cli._common import (
    EXIT_FAILED,
    ActorIdOption,
    DbOption,
    EvidenceJsonOption,
    EvidenceOption,
    JsonOption,
    OrgOption,
    RoleOption,
    cell,
    emit_json,
    emit_table,
    evidence_from,
    guarded,
    make_actor,
    open_engine,
    say,
    stderr,
    stdout,
    usage_error,
)

__all__ = ["explain", "fire", "history", "list_projects", "show"]

ProjectArg = Annotated[str, typer.Argument(help="The project id.")]
EventArg = Annotated[str, typer.Argument(help="The event, e.g. approve or sign.")]


def _print_refusals(outcome: grantflow.Outcome) -> None:
    console = stdout()
    for refusal in outcome.refusals:
        console.print(f"  - {refusal.code}: {refusal.message}", markup=False, highlight=False)
        console.print(f"    {refusal.message_zh}", markup=False, highlight=False)
        if refusal.details:
            details = ", ".join(f"{k}={v}" for k, v in refusal.details.items())
            console.print(f"    ({details})", markup=False, highlight=False)


def _outcome_json(outcome: grantflow.Outcome) -> dict[str, object]:
    data = outcome.model_dump(mode="json", exclude={"entry"})
    data["seq"] = outcome.entry.seq if outcome.entry else None
    return data


@guarded
def fire(
    project_id: ProjectArg,
    event: EventArg,
    evidence: EvidenceOption = None,
    evidence_json: EvidenceJsonOption = None,
    actor: ActorIdOption = None,
    role: RoleOption = None,
    org: OrgOption = None,
    db: DbOption = _DB,
    as_json: JsonOption = False,
) -> None:
    """Fire EVENT on one project; exit 1 if it is refused (each refusal is printed)."""
    who = make_actor(actor, role, org)
    data = evidence_from(evidence, evidence_json)
    with open_engine(db) as engine:
        outcome = engine.fire(project_id, event, actor=who, evidence=data)
    if as_json:
        emit_json(_outcome_json(outcome))
    elif outcome.accepted:
        say(f"{project_id}: {event} accepted, {outcome.from_state} → {outcome.state}")
    else:
        say(f"{project_id}: {event} refused in state {outcome.from_state}:")
        _print_refusals(outcome)
    if not outcome.accepted:
        raise typer.Exit(EXIT_FAILED)


@guarded
def explain(
    project_id: ProjectArg,
    event: EventArg,
    evidence: EvidenceOption = None,
    evidence_json: EvidenceJsonOption = None,
    actor: ActorIdOption = None,
    role: RoleOption = None,
    org: OrgOption = None,
    db: DbOption = _DB,
    as_json: JsonOption = False,
) -> None:
    """Say why EVENT would be refused now (it writes nothing); exit 1 if it would be."""
    who = make_actor(actor, role, org)
    data = evidence_from(evidence, evidence_json)
    with open_engine(db) as engine:
        outcome = engine.can_fire(project_id, event, actor=who, evidence=data)
        allowed = engine.events(project_id, actor=who)
    if as_json:
        emit_json({**_outcome_json(outcome), "events_allowed_to_actor": allowed})
    elif outcome.accepted:
        say(f"{project_id}: {event} would be accepted now, {outcome.from_state} → {outcome.state}")
    else:
        count = len(outcome.refusals)
        say(
            f"{project_id}: {event} would be refused in state {outcome.from_state} "
            f"({count} refusal{'s' if count != 1 else ''}):"
        )
        _print_refusals(outcome)
        say(f"events {who.id} may fire from here: {', '.join(allowed) or 'none'}")
    if not outcome.accepted:
        raise typer.Exit(EXIT_FAILED)


@guarded
def show(project_id: ProjectArg, db: DbOption = _DB, as_json: JsonOption = False) -> None:
    """Show one project: state, version, data and records."""
    with open_engine(db) as engine:
        project = engine.get(project_id)
    if as_json:
        emit_json(project.model_dump(mode="python"))
        return
    console = stdout()
    console.print(
        f"project {project.id}: {project.state} (version {project.version})",
        markup=False,
        highlight=False,
    )
    console.print(
        f"created {cell(project.created_at)}, updated {cell(project.updated_at)}",
        markup=False,
        highlight=False,
    )
    rows = [(key, value) for key, value in sorted(project.data.items())]
    emit_table("data", ["field", "value"], rows)
    records = [(r.seq, r.kind, r.id, r.data) for r in project.records]
    if records:
        emit_table("records", ["seq", "kind", "id", "data"], records)


@guarded
def history(project_id: ProjectArg, db: DbOption = _DB, as_json: JsonOption = False) -> None:
    """List every audit entry of one project (accepted and refused), oldest first."""
    with open_engine(db) as engine:
        entries = engine.history(project_id)
    if as_json:
        emit_json([e.model_dump(mode="python") for e in entries])
        return
    rows = [
        (
            e.seq,
            e.at,
            e.event,
            e.from_state,
            e.to_state,
            e.accepted,
            e.actor.id,
            "; ".join(r.code for r in e.refusals),
        )
        for e in entries
    ]
    columns = ["seq", "at", "event", "from", "to", "accepted", "actor", "refusals"]
    emit_table(f"history of {project_id}", columns, rows)


@guarded
def list_projects(
    state: Annotated[str | None, typer.Option(help="Only projects in this state.")] = None,
    hub: Annotated[str | None, typer.Option(help="Only projects of this hub.")] = None,
    subtree: Annotated[
        str | None, typer.Option(help="Only projects of this hub or any hub below it.")
    ] = None,
    call: Annotated[str | None, typer.Option(help="Only projects of this call.")] = None,
    brand: Annotated[str | None, typer.Option(help="Only projects of this brand.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only projects of this provider.")] = None,
    year: Annotated[int | None, typer.Option(help="Only projects of this year.")] = None,
    updated_since: Annotated[
        str | None,
        typer.Option(help="Only projects updated at or after this ISO time (with a zone)."),
    ] = None,
    due_before: Annotated[
        str | None,
        typer.Option(
            help="Only projects with an open obligation due before this day (YYYY-MM-DD)."
        ),
    ] = None,
    order: Annotated[
        str, typer.Option(help="id, updated_at or created_at; a leading - for descending.")
    ] = "id",
    limit: Annotated[int, typer.Option(help="Projects per page (1-1000).")] = 100,
    cursor: Annotated[
        str | None, typer.Option(help="Continue after the page that printed this cursor.")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Follow the cursors: print every page.")
    ] = False,
    db: DbOption = _DB,
    as_json: JsonOption = False,
) -> None:
    """List projects matching every filter given, one page at a time (keyset cursors).

    Tab-separated on a pipe (id, state, hub, call, provider, year, updated); the next
    page's cursor goes to stderr. With --json: {"projects": [...], "cursor": ...}.
    """
    since = None
    if updated_since is not None:
        try:
            since = datetime.fromisoformat(updated_since.replace("Z", "+00:00"))
        except ValueError:
            usage_error(f"--updated-since {updated_since!r} is not an ISO-8601 time")
        if since.tzinfo is None:
            usage_error("--updated-since needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    due = None
    if due_before is not None:
        try:
            due = date.fromisoformat(due_before)
        except ValueError:
            usage_error(f"--due-before {due_before!r} is not a date (YYYY-MM-DD)")
    filters: dict[str, Any] = {
        "state": state,
        "hub": hub,
        "subtree": subtree,
        "call": call,
        "brand": brand,
        "provider": provider,
        "year": year,
        "updated_since": since,
        "due_before": due,
        "order": order,
        "limit": limit,
    }
    found: list[grantflow.Project] = []
    with open_engine(db) as engine:
        page = engine.projects(**filters, cursor=cursor)
        found.extend(page)
        while every and page.cursor is not None:
            page = engine.projects(**filters, cursor=page.cursor)
            found.extend(page)
    if as_json:
        emit_json(
            {
                "projects": [p.model_dump(mode="python", exclude={"records"}) for p in found],
                "cursor": page.cursor,
            }
        )
        return
    rows = [
        (
            p.id,
            p.state,
            p.data.get("hub"),
            p.data.get("call"),
            p.data.get("provider"),
            p.data.get("year"),
            p.updated_at,
        )
        for p in found
    ]
    emit_table("projects", ["id", "state", "hub", "call", "provider", "year", "updated"], rows)
    if page.cursor is not None:
        stderr().print(f"more: --cursor {page.cursor}", markup=False, highlight=False)
