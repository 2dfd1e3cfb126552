"""Due dates and timers as lifecycle data: `ObligationDef` and `TimerDef`.

An obligation is a date a project must meet something by (a report, a re-check, a
refund). Its definition says where the date comes from (the *anchor*: a date field of
the records that start it, or a point of the contract term), how many working days are
added, in which states it stays open, and what meets it (a record, project data, or
reaching a state). A timer is something grantflow does by itself around an obligation's
due date: add a system record (a reminder, "publicity closed", a termination proposal)
or fire a lifecycle event, as the named system actor, through the normal rules.

Both are plain data: `Lifecycle.to_dict` / `from_dict` (and JSON, TOML) carry them.
Durations may name an integer field of `grantflow.Policy` instead of a number, so that
each project reads them from the policy it is pinned to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from grantflow.errors import LifecycleDefinitionError
from grantflow.models import Project

__all__ = [
    "CONDITIONS",
    "TERM_ANCHORS",
    "Duration",
    "ObligationDef",
    "TimerDef",
    "TimerWhen",
    "policy_duration_fields",
]

#: A number of working days (or months, for `ObligationDef.every`), or the name of an
#: integer field of `grantflow.Policy` holding it.
Duration = int | str
#: When a timer fires: ``before`` the due date (a reminder) or ``after`` it.
TimerWhen = Literal["before", "after"]
#: Anchors that are points of the contract term (the purchase contract, extensions
#: included): its first day, its middle, its last day.
TERM_ANCHORS: tuple[str, ...] = ("term.start", "term.middle", "term.end")

_RECORD_ANCHOR = re.compile(r"^record:(?P<kind>[A-Za-z0-9_]+)\.(?P<field>[A-Za-z0-9_]+)$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _objections_cleared(project: Project) -> bool:
    """Every objection of the publicity period is ruled on, and none was upheld."""
    rulings = {
        str(r.data.get("objection")): bool(r.data.get("upheld"))
        for r in project.records_of("objection_ruling")
    }
    objections = [r.id for r in project.records_of("objection")]
    return all(o in rulings for o in objections) and not any(rulings.values())


#: Conditions a timer may require (`TimerDef.requires`), by name: pure functions of the
#: project. ``objections_cleared``: every publicity objection ruled on, none upheld.
CONDITIONS: Mapping[str, Callable[[Project], bool]] = {
    "objections_cleared": _objections_cleared,
}


def policy_duration_fields() -> frozenset[str]:
    """Names of the `grantflow.Policy` fields a `Duration` may name (integer fields)."""
    from grantflow.policy import Policy

    return frozenset(
        name for name, info in Policy.model_fields.items() if info.annotation in (int, "int")
    )


@dataclass(frozen=True, slots=True)
class ObligationDef:
    """A due date a project carries: where it starts, when it falls due, what closes it.

    Attributes:
        name: the obligation's kind (``rectification_due``).
        anchor: ``record:<kind>.<field>`` (one obligation per record of that kind, from
            the date or time in that field) or one of `TERM_ANCHORS`.
        offset: working days after the anchor (0: the anchor's date itself).
        every: with the ``term.start`` anchor, one obligation per period of this many
            months that ends before the term does (periodic reports); 0 turns it off.
        open_in: states in which the obligation is open (awaiting what meets it).
        met_in: reaching one of these states meets it.
        met_by: adding a record of this kind (after the obligation started; for a
            periodic one, with ``data["period"]`` its period number) meets it.
        met_data: the project's data holding all of these (key, value) pairs meets it.
        label: English label.
        label_zh: Chinese label.

    An obligation that is neither met nor in an `open_in` state is ``waived`` (the
    project went another way: rejected, withdrawn, terminated).
    """

    name: str
    anchor: str
    open_in: tuple[str, ...]
    offset: Duration = 0
    every: Duration = 0
    met_in: tuple[str, ...] = ()
    met_by: str = ""
    met_data: tuple[tuple[str, str], ...] = ()
    label: str = ""
    label_zh: str = ""

    @property
    def anchor_record(self) -> tuple[str, str] | None:
        """(record kind, field) of a ``record:`` anchor, ``None`` for a term anchor."""
        found = _RECORD_ANCHOR.match(self.anchor)
        return (found["kind"], found["field"]) if found else None

    def to_dict(self) -> dict[str, Any]:
        """Return the definition as plain data."""
        return {
            "name": self.name,
            "anchor": self.anchor,
            "offset": self.offset,
            "every": self.every,
            "open_in": list(self.open_in),
            "met_in": list(self.met_in),
            "met_by": self.met_by,
            "met_data": dict(self.met_data),
            "label": self.label,
            "label_zh": self.label_zh,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObligationDef:
        """Build a definition from `to_dict` output (validated by the lifecycle)."""
        met_data = data.get("met_data") or {}
        return cls(
            name=str(data["name"]),
            anchor=str(data["anchor"]),
            open_in=tuple(str(s) for s in data.get("open_in", ())),
            offset=_duration(data.get("offset", 0)),
            every=_duration(data.get("every", 0)),
            met_in=tuple(str(s) for s in data.get("met_in", ())),
            met_by=str(data.get("met_by", "")),
            met_data=tuple((str(k), str(v)) for k, v in dict(met_data).items()),
            label=str(data.get("label", "")),
            label_zh=str(data.get("label_zh", "")),
        )

    def validate(self, states: frozenset[str], durations: frozenset[str]) -> None:
        """Raise `LifecycleDefinitionError` naming this obligation if it cannot work."""
        if not _NAME.match(self.name):
            raise _bad(self.name, "an obligation name is lower_snake_case")
        if self.anchor not in TERM_ANCHORS and self.anchor_record is None:
            raise _bad(
                self.name,
                f"obligation {self.name!r}: anchor {self.anchor!r} is neither "
                f"record:<kind>.<field> nor one of {', '.join(TERM_ANCHORS)}",
            )
        if self.every not in (0, "") and self.anchor != "term.start":
            raise _bad(self.name, f"obligation {self.name!r}: every needs the term.start anchor")
        if not self.open_in:
            raise _bad(self.name, f"obligation {self.name!r} names no state it is open in")
        for state in (*self.open_in, *self.met_in):
            if state not in states:
                raise _bad(self.name, f"obligation {self.name!r} names unknown state {state!r}")
        overlap = set(self.open_in) & set(self.met_in)
        if overlap:
            raise _bad(
                self.name,
                f"obligation {self.name!r} is both open and met in {sorted(overlap)[0]!r}",
            )
        _check_duration(self.name, "offset", self.offset, durations)
        _check_duration(self.name, "every", self.every, durations)


@dataclass(frozen=True, slots=True)
class TimerDef:
    """Something grantflow does by itself around an obligation's due date.

    Attributes:
        name: the timer's name (``remind_progress_report``).
        obligation: the `ObligationDef` it watches; it fires only while that is open.
        when: ``before``: on the N-th working day before the due date (up to the due
            date itself); ``after``: on the day after the due date plus N working days.
        working_days: N, or the name of an integer policy field holding it.
        record: the kind of system record the timer adds (``reminder``); or
        event: the lifecycle event it fires (exactly one of the two).
        requires: names of `CONDITIONS` that must all hold for it to fire.
        label: English label.
        label_zh: Chinese label.
    """

    name: str
    obligation: str
    when: TimerWhen
    working_days: Duration = 0
    record: str = ""
    event: str = ""
    requires: tuple[str, ...] = ()
    label: str = ""
    label_zh: str = ""

    @property
    def action(self) -> str:
        """What firing does, as an engine event: ``record.<kind>`` or the lifecycle event."""
        return f"record.{self.record}" if self.record else self.event

    def to_dict(self) -> dict[str, Any]:
        """Return the definition as plain data."""
        return {
            "name": self.name,
            "obligation": self.obligation,
            "when": self.when,
            "working_days": self.working_days,
            "record": self.record,
            "event": self.event,
            "requires": list(self.requires),
            "label": self.label,
            "label_zh": self.label_zh,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimerDef:
        """Build a definition from `to_dict` output (validated by the lifecycle)."""
        when = str(data["when"])
        if when not in get_args(TimerWhen):
            raise _bad(str(data["name"]), f"timer {data['name']!r}: when must be before or after")
        return cls(
            name=str(data["name"]),
            obligation=str(data["obligation"]),
            when="before" if when == "before" else "after",
            working_days=_duration(data.get("working_days", 0)),
            record=str(data.get("record", "")),
            event=str(data.get("event", "")),
            requires=tuple(str(c) for c in data.get("requires", ())),
            label=str(data.get("label", "")),
            label_zh=str(data.get("label_zh", "")),
        )

    def validate(
        self,
        obligations: frozenset[str],
        events: Mapping[str, bool],
        durations: frozenset[str],
    ) -> None:
        """Raise `LifecycleDefinitionError` naming this timer if it cannot work.

        `events` maps each lifecycle event to whether it is the creating one.
        """
        if not _NAME.match(self.name):
            raise _bad(self.name, "a timer name is lower_snake_case")
        if self.obligation not in obligations:
            raise _bad(
                self.name, f"timer {self.name!r} watches unknown obligation {self.obligation!r}"
            )
        if self.when not in get_args(TimerWhen):
            raise _bad(self.name, f"timer {self.name!r}: when must be before or after")
        if bool(self.record) == bool(self.event):
            raise _bad(self.name, f"timer {self.name!r} needs exactly one of record and event")
        if self.record and not _NAME.match(self.record):
            raise _bad(self.name, f"timer {self.name!r}: record kind {self.record!r} is invalid")
        if self.event and (self.event not in events or events[self.event]):
            raise _bad(self.name, f"timer {self.name!r} fires {self.event!r}, not an event to fire")
        for condition in self.requires:
            if condition not in CONDITIONS:
                raise _bad(
                    self.name,
                    f"timer {self.name!r} requires unknown condition {condition!r} "
                    f"(known: {', '.join(sorted(CONDITIONS))})",
                )
        _check_duration(self.name, "working_days", self.working_days, durations)
        if self.when == "before" and self.working_days in (0, ""):
            raise _bad(self.name, f"timer {self.name!r} fires before the due date: N >= 1")


def _duration(value: object) -> Duration:
    if isinstance(value, bool):
        raise LifecycleDefinitionError(f"a duration is a number or a policy field: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value)
    return int(text) if text.isdigit() else text


def _check_duration(owner: str, what: str, value: Duration, durations: frozenset[str]) -> None:
    if isinstance(value, int):
        if value < 0:
            raise _bad(owner, f"{owner!r}: {what} must not be negative")
        return
    if value not in durations:
        raise _bad(
            owner, f"{owner!r}: {what} {value!r} is neither a number nor an integer policy field"
        )


def _bad(offender: str, message: str) -> LifecycleDefinitionError:
    return LifecycleDefinitionError(message, offender=offender)
