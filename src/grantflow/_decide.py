"""The decision core: one attempt and a view of the store in, a verdict and a `Change` out.

Every driver decides here and nowhere else: `Engine.submit`, `fire`, `add_record`,
`can_fire` and `migrate_policy` read through the store, the bulk runner (and its dry run)
through a `PendingReader` that also sees the batch's earlier items. So a decision depends
only on its inputs: the project as the reader shows it, the event, the actor, the
evidence and the time, never on which driver asked.

The steps, in order: the subject of the attempt (the project, a submission's draft, or a
record's project and the record), the role check, the lifecycle edge, the facts the
event's rules declare, every rule (all run, every refusal is reported), the effects of an
accepted attempt, and the sealed audit entry with the project row it leaves behind.

Two things every entry carries besides the decision: what decided it (`DecisionBasis`:
fingerprints of the lifecycle, the rule book and the pinned policy) and a time that
never runs backwards within a project. When the clock reads earlier than the project's
last change (a clock set back, or hosts whose clocks disagree), the attempt is decided
and dated at that change, and the entry keeps the clock's reading in `clamped_from`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from grantflow._canonical import canonical_bytes, freeze, lenient, plain, thaw
from grantflow._guard import GuardingReader
from grantflow._log import get_logger
from grantflow._machine import TransitionTable
from grantflow.audit import EntryTexts, _move_digest, _move_entry, seal, sealed
from grantflow.errors import InvalidInput, ProjectExists, ProjectNotFound, UnknownEvent
from grantflow.messages import catalogue, refusal, render
from grantflow.models import (
    Actor,
    AuditEntry,
    DecisionBasis,
    Outcome,
    Project,
    Record,
    Refusal,
    trusted_fields,
)
from grantflow.obligations import Schedule
from grantflow.persistence import (
    Change,
    Guard,
    JobStore,
    Move,
    ObligationRow,
    RecordGuard,
    StoreReader,
)
from grantflow.policy import Policy
from grantflow.rules import (
    PASS,
    Effects,
    FactRequest,
    ParseCache,
    Parsed,
    RuleBook,
    RuleContext,
    Verdict,
    rule_name,
)
from grantflow.states import Lifecycle
from grantflow.typing import Effect, FactProvider

__all__ = [
    "RECORD_EVENT_PREFIX",
    "Decision",
    "DecisionCore",
    "Request",
    "book_fingerprint",
    "lifecycle_fingerprint",
    "move_entry",
    "outcome_of",
    "policy_fingerprint",
]

#: Events named ``record.<kind>`` add a record of that kind through its rules.
RECORD_EVENT_PREFIX = "record."

_log = get_logger()
_EMPTY: Mapping[str, Any] = MappingProxyType({})

RequestKind = Literal["submit", "fire", "record"]


class Request(NamedTuple):
    """One attempt as a driver hands it over, its inputs already validated and frozen.

    A named tuple rather than a frozen dataclass: immutable all the same, and built
    three times faster (a frozen dataclass sets each field through
    ``object.__setattr__``), once per attempt.

    Attributes:
        kind: ``submit`` (create a project), ``fire`` (an event) or ``record``.
        project_id: the project (for ``submit``, the id the new project gets).
        event: the lifecycle event, or ``record.<kind>``.
        actor: who attempts it.
        evidence: what the actor sends with the attempt.
        data: the new project's data (``submit``) or the record's data (``record``).
        record_id: the record's id (``record``); made up from the sequence when ``None``.
    """

    kind: RequestKind
    project_id: str
    event: str
    actor: Actor
    evidence: Mapping[str, Any] = _EMPTY
    data: Mapping[str, Any] = _EMPTY
    record_id: str | None = None


class Decision(NamedTuple):
    """What the rules said about one attempt on `project`, before anything is sealed.

    A named tuple, as `Request` is, for the same reason.
    """

    project: Project
    event: str
    actor: Actor
    evidence: Mapping[str, Any]
    target: str | None
    verdict: Verdict
    effects: tuple[Effects, ...]
    record: Record | None = None
    #: What the facts read of other projects: an accepted change commits only on it.
    guards: tuple[Guard | RecordGuard, ...] = ()

    def preview(self) -> Outcome:
        """The outcome this decision would have, with no entry (nothing was written)."""
        return Outcome(
            project_id=self.project.id,
            event=self.event,
            accepted=self.verdict.passed,
            from_state=self.project.state or None,
            state=self.target if self.verdict.passed else (self.project.state or None),
            refusals=self.verdict.refusals,
        )


_BookEntry = tuple[
    tuple[Callable[[RuleContext], Verdict], ...],
    tuple[tuple[str, FactProvider], ...],
    tuple[Effect, ...],
]


class DecisionCore:
    """Decides attempts under one lifecycle, rule book and set of policies.

    It holds no per-project state and performs no I/O but the reads of the reader it is
    given; it is safe to share between threads.
    """

    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        rules: RuleBook,
        policy: Policy,
        policies: Sequence[Policy] = (),
    ) -> None:
        self.lifecycle = lifecycle
        self.policy = policy
        self._table = TransitionTable(lifecycle)
        self._rules = rules.copy()
        self._roles = {e.name: e.roles for e in lifecycle.events}
        self._policies = {p.version: p for p in (*policies, policy)}
        self._book: dict[str, _BookEntry] = {}
        # Stored records' parses, kept across decisions (see `Parsed.lasting`).
        self._parses = ParseCache()
        lifecycle_print, rules_print = lifecycle_fingerprint(lifecycle), book_fingerprint(rules)
        self._bases = {
            version: DecisionBasis(
                lifecycle=lifecycle_print,
                rules=rules_print,
                policy=version,
                policy_hash=policy_fingerprint(known),
            )
            for version, known in self._policies.items()
        }
        # Record kinds the book declares; a book declaring none accepts any kind.
        self._record_kinds = self._rules.record_kinds
        self._reserved_kinds = self._rules.reserved_kinds
        #: The lifecycle's due dates and timers (`grantflow.obligations`).
        self.schedule = Schedule(lifecycle)

    @property
    def rules(self) -> RuleBook:
        """A copy of the rule book."""
        return self._rules.copy()

    @property
    def policies(self) -> tuple[Policy, ...]:
        """Every policy this core knows (projects may be pinned to any of them)."""
        return tuple(self._policies.values())

    def has_policy(self, version: str) -> bool:
        """Whether `version` names a policy this core knows."""
        return version in self._policies

    def policy_for(self, project: Project) -> Policy:
        """Return the policy `project` is pinned to (the default one when it is unknown)."""
        return self._policies.get(str(project.data.get("policy_version", "")), self.policy)

    @property
    def bases(self) -> frozenset[DecisionBasis]:
        """What this core decides under: one basis per policy it knows."""
        return frozenset(self._bases.values())

    def basis_for(self, project: Project) -> DecisionBasis:
        """The basis a decision on `project` is taken (and recorded) under."""
        return self._bases[self.policy_for(project).version]

    # -- events ----------------------------------------------------------------------------

    def request_kind(self, event: str) -> RequestKind:
        """Which kind of request `event` makes; `UnknownEvent` if it is none."""
        if event.startswith(RECORD_EVENT_PREFIX):
            if not event.removeprefix(RECORD_EVENT_PREFIX):
                raise UnknownEvent("a record event needs a kind: record.<kind>", event=event)
            return "record"
        if not self.lifecycle.has_event(event):
            raise UnknownEvent(
                f"lifecycle {self.lifecycle.name!r} has no event {event!r}", event=event
            )
        return "submit" if self.lifecycle.event(event).creates else "fire"

    def target(self, event: str, source: str) -> str | None:
        """Where `event` leads from `source`: a record event stays, ``None`` if no edge."""
        if event.startswith(RECORD_EVENT_PREFIX):
            return source
        if self.lifecycle.has_event(event) and self.lifecycle.event(event).creates:
            return self.lifecycle.event(event).target if not source else None
        return self._table.target(event, source)

    def permitted_events(self, state: str, actor: Actor) -> list[str]:
        """Events with an edge from `state` whose roles include one of `actor`'s."""
        return [
            name
            for name in self._table.events_from(state)
            if self._role_refusal(name, actor) is None
        ]

    # -- the subject of an attempt ---------------------------------------------------------

    def subject(
        self,
        request: Request,
        reader: StoreReader,
        now: datetime,
        loaded: Project | None = None,
    ) -> tuple[Project, Record | None, Mapping[str, Any]]:
        """The project an attempt is decided on, the record it adds, the evidence rules see.

        `loaded` is the project as `reader` shows it, when the caller read it already.
        Raises `ProjectNotFound` (no such project), `ProjectExists` (a submission's id is
        taken) or `InvalidInput` (a record id already used on the project).
        """
        pid = request.project_id
        if request.kind == "submit":
            if reader.load(pid) is not None:
                raise ProjectExists(
                    f"project {pid!r} already exists", project_id=pid, event=request.event
                )
            version, head = reader.chain_tip(pid)
            # Refused submissions went before (rare): the new entry may not predate them.
            last = _last_time(reader, pid) if version else None
            draft = self._draft(pid, request.data, version, head, now, last)
            return draft, None, request.evidence
        project = loaded or decision_load(reader, pid)
        if project is None:
            raise ProjectNotFound(f"no project {pid!r}", project_id=pid, event=request.event)
        if request.kind == "fire":
            return project, None, request.evidence
        kind = request.event.removeprefix(RECORD_EVENT_PREFIX)
        record = Record(
            kind=kind,
            id=request.record_id or f"{kind}-{project.version + 1}",
            data=thaw(request.data),
            seq=project.version + 1,
        )
        if any(r.kind == kind and r.id == record.id for r in project.records):
            raise InvalidInput(
                f"record {kind}/{record.id} already exists on project {pid!r}",
                field="record_id",
                project_id=pid,
                event=request.event,
                state=project.state,
            )
        evidence = freeze({"record": {"kind": kind, "id": record.id, "data": request.data}})
        return project, record, evidence

    def _draft(
        self,
        project_id: str,
        data: Mapping[str, Any],
        version: int,
        head: str,
        now: datetime,
        last: datetime | None = None,
    ) -> Project:
        """The project a submission proposes: no state yet, pinned to the current policy.

        Its `updated_at` is the time of the chain's last (refused) entry, if there is one.
        """
        return trusted_fields(
            Project,
            {
                "id": project_id,
                "state": "",
                "version": version,
                "head": head,
                "data": {**data, "policy_version": self.policy.version},
                "records": (),
                "created_at": now,
                "updated_at": last or now,
            },
        )

    # -- deciding --------------------------------------------------------------------------

    def prepare(self, request: Request, reader: StoreReader, now: datetime) -> Change:
        """Decide `request` as `reader` shows the store at `now`, and seal its change."""
        loaded = None
        if request.kind == "fire" and self.bare(request.event):
            loaded = decision_load(reader, request.project_id)
            if loaded is not None:
                change = self._bare_change(loaded, request, now)
                if change is not None:
                    return change
        project, record, evidence = self.subject(request, reader, now, loaded)
        at = _not_before(project, now)
        decision = self.decide(project, request.event, request.actor, evidence, at, reader)
        return self.seal(decision, at, record, clock=now)

    def bare(self, event: str) -> bool:
        """Whether `event` is a lifecycle event the book gives no rule, fact or effect.

        Its decisions read nothing but the project itself: no facts, no other project.
        """
        if not self.lifecycle.has_event(event):  # nothing cached for names it lacks
            return False
        rules, providers, effects = self._book_for(event)
        return not (rules or providers or effects)

    def _plain_target(
        self, project: Project, event: str, actor: Actor, now: datetime
    ) -> str | None:
        """Where a bare `event` moves `project` if nothing refuses or clamps it, else ``None``."""
        if not project.state or (project.version and now < project.updated_at):
            return None
        target = self._table.target(event, project.state)
        if target is None or self._role_refusal(event, actor) is not None:
            return None
        return target

    def move(self, project: Project, request: Request, now: datetime) -> Move | None:
        """`_bare_change` of `request` as the values its rows need (`Move`), or ``None``.

        ``None`` where `_bare_change` is, and where the move would change the project's
        due dates (the index rows need the change itself). For bulk runs on stores that
        write moves (`SqlStore.commit_moves`); `request.event` must be bare. A Hypothesis
        property holds the rows a move writes equal to those of the change.
        """
        event, actor = request.event, request.actor
        target = self._plain_target(project, event, actor, now)
        if target is None or self.schedule.moves_dates(project, target):
            return None
        evidence = thaw(request.evidence) if request.evidence else {}
        basis = self.basis_for(project)
        seq = project.version + 1
        head = project.head
        digest, texts = _move_digest(
            project.id, seq, event, project.state, target, actor, now, evidence, head, basis
        )
        return Move(
            project.id,
            project.version,
            event,
            project.state,
            target,
            actor,
            now,
            evidence,
            texts,
            head,
            digest,
            basis,
        )

    def _bare_change(self, project: Project, request: Request, now: datetime) -> Change | None:
        """The change `prepare` seals for an accepted fire of a bare event, or ``None``.

        The general steps (subject, decision, seal) for the commonest attempt of a bulk
        run, with nothing built that this case does not use: no `Decision`, verdict or
        rule context. ``None`` (the general path decides) whenever anything would differ
        from a plain move: a role or edge refusal, a clock behind the project's last
        change. A Hypothesis property holds it equal to the general path.
        """
        target = self._plain_target(project, request.event, request.actor, now)
        if target is None:
            return None
        event, actor, evidence = request.event, request.actor, request.evidence
        seq, basis, head = project.version + 1, self.basis_for(project), project.head
        plain = thaw(evidence) if evidence else {}
        digest, texts = _move_digest(
            project.id, seq, event, project.state, target, actor, now, plain, head, basis
        )
        entry = _move_entry(
            project.id, seq, event, project.state, target, actor, now, plain, head, digest, basis
        )
        row = after(project, entry)
        return sealed_change(
            entry, project.state, project.version, row, self._due_dates(entry, row), texts
        )

    def preview(self, request: Request, reader: StoreReader, now: datetime) -> Outcome:
        """Decide `request` exactly as `prepare` would; seal and write nothing."""
        project, _record, evidence = self.subject(request, reader, now)
        at = _not_before(project, now)
        return self.decide(project, request.event, request.actor, evidence, at, reader).preview()

    def decide(
        self,
        project: Project,
        event: str,
        actor: Actor,
        evidence: Mapping[str, Any],
        now: datetime,
        reader: StoreReader,
    ) -> Decision:
        """Role, edge, facts, rules and effects of `event` on `project`; no writes."""
        refusals: list[Refusal] = []
        role = self._role_refusal(event, actor)
        if role is not None:
            refusals.append(role)
        if event.startswith(RECORD_EVENT_PREFIX):
            refusals.extend(self._kind_refusals(event.removeprefix(RECORD_EVENT_PREFIX)))
        target = self.target(event, project.state)
        effects: tuple[Effects, ...] = ()
        guards: tuple[Guard | RecordGuard, ...] = ()
        if target is None:
            refusals.append(self._no_edge(project.state, event))
        else:  # the book is looked up for lifecycle edges only (it caches per event)
            rules, providers, effects_for = self._book_for(event)
            if rules or providers or effects_for:  # a bare event has nothing to look at
                watch = GuardingReader(reader) if providers else None
                ctx = self._context(
                    project, event, actor, evidence, now, watch or reader, target, providers
                )
                for r in rules:
                    refusals.extend(_run_rule(r, ctx).refusals)
                if not refusals and effects_for:
                    effects, broken = _run_effects(effects_for, ctx, project.version + 1)
                    refusals.extend(broken.refusals)
                if watch is not None and not refusals:  # only acceptances move totals
                    guards = watch.guards()
        verdict = Verdict(refusals=tuple(refusals)) if refusals else PASS
        return Decision(project, event, actor, evidence, target, verdict, effects, None, guards)

    def _context(
        self,
        project: Project,
        event: str,
        actor: Actor,
        evidence: Mapping[str, Any],
        now: datetime,
        reader: StoreReader,
        target: str,
        providers: Sequence[tuple[str, FactProvider]],
    ) -> RuleContext:
        """The immutable context the rules and effects of one decision share."""
        policy = self.policy_for(project)
        facts: Mapping[str, Any] = _EMPTY
        if providers:
            request = FactRequest(
                reader=reader,
                project=project,
                event=event,
                actor=actor,
                evidence=evidence,
                policy=policy,
            )
            facts = freeze({name: provider(request) for name, provider in providers})
        return RuleContext(
            project=project,
            event=event,
            source=project.state or None,
            target=target,
            actor=actor,
            evidence=evidence,
            now=now,
            policy=policy,
            facts=facts,
            parsed=Parsed(self._parses),
        )

    def seal(
        self,
        decision: Decision,
        now: datetime,
        record: Record | None = None,
        *,
        clock: datetime | None = None,
    ) -> Change:
        """Seal `decision`, dated `now`, into the audit entry and compare-and-set it commits as.

        `clock` is what the clock read when `now` had to be moved up to the project's
        last change (see `_not_before`); it is recorded when the two differ.
        """
        project = decision.project
        passed = decision.verdict.passed
        seq = project.version + 1
        creating = project.state == ""
        records: list[Record] = [record] if record is not None and passed else []
        patch: dict[str, Any] = thaw(project.data) if creating else {}
        for eff in decision.effects:  # sealable already (`_run_effects`): records at `seq`
            records.extend(eff.records)
            patch.update(eff.data)
        entry, texts = sealed(
            project_id=project.id,
            seq=seq,
            kind="submit" if creating else ("record" if record else "fire"),
            event=decision.event,
            from_state=project.state or None,
            to_state=decision.target if passed else (project.state or None),
            accepted=passed,
            actor=decision.actor,
            at=now,
            evidence=thaw(decision.evidence) if decision.evidence else {},
            refusals=decision.verdict.refusals,
            records=records,
            data=patch if passed else {},
            prev_hash=project.head,
            decided_under=self.basis_for(project),
            clamped_from=clock if clock is not None and clock != now else None,
        )
        row = after(project, entry)
        return sealed_change(
            entry,
            None if creating else project.state,
            project.version,
            row,
            self._due_dates(entry, row),
            texts,
            decision.guards,
        )

    def migration(
        self, project: Project, patch: Mapping[str, Any], actor: Actor, reason: str, now: datetime
    ) -> Change:
        """The audited ``migrate_policy`` change that moves `project` to the policy in `patch`."""
        at = _not_before(project, now)
        target = self._bases.get(str(patch.get("policy_version", "")))
        entry = seal(
            project_id=project.id,
            seq=project.version + 1,
            kind="migrate",
            event="migrate_policy",
            from_state=project.state,
            to_state=project.state,
            accepted=True,
            actor=actor,
            at=at,
            evidence={
                "reason": reason,
                "from_version": str(project.data.get("policy_version", "")),
            },
            refusals=(),
            records=(),
            data=patch,
            prev_hash=project.head,
            decided_under=target or self.basis_for(project),
            clamped_from=now if at != now else None,
        )
        row = after(project, entry)
        return Change(entry, project.state, project.version, row, self._due_dates(entry, row))

    # -- pieces ----------------------------------------------------------------------------

    def _due_dates(
        self, entry: AuditEntry, row: Project | None
    ) -> tuple[ObligationRow, ...] | None:
        """The project's due dates when `entry` may have changed them, else ``None``."""
        if row is None or not self.schedule.touches(entry, row):
            return None
        return self.schedule.rows(row, self.policy_for(row))

    def _book_for(self, event: str) -> _BookEntry:
        # The book never changes after construction: look each event up once.
        cached = self._book.get(event)
        if cached is None:
            cached = (
                self._rules.rules_for(event),
                self._rules.facts_for(event),
                self._rules.effects_for(event),
            )
            self._book[event] = cached
        return cached

    def _role_refusal(self, event: str, actor: Actor) -> Refusal | None:
        roles = self._roles.get(event)
        if not roles or not actor.roles.isdisjoint(roles):
            return None
        return self._lifecycle_refusal(
            "lifecycle.role",
            event,
            required=sorted(roles),
            actor_roles=sorted(actor.roles),
        )

    def _kind_refusals(self, kind: str) -> tuple[Refusal, ...]:
        """Records come from their owners: effect-owned kinds and undeclared ones are refused.

        Rules read the effect-owned kinds (approvals, contracts, payments, settlements) as
        facts of the project's history; only the effects of accepted transitions write
        them, so a record added directly can never stand in for one.
        """
        if kind in self._reserved_kinds:
            verdict = refusal("records.reserved", kind=kind)
        elif self._record_kinds and kind not in self._record_kinds:
            verdict = refusal("records.unknown", kind=kind)
        else:
            return ()
        return tuple(r.model_copy(update={"rule": "records"}) for r in verdict.refusals)

    def _no_edge(self, state: str, event: str) -> Refusal:
        terminal = bool(state) and self.lifecycle.state(state).terminal
        return self._lifecycle_refusal(
            "lifecycle.no_edge",
            event,
            key="lifecycle.no_edge.terminal" if terminal else None,
            state=state,
            terminal=terminal,
        )

    def _lifecycle_refusal(
        self, code: str, event: str, *, key: str | None = None, **params: Any
    ) -> Refusal:
        """A refusal of the lifecycle itself, worded from the catalogues.

        The Chinese text names the event and state by the lifecycle's own Chinese labels
        (a custom lifecycle's too), falling back to the catalogue's.
        """
        state = str(params.get("state", ""))
        zh = {**params, "event": self._label_zh(event)}
        if state and self.lifecycle.state(state).label_zh:
            zh["state"] = self.lifecycle.state(state).label_zh
        name = key or code
        details: dict[str, Any] = {"event": event, **params}
        if key is not None:
            details["message_key"] = key
        return Refusal(
            code=code,
            message=render(name, "en", {**params, "event": event}),
            message_zh=render(name, "zh", zh),
            rule="lifecycle",
            details=details,
        )

    def _label_zh(self, event: str) -> str:
        if self.lifecycle.has_event(event) and self.lifecycle.event(event).label_zh:
            return self.lifecycle.event(event).label_zh
        return catalogue("zh").get("event", {}).get(event, event)


