"""Portfolio totals: in Python over the memory store, and in SQL (`portfolio_sql`) on SQLite."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

import grantflow
from grantflow import Actor, Engine, InvalidInput, RuleBook
from grantflow.portfolio import Portfolio, ServiceTotals, Totals
from grantflow.portfolio_sql import sql_services, sql_totals
from grantflow.records import Directory, Hub

APPLICANT = Actor(id="u", roles=frozenset({"applicant"}), organisation="org")
PURCHASER = Actor(id="p", roles=frozenset({"purchaser"}), organisation="city")

PROJECTS = [
    # hub, brand, domain, year, awarded, disbursed, state-after
    ("s1", "heart", "mental_health", 2024, "100000.00", "40000.00", "approve"),
    ("s1", "heart", "mental_health", 2025, "50000.50", "50000.50", None),
    ("d2", "", "legal_aid", 2025, "20000.00", "0.00", "approve"),
    ("assoc", "skills", "skills_training", 2025, "0.01", "0.01", None),
]


def seeded_engine(store: object = None) -> Engine:
    """A bare engine holding four projects across hubs, brands, domains, years and states."""
    engine = grantflow.open(store, rules=RuleBook(), discover_rules=False)  # type: ignore[arg-type]
    directory = Directory(engine)
    directory.add_hub(Hub(id="city", name="City", kind="city"))
    for hub, parent, kind in (("d1", "city", "district"), ("d2", "city", "district")):
        directory.add_hub(Hub(id=hub, name=hub, kind=kind, parent=parent))  # type: ignore[arg-type]
    directory.add_hub(Hub(id="s1", name="s1", kind="street", parent="d1"))
    directory.add_hub(Hub(id="assoc", name="a", kind="association", parent="city"))
    for n, (hub, brand, domain, year, awarded, disbursed, event) in enumerate(PROJECTS):
        data = {"hub": hub, "domain": domain, "year": year}
        data |= {"amount_awarded": awarded, "amount_disbursed": disbursed}
        if brand:
            data["brand"] = brand
        pid = engine.submit(actor=APPLICANT, data=data, project_id=f"p{n}").project_id
        service = {"domain": domain, "activities": n + 1, "person_times": 100 * (n + 1)}
        engine.add_record(pid, "service", service, actor=APPLICANT).raise_for_refusal()
        if event:
            engine.fire(pid, event, actor=PURCHASER).raise_for_refusal()
    return engine


def test_totals_by_state_brand_and_year() -> None:
    """Counts and money are totalled exactly, to the fen, per group."""
    portfolio = Portfolio(seeded_engine())
    assert portfolio.totals("state") == [
        Totals(
            key="applied", projects=2, awarded=Decimal("50000.51"), disbursed=Decimal("50000.51")
        ),
        Totals(
            key="reviewed", projects=2, awarded=Decimal("120000.00"), disbursed=Decimal("40000.00")
        ),
    ]
    assert [(t.key, t.projects) for t in portfolio.totals("brand")] == [
        ("", 1),
        ("heart", 2),
        ("skills", 1),
    ]
    assert [(t.key, t.projects) for t in portfolio.totals("year")] == [("2024", 1), ("2025", 3)]


def test_totals_within_a_hub_subtree() -> None:
    """``within`` keeps only projects of the hub and the hubs below it."""
    portfolio = Portfolio(seeded_engine())
    assert portfolio.subtree("d1") == {"d1", "s1"}
    within = portfolio.totals("domain", within="d1")
    assert [(t.key, t.projects, t.awarded) for t in within] == [
        ("mental_health", 2, Decimal("150000.50"))
    ]
    assert sum(t.projects for t in portfolio.totals("hub", within="city")) == 4


def test_services_by_domain_and_hub() -> None:
    """Activities and person-times come from the service records."""
    portfolio = Portfolio(seeded_engine().store)
    assert portfolio.services("domain") == [
        ServiceTotals(key="legal_aid", activities=3, person_times=300),
        ServiceTotals(key="mental_health", activities=3, person_times=300),
        ServiceTotals(key="skills_training", activities=4, person_times=400),
    ]
    assert portfolio.services("hub", within="d1") == [
        ServiceTotals(key="s1", activities=3, person_times=300)
    ]


def test_unknown_dimension_is_refused() -> None:
    """Grouping by an unknown dimension raises `InvalidInput` naming ``by``."""
    with pytest.raises(InvalidInput) as info:
        Portfolio(grantflow.open()).totals("colour")  # type: ignore[arg-type]
    assert info.value.field == "by"


def _tables() -> tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]:
    meta = sa.MetaData()
    projects = sa.Table(
        "projects",
        meta,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("state", sa.String),
        sa.Column("data", sa.JSON),
    )
    records = sa.Table(
        "records",
        meta,
        sa.Column("project_id", sa.String, primary_key=True),
        sa.Column("kind", sa.String, primary_key=True),
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("data", sa.JSON),
    )
    entities = sa.Table(
        "entities",
        meta,
        sa.Column("kind", sa.String, primary_key=True),
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("parent", sa.String),
        sa.Column("data", sa.JSON),
    )
    return meta, projects, records, entities


def test_sql_totals_equal_the_python_totals() -> None:
    """Every grouping, with and without a hub subtree, gives the same totals in SQL."""
    engine = seeded_engine()
    store = engine.store
    meta, projects, records, entities = _tables()
    db = sa.create_engine("sqlite://")
    meta.create_all(db)
    with db.begin() as conn:
        for summary in store.projects():
            project = engine.get(summary.id)
            conn.execute(
                projects.insert(),
                {"id": project.id, "state": project.state, "data": dict(project.data)},
            )
            for r in project.records:
                row = {"project_id": project.id, "kind": r.kind, "id": r.id, "data": dict(r.data)}
                conn.execute(records.insert(), row)
        for hub in store.entities("hub"):
            row = {"kind": "hub", "id": hub.id, "parent": hub.parent, "data": dict(hub.data)}
            conn.execute(entities.insert(), row)
    python = Portfolio(engine)
    with db.connect() as conn:
        for by in ("state", "hub", "brand", "domain", "year"):
            for within in (None, "city", "d1"):
                got = sql_totals(conn, projects, entities, by, within)
                assert got == python.totals(by, within=within), (by, within)  # type: ignore[arg-type]
        for by in ("domain", "hub"):
            for within in (None, "d1"):
                got_services = sql_services(conn, projects, records, entities, by, within)
                assert got_services == python.services(by, within=within)  # type: ignore[arg-type]
