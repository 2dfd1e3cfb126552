"""Obligations: a project's due dates, derived from its records, state and pinned policy.

The lifecycle declares them (`grantflow.states.ObligationDef`); `Schedule` computes them.
Everything here is a pure function of the project snapshot and its policy, so the
obligations of a project rebuilt from its audit chain (`Engine.replay`) equal those of
the stored project, and a SQL store can keep them in an index table written in the same
transaction as the entry that changed them (`Engine.due` reads it).

Dates are counted on the policy's working-day calendar (`grantflow.calendar`). When a
date falls in a year the official schedule does not cover yet (and the policy names no
day of it), weekends alone are counted and the obligation says ``provisional``.

>>> from datetime import date
>>> from grantflow.states import PURCHASED_SERVICE
>>> [o.name for o in PURCHASED_SERVICE.obligations][:3]
['publicity_end', 'midterm_due', 'progress_report']
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from grantflow._kept import Answer, Kept, Slot, held
from grantflow._values import local_date as _local_date
from grantflow.calendar import WorkingCalendar
from grantflow.errors import CalendarUnavailable
from grantflow.models import AuditEntry, Project, Record, trusted_fields
from grantflow.persistence import ObligationRow
from grantflow.policy import Policy
from grantflow.records import Amendment, Contract
from grantflow.states import CONDITIONS, Duration, Lifecycle, ObligationDef, TimerDef

__all__ = [
    "Obligation",
    "ObligationStatus",
    "Schedule",
    "TimerDue",
    "add_months",
    "contract_term",
    "local_date",
    "reporting_periods",
    "working_days_before",
]

#: ``open``: awaiting what meets it; ``met``: met; ``waived``: the project went another way.
ObligationStatus = Literal["open", "met", "waived"]

_M = TypeVar("_M", bound=BaseModel)
_DATE: TypeAdapter[date] = TypeAdapter(date)
_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)


class Obligation(BaseModel):
    """One due date of one project, and whether it is met.

    Attributes:
        project_id: the project.
        kind: the `ObligationDef` name (``progress_report``).
        key: unique within the project (``progress_report:2``, ``refund_due:refund``).
        due_on: the due date (in the policy's time zone).
        status: ``open``, ``met`` or ``waived``.
        started_seq: the audit entry (sequence number) that started it.
        met_by: what closed it: ``record:<kind>/<id>``, ``data:<key>`` or ``state:<state>``.
        hub: the project's hub (for ``due(hub=...)``).
        provisional: the calendar lacked official data for a year it counted in.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    project_id: str
    kind: str
    key: str
    due_on: date
    status: ObligationStatus
    started_seq: int
    met_by: str | None = None
    hub: str | None = None
    label: str = ""
    label_zh: str = ""
    provisional: bool = False

    def is_overdue(self, today: date) -> bool:
        """Whether it is still open after its due date, on `today`."""
        return self.status == "open" and self.due_on < today

    def to_row(self) -> ObligationRow:
        """The row a store indexes for it; its data is the JSON form (`model_dump`)."""
        # Spelled out (a test holds it equal to model_dump(mode="json")): every entry that
        # moves a contracted project rewrites its rows, so this runs in bulk.
        data = {
            "project_id": self.project_id,
            "kind": self.kind,
            "key": self.key,
            "due_on": self.due_on.isoformat(),
            "status": self.status,
            "started_seq": self.started_seq,
            "met_by": self.met_by,
            "hub": self.hub,
            "label": self.label,
            "label_zh": self.label_zh,
            "provisional": self.provisional,
        }
        return ObligationRow(
            project_id=self.project_id,
            key=self.key,
            kind=self.kind,
            due_on=self.due_on,
            status=self.status,
            hub=self.hub,
            data=data,
        )

    @classmethod
    def from_row(cls, row: ObligationRow) -> Obligation:
        """Rebuild the obligation a store indexed."""
        return cls.model_validate(dict(row.data))


@dataclass(frozen=True, slots=True)
class TimerDue:
    """One timer due to fire on one project: a (project, timer, due date) occurrence.

    `occurrence` names it for good (``<timer>:<obligation key>:<due date>``): the record
    a timer adds carries it, so the same occurrence never fires twice.
    """

    project_id: str
    timer: str
    obligation: str
    kind: str
    due_on: date
    fire_on: date
    action: str

    @property
    def occurrence(self) -> str:
        """The occurrence's permanent name."""
        return f"{self.timer}:{self.obligation}:{self.due_on.isoformat()}"

    def data(self) -> dict[str, Any]:
        """What the timer records (the system record's data, or the event's evidence)."""
        return {
            "timer": self.timer,
            "obligation": self.obligation,
            "kind": self.kind,
            "due_on": self.due_on.isoformat(),
            "fire_on": self.fire_on.isoformat(),
            "occurrence": self.occurrence,
        }


class Schedule:
    """The due dates and timers a lifecycle declares, computed for projects.

    Pure and thread-safe: the engine, the decision core and the sweep share one.
    """

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self.obligations = lifecycle.obligations
        self.timers = lifecycle.timers
        anchors = {a[0] for o in self.obligations if (a := o.anchor_record) is not None}
        if any(o.anchor_record is None for o in self.obligations):
            anchors |= {"contract"}
        self._anchor_kinds = frozenset(anchors)
        # Records whose arrival can start, move or meet an obligation.
        self._kinds = frozenset(
            {*anchors, *(o.met_by for o in self.obligations if o.met_by), "amendment"}
        )
        self._data_keys = frozenset(k for o in self.obligations for k, _v in o.met_data)
        self._by_name = {o.name: o for o in self.obligations}
        # Each definition with its record anchor, matched once (a regular expression).
        self._anchored = tuple((o, o.anchor_record) for o in self.obligations)
        self._parses = _KeptParses()

    def __bool__(self) -> bool:
        return bool(self.obligations)

    def __repr__(self) -> str:
        return f"Schedule({self.lifecycle.name!r}, obligations={len(self.obligations)})"

    # -- when the index must be rewritten ------------------------------------------------

    def touches(self, entry: AuditEntry, after: Project | None) -> bool:
        """Whether `entry` may change the obligations of the project it leaves as `after`.

        Cheap, so that bulk runs skip the work for records that start or meet nothing
        (expenditures, services, reviews) and for transitions of projects without any.
        """
        if not self.obligations or after is None or not entry.accepted:
            return False
        if entry.kind == "migrate":
            return True
        # Most entries carry no records and no data: test for emptiness before looping.
        records = entry.records
        if records and any(r.kind in self._kinds for r in records):
            return True
        data = entry.data
        if data and self._data_keys and not self._data_keys.isdisjoint(data):
            return True
        if entry.from_state != entry.to_state:
            held = after.records
            return bool(held) and any(r.kind in self._anchor_kinds for r in held)
        return False

    def moves_dates(self, project: Project, target: str) -> bool:
        """`touches` of an accepted fire taking `project` to `target` and adding nothing.

        Such an entry carries no records and no data: only a change of state can move a
        due date, and only on a project holding a record that anchors one.
        """
        if not self.obligations or project.state == target:
            return False
        return any(r.kind in self._anchor_kinds for r in project.records)

    def rows(self, project: Project, policy: Policy) -> tuple[ObligationRow, ...]:
        """The index rows of the project's obligations."""
        return tuple(o.to_row() for o in self.derive(project, policy))

    # -- obligations ---------------------------------------------------------------------

    def derive(self, project: Project, policy: Policy) -> tuple[Obligation, ...]:
        """Every obligation of `project` under `policy`, in declaration order, then key."""
        found: list[Obligation] = []
        # The project's records by kind, once: every definition looks some kind up, up
        # to three times (its anchor, the contract, what meets it).
        by_kind: dict[str, list[Record]] = {}
        for record in project.records:
            by_kind.setdefault(record.kind, []).append(record)
        # The contract term is parsed (pydantic) from the records once, not once per
        # definition anchored on it.
        term = contract_term(project, load=self._parses.load)
        for definition, source in self._anchored:
            if term is None if source is None else source[0] not in by_kind:
                continue  # nothing on the project starts it (no anchor record, no contract)
            found.extend(self._derive_one(definition, source, project, policy, term, by_kind))
        return tuple(found)

    def _derive_one(
        self,
        definition: ObligationDef,
        source: tuple[str, str] | None,
        project: Project,
        policy: Policy,
        term: tuple[date, date] | None,
        by_kind: Mapping[str, Sequence[Record]],
    ) -> Iterator[Obligation]:
        hub = project.data.get("hub")
        for key, anchor, seq, period in _anchors(definition, source, policy, term, by_kind):
            offset = _amount(definition.offset, policy)
            due, provisional = _add_working_days(anchor, offset, policy)
            status, met_by = _status(definition, project, seq, period, by_kind)
            # Every value is worked out here with its type: no validation needed.
            yield trusted_fields(
                Obligation,
                {
                    "project_id": project.id,
                    "kind": definition.name,
                    "key": key,
                    "due_on": due,
                    "status": status,
                    "started_seq": seq,
                    "met_by": met_by,
                    "hub": str(hub) if hub is not None else None,
                    "label": definition.label,
                    "label_zh": definition.label_zh,
                    "provisional": provisional,
                },
            )

    # -- timers --------------------------------------------------------------------------

    def lead_days(self, policy: Policy) -> int:
        """The most working days any ``before`` timer fires ahead of its due date."""
        leads = [_amount(t.working_days, policy) for t in self.timers if t.when == "before"]
        return max(leads, default=0)

    def timers_due(
        self,
        project: Project,
        policy: Policy,
        now: datetime,
        obligations: Sequence[Obligation] | None = None,
    ) -> list[TimerDue]:
        """The timer occurrences due on `project` at `now` that have not fired yet.

        A record timer has fired when the project holds its record (the record's
        ``occurrence``); an event timer's firing leaves the chain, which the sweep reads.
        """
        if not self.timers:
            return []
        today = local_date(now, policy)
        current = self.derive(project, policy) if obligations is None else obligations
        fired = _fired(project, self.timers)
        due: list[TimerDue] = []
        for timer in self.timers:
            if not all(CONDITIONS[c](project) for c in timer.requires):
                continue
            for obligation in current:
                if obligation.kind != timer.obligation or obligation.status != "open":
                    continue
                fire_on = _fire_on(timer, obligation.due_on, policy)
                if today < fire_on or (timer.when == "before" and today > obligation.due_on):
                    continue
                found = TimerDue(
                    project_id=project.id,
                    timer=timer.name,
                    obligation=obligation.key,
                    kind=obligation.kind,
                    due_on=obligation.due_on,
                    fire_on=fire_on,
                    action=timer.action,
                )
                if found.occurrence not in fired:
                    due.append(found)
        return due

    def timer(self, name: str) -> TimerDef | None:
        """The timer called `name`, or ``None``."""
        return next((t for t in self.timers if t.name == name), None)


def local_date(moment: datetime, policy: Policy) -> date:
    """Return the calendar date of `moment` in the policy's time zone."""
    return _local_date(moment, policy.timezone)


def add_months(day: date, months: int) -> date:
    """Return `day` moved by `months`, clamped to the month's last day.

    >>> add_months(date(2025, 1, 31), 1)
    datetime.date(2025, 2, 28)
    """
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, monthrange(year, month)[1]))


