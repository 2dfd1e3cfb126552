"""The outbox: messages committed with the audit entries, claimed by consumers with leases.

Every store that keeps an outbox writes one message per committed audit entry (topic
``audit``, id = the entry's hash) in the same transaction as the entry, plus the extra
messages a `Change` carries (reminders and other generic messages). Consumers claim
pending messages with a lease, then acknowledge them or release them for a retry (or
to the dead letters); see `grantflow.outbox` for the consumer side.

A message's life: ``pending`` → (claimed, leased) → ``acked``; or, after a failed
attempt, ``pending`` again with a later ``available_at``; or ``dead`` once the policy's
attempts are spent. A lease whose holder vanished (expired, or provably dead on this
host) makes the message claimable again: delivery is at least once, and the stable
`OutboxMessage.id` lets a receiver drop duplicates (effectively once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ["AUDIT_TOPIC", "MessageStatus", "OutboxMessage", "OutboxStore"]

#: The topic of the message every committed audit entry gets.
AUDIT_TOPIC = "audit"
#: Where a message is in its life.
MessageStatus = Literal["pending", "acked", "dead"]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One outbox message: what to deliver, and (when read back) where it stands.

    Build one to enqueue (`Change.messages`, `OutboxStore.outbox_put`) with `id`,
    `topic`, `created_at` and a JSON `payload`; the stores fill the rest when reading.

    Attributes:
        id: stable and unique (1-128 characters): a receiver de-duplicates on it. An
            audit message's id is its entry's hash.
        topic: what kind of message (``audit``; ``reminder``, ...).
        created_at: when the message was committed (an audit message: the entry's time).
        project_id: the project it concerns, if any.
        seq: the audit entry it announces (audit messages).
        payload: the JSON body; for an audit message, the entry as JSON (filled in
            when claimed or listed, not stored twice).
        status: ``pending``, ``acked`` or ``dead``.
        attempts: delivery attempts so far (a claim counts as one).
        available_at: epoch seconds before which it is not handed out (backoff).
        last_error: why the last attempt failed.
    """

    id: str
    topic: str
    created_at: datetime
    project_id: str | None = None
    seq: int | None = None
    payload: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    status: MessageStatus = "pending"
    attempts: int = 0
    available_at: float = 0.0
    last_error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The message as the JSON a webhook receives (times ISO-8601 UTC)."""
        from grantflow._canonical import iso_utc, plain

        return {
            "id": self.id,
            "topic": self.topic,
            "project_id": self.project_id,
            "seq": self.seq,
            "created_at": iso_utc(self.created_at),
            "attempt": self.attempts,
            "payload": plain(self.payload),
        }


@runtime_checkable
class OutboxStore(Protocol):
    """A store with an outbox: claims with leases, acknowledgements, retries, dead letters.

    Times are epoch seconds (`time.time()`), like the bulk leases. `owner` names the
    consumer (``host:pid:nonce``, `grantflow.persistence.owner_id`).
    """

    def outbox_put(self, messages: Sequence[OutboxMessage]) -> int:
        """Enqueue messages in one transaction; an id already there is skipped. Return added."""
        ...

    def outbox_claim(
        self, owner: str, *, limit: int, now: float, lease: float, max_attempts: int
    ) -> list[OutboxMessage]:
        """Lease up to `limit` available pending messages to `owner`, oldest first.

        A message is available when its ``available_at`` has come and it is not leased
        (never leased, lease expired, or its holder provably dead). Each claim counts an
        attempt; a message whose lease lapsed after `max_attempts` attempts goes to the
        dead letters instead of being handed out. On PostgreSQL rows are locked with
        ``FOR UPDATE SKIP LOCKED``: concurrent consumers never wait for each other and
        never get the same message while a lease holds.
        """
        ...

    def outbox_ack(self, owner: str, ids: Sequence[str], *, now: float) -> int:
        """Mark `owner`'s leased messages acknowledged; return how many were.

        Fenced: a message no longer leased to `owner` (taken over, already acked) is
        left alone, so a message is acknowledged exactly once.
        """
        ...

    def outbox_release(
        self, owner: str, message_id: str, *, error: str, retry_at: float | None
    ) -> bool:
        """Give a failed message back: pending again from `retry_at`, or dead if ``None``.

        Fenced like `outbox_ack`; returns whether the message was `owner`'s to release.
        """
        ...

    def outbox_messages(
        self, *, status: MessageStatus | None = None, limit: int = 100
    ) -> list[OutboxMessage]:
        """Return up to `limit` messages (of `status`), oldest first, payloads filled in."""
        ...

    def outbox_counts(self) -> dict[str, int]:
        """Return the number of messages per status (statuses with none omitted)."""
        ...

    def outbox_redrive(self, ids: Sequence[str] | None = None) -> int:
        """Make dead messages (all, or those in `ids`) pending again with no attempts."""
        ...

    def outbox_prune(self, before: datetime) -> int:
        """Delete acknowledged messages acknowledged before `before`; return how many."""
        ...
