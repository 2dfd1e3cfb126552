"""The approval review: reviews on the pinned rubric, a quorum of unconflicted reviewers, a score.

Reviews arrive with ``engine.add_record(pid, "review", Review(...).model_dump(mode="json"))``
while the project is ``applied``. ``approve`` then needs a quorum of counted reviews
(unconflicted, on the pinned rubric version, valid scores), a panel score of at least the
pass mark, and a recommended amount no larger than the amount requested.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from grantflow.messages import problem, refusal
from grantflow.models import Project, Verdict
from grantflow.policy import Policy
from grantflow.records import Approval, Review, money
from grantflow.rubrics import DEFAULT_RUBRICS, Rubric, aggregate, find_rubric
from grantflow.rules._base import PASS, Parsed, Rule, RuleContext, rule
from grantflow.rules._book import Effects
from grantflow.rules._regime import (
    dec,
    load,
    local_date,
    make_record,
    pinned_version,
    provider_of,
    record_data,
    rows,
)
from grantflow.rules.authority import interested
from grantflow.rules.conflict import person_fact, review_conflict

__all__ = [
    "Panel",
    "PanelMemo",
    "amount_within_request",
    "approval_effect",
    "panel",
    "panel_score",
    "quorum",
    "review_record",
    "score",
]


@dataclass(frozen=True, slots=True)
class Panel:
    """The approval panel as the rules see it: counted totals and excluded reviewers."""

    counted: tuple[tuple[str, Decimal], ...]
    excluded: tuple[tuple[str, str], ...]
    rubric_key: str
    #: Added to the aggregate: last year's grade priority (`Policy.grade_priority`).
    bonus: Decimal = Decimal(0)

    def score(self, policy: Policy) -> Decimal | None:
        """Return the aggregate score plus the priority bonus, ``None`` with no counted review."""
        if not self.counted:
            return None
        return aggregate([t for _r, t in self.counted], policy) + self.bonus


def panel(
    project: Project,
    facts: Mapping[str, Any],
    rubrics: Sequence[Rubric],
    policy: Policy,
    today: date,
    memo: Parsed | None = None,
) -> Panel:
    """Sort the project's reviews into counted (reviewer, total) and excluded (reviewer, why).

    With `memo` (a rule's ``ctx.parsed``) each stored review is parsed once while the
    decision core keeps it.
    """
    version = pinned_version(project, "approval", policy)
    rubric = find_rubric(rubrics, "approval", version)
    counted: list[tuple[str, Decimal]] = []
    excluded: list[tuple[str, str]] = []
    seen: set[str] = set()
    provider = provider_of(project)
    parties = interested(project, facts, policy)
    for _record, review in rows(project, "review", Review, memo):
        total: Decimal | None = None
        person = person_fact(facts, review.reviewer)
        reason = review_conflict(review.conflict, person, provider, today, policy, parties)
        if review.reviewer in seen:
            reason = "duplicate"
        elif rubric is None or (review.rubric, review.rubric_version) != ("approval", version):
            reason = reason or "rubric_version"
        elif (total := rubric.checked_points(review.scores, policy)) is None:
            reason = reason or "invalid_scores"  # (problems() words the issues: not needed)
        seen.add(review.reviewer)
        if reason is None and total is not None:
            counted.append((review.reviewer, total))
        elif reason is not None:  # every branch above that leaves `total` unset names why
            excluded.append((review.reviewer, reason))
    bonus = dec(project.data.get("priority_bonus"))
    return Panel(tuple(counted), tuple(excluded), f"approval@{version}", bonus)


def panel_score(
    project: Project,
    facts: Mapping[str, Any],
    rubrics: Sequence[Rubric],
    policy: Policy,
    today: date,
) -> Decimal | None:
    """Return the score ``approve`` judges the project by (``None`` with no counted review)."""
    return panel(project, facts, rubrics, policy, today).score(policy)


class _Decided(NamedTuple):
    project: Project
    facts: Mapping[str, Any]
    policy: Policy
    now: datetime
    panel: Panel


class PanelMemo:
    """The panel of the decision being taken, worked out once for all its rules and effect.

    ``approve`` reads the panel three times (quorum, score, the approval record). A memo
    holds the last panel with the inputs it came from and answers again only for the very
    same objects (project, facts, policy) and instant: `panel` is a pure function of them
    and they are immutable, so the answer is the same. `default_rules` shares one memo
    between the three; holding its inputs keeps their identities from being reused.
    """

    __slots__ = ("_last", "_rubrics")

    def __init__(self, rubrics: Sequence[Rubric] = DEFAULT_RUBRICS) -> None:
        self._rubrics = rubrics
        self._last: _Decided | None = None

    def __call__(self, ctx: RuleContext) -> Panel:
        """Return the panel of `ctx`'s project."""
        last = self._last  # one read: another thread may replace it meanwhile
        if (
            last is not None
            and last.project is ctx.project
            and last.facts is ctx.facts
            and last.policy is ctx.policy
            and last.now == ctx.now
        ):
            return last.panel
        today = local_date(ctx.now, ctx.policy)
        result = panel(ctx.project, ctx.facts, self._rubrics, ctx.policy, today, ctx.parsed)
        self._last = _Decided(ctx.project, ctx.facts, ctx.policy, ctx.now, result)
        return result


def review_record(rubrics: Sequence[Rubric] = DEFAULT_RUBRICS) -> Rule:
    """Build ``review.record``: a reviewer's own, well-formed, declared review on the pinned rubric.

    Who may review at all is `grantflow.rules.authority` (``authority.*``): a reviewer
    independent of the applicant, the endorsing hub and the purchaser.
    """

    @rule(name="review.record")
    def review_record_rule(ctx: RuleContext) -> Verdict:
        review = load(Review, record_data(ctx), ctx.parsed)
        version = pinned_version(ctx.project, "approval", ctx.policy)
        rubric = find_rubric(rubrics, "approval", version)
        problems: list[dict[str, Any]] = []
        if ctx.source != "applied":
            problems.append(problem("review.state", state=ctx.source))
        if review is None:
            problems.append(problem("record.invalid", kind="review"))
        else:
            reviewer = review.reviewer
            if reviewer != ctx.actor.id:
                problems.append(problem("review.not_actor", reviewer=reviewer, actor=ctx.actor.id))
            if any(
                r.reviewer == reviewer for _, r in rows(ctx.project, "review", Review, ctx.parsed)
            ):
                problems.append(problem("review.repeat", reviewer=reviewer))
            if review.conflict is None and ctx.policy.declaration_required:
                problems.append(problem("review.no_declaration"))
            if (review.rubric, review.rubric_version) != ("approval", version) or rubric is None:
                problems.append(
                    problem(
                        "rubric.pinned",
                        rubric=review.rubric,
                        version=review.rubric_version,
                        pinned_rubric="approval",
                        pinned=version,
                    )
                )
            else:
                problems.extend(rubric.issues(review.scores))
        if not problems:
            return PASS
        return refusal("review.record", problems=problems)

    return review_record_rule


def quorum(rubrics: Sequence[Rubric] = DEFAULT_RUBRICS, memo: PanelMemo | None = None) -> Rule:
    """Build ``review.quorum``: enough counted (unconflicted, pinned, valid) reviews."""
    panel_of = memo or PanelMemo(rubrics)

    @rule(name="review.quorum")
    def review_quorum(ctx: RuleContext) -> Verdict:
        result = panel_of(ctx)
        need, have = ctx.policy.review_quorum, len(result.counted)
        if have >= need:
            return PASS
        return refusal(
            "review.quorum",
            required=need,
            submitted=have,
            excluded=[{"reviewer": r, "reason": why} for r, why in result.excluded],
        )

    return review_quorum


def score(rubrics: Sequence[Rubric] = DEFAULT_RUBRICS, memo: PanelMemo | None = None) -> Rule:
    """Build ``review.score``: the panel score reaches the pass mark."""
    panel_of = memo or PanelMemo(rubrics)

    @rule(name="review.score")
    def review_score(ctx: RuleContext) -> Verdict:
        result = panel_of(ctx)
        value = result.score(ctx.policy)
        if value is None or value >= ctx.policy.pass_score:
            return PASS  # no counted review: review.quorum refuses
        return refusal(
            "review.score",
            score=value,
            bonus=result.bonus,
            pass_score=ctx.policy.pass_score,
        )

    return review_score


@rule(name="review.amount")
def amount_within_request(ctx: RuleContext) -> Verdict:
    """The recommended amount is a positive sum of money no larger than the amount requested."""
    requested = dec(ctx.project.data.get("amount_requested"))
    raw = ctx.evidence.get("recommended_amount")
    try:
        recommended = money(str(raw))
    except (ArithmeticError, ValueError):
        recommended = None
    if recommended is not None and 0 < recommended <= requested:
        return PASS
    return refusal(
        "review.amount",
        recommended=None if raw is None else str(raw),
        requested=requested,
    )


def approval_effect(
    rubrics: Sequence[Rubric] = DEFAULT_RUBRICS, memo: PanelMemo | None = None
) -> Callable[[RuleContext], Effects]:
    """Build the ``approve`` effect: an `Approval` record and the recommended amount."""
    panel_of = memo or PanelMemo(rubrics)

    def record_approval(ctx: RuleContext) -> Effects:
        result = panel_of(ctx)
        approved = Approval(
            approver=ctx.actor.id,
            approver_organisation=ctx.actor.organisation,
            score=result.score(ctx.policy) or Decimal(0),
            recommended_amount=money(str(ctx.evidence["recommended_amount"])),
            reviews_counted=tuple(r for r, _t in result.counted),
            approved_at=ctx.now,
        )
        return Effects(
            records=(make_record("approval", "approval", approved),),
            data={
                "amount_recommended": str(approved.recommended_amount),
                "budget_reserved": str(approved.recommended_amount),
                "review_score": str(approved.score),
                "approved_at": ctx.now,
            },
        )

    return record_approval