def _run_rule(r: Callable[[RuleContext], Verdict], ctx: RuleContext) -> Verdict:
    name = rule_name(r)
    try:
        verdict = r(ctx)
    except Exception as exc:  # a broken rule refuses: fail closed, and say why
        _log.warning("grantflow.rule_error", rule=name, error=repr(exc), transition=ctx.event)
        return _rule_refusal("rule.error", rule=name, error=repr(exc))
    if not isinstance(verdict, Verdict):  # type: ignore[unreachable, unused-ignore]
        returned = type(verdict).__name__  # type: ignore[unreachable, unused-ignore]
        return _rule_refusal("rule.bad_verdict", rule=name, returned=returned)
    if verdict is PASS or verdict.passed:
        return verdict
    # Details become plain JSON (decimals and times as text, floats as their text),
    # so a refusal reads the same from any store and always hashes canonically.
    return Verdict(
        refusals=tuple(
            r.model_copy(update={"rule": r.rule or name, "details": lenient(r.details)})
            for r in verdict.refusals
        )
    )


def _run_effects(
    effects_for: Sequence[Effect], ctx: RuleContext, seq: int
) -> tuple[tuple[Effects, ...], Verdict]:
    """Run the effects of an accepted attempt, each result made ready to seal at `seq`.

    Records are rebuilt at `seq` (validated: an identifier kind and id, plain JSON data)
    and attribute changes made plain JSON. An effect that raises, returns anything but
    `Effects`, or returns what cannot be sealed refuses the attempt as a broken rule does
    (``rule.error``, ``effect.bad_result``): fail closed, here and not while sealing, so
    that `can_fire` and every write path see the same refusal.
    """
    done: list[Effects] = []
    for eff in effects_for:
        name = rule_name(eff)
        try:
            result = eff(ctx)
            if not isinstance(result, Effects):  # type: ignore[unreachable, unused-ignore]
                returned = type(result).__name__  # type: ignore[unreachable, unused-ignore]
                return (), _rule_refusal("effect.bad_result", rule=name, returned=returned)
            records = tuple(
                Record(kind=r.kind, id=r.id, data=r.data, seq=seq) for r in result.records
            )
            done.append(Effects(records=records, data=plain(dict(result.data))))
        except Exception as exc:  # a broken effect refuses, as a broken rule does
            _log.warning("grantflow.rule_error", rule=name, error=repr(exc), transition=ctx.event)
            return (), _rule_refusal("rule.error", rule=name, error=repr(exc))
    return tuple(done), PASS


