"""`Parsed`: a decision's records parsed once, answering exactly as parsing afresh."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grantflow.models import Project, Record
from grantflow.records import Contract, Expenditure
from grantflow.rules._base import ParseCache, Parsed
from grantflow.rules._regime import (
    awarded,
    budget,
    eligible_spend,
    expenditures,
    load,
    rows,
    term,
    values,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)

# Expenditure data that parses, and data that does not (a bad line, a bad amount, a float).
_expenditure = st.fixed_dictionaries(
    {
        "date": st.sampled_from(["2025-05-01", "2025-13-01", "soon"]),
        "line": st.sampled_from(["activities", "personnel", "nowhere"]),
        "amount": st.sampled_from(["10.00", "0.01", "-3", "x", "12.345"]),
        "invoice_number": st.sampled_from(["", "INV-1"]),
    }
)
_contract = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["purchase", "supervision"]),
        "number": st.just("c-1"),
        "signed_on": st.just("2025-03-11"),
        "amount": st.sampled_from(["100000.00", "nope"]),
        "start": st.just("2025-03-15"),
        "end": st.sampled_from(["2026-03-14", "2024-01-01"]),
    }
)


@st.composite
def _projects(draw: st.DrawFn, version: int = 3) -> Project:
    kinds: list[tuple[str, dict[str, Any]]] = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("expenditure"), _expenditure),
                st.tuples(st.just("contract"), _contract),
                st.tuples(
                    st.just("budget_line"),
                    st.fixed_dictionaries(
                        {"line": st.just("activities"), "amount": st.just("50.00")}
                    ),
                ),
            ),
            max_size=6,
        )
    )
    records = tuple(
        Record(kind=kind, id=f"{kind}-{n}", data=data, seq=n + 1)
        for n, (kind, data) in enumerate(kinds)
    )
    return Project(
        id="p-1",
        state="contracted",
        version=version,
        head="0" * 64,
        records=records,
        created_at=NOW,
        updated_at=NOW,
    )


def _reads(project: Project, memo: Parsed | None) -> tuple[Any, ...]:
    return (
        rows(project, "expenditure", Expenditure, memo),
        values(project, "contract", Contract, memo),
        expenditures(project, memo),
        eligible_spend(project, memo),
        awarded(project, memo),
        budget(project, memo),
        term(project, memo),
    )


@given(_projects(), _projects(version=4))
def test_a_memo_answers_as_a_fresh_parse_and_never_across_projects(
    first: Project, second: Project
) -> None:
    """Reads through one shared memo, repeated and across two projects, equal a fresh parse."""
    memo = Parsed()
    for project in (first, second, first, second):
        assert _reads(project, memo) == _reads(project, None)


@given(_expenditure)
def test_loading_through_a_memo_parses_each_object_once(data: dict[str, Any]) -> None:
    """The same data object gives the same parse; an equal but distinct object is parsed anew."""
    memo = Parsed()
    fresh = load(Expenditure, data)
    first = load(Expenditure, data, memo)
    assert first == fresh
    assert load(Expenditure, data, memo) is first
    copy = dict(data)
    assert load(Expenditure, copy, memo) == fresh
    assert load(Contract, data, memo) == load(Contract, data)


def test_a_memo_hands_back_its_rows_without_letting_callers_change_them() -> None:
    """rows() returns a new list each time: appending to one does not change the next answer."""
    project = Project(
        id="p-1",
        state="contracted",
        version=1,
        head="0" * 64,
        records=(
            Record(
                kind="expenditure",
                id="e-1",
                data={"date": "2025-05-01", "line": "activities", "amount": "10.00"},
                seq=1,
            ),
        ),
        created_at=NOW,
        updated_at=NOW,
    )
    memo = Parsed()
    found = rows(project, "expenditure", Expenditure, memo)
    found.append(found[0])
    assert len(rows(project, "expenditure", Expenditure, memo)) == 1


@pytest.mark.parametrize("make", [Parsed, ParseCache], ids=["Parsed", "ParseCache"])
def test_an_answer_is_tied_to_the_object_itself(make: Callable[[], Parsed | ParseCache]) -> None:
    """A new object at a reused address is not a hit: the memo holds what it keys on."""
    memo, calls = make(), []

    def parse() -> int:
        calls.append(1)
        return len(calls)

    for _ in range(50):
        source = object()  # released each round unless the memo holds it
        assert memo.get(source, "k", parse) == len(calls)
    assert len(calls) == 50


def test_read_only_evidence_parses_into_plain_values() -> None:
    """`load` thaws read-only evidence: a free-form field holds dicts and lists, not proxies."""
    from pydantic import BaseModel

    from grantflow._canonical import freeze

    class Note(BaseModel):
        body: Any

    data = {"body": {"lines": [1, 2], "by": {"id": "u"}}}
    parsed = load(Note, freeze(data))
    assert parsed is not None
    assert type(parsed.body) is dict
    assert parsed.body == {"lines": [1, 2], "by": {"id": "u"}}
    plain = load(Note, data)
    assert plain is not None
    assert plain.body == data["body"]


# -- answers kept across decisions -------------------------------------------------------------


def _expenditure_project(pid: str, data: dict[str, Any]) -> Project:
    record = Record(kind="expenditure", id="e-1", data=data, seq=1)
    return Project(
        id=pid,
        state="contracted",
        version=1,
        head="0" * 64,
        records=(record,),
        created_at=NOW,
        updated_at=NOW,
    )


def test_two_decisions_sharing_a_cache_parse_a_stored_record_once() -> None:
    """Rows read through two `Parsed` on one `ParseCache` parse each record's data once."""
    cache = ParseCache()
    data = {"date": "2025-05-01", "line": "activities", "amount": "10.00"}
    project = _expenditure_project("p-1", data)
    first = rows(project, "expenditure", Expenditure, Parsed(cache))
    second = rows(project, "expenditure", Expenditure, Parsed(cache))
    assert len(first) == 1
    assert second == first == rows(project, "expenditure", Expenditure)
    assert second[0][1] is first[0][1]  # the same parse, not a second one
    alone = rows(project, "expenditure", Expenditure, Parsed())
    assert alone == first
    assert alone[0][1] is not first[0][1]  # without a cache a decision parses for itself


