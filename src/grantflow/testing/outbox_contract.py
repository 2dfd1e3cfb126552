"""The outbox contract: the tests every store with an outbox (`OutboxStore`) must pass.

Subclass `OutboxContract` and provide a ``store`` fixture yielding an empty store that
is both a `Store` and an `OutboxStore` (as for `grantflow.testing.store_contract`)::

    import pytest
    from grantflow.persistence import MemoryStore
    from grantflow.testing.outbox_contract import OutboxContract

    class TestMemoryOutbox(OutboxContract):
        @pytest.fixture
        def store(self):
            yield MemoryStore()
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from grantflow._open import open as open_engine
from grantflow.errors import ConcurrencyError
from grantflow.models import Actor
from grantflow.persistence import AUDIT_TOPIC, OutboxMessage, OutboxStore, Store
from grantflow.rules import RuleBook
from grantflow.testing.job_contract import DEAD_OWNER
from grantflow.testing.store_contract import T0, submission, transition

__all__ = ["OutboxContract"]

_NOW = 1_000_000.0
_STAFF = Actor(id="staff", roles=frozenset({"applicant", "purchaser"}))


def _outbox(store: Any) -> OutboxStore:
    assert isinstance(store, OutboxStore), f"{type(store).__name__} has no outbox"
    return store


def _three(store: Store) -> list[str]:
    """Commit three submissions; return their entries' hashes (the message ids), in order."""
    ids = []
    for pid in ("p-1", "p-2", "p-3"):
        change = submission(pid)
        store.commit(change)
        ids.append(change.entry.hash)
    return ids


