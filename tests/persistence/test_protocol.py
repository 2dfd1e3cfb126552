"""The store protocol's value types: `sealed_change` builds the same `Change` as its init."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from grantflow.audit import value_texts
from grantflow.persistence import Change
from grantflow.persistence._protocol import sealed_change
from grantflow.testing.store_contract import submission, transition


@given(
    creating=st.booleans(),
    obligations=st.none() | st.just(()),
    version=st.integers(0, 5),
)
def test_sealed_change_is_the_change_its_init_makes(
    creating: bool, obligations: tuple[()] | None, version: int
) -> None:
    """Every field is set, to the value given; the result equals and hashes as `Change(...)`.

    Fails if `sealed_change` leaves a field unset, swaps two, or `Change` gains a field.
    """
    project = submission("p1").after
    assert project is not None
    entry = transition(project, "reviewed").entry
    texts = value_texts(entry.evidence, entry.refusals, entry.records, entry.data)
    state = None if creating else "applied"
    built = sealed_change(entry, state, version, project, obligations, texts)
    expected = Change(
        entry=entry,
        expected_state=state,
        expected_version=version,
        after=project,
        obligations=obligations,
        texts=texts,
    )
    assert built == expected
    assert {f.name: getattr(built, f.name) for f in dataclasses.fields(Change)} == {
        f.name: getattr(expected, f.name) for f in dataclasses.fields(Change)
    }
    assert built.texts is texts
    assert built.messages == ()
    assert type(built) is Change
