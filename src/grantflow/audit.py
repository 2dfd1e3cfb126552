"""The tamper-evident audit trail: hash chains, Merkle checkpoints, verification, replay.

Each project has a chain: entry ``n`` stores the hash of entry ``n - 1`` (`GENESIS` for
the first) and its own hash, sha256 over the canonical encoding of all its other fields.
A checkpoint is a Merkle root (RFC 6962 hashing) over every chain's head; keep it outside
the database and `verify(store, checkpoint=...)` also proves no tail was cut or rewritten
before it was taken. `verify` and `checkpoint` need a store and nothing else: an auditor
can run them without an engine, a rule book or a policy.

Every entry also has a place in one append-only log, and the log is a Merkle tree as
Certificate Transparency builds it (RFC 6962/9162): `tree_head` sequences new entries and
returns the tree head (size and root) to sign (`grantflow.signing`); `inclusion_proof`
shows one entry is in a tree head without the rest of the log, `consistency_proof` that a
later tree head extends an earlier one; `check_log` tells whether the stored log still
has a tree head's root. The byte encodings are specified in ``docs/evidence.md``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring as _string
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from grantflow._canonical import (
    LastText,
    canonical_bytes,
    canonical_text,
    iso_utc,
    model_text,
    plain,
    strict_loads,
)
from grantflow._merkle import (
    EMPTY_ROOT,
    consistency_path,
    hash_children,
    hash_leaf,
    inclusion_path,
    tree_root,
    verify_consistency_path,
    verify_inclusion_path,
)
from grantflow.errors import EvidenceError, InvalidInput
from grantflow.models import (
    Actor,
    AuditEntry,
    AuditKind,
    DecisionBasis,
    Project,
    Record,
    Refusal,
    trusted,
    trusted_fields,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from grantflow.persistence import Store
    from grantflow.states import Lifecycle

__all__ = [
    "Checkpoint",
    "ConsistencyProof",
    "DEFAULT_ORIGIN",
    "EMPTY_ROOT",
    "EMPTY_RULES",
    "EntryTexts",
    "GENESIS",
    "HexHash",
    "InclusionProof",
    "Problem",
    "TreeHead",
    "VerifyReport",
    "check_chain",
    "check_log",
    "checkpoint",
    "consistency_path",
    "consistency_proof",
    "entry_bytes",
    "entry_hash",
    "entry_leaf",
    "hash_children",
    "hash_leaf",
    "inclusion_path",
    "inclusion_proof",
    "leaf_hash",
    "merkle_root",
    "replay",
    "seal",
    "sealed",
    "tree_head",
    "tree_root",
    "value_texts",
    "verify",
    "verify_consistency",
    "verify_consistency_path",
    "verify_inclusion",
    "verify_inclusion_path",
]

#: The `prev_hash` of a chain's first entry.
GENESIS = "0" * 64


# One basis per engine and policy, and bulk runs seal thousands of entries for one
# actor: the same object again is answered by identity, an equal one from the cache.
_basis_json = LastText(model_text)
_actor_json = LastText(model_text)


def _json_or(value: Any, empty: str) -> str:
    return canonical_bytes(value).decode("utf-8") if value else empty


def _digest(
    project_id: str,
    seq: int,
    kind: str,
    event: str,
    from_state: str | None,
    to_state: str | None,
    accepted: bool,
    actor: Actor,
    at: datetime,
    evidence: Mapping[str, Any],
    refusals: Sequence[Refusal],
    records: Sequence[Record],
    data: Mapping[str, Any],
    prev_hash: str,
    decided_under: DecisionBasis | None = None,
    clamped_from: datetime | None = None,
    texts: EntryTexts | None = None,
) -> str:
    """sha256 of the canonical JSON of the entry's fields, spelled out key by key.

    The same bytes as `canonical_bytes` of a dict of these fields (a test holds the two
    equal), assembled in sorted key order directly: sealing is the hottest step of a
    bulk run.
    """
    text = _text(
        project_id,
        seq,
        kind,
        event,
        from_state,
        to_state,
        accepted,
        actor,
        at,
        evidence,
        refusals,
        records,
        data,
        prev_hash,
        decided_under,
        clamped_from,
        texts,
    )
    return _hash_text(text, project_id)


def _hash_text(text: str, project_id: str) -> str:
    """sha256 (hex) of an entry's canonical text, encoded as UTF-8."""
    try:
        data_bytes = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"text that cannot be encoded as UTF-8 in the entry ({exc.reason})",
            field="entry",
            project_id=project_id if project_id.isprintable() else None,
        ) from None
    return hashlib.sha256(data_bytes).hexdigest()


def _text(
    project_id: str,
    seq: int,
    kind: str,
    event: str,
    from_state: str | None,
    to_state: str | None,
    accepted: bool,
    actor: Actor,
    at: datetime,
    evidence: Mapping[str, Any],
    refusals: Sequence[Refusal],
    records: Sequence[Record],
    data: Mapping[str, Any],
    prev_hash: str,
    decided_under: DecisionBasis | None,
    clamped_from: datetime | None,
    texts: EntryTexts | None = None,
) -> str:
    if texts is None:
        texts = value_texts(evidence, refusals, records, data)
    return _assemble(
        project_id,
        seq,
        kind,
        event,
        from_state,
        to_state,
        accepted,
        _actor_json(actor),
        iso_utc(at),
        None if clamped_from is None else iso_utc(clamped_from),
        *texts,
        prev_hash,
        None if decided_under is None else _basis_json(decided_under),
    )


#: The canonical JSON of an entry's evidence, refusals, records and data, in that order:
#: the four texts its hash is assembled from (see `value_texts`).
EntryTexts = tuple[str, str, str, str]


def value_texts(
    evidence: Mapping[str, Any],
    refusals: Sequence[Refusal],
    records: Sequence[Record],
    data: Mapping[str, Any],
) -> EntryTexts:
    """The canonical JSON of an entry's four JSON values, as its hash spells them.

    The SQL store writes these very texts into the audit row's columns (`sealed` hands
    them over with the entry), so an entry's values are encoded once, not twice.
    """
    return (
        _json_or(evidence, "{}"),
        _json_or([r.model_dump(mode="python") for r in refusals], "[]") if refusals else "[]",
        _json_or([r.model_dump(mode="python") for r in records], "[]") if records else "[]",
        _json_or(data, "{}"),
    )


def _assemble(
    project_id: str,
    seq: int,
    kind: str,
    event: str,
    from_state: str | None,
    to_state: str | None,
    accepted: bool,
    actor: str,
    at: str,
    clamped_from: str | None,
    evidence: str,
    refusals: str,
    records: str,
    data: str,
    prev_hash: str,
    decided_under: str | None,
) -> str:
    """The canonical text of an entry from its fields, JSON values already encoded."""
    # The two later fields are left out when empty, so entries written before they
    # existed keep their hashes.
    return "".join(
        (
            '{"accepted":',
            "true" if accepted else "false",
            ',"actor":',
            actor,
            ',"at":"',
            at,
            '"' if clamped_from is None else f'","clamped_from":"{clamped_from}"',
            ',"data":',
            data,
            "" if decided_under is None else ',"decided_under":' + decided_under,
            ',"event":',
            _string(event),
            ',"evidence":',
            evidence,
            ',"from_state":',
            "null" if from_state is None else _string(from_state),
            ',"kind":',
            _string(kind),
            ',"prev_hash":',
            _string(prev_hash),
            ',"project_id":',
            _string(project_id),
            ',"records":',
            records,
            ',"refusals":',
            refusals,
            ',"seq":',
            str(int(seq)),
            ',"to_state":',
            "null" if to_state is None else _string(to_state),
            "}",
        )
    )


