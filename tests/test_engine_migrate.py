"""Engine.migrate_policy: pinned projects move to another policy only explicitly, audited."""

from __future__ import annotations

import pytest

import grantflow
from grantflow import Actor, InvalidInput, Policy, RuleBook, RuleContext
from grantflow.audit import replay
from grantflow.persistence import MemoryStore
from grantflow.rules import PASS, Verdict, refuse, rule

APPLICANT = Actor(id="u", roles=frozenset({"applicant"}), organisation="org")
PURCHASER = Actor(id="p", roles=frozenset({"purchaser"}), organisation="city")


@rule(name="test.quorum")
def quorum_from_policy(ctx: RuleContext) -> Verdict:
    """Refuse unless the evidence brings the pinned policy's quorum of reviews."""
    if int(ctx.evidence.get("reviews", 0)) >= ctx.policy.review_quorum:
        return PASS
    return refuse("test.quorum", "too few", "太少", policy=ctx.policy.version)


def _engine(store: MemoryStore, policy: Policy, *older: Policy) -> grantflow.Engine:
    book = RuleBook().on("approve", quorum_from_policy)
    return grantflow.open(store, rules=book, policy=policy, policies=older)


def test_projects_stay_pinned_until_migrated() -> None:
    """A v1 project keeps v1's quorum on a v2 engine; after migration v2 applies, replayably."""
    store, v1, v2 = MemoryStore(), Policy(version="v1"), Policy(version="v2", review_quorum=2)
    pid = _engine(store, v1).submit(actor=APPLICANT).project_id
    engine = _engine(store, v2, v1)
    refused = engine.fire(pid, "approve", actor=PURCHASER, evidence={"reviews": 2})
    assert refused.refusals[0].details["policy"] == "v1"

    [outcome] = engine.migrate_policy([pid], "v2", actor=PURCHASER, reason="2026 rules")
    entry = outcome.entry
    assert entry is not None
    assert (entry.kind, entry.data["policy_version"], entry.evidence["from_version"]) == (
        "migrate",
        "v2",
        "v1",
    )
    assert engine.fire(pid, "approve", actor=PURCHASER, evidence={"reviews": 2}).accepted
    assert replay(engine.history(pid)) == engine.get(pid)
    assert engine.verify().ok


def test_migration_moves_rubric_pins_when_asked() -> None:
    """``rubric_versions`` replaces the project's rubric pins in the same audited entry."""
    engine = _engine(MemoryStore(), Policy())
    pid = engine.submit(actor=APPLICANT).project_id
    engine.migrate_policy(
        [pid], "default-1", actor=PURCHASER, reason="new rubric", rubric_versions={"approval": 2}
    )
    assert engine.get(pid).data["rubric_versions"] == {"approval": 2}
    assert engine.history(pid)[-1].kind == "migrate"


def test_migration_needs_a_known_version_and_a_reason() -> None:
    """Unknown versions and blank reasons raise `InvalidInput` and write nothing."""
    engine = _engine(MemoryStore(), Policy())
    pid = engine.submit(actor=APPLICANT).project_id
    with pytest.raises(InvalidInput, match="unknown policy"):
        engine.migrate_policy([pid], "v9", actor=PURCHASER, reason="r")
    with pytest.raises(InvalidInput, match="reason"):
        engine.migrate_policy([pid], "default-1", actor=PURCHASER, reason=" ")
    assert engine.get(pid).version == 1
