"""Amendments: the provider requests, the purchaser decides, every cap re-checked."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grantflow.models import Outcome, Project, Record
from grantflow.policy import Policy
from grantflow.records import Amendment, AmendmentRequest
from grantflow.rules._base import Parsed
from grantflow.rules._regime import budget, percent_of
from grantflow.rules.amendments import _request_problems, amended_problems

if TYPE_CHECKING:
    from conftest import World


def _move(from_line: str, to_line: str, amount: str) -> dict[str, Any]:
    return {
        "kind": "line_move",
        "reason": "plan changed",
        "from_line": from_line,
        "to_line": to_line,
        "amount": amount,
    }


def _request(world: World, pid: str, data: dict[str, Any], rid: str) -> Outcome:
    return world.engine.add_record(
        pid, "amendment_request", data, actor=world.applicant, record_id=rid
    )


def _decide(world: World, pid: str, rid: str, approved: bool = True) -> Outcome:
    data = {"request": rid, "approved": approved, "note": "checked"}
    return world.engine.add_record(pid, "amendment_decision", data, actor=world.approver)


def test_amendments_cannot_be_added_directly(world: World) -> None:
    """An ``amendment`` record from anyone fails ``records.reserved`` (a purchaser's passed)."""
    pid = world.contracted()
    move = _move("activities", "personnel", "35000.00")
    outcome = world.engine.add_record(pid, "amendment", move, actor=world.approver)
    assert world.codes(outcome) == {"records.reserved"}


def test_personnel_cannot_reach_85_percent_through_line_moves(world: World) -> None:
    """Moves toward 85 % personnel (cap 40 %) fail ``amendment.caps`` at the first (75 %)."""
    pid = world.contracted()
    moves = [("activities", "35000.00"), ("experts", "5000.00"), ("training", "5000.00")]
    for n, (line, amount) in enumerate(moves, start=1):
        _request(world, pid, _move(line, "personnel", amount), f"req-{n}").raise_for_refusal()
    outcome = _decide(world, pid, "req-1")
    assert world.codes(outcome) == {"amendment.caps"}
    assert "personnel would be 75.00% of the award" in outcome.refusals[0].message
    assert world.spend(pid, "44000.01", "INV-1", line="personnel").refusals
    assert _decide(world, pid, "req-1", approved=False).accepted
    assert world.engine.get(pid).records_of("amendment") == ()


def test_a_move_within_the_caps_is_applied_once_approved(world: World) -> None:
    """An approved move becomes an ``amendment`` record; the line budgets follow it."""
    pid = world.contracted()
    _request(world, pid, _move("activities", "training", "5000.00"), "req-1").raise_for_refusal()
    assert world.codes(world.spend(pid, "10000.00", "INV-1", line="training")) == {"funds.line_cap"}
    _decide(world, pid, "req-1").raise_for_refusal()
    assert world.spend(pid, "10000.00", "INV-1", line="training").accepted
    assert world.codes(_decide(world, pid, "req-1")) == {"amendment.decision"}


def test_a_line_cannot_be_moved_below_what_was_spent_on_it(world: World) -> None:
    """Moving money out of a line already spent fails ``amendment.caps``."""
    pid = world.contracted()
    world.spend(pid, "4000.00", "INV-1", line="experts").raise_for_refusal()
    _request(world, pid, _move("experts", "training", "2000.00"), "req-1").raise_for_refusal()
    assert world.codes(_decide(world, pid, "req-1")) == {"amendment.caps"}


def test_a_12_month_contract_cannot_be_extended_to_2030(world: World) -> None:
    """An extension to 2030 fails ``amendment.caps``; spending dated 2029 stays outside the term."""
    pid = world.contracted()
    far = {"kind": "extension", "reason": "more time", "new_end": "2030-12-31"}
    _request(world, pid, far, "req-1").raise_for_refusal()
    outcome = _decide(world, pid, "req-1")
    assert world.codes(outcome) == {"amendment.caps"}
    assert world.codes(world.spend(pid, "10.00", "INV-1", date="2029-06-01")) == {"funds.in_term"}
    direct = world.engine.add_record(pid, "amendment", far, actor=world.approver)
    assert world.codes(direct) == {"records.reserved"}


def test_a_short_extension_is_granted_and_spending_follows_it(world: World) -> None:
    """Three extra months within the limits: approved, and spending in them is accepted."""
    pid = world.contracted()
    later = {"kind": "extension", "reason": "no-cost extension", "new_end": "2026-06-14"}
    _request(world, pid, later, "req-1").raise_for_refusal()
    _decide(world, pid, "req-1").raise_for_refusal()
    assert world.engine.get(pid).data["term_end"] == "2026-06-14"
    assert world.spend(pid, "10.00", "INV-1", date="2026-05-01").accepted


def test_requests_come_from_the_provider_and_decisions_from_a_purchaser(world: World) -> None:
    """A purchaser's request or a provider's decision fails ``authority.*``; so does a bad end."""
    pid = world.contracted()
    move = _move("activities", "training", "10.00")
    refused = world.engine.add_record(pid, "amendment_request", move, actor=world.approver)
    assert world.codes(refused) == {"authority.role", "authority.relation"}
    earlier = {"kind": "extension", "reason": "r", "new_end": "2026-01-01"}
    assert world.codes(_request(world, pid, earlier, "req-0")) == {"amendment.request"}
    _request(world, pid, move, "req-1").raise_for_refusal()
    data = {"request": "req-1", "approved": True}
    outcome = world.engine.add_record(pid, "amendment_decision", data, actor=world.applicant)
    assert world.codes(outcome) == {"authority.role", "authority.relation"}


_LINES = ["personnel", "activities", "experts", "training", "publicity", "administration"]


@settings(max_examples=150, deadline=None)
@given(
    lines=st.dictionaries(
        st.sampled_from(_LINES), st.integers(0, 10**7).map(lambda f: Decimal(f) / 100), max_size=4
    ),
    amendments=st.lists(
        st.tuples(
            st.sampled_from(["line_move", "extension", "other"]),
            st.none() | st.sampled_from(_LINES),
            st.none() | st.sampled_from(_LINES),
            st.none() | st.integers(0, 10**6).map(lambda f: Decimal(f) / 100),
        ),
        max_size=5,
    ),
)
def test_the_amended_budget_is_the_lines_with_each_line_move_applied(
    lines: dict[str, Decimal], amendments: list[tuple[str, str | None, str | None, Decimal | None]]
) -> None:
    """The amended budget applies each complete line move; the total never moves.

    A move takes its amount from one line (an absent line counts as zero) and adds it to
    the other; other amendments, or moves missing a line, change nothing; a memo gives
    the same answer.
    """
    now = datetime(2025, 3, 3, tzinfo=UTC)
    records = [
        Record(
            kind="budget_line", id=f"b-{line}", data={"line": line, "amount": str(amount)}, seq=1
        )
        for line, amount in lines.items()
    ]
    expected = dict(lines)
    for n, (kind, source, target, amount) in enumerate(amendments):
        data: dict[str, Any] = {"kind": kind, "reason": "r"}
        data.update({k: v for k, v in (("from_line", source), ("to_line", target)) if v})
        if amount is not None:
            data["amount"] = str(amount)
        records.append(Record(kind="amendment", id=f"a-{n}", data=data, seq=2 + n))
        if kind == "line_move" and source and target:
            moved = amount or Decimal(0)
            expected[source] = expected.get(source, Decimal(0)) - moved
            expected[target] = expected.get(target, Decimal(0)) + moved
    project = Project(
        id="p",
        state="contracted",
        version=1,
        head="0" * 64,
        created_at=now,
        updated_at=now,
        records=tuple(records),
    )
    assert budget(project) == expected
    assert budget(project, Parsed()) == expected
    assert sum(budget(project).values(), Decimal(0)) == sum(lines.values(), Decimal(0))


@pytest.mark.parametrize(
    ("data", "keys"),
    [
        (None, ["record.invalid"]),
        (_move("personnel", "activities", "100.00"), []),
        (
            {**_move("personnel", "activities", "1.00"), "from_line": None},
            ["amendment.move_fields"],
        ),
        ({**_move("personnel", "activities", "1.00"), "to_line": None}, ["amendment.move_fields"]),
        ({**_move("personnel", "activities", "1.00"), "amount": None}, ["amendment.move_fields"]),
        (_move("personnel", "personnel", "1.00"), ["amendment.same_line"]),
        ({"kind": "extension", "reason": "late start"}, ["amendment.later_end"]),
        ({"kind": "extension", "reason": "r", "new_end": "2027-01-01"}, ["amendment.later_end"]),
        ({"kind": "other", "reason": "a new venue"}, []),
    ],
)
def test_each_request_problem_has_its_own_code(
    data: dict[str, Any] | None, keys: list[str]
) -> None:
    """A malformed move, a move within one line, an extension without a later end: one code each.

    (Before signing a project has no term, so any extension is refused `later_end`.)
    """
    now = datetime(2025, 3, 3, tzinfo=UTC)
    project = Project(
        id="p", state="contracted", version=1, head="0" * 64, created_at=now, updated_at=now
    )
    request = None if data is None else AmendmentRequest.model_validate(data)
    assert [p["code"] for p in _request_problems(request, project)] == keys


# -- the caps at their edges (amended_problems is a pure function of project and change) ----


def _amendment(kind: str, **fields: Any) -> Amendment:
    return Amendment.model_validate({"kind": kind, "reason": "r", **fields})


def test_an_extension_to_the_last_allowed_day_passes_and_a_day_more_is_refused(
    world: World,
) -> None:
    """A term of 2025-03-15..2026-03-14 may be extended 6 months: to 2026-09-14, not the 15th."""
    project = world.engine.get(world.contracted())
    policy = Policy()
    assert amended_problems(project, _amendment("extension", new_end="2026-09-14"), policy) == []
    found = amended_problems(project, _amendment("extension", new_end="2026-09-15"), policy)
    assert found[0] == {
        "code": "caps.extension",
        "latest": date(2026, 9, 14),
        "months": 6,
        "new_end": date(2026, 9, 15),
    }


def test_the_longest_term_ends_the_day_before_18_months_from_the_start(world: World) -> None:
    """With room to extend, a term ending 2026-09-14 passes; 2026-09-15 is 18 months: refused."""
    project = world.engine.get(world.contracted())
    policy = Policy(extension_max_months=12)
    assert amended_problems(project, _amendment("extension", new_end="2026-09-14"), policy) == []
    found = amended_problems(project, _amendment("extension", new_end="2026-09-15"), policy)
    assert found == [{"code": "caps.longest", "months": 18}]


def test_a_line_may_be_moved_down_to_what_was_spent_on_it_but_not_below(world: World) -> None:
    """Experts (5,000) with 3,000 spent: moving 2,000 out passes, 2,000.01 is below spent."""
    pid = world.contracted()
    world.spend(pid, "3000.00", "INV-1", line="experts").raise_for_refusal()
    project = world.engine.get(pid)
    policy = Policy()
    move = _amendment("line_move", from_line="experts", to_line="training", amount="2000.00")
    assert amended_problems(project, move, policy) == []
    more = _amendment("line_move", from_line="experts", to_line="training", amount="2000.01")
    assert amended_problems(project, more, policy) == [
        {
            "code": "caps.below_spent",
            "line": "experts",
            "value": Decimal("2999.99"),
            "spent": Decimal("3000.00"),
        }
    ]


@pytest.mark.parametrize(
    ("to_line", "amount", "share", "cap"),
    [
        ("personnel", "0.01", "40.00", Decimal(40)),
        ("administration", "5000.01", "10.00", Decimal(10)),
    ],
)
def test_a_move_one_fen_past_a_share_cap_names_the_line_its_share_and_the_cap(
    world: World, to_line: str, amount: str, share: str, cap: Decimal
) -> None:
    """Personnel (cap 40 %) and administration (cap 10 %) each refused one fen past the cap."""
    project = world.engine.get(world.contracted())
    move = _amendment("line_move", from_line="activities", to_line=to_line, amount=amount)
    assert amended_problems(project, move, Policy()) == [
        {"code": "caps.share", "line": to_line, "share": Decimal(share), "cap": cap}
    ]


def test_only_a_line_move_moves_money_and_only_an_extension_moves_the_end(world: World) -> None:
    """An ``other`` amendment carrying a move, or a move carrying a far end, changes nothing."""
    project = world.engine.get(world.contracted())
    fields = {"from_line": "activities", "to_line": "personnel", "amount": "30000.00"}
    assert amended_problems(project, _amendment("other", **fields), Policy()) == []
    odd = _amendment("line_move", from_line="activities", to_line="training", amount="1.00")
    odd = odd.model_copy(update={"new_end": date(2030, 1, 1)})
    assert amended_problems(project, odd, Policy()) == []


def test_an_extension_must_end_after_the_current_end(world: World) -> None:
    """Extending to the current last day fails ``amendment.request``; a day later passes."""
    pid = world.contracted()
    same = {"kind": "extension", "reason": "r", "new_end": "2026-03-14"}
    assert world.codes(_request(world, pid, same, "req-1")) == {"amendment.request"}
    later = {"kind": "extension", "reason": "r", "new_end": "2026-03-15"}
    assert _request(world, pid, later, "req-2").accepted


def test_a_percentage_of_money_is_rounded_half_up_to_the_fen() -> None:
    """Half a fen rounds up (¥0.025 -> ¥0.03), not to the even fen as Python's default would."""
    assert percent_of(Decimal("0.05"), Decimal(50)) == Decimal("0.03")
    assert percent_of(Decimal("0.07"), Decimal(50)) == Decimal("0.04")
