"""Tests for grantflow.audit: hashing, chain checks, Merkle roots, replay."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from grantflow._canonical import canonical_bytes, iso_utc, plain
from grantflow.audit import (
    GENESIS,
    _digest,
    _move_digest,
    _move_entry,
    check_chain,
    entry_bytes,
    entry_hash,
    leaf_hash,
    merkle_root,
    replay,
    seal,
    sealed,
)
from grantflow.models import Actor, AuditEntry, DecisionBasis, Record, Refusal

ACTOR = Actor(id="staff", roles=frozenset({"purchaser"}))
T = datetime(2026, 1, 1, tzinfo=UTC)


def _chain(n: int, project_id: str = "p") -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = GENESIS
    states = ["applied", "reviewed", "contracted", "midterm", "assessed", "closed"]
    for seq in range(1, n + 1):
        entry = seal(
            project_id=project_id,
            seq=seq,
            kind="submit" if seq == 1 else "fire",
            event="submit" if seq == 1 else "go",
            from_state=None if seq == 1 else states[seq - 2],
            to_state=states[seq - 1],
            accepted=True,
            actor=ACTOR,
            at=T,
            evidence={"n": seq},
            refusals=(),
            records=(Record(kind="note", id=f"n{seq}", data={"seq": seq}, seq=seq),),
            data={"title": "t"} if seq == 1 else {},
            prev_hash=prev,
        )
        prev = entry.hash
        entries.append(entry)
    return entries


def test_entry_hash_is_stable_and_excludes_the_hash_field() -> None:
    """Recomputing a sealed entry's hash gives the stored hash."""
    entry = _chain(1)[0]
    assert entry_hash(entry) == entry.hash
    assert len(entry.hash) == 64


def test_role_order_does_not_change_the_hash() -> None:
    """Canonical encoding sorts sets, so equal actors hash equally."""
    a = Actor(id="x", roles=frozenset(["b", "a", "c"]))
    b = Actor(id="x", roles=frozenset(["c", "a", "b"]))
    e1 = _chain(1)[0].model_copy(update={"actor": a})
    e2 = _chain(1)[0].model_copy(update={"actor": b})
    assert entry_hash(e1) == entry_hash(e2)


def test_check_chain_accepts_an_intact_chain() -> None:
    """An untouched chain verifies and all entries are counted."""
    assert check_chain("p", _chain(4)) == (4, None)


def test_check_chain_finds_edits_deletions_insertions_and_reorders() -> None:
    """Each kind of tampering is reported at the first bad sequence number."""
    chain = _chain(4)
    edited = [*chain[:2], chain[2].model_copy(update={"evidence": {"n": 99}}), chain[3]]
    deleted = [chain[0], chain[2], chain[3]]
    reordered = [chain[0], chain[2], chain[1], chain[3]]
    forged = seal(
        **{**chain[1].model_dump(exclude={"hash"}), "evidence": {"n": 42}, "actor": ACTOR}
    )
    inserted = [chain[0], forged, *chain[1:]]
    found = {
        name: check_chain("p", entries)[1]
        for name, entries in {
            "edited": edited,
            "deleted": deleted,
            "reordered": reordered,
            "inserted": inserted,
        }.items()
    }
    assert {k: (v.seq, v.reason) for k, v in found.items() if v} == {
        "edited": (3, "hash mismatch"),
        "deleted": (2, "sequence gap: expected 2, found 3"),
        "reordered": (2, "sequence gap: expected 2, found 3"),
        "inserted": (3, "sequence gap: expected 3, found 2"),
    }


def test_check_chain_rejects_entries_of_another_project() -> None:
    """An entry filed under another project id is reported as foreign."""
    problem = check_chain("q", _chain(1, project_id="p"))[1]
    assert problem is not None
    assert problem.reason == "foreign entry"


def test_merkle_root_follows_rfc6962() -> None:
    """Empty tree, one leaf and three leaves match RFC 6962's definitions."""
    assert merkle_root([]) == hashlib.sha256(b"").hexdigest()
    a, b, c = (leaf_hash(p, 1, "h") for p in "abc")
    assert merkle_root([a]) == a.hex()
    ab = hashlib.sha256(b"\x01" + a + b).digest()
    assert merkle_root([a, b, c]) == hashlib.sha256(b"\x01" + ab + c).hexdigest()
    assert leaf_hash("a", 1, "h")[:1] != b""  # a digest, domain-separated by 0x00 inside


def test_replay_rebuilds_state_data_and_records() -> None:
    """Replaying accepted entries gives the state, merged data and all records."""
    project = replay(_chain(3))
    assert project is not None
    assert (project.state, project.version, project.data) == ("contracted", 3, {"title": "t"})
    assert [r.id for r in project.records] == ["n1", "n2", "n3"]
    assert replay([]) is None


_texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_texts, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(
    event=_texts,
    states=st.tuples(st.none() | _texts, st.none() | _texts),
    accepted=st.booleans(),
    evidence=st.dictionaries(_texts, _json, max_size=3),
    data=st.dictionaries(_texts, _json, max_size=3),
    seq=st.integers(min_value=1, max_value=10**9),
    roles=st.frozensets(st.sampled_from(["applicant", "purchaser", "评审"]), max_size=3),
    basis=st.none()
    | st.builds(DecisionBasis, lifecycle=_texts, rules=_texts, policy=_texts, policy_hash=_texts),
    clamped=st.none() | st.datetimes(timezones=st.just(UTC)),
)
def test_fast_digest_equals_canonical_encoding_of_the_fields(
    event: str,
    states: tuple[str | None, str | None],
    accepted: bool,
    evidence: dict[str, object],
    data: dict[str, object],
    seq: int,
    roles: frozenset[str],
    basis: DecisionBasis | None,
    clamped: datetime | None,
) -> None:
    """The hand-assembled entry hash is sha256 of the canonical JSON of its fields.

    ``decided_under`` and ``clamped_from`` are keys of that JSON when they are set and
    absent when not (entries written before they existed keep their hashes).
    """
    actor = Actor(id='a\u00e9\u4e2d"\\', roles=roles, organisation=None)
    refusals = (Refusal(code="x.y", message="m\n", message_zh="中", details={"n": 1}),)
    records = (Record(kind="k", id="r", data={"v": [1, "2"]}, seq=seq),)
    args = (
        "p\u2028",
        seq,
        "fire",
        event or "e",
        states[0],
        states[1],
        accepted,
        actor,
        T,
        evidence,
        refusals if not accepted else (),
        records,
        data,
        "0" * 64,
        basis,
        clamped,
    )
    names = (
        "project_id",
        "seq",
        "kind",
        "event",
        "from_state",
        "to_state",
        "accepted",
        "actor",
        "at",
        "evidence",
        "refusals",
        "records",
        "data",
        "prev_hash",
        "decided_under",
        "clamped_from",
    )
    fields = dict(zip(names, args, strict=True))
    for optional in ("decided_under", "clamped_from"):
        if fields[optional] is None:
            del fields[optional]
    if basis is not None:
        fields["decided_under"] = plain(basis)
    if clamped is not None:
        fields["clamped_from"] = iso_utc(clamped)
    fields["actor"] = plain(actor)
    fields["at"] = iso_utc(T)
    fields["refusals"] = [r.model_dump(mode="python") for r in fields["refusals"]]
    fields["records"] = [r.model_dump(mode="python") for r in fields["records"]]
    expected = hashlib.sha256(canonical_bytes(fields)).hexdigest()
    assert _digest(*args) == expected


def test_a_reference_entry_hashes_to_its_published_value() -> None:
    """The encoding is a contract with outside auditors: one entry's bytes and hash, fixed."""
    entry = seal(
        project_id="p-1",
        seq=2,
        kind="fire",
        event="approve",
        from_state="applied",
        to_state="reviewed",
        accepted=True,
        actor=Actor(id="staff-1", roles=frozenset({"purchaser"})),
        at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        evidence={"note": "审核"},
        refusals=(),
        records=(),
        data={},
        prev_hash="1" * 64,
        decided_under=DecisionBasis(
            lifecycle="a" * 64, rules="b" * 64, policy="v1", policy_hash="c" * 64
        ),
        clamped_from=datetime(2026, 2, 1, tzinfo=UTC),
    )
    assert entry_bytes(entry).decode() == (
        '{"accepted":true,"actor":{"id":"staff-1","organisation":null,"roles":["purchaser"]},'
        '"at":"2026-03-02T09:00:00.000000Z","clamped_from":"2026-02-01T00:00:00.000000Z",'
        '"data":{},"decided_under":{"lifecycle":"' + "a" * 64 + '","policy":"v1",'
        '"policy_hash":"' + "c" * 64 + '","rules":"' + "b" * 64 + '"},"event":"approve",'
        '"evidence":{"note":"审核"},"from_state":"applied","kind":"fire","prev_hash":"'
        + "1"
        * 64
        + '","project_id":"p-1","records":[],"refusals":[],"seq":2,'
        '"to_state":"reviewed"}'
    )
    assert entry.hash == hashlib.sha256(entry_bytes(entry)).hexdigest()


@settings(max_examples=200, deadline=None)
@given(
    project_id=_texts.filter(bool),
    event=_texts.filter(bool),
    states=st.tuples(_texts.filter(bool), _texts.filter(bool)),
    evidence=st.dictionaries(_texts, _json, max_size=3),
    seq=st.integers(min_value=1, max_value=10**9),
    roles=st.frozensets(st.sampled_from(["applicant", "purchaser", "评审"]), max_size=3),
    basis=st.builds(
        DecisionBasis, lifecycle=_texts, rules=_texts, policy=_texts, policy_hash=_texts
    ),
    at=st.datetimes(timezones=st.just(UTC)),
)
def test_a_moves_digest_and_entry_are_those_sealed_makes(
    project_id: str,
    event: str,
    states: tuple[str, str],
    evidence: dict[str, object],
    seq: int,
    roles: frozenset[str],
    basis: DecisionBasis,
    at: datetime,
) -> None:
    """`_move_digest` (its text spelt in one format) and `_move_entry` equal `sealed`.

    Names with quotes, backslashes, line separators and Chinese, spelt twice (the second
    time from the cache of names): the same hash and texts as the general encoder.
    """
    actor = Actor(id='a\u00e9\u4e2d"\\', roles=roles, organisation=None)
    expected, texts = sealed(
        project_id=project_id,
        seq=seq,
        kind="fire",
        event=event,
        from_state=states[0],
        to_state=states[1],
        accepted=True,
        actor=actor,
        at=at,
        evidence=evidence,
        refusals=(),
        records=(),
        data={},
        prev_hash="0" * 64,
        decided_under=basis,
    )
    for _twice in range(2):
        digest, move_texts = _move_digest(
            project_id, seq, event, *states, actor, at, evidence, "0" * 64, basis
        )
        assert (digest, move_texts) == (expected.hash, texts)
        entry = _move_entry(
            project_id, seq, event, *states, actor, at, evidence, "0" * 64, digest, basis
        )
        assert entry == expected
