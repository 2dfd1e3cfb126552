"""The memory store's outbox: an entry's own message before and after a consumer leases it."""

from __future__ import annotations

from datetime import UTC, datetime

import grantflow
from grantflow.persistence import MemoryStore, OutboxMessage
from grantflow.rules import RuleBook

APPLICANT = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))


def _store(projects: int) -> tuple[MemoryStore, list[str]]:
    store = MemoryStore()
    engine = grantflow.open(store, rules=RuleBook(), discover_rules=False)
    hashes = []
    for i in range(projects):
        entry = engine.submit(actor=APPLICANT, project_id=f"p-{i}").entry
        assert entry is not None
        hashes.append(entry.hash)
    return store, hashes


def test_unleased_entry_messages_read_as_pending_with_their_payloads() -> None:
    """Counts, listings and limits see an entry's message as pending, its entry as payload."""
    store, hashes = _store(3)
    store.outbox_put(
        [OutboxMessage(id="m-1", topic="custom", created_at=datetime(2026, 1, 1, tzinfo=UTC))]
    )
    assert store.outbox_counts() == {"pending": 4}
    listed = store.outbox_messages(status="pending", limit=2)
    assert [m.id for m in listed] == hashes[:2]
    assert [(m.attempts, m.status, m.seq) for m in listed] == [(0, "pending", 1)] * 2
    assert listed[0].payload is not None
    assert listed[0].payload["hash"] == hashes[0]
    assert store.outbox_messages(status="dead") == []
    assert store.outbox_messages(limit=0) == []


def test_an_entry_message_nobody_leased_cannot_be_acked_released_or_pruned() -> None:
    """Acknowledging or releasing an unclaimed entry message is a no-op; it stays pending."""
    store, hashes = _store(2)
    assert store.outbox_ack("c-1", hashes, now=1.0) == 0
    assert store.outbox_release("c-1", hashes[0], error="x", retry_at=None) is False
    assert store.outbox_redrive() == 0
    assert store.outbox_prune(datetime(2100, 1, 1, tzinfo=UTC)) == 0
    assert store.outbox_counts() == {"pending": 2}


def test_a_claimed_entry_message_leases_acks_and_prunes_like_any_other() -> None:
    """Claiming gives the entry's message a lease; ack, counts and prune then follow it."""
    store, hashes = _store(3)
    claimed = store.outbox_claim("c-1", limit=2, now=10.0, lease=30.0, max_attempts=3)
    assert [(m.id, m.attempts) for m in claimed] == [(hashes[0], 1), (hashes[1], 1)]
    assert claimed[0].payload is not None
    assert claimed[0].payload["seq"] == 1
    assert (
        store.outbox_claim("c-2", limit=5, now=11.0, lease=30.0, max_attempts=3)[0].id
        == (hashes[2])
    )
    assert store.outbox_ack("c-2", [hashes[0]], now=12.0) == 0  # c-1 holds that lease
    assert store.outbox_ack("c-1", hashes[:2], now=12.0) == 2
    assert store.outbox_counts() == {"acked": 2, "pending": 1}
    assert store.outbox_prune(datetime(2100, 1, 1, tzinfo=UTC)) == 2
    assert store.outbox_counts() == {"pending": 1}