class OutboxContract:
    """Contract tests for a store's outbox; subclasses provide the ``store`` fixture."""

    # -- written with the entries --------------------------------------------------------

    def test_every_committed_entry_queues_one_message(self, store: Store) -> None:
        """Accepted, refused and record entries each queue one ``audit`` message, id = hash."""
        refused = submission("p-1", accepted=False)
        store.commit(refused)
        accepted = submission("p-1", version=1, prev_hash=refused.entry.hash)
        store.commit(accepted)
        assert accepted.after is not None
        moved = transition(accepted.after, "reviewed", data={"score": "88"})
        store.commit(moved)
        assert moved.after is not None
        declined = transition(moved.after, "contracted", accepted=False)
        store.commit(declined)
        entries = [refused.entry, accepted.entry, moved.entry, declined.entry]
        listed = _outbox(store).outbox_messages()
        assert [m.id for m in listed] == [e.hash for e in entries]
        assert {m.topic for m in listed} == {AUDIT_TOPIC}
        assert [(m.project_id, m.seq, m.status, m.attempts) for m in listed] == [
            ("p-1", e.seq, "pending", 0) for e in entries
        ]
        assert [m.payload for m in listed] == [e.model_dump(mode="json") for e in entries]
        assert listed[0].created_at == refused.entry.at
        assert _outbox(store).outbox_counts() == {"pending": 4}

    def test_a_lost_compare_and_set_queues_nothing(self, store: Store) -> None:
        """A commit that raises ConcurrencyError leaves no message behind."""
        first = submission("p-1")
        store.commit(first)
        assert first.after is not None
        store.commit(transition(first.after, "reviewed"))
        with pytest.raises(ConcurrencyError):
            store.commit(transition(first.after, "rejected", event="reject"))
        assert _outbox(store).outbox_counts() == {"pending": 2}

    def test_a_change_carries_its_own_messages(self, store: Store) -> None:
        """Change.messages commit with the entry; an id already queued is skipped."""
        base = submission("p-1")
        extra = OutboxMessage(
            id="reminder:p-1:report:2026-04-01",
            topic="reminder",
            created_at=T0,
            project_id="p-1",
            payload={"kind": "progress_report", "due": "2026-04-01"},
        )
        store.commit(replace(base, messages=(extra,)))
        assert base.after is not None
        again = transition(base.after, "reviewed")
        store.commit(replace(again, messages=(extra,)))
        listed = _outbox(store).outbox_messages()
        assert [m.id for m in listed] == [base.entry.hash, extra.id, again.entry.hash]
        assert listed[1].payload == {"kind": "progress_report", "due": "2026-04-01"}
        assert _outbox(store).outbox_put([extra]) == 0
        other = OutboxMessage(id="reminder:other", topic="reminder", created_at=T0)
        assert _outbox(store).outbox_put([other, other]) == 1
        assert _outbox(store).outbox_counts() == {"pending": 4}

    def test_bulk_chunks_queue_a_message_per_entry(self, store: Store) -> None:
        """fire_many's batched commits queue one message per committed entry too."""
        engine = open_engine(store, rules=RuleBook(), discover_rules=False)
        for i in range(6):
            engine.submit(actor=_STAFF, project_id=f"b-{i}")
        result = engine.fire_many(
            "approve", [f"b-{i}" for i in range(6)], actor=_STAFF, chunk_size=4
        )
        assert result.count("applied") == 6
        heads = sorted(engine.get(f"b-{i}").head for i in range(6))
        listed = _outbox(store).outbox_messages(limit=1000)
        assert len(listed) == 12
        assert sorted(m.id for m in listed if m.seq == 2) == heads

    # -- claims, leases, acknowledgements ------------------------------------------------

    def test_claims_lease_the_oldest_messages(self, store: Store) -> None:
        """A claim leases the oldest available messages; another consumer gets the rest."""
        ids = _three(store)
        box = _outbox(store)
        first = box.outbox_claim("a", limit=2, now=_NOW, lease=30, max_attempts=5)
        assert [m.id for m in first] == ids[:2]
        assert [m.attempts for m in first] == [1, 1]
        assert first[0].payload["event"] == "submit"
        second = box.outbox_claim("b", limit=10, now=_NOW, lease=30, max_attempts=5)
        assert [m.id for m in second] == ids[2:]
        assert box.outbox_claim("c", limit=10, now=_NOW + 29, lease=30, max_attempts=5) == []

    def test_acks_are_fenced_on_the_lease(self, store: Store) -> None:
        """Only the lease holder acknowledges, and only once."""
        ids = _three(store)
        box = _outbox(store)
        box.outbox_claim("a", limit=3, now=_NOW, lease=30, max_attempts=5)
        assert box.outbox_ack("b", ids, now=_NOW + 1) == 0
        assert box.outbox_ack("a", ids[:2], now=_NOW + 1) == 2
        assert box.outbox_ack("a", ids[:2], now=_NOW + 2) == 0
        assert box.outbox_counts() == {"acked": 2, "pending": 1}
        assert box.outbox_claim("b", limit=10, now=_NOW + 5, lease=30, max_attempts=5) == []

    def test_an_expired_lease_is_taken_over_and_the_late_ack_is_refused(self, store: Store) -> None:
        """After the lease lapses another consumer claims it; the first one's ack is void."""
        ids = _three(store)
        box = _outbox(store)
        box.outbox_claim("a", limit=1, now=_NOW, lease=10, max_attempts=5)
        taken = box.outbox_claim("b", limit=1, now=_NOW + 11, lease=10, max_attempts=5)
        assert [(m.id, m.attempts) for m in taken] == [(ids[0], 2)]
        assert box.outbox_ack("a", [ids[0]], now=_NOW + 12) == 0
        assert box.outbox_ack("b", [ids[0]], now=_NOW + 12) == 1

    def test_a_dead_holder_is_taken_over_at_once(self, store: Store) -> None:
        """A lease held by a process of this host that has exited is claimable before expiry."""
        ids = _three(store)
        box = _outbox(store)
        box.outbox_claim(DEAD_OWNER, limit=1, now=_NOW, lease=3600, max_attempts=5)
        taken = box.outbox_claim("b", limit=1, now=_NOW + 1, lease=10, max_attempts=5)
        assert [m.id for m in taken] == ids[:1]

    def test_failures_wait_for_their_retry_time_then_go_dead(self, store: Store) -> None:
        """A released message waits until retry_at; released without one, it is dead."""
        ids = _three(store)
        box = _outbox(store)
        box.outbox_claim("a", limit=1, now=_NOW, lease=30, max_attempts=5)
        assert box.outbox_release("b", ids[0], error="not mine", retry_at=_NOW + 60) is False
        assert box.outbox_release("a", ids[0], error="HTTP 503", retry_at=_NOW + 60) is True
        early = box.outbox_claim("a", limit=1, now=_NOW + 59, lease=30, max_attempts=5)
        assert [m.id for m in early] == ids[1:2]
        later = box.outbox_claim("a", limit=5, now=_NOW + 60, lease=30, max_attempts=5)
        assert [(m.id, m.attempts, m.last_error) for m in later] == [
            (ids[0], 2, "HTTP 503"),
            (ids[2], 1, ""),
        ]
        assert box.outbox_release("a", ids[0], error="HTTP 500", retry_at=None) is True
        dead = box.outbox_messages(status="dead")
        assert [(m.id, m.last_error) for m in dead] == [(ids[0], "HTTP 500")]
        assert box.outbox_ack("a", [ids[0]], now=_NOW + 61) == 0

    def test_lapsed_leases_spend_the_attempts(self, store: Store) -> None:
        """A message whose consumer keeps dying goes dead after max_attempts claims."""
        ids = _three(store)
        box = _outbox(store)
        for attempt in range(2):
            got = box.outbox_claim("a", limit=1, now=_NOW + 100 * attempt, lease=10, max_attempts=2)
            assert [m.id for m in got] == ids[:1]
        got = box.outbox_claim("a", limit=1, now=_NOW + 200, lease=10, max_attempts=2)
        assert [m.id for m in got] == ids[1:2]
        assert [m.id for m in box.outbox_messages(status="dead")] == ids[:1]

    def test_redrive_and_prune(self, store: Store) -> None:
        """Dead letters come back with no attempts; prune deletes old acknowledged messages."""
        ids = _three(store)
        box = _outbox(store)
        box.outbox_claim("a", limit=3, now=_NOW, lease=30, max_attempts=5)
        box.outbox_release("a", ids[0], error="gone", retry_at=None)
        box.outbox_release("a", ids[1], error="gone", retry_at=None)
        box.outbox_ack("a", [ids[2]], now=_NOW)
        assert box.outbox_redrive([ids[1]]) == 1
        assert box.outbox_counts() == {"acked": 1, "dead": 1, "pending": 1}
        assert box.outbox_redrive() == 1
        again = box.outbox_claim("b", limit=5, now=_NOW, lease=30, max_attempts=5)
        assert [(m.id, m.attempts) for m in again] == [(ids[0], 1), (ids[1], 1)]
        acked_at = datetime.fromtimestamp(_NOW, UTC)
        assert box.outbox_prune(acked_at) == 0
        assert box.outbox_prune(acked_at + timedelta(seconds=1)) == 1
        assert box.outbox_counts() == {"pending": 2}
