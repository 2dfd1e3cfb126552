"""Tests for grantflow._canonical: canonical encoding and input validation."""

from __future__ import annotations

import collections
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from grantflow._canonical import (
    canonical_bytes,
    canonical_text,
    digest_bytes,
    freeze,
    iso_utc,
    loads,
    plain,
    respelt,
    text_decoder,
    thaw,
    validate_json,
)
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


def test_a_datetime_with_no_utc_equivalent_is_invalid_input() -> None:
    """An aware datetime that overflows when converted to UTC is refused, not crashed on."""
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    with pytest.raises(InvalidInput, match="out of range"):
        validate_json({"when": early})


# -- hostile input (issue 10) --------------------------------------------------------------


def test_lone_surrogates_are_invalid_input_in_values_and_keys() -> None:
    """Text that cannot be encoded as UTF-8 is InvalidInput naming the path, not a codec error."""
    with pytest.raises(InvalidInput, match="cannot be encoded as UTF-8") as info:
        validate_json({"title": "ok \ud800"}, field="data")
    assert info.value.field == "data.title"
    with pytest.raises(InvalidInput, match="cannot be encoded as UTF-8") as info:
        validate_json({"\udfff": 1}, field="data", row=4)
    assert info.value.row == 4
    assert "\\udfff" in info.value.message  # escaped in the message, printable
    with pytest.raises(InvalidInput, match="UTF-8"):
        canonical_bytes({"t": "\ud800"})


def test_integers_longer_than_4300_digits_are_invalid_input() -> None:
    """Integers Python cannot print are refused by validation and by the encoder alike."""
    validate_json({"n": 10**4299})
    with pytest.raises(InvalidInput, match="4300 digits") as info:
        validate_json({"n": [-(10**4300)]})
    assert info.value.field == "evidence.n[0]"
    with pytest.raises(InvalidInput, match="cannot be encoded"):
        canonical_bytes({"n": 10**5000})


def test_decimals_with_absurd_digits_or_exponents_are_invalid_input() -> None:
    """A finite decimal with an exponent beyond ±4300 (1E+999999) is refused as money."""
    validate_json({"amount": Decimal("123456.78")})
    for bad in (Decimal("1E+999999"), Decimal("1E-5000"), Decimal("9" * 4301)):
        with pytest.raises(InvalidInput, match="decimal with more than"):
            validate_json({"amount": bad})


def _nested(depth: int) -> dict[str, object]:
    root: dict[str, object] = {}
    cursor = root
    for _ in range(depth):
        child: dict[str, object] = {}
        cursor["a"] = child
        cursor = child
    return root


def test_deep_nesting_is_invalid_input_in_every_walker() -> None:
    """10,000 levels deep: every walker raises InvalidInput, never RecursionError."""
    deep = _nested(10_000)
    with pytest.raises(InvalidInput, match="nested too deeply"):
        validate_json(deep)
    with pytest.raises(InvalidInput, match="nested too deeply"):
        plain(deep)
    with pytest.raises(InvalidInput, match="nested too deeply"):
        canonical_bytes(deep)


def test_digest_bytes_never_raises_and_is_deterministic() -> None:
    """Bulk digests take any value: canonical bytes when valid, a stable fallback otherwise."""
    assert digest_bytes({"b": 1, "a": "x"}) == canonical_bytes({"a": "x", "b": 1})
    hostile = [_nested(10_000), {"s": "\ud800"}, {"n": 10**5000}, {"f": 0.5}, {1, 2}, object]
    for value in hostile:
        assert digest_bytes(value) == digest_bytes(value)
    assert digest_bytes({"s": "\ud800"}) != digest_bytes({"s": "\udc00"})
    assert digest_bytes({"n": 10**5000}) != digest_bytes({"n": 10**5000 + 1})


def test_error_paths_escape_control_characters_in_keys() -> None:
    """A key holding CR/LF cannot forge a line in an error message."""
    with pytest.raises(InvalidInput) as info:
        validate_json({"evil\r\nINFO forged": 0.5})
    assert "\n" not in info.value.message
    assert "\r" not in info.value.message


def test_last_text_encodes_again_only_for_another_object() -> None:
    """`LastText` answers the object it last encoded by identity, and any other afresh."""
    from grantflow._canonical import LastText

    calls: list[object] = []

    def encode(value: object) -> str:
        calls.append(value)
        return repr(value)

    last = LastText(encode)
    first, equal = ["a"], ["a"]
    assert last(first) == last(first) == "['a']"
    assert calls == [first]
    assert last(equal) == "['a']"  # equal but not the same object: encoded again
    assert last(first) == "['a']"
    assert calls == [first, equal, first]


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)
_NOISE = st.sampled_from(["", " ", "\n", "\t ", "x", "}", "]", ",1", '"', "{", "0"])


def _outcome(decode: Any, text: str) -> tuple[str, Any]:
    try:
        return "value", decode(text)
    except ValueError as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=400, deadline=None)
