"""`capture_audit` collects committed entries inside its block, and only there."""

from __future__ import annotations

import grantflow
from grantflow.testing import capture_audit

APPLICANT = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
PURCHASER = grantflow.Actor(id="hub-1", roles=frozenset({"purchaser"}))


def test_accepted_and_refused_entries_are_captured_in_order() -> None:
    """Inside the block every attempt's entry arrives, equal to the stored history."""
    engine = grantflow.open(rules=grantflow.RuleBook(), discover_rules=False)
    with capture_audit(engine) as entries:
        pid = engine.submit(actor=APPLICANT).project_id
        engine.fire(pid, "sign", actor=PURCHASER)  # no edge from applied: refused
        engine.fire(pid, "approve", actor=PURCHASER)
    assert [(e.event, e.accepted) for e in entries] == [
        ("submit", True),
        ("sign", False),
        ("approve", True),
    ]
    assert entries == engine.history(pid)


def test_capture_stops_when_the_block_ends() -> None:
    """After the block the listener is gone: later attempts are not captured."""
    engine = grantflow.open(rules=grantflow.RuleBook(), discover_rules=False)
    with capture_audit(engine) as entries:
        pid = engine.submit(actor=APPLICANT).project_id
    engine.fire(pid, "approve", actor=PURCHASER)
    assert len(entries) == 1
    assert len(engine.history(pid)) == 2


def test_can_fire_is_not_captured() -> None:
    """`can_fire` writes nothing, so nothing is captured for it."""
    engine = grantflow.open(rules=grantflow.RuleBook(), discover_rules=False)
    pid = engine.submit(actor=APPLICANT).project_id
    with capture_audit(engine) as entries:
        assert engine.can_fire(pid, "approve", actor=PURCHASER).accepted
    assert entries == []