def entry_bytes(entry: AuditEntry) -> bytes:
    """Return the exact bytes an entry's hash is the sha256 of (canonical JSON, UTF-8).

    Every field but ``hash``; what an outside auditor is given to recompute the hash.
    """
    return _text(
        entry.project_id,
        entry.seq,
        entry.kind,
        entry.event,
        entry.from_state,
        entry.to_state,
        entry.accepted,
        entry.actor,
        entry.at,
        entry.evidence,
        entry.refusals,
        entry.records,
        entry.data,
        entry.prev_hash,
        entry.decided_under,
        entry.clamped_from,
    ).encode("utf-8")


def entry_hash(entry: AuditEntry | Mapping[str, Any]) -> str:
    """Return the sha256 hex digest of an entry's canonical encoding, `hash` excluded."""
    if not isinstance(entry, AuditEntry):
        entry = AuditEntry.model_validate({**entry, "hash": entry.get("hash", "")})
    return _digest(
        entry.project_id,
        entry.seq,
        entry.kind,
        entry.event,
        entry.from_state,
        entry.to_state,
        entry.accepted,
        entry.actor,
        entry.at,
        entry.evidence,
        entry.refusals,
        entry.records,
        entry.data,
        entry.prev_hash,
        entry.decided_under,
        entry.clamped_from,
    )


def seal(
    *,
    project_id: str,
    seq: int,
    kind: AuditKind,
    event: str,
    from_state: str | None,
    to_state: str | None,
    accepted: bool,
    actor: Actor,
    at: datetime,
    evidence: Mapping[str, Any],
    refusals: Sequence[Refusal | Mapping[str, Any]],
    records: Sequence[Record | Mapping[str, Any]],
    data: Mapping[str, Any],
    prev_hash: str,
    decided_under: DecisionBasis | Mapping[str, Any] | None = None,
    clamped_from: datetime | None = None,
) -> AuditEntry:
    """Build an `AuditEntry` with its hash computed."""
    return sealed(
        project_id=project_id,
        seq=seq,
        kind=kind,
        event=event,
        from_state=from_state,
        to_state=to_state,
        accepted=accepted,
        actor=actor,
        at=at,
        evidence=evidence,
        refusals=refusals,
        records=records,
        data=data,
        prev_hash=prev_hash,
        decided_under=decided_under,
        clamped_from=clamped_from,
    )[0]


def sealed(
    *,
    project_id: str,
    seq: int,
    kind: AuditKind,
    event: str,
    from_state: str | None,
    to_state: str | None,
    accepted: bool,
    actor: Actor,
    at: datetime,
    evidence: Mapping[str, Any],
    refusals: Sequence[Refusal | Mapping[str, Any]],
    records: Sequence[Record | Mapping[str, Any]],
    data: Mapping[str, Any],
    prev_hash: str,
    decided_under: DecisionBasis | Mapping[str, Any] | None = None,
    clamped_from: datetime | None = None,
) -> tuple[AuditEntry, EntryTexts]:
    """`seal`, and the entry's `EntryTexts` its hash was computed from (for the writer)."""
    if decided_under is not None and not isinstance(decided_under, DecisionBasis):
        decided_under = DecisionBasis.model_validate(decided_under)
    refusal_models = (
        tuple(r if isinstance(r, Refusal) else Refusal.model_validate(r) for r in refusals)
        if refusals
        else ()
    )
    record_models = (
        tuple(r if isinstance(r, Record) else Record.model_validate(r) for r in records)
        if records
        else ()
    )
    texts = value_texts(evidence, refusal_models, record_models, data)
    digest = _digest(
        project_id,
        seq,
        kind,
        event,
        from_state,
        to_state,
        accepted,
        actor,
        at,
        evidence,
        refusal_models,
        record_models,
        data,
        prev_hash,
        decided_under,
        clamped_from,
        texts,
    )
    # Every field was validated on the way in (engine inputs) or built here: skip a
    # second validation pass, which would double the cost of an entry in bulk runs.
    entry = trusted_fields(
        AuditEntry,
        {
            "project_id": project_id,
            "seq": seq,
            "kind": kind,
            "event": event,
            "from_state": from_state,
            "to_state": to_state,
            "accepted": accepted,
            "actor": actor,
            "at": at,
            "evidence": evidence,
            "refusals": refusal_models,
            "records": record_models,
            "data": data,
            "prev_hash": prev_hash,
            "hash": digest,
            "decided_under": decided_under,
            "clamped_from": clamped_from,
        },
    )
    return entry, texts


def _move_digest(
    project_id: str,
    seq: int,
    event: str,
    from_state: str,
    to_state: str,
    actor: Actor,
    at: datetime,
    evidence: Mapping[str, Any],
    prev_hash: str,
    decided_under: DecisionBasis,
) -> tuple[str, EntryTexts]:
    """The hash and texts of an accepted ``fire`` adding no record and no data, unclamped.

    The commonest entry of a bulk run, hashed without `sealed`'s normalising steps (which
    have nothing to normalise here); `_move_entry` builds the entry itself. A Hypothesis
    property holds the two equal to `sealed`. Private: the decision core is the caller.
    """
    texts = (_json_or(evidence, "{}"), "[]", "[]", "{}")
    names = _NAMES
    # `_assemble`'s text with this case's constants spelt in (one format, no tuple).
    text = (
        f'{{"accepted":true,"actor":{_actor_json(actor)},"at":"{iso_utc(at)}",'
        f'"data":{{}},"decided_under":{_basis_json(decided_under)},'
        f'"event":{names.get(event) or _name(event)},"evidence":{texts[0]},'
        f'"from_state":{names.get(from_state) or _name(from_state)},"kind":"fire",'
        f'"prev_hash":{_string(prev_hash)},"project_id":{_string(project_id)},'
        f'"records":[],"refusals":[],"seq":{int(seq)},'
        f'"to_state":{names.get(to_state) or _name(to_state)}}}'
    )
    return _hash_text(text, project_id), texts


#: Event and state names as JSON strings: a lifecycle has a few dozen (bounded all the
#: same, as names read from a store could be anything).
_NAMES: dict[str, str] = {}


def _name(name: str) -> str:
    spelled = _string(name)
    if len(_NAMES) < 512:
        _NAMES[name] = spelled
    return spelled


def _move_entry(
    project_id: str,
    seq: int,
    event: str,
    from_state: str,
    to_state: str,
    actor: Actor,
    at: datetime,
    evidence: Mapping[str, Any],
    prev_hash: str,
    digest: str,
    decided_under: DecisionBasis,
) -> AuditEntry:
    """The entry `_move_digest` hashed, its hash `digest` already computed."""
    return trusted_fields(
        AuditEntry,
        {
            "project_id": project_id,
            "seq": seq,
            "kind": "fire",
            "event": event,
            "from_state": from_state,
            "to_state": to_state,
            "accepted": True,
            "actor": actor,
            "at": at,
            "evidence": evidence,
            "refusals": (),
            "records": (),
            "data": {},
            "prev_hash": prev_hash,
            "hash": digest,
            "decided_under": decided_under,
            "clamped_from": None,
        },
    )


