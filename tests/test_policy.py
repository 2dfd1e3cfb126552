"""Policy: defaults from DOMAIN.md, TOML loading, validation."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from grantflow import InvalidInput, Policy


def test_defaults_follow_the_domain() -> None:
    """The default thresholds are those of DOMAIN.md, money and percentages as Decimal."""
    p = Policy()
    assert (p.review_quorum, p.pass_score, p.trimmed_mean_from, p.bonus_cap) == (
        3,
        Decimal(60),
        5,
        Decimal(10),
    )
    assert (p.applications_per_provider_per_call, p.penalty_lookback_years) == (2, 2)
    assert (p.publicity_working_days, p.contract_term_max_months) == (5, 12)
    assert (p.personnel_cap, p.administration_cap, p.line_move_tolerance) == (40, 10, 10)
    assert p.installments == (40, 40, 20)
    assert (p.grade_excellent, p.grade_good, p.grade_pass) == (90, 80, 60)
    assert p.conflict_lookback_years == 3
    assert all(isinstance(x, Decimal) for x in p.installments)


def test_from_toml_reads_exact_decimals(tmp_path: Path) -> None:
    """TOML fractions become exact decimals; a file path works as well as text."""
    text = 'version = "city-2026"\npass_score = 62.5\ninstallments = [30, 50, 20]\n'
    path = tmp_path / "policy.toml"
    path.write_text(text, "utf-8")
    loaded = Policy.from_toml(path)
    assert (loaded.version, loaded.pass_score) == ("city-2026", Decimal("62.5"))
    assert loaded == Policy.from_toml(text)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("installments = [40, 40]", "installments"),
        ("personnel_cap = 140", "personnel_cap"),
        ("grade_good = 95", "grade_good"),
        ("unknown_threshold = 1", "unknown_threshold"),
    ],
)
def test_invalid_policies_are_refused(text: str, field: str) -> None:
    """Shares not adding to 100, out-of-range percents, unordered bands, unknown keys fail."""
    with pytest.raises(InvalidInput) as info:
        Policy.from_toml(text)
    assert field in str(info.value) or info.value.field in {field, "policy"}