def _not_before(project: Project, now: datetime) -> datetime:
    """`now`, or the time of the project's last entry when the clock reads earlier.

    So a chain's times never run backwards. A project's `updated_at` is its last entry's
    time (a submission's draft: the last refused submission's, when there was one).
    """
    if project.version and now < project.updated_at:
        return project.updated_at
    return now


def _last_time(reader: StoreReader, project_id: str) -> datetime | None:
    last = None
    for entry in reader.entries(project_id):
        last = entry.at
    return last


# -- fingerprints ------------------------------------------------------------------------


def lifecycle_fingerprint(lifecycle: Lifecycle) -> str:
    """sha256 (hex) of the lifecycle's canonical JSON (`Lifecycle.to_dict`)."""
    return hashlib.sha256(canonical_bytes(lifecycle.to_dict())).hexdigest()


def policy_fingerprint(policy: Policy) -> str:
    """sha256 (hex) of the policy's canonical JSON (every threshold, the version included)."""
    return hashlib.sha256(canonical_bytes(policy.model_dump(mode="json"))).hexdigest()


def book_fingerprint(book: RuleBook) -> str:
    """sha256 (hex) of what a rule book decides with (`RuleBook.fingerprint`).

    An empty book's fingerprint is `grantflow.audit.EMPTY_RULES`.
    """
    return book.fingerprint


