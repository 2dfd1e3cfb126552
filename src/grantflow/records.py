"""Project data and records as typed values, and `Directory` for the reference data.

Records travel as JSON-compatible mappings (``model.model_dump(mode="json")``) and are
read back with ``Model.model_validate(record.data)``; money comes back as `Decimal`
with two places, whatever the store. Reference data (hubs, providers, calls, brands,
people) lives beside the projects as `Entity` rows, written through `Directory`.

>>> code = "51110000" + "MJ0000001"
>>> full = code + credit_code_check(code)
>>> full, is_credit_code(full)
('51110000MJ00000019', True)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from grantflow.models import Entity, Identifier

if TYPE_CHECKING:
    from grantflow._engine import Engine
    from grantflow.persistence import Store, StoreReader

__all__ = [
    "Affiliation",
    "Amendment",
    "AmendmentDecision",
    "AmendmentRequest",
    "Application",
    "Approval",
    "Assessment",
    "BUDGET_LINES",
    "Brand",
    "BudgetLine",
    "BudgetLineName",
    "Call",
    "Clawback",
    "ConflictDeclaration",
    "Contract",
    "CreditCode",
    "Directory",
    "Disbursement",
    "DivisionCode",
    "Evaluation",
    "Expenditure",
    "Hub",
    "HubKind",
    "Installment",
    "Money",
    "Objection",
    "ObjectionRuling",
    "Person",
    "ProgressReport",
    "Provider",
    "RectificationOrder",
    "RefundDemand",
    "RefundPayment",
    "Review",
    "SERVICE_DOMAINS",
    "Sanction",
    "ServiceDomain",
    "ServiceRecord",
    "Settlement",
    "credit_code_check",
    "hub_ancestors",
    "hub_subtree",
    "is_credit_code",
    "money",
]

# -- the unified social credit code (GB 32100-2015) ----------------------------------------

_CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_check(first17: str) -> str:
    """Return the check character (GB 32100-2015) for the first 17 characters of a code.

    Raises `ValueError` on a wrong length or a character outside the code's alphabet.
    """
    if len(first17) != 17 or any(ch not in _CODE_CHARS for ch in first17):
        raise ValueError("need 17 characters from 0-9 and A-Y without I, O, S, V, Z")
    total = sum(_CODE_CHARS.index(ch) * w for ch, w in zip(first17, _CODE_WEIGHTS, strict=True))
    return _CODE_CHARS[(31 - total % 31) % 31]


def is_credit_code(code: str) -> bool:
    """Return whether `code` is a well-formed 18-character code with a correct check character."""
    if len(code) != 18 or any(ch not in _CODE_CHARS for ch in code) or not code[2:8].isdigit():
        return False
    return credit_code_check(code[:17]) == code[17]


def _credit_code(value: str) -> str:
    value = value.strip().upper()
    if not is_credit_code(value):
        raise ValueError("not a valid unified social credit code (18 characters, check char)")
    return value


CreditCode = Annotated[str, AfterValidator(_credit_code)]

# -- money ---------------------------------------------------------------------------------

_CENT = Decimal("0.01")


def money(value: Decimal | int | str) -> Decimal:
    """Return `value` as a `Decimal` with exactly two places; `ValueError` if it has more."""
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError("money must be finite")
    if amount != amount.quantize(_CENT, ROUND_HALF_UP):
        raise ValueError("money has at most two decimal places (fen)")
    return amount.quantize(_CENT)


def _money(value: Decimal) -> Decimal:
    return money(value)


#: A non-negative amount in yuan with two places; floats are refused (strict Decimal input).
Money = Annotated[Decimal, Field(ge=0, allow_inf_nan=False), AfterValidator(_money)]

ServiceDomain = Literal[
    "skills_training",
    "hardship_aid",
    "occupational_safety",
    "career_development",
    "children_education",
    "mental_health",
    "legal_aid",
]
#: The service domains of DOMAIN.md section 1.
SERVICE_DOMAINS: tuple[str, ...] = get_args(ServiceDomain)
BudgetLineName = Literal[
    "personnel",
    "activities",
    "experts",
    "training",
    "publicity",
    "administration",
    "evaluation",
]
#: Budget lines of a project.
BUDGET_LINES: tuple[str, ...] = get_args(BudgetLineName)
HubKind = Literal["city", "district", "street", "industry_union", "association"]


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _reject_floats(data: Any) -> Any:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, float):
                raise ValueError(f"{key}: floats are not exact; pass Decimal, int or str")
    return data


class _Record(_Value):
    @model_validator(mode="before")
    @classmethod
    def _floats(cls, data: Any) -> Any:
        return _reject_floats(data)


# -- reference data ------------------------------------------------------------------------


class Hub(_Record):
    """A purchasing body in the union tree (二级枢纽); `parent` is ``None`` only for the root."""

    id: Identifier
    name: str
    kind: HubKind
    parent: Identifier | None = None


class Provider(_Record):
    """A provider organisation (承接主体) with its unified social credit code."""

    id: Identifier
    name: str
    credit_code: CreditCode
    annual_report_passed: bool = True
    penalties: tuple[date, ...] = ()


class Call(_Record):
    """A call for applications: year, window, budget, and the versions it pins."""

    id: Identifier
    hub: Identifier
    year: int = Field(ge=2000, le=2200)
    opens: datetime
    closes: datetime
    budget: Money
    rubric_versions: dict[str, int] = Field(default_factory=dict)
    policy_version: str | None = None


class Brand(_Record):
    """A brand project (品牌项目): a theme grouping well-performing projects."""

    id: Identifier
    name: str
    name_zh: str = ""
    domain: ServiceDomain | None = None


class Affiliation(_Record):
    """An organisation a person worked for or directed; `until` ``None`` means still there."""

    organisation: Identifier
    until: date | None = None
    role: str = "staff"


class Person(_Record):
    """A reviewer, evaluator or staff member, with past affiliations for conflict checks."""

    id: Identifier
    name: str
    organisation: Identifier | None = None
    affiliations: tuple[Affiliation, ...] = ()
    relatives_at: tuple[Identifier, ...] = ()


# -- project data --------------------------------------------------------------------------


#: An administrative division code (GB/T 2260, 行政区划代码): six digits, or nine/twelve
#: for townships and villages.
DivisionCode = Annotated[str, Field(pattern=r"^\d{6}(\d{3}(\d{3})?)?$")]


class Application(_Record):
    """What a provider submits: the project's data at ``submit``.

    `hub` is the endorsing hub (推荐枢纽); `purchaser` is the hub that buys and pays (the
    funder in exports); when absent, ``submit`` takes the call's hub. `summary` is the
    public description of the project; `beneficiary_location` the administrative
    division (GB/T 2260 code) its beneficiaries live in.
    """

    title: str = Field(min_length=1)
    domain: ServiceDomain
    provider: Identifier
    hub: Identifier
    call: Identifier
    purchaser: Identifier | None = None
    brand: Identifier | None = None
    summary: str = ""
    beneficiary_location: DivisionCode | None = None
    beneficiary_location_name: str = ""
    amount_requested: Money
    planned_start: date
    planned_end: date
    target_activities: int = Field(default=0, ge=0)
    target_person_times: int = Field(default=0, ge=0)
    description: str = ""

    @model_validator(mode="after")
    def _dates(self) -> Application:
        if self.planned_end < self.planned_start:
            raise ValueError("planned_end is before planned_start")
        return self


class ConflictDeclaration(_Record):
    """A reviewer's or evaluator's conflict-of-interest declaration.

    ``declared=False`` states that the signer has no conflict; ``True`` declares one (the
    review then does not count). A review without any declaration does not count either.
    """

    declared: bool = False
    note: str = ""


class Review(_Record):
    """An expert's approval review, pinned to the rubric version it was scored with."""

    reviewer: Identifier
    rubric: str = "approval"
    rubric_version: int = Field(ge=1)
    scores: dict[str, Decimal]
    #: The reviewer's explicit declaration; ``None`` (none made) means the review is not counted.
    conflict: ConflictDeclaration | None = None
    comment: str = ""