class _Loader(Protocol):
    def __call__(self, model: type[_M], data: Any) -> _M | None: ...


def contract_term(project: Project, *, load: _Loader | None = None) -> tuple[date, date] | None:
    """Return the contract term (start, end), extensions included; ``None`` before signing.

    `load` parses a record's data as a model (``None`` when it does not fit); a caller
    that keeps parses (a `Schedule`) passes its own.
    """
    parse: _Loader = load or _load
    purchase = None
    for record in project.records_of("contract"):
        contract = parse(Contract, record.data)
        if contract is not None and contract.kind == "purchase":
            purchase = contract
    if purchase is None:
        return None
    end = purchase.end
    for record in project.records_of("amendment"):
        amendment = parse(Amendment, record.data)
        if amendment is not None and amendment.kind == "extension" and amendment.new_end:
            end = max(end, amendment.new_end)
    return purchase.start, end


def _load(model: type[_M], data: Any) -> _M | None:
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


class _KeptParses:
    """Parses of record data kept by the data's identity, the data held with its answer.

    A stored record hands out the same data object while its row is unchanged (the
    stores keep the records they read, `SeenRows`), and a project after a change shares
    the records it had: so a project's contracts are parsed once, not at every change
    that moves its due dates. Bounded (`Kept`); a race between threads costs a parse.
    """

    __slots__ = ("_kept",)

    def __init__(self, limit: int = 4096) -> None:
        self._kept: Kept[Slot, Answer] = Kept(limit)

    def load(self, model: type[_M], data: Any) -> _M | None:
        """`model` parsed from `data`, or ``None`` when it does not fit."""
        kept = self._kept
        return held(kept.get, kept.put, data, model, lambda: _load(model, data))


