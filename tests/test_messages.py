"""Message catalogues: every code in every language; Chinese text free of code identifiers."""

from __future__ import annotations

import re
import string
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from grantflow.messages import LANGUAGES, catalogue, render, render_refusal
from grantflow.records import BUDGET_LINES, SERVICE_DOMAINS
from grantflow.rubrics import Grade
from grantflow.states import PURCHASED_SERVICE

SRC = Path(__file__).resolve().parent.parent / "src" / "grantflow"
USED = re.compile(
    r"""(?:refusal|problem)\(\s*"([a-z_.]+)"|key="([a-z_.]+)"|"code": "(score\.[a-z]+)\""""
)
ASCII_WORD = re.compile(r"[A-Za-z_]")


def _codes_in_source() -> set[str]:
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        for match in USED.finditer(path.read_text("utf-8")):
            found.add(next(g for g in match.groups() if g))
    return found


@pytest.mark.parametrize("table", ["refusal", "problem", "word"])
def test_every_code_has_a_message_in_every_language(table: str) -> None:
    """The refusal, problem and word tables have the same keys in every shipped catalogue."""
    keys = [set(catalogue(lang)[table]) for lang in LANGUAGES]
    assert all(k == keys[0] for k in keys)


def test_every_code_the_rules_use_is_catalogued() -> None:
    """Each code or key passed to ``refusal``/``problem`` in the source has a template."""
    used = _codes_in_source()
    assert len(used) > 60
    known = set(catalogue("en")["refusal"]) | set(catalogue("en")["problem"])
    assert sorted(used - known) == []


def _sample(spec: str, table: dict[str, Any]) -> Any:
    if spec.startswith("list"):
        inner = spec.partition("-")[2]
        return [_sample(inner, table), _sample(inner, table)]
    samples: dict[str, Any] = {
        "money": Decimal("1234"),
        "score": Decimal("59.9967"),
        "count": ["甲", "乙"],
        "date": date(2025, 10, 11),
        "datetime": datetime(2025, 3, 31, tzinfo=UTC),
        "bonus": Decimal(3),
        "problems": [],
        "event": "record.expenditure",
        "": "甲",
    }
    if spec in samples:
        return samples[spec]
    return next(iter(table[spec]))  # a real key of the label table


def _fields(template: str) -> list[tuple[str, str]]:
    return [(f, s or "") for _t, f, s, _c in string.Formatter().parse(template) if f]


@pytest.mark.parametrize("section", ["refusal", "problem"])
def test_rendered_chinese_holds_no_ascii_identifiers(section: str) -> None:
    """Every zh template, rendered with values of each field's kind, has no Latin letters."""
    table = dict(catalogue("zh"))
    for key, template in table[section].items():
        params = {field: _sample(spec, table) for field, spec in _fields(template)}
        if section == "problem":
            text = render("funds.budget", "zh", {"problems": [{"code": key, **params}]})
        else:
            text = render(key, "zh", params)
        assert not ASCII_WORD.search(text), (key, text)
        assert "None" not in text
        assert "[" not in text


def test_label_tables_cover_the_regime() -> None:
    """States, events, budget lines, domains and grades all have Chinese names."""
    zh = catalogue("zh")
    assert {s.name for s in PURCHASED_SERVICE.states} <= set(zh["state"])
    assert {e.name for e in PURCHASED_SERVICE.events} <= set(zh["event"])
    assert set(BUDGET_LINES) <= set(zh["line"])
    assert set(SERVICE_DOMAINS) <= set(zh["domain"])
    assert {g.value for g in Grade} <= set(zh["grade"])
    roles = {r for e in PURCHASED_SERVICE.events for r in e.roles}
    assert roles <= set(zh["role"])


def test_money_and_none_are_shown_for_people() -> None:
    """Amounts read ¥1,234.00; a missing value reads 无 / none; lists are joined."""
    params = {"amount": Decimal("1234"), "approved": None}
    assert render("contracts.amount", "zh", params) == "合同金额¥1,234.00超过核定金额无"
    assert render("contracts.amount", "en", params).endswith("the approved none")
    missing = {"missing": ["purchase", "supervision"]}
    assert render("contracts.both_signed", "zh", missing) == (
        "缺少或无效的合同：购买服务合同、第三方监管合同"
    )


def test_a_stored_refusal_renders_again_from_its_details() -> None:
    """``render_refusal`` gives the same text from the code and details, second wordings too."""
    from grantflow.messages import refusal

    made = refusal("eligibility.call_window", key="eligibility.call_window.no_call", call="c-1")
    (one,) = made.refusals
    assert render_refusal(one, "zh") == one.message_zh == "申报批次c-1不存在"
    assert render_refusal(one, "en") == one.message
