"""Immutable value objects exchanged with grantflow: actors, projects, verdicts, outcomes, audit.

All of them are frozen pydantic models: safe to share between threads, hashable where
their fields are, and serialisable with ``model_dump(mode="json")``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_serializer,
)

from grantflow._canonical import plain
from grantflow.errors import GrantflowError, TransitionRefused

__all__ = [
    "Actor",
    "AuditEntry",
    "AuditKind",
    "DecisionBasis",
    "Entity",
    "Identifier",
    "JsonObject",
    "Outcome",
    "Project",
    "Record",
    "Refusal",
    "Verdict",
    "trusted",
    "trusted_fields",
]


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _no_control_chars(value: str) -> str:
    if _CONTROL.search(value) is not None:
        raise ValueError("must not contain control characters")
    return value


#: An identifier: 1-128 printable characters, no surrounding white space.
Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, strip_whitespace=False),
    AfterValidator(_no_control_chars),
]


def _plain_json(value: Mapping[str, Any]) -> Any:
    # A float or a value nested too deeply is a validation error of the model, like any
    # other bad field (pydantic turns ValueError into ValidationError).
    try:
        return plain(value)
    except (TypeError, GrantflowError) as exc:
        raise ValueError(str(exc)) from None


#: A JSON object payload, normalised to plain JSON types (dicts, lists, strings for decimals
#: and times) so that a value loaded back from any store equals the value written.
JsonObject = Annotated[Mapping[str, Any], AfterValidator(_plain_json)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_M = TypeVar("_M", bound=BaseModel)


#: Per model class, the one set of all its field names that `trusted` models share.
_FIELDS_SET: dict[type[BaseModel], set[str]] = {}


def _all_fields(cls: type[BaseModel], fields: dict[str, Any]) -> set[str]:
    """The fields-set of a model built with every field given: one set per class.

    pydantic only ever adds to it (on assignment), and every field is already in it;
    sharing it saves a set, and a container for the garbage collector to walk, per model.
    """
    shared = _FIELDS_SET.get(cls)
    if shared is None:
        shared = _FIELDS_SET.setdefault(cls, set(cls.model_fields))
    return shared if len(fields) == len(shared) else set(fields)


def trusted(cls: type[_M], **fields: Any) -> _M:
    """Build `cls` from values that are already valid, skipping validation entirely.

    For grantflow's own hot paths (bulk runs build three models per item); every field
    must be given. pydantic's `model_construct` does the same with more bookkeeping.
    """
    return trusted_fields(cls, fields)


def trusted_fields(cls: type[_M], fields: dict[str, Any]) -> _M:
    """`trusted` of a dict the caller built (it becomes the model's ``__dict__``).

    Half the cost of passing a model's many fields as keywords (the hottest models,
    an entry's 18 fields, are built once per attempt); the dict must not be used again.
    """
    obj = _new(cls)
    _set_dict(obj, fields)
    shared = _FIELDS_SET.get(cls)
    _set_fields(
        obj,
        shared if shared is not None and len(fields) == len(shared) else _all_fields(cls, fields),
    )
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


# `trusted`'s steps, looked up once: BaseModel's slots are set through their descriptors
# (a third cheaper than `object.__setattr__` by name), `object.__new__` as pydantic's own
# `model_construct` does (BaseModel defines no `__new__`).
_new = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


class Actor(_Frozen):
    """Who attempts a transition: an id, the roles they hold and their organisation.

    >>> Actor(id="u-1", roles=frozenset({"purchaser"}), organisation="city-federation").id
    'u-1'
    """

    id: Identifier
    roles: frozenset[Identifier] = frozenset()
    organisation: Identifier | None = None

    @field_serializer("roles", when_used="json")
    def _sorted_roles(self, roles: frozenset[str]) -> list[str]:
        # A set iterates in an order that depends on the process's string hashing and
        # on how it was built: JSON (outbox payloads, exports) lists the roles sorted,
        # as the audit hash's canonical form does.
        return sorted(roles)

    def has_any(self, roles: frozenset[str] | set[str]) -> bool:
        """Return whether the actor holds at least one of ``roles``."""
        return not self.roles.isdisjoint(roles)


class Refusal(_Frozen):
    """One rule's "no": a stable code, the reason in English and Chinese, and details."""

    code: str
    message: str
    message_zh: str
    rule: str = ""
    details: Mapping[str, Any] = Field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message} / {self.message_zh}"


