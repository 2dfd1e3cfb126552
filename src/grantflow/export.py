"""Export projects as 360Giving grants (JSON package or flat CSV) and as JSON Lines.

Only awarded projects (contracted or later, ``terminated`` included) are 360Giving grants;
the JSONL export has every project. Both JSON exports carry the project's IATI activity
status. Everything is streamed: one project (with its records and history) is in memory
at a time.

>>> import io, grantflow
>>> from grantflow.rules import RuleBook
>>> engine = grantflow.open(rules=RuleBook(), discover_rules=False)
>>> applicant = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
>>> _ = engine.submit(actor=applicant, project_id="p-1", data={"title": "Skills"})
>>> out = io.StringIO()
>>> write_jsonl(engine, out)
1
>>> iati_status("contracted"), iati_status("rejected")
(2, None)
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TextIO

from grantflow._canonical import iso_utc
from grantflow._engine import Engine
from grantflow._values import money
from grantflow.models import Project

__all__ = [
    "AWARDED_STATES",
    "CSV_COLUMNS",
    "DEFAULT_GRANT_PREFIX",
    "DefaultPrefixWarning",
    "ExportOptions",
    "IATI_STATUS",
    "Progress",
    "grant",
    "grants",
    "iati_status",
    "project_row",
    "write_360giving_csv",
    "write_360giving_json",
    "write_jsonl",
]

#: States in which a project has been awarded (contracts signed): 360Giving grants.
AWARDED_STATES = frozenset(
    {"contracted", "midterm", "rectification", "assessed", "closed", "terminated"}
)

#: IATI activity-status code per lifecycle state. Rejected and withdrawn applications
#: were never funded activities, so they have no IATI status (``None``).
IATI_STATUS: Mapping[str, int | None] = {
    "applied": 1,
    "reviewed": 1,
    "contracted": 2,
    "midterm": 2,
    "rectification": 2,
    "assessed": 3,
    "closed": 4,
    "terminated": 5,
    "rejected": None,
    "withdrawn": None,
}
_IATI_NAMES = {1: "Pipeline/identification", 2: "Implementation", 3: "Finalisation"}
_IATI_NAMES |= {4: "Closed", 5: "Cancelled"}
_IATI_VOCABULARY = "https://iatistandard.org/en/iati-standard/203/codelists/activitystatus/"
_DISBURSEMENT_KINDS = ("disbursement",)
_CENT = Decimal("0.01")

#: Columns of the flat 360Giving CSV, titled as in the 360Giving spreadsheet template.
CSV_COLUMNS = (
    "Identifier",
    "Title",
    "Description",
    "Currency",
    "Amount Applied For",
    "Amount Awarded",
    "Amount Disbursed",
    "Award Date",
    "Planned Dates:Start Date",
    "Planned Dates:End Date",
    "Recipient Org:Identifier",
    "Recipient Org:Name",
    "Funding Org:Identifier",
    "Funding Org:Name",
    "Grant Programme:Code",
    "Grant Programme:Title",
    "Classifications:Vocabulary",
    "Classifications:Code",
    "Classifications:Title",
    "Beneficiary Location:Name",
    "Beneficiary Location:Country Code",
    "Last Modified",
    "Activity Status:Code",
)


#: The placeholder 360Giving prefix; a publisher registers its own with 360Giving.
DEFAULT_GRANT_PREFIX = "360G-grantflow"


class DefaultPrefixWarning(UserWarning):
    """A 360Giving file was written with the placeholder prefix, not the publisher's own."""


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """How identifiers are made in an export.

    Attributes:
        grant_prefix: the publisher's 360Giving prefix; grant ids are ``<prefix>-<project id>``.
        org_scheme: the org-id.guide list code put before an organisation's unified social
            credit code (check the list your publisher uses; ``CN-USCC`` is a placeholder).
        currency: the ISO 4217 currency of all amounts.
    """

    grant_prefix: str = DEFAULT_GRANT_PREFIX
    org_scheme: str = "CN-USCC"
    currency: str = "CNY"


def iati_status(state: str) -> int | None:
    """Return the IATI activity-status code of a lifecycle state (``None`` if it has none)."""
    return IATI_STATUS.get(state)


