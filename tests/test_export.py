"""Tests for grantflow.export: 360Giving JSON and CSV (schema-valid), JSONL, IATI codes."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT202012

import grantflow
from grantflow.export import (
    AWARDED_STATES,
    CSV_COLUMNS,
    IATI_STATUS,
    DefaultPrefixWarning,
    ExportOptions,
    grants,
    iati_status,
    write_360giving_csv,
    write_360giving_json,
    write_jsonl,
)
from grantflow.rules import RuleBook

SCHEMAS = Path(__file__).parent / "data" / "360giving"
GRANT_URL = "https://raw.githubusercontent.com/ThreeSixtyGiving/standard/1.4.2/schema/360-giving-schema.json"

APPLICANT = grantflow.Actor(id="org-heart", roles=frozenset({"applicant"}))
STAFF = grantflow.Actor(id="staff", roles=frozenset({"purchaser"}))
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
# The placeholder-prefix warning has tests of its own below; elsewhere it is expected.
pytestmark = pytest.mark.filterwarnings("ignore::grantflow.export.DefaultPrefixWarning")


def _validator() -> jsonschema.protocols.Validator:
    package = json.loads((SCHEMAS / "360-giving-package-schema.json").read_text("utf-8"))
    grant_schema = json.loads((SCHEMAS / "360-giving-schema.json").read_text("utf-8"))
    # The files say "http://json-schema.org/draft/2020-12/schema", a spelling of the
    # 2020-12 dialect that referencing does not recognise, so name the dialect here.
    registry: Registry[Any] = Registry().with_resource(
        GRANT_URL, DRAFT202012.create_resource(grant_schema)
    )
    cls = jsonschema.Draft202012Validator
    return cls(package, registry=registry, format_checker=cls.FORMAT_CHECKER)


class _Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(hours=1)
        return self.now


def _portfolio() -> grantflow.Engine:
    """Six projects: one per path (applied, rejected, contracted, closed, terminated, ...)."""
    engine = grantflow.open(rules=RuleBook(), discover_rules=False, clock=_Clock())
    store = engine.store
    store.put_entity(
        grantflow.Entity(kind="hub", id="city", data={"name": "市总工会", "credit_code": "81"})
    )
    store.put_entity(grantflow.Entity(kind="provider", id="heart", data={"name": "心灵驿站"}))
    store.put_entity(grantflow.Entity(kind="brand", id="heart-station", data={"name": "心站"}))
    paths = {
        "p-applied": [],
        "p-rejected": ["reject"],
        "p-contracted": ["approve", "sign"],
        "p-rectify": ["approve", "sign", "order_rectification"],
        "p-closed": ["approve", "sign", "pass_midterm", "assess", "close"],
        "p-terminated": ["approve", "sign", "terminate"],
    }
    for pid, events in paths.items():
        data = {
            "title": f"EAP {pid}",
            "description": "Mental health service for couriers",
            "provider": "heart",
            "hub": "city",
            "brand": "heart-station",
            "domain": "mental_health",
            "amount_requested": Decimal("120000.00"),
            "amount_awarded": Decimal("100000.50"),
            "planned_start": "2026-04-01",
            "planned_end": "2027-03-31",
            "location": "Shenzhen",
        }
        engine.submit(actor=APPLICANT, project_id=pid, data=data)
        for event in events:
            engine.fire(pid, event, actor=STAFF).raise_for_refusal()
    engine.add_record("p-closed", "disbursement", {"amount": Decimal("40000.20")}, actor=STAFF)
    engine.add_record("p-closed", "disbursement", {"amount": "60000.30"}, actor=STAFF)
    return engine


def _package(engine: grantflow.Engine) -> tuple[dict[str, Any], str]:
    out = io.StringIO()
    count = write_360giving_json(engine, out, now=START)
    text = out.getvalue()
    package = json.loads(text, parse_float=Decimal)
    assert len(package["grants"]) == count
    return package, text


def test_json_package_is_valid_against_the_360giving_schema() -> None:
    """The package validates against the official package schema (formats checked)."""
    package, _text = _package(_portfolio())
    errors = sorted(_validator().iter_errors(package), key=str)
    assert errors == []


def test_only_awarded_projects_are_grants() -> None:
    """Applied and rejected projects are not grants; every awarded state is."""
    package, _text = _package(_portfolio())
    ids = sorted(g["id"] for g in package["grants"])
    assert ids == [
        "360G-grantflow-p-closed",
        "360G-grantflow-p-contracted",
        "360G-grantflow-p-rectify",
        "360G-grantflow-p-terminated",
    ]


def test_grant_mapping_follows_the_domain_spec() -> None:
    """Award date is the sign entry, programme the brand, domain the classification, CNY."""
    engine = _portfolio()
    sign = next(e for e in engine.history("p-closed") if e.event == "sign")
    by_id = {g["id"]: g for g in grants(engine)}
    closed = by_id["360G-grantflow-p-closed"]
    assert closed["awardDate"] == sign.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert closed["currency"] == "CNY"
    assert closed["amountAwarded"] == Decimal("100000.50")
    assert closed["amountAppliedFor"] == Decimal("120000.00")
    assert closed["amountDisbursed"] == Decimal("100000.50")
    assert closed["grantProgramme"] == [{"code": "heart-station", "title": "心站"}]
    assert closed["classifications"][0]["code"] == "mental_health"
    assert closed["recipientOrganization"] == [
        {"id": "360G-grantflow-provider-heart", "name": "心灵驿站"}
    ]
    assert closed["fundingOrganization"] == [{"id": "CN-USCC-81", "name": "市总工会"}]
    assert closed["plannedDates"] == [
        {"startDate": "2026-04-01T00:00:00+08:00", "endDate": "2027-03-31T00:00:00+08:00"}
    ]
    assert closed["beneficiaryLocation"] == [{"name": "Shenzhen", "countryCode": "CN"}]
    assert "amountDisbursed" not in by_id["360G-grantflow-p-contracted"]


def test_amounts_are_json_numbers_not_strings_or_floats() -> None:
    """Amounts are written as JSON numbers with their two decimal places."""
    _package_data, text = _package(_portfolio())
    assert '"amountAwarded":100000.50' in text
    assert '"amountAwarded":"' not in text


def test_json_carries_iati_activity_status_codes() -> None:
    """Each grant names its IATI activity status: 2 contracted/rectification, 4, 5."""
    package, _text = _package(_portfolio())
    codes = {
        g["id"].removeprefix("360G-grantflow-"): g["activityStatus"]["code"]
        for g in package["grants"]
    }
    assert codes == {"p-closed": "4", "p-contracted": "2", "p-rectify": "2", "p-terminated": "5"}


def test_iati_codes_cover_every_lifecycle_state() -> None:
    """Every state of the default lifecycle has a decided IATI code (None: never funded)."""
    states = {s.name for s in grantflow.PURCHASED_SERVICE.states}
    assert set(IATI_STATUS) == states
    assert [iati_status(s) for s in ("applied", "reviewed", "assessed")] == [1, 1, 3]
    assert iati_status("withdrawn") is None
    assert all(iati_status(s) is not None for s in AWARDED_STATES)


def test_grant_options_change_prefix_and_scheme() -> None:
    """The grant prefix and the org-id scheme come from the export options."""
    options = ExportOptions(grant_prefix="360G-cityunion", org_scheme="CN-TEST")
    record = next(grants(_portfolio(), options))
    assert record["id"].startswith("360G-cityunion-p-")
    assert record["fundingOrganization"][0]["id"] == "CN-TEST-81"


def test_project_missing_required_fields_is_skipped() -> None:
    """An awarded project without an award amount cannot be a valid grant: it is left out."""
    engine = grantflow.open(rules=RuleBook(), discover_rules=False)
    engine.submit(actor=APPLICANT, project_id="p", data={"provider": "x", "hub": "y"})
    engine.fire("p", "approve", actor=STAFF)
    engine.fire("p", "sign", actor=STAFF)
    assert list(grants(engine)) == []
    out = io.StringIO()
    assert write_360giving_json(engine, out, now=START) == 0
    assert json.loads(out.getvalue())["grants"] == []


def test_csv_has_360giving_columns_and_one_row_per_grant() -> None:
    """The flat CSV has the template's column titles and the grant's values."""
    out = io.StringIO()
    assert write_360giving_csv(_portfolio(), out) == 4
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    closed = next(r for r in rows if r["Identifier"] == "360G-grantflow-p-closed")
    assert closed["Amount Awarded"] == "100000.50"
    assert closed["Amount Disbursed"] == "100000.50"
    assert closed["Funding Org:Name"] == "市总工会"
    assert closed["Classifications:Code"] == "mental_health"
    assert closed["Activity Status:Code"] == "4"


def test_jsonl_has_every_project_with_state_and_iati_code() -> None:
    """JSONL lists every project, awarded or not, with its IATI code and grant view."""
    out = io.StringIO()
    assert write_jsonl(_portfolio(), out) == 6
    lines = [json.loads(line, parse_float=Decimal) for line in out.getvalue().splitlines()]
    by_id = {line["project_id"]: line for line in lines}
    assert by_id["p-applied"]["iatiActivityStatus"] == 1
    assert by_id["p-applied"]["grant"] is None
    assert by_id["p-rejected"]["iatiActivityStatus"] is None
    assert by_id["p-terminated"]["iatiActivityStatus"] == 5
    assert by_id["p-closed"]["grant"]["amountDisbursed"] == Decimal("100000.50")
    assert [r["kind"] for r in by_id["p-closed"]["records"]] == ["disbursement", "disbursement"]


def test_schema_catches_a_broken_grant() -> None:
    """The validator used above does reject a grant without an award date."""
    package, _text = _package(_portfolio())
    del package["grants"][0]["awardDate"]
    assert list(_validator().iter_errors(package))


@pytest.mark.parametrize("bad", ["2026-13-01", "yesterday"])
def test_unparseable_planned_dates_are_left_out(bad: str) -> None:
    """A planned start that is not an ISO date is dropped rather than exported wrongly."""
    engine = grantflow.open(rules=RuleBook(), discover_rules=False)
    engine.store.put_entity(grantflow.Entity(kind="hub", id="h", data={"name": "H"}))
    data = {"provider": "x", "hub": "h", "amount_awarded": "10", "planned_start": bad}
    engine.submit(actor=APPLICANT, project_id="p", data=data)
    engine.fire("p", "approve", actor=STAFF)
    engine.fire("p", "sign", actor=STAFF)
    (record,) = grants(engine)
    assert "plannedDates" not in record
    assert record["amountAwarded"] == Decimal("10.00")


def test_without_a_summary_the_description_is_not_the_title() -> None:
    """A project with no summary gets a description made from its facts, not its title."""
    engine = grantflow.open(rules=RuleBook(), discover_rules=False)
    engine.store.put_entity(grantflow.Entity(kind="hub", id="h", data={"name": "H"}))
    data = {"title": "EAP", "provider": "x", "hub": "h", "amount_awarded": "10"}
    engine.submit(actor=APPLICANT, project_id="p", data={**data, "domain": "legal_aid"})
    engine.fire("p", "approve", actor=STAFF)
    engine.fire("p", "sign", actor=STAFF)
    (record,) = grants(engine)
    assert record["description"] == "Purchased legal aid service by x, call -."


@pytest.mark.filterwarnings("error::grantflow.export.DefaultPrefixWarning")
def test_the_placeholder_prefix_warns() -> None:
    """Writing 360Giving files with the default prefix warns; with the publisher's it does not."""
    engine = _portfolio()
    with pytest.warns(DefaultPrefixWarning, match="placeholder prefix"):
        write_360giving_json(engine, io.StringIO(), now=START)
    with pytest.warns(DefaultPrefixWarning):
        write_360giving_csv(engine, io.StringIO())
    own = ExportOptions(grant_prefix="360G-cityunion")
    write_360giving_json(engine, io.StringIO(), own, now=START)
    write_360giving_csv(engine, io.StringIO(), own)