class Verdict(_Frozen):
    """What a rule returns: passed when it holds no refusal.

    Build one with `grantflow.rules.PASS` or `grantflow.rules.refuse(...)`.
    """

    refusals: tuple[Refusal, ...] = ()

    @property
    def passed(self) -> bool:
        """True when no rule refused."""
        return not self.refusals

    def __bool__(self) -> bool:
        return self.passed

    def __add__(self, other: Verdict) -> Verdict:
        if not other.refusals:
            return self
        if not self.refusals:
            return other
        return Verdict(refusals=self.refusals + other.refusals)


class Record(_Frozen):
    """A record a project accumulates (a review, a contract, an expenditure, ...).

    `kind` names the record type; `data` is its JSON-compatible payload; `seq` is the audit
    sequence number of the entry that added it.
    """

    kind: Identifier
    id: Identifier
    data: JsonObject = Field(default_factory=dict)
    seq: int = 0


class Project(_Frozen):
    """A snapshot of one project: its state, version, attributes and records.

    `version` counts the project's audit entries; it is the compare-and-set token for writes.
    `head` is the hash of its latest audit entry and `updated_at` that entry's time
    (accepted or refused: a refusal is recorded on the project too).
    """

    id: Identifier
    state: str
    version: int
    head: str
    data: JsonObject = Field(default_factory=dict)
    records: tuple[Record, ...] = ()
    created_at: datetime
    updated_at: datetime

    def records_of(self, kind: str) -> tuple[Record, ...]:
        """Return the project's records of one kind, oldest first."""
        return tuple(r for r in self.records if r.kind == kind)


class Entity(_Frozen):
    """Reference data beside the projects: a hub, a provider, a call, a brand, a person.

    `parent` links tree-shaped kinds (hubs); `data` is the JSON-compatible payload.
    """

    kind: Identifier
    id: Identifier
    parent: Identifier | None = None
    data: JsonObject = Field(default_factory=dict)


AuditKind = Literal["submit", "fire", "record", "migrate"]


class DecisionBasis(_Frozen):
    """What an entry was decided under: the lifecycle, the rule book and the policy.

    `lifecycle` and `rules` are sha256 fingerprints (hex) of the lifecycle definition and
    of the rule book (its rules, facts and effects by name and version); `policy` is the
    version of the policy the project was pinned to and `policy_hash` the sha256 of that
    policy's canonical JSON, so a policy edited without a new version is told apart.
    ``docs/evidence.md`` specifies each encoding.
    """

    lifecycle: str
    rules: str
    policy: str
    policy_hash: str


class AuditEntry(_Frozen):
    """One link of a project's audit chain: an attempt, accepted or refused.

    `hash` is sha256 over the canonical encoding of every other field, `prev_hash` included,
    so editing, deleting, inserting or reordering entries breaks the chain.
    `decided_under` names the lifecycle, rule book and policy that decided the entry
    (``None`` only in entries written before grantflow recorded it). `clamped_from` is
    the engine clock's reading when it was behind the project's last change: the entry
    is then dated at that change instead (``None`` when the clock was not behind).
    """

    project_id: str
    seq: int
    kind: AuditKind
    event: str
    from_state: str | None
    to_state: str | None
    accepted: bool
    actor: Actor
    at: datetime
    evidence: JsonObject = Field(default_factory=dict)
    refusals: tuple[Refusal, ...] = ()
    records: tuple[Record, ...] = ()
    data: JsonObject = Field(default_factory=dict)
    prev_hash: str
    hash: str
    decided_under: DecisionBasis | None = None
    clamped_from: datetime | None = None


class Outcome(_Frozen):
    """The result of `Engine.fire`, `Engine.submit` or `Engine.can_fire`.

    `state` is the project's state after the attempt (unchanged when refused); `entry` is
    the audit entry written, ``None`` for `can_fire`, which writes nothing. `project_id`
    is ``None`` when no project exists: a refused `submit` creates none (its attempt is
    still audited, in the chain named by ``entry.project_id``).
    """

    project_id: str | None
    event: str
    accepted: bool
    from_state: str | None
    state: str | None
    refusals: tuple[Refusal, ...] = ()
    entry: AuditEntry | None = None

    def raise_for_refusal(self) -> Outcome:
        """Raise `TransitionRefused` if the attempt was refused; return self otherwise."""
        if not self.accepted:
            codes = ", ".join(r.code for r in self.refusals)
            raise TransitionRefused(
                f"{self.event!r} refused for project {self.project_id!r}: {codes}"
                if self.project_id is not None
                else f"{self.event!r} refused: {codes}",
                refusals=self.refusals,
                project_id=self.project_id
                if self.project_id is not None
                else (self.entry.project_id if self.entry is not None else None),
                event=self.event,
                state=self.from_state,
            )
        return self