# -- reading one project ---------------------------------------------------------------


#: Called with the number of projects just read (one at a time), for a progress bar.
Progress = Callable[[int], None]


def _full_projects(
    engine: Engine, *, awarded_only: bool, progress: Progress | None = None
) -> Iterator[Project]:
    """Yield each project with its records, one at a time, in id order."""
    store = engine.store
    for summary in store.projects():
        if awarded_only and summary.state not in AWARDED_STATES:
            continue
        project = store.load(summary.id)
        if project is not None:
            yield project
        if progress is not None:
            progress(1)


def _award_time(engine: Engine, project_id: str) -> datetime | None:
    """Return the time of the project's (last) accepted ``sign`` entry."""
    at = None
    for entry in engine.store.entries(project_id):
        if entry.accepted and entry.event == "sign":
            at = entry.at
    return at


def _first(data: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if data.get(key) not in (None, ""):
            return data[key]
    return None


def _disbursed(project: Project) -> Decimal | None:
    amounts = [
        money(r.data.get("amount")) for r in project.records if r.kind in _DISBURSEMENT_KINDS
    ]
    paid = [a for a in amounts if a is not None]
    return sum(paid, Decimal("0.00")) if paid else None


def _organisation(
    engine: Engine, kind: str, ref: Any, options: ExportOptions
) -> dict[str, str] | None:
    if not isinstance(ref, str) or not ref:
        return None
    entity = engine.store.get_entity(kind, ref)
    data: Mapping[str, Any] = entity.data if entity is not None else {}
    code = _first(data, "credit_code", "uscc")
    org_id = f"{options.org_scheme}-{code}" if code else f"{options.grant_prefix}-{kind}-{ref}"
    return {"id": org_id, "name": str(_first(data, "name", "name_zh") or ref)}


def _day(value: Any) -> str | None:
    """Return a 360Giving date-time for a date, datetime or ISO text value."""
    if isinstance(value, datetime):
        return iso_utc(value)
    text = str(value) if value is not None else ""
    try:
        parsed = date.fromisoformat(text[:10])
    except ValueError:
        return None
    # A full date-time, because the schema's date alternatives overlap when formats are
    # not checked and a bare date then matches two branches of its oneOf.
    return f"{parsed.isoformat()}T00:00:00+08:00"


# -- mapping ---------------------------------------------------------------------------


def grant(
    engine: Engine, project: Project, options: ExportOptions | None = None
) -> dict[str, Any] | None:
    """Return `project` as a 360Giving grant, or ``None`` if it was never awarded.

    The mapping is documented in ``docs/export.md``. Amounts are `Decimal` (two places);
    `write_360giving_json` writes them as JSON numbers.
    """
    options = options or ExportOptions()
    if project.state not in AWARDED_STATES:
        return None
    awarded_at = _award_time(engine, project.id)
    awarded = money(project.data.get("amount_awarded"))
    recipient = _organisation(engine, "provider", project.data.get("provider"), options)
    funder = _organisation(engine, "hub", _purchaser(engine, project.data), options)
    if awarded_at is None or awarded is None or recipient is None or funder is None:
        return None
    title = str(project.data.get("title") or project.id)
    record: dict[str, Any] = {
        "id": f"{options.grant_prefix}-{project.id}",
        "title": title,
        "description": _description(engine, project),
        "currency": options.currency,
        "amountAwarded": awarded,
        "awardDate": iso_utc(awarded_at),
        "recipientOrganization": [recipient],
        "fundingOrganization": [funder],
        "dateModified": iso_utc(project.updated_at),
    }
    record.update(_optional(engine, project))
    record["activityStatus"] = _activity_status(project.state)
    return record


def _purchaser(engine: Engine, data: Mapping[str, Any]) -> Any:
    """The funder: the purchasing hub, else the call's hub, else the endorsing hub."""
    if data.get("purchaser"):
        return data["purchaser"]
    call = (
        engine.store.get_entity("call", str(data.get("call") or "")) if data.get("call") else None
    )
    if call is not None and call.data.get("hub"):
        return call.data["hub"]
    return data.get("hub")


def _description(engine: Engine, project: Project) -> str:
    """The application's summary (or description); else a sentence made from its facts."""
    data = project.data
    given = _first(data, "summary", "description")
    if given:
        return str(given)
    domain = str(data.get("domain") or "service").replace("_", " ")
    provider = _organisation(engine, "provider", data.get("provider"), ExportOptions())
    by = f" by {provider['name']}" if provider else ""
    return f"Purchased {domain} service{by}, call {data.get('call') or '-'}."


def _location(data: Mapping[str, Any]) -> dict[str, str] | None:
    code = data.get("beneficiary_location")
    if isinstance(code, str) and code:
        name = str(data.get("beneficiary_location_name") or code)
        return {"name": name, "geoCode": code, "countryCode": "CN"}
    location = data.get("location")  # a free-text place of older data
    if isinstance(location, str) and location:
        return {"name": location, "countryCode": "CN"}
    return None


def _warn_default_prefix(options: ExportOptions | None) -> None:
    if (options or ExportOptions()).grant_prefix == DEFAULT_GRANT_PREFIX:
        warnings.warn(
            f"360Giving ids use the placeholder prefix {DEFAULT_GRANT_PREFIX!r}; pass "
            "ExportOptions(grant_prefix=...) with the prefix 360Giving registered for you",
            DefaultPrefixWarning,
            stacklevel=3,
        )


def _optional(engine: Engine, project: Project) -> dict[str, Any]:
    data = project.data
    out: dict[str, Any] = {}
    applied = money(data.get("amount_requested"))
    if applied is not None:
        out["amountAppliedFor"] = applied
    disbursed = money(data.get("amount_disbursed"))
    if disbursed is None:
        disbursed = _disbursed(project)
    if disbursed is not None:
        out["amountDisbursed"] = disbursed
    planned = _planned(data)
    if planned:
        out["plannedDates"] = [planned]
    programme = _programme(engine, data)
    if programme:
        out["grantProgramme"] = [programme]
    domain = data.get("domain")
    if isinstance(domain, str) and domain:
        out["classifications"] = [
            {"vocabulary": "grantflow-service-domain", "code": domain, "title": domain}
        ]
    location = _location(data)
    if location is not None:
        out["beneficiaryLocation"] = [location]
    return out


def _planned(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return the contracted term when signed, else the dates planned in the application."""
    start = _day(_first(data, "term_start", "planned_start"))
    end = _day(_first(data, "term_end", "planned_end"))
    if not start:
        return {}
    return {"startDate": start, "endDate": end} if end else {"startDate": start}


def _programme(engine: Engine, data: Mapping[str, Any]) -> dict[str, str] | None:
    for kind in ("brand", "call"):
        ref = data.get(kind)
        if isinstance(ref, str) and ref:
            entity = engine.store.get_entity(kind, ref)
            name = entity.data.get("name") if entity is not None else None
            return {"code": ref, "title": str(name or ref)}
    return None


def _activity_status(state: str) -> dict[str, str]:
    code = IATI_STATUS[state]
    assert code is not None, "only awarded projects have a grant"
    return {"vocabulary": _IATI_VOCABULARY, "code": str(code), "name": _IATI_NAMES[code]}


def grants(
    engine: Engine, options: ExportOptions | None = None, *, progress: Progress | None = None
) -> Iterator[dict[str, Any]]:
    """Yield a 360Giving grant for every awarded project that has the required fields.

    An awarded project without an award amount, provider, hub or accepted ``sign``
    entry cannot be a valid 360Giving grant and is skipped. `progress` is called with 1
    after each awarded project is read, skipped or not.
    """
    for project in _full_projects(engine, awarded_only=True, progress=progress):
        record = grant(engine, project, options)
        if record is not None:
            yield record


def project_row(
    engine: Engine, project: Project, options: ExportOptions | None = None
) -> dict[str, Any]:
    """Return one JSONL record: the project's id, state, IATI status, data and grant view."""
    options = options or ExportOptions()
    return {
        "project_id": project.id,
        "state": project.state,
        "iatiActivityStatus": iati_status(project.state),
        "version": project.version,
        "createdAt": iso_utc(project.created_at),
        "updatedAt": iso_utc(project.updated_at),
        "data": dict(project.data),
        "records": [
            {"kind": r.kind, "id": r.id, "seq": r.seq, "data": dict(r.data)}
            for r in project.records
        ],
        "grant": grant(engine, project, options),
    }


# -- writers ---------------------------------------------------------------------------


def write_jsonl(
    engine: Engine,
    out: TextIO,
    options: ExportOptions | None = None,
    *,
    progress: Progress | None = None,
) -> int:
    """Write every project as one JSON line (see `project_row`); return how many.

    `progress` is called with 1 after each project.
    """
    count = 0
    for project in _full_projects(engine, awarded_only=False, progress=progress):
        out.write(_dumps(project_row(engine, project, options)))
        out.write("\n")
        count += 1
    return count


def write_360giving_json(
    engine: Engine,
    out: TextIO,
    options: ExportOptions | None = None,
    *,
    publisher: str = "grantflow",
    now: datetime | None = None,
    progress: Progress | None = None,
) -> int:
    """Write a 360Giving grant package (``{"grants": [...]}``); return the number of grants.

    The package is written grant by grant. With no awarded project, ``grants`` is empty,
    which the 360Giving package schema rejects (it needs at least one grant). `progress`
    is called with 1 after each awarded project. Warns (`DefaultPrefixWarning`) when the
    ids would use the placeholder prefix.
    """
    _warn_default_prefix(options)
    stamp = iso_utc(now or datetime.now(UTC))
    head = {"version": "1.4", "publisher": {"name": publisher}, "modified": stamp}
    out.write(_dumps(head)[:-1] + ',"grants":[')
    count = 0
    for record in grants(engine, options, progress=progress):
        out.write(("," if count else "") + "\n" + _dumps(record))
        count += 1
    out.write("\n]}\n")
    return count


def write_360giving_csv(
    engine: Engine,
    out: TextIO,
    options: ExportOptions | None = None,
    *,
    progress: Progress | None = None,
) -> int:
    """Write awarded projects as a flat 360Giving CSV (`CSV_COLUMNS`); return how many.

    `progress` is called with 1 after each awarded project. Warns
    (`DefaultPrefixWarning`) when the ids would use the placeholder prefix.
    """
    _warn_default_prefix(options)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for record in grants(engine, options, progress=progress):
        writer.writerow(_flatten(record))
        count += 1
    return count


def _flatten(record: Mapping[str, Any]) -> list[str]:
    """Return a grant's cells in `CSV_COLUMNS` order (first item of each list field)."""

    def first(name: str) -> Mapping[str, Any]:
        items: Sequence[Mapping[str, Any]] = record.get(name) or [{}]
        return items[0]

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    planned, recipient = first("plannedDates"), first("recipientOrganization")
    funder, programme = first("fundingOrganization"), first("grantProgramme")
    domain, place = first("classifications"), first("beneficiaryLocation")
    status = record.get("activityStatus") or {}
    cells = [
        record["id"],
        record["title"],
        record["description"],
        record["currency"],
        record.get("amountAppliedFor"),
        record["amountAwarded"],
        record.get("amountDisbursed"),
        record["awardDate"],
        planned.get("startDate"),
        planned.get("endDate"),
        recipient.get("id"),
        recipient.get("name"),
        funder.get("id"),
        funder.get("name"),
        programme.get("code"),
        programme.get("title"),
        domain.get("vocabulary"),
        domain.get("code"),
        domain.get("title"),
        place.get("name"),
        place.get("countryCode"),
        record.get("dateModified"),
        status.get("code"),
    ]
    return [text(cell) for cell in cells]


def _dumps(value: Any) -> str:
    """Encode `value` as compact JSON, writing `Decimal` as a JSON number (never a float)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        items = (json.dumps(str(k), ensure_ascii=False) + ":" + _dumps(v) for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dumps(v) for v in value) + "]"
    if isinstance(value, datetime):
        return json.dumps(iso_utc(value))
    if isinstance(value, date):
        return json.dumps(value.isoformat())
    return json.dumps(value, ensure_ascii=False)
