"""Commands about one project: ``fire``, ``explain``, ``show`` and ``history``."""

from __future__ import annotations

from typing import Annotated

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
    stdout,
)

__all__ = ["explain", "fire", "history", "show"]

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