def _rule_refusal(code: str, *, rule: str, **params: str) -> Verdict:
    """A broken rule's refusal (the rule's name and the error are details, never in Chinese)."""
    params = {"rule": rule, **params}
    return Verdict(
        refusals=(
            Refusal(
                code=code,
                message=render(code, "en", params),
                message_zh=render(code, "zh", params),
                rule=rule,
                details=params,
            ),
        )
    )


def move_entry(move: Move) -> AuditEntry:
    """The audit entry a `Move` wrote (for listeners and the audit log)."""
    return _move_entry(
        move.project_id,
        move.version + 1,
        move.event,
        move.from_state,
        move.to_state,
        move.actor,
        move.at,
        move.evidence,
        move.prev_hash,
        move.hash,
        move.decided_under,
    )


_CHANGE_FIELDS = (
    "entry",
    "expected_state",
    "expected_version",
    "after",
    "obligations",
    "messages",
    "texts",
    "guards",
)
if tuple(f.name for f in fields(Change)) != _CHANGE_FIELDS:  # pragma: no cover - a new field
    raise RuntimeError("sealed_change must set every field of Change")
_SET_CHANGE = tuple(Change.__dict__[name].__set__ for name in _CHANGE_FIELDS)


def sealed_change(
    entry: AuditEntry,
    expected_state: str | None,
    expected_version: int,
    after: Project | None,
    obligations: tuple[ObligationRow, ...] | None,
    texts: EntryTexts,
    guards: tuple[Guard | RecordGuard, ...] = (),
) -> Change:
    """`Change` of the decision core's sealed parts, without its per-field frozen setter.

    A frozen dataclass sets each field through ``object.__setattr__`` by name; this sets
    the slots through their descriptors (about 2.5x faster, once per attempt). The
    values are the decision core's own: nothing is checked that ``Change(...)`` checks
    (it checks nothing either). The same `Change`: a test holds them equal.
    """
    change = _new(Change)
    entry_, state_, version_, after_, obligations_, messages_, texts_, guards_ = _SET_CHANGE
    entry_(change, entry)
    state_(change, expected_state)
    version_(change, expected_version)
    after_(change, after)
    obligations_(change, obligations)
    messages_(change, ())
    texts_(change, texts)
    guards_(change, guards)
    return change


