"""The outbox of the in-memory store (the `OutboxStore` half of `MemoryStore`)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from grantflow.models import AuditEntry
from grantflow.persistence._liveness import provably_dead
from grantflow.persistence._outbox import AUDIT_TOPIC, MessageStatus, OutboxMessage
from grantflow.persistence._protocol import Change

__all__ = ["MemoryOutbox"]


class _Row:
    """One message and its lease (a message put, or an entry's own once a consumer leased it)."""

    __slots__ = ("done_at", "lease_owner", "lease_until", "message")

    def __init__(self, message: OutboxMessage) -> None:
        self.message = message
        self.lease_owner = ""
        self.lease_until = 0.0
        self.done_at: datetime | None = None


#: An outbox slot: a row, or a committed entry whose own message nobody has leased yet.
#: Every committed entry queues a message and most are never read from the memory store:
#: the slot holds the entry itself (no row, no message, one object fewer for the garbage
#: collector to walk per entry) until a consumer claims it. Such a message is pending,
#: never attempted and available at once; its id, topic, time, project and seq are the
#: entry's.
_Slot = _Row | AuditEntry


def _entry_message(entry: AuditEntry) -> OutboxMessage:
    return OutboxMessage(
        id=entry.hash,
        topic=AUDIT_TOPIC,
        created_at=entry.at,
        project_id=entry.project_id,
        seq=entry.seq,
    )


def _message(slot: _Slot) -> OutboxMessage:
    return slot.message if isinstance(slot, _Row) else _entry_message(slot)


def _status(slot: _Slot) -> MessageStatus:
    return slot.message.status if type(slot) is _Row else "pending"


class MemoryOutbox:
    """Messages in an insertion-ordered dict; every method runs under the store lock."""

    _lock: threading.Lock
    _chains: dict[str, list[AuditEntry]]

    def _outbox(self) -> dict[str, _Slot]:
        rows: dict[str, _Slot] | None = getattr(self, "_outbox_rows", None)
        if rows is None:
            rows = {}
            self._outbox_rows = rows
        return rows

    # -- written with the changes (the caller holds the lock) ----------------------------

    def _enqueue(self, change: Change) -> list[str]:
        """Add the entry's message and the change's own; return the ids added (for undo)."""
        entry = change.entry
        rows = self._outbox()
        added = []
        if entry.hash not in rows:  # the entry's own message: its id is the entry's hash
            rows[entry.hash] = entry
            added.append(entry.hash)
        if change.messages:  # most changes queue no message of their own
            for message in map(_fresh, change.messages):
                if message.id not in rows:
                    rows[message.id] = _Row(message)
                    added.append(message.id)
        return added

    def _unqueue(self, ids: Sequence[str]) -> None:
        rows = self._outbox()
        for message_id in ids:
            rows.pop(message_id, None)

    # -- OutboxStore ---------------------------------------------------------------------

    def outbox_put(self, messages: Sequence[OutboxMessage]) -> int:
        """Enqueue messages; ids already there are skipped."""
        with self._lock:
            rows = self._outbox()
            added = 0
            for message in messages:
                if message.id not in rows:
                    rows[message.id] = _Row(_fresh(message))
                    added += 1
            return added

    def outbox_claim(
        self, owner: str, *, limit: int, now: float, lease: float, max_attempts: int
    ) -> list[OutboxMessage]:
        """Lease up to `limit` available messages to `owner`, oldest first."""
        with self._lock:
            claimed: list[OutboxMessage] = []
            rows = self._outbox()
            for message_id, slot in rows.items():
                if len(claimed) >= limit:
                    break
                if isinstance(slot, _Row):
                    row = slot
                else:  # an entry's message, pending: it gets a row (and a lease) now
                    row = rows[message_id] = _Row(_entry_message(slot))
                message = row.message
                if message.status != "pending" or message.available_at > now:
                    continue
                if row.lease_owner and row.lease_until > now and not provably_dead(row.lease_owner):
                    continue
                if row.lease_owner and message.attempts >= max_attempts:
                    row.message = replace(
                        message, status="dead", last_error=_lapsed(message.attempts)
                    )
                    row.lease_owner, row.lease_until = "", 0.0
                    continue
                row.message = replace(message, attempts=message.attempts + 1)
                row.lease_owner, row.lease_until = owner, now + lease
                claimed.append(self._filled(row.message))
            return claimed

    def outbox_ack(self, owner: str, ids: Sequence[str], *, now: float) -> int:
        """Acknowledge `owner`'s leased messages among `ids`."""
        with self._lock:
            rows = self._outbox()
            acked = 0
            for message_id in dict.fromkeys(ids):
                row = rows.get(message_id)
                if type(row) is not _Row:  # unknown, or an entry's message nobody leased
                    continue
                if row.lease_owner != owner or row.message.status != "pending":
                    continue
                row.message = replace(row.message, status="acked")
                row.lease_owner, row.lease_until = "", 0.0
                row.done_at = datetime.fromtimestamp(now, UTC)
                acked += 1
            return acked

    def outbox_release(
        self, owner: str, message_id: str, *, error: str, retry_at: float | None
    ) -> bool:
        """Return a failed message for a retry at `retry_at`, or to the dead letters."""
        with self._lock:
            row = self._outbox().get(message_id)
            if type(row) is not _Row:  # unknown, or an entry's message nobody leased
                return False
            if row.lease_owner != owner or row.message.status != "pending":
                return False
            if retry_at is None:
                row.message = replace(row.message, status="dead", last_error=error)
            else:
                row.message = replace(row.message, available_at=retry_at, last_error=error)
            row.lease_owner, row.lease_until = "", 0.0
            return True

    def outbox_messages(
        self, *, status: MessageStatus | None = None, limit: int = 100
    ) -> list[OutboxMessage]:
        """Return up to `limit` messages of `status`, oldest first."""
        with self._lock:
            wanted = (
                slot
                for slot in self._outbox().values()
                if status is None or _status(slot) == status
            )
            found = [_message(slot) for slot in itertools.islice(wanted, max(limit, 0))]
            return [self._filled(m) for m in found]

    def outbox_counts(self) -> dict[str, int]:
        """Count messages per status."""
        counts: dict[str, int] = {}
        with self._lock:
            for slot in self._outbox().values():
                state = _status(slot)
                counts[state] = counts.get(state, 0) + 1
        return counts

    def outbox_redrive(self, ids: Sequence[str] | None = None) -> int:
        """Make dead messages pending again, attempts reset."""
        wanted = None if ids is None else set(ids)
        with self._lock:
            moved = 0
            for message_id, row in self._outbox().items():
                if type(row) is not _Row:  # an entry's message is pending
                    continue
                if row.message.status == "dead" and (wanted is None or message_id in wanted):
                    row.message = replace(row.message, status="pending", attempts=0, available_at=0)
                    moved += 1
            return moved

    def outbox_prune(self, before: datetime) -> int:
        """Delete messages acknowledged before `before`."""
        with self._lock:
            rows = self._outbox()
            old = [
                k
                for k, row in rows.items()
                if type(row) is _Row
                and row.message.status == "acked"
                and row.done_at
                and row.done_at < before
            ]
            for message_id in old:
                del rows[message_id]
            return len(old)

    def _filled(self, message: OutboxMessage) -> OutboxMessage:
        """The message with an audit message's payload: its entry as JSON."""
        if message.topic != AUDIT_TOPIC or message.project_id is None or message.seq is None:
            return message
        for entry in self._chains.get(message.project_id, ()):
            if entry.seq == message.seq:
                payload: dict[str, Any] = entry.model_dump(mode="json")
                return replace(message, payload=payload)
        return message


def _fresh(message: OutboxMessage) -> OutboxMessage:
    """A message as enqueued: pending, no attempts yet."""
    return replace(message, status="pending", attempts=0, available_at=0.0, last_error="")


def _lapsed(attempts: int) -> str:
    return f"no acknowledgement after {attempts} attempts (the consumer's lease lapsed)"