class Problem(BaseModel):
    """One integrity failure: which project, the first bad sequence number, and why.

    A stored fact that differs from what the chain gives also names the `field`
    (``state``, ``data.amount_awarded``, ``records.contract/c-1.data.amount``, ...)
    and both values as compact JSON: `stored` and `replayed`.
    """

    model_config = ConfigDict(frozen=True)

    project_id: str
    seq: int | None
    reason: str
    field: str | None = None
    stored: str | None = None
    replayed: str | None = None


class VerifyReport(BaseModel):
    """What `Engine.verify` found: ``ok`` when there is no problem."""

    model_config = ConfigDict(frozen=True)

    projects: int
    entries: int
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every chain (and the checkpoint, if given) verified."""
        return not self.problems


class Checkpoint(BaseModel):
    """A portfolio digest to keep outside the database: Merkle root over chain heads."""

    model_config = ConfigDict(frozen=True)

    id: str
    at: datetime
    size: int
    root: str


def check_chain(project_id: str, entries: Iterable[AuditEntry]) -> tuple[int, Problem | None]:
    """Verify one chain; return the number of entries read and the first problem, if any.

    Detects edited entries (hash mismatch), deleted or inserted ones (sequence gap or
    broken link), reordered ones, and entries filed under another project.
    """
    prev = GENESIS
    count = 0
    for expected_seq, entry in enumerate(entries, start=1):
        count += 1
        if entry.project_id != project_id:
            return count, Problem(project_id=project_id, seq=entry.seq, reason="foreign entry")
        if entry.seq != expected_seq:
            return count, Problem(
                project_id=project_id,
                seq=expected_seq,
                reason=f"sequence gap: expected {expected_seq}, found {entry.seq}",
            )
        if entry.prev_hash != prev:
            return count, Problem(project_id=project_id, seq=entry.seq, reason="broken link")
        if entry_hash(entry) != entry.hash:
            return count, Problem(project_id=project_id, seq=entry.seq, reason="hash mismatch")
        prev = entry.hash
    return count, None


def leaf_hash(project_id: str, seq: int, head: str) -> bytes:
    """RFC 6962 leaf hash of one chain head: sha256(0x00 || canonical leaf)."""
    leaf = canonical_bytes({"project_id": project_id, "seq": seq, "head": head})
    return hashlib.sha256(b"\x00" + leaf).digest()


def merkle_root(leaves: Sequence[bytes]) -> str:
    """RFC 6962 Merkle tree hash over leaf hashes (already domain-separated), hex."""
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    return _mth(leaves).hex()


def _mth(leaves: Sequence[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(leaves[:split]) + _mth(leaves[split:])).digest()


def replay(entries: Iterable[AuditEntry], *, lifecycle: Lifecycle | None = None) -> Project | None:
    """Rebuild a project from its audit entries; ``None`` if no entry created it.

    Accepted entries set the state, merge their `data` into the project's attributes and
    add their records; refused entries only advance the version, head and time. Every entry is
    checked on the way: it starts from the state the entries before it left, a refused
    one changes and adds nothing, records are added once and carry their entry's
    number, and no entry is dated before the one before it. With
    `lifecycle`, every accepted entry must also be one of its edges: the creating event
    into its first state, or an event from the entry's from-state to its to-state.

    Raises:
        EvidenceError: an entry breaks one of these (its `project_id` and `seq` say which).
    """
    walk = _Replay(lifecycle)
    for entry in entries:
        reason = walk.step(entry)
        if reason is not None:
            raise EvidenceError(
                f"entry {entry.project_id}/{entry.seq}: {reason}",
                project_id=entry.project_id,
                seq=entry.seq,
            )
    return walk.project()


#: The rule-book fingerprint of an empty `RuleBook` (no rule, fact or effect): entries
#: recorded under it were decided by the lifecycle alone.
EMPTY_RULES = hashlib.sha256(b'{"events":{},"record_kinds":[]}').hexdigest()

_MIGRATION_KEYS = frozenset({"policy_version", "rubric_versions"})


def _check_refused(entry: AuditEntry) -> str | None:
    if entry.to_state != entry.from_state:
        return f"refused, yet moves the project to {entry.to_state!r}"
    if entry.records or entry.data:
        return "refused, yet adds records or data"
    if not entry.refusals:
        return "refused without a refusal"
    return None


class _Replay:
    """One chain walked entry by entry: the project it builds and the first broken step."""

    __slots__ = (
        "created",
        "data",
        "head",
        "keys",
        "last_change",
        "lifecycle",
        "project_id",
        "records",
        "state",
        "updated",
        "version",
    )

    def __init__(self, lifecycle: Lifecycle | None) -> None:
        self.lifecycle = lifecycle
        self.project_id = ""
        self.state = ""  # no project yet
        self.version = 0
        self.head = GENESIS
        self.data: dict[str, Any] = {}
        self.records: list[Record] = []
        self.keys: set[tuple[str, str]] = set()
        self.created: datetime | None = None
        self.updated: datetime | None = None
        self.last_change: datetime | None = None

    def step(self, entry: AuditEntry) -> str | None:
        """Apply `entry`; return why it cannot follow the entries before it, if it cannot."""
        reason = self._check(entry)
        self.project_id = entry.project_id
        self.version = entry.seq
        self.head = entry.hash
        if reason is not None:
            return reason
        self.last_change = entry.at
        if entry.accepted:
            if entry.to_state is not None:
                self.state = entry.to_state
            self.data.update(entry.data)
            for record in entry.records:
                self.records.append(record)
                self.keys.add((record.kind, record.id))
            if entry.kind == "submit":
                self.created = entry.at
        if self.created is not None:
            self.updated = entry.at
        return None

    def project(self) -> Project | None:
        """The project the entries so far build (``None`` if none created it)."""
        if self.created is None or self.updated is None:
            return None
        # Built from validated entries: no second validation of the same values.
        return trusted_fields(
            Project,
            {
                "id": self.project_id,
                "state": self.state,
                "version": self.version,
                "head": self.head,
                "data": self.data,
                "records": tuple(self.records),
                "created_at": self.created,
                "updated_at": self.updated,
            },
        )

    def _check(self, entry: AuditEntry) -> str | None:  # noqa: PLR0911 - one per broken rule
        state = self.state or None
        if self.last_change is not None and entry.at < self.last_change:
            return (
                f"dated {iso_utc(entry.at)}, before the entry before it "
                f"({iso_utc(self.last_change)})"
            )
        if entry.from_state != state:
            return f"starts from {entry.from_state!r}, but the project is in {state!r}"
        if not entry.accepted:
            return _check_refused(entry)
        if entry.refusals:
            return "accepted, yet carries refusals"
        if entry.kind == "submit" and state is not None:
            return "a submission of a project that exists"
        if entry.kind != "submit" and state is None:
            return f"a {entry.kind} entry before the project was submitted"
        return self._check_kind(entry, state) or self._check_records(entry)

    def _check_records(self, entry: AuditEntry) -> str | None:
        for record in entry.records:
            if record.seq != entry.seq:
                return f"record {record.kind}/{record.id} claims entry {record.seq}"
            if (record.kind, record.id) in self.keys:
                return f"record {record.kind}/{record.id} is added twice"
        return None

    def _check_kind(self, entry: AuditEntry, state: str | None) -> str | None:  # noqa: PLR0911
        lifecycle = self.lifecycle
        if entry.kind in {"record", "migrate"}:
            if entry.to_state != state:
                return f"a {entry.kind} entry that moves the project to {entry.to_state!r}"
            if entry.kind == "migrate":
                if entry.records or not _MIGRATION_KEYS.issuperset(entry.data):
                    return "a policy migration that changes more than the pinned policy"
                return None
            kind = entry.event.removeprefix("record.")
            if not entry.event.startswith("record.") or not entry.records:
                return f"a record entry ({entry.event!r}) that adds no record"
            if entry.records[0].kind != kind:
                return f"a {entry.event!r} entry whose record is a {entry.records[0].kind!r}"
            return None
        if entry.to_state is None:
            return "accepted, yet leads to no state"
        if lifecycle is None:
            return None
        if entry.kind == "submit":
            first = lifecycle.initial_event
            if (entry.event, entry.to_state) != (first.name, first.target):
                return (
                    f"a submission by {entry.event!r} into {entry.to_state!r}; lifecycle "
                    f"{lifecycle.name!r} creates projects by {first.name!r} into {first.target!r}"
                )
            return None
        if (
            not lifecycle.has_event(entry.event)
            or lifecycle.event(entry.event).creates
            or state not in lifecycle.event(entry.event).sources
            or lifecycle.event(entry.event).target != entry.to_state
        ):
            return (
                f"{entry.event!r} from {state!r} to {entry.to_state!r} is not an edge of "
                f"lifecycle {lifecycle.name!r}"
            )
        return None


# -- verification over a store ---------------------------------------------------------------


def verify(
    store: Store,
    *,
    checkpoint: Checkpoint | TreeHead | str | bytes | None = None,
    public_key: Ed25519PublicKey | None = None,
    origin: str | None = None,
    lifecycle: Lifecycle | None = None,
    expect: Iterable[DecisionBasis] | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check every stored fact against the audit chains; report the first problem of each.

    For every chain: the hashes and links (`check_chain`), each step of the replay (see
    `replay`; with `lifecycle`, every accepted entry is an edge of it), and then the
    project row (state, version, head, data including the pinned policy, times) and
    every record row, which must equal what replaying the chain produces: a mismatch
    names the field and both values. Record rows of no project are reported too.

    Args:
        store: the store to check; nothing else is needed.
        checkpoint: also prove the store still holds what a checkpoint covered: a
            `Checkpoint` (chain heads, see `checkpoint`), a `TreeHead` you already
            trust, or the text of a signed checkpoint (`grantflow.signing`), which needs
            `public_key` (and is checked against `origin` when given).
        public_key: the purchaser's Ed25519 public key, for a signed checkpoint.
        origin: the log name a signed checkpoint must carry.
        lifecycle: the lifecycle every accepted entry must follow.
        expect: the decision bases (`Engine.decision_bases`) every entry must have been
            decided under; entries decided by an empty rule book, an unknown one, or
            recorded before grantflow kept the basis, are reported.
        progress: called with the number of entries just checked, every few thousand.

    Streams: a few queries per page and one chain in memory at a time. On SQLite and
    PostgreSQL the rows are read raw and a chain whose stored values are exactly as
    grantflow writes them is checked without validating models again; any other chain
    goes through the models, so the report is the same either way.

    >>> from datetime import UTC, datetime
    >>> from grantflow.persistence import MemoryStore
    >>> store = MemoryStore()
    >>> verify(store).ok
    True
    >>> cp = checkpoint(store, at=datetime(2025, 1, 1, tzinfo=UTC))
    >>> verify(store, checkpoint=cp).ok
    True
    """
    head = _trusted_head(checkpoint, public_key, origin)
    known = None if expect is None else frozenset(expect)
    report = _verify_fast(store, lifecycle, known, progress)
    if report is None:
        report = _verify_chains(store, lifecycle, known, progress)
    problems = list(report.problems)
    if isinstance(checkpoint, Checkpoint):
        problems.extend(_check_checkpoint(store, checkpoint))
    elif head is not None:
        problems.extend(check_log(store, head))
    return VerifyReport(projects=report.projects, entries=report.entries, problems=tuple(problems))