def reporting_periods(start: date, end: date, months: int) -> list[tuple[int, date]]:
    """(number, last day) of each `months`-long period from `start` ending before `end`.

    >>> [str(end) for _n, end in reporting_periods(date(2025, 3, 15), date(2026, 3, 14), 3)]
    ['2025-06-15', '2025-09-15', '2025-12-15']
    """
    if months <= 0:
        return []
    found: list[tuple[int, date]] = []
    while (ends := add_months(start, (len(found) + 1) * months)) < end:
        found.append((len(found) + 1, ends))
    return found


def working_days_before(calendar: WorkingCalendar, day: date, days: int) -> date:
    """Return the `days`-th working day before `day` (`day` itself when `days` is 0)."""
    if days < 0:
        raise ValueError("days must not be negative")
    while days:
        day -= timedelta(days=1)
        days -= calendar.is_working_day(day)
    return day


# -- pieces ------------------------------------------------------------------------------


def _amount(value: Duration, policy: Policy) -> int:
    return value if isinstance(value, int) else int(getattr(policy, value))


def _calendars(policy: Policy) -> tuple[WorkingCalendar, WorkingCalendar]:
    official = WorkingCalendar.for_policy(policy)
    weekends = WorkingCalendar(holidays=policy.holidays, workdays=policy.workdays, official=False)
    return official, weekends