class Approval(_Record):
    """Recorded by ``approve``: who approved, the panel score and the recommended amount."""

    approver: Identifier
    approver_organisation: Identifier | None = None
    score: Decimal
    recommended_amount: Money
    reviews_counted: tuple[str, ...]
    approved_at: datetime


class Objection(_Record):
    """An objection raised during publicity (公示异议)."""

    raised_by: str
    grounds: str = Field(min_length=1)


class ObjectionRuling(_Record):
    """The purchaser's ruling on an objection: upheld or dismissed."""

    objection: Identifier
    upheld: bool
    note: str = ""


class Evaluation(_Record):
    """A third-party evaluation: mid-term, re-check or final, scored on a pinned rubric."""

    stage: Literal["midterm", "recheck", "final"]
    evaluator: Identifier
    organisation: Identifier
    rubric: str
    rubric_version: int = Field(ge=1)
    scores: dict[str, Decimal]
    findings: tuple[str, ...] = ()
    progress_percent: Decimal | None = Field(default=None, ge=0, le=100)
    conflict: ConflictDeclaration = ConflictDeclaration()


class RectificationOrder(_Record):
    """A corrective order (整改通知): the issues and the deadline."""

    issues: tuple[str, ...] = Field(min_length=1)
    deadline: date


class ProgressReport(_Record):
    """A provider's periodic progress report (进度报告) for one reporting period.

    Periods are numbered from 1 and run `Policy.progress_report_months` from the contract
    start; the report of a period is due `Policy.progress_report_working_days` working
    days after the period ends (see docs/time.md).
    """

    period: int = Field(ge=1)
    summary: str = Field(min_length=1)
    progress_percent: Decimal | None = Field(default=None, ge=0, le=100)


