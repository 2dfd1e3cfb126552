"""Tests for grantflow._decide: effects fail closed, as rules do.

An effect that raises, returns anything but `Effects`, or returns records or data that
cannot be sealed (a float, an identifier with a control character, a forged record
built without validation) refuses the attempt with an audited refusal: the single fire,
the bulk run and `can_fire` give the same answer, and nothing of the effect is written.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

import grantflow
from grantflow import Actor, Record
from grantflow.rules import Effects, RuleBook, RuleContext

APPLICANT = Actor(id="u-1", roles=frozenset({"applicant"}), organisation="org-1")
STAFF = Actor(id="staff-1", roles=frozenset({"purchaser"}), organisation="city")


def _raises(ctx: RuleContext) -> Effects:
    raise ValueError("no ledger")


def _returns_a_dict(ctx: RuleContext) -> Any:
    return {"records": ()}


def _forged_float(ctx: RuleContext) -> Effects:
    forged = Record.model_construct(kind="note", id="n-1", data={"share": 0.4}, seq=0)
    return Effects(records=(forged,))


def _forged_id(ctx: RuleContext) -> Effects:
    forged = Record.model_construct(kind="note", id="n\n1", data={}, seq=0)
    return Effects(records=(forged,))


def _not_a_record(ctx: RuleContext) -> Effects:
    return Effects(records=({"kind": "note", "id": "n-1"},))  # type: ignore[arg-type]


def _float_data(ctx: RuleContext) -> Effects:
    return Effects(data={"share": 0.4})


@pytest.mark.parametrize(
    ("effect", "code", "says"),
    [
        (_raises, "rule.error", "no ledger"),
        (_returns_a_dict, "effect.bad_result", "dict"),
        (_forged_float, "rule.error", "floats are not canonical"),
        (_forged_id, "rule.error", "control characters"),
        (_not_a_record, "rule.error", "AttributeError"),
        (_float_data, "rule.error", "float"),
    ],
)
def test_a_broken_effect_refuses_the_attempt_on_every_path(
    effect: Callable[[RuleContext], Any], code: str, says: str
) -> None:
    """A broken effect is an audited refusal naming it; fire, bulk and can_fire agree."""
    engine = grantflow.open(rules=RuleBook().effect("approve", effect), discover_rules=False)
    first = engine.submit(actor=APPLICANT).project_id
    second = engine.submit(actor=APPLICANT).project_id

    preview = engine.can_fire(first, "approve", actor=STAFF)
    outcome = engine.fire(first, "approve", actor=STAFF)
    bulk = engine.fire_many("approve", [second], actor=STAFF)

    assert not preview.accepted
    assert not outcome.accepted
    assert [r.code for r in preview.refusals] == [r.code for r in outcome.refusals] == [code]
    refusal = outcome.refusals[0]
    assert refusal.rule == effect.__qualname__
    assert says in refusal.message
    assert refusal.message_zh  # both languages, as every refusal
    assert [(i.status, [r.code for r in i.refusals]) for i in bulk.items] == [("refused", [code])]
    for pid in (first, second):
        project = engine.get(pid)
        assert (project.state, project.records) == ("applied", ())
        assert engine.history(pid)[-1].refusals[0].code == code
    assert engine.verify().ok


def test_a_sound_effect_adds_its_records_at_the_entry_and_its_data_as_plain_json() -> None:
    """Records come out at the entry's seq and data as the canonical JSON of its values."""

    def award(ctx: RuleContext) -> Effects:
        return Effects(
            records=(Record(kind="note", id="n-1", data={"amount": Decimal("10.50")}),),
            data={"awarded": Decimal("10.50"), "at": ctx.now},
        )

    engine = grantflow.open(rules=RuleBook().effect("approve", award), discover_rules=False)
    pid = engine.submit(actor=APPLICANT).project_id
    outcome = engine.fire(pid, "approve", actor=STAFF)
    assert outcome.accepted
    assert outcome.entry is not None
    project = engine.get(pid)
    assert [(r.id, r.seq, dict(r.data)) for r in project.records] == [
        ("n-1", 2, {"amount": "10.50"})
    ]
    assert project.data["awarded"] == "10.50"
    assert project.data["at"].endswith("Z")
    assert engine.verify().ok