def _add_working_days(anchor: date, days: int, policy: Policy) -> tuple[date, bool]:
    try:
        return WorkingCalendar.for_policy(policy).add_working_days(anchor, days), False
    except CalendarUnavailable:
        _official, weekends = _calendars(policy)
        return weekends.add_working_days(anchor, days), True


def _fire_on(timer: TimerDef, due: date, policy: Policy) -> date:
    days = _amount(timer.working_days, policy)
    official, weekends = _calendars(policy)
    for calendar in (official, weekends):
        try:
            if timer.when == "before":
                return working_days_before(calendar, due, days)
            return calendar.add_working_days(due, days) + timedelta(days=1)
        except CalendarUnavailable:
            continue
    raise AssertionError("a weekends-only calendar covers every year")  # pragma: no cover


def _anchors(
    definition: ObligationDef,
    source: tuple[str, str] | None,
    policy: Policy,
    span: tuple[date, date] | None,
    by_kind: Mapping[str, Sequence[Record]],
) -> Iterator[tuple[str, date, int, int | None]]:
    """(key, anchor date, starting seq, period) of each obligation `definition` starts.

    `source` is the definition's `anchor_record`; `by_kind` the project's records by kind.
    """
    if source is not None:
        kind, field = source
        for record in by_kind.get(kind, ()):
            day = _as_date(record.data.get(field), policy)
            if day is not None:
                yield f"{definition.name}:{record.id}", day, record.seq, None
        return
    contract = next(
        (r for r in by_kind.get("contract", ()) if r.data.get("kind") == "purchase"), None
    )
    if span is None or contract is None:
        return
    start, end = span
    every = _amount(definition.every, policy)
    if every:
        for period, ends in reporting_periods(start, end, every):
            yield f"{definition.name}:{period}", ends, contract.seq, period
        return
    point = {
        "term.start": start,
        "term.middle": start + (end - start) / 2,
        "term.end": end,
    }[definition.anchor]
    yield definition.name, point, contract.seq, None


def _as_date(value: Any, policy: Policy) -> date | None:
    if isinstance(value, datetime):
        return local_date(value, policy)
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) > 10:
        try:
            return local_date(_DATETIME.validate_python(value), policy)
        except ValidationError:
            return None
    try:
        return _DATE.validate_python(value)
    except ValidationError:
        return None


def _status(
    definition: ObligationDef,
    project: Project,
    started: int,
    period: int | None,
    by_kind: Mapping[str, Sequence[Record]],
) -> tuple[Literal["open", "met", "waived"], str | None]:
    if definition.met_by:
        for record in by_kind.get(definition.met_by, ()):
            if record.seq > started and (period is None or _period(record) == period):
                return "met", f"record:{record.kind}/{record.id}"
    if definition.met_data and all(str(project.data.get(k)) == v for k, v in definition.met_data):
        return "met", "data:" + ",".join(k for k, _v in definition.met_data)
    if project.state in definition.met_in:
        return "met", f"state:{project.state}"
    if project.state in definition.open_in:
        return "open", None
    return "waived", f"state:{project.state}"


def _period(record: Record) -> int | None:
    value = record.data.get("period")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _fired(project: Project, timers: Sequence[TimerDef]) -> frozenset[str]:
    kinds = {t.record for t in timers if t.record}
    return frozenset(str(r.data.get("occurrence")) for r in project.records if r.kind in kinds)
