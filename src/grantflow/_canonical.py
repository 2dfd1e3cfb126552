r"""Canonical JSON: one byte string per value, so hashes agree across stores and machines.

Sorted keys, no white space, UTF-8, timezone-aware datetimes as UTC ISO-8601 with
microseconds and a ``Z``, decimals as strings, sets sorted, and no floats: a float has no
single decimal spelling, so it is refused at the door (`InvalidInput`).

Hostile input is refused with `InvalidInput`, never a raw `UnicodeEncodeError`,
`ValueError` or `RecursionError`: text that cannot be encoded as UTF-8 (a lone surrogate
such as ``"\ud800"``), integers of more than `MAX_DIGITS` digits, decimals with more
than `MAX_DIGITS` digits or an exponent beyond it, and values nested deeper than
`MAX_DEPTH` (`validate_json`) or deeper than Python can walk (`plain`, `canonical_bytes`).
"""

from __future__ import annotations

import functools
import json
import json.scanner
import math
from collections.abc import Callable, Iterable, Mapping, Set
from datetime import UTC, date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from grantflow.errors import InvalidInput

__all__ = [
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_STRING",
    "canonical_bytes",
    "canonical_text",
    "describe",
    "digest_bytes",
    "freeze",
    "iso_utc",
    "plain",
    "respelt",
    "same_json",
    "strict_loads",
    "thaw",
    "validate_json",
]

#: Longest string accepted anywhere in evidence or record data.
MAX_STRING = 100_000
#: Deepest nesting of lists and mappings accepted in evidence or record data.
MAX_DEPTH = 32
#: Most digits an integer (or a decimal's coefficient or exponent) may have; Python
#: itself refuses to print integers longer than 4,300 digits.
MAX_DIGITS = 4300
_INT_LIMIT = 10**MAX_DIGITS
#: Longest key or path shown verbatim in an error message.
_LABEL = 60


def iso_utc(value: datetime) -> str:
    """Return `value` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; naive datetimes are refused."""
    last = _last_iso
    if last[0] is value:  # a bulk chunk stamps every entry with one instant
        return last[1]
    utc = value
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise InvalidInput("datetime must be timezone-aware", field="at")
        utc = value.astimezone(UTC)
    # isoformat's spelling without its time-zone calls (a test holds the two equal); the
    # minute's text is kept, as consecutive stamps mostly share it.
    minute = (utc.year, utc.month, utc.day, utc.hour, utc.minute)
    kept = _last_minute
    if kept[0] != minute:
        kept = (minute, "%04d-%02d-%02dT%02d:%02d:" % minute)  # noqa: UP031 - fastest
        _remember_minute(kept)
    text = "%s%02d.%06dZ" % (kept[1], utc.second, utc.microsecond)  # noqa: UP031
    _remember_iso((value, text))
    return text


#: The last datetime `iso_utc` spelt and its text, as one tuple (swapped atomically):
#: held by identity, so the value stays alive while it is kept.
_last_iso: tuple[datetime | None, str] = (None, "")


def _remember_iso(pair: tuple[datetime, str]) -> None:
    global _last_iso  # noqa: PLW0603 - a one-entry cache, replaced whole
    _last_iso = pair


#: The minute (year, month, day, hour, minute) `iso_utc` last spelt and its text up to
#: the seconds, as one tuple (swapped atomically).
_last_minute: tuple[tuple[int, ...], str] = ((), "")


def _remember_minute(pair: tuple[tuple[int, ...], str]) -> None:
    global _last_minute  # noqa: PLW0603 - a one-entry cache, replaced whole
    _last_minute = pair


def _default(value: Any) -> Any:  # noqa: PLR0911
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Set):
        return sorted(value, key=str)
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="python")
    raise TypeError(f"not canonical-JSON encodable: {type(value).__name__}")


def _encode_default(value: Any) -> Any:
    if isinstance(value, float):  # pragma: no cover - json encodes floats before asking
        raise TypeError("floats are not canonical")
    return _default(value)


