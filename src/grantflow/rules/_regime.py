"""Helpers the default rules share: reading typed records, sums of money, calendar arithmetic.

Every reader parses through the `grantflow.records` models, so a record read back from
any store (where decimals and dates are strings) gives the same values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from grantflow._canonical import thaw
from grantflow._values import decimal_or_zero
from grantflow._values import local_date as _local_date
from grantflow._values import text as text  # noqa: PLC0414 - re-exported for the rule families
from grantflow.calendar import WorkingCalendar
from grantflow.errors import CalendarUnavailable
from grantflow.messages import problem, refusal
from grantflow.models import Actor, Project, Record, Verdict
from grantflow.obligations import add_months as add_months  # noqa: PLC0414 - re-exported
from grantflow.obligations import contract_term
from grantflow.policy import Policy
from grantflow.records import (
    Amendment,
    Approval,
    BudgetLine,
    Contract,
    Disbursement,
    Evaluation,
    Expenditure,
    Installment,
)
from grantflow.rules._base import Parsed, RuleContext

M = TypeVar("M", bound=BaseModel)
#: States in which a provider spends and records expenditures and services.
IMPLEMENTATION_STATES = ("contracted", "midterm", "rectification", "assessed")
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def load(model: type[M], data: Any, memo: Parsed | None = None) -> M | None:
    """Parse `data` as `model`; ``None`` when it does not fit.

    With `memo` (a rule's ``ctx.parsed``) the same `data` object is parsed only once
    per decision.
    """
    if memo is not None:
        return memo.get(data, model, lambda: load(model, data))
    try:
        # Record data is plain JSON already; only read-only evidence needs thawing.
        return model.model_validate(data if type(data) is dict else thaw(data))
    except ValidationError:
        return None


def rows(
    project: Project, kind: str, model: type[M], memo: Parsed | None = None
) -> list[tuple[Record, M]]:
    """Return the project's `kind` records that parse as `model`, oldest first.

    With `memo` (a rule's ``ctx.parsed``) each (project, kind, model) is worked out
    only once per decision, and each record's data parsed only once while the core
    keeps it (`Parsed.lasting`).
    """
    if memo is not None:
        return list(
            memo.get(project, (kind, model), lambda: tuple(_rows(project, kind, model, memo)))
        )
    return _rows(project, kind, model, None)


def _rows(
    project: Project, kind: str, model: type[M], memo: Parsed | None
) -> list[tuple[Record, M]]:
    found = []
    parse: Callable[[type[M], Any], M | None]
    if memo is None:
        of_kind, parse = project.records_of(kind), load
    else:
        grouped = memo.get(project, _BY_KIND, lambda: _by_kind(project))
        of_kind, parse = grouped.get(kind, ()), LastingLoad(memo)
    for record in of_kind:
        value = parse(model, record.data)
        if value is not None:
            found.append((record, value))
    return found


#: The `Parsed` key of a project's records grouped by kind (one pass per decision).
_BY_KIND = "records by kind"


def _by_kind(project: Project) -> dict[str, tuple[Record, ...]]:
    grouped: dict[str, list[Record]] = {}
    for record in project.records:
        grouped.setdefault(record.kind, []).append(record)
    return {kind: tuple(records) for kind, records in grouped.items()}


def values(project: Project, kind: str, model: type[M], memo: Parsed | None = None) -> list[M]:
    """Return the parsed values of the project's `kind` records, oldest first."""
    return [value for _record, value in rows(project, kind, model, memo)]


def make_record(kind: str, record_id: str, value: BaseModel) -> Record:
    """Build a record whose data is the JSON form of `value`."""
    # Record's data validator makes the dump plain JSON: no need to do it twice.
    return Record(kind=kind, id=record_id, data=value.model_dump(mode="json"))


_DATE: TypeAdapter[date] = TypeAdapter(date)


def as_date(value: Any) -> date | None:
    """Parse a date (a `date` or ISO text); ``None`` when it is not one."""
    try:
        return _DATE.validate_python(value)
    except ValidationError:
        return None


def dec(value: Any) -> Decimal:
    """Return `value` as a Decimal (0 when absent or malformed)."""
    return decimal_or_zero(value)


def total(amounts: Iterable[Decimal]) -> Decimal:
    """Sum money to two places."""
    return sum(amounts, ZERO).quantize(CENT)


def percent_of(amount: Decimal, share: Decimal) -> Decimal:
    """Return `share` % of `amount`, rounded half-up to the fen."""
    return (amount * share / 100).quantize(CENT, ROUND_HALF_UP)


def provider_of(project: Project) -> str:
    """Return the provider organisation of a project ('' when unknown)."""
    return text(project.data, "provider")


def is_own(actor: Actor, project: Project) -> bool:
    """Return whether `actor` acts for the project's provider."""
    provider = provider_of(project)
    return bool(provider) and provider in {actor.organisation, actor.id}


def pinned_version(project: Project, rubric_id: str, policy: Policy) -> int:
    """Return the rubric version the project is pinned to."""
    pins = project.data.get("rubric_versions") or {}
    return int(pins.get(rubric_id, policy.rubric_versions.get(rubric_id, 1)))


def approval(project: Project, memo: Parsed | None = None) -> Approval | None:
    """Return the project's approval record, if approved."""
    found = values(project, "approval", Approval, memo)
    return found[-1] if found else None


def contracts(project: Project, memo: Parsed | None = None) -> dict[str, Contract]:
    """Return the project's contracts by kind."""
    return {c.kind: c for c in values(project, "contract", Contract, memo)}


def awarded(project: Project, memo: Parsed | None = None) -> Decimal:
    """Return the contracted amount (0 before signing)."""
    purchase = contracts(project, memo).get("purchase")
    return purchase.amount if purchase else ZERO


def installments(project: Project, memo: Parsed | None = None) -> list[Installment]:
    """Return the installment schedule."""
    return values(project, "installment", Installment, memo)


def disbursements(project: Project, memo: Parsed | None = None) -> list[Disbursement]:
    """Return the disbursements made."""
    return values(project, "disbursement", Disbursement, memo)


def disbursed(project: Project, memo: Parsed | None = None) -> Decimal:
    """Return the money paid out so far."""
    return total(d.amount for d in disbursements(project, memo))


def expenditures(project: Project, memo: Parsed | None = None) -> list[Expenditure]:
    """Return the accepted expenditures."""
    return values(project, "expenditure", Expenditure, memo)


def eligible_spend(project: Project, memo: Parsed | None = None) -> Decimal:
    """Return the sum of accepted expenditures."""
    return total(e.amount for e in expenditures(project, memo))


def budget(project: Project, memo: Parsed | None = None) -> dict[str, Decimal]:
    """Return each budget line's amount after line-move amendments."""
    lines: dict[str, Decimal] = {}
    for line in values(project, "budget_line", BudgetLine, memo):
        lines[line.line] = lines.get(line.line, ZERO) + line.amount
    for amendment in values(project, "amendment", Amendment, memo):
        if amendment.kind == "line_move" and amendment.from_line and amendment.to_line:
            moved = amendment.amount or ZERO
            lines[amendment.from_line] = lines.get(amendment.from_line, ZERO) - moved
            lines[amendment.to_line] = lines.get(amendment.to_line, ZERO) + moved
    return lines


def term(project: Project, memo: Parsed | None = None) -> tuple[date, date] | None:
    """Return the contract term (start, end), extensions included; ``None`` before signing."""
    if memo is not None:
        return memo.get(project, "term", lambda: contract_term(project, load=LastingLoad(memo)))
    return contract_term(project)


class LastingLoad:
    """`load` of a stored record's data, kept across decisions (`Parsed.lasting`).

    The same answers `rows` keeps: a contract parsed for one rule is not parsed again
    for the contract term another reads, nor at the next decision on the same records.
    """

    __slots__ = ("_memo",)

    def __init__(self, memo: Parsed) -> None:
        self._memo = memo

    def __call__(self, model: type[M], data: Any) -> M | None:
        """Parse `data` as `model` (``None`` when it does not fit), once while kept."""
        return self._memo.lasting(data, model, functools.partial(load, model, data))


def evaluations(project: Project, *stages: str, memo: Parsed | None = None) -> list[Evaluation]:
    """Return the project's evaluations of the given stages, oldest first."""
    return [e for e in values(project, "evaluation", Evaluation, memo) if e.stage in stages]


def local_date(moment: datetime, policy: Policy) -> date:
    """Return the calendar date of `moment` in the policy's time zone."""
    return _local_date(moment, policy.timezone)


def working_calendar(policy: Policy) -> WorkingCalendar:
    """Return the policy's working-day calendar (official Chinese calendar plus its days)."""
    return WorkingCalendar.for_policy(policy)


def calendar_refusal(exc: CalendarUnavailable, code: str = "calendar.unavailable") -> Verdict:
    """Refuse because a date the rule needs falls in a year without calendar data."""
    return refusal(code, key="calendar.unavailable", year=exc.year)


def record_problems(ctx: RuleContext, kind: str, valid: bool) -> list[dict[str, Any]]:
    """Problems of a provider's running-project record: when, well-formed.

    Whose it is (the applicant's) is `grantflow.rules.authority`'s to check.
    """
    found = []
    if ctx.source not in IMPLEMENTATION_STATES:
        found.append(problem("record.state", kind=kind, state=ctx.source))
    if not valid:
        found.append(problem("record.invalid", kind=kind))
    return found


def record_data(ctx: RuleContext) -> Mapping[str, Any]:
    """Return the data of the record being added (empty outside ``record.<kind>`` events)."""
    record = ctx.evidence.get("record") or {}
    data: Mapping[str, Any] = record.get("data") or {}
    return data