class Contract(_Record):
    """A model contract signed at ``sign``: purchase of service, supervision or evaluation.

    `counterparty` is the organisation the purchaser contracts: the provider for the
    purchase contract, the independent third party for the supervision contract (who
    also evaluates, unless an ``evaluation`` contract names another third party).
    """

    kind: Literal["purchase", "supervision", "evaluation"]
    number: str = Field(min_length=1)
    signed_on: date
    amount: Money
    start: date
    end: date
    counterparty: Identifier | None = None
    parties: tuple[str, ...] = ()


class BudgetLine(_Record):
    """A budget line of the contracted project."""

    line: BudgetLineName
    amount: Money


class Installment(_Record):
    """A scheduled installment: number, share in percent, amount, the event releasing it."""

    number: int = Field(ge=1)
    share: Decimal
    amount: Money
    released_by: str


class Disbursement(_Record):
    """Money paid to the provider for one installment."""

    installment: int = Field(ge=1)
    amount: Money
    released_by: Identifier
    at: datetime


class Expenditure(_Record):
    """One spending item of the provider, with its voucher and invoice number."""

    date: date
    line: BudgetLineName
    amount: Money
    invoice_number: str = ""
    voucher: str = ""
    category: str = "ordinary"
    description: str = ""


class ServiceRecord(_Record):
    """Activities held and person-times served, in a service domain."""

    date: date
    domain: ServiceDomain
    activities: int = Field(ge=0)
    person_times: int = Field(ge=0)
    note: str = ""


class Amendment(_Record):
    """A change to a contracted project: a budget move beyond tolerance or an extension.

    Providers ask with an `AmendmentRequest`; the purchaser's `AmendmentDecision` that
    approves it writes the `Amendment` record the budget and the term are read from.
    """

    kind: Literal["line_move", "extension", "other"]
    reason: str = Field(min_length=1)
    from_line: BudgetLineName | None = None
    to_line: BudgetLineName | None = None
    amount: Money | None = None
    new_end: date | None = None


class AmendmentRequest(Amendment):
    """A provider's request to amend its contract (a line move or an extension)."""


class AmendmentDecision(_Record):
    """The purchaser's decision on an amendment request: approved or refused, with a note."""

    request: Identifier
    approved: bool
    note: str = ""


class Assessment(_Record):
    """Recorded at ``assess``: the provider's grade for the call year, read in later years.

    A 不合格 grade bars the provider for `Policy.fail_bar_years`; a good grade gives the
    next year's review the bonus of `Policy.grade_priority`.
    """

    provider: Identifier
    year: int | None = None
    grade: Literal["excellent", "good", "pass", "fail"]
    score: Decimal


class Sanction(_Record):
    """A penalty on a provider (blocks its applications for the policy's look-back)."""

    provider: Identifier
    kind: str = "penalty"
    on: date
    reason: str = Field(min_length=1)


class Settlement(_Record):
    """Recorded at ``close``: what is due against what was paid, balanced to the fen.

    ``final_installment`` is the eligible spend not yet paid for, less what the grade
    withholds (``withheld``); ``refund`` is what was paid beyond the eligible spend;
    ``due = eligible - withheld``. So ``disbursed - refund == due <= awarded``.
    """

    awarded: Money
    eligible: Money
    disbursed: Money
    final_installment: Money
    withheld: Money
    due: Money
    refund: Money
    grade: str


class Clawback(_Record):
    """Recorded at ``terminate``: what the provider must return (paid beyond eligible spend)."""

    eligible: Money
    disbursed: Money
    amount: Money
    reason: str


class RefundDemand(_Record):
    """A demand that the provider pay money back, by a due date on the working-day calendar.

    Written by ``close`` (an overpayment) or ``terminate`` (a clawback); `status` is
    ``open`` when demanded. `RefundPayment` records settle it; the project's
    ``refund_status`` data says ``settled`` once they add up to `amount`.
    """

    amount: Money
    due_on: date
    reason: Literal["settlement", "clawback"]
    status: Literal["open", "settled"] = "open"