def text_decoder(decoder: json.JSONDecoder | None = None) -> Callable[[str], Any]:
    """`decoder.decode` (by default `json.loads`'s), for the text grantflow stores.

    Stored JSON is compact: the value starts at the first character and ends at the
    last. The scanner `decode` runs is called directly, without the two whitespace
    matches and the two Python frames around it, which cost more than the scan itself
    for the small objects of project and record rows. Any other text (surrounding
    space, trailing characters, invalid JSON) goes to `decoder.decode`, so the answer
    and the errors are `decode`'s own.
    """
    decoder = decoder or json.JSONDecoder()
    scanner: Any = json.scanner  # typeshed types make_scanner's argument as itself
    scan: Callable[[str, int], tuple[Any, int]] = scanner.make_scanner(decoder)
    decode = decoder.decode

    def loads(text: str) -> Any:
        try:
            value, end = scan(text, 0)
        except StopIteration:
            return decode(text)
        return value if end == len(text) else decode(text)

    return loads


#: `json.loads` of one string, through `text_decoder`.
loads = text_decoder()


def _refuse_number(text: str) -> Any:
    raise ValueError(f"not canonical JSON: {text}")


def _not_json(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


def _tree_encoder(default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """`JSONEncoder.encode` with the canonical settings, for a tree (no value inside itself).

    Sorted keys, no spaces, text as it is (not ASCII-escaped), NaN and the infinities
    refused, `default` asked for any other type. The C encoder is made once, without
    the cycle check (its `markers`): a call costs half of `encode`, which makes a new
    encoder and a markers dict each time, and the text is the same
    (tests/test_canonical.py). A value that holds itself is not a tree: it recurses to
    Python's recursion limit (`RecursionError`) instead of `encode`'s `ValueError`.
    Nothing is kept between calls, so threads may share it.
    """
    make: Any = getattr(json.encoder, "c_make_encoder", None)  # None off CPython
    fallback = json.JSONEncoder(
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=default
    )
    if make is None:  # pragma: no cover - CPython has the C encoder
        return fallback.encode
    encode: Callable[[Any, int], Iterable[str]] = make(
        None, default, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )
    join = "".join

    def text(value: Any) -> str:
        return join(encode(value, 0))

    return text


#: The canonical text of plain JSON (what `canonical_bytes` encodes, as `str`): decoded
#: JSON, and record and evidence data (validated: never deeper than `MAX_DEPTH`).
canonical_text = _tree_encoder(_not_json)
#: `canonical_text` of values holding decimals, times, read-only mappings, sets, models.
_canonical_any = _tree_encoder(_encode_default)
#: `loads` refusing what grantflow never stores: numbers with a point or an exponent,
#: ``NaN`` and the infinities (`ValueError`).
strict_loads = text_decoder(
    json.JSONDecoder(parse_float=_refuse_number, parse_constant=_refuse_number)
)


def respelt(text: str) -> str:
    """JSON `text` spelt canonically; `text` itself when `strict_loads` refuses it.

    For JSON a database hands back in a spelling of its own (PostgreSQL's ``jsonb``):
    the canonical text of what it holds, or, for anything grantflow never writes, the
    text as given, which is not canonical and so is not vouched for.
    """
    try:
        return canonical_text(strict_loads(text))
    except (ValueError, RecursionError):
        return text


def canonical_bytes(value: Any) -> bytes:
    """Encode `value` canonically (see module docstring).

    The C encoder does the walking; only non-JSON types (Decimal, datetime, read-only
    mappings, sets, models) come back to Python through the default hook. Floats are
    kept out before this point (`validate_json` at the door, `plain` for effects and
    refusal details), because walking every value again here would double the cost of
    sealing an entry.

    Raises:
        InvalidInput: `value` holds text that is not UTF-8 encodable, an integer too long
            to print, a float or a reference cycle, or is nested too deeply to walk.
    """
    try:
        return _canonical_any(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"text that cannot be encoded as UTF-8 ({_why_unencodable(exc)})", field="value"
        ) from None
    except RecursionError:
        raise InvalidInput("value nested too deeply to encode", field="value") from None
    except ValueError as exc:  # an integer beyond the str() limit, NaN, a cycle
        raise InvalidInput(f"value cannot be encoded: {_clip(str(exc))}", field="value") from None


def digest_bytes(value: Any) -> bytes:
    """Return bytes identifying `value` for input digests; never raises.

    The canonical encoding when `value` has one; otherwise (floats, lone surrogates,
    huge integers, deep nesting, unknown types) a deterministic fallback, so that a bulk
    run can digest its input before each item is validated (and refused) on its own.
    """
    try:
        return canonical_bytes(plain(value))
    except (TypeError, InvalidInput):
        return b"\xff" + _fallback(value).encode("utf-8", "backslashreplace")


def describe(value: Any, limit: int) -> str:
    """Return at most `limit` characters naming `value` (an id as given); never raises.

    Strings and ordinary integers read as themselves; anything else (huge integers,
    deeply nested values, unknown types) as a depth-capped, non-recursive rendering.
    """
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, int) and not isinstance(value, bool) and -_INT_LIMIT < value < _INT_LIMIT:
        return str(value)[:limit]
    return _fallback(value)[:limit]


def _fallback(value: Any) -> str:
    """A deterministic text for any value, walked without recursion and depth-capped."""
    out: list[str] = []
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str) and depth < 0:  # a punctuation marker pushed below
            out.append(item)
        elif depth > 2 * MAX_DEPTH:
            out.append("…")
        elif isinstance(item, Mapping):
            pairs = sorted(((str(k), v) for k, v in item.items()), key=lambda kv: kv[0])
            stack.append(("}", -1))
            for key, sub in reversed(pairs):
                stack.extend(((",", -1), (sub, depth + 1), (_string_text(key) + ":", -1)))
            stack.append(("{", -1))
        elif isinstance(item, list | tuple):
            stack.append(("]", -1))
            for sub in reversed(item):
                stack.extend(((",", -1), (sub, depth + 1)))
            stack.append(("[", -1))
        elif isinstance(item, str):
            out.append(_string_text(item))
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) >= _INT_LIMIT:
            out.append(f"int:{item.bit_length()}:{hex(item)[-64:]}")
        else:
            out.append(f"{type(item).__name__}:{item!r}"[:200])
    return "".join(out)


