"""Authority: who may do what, on which project, as data one rule enforces.

The parties of a project are distinct (DOMAIN.md section 1): the applicant (the provider's
organisation), the endorsing hub, the purchaser (the hub that owns the call; its staff and
the staff of every hub above it act for it) and the third parties contracted at ``sign``
(the supervisor, and the evaluator: the counterparty of an ``evaluation`` contract, or of
the supervision contract when there is none). An actor's *relations* to a project are the
parties its organisation is (`relations`).

`EVENT_AUTHORITY` says which relation each lifecycle event needs (the roles are the
lifecycle's own); `RECORD_KINDS` says, for every record kind of the regime, who may add it
(roles and relations) or that only the effects of accepted transitions write it. The rule
`may_act` (``authority.*`` codes) enforces both, with the separation of duties the policy
sets (`Policy.release_roles`, `Policy.independent_of`); `matrix` renders the same data for
docs/authority.md. grantflow does not authenticate: the host says who the actor is.

>>> sorted(k.kind for k in RECORD_KINDS if k.effect_owned)[:3]
['amendment', 'approval', 'assessment']
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from grantflow.messages import catalogue, refusal
from grantflow.models import Actor, Project, Verdict
from grantflow.policy import Policy
from grantflow.records import Contract, hub_ancestors
from grantflow.rules._base import PASS, Parsed, RuleContext, rule
from grantflow.rules._book import FactRequest
from grantflow.rules._regime import provider_of, text, values
from grantflow.states import PURCHASED_SERVICE, Lifecycle

__all__ = [
    "AUTHORITY_CODES",
    "EVENT_AUTHORITY",
    "PARTIES_FACT",
    "Permission",
    "RECORD_KINDS",
    "RELATIONS",
    "RecordKind",
    "Relation",
    "contracted",
    "interested",
    "matrix",
    "may_act",
    "parties",
    "record_kind",
    "relations",
]

Relation = Literal["applicant", "endorser", "purchaser", "evaluator", "supervisor"]
#: An actor's possible relations to a project, in the order the matrix shows them.
RELATIONS: tuple[Relation, ...] = get_args(Relation)
#: Fact name: the parties of the project (see `parties`).
PARTIES_FACT = "parties"
#: The codes an authority refusal carries (the oracle of the property tests reads them).
AUTHORITY_CODES = frozenset(
    {
        "lifecycle.role",
        "records.reserved",
        "records.unknown",
        "authority.role",
        "authority.relation",
        "authority.independence",
        "authority.release",
        "conflict.own_project",
        "conflict.approver_pays",
        "eligibility.applicant",
        "reasons.applicant_owns",
    }
)


@dataclass(frozen=True, slots=True)
class Permission:
    """Who may do something: roles (any of), relations (any of), relations ruled out.

    Attributes:
        roles: the actor holds one of these (empty: any actor; events use the
            lifecycle's roles instead).
        relations: the actor has one of these relations to the project (empty: none
            needed).
        excluded: relations the actor may not have.
        independent: the actor also may have none of `Policy.independent_of`.
        code: the refusal code for a missing relation; another rule's code when that
            rule checks it (``eligibility.applicant`` at submission, for example).
    """

    roles: frozenset[str] = frozenset()
    relations: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()
    independent: bool = False
    code: str = "authority.relation"

    def ruled_out(self, policy: Policy) -> frozenset[str]:
        """The relations that bar the actor under `policy`."""
        return self.excluded | (frozenset(policy.independent_of) if self.independent else set())


@dataclass(frozen=True, slots=True)
class RecordKind:
    """A record kind of the regime: who may add it, or the events whose effects write it."""

    kind: str
    owner: Permission | None
    written_by: tuple[str, ...] = ()

    @property
    def effect_owned(self) -> bool:
        """True when only the effects of accepted transitions write this kind."""
        return self.owner is None


def _p(*relations: str, **kwargs: Any) -> Permission:
    return Permission(relations=frozenset(relations), **kwargs)


def _own(role: str, *relations: str, **kwargs: Any) -> Permission:
    return Permission(roles=frozenset({role}), relations=frozenset(relations), **kwargs)


#: The relation each event of the purchased-service lifecycle needs.
EVENT_AUTHORITY: Mapping[str, Permission] = {
    "submit": _p("applicant", code="eligibility.applicant"),
    "approve": _p("purchaser"),
    "reject": _p("purchaser"),
    "withdraw": _p("applicant", code="reasons.applicant_owns"),
    "sign": _p("purchaser"),
    "pass_midterm": _p("purchaser"),
    "order_rectification": _p("purchaser", "evaluator"),
    "assess": _p("purchaser", "evaluator"),
    "close": _p("purchaser"),
    "terminate": _p("purchaser"),
}

#: Every record kind of the default regime, with its owner (``None``: effect-owned).
RECORD_KINDS: tuple[RecordKind, ...] = (
    RecordKind("review", _own("reviewer", independent=True)),
    RecordKind("objection", Permission(excluded=frozenset({"applicant"}))),
    RecordKind("objection_ruling", _own("purchaser", "purchaser")),
    RecordKind("evaluation", _own("evaluator", "evaluator", independent=True)),
    RecordKind("expenditure", _own("applicant", "applicant")),
    RecordKind("service", _own("applicant", "applicant")),
    RecordKind("amendment_request", _own("applicant", "applicant")),
    RecordKind("amendment_decision", _own("purchaser", "purchaser")),
    RecordKind("sanction", _own("purchaser", "purchaser")),
    RecordKind("refund_payment", _own("purchaser", "purchaser")),
    RecordKind("progress_report", _own("applicant", "applicant")),
    # Written by grantflow's timers (`Engine.sweep`), as the system actor, when due.
    RecordKind("reminder", Permission(roles=frozenset({"system"}))),
    RecordKind("publicity_closed", Permission(roles=frozenset({"system"}))),
    RecordKind("termination_proposal", Permission(roles=frozenset({"system"}))),
    RecordKind("approval", None, ("approve",)),
    RecordKind("contract", None, ("sign",)),
    RecordKind("budget_line", None, ("sign",)),
    RecordKind("installment", None, ("sign",)),
    RecordKind("disbursement", None, ("sign", "pass_midterm", "close")),
    RecordKind("rectification_order", None, ("order_rectification",)),
    RecordKind("assessment", None, ("assess",)),
    RecordKind("settlement", None, ("close",)),
    RecordKind("clawback", None, ("terminate",)),
    RecordKind("refund_demand", None, ("close", "terminate")),
    RecordKind("amendment", None, ("record.amendment_decision",)),
)
_KINDS = {k.kind: k for k in RECORD_KINDS}


def record_kind(kind: str) -> RecordKind | None:
    """Return the declaration of `kind`, or ``None`` for a kind the regime does not know."""
    return _KINDS.get(kind)


# -- the parties of a project --------------------------------------------------------------


def parties(request: FactRequest) -> dict[str, Any]:
    """Fact provider: the applicant, endorsing hub and purchaser path of the project.

    The purchaser is the application's (set from the call's hub at submission); its path
    is the purchasing hub and every hub above it, read through the decision's reader
    (a bulk run reads each hub once).
    """
    data = request.project.data
    purchaser = text(data, "purchaser")
    if not purchaser and text(data, "call"):
        call = request.reader.get_entity("call", text(data, "call"))
        purchaser = text(call.data, "hub") if call is not None else ""
    return {
        "applicant": provider_of(request.project),
        "endorser": text(data, "hub"),
        "purchaser": purchaser,
        "purchaser_path": hub_ancestors(request.reader, purchaser) if purchaser else [],
    }


def contracted(project: Project, memo: Parsed | None = None) -> dict[str, str]:
    """The third parties contracted at ``sign``: {"supervisor": org, "evaluator": org}."""
    by_kind = {c.kind: c for c in values(project, "contract", Contract, memo)}
    found: dict[str, str] = {}
    supervision = by_kind.get("supervision")
    if supervision is not None and supervision.counterparty:
        found["supervisor"] = supervision.counterparty
    evaluation = by_kind.get("evaluation") or supervision
    if evaluation is not None and evaluation.counterparty:
        found["evaluator"] = evaluation.counterparty
    return found


def relations(
    actor: Actor, project: Project, facts: Mapping[str, Any], memo: Parsed | None = None
) -> frozenset[str]:
    """Return the parties of `project` that `actor` acts for (its relations to it).

    With `memo` (a rule's ``ctx.parsed``) the contracts are parsed once per decision.
    """
    found: set[str] = set()
    facts_parties = facts.get(PARTIES_FACT) or {}
    provider = provider_of(project)
    if provider and provider in {actor.organisation, actor.id}:
        found.add("applicant")
    org = actor.organisation
    if org is None:
        return frozenset(found)
    if org == text(project.data, "hub"):
        found.add("endorser")
    if org in (facts_parties.get("purchaser_path") or ()):
        found.add("purchaser")
    for relation, counterparty in contracted(project, memo).items():
        if org == counterparty:
            found.add(relation)
    return frozenset(found)


def interested(project: Project, facts: Mapping[str, Any], policy: Policy) -> tuple[str, ...]:
    """The organisations a third party must be independent of, under `policy`.

    The applicant, the endorsing hub, and the purchasing hub with every hub above it
    (as `Policy.independent_of` names them).
    """
    facts_parties = facts.get(PARTIES_FACT) or {}
    orgs: list[str] = []
    if "applicant" in policy.independent_of:
        orgs.append(provider_of(project))
    if "endorser" in policy.independent_of:
        orgs.append(text(project.data, "hub"))
    if "purchaser" in policy.independent_of:
        orgs.extend(str(h) for h in facts_parties.get("purchaser_path") or ())
    return tuple(dict.fromkeys(o for o in orgs if o))


# -- the rule --------------------------------------------------------------------------------


@rule(name="authority")
def may_act(ctx: RuleContext) -> Verdict:
    """The actor holds the roles and relations the event or record kind needs, no more.

    Refuses with ``authority.role`` (a record kind's roles), ``authority.relation`` (not
    a party the event or kind needs), ``authority.independence`` (a party a third party
    or objector may not be) and ``authority.release`` (an event that moves money, fired
    without one of `Policy.release_roles`).
    """
    if ctx.event.startswith("record."):
        declared = record_kind(ctx.event.removeprefix("record."))
        permission = declared.owner if declared is not None else None
    else:
        permission = EVENT_AUTHORITY.get(ctx.event)
    if permission is None:
        return PASS  # an unknown kind, or one only effects write: the core refuses those
    have = relations(ctx.actor, ctx.project, ctx.facts, ctx.parsed)
    verdict = PASS
    if permission.roles and not ctx.actor.has_any(permission.roles):
        verdict += refusal(
            "authority.role",
            event=ctx.event,
            roles=sorted(permission.roles),
            actor_roles=sorted(ctx.actor.roles),
        )
    if (
        permission.relations
        and permission.code == "authority.relation"
        and have.isdisjoint(permission.relations)
    ):
        verdict += refusal(
            "authority.relation",
            event=ctx.event,
            required=sorted(permission.relations),
            relations=sorted(have),
            organisation=ctx.actor.organisation,
        )
    barred = sorted(have & permission.ruled_out(ctx.policy))
    if barred:
        verdict += refusal(
            "authority.independence",
            event=ctx.event,
            barred=barred,
            organisation=ctx.actor.organisation,
        )
    if not ctx.event.startswith("record.") and ctx.policy.releases(ctx.event):
        verdict += _release(ctx)
    return verdict


def _release(ctx: RuleContext) -> Verdict:
    roles = ctx.policy.release_roles
    if ctx.actor.has_any(frozenset(roles)):
        return PASS
    return refusal(
        "authority.release",
        event=ctx.event,
        roles=sorted(roles),
        actor_roles=sorted(ctx.actor.roles),
    )


# -- the matrix ------------------------------------------------------------------------------


def matrix(
    language: str = "en", *, lifecycle: Lifecycle = PURCHASED_SERVICE, policy: Policy | None = None
) -> str:
    """Render the authority matrix as two Markdown tables (events, record kinds).

    Generated from `EVENT_AUTHORITY`, `RECORD_KINDS`, the lifecycle's roles and the
    policy's separation of duties, in English (``en``) or Chinese (``zh``) labels from the
    message catalogues; docs/authority.md holds its output (a test compares them).
    """
    policy = policy or Policy()
    words = _Words(language)
    events = [
        words.row(
            words.event(e.name),
            words.roles(e.roles),
            words.relations(EVENT_AUTHORITY[e.name].relations),
            words.separation(e.name, EVENT_AUTHORITY[e.name], policy),
        )
        for e in lifecycle.events
        if e.name in EVENT_AUTHORITY
    ]
    kinds = [
        words.row(
            words.kind(k.kind),
            words.roles(k.owner.roles) if k.owner else words.effects(k.written_by),
            words.relations(k.owner.relations) if k.owner else "—",
            words.separation(None, k.owner, policy) if k.owner else "—",
        )
        for k in RECORD_KINDS
    ]
    head = words.table_heads()
    return "\n".join(
        [
            words.row(*head[0]),
            words.row(*(["---"] * 4)),
            *events,
            "",
            words.row(*head[1]),
            words.row(*(["---"] * 4)),
            *kinds,
        ]
    )


class _Words:
    """Labels of one language, from the message catalogues and `_HEADINGS`."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.table = catalogue(language)
        self.text = _HEADINGS[language]

    def row(self, *cells: str) -> str:
        return "| " + " | ".join(cells) + " |"

    def table_heads(self) -> tuple[list[str], list[str]]:
        t = self.text
        return (
            [t["event"], t["roles"], t["relations"], t["separation"]],
            [t["kind"], t["added_by"], t["relations"], t["separation"]],
        )

    def _label(self, table: str, key: str) -> str:
        label = self.table.get(table, {}).get(key)
        if self.language == "en":
            return f"`{key}`"
        return str(label) if label else key

    def event(self, name: str) -> str:
        return self._label("event", name)

    def kind(self, name: str) -> str:
        return self._label("kind", name)

    def roles(self, roles: Iterable[str]) -> str:
        names = sorted(roles)
        if not names:
            return self.text["anyone"]
        return self.text["or"].join(self._label("role", r) for r in names)

    def relations(self, relations: Collection[str]) -> str:
        names = [r for r in RELATIONS if r in relations]
        if not names:
            return "—"
        return self.text["or"].join(self.text[f"rel_{r}"] for r in names)

    def effects(self, events: Iterable[str]) -> str:
        shown = [self.event(e) if not e.startswith("record.") else self.kind(e[7:]) for e in events]
        return self.text["effects"].format(self.text["or"].join(shown))

    def separation(self, event: str | None, permission: Permission, policy: Policy) -> str:
        notes = []
        barred = [r for r in RELATIONS if r in permission.ruled_out(policy)]
        if barred:
            names = self.text["or"].join(self.text[f"rel_{r}"] for r in barred)
            notes.append(self.text["not"].format(names))
        if event is not None and policy.releases(event):
            roles = self.text["or"].join(self._label("role", r) for r in policy.release_roles)
            notes.append(self.text["release"].format(roles))
            if not policy.approver_may_release:
                notes.append(self.text["not_approver"])
        if permission.code != "authority.relation":
            notes.append(self.text["checked_by"].format(f"`{permission.code}`"))
        return self.text["sep"].join(notes) if notes else "—"


_HEADINGS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "event": "event",
        "kind": "record kind",
        "roles": "roles (any of)",
        "added_by": "added by (roles, any of)",
        "relations": "relation to the project (any of)",
        "separation": "separation of duties",
        "anyone": "anyone",
        "or": ", ",
        "sep": "; ",
        "effects": "only the effects of {}",
        "rel_applicant": "applicant",
        "rel_endorser": "endorsing hub",
        "rel_purchaser": "purchaser (its hub or above)",
        "rel_evaluator": "contracted evaluator",
        "rel_supervisor": "contracted supervisor",
        "not": "never: {}",
        "release": "pays: needs the {} role",
        "not_approver": "not the approver",
        "checked_by": "relation checked by {}",
    },
    "zh": {
        "event": "操作",
        "kind": "记录类型",
        "roles": "角色（任一）",
        "added_by": "登记者（角色，任一）",
        "relations": "与项目的关系（任一）",
        "separation": "职责分离",
        "anyone": "任何人",
        "or": "、",
        "sep": "；",
        "effects": "仅由{}自动生成",
        "rel_applicant": "申报单位",
        "rel_endorser": "推荐枢纽",
        "rel_purchaser": "购买主体（本级或上级枢纽）",
        "rel_evaluator": "签约评估方",
        "rel_supervisor": "签约监管方",
        "not": "不得为：{}",
        "release": "涉及拨款：须具备{}角色",
        "not_approver": "审批人不得拨款",
        "checked_by": "关系由{}规则核验",
    },
}
