"""Boundary-seeking strategies: values at and around every threshold a rule compares against.

An off-by-one (``<`` for ``<=``) shows only on the threshold itself, and a uniform draw
of money between 0 and 10^9 almost never lands on 300,000.00 exactly. `boundaries` finds
the thresholds instead: the policy fields a rule reads (``ctx.policy.review_quorum``), the
numbers written in its code and the module constants it names (``CAP``), the numbers held
by the closures and objects it is built from. Its strategies then draw the thresholds
themselves a third of the time, their neighbours (one fen, one point, one day either
side) a third of the time, and the general range the rest.
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from hypothesis import strategies as st

from grantflow.policy import Policy
from grantflow.rules import RuleBook

__all__ = ["Boundaries", "Thresholds", "boundaries"]

_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_CENT = Decimal("0.01")
#: Policy fields by what they measure; any other numeric field is classified by its type.
_POLICY_KINDS = {
    "review_quorum": "counts",
    "trimmed_mean_from": "counts",
    "applications_per_provider_per_call": "counts",
    "publicity_working_days": "days",
    "contract_term_max_months": "months",
    "penalty_lookback_years": "years",
    "conflict_lookback_years": "years",
    "pass_score": "scores",
    "bonus_cap": "scores",
    "grade_excellent": "scores",
    "grade_good": "scores",
    "grade_pass": "scores",
    "borderline_margin": "scores",
    "personnel_cap": "percents",
    "administration_cap": "percents",
    "line_move_tolerance": "percents",
    "installments": "percents",
    "final_installment_by_grade": "percents",
    "spending_lead_tolerance": "percents",
    "grade_priority": "scores",
}
#: Otherwise a field's name says what it measures.
_SUFFIXES = (("_days", "days"), ("_months", "months"), ("_years", "years"), ("_max", "counts"))
#: Policy fields that are not thresholds (versions, names, calendars).
_NOT_THRESHOLDS = frozenset(
    {"version", "rubric_versions", "holidays", "workdays", "timezone", "installment_milestones"}
)
_KINDS = ("money", "scores", "counts", "days", "months", "years", "percents")
# Bare numbers found in code mean nothing by themselves: each kind takes those in its range.
_RANGES: dict[str, tuple[Decimal, Decimal]] = {
    "money": (Decimal(0), Decimal(10**12)),
    "scores": (Decimal(0), Decimal(1000)),
    "counts": (Decimal(0), Decimal(10**6)),
    "days": (Decimal(0), Decimal(3_660)),
    "months": (Decimal(0), Decimal(120)),
    "years": (Decimal(0), Decimal(50)),
    "percents": (Decimal(0), Decimal(100)),
}
_WHOLE = frozenset({"counts", "days", "months", "years"})


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The thresholds found, by what they measure; each tuple sorted and unique."""

    money: tuple[Decimal, ...] = ()
    scores: tuple[Decimal, ...] = ()
    counts: tuple[int, ...] = ()
    days: tuple[int, ...] = ()
    months: tuple[int, ...] = ()
    years: tuple[int, ...] = ()
    percents: tuple[Decimal, ...] = ()