def _string_text(text: str) -> str:
    return json.dumps(text.encode("utf-8", "surrogatepass").decode("latin-1"))


def _why_unencodable(exc: UnicodeEncodeError) -> str:
    bad = exc.object[exc.start : exc.end]
    return f"{bad!a} at position {exc.start}"


def _clip(text: str) -> str:
    return text if len(text) <= 200 else text[:200] + "…"


_SCALARS = frozenset({str, int, bool, type(None)})
_MAPPINGS = frozenset({dict, MappingProxyType})
_SEQUENCES = frozenset({list, tuple})


def plain(value: Any) -> Any:
    """Convert `value` to JSON-native types the canonical way (decimals and times as text).

    Raises:
        TypeError: `value` holds a float or a type with no canonical form.
        InvalidInput: `value` is nested too deeply for Python to walk.
    """
    try:
        return _plain(value)
    except RecursionError:
        raise InvalidInput("value nested too deeply", field="value") from None


def _plain(value: Any) -> Any:  # noqa: PLR0911
    # Exact-type checks first: this runs for every field of every audit entry, and
    # isinstance against the collections ABCs costs several times more.
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind in _MAPPINGS:
        return {k if type(k) is str else str(k): _plain(v) for k, v in value.items()}
    if kind in _SEQUENCES:
        return [_plain(v) for v in value]
    if isinstance(value, float):
        raise TypeError("floats are not canonical; use Decimal or int")
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return _plain(_default(value))


