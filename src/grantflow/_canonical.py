"""Canonical JSON: one byte string per value, so hashes agree across stores and machines.

Sorted keys, no white space, UTF-8, timezone-aware datetimes as UTC ISO-8601 with
microseconds and a ``Z``, decimals as strings, sets sorted, and no floats: a float has no
single decimal spelling, so it is refused at the door (`InvalidInput`).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Set
from datetime import UTC, date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from grantflow.errors import InvalidInput

__all__ = ["MAX_STRING", "canonical_bytes", "freeze", "iso_utc", "plain", "thaw", "validate_json"]

#: Longest string accepted anywhere in evidence or record data.
MAX_STRING = 100_000
_MAX_DEPTH = 32


@functools.lru_cache(maxsize=256)
def iso_utc(value: datetime) -> str:
    """Return `value` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; naive datetimes are refused."""
    if value.tzinfo is None:
        raise InvalidInput("datetime must be timezone-aware", field="at")
    # isoformat is several times faster than strftime and spells the same text.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


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


_ENCODER = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
    default=_encode_default,
)


def canonical_bytes(value: Any) -> bytes:
    """Encode `value` canonically (see module docstring).

    The C encoder does the walking; only non-JSON types (Decimal, datetime, read-only
    mappings, sets, models) come back to Python through the default hook. Floats are
    kept out before this point (`validate_json` at the door, `plain` for effects and
    refusal details), because walking every value again here would double the cost of
    sealing an entry.
    """
    return _ENCODER.encode(value).encode("utf-8")


_SCALARS = frozenset({str, int, bool, type(None)})
_MAPPINGS = frozenset({dict, MappingProxyType})
_SEQUENCES = frozenset({list, tuple})


def plain(value: Any) -> Any:  # noqa: PLR0911
    """Convert `value` to JSON-native types the canonical way (decimals and times as text)."""
    # Exact-type checks first: this runs for every field of every audit entry, and
    # isinstance against the collections ABCs costs several times more.
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind in _MAPPINGS:
        return {k if type(k) is str else str(k): plain(v) for k, v in value.items()}
    if kind in _SEQUENCES:
        return [plain(v) for v in value]
    if isinstance(value, float):
        raise TypeError("floats are not canonical; use Decimal or int")
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return plain(_default(value))


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

    Accepted: None, bool, int, str (at most `MAX_STRING` characters, no NUL), Decimal
    (finite), date, aware datetime, and lists/tuples/mappings of those with string keys,
    nested at most 32 deep.
    """
    _check(value, field, row, 0)


def _check(value: Any, path: str, row: int | None, depth: int) -> None:  # noqa: PLR0911, PLR0912
    if depth > _MAX_DEPTH:
        raise InvalidInput(f"{path}: nested too deeply", field=path, row=row)
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise InvalidInput(
                f"{path}: string longer than {MAX_STRING} characters", field=path, row=row
            )
        if "\x00" in value:
            raise InvalidInput(f"{path}: contains a NUL character", field=path, row=row)
        return
    if isinstance(value, float):
        raise InvalidInput(
            f"{path}: floats are not accepted; use Decimal or a string", field=path, row=row
        )
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidInput(f"{path}: decimal must be finite", field=path, row=row)
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
            _check(key, f"{path}.<key>", row, depth + 1)
            _check(item, f"{path}.{key}", row, depth + 1)
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]", row, depth + 1)
        return
    raise InvalidInput(f"{path}: unsupported type {type(value).__name__}", field=path, row=row)


def freeze(value: Any) -> Any:
    """Return a read-only deep copy: mappings become `MappingProxyType`, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Return a plain mutable deep copy of a frozen value (dicts and lists)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def is_finite_number(value: Any) -> bool:
    """Return whether `value` is an int or finite Decimal (bools excluded)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, Decimal) and value.is_finite() and not math.isnan(value)
