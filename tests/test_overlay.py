"""Tests for grantflow._overlay: a batch's pending changes read like committed ones."""

from __future__ import annotations

import inspect
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from grantflow._overlay import PendingReader
from grantflow.models import Record
from grantflow.persistence import Change, MemoryStore, StoreReader
from grantflow.testing.store_contract import T0, submission, transition

POOL = ("a", "b", "c")


def _reader_methods() -> list[str]:
    return [
        name
        for name, member in inspect.getmembers(StoreReader)
        if callable(member) and not name.startswith("_")
    ]


def test_every_reader_method_is_written_out() -> None:
    """PendingReader is a StoreReader whose every method is its own (no pass-through)."""
    reader = PendingReader(MemoryStore())
    assert isinstance(reader, StoreReader)
    for name in _reader_methods():
        assert name in vars(PendingReader), f"{name} is not written out"
    assert "__getattr__" not in vars(PendingReader)


@st.composite
def _changes(draw: st.DrawFn) -> list[tuple[str, str, bool, str]]:
    """Steps: (project, what, accepted, invoice) with what in submit/move/record."""
    return draw(
        st.lists(
            st.tuples(
                st.sampled_from(POOL),
                st.sampled_from(["submit", "move", "record", "regroup"]),
                st.booleans(),
                st.sampled_from(["I-1", "I-2"]),
            ),
            max_size=12,
        )
    )


def _plan(
    store: MemoryStore, steps: list[tuple[str, str, bool, str]], reader: PendingReader
) -> list[Change]:
    """Turn steps into valid changes on top of what `reader` shows (pending included)."""
    changes = []
    for pid, what, accepted, invoice in steps:
        project = reader.load(pid)
        if project is None:
            if what != "submit":
                continue
            version, head = reader.chain_tip(pid)
            change = submission(
                pid,
                accepted=accepted,
                version=version,
                prev_hash=head,
                data={
                    "call": "c1",
                    "provider": "org-" + pid[0],
                    "tags": ["org-" + pid[0]],
                    "held": f"{len(changes)}.50",
                },
                at=T0 + timedelta(minutes=len(changes)),
            )
        elif what == "move":
            target = {"applied": "reviewed", "reviewed": "contracted"}.get(project.state)
            if target is None:
                continue
            change = transition(project, target, accepted=accepted)
        elif what == "regroup":  # the values aggregates filter on change (a list too)
            other = "org-b" if project.data.get("provider") == "org-a" else "org-a"
            change = transition(
                project,
                project.state,
                accepted=accepted,
                event="regroup",
                data={"provider": other, "tags": [other]},
            )
        elif what == "record":
            record = Record(kind="expenditure", id=f"e{project.version}", data={"inv": invoice})
            change = transition(
                project,
                project.state,
                accepted=accepted,
                event="record.expenditure",
                records=[record],
            )
        else:
            continue
        reader.add_pending(change)
        changes.append(change)
    return changes


def _aggregates(reader: StoreReader) -> list[object]:
    """The reads a batch caches: counts, sums and record look-ups."""
    return [
        reader.count_projects({"call": "c1"}),
        reader.count_projects({"provider": "org-a"}, exclude_states=("applied",)),
        reader.sum_projects("held", {"call": "c1"}),
        reader.sum_projects("held", {"provider": "org-b"}, exclude_states=("reviewed",)),
        reader.count_projects({"call": "c1", "provider": "org-a"}),
        reader.count_projects({}),
        reader.count_projects({"tags": ["org-a"]}),  # a value that cannot be hashed
        reader.find_records("expenditure", "inv", ["I-1"]),
        reader.find_records("expenditure", "inv", ["I-1", "I-2"]),
    ]


@settings(max_examples=150, deadline=None)
@given(before=_changes(), pending=_changes())
def test_pending_reads_equal_committed_reads(
    before: list[tuple[str, str, bool, str]], pending: list[tuple[str, str, bool, str]]
) -> None:
    """Every read through the overlay equals the same read after the changes commit."""
    base, committed = MemoryStore(), MemoryStore()
    for change in _plan(base, before, PendingReader(base)):
        base.commit(change)
        committed.commit(change)
    overlay = PendingReader(base)
    overlay.begin_batch()
    _aggregates(overlay)  # read once before: later reads must follow the pending changes
    for change in _plan(base, pending, overlay):
        committed.commit(change)
    assert _aggregates(overlay) == _aggregates(committed)
    assert [overlay.load(p) for p in (*POOL, "zz")] == [committed.load(p) for p in (*POOL, "zz")]
    for state in (None, "applied", "reviewed", "contracted"):
        assert list(overlay.projects(state=state)) == list(committed.projects(state=state))
    for wanted, excluded in (
        ({"call": "c1"}, ()),
        ({"provider": "org-a"}, ("applied",)),
        # First read after the pending changes: replayed from the touched projects.
        ({"provider": "org-b"}, ()),
        ({"call": "c1", "provider": "org-b"}, ("reviewed",)),
        ({}, ("applied",)),
        ({"tags": ["org-b"]}, ()),
    ):
        assert overlay.count_projects(wanted, exclude_states=excluded) == (
            committed.count_projects(wanted, exclude_states=excluded)
        )
        assert overlay.sum_projects("held", wanted, exclude_states=excluded) == (
            committed.sum_projects("held", wanted, exclude_states=excluded)
        )
    for minutes in (-1, 3, 60 * 24):
        when = T0 + timedelta(minutes=minutes)
        assert overlay.counts_at(when) == committed.counts_at(when)
    for pid in (*POOL, "zz"):
        assert overlay.chain_tip(pid) == committed.chain_tip(pid)
        assert list(overlay.entries(pid)) == list(committed.entries(pid))
    assert list(overlay.chain_ids()) == list(committed.chain_ids())
    assert list(overlay.all_entries()) == list(committed.all_entries())
    for values in (["I-1"], ["I-1", "I-2"], []):
        assert overlay.find_records("expenditure", "inv", values) == (
            committed.find_records("expenditure", "inv", values)
        )
