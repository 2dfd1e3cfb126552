"""Records: credit codes (GB 32100-2015), money, value models, the directory."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

import grantflow
from grantflow.records import (
    Application,
    Directory,
    Expenditure,
    Hub,
    Provider,
    credit_code_check,
    is_credit_code,
    money,
)

# Codes built from their first 17 characters with the check character computed here.
VALID = [
    "91350100M000100Y43",  # the example printed in GB 32100-2015 explanations
    "51110000MJ0000001" + credit_code_check("51110000MJ0000001"),
    "52310000500000000" + credit_code_check("52310000500000000"),
    "53100000500021676" + credit_code_check("53100000500021676"),
]


@pytest.mark.parametrize("code", VALID)
def test_valid_credit_codes_pass(code: str) -> None:
    """Codes with a correct check character are accepted, also in lower case by the model."""
    assert is_credit_code(code)
    provider = Provider(id="p", name="P", credit_code=code.lower())
    assert provider.credit_code == code


@pytest.mark.parametrize(
    "code",
    [
        "91350100M000100Y44",  # wrong check character
        "91350100M000100Y4",  # 17 characters
        "91350100M000100Y430",  # 19 characters
        "9135010OM000100Y43",  # letter O is not in the alphabet
        "91AB0100M000100Y43",  # region code must be digits
        "",
    ],
)
def test_invalid_credit_codes_fail(code: str) -> None:
    """Wrong check character, length, alphabet or region digits are refused."""
    assert not is_credit_code(code)
    with pytest.raises(ValidationError):
        Provider(id="p", name="P", credit_code=code)


def test_check_character_detects_every_single_substitution() -> None:
    """Changing any one of the 17 characters changes the check character (mod 31 weights)."""
    body = "51110000MJ0000001"
    check = credit_code_check(body)
    for i in range(17):
        for ch in "0123456789ABCDEFGHJKLMNPQRTUWXY":
            if ch != body[i]:
                assert credit_code_check(body[:i] + ch + body[i + 1 :]) != check


def test_money_has_two_places_and_no_floats() -> None:
    """Money accepts at most two places and refuses floats."""
    assert money("12.5") == Decimal("12.50")
    with pytest.raises(ValueError, match="fen"):
        money("1.001")
    data = {"date": "2025-05-01", "line": "activities", "amount": 1.5, "invoice_number": "I"}
    with pytest.raises(ValidationError, match="floats"):
        Expenditure.model_validate(data)


def test_application_checks_domain_and_dates() -> None:
    """An unknown service domain or an end before the start is refused."""
    base = {
        "title": "t",
        "domain": "legal_aid",
        "provider": "p",
        "hub": "h",
        "call": "c",
        "amount_requested": "10.00",
        "planned_start": "2025-01-01",
        "planned_end": "2025-12-31",
    }
    assert Application.model_validate(base).amount_requested == Decimal("10.00")
    with pytest.raises(ValidationError):
        Application.model_validate({**base, "domain": "tourism"})
    with pytest.raises(ValidationError):
        Application.model_validate({**base, "planned_end": "2024-12-31"})


def test_directory_hub_tree() -> None:
    """Hubs form a tree; the subtree lookup walks it; an unknown parent is refused."""
    directory = Directory(grantflow.open())
    directory.add_hub(Hub(id="city", name="City", kind="city"))
    directory.add_hub(Hub(id="d1", name="D1", kind="district", parent="city"))
    directory.add_hub(Hub(id="d2", name="D2", kind="district", parent="city"))
    directory.add_hub(Hub(id="s1", name="S1", kind="street", parent="d1"))
    assert directory.hub_subtree("city") == ["city", "d1", "d2", "s1"]
    assert directory.hub_subtree("d1") == ["d1", "s1"]
    assert [h.id for h in directory.hubs(parent="city")] == ["d1", "d2"]
    assert directory.hub("s1") == Hub(id="s1", name="S1", kind="street", parent="d1")
    assert directory.provider("nobody") is None
    with pytest.raises(ValueError, match="unknown parent"):
        directory.add_hub(Hub(id="x", name="X", kind="street", parent="nowhere"))
