"""Tests for grantflow._canonical: canonical encoding and input validation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from grantflow._canonical import canonical_bytes, freeze, plain, thaw, validate_json
from grantflow.errors import InvalidInput


def test_canonical_bytes_sorts_keys_and_has_no_spaces() -> None:
    """Key order and white space never change the encoding."""
    assert canonical_bytes({"b": 1, "a": [1, 2]}) == b'{"a":[1,2],"b":1}'
    assert canonical_bytes({"a": [1, 2], "b": 1}) == canonical_bytes({"b": 1, "a": [1, 2]})


def test_times_are_utc_with_microseconds_and_decimals_are_strings() -> None:
    """Aware datetimes become UTC ISO text; Decimal keeps its exact digits."""
    east8 = timezone(timedelta(hours=8))
    value = {
        "at": datetime(2026, 1, 1, 8, tzinfo=east8),
        "amt": Decimal("10.50"),
        "day": date(2026, 1, 2),
    }
    assert plain(value) == {
        "at": "2026-01-01T00:00:00.000000Z",
        "amt": "10.50",
        "day": "2026-01-02",
    }
    assert "中" in canonical_bytes({"t": "中"}).decode()


def test_floats_are_refused() -> None:
    """Floats have no canonical spelling and are rejected."""
    with pytest.raises(TypeError):
        plain({"x": [0.1]})
    with pytest.raises(InvalidInput) as info:
        validate_json({"a": [{"b": 0.5}]})
    assert info.value.field == "evidence.a[0].b"


def test_validate_json_limits_depth_and_types() -> None:
    """Deep nesting, non-finite decimals and unknown types are refused with the path."""
    deep: dict[str, object] = {}
    cursor = deep
    for _ in range(40):
        cursor["x"] = {}
        cursor = cursor["x"]  # type: ignore[assignment]
    with pytest.raises(InvalidInput, match="nested too deeply"):
        validate_json(deep)
    with pytest.raises(InvalidInput, match="finite"):
        validate_json({"n": Decimal("NaN")})
    with pytest.raises(InvalidInput, match="unsupported type set"):
        validate_json({"s": {1, 2}}, field="data", row=7)
    validate_json({"ok": [None, True, 1, "s", Decimal("1.00"), datetime.now(UTC)]})


def test_freeze_and_thaw_round_trip() -> None:
    """Freeze makes nested data read-only; thaw gives back equal plain data."""
    data = {"a": [1, {"b": 2}]}
    frozen = freeze(data)
    with pytest.raises(TypeError):
        frozen["a"] = 1
    assert frozen["a"][1]["b"] == 2
    assert thaw(frozen) == data
