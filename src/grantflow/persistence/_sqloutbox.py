"""The outbox of `SqlStore` (the `OutboxStore` half): claims, leases, acks, dead letters.

The messages themselves are written by `grantflow.persistence._sqlwrite.Writer` in the
transaction of each change. A claim is one write transaction: it picks the oldest
available pending messages (on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so that
consumers on several hosts never wait for one another), counts an attempt and sets the
lease. Acknowledgements and releases are fenced on the lease's owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy
from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from grantflow.models import AuditEntry
from grantflow.persistence._liveness import provably_dead
from grantflow.persistence._outbox import AUDIT_TOPIC, MessageStatus, OutboxMessage
from grantflow.persistence._schema import Tables
from grantflow.persistence._sqlconn import Connector

__all__ = ["SqlOutbox"]

_ERROR_CHARS = 2000


class SqlOutbox:
    """Mixed into `SqlStore`; relies on its connector and tables."""

    _db: Connector
    _t: Tables

    def outbox_put(self, messages: Sequence[OutboxMessage]) -> int:
        """Enqueue messages in one transaction; ids already there are skipped."""
        o = self._t.outbox
        rows = [
            {
                "id": m.id,
                "topic": m.topic,
                "project_id": m.project_id,
                "seq": m.seq,
                "payload": dict(m.payload),
                "created_at": m.created_at,
            }
            for m in messages
        ]

        def work(conn: sqlalchemy.Connection) -> int:
            added = 0
            for row in rows:
                stmt = (
                    self._insert(o)
                    .values(row)
                    .on_conflict_do_nothing(index_elements=[o.c.id], index_where=o.c.id.isnot(None))
                    .returning(o.c.position)  # PostgreSQL's rowcount is -1 with RETURNING
                )
                added += len(conn.execute(stmt).all())
            return added

        return self._db.write(work) if rows else 0

    def outbox_claim(
        self, owner: str, *, limit: int, now: float, lease: float, max_attempts: int
    ) -> list[OutboxMessage]:
        """Lease up to `limit` available pending messages to `owner`, oldest first."""
        o = self._t.outbox

        def work(conn: sqlalchemy.Connection) -> list[int]:
            holders = conn.execute(
                select(o.c.lease_owner)
                .where(o.c.lease_owner != "", o.c.status == "pending", o.c.lease_until > now)
                .distinct()
            ).scalars()
            dead = sorted(h for h in holders if h and provably_dead(h))
            free = o.c.lease_until <= now
            if dead:
                free = free | o.c.lease_owner.in_(dead)
            # Leases that lapsed on their last allowed attempt: dead letters, not claims.
            conn.execute(
                update(o)
                .where(
                    o.c.status == "pending",
                    o.c.lease_owner != "",
                    o.c.attempts >= max_attempts,
                    free,
                )
                .values(
                    status="dead",
                    lease_owner="",
                    lease_until=0.0,
                    last_error=_lapsed(max_attempts),
                )
            )
            candidates = select(o.c.position).where(
                o.c.status == "pending", o.c.available_at <= now, free
            )
            candidates = candidates.order_by(o.c.position).limit(limit)
            if self._db.dialect == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True)
            claimed = list(conn.execute(candidates).scalars())
            if claimed:
                conn.execute(
                    update(o)
                    .where(o.c.position.in_(claimed))
                    .values(
                        attempts=o.c.attempts + 1,
                        lease_owner=owner,
                        lease_until=now + lease,
                    )
                )
            return claimed

        positions = self._db.write(work)
        if not positions:
            return []
        stmt = select(o).where(o.c.position.in_(positions)).order_by(o.c.position)
        with self._db.connect() as conn:
            return self._filled(conn, conn.execute(stmt).all())

    def outbox_ack(self, owner: str, ids: Sequence[str], *, now: float) -> int:
        """Acknowledge `owner`'s leased messages among `ids`; return how many."""
        o = self._t.outbox
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        stmt = (
            update(o)
            .where(*self._leased_to(owner), self._message_id().in_(wanted))
            .values(
                status="acked",
                lease_owner="",
                lease_until=0.0,
                done_at=datetime.fromtimestamp(now, UTC),
            )
        )
        return int(self._db.write(lambda conn: conn.execute(stmt).rowcount))

    def outbox_release(
        self, owner: str, message_id: str, *, error: str, retry_at: float | None
    ) -> bool:
        """Return a failed message for a retry at `retry_at`, or to the dead letters."""
        o = self._t.outbox
        values: dict[str, Any] = {
            "lease_owner": "",
            "lease_until": 0.0,
            "last_error": error[:_ERROR_CHARS],
        }
        if retry_at is None:
            values["status"] = "dead"
        else:
            values["available_at"] = retry_at
        stmt = (
            update(o)
            .where(*self._leased_to(owner), self._message_id() == message_id)
            .values(values)
        )
        return bool(self._db.write(lambda conn: conn.execute(stmt).rowcount) == 1)

    def outbox_messages(
        self, *, status: MessageStatus | None = None, limit: int = 100
    ) -> list[OutboxMessage]:
        """Return up to `limit` messages of `status`, oldest first, payloads filled in."""
        o = self._t.outbox
        stmt = select(o).order_by(o.c.position).limit(limit)
        if status is not None:
            stmt = stmt.where(o.c.status == status)
        with self._db.connect() as conn:
            return self._filled(conn, conn.execute(stmt).all())

    def outbox_counts(self) -> dict[str, int]:
        """Count messages per status."""
        o = self._t.outbox
        stmt = select(o.c.status, func.count()).group_by(o.c.status)
        with self._db.connect() as conn:
            return {str(status): int(n) for status, n in conn.execute(stmt)}

    def outbox_redrive(self, ids: Sequence[str] | None = None) -> int:
        """Make dead messages (all, or those in `ids`) pending again, attempts reset."""
        o = self._t.outbox
        stmt = update(o).where(o.c.status == "dead")
        if ids is not None:
            stmt = stmt.where(self._message_id().in_(sorted(set(ids))))
        stmt = stmt.values(status="pending", attempts=0, available_at=0.0, lease_owner="")
        return int(self._db.write(lambda conn: conn.execute(stmt).rowcount))

    def outbox_prune(self, before: datetime) -> int:
        """Delete messages acknowledged before `before`; return how many."""
        o = self._t.outbox
        stmt = delete(o).where(o.c.status == "acked", o.c.done_at < before)
        return int(self._db.write(lambda conn: conn.execute(stmt).rowcount))

    # -- internals -----------------------------------------------------------------------

    def _leased_to(self, owner: str) -> tuple[Any, ...]:
        """Rows leased to `owner` (spelled so the partial owner index serves it)."""
        o = self._t.outbox
        return (o.c.lease_owner != "", o.c.lease_owner == owner, o.c.status == "pending")

    def _message_id(self) -> Any:
        """A row's message id: its own, or (an audit message) its entry's hash."""
        o, a = self._t.outbox, self._t.audit
        entry_hash = (
            select(a.c.hash)
            .where(a.c.project_id == o.c.project_id, a.c.seq == o.c.seq)
            .scalar_subquery()
        )
        return func.coalesce(o.c.id, entry_hash)

    def _filled(self, conn: sqlalchemy.Connection, rows: Sequence[Any]) -> list[OutboxMessage]:
        """Messages from rows, an audit message's payload read from its audit row."""
        a = self._t.audit
        wanted = [
            (r.project_id, r.seq)
            for r in rows
            if r.topic == AUDIT_TOPIC and r.project_id is not None and r.seq is not None
        ]
        entries: dict[tuple[str, int], dict[str, Any]] = {}
        hashes: dict[tuple[str, int], str] = {}
        for start in range(0, len(wanted), 200):
            part = wanted[start : start + 200]
            found = conn.execute(select(a).where(tuple_(a.c.project_id, a.c.seq).in_(part)))
            for row in found.mappings():
                entry = AuditEntry.model_validate(dict(row))
                entries[(entry.project_id, entry.seq)] = entry.model_dump(mode="json")
                hashes[(entry.project_id, entry.seq)] = entry.hash
        return [
            OutboxMessage(
                id=r.id or hashes.get((r.project_id, r.seq), ""),
                topic=r.topic,
                created_at=r.created_at,
                project_id=r.project_id,
                seq=r.seq,
                payload=entries.get((r.project_id, r.seq), r.payload or {})
                if r.topic == AUDIT_TOPIC
                else (r.payload or {}),
                status=r.status,
                attempts=int(r.attempts),
                available_at=float(r.available_at),
                last_error=r.last_error,
            )
            for r in rows
        ]

    def _insert(self, table: sqlalchemy.Table) -> Any:
        return (
            postgresql.insert(table) if self._db.dialect == "postgresql" else sqlite.insert(table)
        )


def _lapsed(attempts: int) -> str:
    return f"no acknowledgement after {attempts} attempts (the consumer's lease lapsed)"
