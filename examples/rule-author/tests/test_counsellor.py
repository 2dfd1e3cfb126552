"""A licensed counsellor is required to sign a mental-health project; others are unaffected."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grantflow
import pytest
from grantflow import Actor, Engine, Lifecycle, Project, Record
from grantflow.states import PURCHASED_SERVICE
from grantflow.testing import LifecycleStateMachine
from grantflow.testing import strategies as gs
from hypothesis import given, settings
from hypothesis import strategies as st

from counsellor_rules import TEAM_KIND, licensed_counsellor, qualifies, rule_book

SIGNING_DAY = datetime(2025, 6, 30, 9, 0, tzinfo=UTC)
COUNSELLOR = {"name": "Li Wei", "role": "counsellor", "licence": "XL20250001"}


def _walk_to_reviewed(engine: Engine, make_actor: Callable[..., Actor], domain: str) -> str:
    applicant = make_actor("applicant", organisation="heart-org")
    staff = make_actor("purchaser", organisation="city")
    pid = engine.submit(actor=applicant, data={"domain": domain}).project_id
    engine.fire(pid, "approve", actor=staff).raise_for_refusal()
    return pid


@pytest.mark.grantflow_clock("2025-06-30T09:00:00+00:00")
def test_a_mental_health_project_needs_a_licensed_counsellor_to_sign(
    grantflow_engine: Engine, grantflow_actor: Callable[..., Actor], grantflow_audit: list[Any]
) -> None:
    """Without a counsellor, signing is refused and audited; with one, it is accepted."""
    pid = _walk_to_reviewed(grantflow_engine, grantflow_actor, "mental_health")
    staff = grantflow_actor("purchaser", organisation="city")
    refused = grantflow_engine.fire(pid, "sign", actor=staff)
    assert [r.code for r in refused.refusals] == ["counsellor.licensed"]
    member = {**COUNSELLOR, "licence_expires": "2025-06-30"}  # valid through today
    applicant = grantflow_actor("applicant", organisation="heart-org")
    grantflow_engine.add_record(pid, TEAM_KIND, member, actor=applicant).raise_for_refusal()
    assert grantflow_engine.fire(pid, "sign", actor=staff).accepted
    assert [(e.event, e.accepted) for e in grantflow_audit] == [
        ("submit", True),
        ("approve", True),
        ("sign", False),
        (f"record.{TEAM_KIND}", True),
        ("sign", True),
    ]


@pytest.mark.grantflow_clock("2025-07-01T09:00:00+00:00")
def test_an_expired_licence_does_not_count(
    grantflow_engine: Engine, grantflow_actor: Callable[..., Actor]
) -> None:
    """A licence that expired yesterday is refused on signing."""
    pid = _walk_to_reviewed(grantflow_engine, grantflow_actor, "mental_health")
    applicant = grantflow_actor("applicant", organisation="heart-org")
    member = {**COUNSELLOR, "licence_expires": "2025-06-30"}
    grantflow_engine.add_record(pid, TEAM_KIND, member, actor=applicant).raise_for_refusal()
    outcome = grantflow_engine.fire(pid, "sign", actor=grantflow_actor("purchaser"))
    assert [r.code for r in outcome.refusals] == ["counsellor.licensed"]


def test_other_domains_sign_without_a_counsellor(
    grantflow_engine: Engine, grantflow_actor: Callable[..., Actor]
) -> None:
    """Legal aid needs no counsellor."""
    pid = _walk_to_reviewed(grantflow_engine, grantflow_actor, "legal_aid")
    assert grantflow_engine.fire(pid, "sign", actor=grantflow_actor("purchaser")).accepted


@pytest.mark.parametrize(
    ("member", "fields"),
    [
        ({"name": "", "role": "counsellor"}, ["name", "licence", "licence_expires"]),
        ({"name": "Wang", "role": "driver"}, ["role"]),
        ({**COUNSELLOR, "licence": "X1", "licence_expires": "2026-01-01"}, ["licence"]),
        ({"name": "Zhao", "role": "coordinator"}, []),
    ],
)
def test_team_members_are_checked_when_added(
    grantflow_engine: Engine,
    grantflow_actor: Callable[..., Actor],
    member: Mapping[str, Any],
    fields: list[str],
) -> None:
    """An incomplete member is refused naming the fields; a complete one is recorded."""
    applicant = grantflow_actor("applicant", organisation="heart-org")
    pid = grantflow_engine.submit(actor=applicant, data={"domain": "mental_health"}).project_id
    outcome = grantflow_engine.add_record(pid, TEAM_KIND, member, actor=applicant)
    assert outcome.accepted == (not fields)
    if fields:
        assert outcome.refusals[0].details["fields"] == fields


def test_the_book_fits_the_default_lifecycle_and_extends_the_default_rules() -> None:
    """The lint passes, and the book adds to the default regime without clashing."""
    from grantflow.rules.default import default_rules

    rule_book().check(PURCHASED_SERVICE)
    combined = default_rules().extend(rule_book())
    combined.check(PURCHASED_SERVICE)
    assert "counsellor.licensed" in combined.codes()
    assert combined.fingerprint != default_rules().fingerprint


# -- properties ------------------------------------------------------------------------


def _reviewed(domain: str, members: list[dict[str, Any]]) -> Project:
    records = tuple(
        Record(kind=TEAM_KIND, id=f"m{n}", data=m, seq=n + 2) for n, m in enumerate(members)
    )
    return Project(
        id="p-1",
        state="reviewed",
        version=2 + len(members),
        head="0" * 64,
        data={"domain": domain},
        records=records,
        created_at=SIGNING_DAY - timedelta(days=30),
        updated_at=SIGNING_DAY - timedelta(days=1),
    )


#: Expiry dates at and around the signing days the contexts draw (the boundary is today).
EXPIRIES = gs.boundaries(0, 1, 30).dates(SIGNING_DAY.date(), span_days=60)
MEMBERS = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["Li", "Wang"]),
        "role": st.sampled_from(["counsellor", "coordinator"]),
        "licence": st.sampled_from(["XL20250001", "XL2025", ""]),
        "licence_expires": EXPIRIES.map(date.isoformat),
    }
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["mental_health", "legal_aid"]).flatmap(
        lambda domain: st.lists(MEMBERS, max_size=3).map(lambda ms: _reviewed(domain, ms))
    ),
    st.data(),
)
def test_the_rule_agrees_with_its_definition(project: Project, data: st.DataObject) -> None:
    """Passes exactly when the project is not mental health or a member qualifies today."""
    ctx = data.draw(
        gs.rule_contexts(
            event="sign",
            project=st.just(project),
            actor=st.just(Actor(id="staff", roles=frozenset({"purchaser"}))),
            evidence=st.just({}),
        )
    )
    today = ctx.now.date()
    members = [r.data for r in project.records_of(TEAM_KIND)]
    expected = project.data["domain"] != "mental_health" or any(
        m["role"] == "counsellor"
        and m["licence"] == "XL20250001"
        and date.fromisoformat(m["licence_expires"]) >= today
        for m in members
    )
    assert licensed_counsellor(ctx).passed == expected


@given(EXPIRIES, st.sampled_from([-1, 0, 1]))
def test_a_licence_counts_through_its_last_day(expires: date, offset: int) -> None:
    """qualifies() on the expiry day, the day before and the day after."""
    member = {**COUNSELLOR, "licence_expires": expires.isoformat()}
    day = expires + timedelta(days=offset)
    assert qualifies(member, day) == (offset <= 0)


# -- the stateful harness over the book --------------------------------------------------


class CounsellorMachine(LifecycleStateMachine):
    """grantflow's harness over our book: its invariants, our rules, mental-health projects."""

    def make_engine(self, lifecycle: Lifecycle) -> Engine:
        """An in-memory engine on our rule book alone."""
        return grantflow.open(
            lifecycle=lifecycle, rules=rule_book(), clock=self.clock, discover_rules=False
        )

    def evidence_strategy(self) -> st.SearchStrategy[Mapping[str, Any]]:
        """Submissions are mental-health projects half the time; team members sometimes."""
        return st.one_of(
            st.just({"domain": "mental_health"}),
            st.just({**COUNSELLOR, "licence_expires": "2030-01-01"}),
            super().evidence_strategy(),
        )


TestCounsellorMachine = CounsellorMachine.TestCase
TestCounsellorMachine.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
