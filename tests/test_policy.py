"""Policy: defaults from DOMAIN.md, TOML loading, validation."""

from __future__ import annotations

from collections.abc import Callable
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
    """TOML fractions become exact decimals; `from_file` reads the same from a file."""
    text = 'version = "city-2026"\npass_score = 62.5\ninstallments = [30, 50, 20]\n'
    path = tmp_path / "policy.toml"
    path.write_text(text, "utf-8")
    loaded = Policy.from_file(path)
    assert (loaded.version, loaded.pass_score) == ("city-2026", Decimal("62.5"))
    assert loaded == Policy.from_toml(text) == Policy.from_file(str(path))


@pytest.mark.parametrize("as_text", [str, lambda p: f"  {p}\n"])
def test_from_toml_refuses_a_path_given_as_text(
    tmp_path: Path, as_text: Callable[[Path], str]
) -> None:
    """A path in a string is never parsed as TOML: the error names `from_file`."""
    path = tmp_path / "city"
    path.write_text('version = "city"\n', "utf-8")
    for candidate in (as_text(path), "policy.toml"):
        with pytest.raises(InvalidInput, match=r"looks like a file path: use Policy\.from_file"):
            Policy.from_toml(candidate)


def test_from_toml_refuses_a_path_object(tmp_path: Path) -> None:
    """A `Path` is refused with a pointer to `from_file` (it used to be read)."""
    path = tmp_path / "policy.toml"
    path.write_text('version = "city"\n', "utf-8")
    with pytest.raises(InvalidInput, match=r"not a path: use Policy\.from_file") as info:
        Policy.from_toml(path)  # type: ignore[arg-type]
    assert info.value.field == "text"


def test_from_file_names_a_missing_or_broken_file(tmp_path: Path) -> None:
    """A missing file and a file that is not TOML are `InvalidInput` naming the file."""
    with pytest.raises(InvalidInput, match="cannot read policy file"):
        Policy.from_file(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("version = ", "utf-8")
    with pytest.raises(InvalidInput, match=r"broken\.toml. does not parse as TOML"):
        Policy.from_file(broken)


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