def _as_number(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(str(value))
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            return None
    else:
        return None
    return number if number.is_finite() else None


def _numbers_in(value: object) -> Iterator[Decimal]:
    """Numbers held by a constant: itself, or the items of a tuple/frozenset constant."""
    if isinstance(value, tuple | frozenset | list | set):
        for item in value:
            yield from _numbers_in(item)
        return
    number = _as_number(value)
    if number is not None:
        yield number


class _Harvest:
    """Walks rules, books and the functions they are made of, collecting numbers."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.found: dict[str, set[Decimal]] = {kind: set() for kind in _KINDS}
        self.words: set[str] = set()
        self.seen: set[int] = set()

    def number(self, value: Decimal, kind: str | None = None) -> None:
        kinds = (kind,) if kind else _KINDS
        for k in kinds:
            low, high = _RANGES[k]
            if low <= value <= high and (k not in _WHOLE or value == value.to_integral_value()):
                self.found[k].add(value)

    def policy_field(self, name: str) -> None:
        if name not in Policy.model_fields or name in _NOT_THRESHOLDS:
            return
        value = getattr(self.policy, name)
        values = value.values() if isinstance(value, dict) else value
        kind = _POLICY_KINDS.get(name) or next(
            (k for suffix, k in _SUFFIXES if name.endswith(suffix)), None
        )
        for number in _numbers_in(tuple(values) if isinstance(value, dict) else values):
            self.number(number, kind)

    def whole_policy(self) -> None:
        for name in Policy.model_fields:
            self.policy_field(name)
        borderline = self.policy.grade_pass + self.policy.borderline_margin
        self.number(borderline, "scores")

    def source(self, item: object) -> None:
        if isinstance(item, Policy):
            self.policy = item
            self.whole_policy()
        elif isinstance(item, RuleBook):
            for event in item.attached_events():
                for fn in item.rules_for(event):
                    self.callable(fn)
                for _name, provider in item.facts_for(event):
                    self.callable(provider)
                for effect in item.effects_for(event):
                    self.callable(effect)
        elif _as_number(item) is not None:
            self.number(_as_number(item) or Decimal(0))
        elif callable(item):
            self.callable(item)
        else:
            raise TypeError(f"cannot find thresholds in {item!r}: give rules, books or numbers")

    def callable(self, fn: object, depth: int = 0) -> None:
        if id(fn) in self.seen or depth > 3:
            return
        self.seen.add(id(fn))
        if isinstance(fn, functools.partial):
            self.callable(fn.func, depth)
            for arg in (*fn.args, *fn.keywords.values()):
                self.value(arg, depth)
            return
        if isinstance(fn, types.MethodType):
            self.callable(fn.__func__, depth)
            self.value(fn.__self__, depth)
            return
        if isinstance(fn, types.FunctionType):
            self.function(fn, depth)
            return
        # A callable object (a named rule, a combinator, your own class): its attributes
        # and its __call__.
        for attr in _attributes(fn):
            self.value(attr, depth)
        call = type(fn).__dict__.get("__call__")
        if isinstance(call, types.FunctionType):
            self.function(call, depth)

    def value(self, value: object, depth: int) -> None:
        if isinstance(value, tuple | list | frozenset | set):
            for item in value:
                self.value(item, depth)
        elif isinstance(value, Policy):
            return
        elif callable(value) and not isinstance(value, type):
            self.callable(value, depth + 1)
        else:
            for number in _numbers_in(value):
                self.number(number)

    def function(self, fn: types.FunctionType, depth: int) -> None:
        self.code(fn.__code__, fn, depth)
        for cell in fn.__closure__ or ():
            try:
                self.value(cell.cell_contents, depth)
            except ValueError:  # an empty cell
                continue
        for default in (*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values()):
            self.value(default, depth)

    def code(self, code: types.CodeType, fn: types.FunctionType, depth: int) -> None:
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.code(const, fn, depth)
            elif isinstance(const, str) and const.isidentifier():
                self.words.add(const)
            else:
                for number in _numbers_in(const):
                    self.number(number)
        for name in code.co_names:
            if name in Policy.model_fields:
                self.policy_field(name)
            if name in fn.__globals__:
                found = fn.__globals__[name]
                if isinstance(found, types.FunctionType) and found.__module__ != fn.__module__:
                    continue  # a helper from elsewhere: its constants are not this rule's
                if not isinstance(found, types.ModuleType | type):
                    self.value(found, depth)

    def thresholds(self) -> Thresholds:
        def decimals(kind: str) -> tuple[Decimal, ...]:
            return tuple(sorted(self.found[kind]))

        def whole(kind: str) -> tuple[int, ...]:
            return tuple(sorted({int(v) for v in self.found[kind]}))

        return Thresholds(
            money=tuple(sorted({v.quantize(_CENT) for v in self.found["money"]})),
            scores=decimals("scores"),
            counts=whole("counts"),
            days=whole("days"),
            months=whole("months"),
            years=whole("years"),
            percents=decimals("percents"),
        )


def _attributes(obj: object) -> Iterable[object]:
    names: list[str] = list(getattr(obj, "__dict__", {}))
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    for name in names:
        if name.startswith("__"):
            continue
        try:
            yield getattr(obj, name)
        except AttributeError:
            continue


def _near(values: Iterable[Decimal], steps: Iterable[Decimal], low: Decimal) -> list[Decimal]:
    around = {v + d * s for v in values for s in steps for d in (-1, 1)}
    return sorted(v for v in around - set(values) if v >= low)


def _mix(
    exact: list[Any], near: list[Any], general: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    parts = [st.sampled_from(exact)] if exact else []
    if near:
        parts.append(st.sampled_from(near))
    return st.one_of(*parts, general)


class Boundaries:
    """Strategies concentrated on the thresholds found by `boundaries`.

    Each strategy draws the thresholds themselves about a third of the time, their
    neighbours about a third, and the general range the rest (so a property still sees
    ordinary values, and a rule with no threshold still gets tested).
    """

    def __init__(self, thresholds: Thresholds, policy: Policy) -> None:
        self.thresholds = thresholds
        self.policy = policy

    def __repr__(self) -> str:
        return f"Boundaries({self.thresholds!r})"

    def money(
        self, *, min_value: Decimal | int = 0, max_value: Decimal | int = 10**9
    ) -> st.SearchStrategy[Decimal]:
        """Two-place amounts: each money threshold, one fen and one yuan either side."""
        low, high = Decimal(min_value), Decimal(max_value)
        exact = [v for v in self.thresholds.money if low <= v <= high]
        near = [v for v in _near(exact, (_CENT, Decimal(1)), low) if v <= high]
        general = st.decimals(
            min_value=low, max_value=high, places=2, allow_nan=False, allow_infinity=False
        ).map(lambda d: d.quantize(_CENT))
        return _mix(exact, near, general)

    def scores(
        self, *, min_value: Decimal | int = 0, max_value: Decimal | int = 110
    ) -> st.SearchStrategy[Decimal]:
        """Scores: each score threshold (grade bands, pass score ...), 0.01 and 1 either side."""
        low, high = Decimal(min_value), Decimal(max_value)
        exact = [v for v in self.thresholds.scores if low <= v <= high]
        near = [v for v in _near(exact, (_CENT, Decimal(1)), low) if v <= high]
        general = st.decimals(
            min_value=low, max_value=high, places=2, allow_nan=False, allow_infinity=False
        )
        return _mix(exact, near, general)

    def counts(self, *, max_value: int = 50) -> st.SearchStrategy[int]:
        """Whole counts: each count threshold (quorum, limits ...) and one either side."""
        exact = [v for v in self.thresholds.counts if v <= max_value]
        near = [int(v) for v in _near([Decimal(v) for v in exact], (Decimal(1),), Decimal(0))]
        return _mix(exact, [v for v in near if v <= max_value], st.integers(0, max_value))

    def percents(self) -> st.SearchStrategy[Decimal]:
        """Percentages 0-100: each percent threshold (caps, shares), 0.01 and 1 either side."""
        exact = list(self.thresholds.percents)
        near = [v for v in _near(exact, (_CENT, Decimal(1)), Decimal(0)) if v <= 100]
        general = st.decimals(0, 100, places=2, allow_nan=False, allow_infinity=False)
        return _mix(exact, near, general)

    def dates(self, anchor: date, *, span_days: int = 800) -> st.SearchStrategy[date]:
        """Dates after `anchor` at the day, working-day, month and year thresholds.

        For each threshold n it draws the day ``anchor + n`` calendar days, the first
        day with n working days strictly between `anchor` and it (weekends and the
        policy's `holidays` excluded), ``anchor`` plus n months and plus n years, each
        with the day before and the day after; otherwise any day within `span_days`.
        """
        holidays = set(self.policy.holidays)
        exact: set[date] = set()
        for n in self.thresholds.days:
            exact.add(anchor + timedelta(days=n))
            exact.add(_after_working_days(anchor, n, holidays))
        for n in self.thresholds.months:
            exact.add(_add_months(anchor, n))
        for n in self.thresholds.years:
            exact.add(_add_months(anchor, 12 * n))
        near = {d + timedelta(days=k) for d in exact for k in (-1, 1)} - exact
        general = st.dates(anchor - timedelta(days=span_days), anchor + timedelta(days=span_days))
        return _mix(sorted(exact), sorted(near), general)


def _after_working_days(anchor: date, n: int, holidays: set[date]) -> date:
    """The first day with `n` working days strictly between `anchor` and it."""
    day, count = anchor + timedelta(days=1), 0
    while True:
        if count >= n:
            return day
        if day.weekday() < 5 and day not in holidays:
            count += 1
        day += timedelta(days=1)


def _add_months(day: date, months: int) -> date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return day.replace(year=year, month=month, day=min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover


def words_in(*sources: object) -> frozenset[str]:
    """Return the identifier-like string constants in the code of rules and books.

    The harness uses it to find the record kinds a rule reads (``records_of("review")``).
    """
    harvest = _Harvest(Policy())
    for item in sources:
        harvest.source(item)
    return frozenset(harvest.words)


def boundaries(*sources: object, policy: Policy | None = None) -> Boundaries:
    """Find the thresholds of rules, rule books and numbers; return strategies around them.

    Args:
        sources: rules (any callable), `RuleBook`s, or numbers to add by hand. With none,
            every threshold of the policy is used.
        policy: the policy whose values the rules read (default: ``Policy()``); a rule
            that reads ``ctx.policy.<field>`` contributes that field's value.

    >>> from decimal import Decimal
    >>> CAP = Decimal("300000.00")
    >>> def within_cap(ctx):
    ...     return Decimal(str(ctx.evidence.get("amount", "0"))) <= CAP
    >>> boundaries(within_cap).thresholds.money
    (Decimal('0.00'), Decimal('300000.00'))
    >>> boundaries().thresholds.counts  # quorum, limit, trimmed mean; service maxima
    (2, 3, 5, 1000, 50000)
    """
    harvest = _Harvest(policy or Policy())
    if not sources:
        harvest.whole_policy()
    for item in sources:
        harvest.source(item)
    return Boundaries(harvest.thresholds(), harvest.policy)