def _verify_chains(
    store: Store,
    lifecycle: Lifecycle | None,
    known: frozenset[DecisionBasis] | None,
    progress: Callable[[int], None] | None,
) -> VerifyReport:
    """Every chain through the store's models: the straightforward path."""
    problems: list[Problem] = []
    projects = entries = pending = 0
    # Four sorted sequences side by side: chain ids, entries, project rows, record rows.
    stream = _Merge(store.all_entries(), store.projects(), store.all_records())
    for pid in store.chain_ids():
        projects += 1
        chain, row, rows = stream.take(pid)
        problems.extend(stream.orphans())
        count, problem = _check_one(pid, chain, row, rows, lifecycle, known)
        entries += count
        if problem is not None:
            problems.append(problem)
        pending += count
        if progress is not None and pending >= _PROGRESS_EVERY:
            progress(pending)
            pending = 0
    stream.finish()
    problems.extend(stream.orphans())
    if progress is not None and pending:
        progress(pending)
    return VerifyReport(projects=projects, entries=entries, problems=tuple(problems))


def _check_one(
    pid: str,
    chain: list[AuditEntry],
    row: Project | None,
    rows: list[Record],
    lifecycle: Lifecycle | None,
    known: frozenset[DecisionBasis] | None,
) -> tuple[int, Problem | None]:
    count, problem = check_chain(pid, chain)
    if problem is None:
        problem = _check_facts(pid, chain, row, rows, lifecycle)
    if problem is None and known is not None:
        problem = _check_bases(pid, chain, known)
    return count, problem


_PROGRESS_EVERY = 2_000

# -- verify's fast path: raw SQL rows, each value's form checked before it is trusted -------
#
# `_verify_raw` reads the rows `SqlStore._verify_rows` gives (JSON as text, times as SQLite
# text; PostgreSQL's converted to that form, with the JSON an entry's hash covers spelt
# canonically by the store) and vouches for a chain only when every value is exactly
# what grantflow writes: canonical JSON, the SQLite time format, the types the models
# would accept unchanged.
# Then the models it builds without validation (`trusted`) equal the ones the
# straightforward path validates, the hash over the stored text equals the hash over
# their canonical encoding, and the same checks (`_check_facts`, `_check_bases`) run on
# them. Any chain it does not vouch for, or that has a problem, is read again through
# the store's models (`_verify_models`) and checked by the straightforward path, so the
# report is the same (tests/test_verify_fast.py holds the two equal).