_new = object.__new__


def decision_load(reader: StoreReader, project_id: str) -> Project | None:
    """The project a decision is taken on, as `reader` holds it.

    A SQL store reads it as a bulk chunk does (`decision_projects`), so that single
    fires, previews and bulk runs decide on the same records; other readers' `load`.
    """
    load_chunk = _chunk_loader(reader)
    if load_chunk is None:
        return reader.load(project_id)
    return load_chunk((project_id,)).get(project_id)


def decision_projects(store: JobStore, project_ids: Sequence[str]) -> dict[str, Project]:
    """The existing projects among `project_ids`, as decisions read them (one go).

    A SQL store's `SqlJobs._load_chunk`: the records it kept under a project's head are
    not read again. Any other job store's `load_many`.
    """
    load_chunk = _chunk_loader(store)
    return store.load_many(project_ids) if load_chunk is None else load_chunk(project_ids)


def _chunk_loader(reader: object) -> Callable[[Sequence[str]], dict[str, Project]] | None:
    found: Callable[[Sequence[str]], dict[str, Project]] | None
    found = getattr(reader, "_load_chunk", None)
    return found


def after(project: Project, entry: AuditEntry) -> Project | None:
    """The project row `entry` leaves behind (``None``: a refused submission leaves none)."""
    creating = project.state == ""
    if creating and not entry.accepted:
        return None
    if creating:
        data: Mapping[str, Any] = entry.data
    elif entry.data:
        # Both are plain JSON that nothing mutates (the store's row, a sealed patch): a
        # shallow merge, as `audit.replay` makes it, without copying every nested value.
        data = {**project.data, **entry.data}
    else:
        data = project.data
    # Built from validated parts; constructing without re-validation keeps bulk fast.
    return trusted_fields(
        Project,
        {
            "id": project.id,
            "state": (entry.to_state or project.state) if entry.accepted else project.state,
            "version": entry.seq,
            "head": entry.hash,
            "data": data,
            "records": (*project.records, *entry.records) if entry.records else project.records,
            "created_at": entry.at if creating else project.created_at,
            "updated_at": entry.at,
        },
    )


def outcome_of(change: Change) -> Outcome:
    """The outcome of a committed change."""
    entry = change.entry
    # Every part comes from the sealed change grantflow built: no second validation.
    return trusted_fields(
        Outcome,
        {
            "project_id": change.after.id if change.after else None,  # a refused submission: none
            "event": entry.event,
            "accepted": entry.accepted,
            "from_state": entry.from_state,
            "state": change.after.state if change.after else None,
            "refusals": entry.refusals,
            "entry": entry,
        },
    )