@given(value=_JSON_VALUES, before=_NOISE, after=_NOISE, compact=st.booleans())
def test_the_stored_text_decoder_answers_and_fails_as_json_loads(
    value: Any, before: str, after: str, compact: bool
) -> None:
    """`loads` gives `json.loads`'s value, or its error, for any text.

    Compact JSON (what grantflow stores) takes the short path; JSON with space around
    or inside it, text with more after the value, and broken text are all decoded (or
    refused) exactly as `json.loads` does.
    """
    separators = (",", ":") if compact else (", ", ": ")
    text = before + json.dumps(value, separators=separators, ensure_ascii=False) + after
    got, expected = _outcome(loads, text), _outcome(json.loads, text)
    if got[0] == "value" and expected[0] == "value":  # NaN != NaN: compare the spelling
        assert json.dumps(got[1]) == json.dumps(expected[1])
    else:
        assert got == expected


def _text_or_error(encode: Any, value: Any) -> tuple[str, str]:
    try:
        return "text", encode(value)
    except ValueError as exc:  # NaN and the infinities
        return "error", type(exc).__name__


def _has_float(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return isinstance(value, float)


@settings(max_examples=300, deadline=None)
@given(value=_JSON_VALUES)
def test_canonical_text_is_what_the_json_encoder_writes(value: Any) -> None:
    """The shared C encoder gives `JSONEncoder.encode`'s text with grantflow's settings.

    For decoded JSON of every shape (nested, empty, text with quotes, control and
    non-ASCII characters, large integers, floats although grantflow never stores one),
    and NaN refused alike. `respelt` of another spelling of a value without floats is
    that text; with a float, the spelling as given.
    """
    encoder = json.JSONEncoder(
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    expected = _text_or_error(encoder.encode, value)
    assert _text_or_error(canonical_text, value) == expected
    if expected[0] == "text":
        spaced = json.dumps(value, indent=1, ensure_ascii=True)
        assert respelt(spaced) == (spaced if _has_float(value) else expected[1])


def test_respelt_keeps_what_grantflow_never_writes_as_given() -> None:
    """A number with a point or an exponent, NaN, or text that is not JSON: returned as given."""
    for text in ('{"a": 1.5}', '{"a": 1e3}', '{"a": NaN}', "{", '{"a": 1} x'):
        assert respelt(text) == text
    assert respelt('{"b": [1, {"z": "é"}], "a": null}') == '{"a":null,"b":[1,{"z":"é"}]}'


def test_the_stored_text_decoder_keeps_its_decoders_hooks() -> None:
    """A decoder's hooks apply on the short path too (the audit's strict decoder)."""

    def refuse(text: str) -> Any:
        raise ValueError(f"no {text}")

    strict = text_decoder(json.JSONDecoder(parse_float=refuse, parse_constant=refuse))
    assert strict('{"a":[1,"2"]}') == {"a": [1, "2"]}
    with pytest.raises(ValueError, match=r"no 1\.5"):
        strict('{"a":1.5}')
    with pytest.raises(ValueError, match="no NaN"):
        strict("[NaN]")


@given(
    st.datetimes(
        min_value=datetime(2, 1, 1),  # an offset must not convert to before year 1
        # UTC itself, a zero offset that is another object, and Beijing time.
        timezones=st.sampled_from([UTC, timezone(timedelta(0)), timezone(timedelta(hours=8))]),
    ),
)
@example(datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))  # the year turns
@example(datetime(2026, 1, 1, 0, 0, 0, 0, tzinfo=UTC))  # 1 µs earlier is another minute
@example(datetime(2026, 1, 1, 8, 0, 0, 0, tzinfo=timezone(timedelta(hours=8))))
def test_iso_utc_spells_every_aware_time_as_the_conversion_does(value: datetime) -> None:
    """Any aware time spells exactly what converting to UTC and `isoformat` spell.

    Asked again (the one-entry caches of the time and of its minute) or after another
    time, in the same minute or the one before, the same text.
    """
    converted = value.astimezone(UTC).replace(tzinfo=None)
    expected = converted.isoformat(timespec="microseconds") + "Z"
    assert iso_utc(value) == expected
    assert iso_utc(value) == expected
    earlier = value - timedelta(microseconds=1)
    assert (
        iso_utc(earlier)
        == (converted - timedelta(microseconds=1)).isoformat(timespec="microseconds") + "Z"
    )
    assert iso_utc(value) == expected


def _reference_freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _reference_freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_reference_freeze(v) for v in value)
    return value


def _reference_thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _reference_thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reference_thaw(v) for v in value]
    return value


_NESTED = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.decimals(places=2),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3).map(MappingProxyType)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3).map(collections.OrderedDict)
    ),
    max_leaves=12,
)


@given(_NESTED)
def test_freeze_and_thaw_give_what_the_isinstance_walk_gives(value: Any) -> None:
    """The exact-type short cuts of `freeze` and `thaw` change no answer, types included."""

    def shape(v: Any) -> Any:  # equality that tells a MappingProxyType from a dict
        if isinstance(v, Mapping):
            return (type(v).__name__, {k: shape(x) for k, x in v.items()})
        if isinstance(v, list | tuple):
            return (type(v).__name__, [shape(x) for x in v])
        return (type(v).__name__, v)

    assert shape(freeze(value)) == shape(_reference_freeze(value))
    assert shape(thaw(value)) == shape(_reference_thaw(value))
    assert shape(thaw(freeze(value))) == shape(_reference_thaw(value))