_RawRows = Iterator[tuple[Any, ...]]
#: Audit, project and record rows, and whether the store spelt the entries' JSON itself.
_RawStreams = tuple[_RawRows, _RawRows, _RawRows, bool]
_ModelReader = Callable[[str], tuple[list[AuditEntry], Project | None, list[Record]]]


class _Unvouched(Exception):  # noqa: N818 - internal signal, never escapes verify
    """A row the fast path cannot even sort (an id that is not text): take the slow path."""


def _verify_raw(
    store: Store,
    raw: _RawStreams,
    read: _ModelReader,
    lifecycle: Lifecycle | None,
    known: frozenset[DecisionBasis] | None,
    progress: Callable[[int], None] | None,
) -> VerifyReport | None:
    """Every chain from raw rows, merge-joined in id order; ``None``: use the slow path."""
    audit_rows, project_rows, record_rows, respelt = raw
    problems: list[Problem] = []
    projects = entries = pending = 0
    try:
        entry = _keyed(next(audit_rows, None))
        row = _keyed(next(project_rows, None))
        record = _keyed(next(record_rows, None))
        for pid in store.chain_ids():
            projects += 1
            chain, entry = _take(pid, entry, audit_rows)
            while row is not None and row[0] < pid:
                row = _keyed(next(project_rows, None))
            own_row = row if row is not None and row[0] == pid else None
            records: list[tuple[Any, ...]] = []
            while record is not None and record[0] <= pid:
                if record[0] == pid:
                    records.append(record)
                else:
                    _orphan_once(problems, record[0], read)
                record = _keyed(next(record_rows, None))
            count = _vouch(pid, chain, own_row, records, lifecycle, known, respelt)
            if count is None:
                count, problem = _check_one(pid, *read(pid), lifecycle, known)
                if problem is not None:
                    problems.append(problem)
            entries += count
            pending += count
            if progress is not None and pending >= _PROGRESS_EVERY:
                progress(pending)
                pending = 0
        while record is not None:
            _orphan_once(problems, record[0], read)
            record = _keyed(next(record_rows, None))
    except _Unvouched:
        return None
    if progress is not None and pending:
        progress(pending)
    return VerifyReport(projects=projects, entries=entries, problems=tuple(problems))


def _verify_fast(
    store: Store,
    lifecycle: Lifecycle | None,
    known: frozenset[DecisionBasis] | None,
    progress: Callable[[int], None] | None,
) -> VerifyReport | None:
    """The fast path, on a store that offers raw rows (SQL stores); ``None`` elsewhere."""
    rows: Callable[[], _RawStreams | None] | None
    rows = getattr(store, "_verify_rows", None)
    read: _ModelReader | None = getattr(store, "_verify_models", None)
    raw = None if rows is None else rows()
    if raw is None or read is None:
        return None
    return _verify_raw(store, raw, read, lifecycle, known, progress)


def _take(
    pid: str, first: tuple[Any, ...] | None, rows: _RawRows
) -> tuple[list[tuple[Any, ...]], tuple[Any, ...] | None]:
    """The audit rows of `pid` from `first` on, and the first row after them."""
    chain: list[tuple[Any, ...]] = []
    while first is not None and first[0] <= pid:
        if first[0] == pid:
            chain.append(first)
        first = _keyed(next(rows, None))
    return chain, first


def _keyed(row: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    if row is not None and type(row[0]) is not str:
        raise _Unvouched
    return row


def _orphan_once(problems: list[Problem], owner: str, read: _ModelReader) -> None:
    # One problem per project without a chain, about its first record row (as `_Merge`).
    if problems and problems[-1].project_id == owner:
        return
    first = read(owner)[2][0]
    problems.append(_mismatch(owner, f"records.{_key(first)}", first.data, _ABSENT))


def _vouch(
    pid: str,
    rows: list[tuple[Any, ...]],
    project_row: tuple[Any, ...] | None,
    record_rows: list[tuple[Any, ...]],
    lifecycle: Lifecycle | None,
    known: frozenset[DecisionBasis] | None,
    respelt: bool = False,
) -> int | None:
    """The number of entries if the chain and its rows are sound as stored, else ``None``.

    `respelt`: the store spelt the JSON of the audit rows canonically itself (see
    `SqlStore._verify_rows`), so it is decoded, not compared with its canonical spelling.
    """
    chain: list[AuditEntry] = []
    prev = GENESIS
    for expected, values in enumerate(rows, start=1):
        entry = _stored_entry(values, expected, prev, respelt)
        if entry is None:
            return None
        chain.append(entry)
        prev = entry.hash
    project = None if project_row is None else _stored_project(project_row)
    if project_row is not None and project is None:
        return None
    records: list[Record] = []
    for values in record_rows:
        record = _stored_record_row(values)
        if record is None:
            return None
        records.append(record)
    if _check_facts(pid, chain, project, records, lifecycle) is not None:
        return None
    if known is not None and _check_bases(pid, chain, known) is not None:
        return None
    return len(chain)


_KINDS = frozenset({"submit", "fire", "record", "migrate"})


def _stored_entry(  # noqa: PLR0911 - one return per value that is not as written
    values: tuple[Any, ...], expected_seq: int, prev: str, respelt: bool = False
) -> AuditEntry | None:
    """The entry a raw audit row holds, if every value is exactly as grantflow writes it."""
    pid, seq, kind, event, src, dst, accepted, actor_text, at_text = values[:9]
    evidence_text, refusals_text, records_text, data_text, link, digest = values[9:15]
    basis_text, clamped_text = values[15:]
    if type(seq) is not int or seq != expected_seq or link != prev or type(digest) is not str:
        return None
    if kind not in _KINDS or type(event) is not str or accepted not in (0, 1):
        return None
    if (src is not None and type(src) is not str) or (dst is not None and type(dst) is not str):
        return None
    actor = _stored_actor(actor_text) if type(actor_text) is str else None
    at = _stored_instant(at_text) if type(at_text) is str else None
    clamped = None
    if clamped_text is not None:
        clamped = _stored_instant(clamped_text) if type(clamped_text) is str else None
        if clamped is None:
            return None
    basis = None
    if basis_text is not None:
        basis = _stored_basis(basis_text) if type(basis_text) is str else None
        if basis is None:
            return None
    hashed = not respelt
    evidence = _stored_object(evidence_text, hashed=hashed)
    data = _stored_object(data_text, hashed=hashed)
    refusals = _stored_refusals(refusals_text, hashed=hashed)
    records = _stored_records(records_text, hashed=hashed)
    if actor is None or at is None or evidence is None or data is None:
        return None
    if refusals is None or records is None:
        return None
    text = _assemble(
        pid,
        seq,
        kind,
        event,
        src,
        dst,
        bool(accepted),
        actor_text,
        at[1],
        None if clamped is None else clamped[1],
        evidence_text,
        refusals_text,
        records_text,
        data_text,
        link,
        basis_text,
    )
    try:
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != digest:
            return None
    except UnicodeEncodeError:
        return None
    return trusted_fields(
        AuditEntry,
        {
            "project_id": pid,
            "seq": seq,
            "kind": kind,
            "event": event,
            "from_state": src,
            "to_state": dst,
            "accepted": bool(accepted),
            "actor": actor,
            "at": at[0],
            "evidence": evidence,
            "refusals": refusals,
            "records": records,
            "data": data,
            "prev_hash": link,
            "hash": digest,
            "decided_under": basis,
            "clamped_from": None if clamped is None else clamped[0],
        },
    )


def _stored_project(values: tuple[Any, ...]) -> Project | None:
    pid, state, version, head, data_text, created_text, updated_text = values
    if not _identifier(pid) or type(state) is not str or type(version) is not int:
        return None
    created = _stored_instant(created_text) if type(created_text) is str else None
    updated = _stored_instant(updated_text) if type(updated_text) is str else None
    data = _stored_object(data_text, hashed=False)
    if type(head) is not str or created is None or updated is None or data is None:
        return None
    return trusted_fields(
        Project,
        {
            "id": pid,
            "state": state,
            "version": version,
            "head": head,
            "data": data,
            "records": (),
            "created_at": created[0],
            "updated_at": updated[0],
        },
    )


def _stored_record_row(values: tuple[Any, ...]) -> Record | None:
    _owner, kind, rid, data_text, seq, _pos = values
    data = _stored_object(data_text, hashed=False)
    if type(kind) is not str or type(rid) is not str or type(seq) is not int or data is None:
        return None
    return trusted(Record, kind=kind, id=rid, data=data, seq=seq)


# Canonical JSON as `canonical_bytes` writes plain values (no floats: refused on reading).
_CANONICAL, _STRICT = canonical_text, strict_loads
# An `Identifier` (grantflow.models): 1-128 characters, no control characters.
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_SQLITE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}")
_RECORD_KEYS = frozenset({"data", "id", "kind", "seq"})
_REFUSAL_KEYS = frozenset({"code", "details", "message", "message_zh", "rule"})