class RefundPayment(_Record):
    """Money the provider paid back against a refund demand, booked by the purchaser."""

    demand: Identifier = "refund"
    amount: Money
    paid_on: date
    reference: str = Field(min_length=1)


# -- the directory of reference data -------------------------------------------------------

_M = TypeVar("_M", bound=BaseModel)


class Directory:
    """Typed access to the reference data (hubs, providers, calls, brands, people) of a store.

    >>> import grantflow
    >>> directory = Directory(grantflow.open())
    >>> directory.add_hub(Hub(id="city", name="City federation", kind="city"))
    >>> directory.add_hub(Hub(id="d1", name="District 1", kind="district", parent="city"))
    >>> directory.hub_subtree("city")
    ['city', 'd1']
    """

    def __init__(self, source: Engine | Store) -> None:
        from grantflow._engine import Engine

        self._store: Store = source.store if isinstance(source, Engine) else source

    def add_hub(self, hub: Hub) -> None:
        """Store a hub; its parent must already be there (``ValueError`` otherwise)."""
        if hub.parent is not None and self._store.get_entity("hub", hub.parent) is None:
            raise ValueError(f"hub {hub.id!r}: unknown parent {hub.parent!r}")
        self._put("hub", hub.id, hub, parent=hub.parent)

    def add_provider(self, provider: Provider) -> None:
        """Store a provider organisation."""
        self._put("provider", provider.id, provider)

    def add_call(self, call: Call) -> None:
        """Store a call for applications."""
        self._put("call", call.id, call, parent=call.hub)

    def add_brand(self, brand: Brand) -> None:
        """Store a brand project."""
        self._put("brand", brand.id, brand)

    def add_person(self, person: Person) -> None:
        """Store a person (reviewer, evaluator, staff)."""
        self._put("person", person.id, person)

    def hub(self, hub_id: str) -> Hub | None:
        """Return a hub, or ``None``."""
        return self._get("hub", hub_id, Hub)

    def provider(self, provider_id: str) -> Provider | None:
        """Return a provider, or ``None``."""
        return self._get("provider", provider_id, Provider)

    def call(self, call_id: str) -> Call | None:
        """Return a call, or ``None``."""
        return self._get("call", call_id, Call)

    def brand(self, brand_id: str) -> Brand | None:
        """Return a brand, or ``None``."""
        return self._get("brand", brand_id, Brand)

    def person(self, person_id: str) -> Person | None:
        """Return a person, or ``None``."""
        return self._get("person", person_id, Person)

    def hubs(self, *, parent: str | None = None) -> Iterator[Hub]:
        """Yield every hub (or the children of `parent`) in id order."""
        for entity in self._store.entities("hub", parent=parent):
            yield Hub.model_validate(dict(entity.data))

    def hub_subtree(self, root: str) -> list[str]:
        """Return the ids of `root` and every hub below it, breadth first."""
        return hub_subtree(self._store, root)

    def hub_ancestors(self, hub_id: str) -> list[str]:
        """Return `hub_id` and the ids of the hubs above it, up to the root."""
        return hub_ancestors(self._store, hub_id)

    def _put(self, kind: str, eid: str, value: BaseModel, parent: str | None = None) -> None:
        data = value.model_dump(mode="json")
        self._store.put_entity(Entity(kind=kind, id=eid, parent=parent, data=data))

    def _get(self, kind: str, eid: str, model: type[_M]) -> _M | None:
        entity = self._store.get_entity(kind, eid)
        return None if entity is None else model.model_validate(dict(entity.data))


# -- the hub tree --------------------------------------------------------------------------
# One walk down and one walk up, shared by the directory, the portfolio and the authority
# rules (which read the tree through the decision's reader, so bulk runs cache it).


def hub_subtree(reader: StoreReader, root: str) -> list[str]:
    """Return the ids of `root` and every hub below it, breadth first (each once)."""
    found: list[str] = []
    seen = {root}
    queue = deque([root])
    while queue:
        current = queue.popleft()
        found.append(current)
        for entity in reader.entities("hub", parent=current):
            if entity.id not in seen:
                seen.add(entity.id)
                queue.append(entity.id)
    return found


def hub_ancestors(reader: StoreReader, hub_id: str) -> list[str]:
    """Return `hub_id` and the hubs above it, nearest first; ``[]`` for an unknown hub.

    A purchaser's authority covers its subtree, so whoever acts for a hub on this path
    acts for the hub itself. A parent loop (tampered reference data) ends the walk.
    """
    path: list[str] = []
    current: str | None = hub_id
    while current is not None and current not in path:
        entity = reader.get_entity("hub", current)
        if entity is None:
            break
        path.append(current)
        current = entity.parent
    return path