@given(st.lists(_expenditure, min_size=1, max_size=12))
def test_a_kept_parse_answers_as_a_fresh_one(datas: list[dict[str, Any]]) -> None:
    """Through a small shared cache (generations turning over), answers equal fresh parses."""
    cache = ParseCache(limit=2)
    projects = [_expenditure_project(f"p-{i}", d) for i, d in enumerate(datas)]
    for project in [*projects, *reversed(projects), *projects]:
        assert rows(project, "expenditure", Expenditure, Parsed(cache)) == rows(
            project, "expenditure", Expenditure
        )
    assert len(cache) <= 4


def test_the_cache_stays_bounded_and_promotes_what_it_finds_in_the_older_generation() -> None:
    """At most two generations are kept; an answer found in the older one is not parsed again."""
    cache = ParseCache(limit=10)
    for n in range(50):
        cache.get(object(), "k", lambda n=n: n)
    assert len(cache) <= 20
    kept, calls = object(), []

    def parse() -> int:
        calls.append(1)
        return 51

    assert cache.get(kept, "k", parse) == 51
    for n in range(12):  # the newer generation fills: `kept` moves to the older one
        cache.get(object(), "k", lambda n=n: n)
    assert cache.get(kept, "k", parse) == 51  # found in the older generation
    assert calls == [1]  # not parsed again


def test_a_full_cache_of_expenditures_stays_under_32_mb() -> None:
    """Both generations full of parsed expenditures take under 32 MB beyond their data.

    docs/performance.md gives the figure (28 MB, measured the same way).
    """
    import tracemalloc

    datas = [
        {
            "date": "2025-05-01",
            "line": "activities",
            "amount": f"{i}.00",
            "invoice_number": f"INV-{i:08d}",
            "voucher": f"V-{i:08d}",
        }
        for i in range(30_000)
    ]
    tracemalloc.start()
    try:
        cache = ParseCache()
        before = tracemalloc.get_traced_memory()[0]
        for data in datas:
            cache.get(data, Expenditure, functools.partial(load, Expenditure, data))
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == 20_000
    assert kept < 32_000_000