def lenient(value: Any) -> Any:
    """Like `plain`, but a float becomes its shortest decimal text instead of an error.

    For refusal details written by rule authors: a refusal must always be recordable.
    """
    if type(value) is float:
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): lenient(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [lenient(v) for v in items]
    try:
        return plain(value)
    except TypeError:
        return repr(value)


def validate_json(value: Any, *, field: str = "evidence", row: int | None = None) -> None:
    """Raise `InvalidInput` naming the path if `value` is not safe, canonical JSON input.

    Accepted: None, bool, int (at most `MAX_DIGITS` digits), str (at most `MAX_STRING`
    characters, no NUL, encodable as UTF-8: no lone surrogates), Decimal (finite, at most
    `MAX_DIGITS` digits and an exponent within ±`MAX_DIGITS`), date, aware datetime, and
    lists/tuples/mappings of those with string keys, nested at most `MAX_DEPTH` deep.
    Keys that are not printable are shown escaped in the error's path.
    """
    _check(value, field, row, 0)


def _check(value: Any, path: str, row: int | None, depth: int) -> None:  # noqa: PLR0911, PLR0912
    if depth > MAX_DEPTH:
        raise InvalidInput(f"{path}: nested too deeply", field=path, row=row)
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -_INT_LIMIT < value < _INT_LIMIT:
            raise InvalidInput(
                f"{path}: integer longer than {MAX_DIGITS} digits", field=path, row=row
            )
        return
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise InvalidInput(
                f"{path}: string longer than {MAX_STRING} characters", field=path, row=row
            )
        if "\x00" in value:
            raise InvalidInput(f"{path}: contains a NUL character", field=path, row=row)
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidInput(
                    f"{path}: text that cannot be encoded as UTF-8 ({_why_unencodable(exc)})",
                    field=path,
                    row=row,
                ) from None
        return
    if isinstance(value, float):
        raise InvalidInput(
            f"{path}: floats are not accepted; use Decimal or a string", field=path, row=row
        )
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidInput(f"{path}: decimal must be finite", field=path, row=row)
        digits, exponent = len(value.as_tuple().digits), value.as_tuple().exponent
        if digits > MAX_DIGITS or not -MAX_DIGITS <= int(exponent) <= MAX_DIGITS:
            raise InvalidInput(
                f"{path}: decimal with more than {MAX_DIGITS} digits or an exponent beyond "
                f"±{MAX_DIGITS}",
                field=path,
                row=row,
            )
        return
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInput(f"{path}: datetime must be timezone-aware", field=path, row=row)
        try:
            value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01 at +05:00: no UTC time exists to store
            raise InvalidInput(
                f"{path}: datetime out of range in UTC", field=path, row=row
            ) from None
        return
    if isinstance(value, date):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{path}: keys must be strings", field=path, row=row)
            _check(key, f"{path}.<key {_label(key)}>", row, depth + 1)
            _check(item, f"{path}.{_label(key)}", row, depth + 1)
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]", row, depth + 1)
        return
    raise InvalidInput(f"{path}: unsupported type {type(value).__name__}", field=path, row=row)


def _label(key: str) -> str:
    """`key` as it may appear in an error message: printable, UTF-8, one line, short."""
    if len(key) <= _LABEL and key.isprintable():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return key
    shown = ascii(key[:_LABEL])
    return shown if len(key) <= _LABEL else shown + "…"


def same_json(stored: Any, wanted: Any) -> bool:
    """JSON equality as the SQL stores compare data: ``true`` is not ``1``, nor ``1`` ``"1"``.

    A key the data lacks (`stored` None) equals ``null``. Python's ``==`` would count
    ``True == 1`` and ``[1] == [True]`` equal, where a JSON column does not.
    """
    if isinstance(stored, Mapping | list | tuple) or isinstance(wanted, Mapping | list | tuple):
        try:
            return canonical_bytes(stored) == canonical_bytes(wanted)
        except InvalidInput:
            return False
    return type(stored) is type(wanted) and bool(stored == wanted)


def freeze(value: Any) -> Any:
    """Return a read-only deep copy: mappings become `MappingProxyType`, lists tuples."""
    # Exact-type checks first, as in `_plain`: facts and evidence are frozen per decision.
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind in _MAPPINGS or isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if kind in _SEQUENCES or isinstance(value, list | tuple):
        return tuple([freeze(v) for v in value])
    return value


def thaw(value: Any) -> Any:
    """Return a plain mutable deep copy of a frozen value (dicts and lists)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind in _MAPPINGS or isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if kind in _SEQUENCES or isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def is_finite_number(value: Any) -> bool:
    """Return whether `value` is an int or finite Decimal (bools excluded)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, Decimal) and value.is_finite() and not math.isnan(value)


@functools.lru_cache(maxsize=1024)
def model_text(value: Any) -> str:
    """The canonical JSON text of a frozen (hashable) model: an actor, a decision basis.

    The one spelling the entry's hash and the audit table's columns share; cached, as a
    run meets few distinct ones.
    """
    return canonical_bytes(plain(value)).decode("utf-8")


class LastText:
    """`encode` of the value last asked for, reused while the same object comes again.

    A bulk run stamps every entry with one actor and one decision basis: comparing
    identities is cheaper than encoding the model again, or than a `functools.lru_cache`
    (which hashes and compares the model each call). One reference, swapped whole, so it
    is safe across threads.
    """

    __slots__ = ("_encode", "_last")

    def __init__(self, encode: Callable[[Any], str]) -> None:
        self._encode = encode
        self._last: tuple[object, str] = (object(), "")

    def __call__(self, value: Any) -> str:
        last = self._last
        if last[0] is value:
            return last[1]
        text = self._encode(value)
        self._last = (value, text)
        return text
