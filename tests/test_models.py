"""Tests for grantflow.models: models built by `trusted` behave as validated ones."""

from __future__ import annotations

from datetime import UTC, datetime

from grantflow.models import Project, Record, trusted

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def _project(pid: str) -> Project:
    return trusted(
        Project,
        id=pid,
        state="applied",
        version=1,
        head="0" * 64,
        data={"title": "t"},
        records=(),
        created_at=NOW,
        updated_at=NOW,
    )


def test_trusted_models_equal_validated_ones_and_dump_every_field() -> None:
    """A trusted project equals the validated one and dumps all fields, set ones included."""
    built = _project("p-1")
    validated = Project(
        id="p-1",
        state="applied",
        version=1,
        head="0" * 64,
        data={"title": "t"},
        created_at=NOW,
        updated_at=NOW,
    )
    assert built == validated
    assert built.model_dump(exclude_unset=True) == validated.model_dump()
    assert built.model_fields_set == set(Project.model_fields)


def test_trusted_models_share_their_fields_set_and_copies_leave_it_alone() -> None:
    """Models of one class share one fields-set; `model_copy` neither changes nor shares it."""
    first, second = _project("p-1"), _project("p-2")
    assert first.__pydantic_fields_set__ is second.__pydantic_fields_set__
    copied = first.model_copy(update={"state": "reviewed"})
    assert copied.state == "reviewed"
    assert first.model_fields_set == set(Project.model_fields)
    assert copied.__pydantic_fields_set__ is not first.__pydantic_fields_set__
    record = trusted(Record, kind="note", id="n-1", data={}, seq=1)
    assert record.model_fields_set == {"kind", "id", "data", "seq"}


def test_a_model_given_only_some_fields_gets_its_own_set() -> None:
    """`trusted` with fewer fields than the model has keeps exactly the given ones as set."""
    partial = trusted(Record, kind="note", id="n-1", data={})
    assert partial.model_fields_set == {"kind", "id", "data"}


def test_an_actors_json_lists_its_roles_sorted_however_the_set_was_built() -> None:
    """JSON dumps (outbox payloads, exports) do not depend on a set's iteration order.

    Equal sets built in different orders may iterate differently (string hashing is
    randomised per process): an outbox payload read back from the audit row then
    differed from the entry's own dump in about one run of twenty.
    """
    import itertools

    from grantflow.models import Actor

    roles = ["purchaser", "applicant", "evaluator", "finance", "reviewer", "auditor"]
    dumps = {
        tuple(Actor(id="a", roles=frozenset(order)).model_dump(mode="json")["roles"])
        for order in itertools.permutations(roles)
    }
    assert dumps == {tuple(sorted(roles))}
    assert Actor(id="a", roles=frozenset(roles)).model_dump()["roles"] == frozenset(roles)
