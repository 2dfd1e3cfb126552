"""Scoring standards as versioned data: rubrics, panel aggregates and grade bands.

The three default rubrics carry the weights of the purchaser's scoring standards
(approval review 立项评审, mid-term evaluation 中期评估, performance assessment 绩效考核).
A review or evaluation names the rubric id and version it was scored with; a project is
pinned to the versions it started under.

>>> from decimal import Decimal
>>> from grantflow.policy import Policy
>>> APPROVAL_REVIEW.maximum, APPROVAL_REVIEW.key
(Decimal('100'), 'approval@1')
>>> aggregate([Decimal(70), Decimal(80), Decimal(90)], Policy())
Decimal('80')
>>> aggregate([Decimal("59.99"), Decimal(60), Decimal(60)], Policy()) < 60
True
>>> shown(aggregate([Decimal("59.99"), Decimal(60), Decimal(60)], Policy()))
'59.99'
>>> grade(Decimal("85"), Policy()).label_zh
'良好'
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from enum import StrEnum
from functools import cached_property
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from grantflow.errors import InvalidInput
from grantflow.policy import Policy

__all__ = [
    "APPROVAL_REVIEW",
    "DEFAULT_RUBRICS",
    "Dimension",
    "Grade",
    "Item",
    "MIDTERM_EVALUATION",
    "PERFORMANCE_ASSESSMENT",
    "Points",
    "Rubric",
    "aggregate",
    "find_rubric",
    "grade",
    "shown",
]

_CENT = Decimal("0.01")
Points = Annotated[Decimal, Field(gt=0, le=1000, allow_inf_nan=False)]


class Grade(StrEnum):
    """Grade bands: 优秀 excellent, 良好 good, 合格 pass, 不合格 fail."""

    EXCELLENT = "excellent"
    GOOD = "good"
    PASS = "pass"
    FAIL = "fail"

    @property
    def label_zh(self) -> str:
        """The Chinese name of the grade."""
        return {"excellent": "优秀", "good": "良好", "pass": "合格", "fail": "不合格"}[self.value]

    def at_least(self, other: Grade) -> bool:
        """Return whether this grade is `other` or better."""
        order = (Grade.FAIL, Grade.PASS, Grade.GOOD, Grade.EXCELLENT)
        return order.index(self) >= order.index(other)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Item(_Frozen):
    """One scored item: an id unique in its rubric, labels, and its maximum."""

    id: str
    label: str
    label_zh: str
    max: Points


class Dimension(_Frozen):
    """A group of items (need, design, ...); its maximum is the sum of theirs."""

    id: str
    label: str
    label_zh: str
    items: tuple[Item, ...]

    @property
    def maximum(self) -> Decimal:
        """Sum of the items' maxima."""
        return sum((i.max for i in self.items), Decimal(0))


