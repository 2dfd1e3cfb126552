"""``grantflow outbox``: deliver the outbox to a webhook, and look after its dead letters."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

import typer

from grantflow.cli._common import (
    DEFAULT_DB,
    EXIT_FAILED,
    DbOption,
    JsonOption,
    emit_json,
    emit_table,
    guarded,
    open_engine,
    say,
    usage_error,
)
from grantflow.errors import InvalidInput
from grantflow.outbox import DeliveryPolicy, DeliveryReport, Outbox, Webhook

__all__ = ["outbox_app"]

outbox_app = typer.Typer(
    help="The durable outbox: deliver committed audit entries to a webhook.",
    no_args_is_help=True,
)

StatusOption = Annotated[
    str | None, typer.Option("--status", help="Only messages in this status: pending, acked, dead.")
]


@outbox_app.command("deliver")
@guarded
def deliver(
    url: Annotated[str, typer.Option("--url", help="The webhook URL (http:// or https://).")],
    secret: Annotated[
        str,
        typer.Option(
            "--secret",
            envvar="GRANTFLOW_WEBHOOK_SECRET",
            help="The HMAC-SHA256 key the receiver verifies with (env: GRANTFLOW_WEBHOOK_SECRET).",
        ),
    ],
    batch: Annotated[int, typer.Option(min=1, max=10000, help="Messages per claim.")] = 100,
    lease: Annotated[
        float, typer.Option(min=0.1, help="Seconds a claimed batch stays this consumer's.")
    ] = 60.0,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the receiver.")] = 10,
    max_attempts: Annotated[
        int, typer.Option(min=1, help="Attempts before a message goes to the dead letters.")
    ] = 8,
    backoff: Annotated[
        float, typer.Option(min=0, help="Seconds before the 2nd attempt; doubles each time.")
    ] = 2.0,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep polling for new messages (stop with Ctrl-C).")
    ] = False,
    poll: Annotated[float, typer.Option(min=0.05, help="Seconds between polls (--follow).")] = 5,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Post every available message to URL, signed; exit 1 if any failed this run.

    Each message is acknowledged as soon as the receiver answers 2xx. A failure (an
    error status, a timeout, a refused connection) is retried later with exponential
    backoff, and dead-lettered after --max-attempts. Without --follow the command
    stops when no message is available (cron); messages waiting for their backoff
    are left for the next run.
    """
    try:
        hook = Webhook(url, secret, timeout=timeout)
        policy = DeliveryPolicy(max_attempts=max_attempts, backoff=backoff)
    except InvalidInput as exc:
        usage_error(exc.message)
    total = DeliveryReport()
    with open_engine(db) as engine:
        consumer = Outbox(engine, policy=policy)
        while True:
            report = consumer.deliver(hook, limit=batch, lease=lease)
            total.delivered += report.delivered
            total.retried += report.retried
            total.dead += report.dead
            total.lost += report.lost
            if not follow:
                break
            time.sleep(poll)
        counts = consumer.counts()
    summary = {
        "delivered": total.delivered,
        "retried": total.retried,
        "dead": total.dead,
        "lost": total.lost,
        "pending": counts.get("pending", 0),
        "dead_letters": counts.get("dead", 0),
    }
    if as_json:
        emit_json(summary)
    else:
        say(
            f"delivered {total.delivered}, retrying {total.retried}, dead {total.dead}; "
            f"{summary['pending']} pending, {summary['dead_letters']} dead letters"
        )
    if total.retried or total.dead:
        raise typer.Exit(EXIT_FAILED)


@outbox_app.command("status")
@guarded
def status(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """Count the outbox's messages by status (pending, acked, dead)."""
    with open_engine(db) as engine:
        counts = Outbox(engine).counts()
    full = {name: counts.get(name, 0) for name in ("pending", "acked", "dead")}
    if as_json:
        emit_json(full)
        return
    emit_table("outbox", ["status", "messages"], list(full.items()))


@outbox_app.command("list")
@guarded
def list_messages(
    status: StatusOption = None,
    limit: Annotated[int, typer.Option(min=1, max=100000, help="At most this many.")] = 100,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """List messages, oldest first: id, topic, project, seq, status, attempts, last error."""
    if status not in {None, "pending", "acked", "dead"}:
        usage_error(f"--status {status!r}: use pending, acked or dead")
    with open_engine(db) as engine:
        found = Outbox(engine).messages(status=status, limit=limit)  # type: ignore[arg-type]
    if as_json:
        emit_json([{**m.to_dict(), "status": m.status, "last_error": m.last_error} for m in found])
        return
    rows = [(m.id, m.topic, m.project_id, m.seq, m.status, m.attempts, m.last_error) for m in found]
    columns = ["id", "topic", "project", "seq", "status", "attempts", "last_error"]
    emit_table("outbox messages", columns, rows)


@outbox_app.command("redrive")
@guarded
def redrive(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Message ids; none means every dead letter.")
    ] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Make dead letters pending again, with their attempts reset."""
    with open_engine(db) as engine:
        moved = Outbox(engine).redrive(ids or None)
    if as_json:
        emit_json({"redriven": moved})
    else:
        say(f"{moved} dead letter{'s' if moved != 1 else ''} pending again")


@outbox_app.command("prune")
@guarded
def prune(
    before: Annotated[
        str, typer.Option("--before", help="Delete messages acknowledged before this ISO time.")
    ],
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Delete acknowledged messages (the audit entries themselves stay)."""
    try:
        when = datetime.fromisoformat(before.replace("Z", "+00:00"))
    except ValueError:
        usage_error(f"--before {before!r} is not an ISO-8601 time")
    if when.tzinfo is None:
        usage_error("--before needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    with open_engine(db) as engine:
        removed = Outbox(engine).prune(when)
    if as_json:
        emit_json({"pruned": removed})
    else:
        say(f"{removed} acknowledged message{'s' if removed != 1 else ''} deleted")
