"""The default regime end to end: the main line to ``closed``, and rectification to a clawback."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import World


import grantflow
from grantflow.records import Clawback, Settlement
from grantflow.rules import RuleBook
from grantflow.rules.default import default_rules


def test_open_uses_the_default_rules_and_a_bare_book_disables_them() -> None:
    """`grantflow.open()` gates events with the default regime; ``rules=RuleBook()`` does not."""
    applicant = grantflow.Actor(id="u", roles=frozenset({"applicant"}), organisation="o")
    refused = grantflow.open().submit(actor=applicant, data={"title": "t"})
    accepted = grantflow.open(rules=RuleBook()).submit(actor=applicant, data={"title": "t"})
    assert (refused.accepted, accepted.accepted) == (False, True)
    assert "eligibility.application" in {r.code for r in refused.refusals}
    assert "review.quorum" in [getattr(r, "name", "") for r in default_rules().rules_for("approve")]


def test_main_line_from_applied_to_closed(world: World) -> None:
    """A realistic project is submitted, reviewed, signed, spends, evaluated, assessed, closed."""
    engine = world.engine
    pid = world.main_line()

    project = engine.get(pid)
    settlement = Settlement.model_validate(dict(project.records_of("settlement")[0].data))
    assert project.state == "closed"
    assert project.data["grade"] == "good"
    assert (project.data["activities"], project.data["person_times"]) == (32, 2300)
    assert settlement.eligible == Decimal("95000.00")
    assert settlement.final_installment == Decimal("15000.00")
    assert settlement.disbursed == settlement.due == Decimal("95000.00")
    assert settlement.refund == Decimal("0.00")
    assert [e.event for e in engine.history(pid) if e.accepted][-1] == "close"
    assert engine.verify().ok


def test_rectification_then_termination_claws_back_unspent_money(world: World) -> None:
    """A failed mid-term leads to rectification, a failed re-check to termination and a clawback."""
    engine = world.engine
    pid = world.contracted()
    world.spend(pid, "12500.50", "INV-9").raise_for_refusal()
    world.evaluate(pid, "midterm", 50).raise_for_refusal()
    refused = engine.fire(pid, "pass_midterm", actor=world.treasurer)
    assert "evaluation.midterm_grade" in world.codes(refused)
    world.rectify_then_terminate(pid)

    project = engine.get(pid)
    clawback = Clawback.model_validate(dict(project.records_of("clawback")[0].data))
    assert project.state == "terminated"
    assert len(project.records_of("rectification_order")) == 1
    assert clawback.disbursed == Decimal("40000.00")
    assert clawback.amount == Decimal("27499.50")
    assert clawback.reason == "failed re-check"
    assert [r.id for r in project.records_of("clawback")] == ["clawback"]
    assert (project.data["clawback"], project.data["eligible_spend"]) == (
        "27499.50",
        str(clawback.eligible),
    )
    demand = project.records_of("refund_demand")[0].data
    assert (demand["amount"], demand["reason"], demand["status"]) == (
        "27499.50",
        "clawback",
        "open",
    )
    assert engine.verify().ok