class Rubric(_Frozen):
    """A versioned scoring standard: dimensions of items, optional bonus items and their cap."""

    id: str
    version: int = Field(ge=1)
    title: str
    title_zh: str
    dimensions: tuple[Dimension, ...]
    bonus: tuple[Item, ...] = ()
    bonus_cap: Decimal = Decimal(0)

    @model_validator(mode="after")
    def _unique_items(self) -> Rubric:
        ids = [i.id for i in self.all_items]
        if len(ids) != len(set(ids)):
            raise ValueError(f"rubric {self.key}: item ids repeat")
        return self

    @property
    def key(self) -> str:
        """``id@version``, the pin stored on reviews and projects."""
        return f"{self.id}@{self.version}"

    # A rubric is immutable: what is derived from its items is worked out once.
    @cached_property
    def items(self) -> tuple[Item, ...]:
        """The base (non-bonus) items, in dimension order."""
        return tuple(i for d in self.dimensions for i in d.items)

    @cached_property
    def all_items(self) -> tuple[Item, ...]:
        """Base items then bonus items."""
        return (*self.items, *self.bonus)

    @cached_property
    def _by_id(self) -> dict[str, Item]:
        return {i.id: i for i in self.all_items}

    @property
    def maximum(self) -> Decimal:
        """Most base points (bonus excluded)."""
        return sum((d.maximum for d in self.dimensions), Decimal(0))

    def problems(self, scores: Mapping[str, object]) -> list[str]:
        """Return what is wrong with `scores`: missing, unknown or out-of-range items."""
        texts = {
            "score.missing": "{item}: missing",
            "score.unknown": "{item}: not an item of {rubric}@{version}",
            "score.range": "{item}: {value} not within 0..{max}",
        }
        return [texts[str(i["code"])].format(**i) for i in self.issues(scores)]

    def issues(self, scores: Mapping[str, object]) -> list[dict[str, object]]:
        """Return `problems` as message-catalogue problems (``score.missing``, ...).

        Each names the item by id and by its Chinese label (``item_zh``).
        """
        found: list[dict[str, object]] = []
        known = self._by_id
        for base in self.items:
            if base.id not in scores:
                found.append({"code": "score.missing", "item": base.id, "item_zh": base.label_zh})
        for iid, raw in scores.items():
            item = known.get(iid)
            if item is None:
                found.append(
                    {
                        "code": "score.unknown",
                        "item": iid,
                        "rubric": self.id,
                        "version": self.version,
                    }
                )
                continue
            value = _decimal(raw)
            if value is None or not 0 <= value <= item.max:
                found.append(
                    {
                        "code": "score.range",
                        "item": iid,
                        "item_zh": item.label_zh,
                        "value": raw,
                        "max": item.max,
                    }
                )
        return found

    def total(self, scores: Mapping[str, object], policy: Policy) -> Decimal:
        """Return base points plus bonus capped by the rubric and the policy.

        Raises `InvalidInput` (field ``scores``) when `problems` finds anything.
        """
        wrong = self.problems(scores)
        if wrong:
            raise InvalidInput(f"scores for {self.key}: {'; '.join(wrong)}", field="scores")
        return self.points(scores, policy)

    def points(self, scores: Mapping[str, object], policy: Policy) -> Decimal:
        """`total` of scores already found to have no `problems` (not checked again)."""
        base = sum((_decimal(scores[i.id]) or Decimal(0) for i in self.items), Decimal(0))
        extra = sum((_decimal(scores.get(i.id, 0)) or Decimal(0) for i in self.bonus), Decimal(0))
        return base + min(extra, self.bonus_cap, policy.bonus_cap)

    def checked_points(self, scores: Mapping[str, object], policy: Policy) -> Decimal | None:
        """`points` of `scores` when `issues` finds nothing in them, else ``None``; one pass.

        The approval panel asks this of every review of every project it decides.
        """
        limits = self._limits
        base = extra = _ZERO
        based = 0
        for iid, raw in scores.items():
            limit = limits.get(iid)
            if limit is None:
                return None
            value = raw if type(raw) is Decimal and raw.is_finite() else _decimal(raw)
            if value is None or not _ZERO <= value <= limit[0]:
                return None
            if limit[1]:
                extra += value
            else:
                base += value
                based += 1
        if based != len(self.items):  # a base item is missing (ids are unique)
            return None
        return base + min(extra, self.bonus_cap, policy.bonus_cap)

    @cached_property
    def _limits(self) -> dict[str, tuple[Decimal, bool]]:
        """Each item's maximum and whether it is a bonus item, by id."""
        bonus = {i.id for i in self.bonus}
        return {i.id: (i.max, i.id in bonus) for i in self.all_items}

    def proportional(self, percent: Decimal | int) -> dict[str, str]:
        """Scores giving every base item `percent` % of its maximum (for examples and tests)."""
        share = Decimal(percent) / 100
        return {i.id: str((i.max * share).quantize(_CENT, ROUND_HALF_UP)) for i in self.items}


_ZERO = Decimal(0)


def _decimal(value: object) -> Decimal | None:
    if type(value) is str:
        return _decimal_text(value)
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        return None
    try:
        result = Decimal(value)
    except ArithmeticError:
        return None
    return result if result.is_finite() else None


@functools.lru_cache(maxsize=4096)
def _decimal_text(value: str) -> Decimal | None:
    # Reviews repeat a handful of score texts ("8", "7.50"): parse each once. Keyed by
    # the exact text, so "7.5" and "7.50" keep their own exponents.
    try:
        result = Decimal(value)
    except ArithmeticError:
        return None
    return result if result.is_finite() else None


def aggregate(totals: Sequence[Decimal], policy: Policy) -> Decimal:
    """Return the panel score: mean, or trimmed mean (drop top and bottom) from enough totals.

    Not rounded: scores keep full precision until displayed (see `shown`), so a mean of
    59.9967 is below a pass mark of 60. Raises `InvalidInput` on an empty panel.
    """
    if not totals:
        raise InvalidInput("no scores to aggregate", field="scores")
    ordered = sorted(totals)
    if len(ordered) >= policy.trimmed_mean_from:
        ordered = ordered[1:-1]
    with localcontext() as ctx:
        ctx.prec = 40  # a mean of two-place scores is exact or far beyond any pass mark's places
        return sum(ordered, Decimal(0)) / len(ordered)


def shown(score: Decimal) -> str:
    """Return `score` for display: two places, cut (never rounded up past a threshold)."""
    return str(score.quantize(_CENT, ROUND_FLOOR))


def grade(score: Decimal, policy: Policy) -> Grade:
    """Return the grade band of `score` under `policy` (90 / 80 / 60 by default)."""
    if score >= policy.grade_excellent:
        return Grade.EXCELLENT
    if score >= policy.grade_good:
        return Grade.GOOD
    if score >= policy.grade_pass:
        return Grade.PASS
    return Grade.FAIL


def find_rubric(rubrics: Iterable[Rubric], rubric_id: str, version: int) -> Rubric | None:
    """Return the rubric with that id and version, or ``None``."""
    return next((r for r in rubrics if r.id == rubric_id and r.version == version), None)


