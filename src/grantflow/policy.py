"""Policy: every configurable threshold of the regime, versioned, loadable from TOML.

Percentages are `Decimal` percents (``40`` means 40 %), money is `Decimal` with two
places, durations are whole days, months or years. A project is pinned to the policy
version it was submitted under; `Engine.migrate_policy` moves it explicitly.
"""

from __future__ import annotations

import os
import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from grantflow.errors import InvalidInput

__all__ = [
    "MILESTONES",
    "Percent",
    "Policy",
    "Score",
]

#: Events that may release an installment, in lifecycle order.
MILESTONES: tuple[str, ...] = ("sign", "pass_midterm", "close")

Percent = Annotated[Decimal, Field(ge=0, le=100, allow_inf_nan=False)]
Score = Annotated[Decimal, Field(ge=0, le=1000, allow_inf_nan=False)]


class Policy(BaseModel):
    r"""Thresholds the default rules read; a project is pinned to the version it started under.

    >>> Policy().version, Policy().review_quorum, Policy().pass_score
    ('default-1', 3, Decimal('60'))
    >>> Policy.from_toml('version = "city-2025"\nreview_quorum = 5').review_quorum
    5
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = "default-1"

    # -- approval review (立项评审) --------------------------------------------------------
    #: Unconflicted reviews needed before `approve`.
    review_quorum: int = Field(default=3, ge=1)
    #: Aggregate score an application needs to be approved.
    pass_score: Score = Decimal("60")
    #: From this many reviews on, drop the highest and lowest total before averaging.
    trimmed_mean_from: int = Field(default=5, ge=3)
    #: Most bonus points that count on top of the 100 base points.
    bonus_cap: Score = Decimal("10")
    #: Rubric version (by rubric id) new projects are pinned to, unless the call says otherwise.
    rubric_versions: dict[str, int] = Field(
        default_factory=lambda: {"approval": 1, "midterm": 1, "performance": 1}
    )

    # -- grade bands (Ministry of Finance evaluation bands) ------------------------------
    grade_excellent: Score = Decimal("90")
    grade_good: Score = Decimal("80")
    grade_pass: Score = Decimal("60")
    #: A passing mid-term score below ``grade_pass + borderline_margin`` may be rectified.
    borderline_margin: Score = Decimal("5")

    # -- eligibility (submit) -------------------------------------------------------------
    applications_per_provider_per_call: int = Field(default=2, ge=1)
    penalty_lookback_years: int = Field(default=2, ge=0)
    #: Call years a 不合格 final grade bars the provider for (1: the next year's calls).
    fail_bar_years: int = Field(default=1, ge=0)
    #: Points added to the next year's panel score by last year's grade (优秀, 良好).
    grade_priority: dict[str, Score] = Field(
        default_factory=lambda: {"excellent": Decimal("3"), "good": Decimal("1")}
    )

    # -- publicity and contracts (sign) ---------------------------------------------------
    publicity_working_days: int = Field(default=5, ge=0)
    #: Days off added to the official Chinese calendar (`grantflow.calendar`).
    holidays: tuple[date, ...] = ()
    #: Working days added to the official calendar (make-up workdays, 调休); these and
    #: `holidays` override the official schedule, and naming any day of a year the
    #: official data lacks makes that year usable (weekends off, plus these days).
    workdays: tuple[date, ...] = ()
    #: Calendar for "working day" and contract dates.
    timezone: str = "Asia/Shanghai"
    contract_term_max_months: int = Field(default=12, ge=1)
    #: How far, in months, amendments may move a contract's end beyond the signed end.
    extension_max_months: int = Field(default=6, ge=0)
    #: The longest a project may run, extensions included (months from the start).
    longest_term_months: int = Field(default=18, ge=1)

    # -- funds ----------------------------------------------------------------------------
    personnel_cap: Percent = Decimal("40")
    administration_cap: Percent = Decimal("10")
    #: Spending may exceed a budget line by this much before an amendment is needed.
    line_move_tolerance: Percent = Decimal("10")
    #: Installment shares in percent, any number of parts adding up to 100.
    installments: tuple[Percent, ...] = (Decimal("40"), Decimal("40"), Decimal("20"))
    #: The event releasing each part (`MILESTONES`, in lifecycle order, the last ``close``:
    #: held until assessment). Empty: the first part on ``sign``, the last on ``close``,
    #: any between on ``pass_midterm``.
    installment_milestones: tuple[str, ...] = ()
    #: Share of the final installment paid, by grade (excellent, good, pass, fail).
    final_installment_by_grade: dict[str, Percent] = Field(
        default_factory=lambda: {
            "excellent": Decimal("100"),
            "good": Decimal("100"),
            "pass": Decimal("80"),
            "fail": Decimal("0"),
        }
    )
    #: Working days a provider has to pay back a refund demand (settlement or clawback).
    refund_due_working_days: int = Field(default=20, ge=0)
    #: Expenditure categories never eligible (whole-job subcontracting, unapproved assets).
    prohibited_categories: tuple[str, ...] = ("whole_subcontracting", "unapproved_fixed_asset")
    #: At the mid-term, spending (as % of the award) may lead reported progress by this much.
    spending_lead_tolerance: Percent = Decimal("20")

    # -- due dates and timers (docs/time.md) ---------------------------------------------
    #: Months per progress-report period from the contract start (0: no progress reports).
    progress_report_months: int = Field(default=3, ge=0)
    #: Working days after a period's end its progress report (进度报告) is due.
    progress_report_working_days: int = Field(default=10, ge=0)
    #: Working days after the contract's end the final report (结项报告) is due.
    final_report_working_days: int = Field(default=20, ge=0)
    #: Working days before a due date its reminder is recorded.
    reminder_working_days: int = Field(default=5, ge=1)

    # -- service records -----------------------------------------------------------------
    #: Most person-times one service record may report (a plausibility bound).
    service_person_times_max: int = Field(default=50_000, ge=1)
    #: Most activities one service record may report.
    service_activities_max: int = Field(default=1_000, ge=1)

    # -- conflict of interest -------------------------------------------------------------
    conflict_lookback_years: int = Field(default=3, ge=0)
    #: Whether a review counts only with an explicit conflict-of-interest declaration.
    declaration_required: bool = True

    # -- authority and separation of duties (docs/authority.md) -------------------------
    #: Roles of the purchaser's staff who release payments: an event that pays (an
    #: installment's milestone, and ``close``) needs one of them.
    release_roles: tuple[str, ...] = ("finance",)
    #: Whether whoever approved an award may also release its payments (never, by default).
    approver_may_release: bool = False
    #: Relations to the project that reviewers, evaluators and supervisors may not have:
    #: the applicant, the endorsing hub, the purchaser (its hub or a hub above it).
    independent_of: tuple[Literal["applicant", "endorser", "purchaser"], ...] = (
        "applicant",
        "endorser",
        "purchaser",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        if sum(self.installments, Decimal(0)) != 100:
            raise ValueError("installments must add up to 100 (percent)")
        if any(share <= 0 for share in self.installments):
            raise ValueError("every installment is a positive share")
        self._check_milestones()
        if not self.release_roles:
            raise ValueError("release_roles names at least one role: someone releases payments")
        if not self.grade_excellent >= self.grade_good >= self.grade_pass:
            raise ValueError("grade bands must satisfy excellent >= good >= pass")
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            days = ", ".join(d.isoformat() for d in both)
            raise ValueError(f"days both in holidays and workdays: {days}")
        missing = {"excellent", "good", "pass", "fail"} - set(self.final_installment_by_grade)
        if missing:
            raise ValueError(f"final_installment_by_grade lacks {sorted(missing)}")
        return self

    def _check_milestones(self) -> None:
        given = self.installment_milestones
        if not given:
            return
        if len(given) != len(self.installments):
            raise ValueError(
                f"installment_milestones names {len(given)} events for "
                f"{len(self.installments)} installments"
            )
        unknown = [m for m in given if m not in MILESTONES]
        if unknown:
            raise ValueError(
                f"unknown milestone {unknown[0]!r}; choose from {', '.join(MILESTONES)}"
            )
        order = [MILESTONES.index(m) for m in given]
        if order != sorted(order):
            raise ValueError("installment_milestones must follow the lifecycle order")
        if given[-1] != "close":
            raise ValueError(
                "the last installment is held until assessment: its milestone is close"
            )

    def releases(self, event: str) -> bool:
        """Return whether `event` moves money: a milestone of the schedule, or ``close``.

        >>> Policy().releases("pass_midterm"), Policy(installments=(100,)).releases("sign")
        (True, False)
        """
        return event == "close" or any(m == event for _share, m in self.schedule)

    @property
    def schedule(self) -> tuple[tuple[Decimal, str], ...]:
        """Return each installment as (share in percent, releasing event).

        >>> [m for _share, m in Policy(installments=(25, 25, 25, 25)).schedule]
        ['sign', 'pass_midterm', 'pass_midterm', 'close']
        """
        milestones = self.installment_milestones
        if not milestones:
            count = len(self.installments)
            middle = ("pass_midterm",) * max(count - 2, 0)
            milestones = ("close",) if count == 1 else ("sign", *middle, "close")
        return tuple(zip(self.installments, milestones, strict=True))

    @classmethod
    def from_toml(cls, text: str) -> Policy:
        """Load a policy from TOML text; `InvalidInput` if it is invalid or not text.

        TOML numbers with a fraction (``pass_score = 62.5``) are read as exact decimals.
        A file is read with `Policy.from_file`; a path given here is refused, never
        parsed as TOML.

        >>> Policy.from_toml("policy.toml")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        grantflow.errors.InvalidInput: Policy.from_toml takes TOML text, and 'policy.toml' looks...
        """
        given: object = text  # typed str, but callers used to pass paths
        if not isinstance(given, str):
            kind = "a path" if isinstance(given, os.PathLike) else type(given).__name__
            raise InvalidInput(
                f"Policy.from_toml takes TOML text, not {kind}: use Policy.from_file for a file",
                field="text",
            )
        try:
            data = tomllib.loads(text, parse_float=Decimal)
        except tomllib.TOMLDecodeError as exc:
            if _looks_like_path(text):
                raise InvalidInput(
                    f"Policy.from_toml takes TOML text, and {text!r} looks like a file "
                    f"path: use Policy.from_file({text!r})",
                    field="text",
                ) from None
            raise InvalidInput(f"policy TOML does not parse: {exc}", field="text") from exc
        return cls._validated(data)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Policy:
        """Load a policy from a UTF-8 TOML file; `InvalidInput` if unreadable or invalid."""
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(
                f"cannot read policy file {str(path)!r}: {exc}", field="path"
            ) from exc
        try:
            data = tomllib.loads(text, parse_float=Decimal)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(
                f"policy file {str(path)!r} does not parse as TOML: {exc}", field="path"
            ) from exc
        return cls._validated(data)

    @classmethod
    def _validated(cls, data: dict[str, object]) -> Policy:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(
                f"policy field {field!r}: {first['msg']}",
                field=field or "policy",
                errors=exc.errors(),
            ) from exc


def _looks_like_path(text: str) -> bool:
    """True for one line of text that names a file rather than holding TOML."""
    candidate = text.strip()
    if not candidate or "\n" in candidate or "=" in candidate:
        return False
    return candidate.endswith(".toml") or os.sep in candidate or Path(candidate).exists()