def _identifier(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= 128 and _CONTROL.search(value) is None


def _canonical_json(text: Any, *, hashed: bool = True) -> Any:
    """The JSON value `text` spells, if it holds no number with a point.

    When `hashed` (the text goes into an entry's hash), it must also be spelt canonically.
    """
    if type(text) is not str:
        return None
    try:
        value = _STRICT(text)
    except (ValueError, RecursionError):
        return None
    return value if not hashed or _CANONICAL(value) == text else None


def _stored_object(text: Any, *, hashed: bool = True) -> dict[str, Any] | None:
    # Project and record rows are compared by value, as the straightforward path does:
    # their spelling does not matter, only that the values are what the models accept.
    if text == "{}":
        return {}
    value = _canonical_json(text, hashed=hashed)
    return value if type(value) is dict else None


def _stored_records(text: Any, *, hashed: bool = True) -> tuple[Record, ...] | None:
    if text == "[]":
        return ()
    items = _canonical_json(text, hashed=hashed)
    if type(items) is not list:
        return None
    records = []
    for item in items:
        if type(item) is not dict or item.keys() != _RECORD_KEYS:
            return None
        kind, rid, data, seq = item["kind"], item["id"], item["data"], item["seq"]
        if not _identifier(kind) or not _identifier(rid):
            return None
        if type(data) is not dict or type(seq) is not int:
            return None
        records.append(trusted(Record, kind=kind, id=rid, data=data, seq=seq))
    return tuple(records)


def _stored_refusals(text: Any, *, hashed: bool = True) -> tuple[Refusal, ...] | None:
    if text == "[]":
        return ()
    items = _canonical_json(text, hashed=hashed)
    if type(items) is not list:
        return None
    refusals = []
    for item in items:
        if type(item) is not dict or item.keys() != _REFUSAL_KEYS:
            return None
        if type(item["details"]) is not dict or not all(
            type(item[name]) is str for name in ("code", "message", "message_zh", "rule")
        ):
            return None
        refusals.append(trusted(Refusal, **item))
    return tuple(refusals)


@functools.lru_cache(maxsize=1024)
def _stored_actor(text: str) -> Actor | None:
    try:
        actor = Actor.model_validate(json.loads(text))
    except (ValueError, RecursionError):  # pydantic's ValidationError is a ValueError
        return None
    return actor if _actor_json(actor) == text else None


@functools.lru_cache(maxsize=256)
def _stored_basis(text: str) -> DecisionBasis | None:
    try:
        basis = DecisionBasis.model_validate(json.loads(text))
    except (ValueError, RecursionError):
        return None
    return basis if _basis_json(basis) == text else None


@functools.lru_cache(maxsize=4096)
def _stored_instant(text: str) -> tuple[datetime, str] | None:
    """An instant stored as SQLite text by grantflow, and its canonical spelling."""
    if _SQLITE_TIME.fullmatch(text) is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.replace(tzinfo=UTC), f"{text[:10]}T{text[11:]}Z"


def _trusted_head(
    checkpoint: Checkpoint | TreeHead | str | bytes | None,
    public_key: Ed25519PublicKey | None,
    origin: str | None,
) -> TreeHead | None:
    if isinstance(checkpoint, TreeHead):
        return checkpoint
    if isinstance(checkpoint, str | bytes):
        if public_key is None:
            raise InvalidInput(
                "a signed checkpoint is verified with the purchaser's public key: pass public_key",
                field="public_key",
            )
        from grantflow.signing import open_checkpoint  # signing builds on this module

        return open_checkpoint(checkpoint, public_key, origin=origin)
    if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
        raise InvalidInput(
            "checkpoint must be a Checkpoint, a TreeHead or a signed checkpoint's text, "
            f"not {type(checkpoint).__name__}",
            field="checkpoint",
        )
    return None


def _check_facts(  # noqa: PLR0911 - one return per kind of mismatch
    project_id: str,
    chain: list[AuditEntry],
    row: Project | None,
    rows: list[Record],
    lifecycle: Lifecycle | None,
) -> Problem | None:
    walk = _Replay(lifecycle)
    for entry in chain:
        reason = walk.step(entry)
        if reason is not None:
            return Problem(project_id=project_id, seq=entry.seq, reason=reason)
    rebuilt = walk.project()
    if row is None:
        if rebuilt is not None:
            return Problem(project_id=project_id, seq=None, reason="project row missing")
        if rows:
            return _mismatch(project_id, f"records.{_key(rows[0])}", rows[0].data, None)
        return None
    if not chain:
        return Problem(project_id=project_id, seq=1, reason="project has no audit chain")
    last = chain[-1]
    if (row.version, row.head) != (last.seq, last.hash):
        # Same length: the last entry differs; else the first entry one side lacks.
        same = row.version == last.seq
        return Problem(
            project_id=project_id,
            seq=last.seq if same else min(row.version, last.seq) + 1,
            reason=f"project row at version {row.version}, chain ends at {last.seq}",
        )
    if rebuilt is None:
        return Problem(
            project_id=project_id, seq=None, reason="project row of a refused submission"
        )
    return _compare_project(row, rebuilt) or _compare_records(project_id, rows, rebuilt.records)


def _compare_project(row: Project, rebuilt: Project) -> Problem | None:
    for name in ("state", "created_at", "updated_at"):
        stored, replayed = getattr(row, name), getattr(rebuilt, name)
        if stored != replayed:
            return _mismatch(row.id, name, stored, replayed)
    if row.data != rebuilt.data:
        for key in sorted({*row.data, *rebuilt.data}):
            stored, replayed = row.data.get(key, _ABSENT), rebuilt.data.get(key, _ABSENT)
            if stored != replayed or (stored is _ABSENT) != (replayed is _ABSENT):
                return _mismatch(row.id, f"data.{key}", stored, replayed)
    return None


def _compare_records(
    project_id: str, stored: Sequence[Record], replayed: Sequence[Record]
) -> Problem | None:
    if len(stored) == len(replayed) and all(
        (a.kind, a.id, a.seq, a.data) == (b.kind, b.id, b.seq, b.data)
        for a, b in zip(stored, replayed, strict=True)
    ):
        return None
    by_key = {(r.kind, r.id): r for r in stored}
    for record in replayed:
        found = by_key.pop((record.kind, record.id), None)
        if found is None:
            return _mismatch(project_id, f"records.{_key(record)}", _ABSENT, record.data)
        if found.seq != record.seq:
            return _mismatch(project_id, f"records.{_key(record)}.seq", found.seq, record.seq)
        if found.data != record.data:
            for key in sorted({*found.data, *record.data}):
                a, b = found.data.get(key, _ABSENT), record.data.get(key, _ABSENT)
                if a != b or (a is _ABSENT) != (b is _ABSENT):
                    return _mismatch(project_id, f"records.{_key(record)}.data.{key}", a, b)
    for extra in by_key.values():  # records no entry added
        return _mismatch(project_id, f"records.{_key(extra)}", extra.data, _ABSENT)
    return _mismatch(project_id, "records", "another order", "the chain's order")


def _check_bases(
    project_id: str, chain: list[AuditEntry], known: frozenset[DecisionBasis]
) -> Problem | None:
    for entry in chain:
        basis = entry.decided_under
        if basis is not None and basis in known:
            continue
        if basis is None:
            reason = "decided under an unrecorded rule book (written before grantflow kept it)"
        elif basis.rules == EMPTY_RULES:
            reason = f"decided by an empty rule book (policy {basis.policy!r})"
        else:
            reason = (
                f"decided under an unknown rule book {basis.rules[:12]} (lifecycle "
                f"{basis.lifecycle[:12]}, policy {basis.policy!r})"
            )
        return Problem(project_id=project_id, seq=entry.seq, reason=reason)
    return None


class _Absent:
    def __repr__(self) -> str:
        return "(none)"


_ABSENT: Any = _Absent()


def _key(record: Record) -> str:
    return f"{record.kind}/{record.id}"


def _shown(value: Any) -> str:
    if value is _ABSENT:
        return "(none)"
    if isinstance(value, datetime):
        return iso_utc(value)
    try:
        text = canonical_bytes(plain(value)).decode("utf-8")
    except (TypeError, InvalidInput):
        text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


_SHOWN = 200


def _mismatch(project_id: str, field: str, stored: Any, replayed: Any) -> Problem:
    a, b = _shown(stored), _shown(replayed)
    return Problem(
        project_id=project_id,
        seq=None,
        reason=f"stored {field} is {a}, the chain gives {b}",
        field=field,
        stored=a,
        replayed=b,
    )


def checkpoint(store: Store, *, at: datetime) -> Checkpoint:
    """Return (and store) a Merkle root over every chain head of `store`, dated `at`."""
    leaves = []
    for pid in store.chain_ids():
        seq, head = store.chain_tip(pid)
        leaves.append((pid, seq, head))
    root = merkle_root([leaf_hash(*leaf) for leaf in leaves])
    cp = Checkpoint(id=uuid.uuid4().hex, at=at, size=len(leaves), root=root)
    store.save_checkpoint(cp, leaves)
    return cp


def _check_checkpoint(store: Store, cp: Checkpoint) -> list[Problem]:
    leaves = store.checkpoint_leaves(cp.id)
    if leaves is None:
        return [Problem(project_id="", seq=None, reason="checkpoint not found in store")]
    problems: list[Problem] = []
    current = []
    for pid, seq, head in leaves:
        stored = store.entry_hash_at(pid, seq)
        current.append(leaf_hash(pid, seq, stored or ""))
        if stored != head:
            reason = "entry missing (truncated)" if stored is None else "entry rewritten"
            problems.append(Problem(project_id=pid, seq=seq, reason=reason))
    expected = merkle_root([leaf_hash(*leaf) for leaf in leaves])
    if len(leaves) != cp.size or expected != cp.root:
        problems.append(
            Problem(project_id="", seq=None, reason="checkpoint leaves altered in store")
        )
    elif merkle_root(current) != cp.root and not problems:
        problems.append(Problem(project_id="", seq=None, reason="checkpoint root mismatch"))
    return problems


class _Merge:
    """Walks the store's sorted entries, project rows and record rows beside the chain ids."""

    def __init__(
        self,
        entries: Iterator[AuditEntry],
        rows: Iterator[Project],
        records: Iterator[tuple[str, Record]],
    ) -> None:
        self._entries = entries
        self._rows = rows
        self._records = records
        self._entry: AuditEntry | None = next(entries, None)
        self._row: Project | None = next(rows, None)
        self._record: tuple[str, Record] | None = next(records, None)
        self._orphans: list[Problem] = []

    def take(self, project_id: str) -> tuple[list[AuditEntry], Project | None, list[Record]]:
        """Return the chain, project row and record rows of `project_id` (ids in order)."""
        chain: list[AuditEntry] = []
        while self._entry is not None and self._entry.project_id <= project_id:
            if self._entry.project_id == project_id:
                chain.append(self._entry)
            self._entry = next(self._entries, None)
        while self._row is not None and self._row.id < project_id:
            self._row = next(self._rows, None)
        row = self._row if self._row is not None and self._row.id == project_id else None
        records: list[Record] = []
        while self._record is not None and self._record[0] <= project_id:
            owner, record = self._record
            if owner == project_id:
                records.append(record)
            else:
                self._orphan(owner, record)
            self._record = next(self._records, None)
        return chain, row, records

    def finish(self) -> None:
        """Read what is left: record rows after the last chain belong to no project."""
        while self._record is not None:
            self._orphan(*self._record)
            self._record = next(self._records, None)

    def orphans(self) -> list[Problem]:
        """Return (and forget) the record rows found since the last call that have no chain."""
        found, self._orphans = self._orphans, []
        return found

    def _orphan(self, owner: str, record: Record) -> None:
        if self._orphans and self._orphans[-1].project_id == owner:
            return  # one problem per project
        self._orphans.append(_mismatch(owner, f"records.{_key(record)}", record.data, _ABSENT))


# -- the audit log: one RFC 6962 Merkle tree over every entry ----------------------------

#: The origin (log name) of tree heads when the host names none.
DEFAULT_ORIGIN = "grantflow"
_PAGE = 10_000
_HEX64 = frozenset("0123456789abcdef")


def _origin(value: str) -> str:
    if (
        not 0 < len(value) <= 255
        or not value.isprintable()
        or any(ch.isspace() or ch == "+" for ch in value)
    ):
        raise ValueError("origin must be 1-255 printable characters without spaces or '+'")
    value.encode("utf-8")  # a lone surrogate is not printable, but be sure
    return value


def _hex_hash(value: str) -> str:
    if len(value) != 64 or not _HEX64.issuperset(value):
        raise ValueError("must be 64 lowercase hex digits (a sha256)")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must be timezone-aware")
    return value.astimezone(UTC)


HexHash = Annotated[str, AfterValidator(_hex_hash)]


class TreeHead(BaseModel):
    """The log at one moment: its origin (name), size and Merkle root, and when.

    Sign it with `grantflow.signing.sign_checkpoint`; the signed text is the
    checkpoint to keep outside the database.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    origin: Annotated[str, AfterValidator(_origin)] = DEFAULT_ORIGIN
    size: int = Field(ge=0)
    root: HexHash
    at: Annotated[datetime, AfterValidator(_aware)]


class InclusionProof(BaseModel):
    """Entry (`project_id`, `seq`) is leaf `index` of the tree of `size` leaves: its path."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project_id: str
    seq: int = Field(ge=1)
    index: int = Field(ge=0)
    size: int = Field(ge=1)
    path: tuple[HexHash, ...]


class ConsistencyProof(BaseModel):
    """The tree of `old_size` leaves is a prefix of the tree of `new_size`: the proof."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    old_size: int = Field(ge=0)
    new_size: int = Field(ge=0)
    path: tuple[HexHash, ...]


def entry_leaf(entry: AuditEntry) -> bytes:
    """Return the log's leaf hash of `entry`, recomputed from its fields.

    ``SHA-256(0x00 || H)`` where ``H`` is the 32-byte sha256 of `entry_bytes`; the
    stored ``entry.hash`` is not trusted.
    """
    return hash_leaf(bytes.fromhex(entry_hash(entry)))


def _leaf_of(position: int, project_id: str, stored: str | None) -> bytes:
    if stored is None:
        raise EvidenceError(
            f"log position {position}: the audit entry is gone",
            position=position,
            project_id=project_id,
        )
    try:
        return hash_leaf(bytes.fromhex(_hex_hash(stored)))
    except ValueError:
        raise EvidenceError(
            f"log position {position}: the stored entry hash is not a sha256",
            position=position,
            project_id=project_id,
        ) from None


def _log_leaves(store: Store, size: int) -> list[bytes]:
    """Read the first `size` leaf hashes of the log, checking positions and chain order."""
    leaves: list[bytes] = []
    last_seq: dict[str, int] = {}
    for start in range(0, size, _PAGE):
        page = store.log_leaves(start, min(start + _PAGE, size))
        for position, project_id, seq, stored in page:
            if position != len(leaves):
                raise EvidenceError(f"log position {len(leaves)} is missing", position=len(leaves))
            if seq <= last_seq.get(project_id, 0):
                raise EvidenceError(
                    f"log position {position}: entry {project_id}/{seq} is out of chain order",
                    position=position,
                    project_id=project_id,
                )
            last_seq[project_id] = seq
            leaves.append(_leaf_of(position, project_id, stored))
    if len(leaves) != size:
        raise EvidenceError(
            f"the log has {len(leaves)} positions, fewer than {size}", position=len(leaves)
        )
    return leaves


def _check_size(size: int, available: int, name: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidInput(f"{name} must be a non-negative integer", field=name)
    if size > available:
        raise InvalidInput(
            f"{name} {size} is larger than the log ({available} entries)", field=name
        )


def tree_head(
    store: Store,
    *,
    size: int | None = None,
    origin: str = DEFAULT_ORIGIN,
    at: datetime | None = None,
) -> TreeHead:
    """Return the tree head of the store's audit log.

    Without `size`, first appends every entry committed since the last call to the log
    (`Store.sequence_log`, one short locked transaction) and covers the whole log; with
    `size`, recomputes the head of that prefix and writes nothing.

    Raises:
        EvidenceError: a log position is missing, its entry gone, or out of chain order.
        InvalidInput: `size` is negative or beyond the log.
    """
    available = store.sequence_log() if size is None else store.log_size()
    size = available if size is None else size
    _check_size(size, available, "size")
    root = tree_root(_log_leaves(store, size))
    return TreeHead(origin=origin, size=size, root=root.hex(), at=at or datetime.now(UTC))


def inclusion_proof(store: Store, project_id: str, seq: int, *, size: int) -> InclusionProof:
    """Return the audit path of entry (`project_id`, `seq`) in the tree of `size` leaves.

    Raises:
        InvalidInput: the entry has no log position below `size` (take a tree head first).
        EvidenceError: the log is damaged (see `tree_head`).
    """
    _check_size(size, store.log_size(), "size")
    index = store.log_position(project_id, seq)
    if index is None or index >= size:
        raise InvalidInput(
            f"entry {project_id}/{seq} is not in the first {size} log entries",
            field="seq",
            project_id=project_id,
        )
    path = inclusion_path(_log_leaves(store, size), index)
    return InclusionProof(
        project_id=project_id, seq=seq, index=index, size=size, path=tuple(p.hex() for p in path)
    )


def consistency_proof(store: Store, old_size: int, new_size: int) -> ConsistencyProof:
    """Return the proof that the log's first `old_size` entries are a prefix of `new_size`."""
    _check_size(new_size, store.log_size(), "new_size")
    _check_size(old_size, new_size, "old_size")
    path = consistency_path(_log_leaves(store, new_size), old_size)
    return ConsistencyProof(old_size=old_size, new_size=new_size, path=tuple(p.hex() for p in path))


def verify_inclusion(entry: AuditEntry, proof: InclusionProof, head: TreeHead) -> bool:
    """Return whether `proof` shows `entry`, as it reads now, is in the tree `head`.

    The entry's hash is recomputed from its fields, so an edited entry fails even when
    its stored hash was kept.
    """
    if (entry.project_id, entry.seq) != (proof.project_id, proof.seq) or proof.size != head.size:
        return False
    return verify_inclusion_path(
        entry_leaf(entry),
        proof.index,
        proof.size,
        [bytes.fromhex(p) for p in proof.path],
        bytes.fromhex(head.root),
    )


def verify_consistency(old: TreeHead, new: TreeHead, proof: ConsistencyProof) -> bool:
    """Return whether `proof` shows tree head `new` extends `old` (the log only grew)."""
    if (proof.old_size, proof.new_size) != (old.size, new.size) or old.origin != new.origin:
        return False
    return verify_consistency_path(
        old.size,
        new.size,
        bytes.fromhex(old.root),
        bytes.fromhex(new.root),
        [bytes.fromhex(p) for p in proof.path],
    )


def check_log(store: Store, head: TreeHead) -> tuple[Problem, ...]:
    """Return the problems found comparing the stored log with a (verified) tree head.

    Empty when the log's first ``head.size`` entries still have ``head.root``. Otherwise
    one `Problem`: a position missing, an entry gone or out of order, or a root that
    differs (an entry covered by the head was edited, reordered or replaced).
    """
    try:
        leaves = _log_leaves(store, head.size)
    except EvidenceError as exc:
        return (Problem(project_id=exc.project_id or "", seq=None, reason=exc.message),)
    if tree_root(leaves).hex() != head.root:
        return (
            Problem(
                project_id="",
                seq=None,
                reason=f"the log's first {head.size} entries no longer have the checkpoint's root",
            ),
        )
    return ()