def _dim(did: str, label: str, zh: str, *items: tuple[str, str, str, int]) -> Dimension:
    return Dimension(
        id=did,
        label=label,
        label_zh=zh,
        items=tuple(
            Item(id=f"{did}.{iid}", label=il, label_zh=iz, max=Decimal(m))
            for iid, il, iz, m in items
        ),
    )


#: 立项评审: 100 points in six dimensions, plus bonus items capped at 10.
APPROVAL_REVIEW = Rubric(
    id="approval",
    version=1,
    title="Approval review",
    title_zh="立项评审",
    dimensions=(
        _dim(
            "need",
            "Need",
            "需求分析",
            ("evidence", "Evidence of workers' need", "需求依据", 10),
            ("target_group", "Target group defined", "服务对象明确", 10),
        ),
        _dim(
            "design",
            "Design",
            "项目设计",
            ("logic", "Logic from need to outcome", "项目逻辑", 10),
            ("activities", "Activities fit the need", "活动设计", 10),
            ("schedule", "Feasible schedule", "进度安排", 5),
        ),
        _dim(
            "capacity",
            "Capacity",
            "承接能力",
            ("track_record", "Track record", "过往业绩", 10),
            ("staff", "Qualified staff", "专业团队", 10),
        ),
        _dim(
            "budget",
            "Budget",
            "预算编制",
            ("reasonable", "Costs reasonable", "预算合理", 10),
            ("compliance", "Lines within caps", "科目合规", 5),
        ),
        _dim(
            "targets",
            "Targets and monitoring",
            "绩效目标与监测",
            ("measurable", "Measurable targets", "目标可衡量", 5),
            ("monitoring", "Monitoring plan", "监测计划", 5),
        ),
        _dim(
            "innovation",
            "Innovation and brand fit",
            "创新与品牌契合",
            ("novelty", "Innovation", "创新性", 5),
            ("brand_fit", "Fit with a brand project", "品牌契合度", 5),
        ),
    ),
    bonus=(
        Item(id="bonus.matched_funding", label="Matched funding", label_zh="配套资金", max=5),
        Item(id="bonus.union_coverage", label="Union at the provider", label_zh="建会情况", max=3),
        Item(id="bonus.priority_topic", label="Priority topic", label_zh="重点领域", max=5),
    ),
    bonus_cap=Decimal(10),
)

#: 中期评估: 100 points.
MIDTERM_EVALUATION = Rubric(
    id="midterm",
    version=1,
    title="Mid-term evaluation",
    title_zh="中期评估",
    dimensions=(
        _dim(
            "progress",
            "Progress and outputs",
            "进度与产出",
            ("outputs", "Outputs delivered", "产出完成", 20),
            ("schedule", "On schedule", "进度符合", 15),
        ),
        _dim(
            "finance",
            "Financial management",
            "财务管理",
            ("use", "Funds used as budgeted", "资金使用", 15),
            ("compliance", "Rules followed", "财务合规", 10),
        ),
        _dim(
            "records",
            "Records and ledgers",
            "档案台账",
            ("ledgers", "Ledgers complete", "台账完整", 10),
            ("archive", "Archive kept", "档案规范", 5),
        ),
        _dim(
            "quality",
            "Quality and satisfaction",
            "质量与满意度",
            ("satisfaction", "Beneficiary satisfaction", "服务对象满意度", 10),
            ("process", "Service quality", "服务质量", 5),
        ),
        _dim(
            "outcomes",
            "Interim outcomes",
            "阶段成效",
            ("interim", "Interim outcomes", "阶段成效", 10),
        ),
    ),
)

#: 绩效考核: 100 points on the decision / process / output / benefit frame.
PERFORMANCE_ASSESSMENT = Rubric(
    id="performance",
    version=1,
    title="Performance assessment",
    title_zh="绩效考核",
    dimensions=(
        _dim(
            "decision",
            "Decision",
            "决策",
            ("goals", "Goals set well", "目标设定", 5),
            ("budget", "Budget set well", "预算编制", 5),
        ),
        _dim(
            "process",
            "Process",
            "过程",
            ("management", "Management", "组织管理", 10),
            ("finance", "Financial management", "财务管理", 10),
        ),
        _dim(
            "outputs",
            "Outputs",
            "产出",
            ("quantity", "Quantity", "数量", 15),
            ("quality", "Quality", "质量", 10),
            ("timeliness", "Timeliness", "时效", 10),
        ),
        _dim(
            "benefits",
            "Benefits",
            "效益",
            ("social", "Social benefit", "社会效益", 15),
            ("satisfaction", "Satisfaction", "满意度", 10),
            ("sustainability", "Sustainability", "可持续性", 10),
        ),
    ),
)

#: The three default scoring standards.
DEFAULT_RUBRICS: tuple[Rubric, ...] = (APPROVAL_REVIEW, MIDTERM_EVALUATION, PERFORMANCE_ASSESSMENT)
