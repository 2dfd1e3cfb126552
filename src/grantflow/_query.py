"""The project query behind `Engine.projects`: filters, order, keyset pagination.

A `ProjectQuery` is validated once; it is answered in SQL on a SQL store (see
`grantflow._query_sql`) and in Python here for any other store (`select`). Both return
the same page: a differential property test holds them equal.

Pagination is by keyset: a page ends with a cursor naming the last row's sort key and
id, and the next page starts strictly after it, so pages never repeat or skip a row
however the table changes in between (a row whose sort key changes may move to a later
page). The cursor is opaque text, bound to the filters and order it was made for.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, get_args

from grantflow._canonical import iso_utc
from grantflow.errors import InvalidInput
from grantflow.models import Project

__all__ = [
    "DATA_FILTERS",
    "Order",
    "ProjectPage",
    "ProjectQuery",
    "decode_cursor",
    "encode_cursor",
    "matches",
    "page",
    "select",
]

#: Sort orders: a column, ascending, or descending with a leading ``-``; ties by id.
Order = Literal["id", "-id", "updated_at", "-updated_at", "created_at", "-created_at"]
#: Filters on a text field of the project's data, by the name of the field.
DATA_FILTERS = ("hub", "call", "brand", "provider")
_MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class ProjectQuery:
    """Validated filters, order and page size of one `Engine.projects` call."""

    state: str | None = None
    hub: str | None = None
    subtree: str | None = None
    call: str | None = None
    brand: str | None = None
    provider: str | None = None
    year: int | None = None
    updated_since: datetime | None = None
    due_before: date | None = None
    order: Order = "id"
    limit: int = 100
    after: tuple[Any, str] | None = None

    @classmethod
    def build(cls, *, cursor: str | None = None, **given: Any) -> ProjectQuery:
        """Check every argument (`InvalidInput` names the bad one) and decode the cursor."""
        for name in ("state", "hub", "subtree", *DATA_FILTERS):
            value = given.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidInput(f"{name} must be a non-empty string", field=name)
        year = given.get("year")
        if year is not None and (type(year) is not int):
            raise InvalidInput("year must be an integer", field="year")
        since = given.get("updated_since")
        if since is not None:
            if not isinstance(since, datetime) or since.tzinfo is None:
                raise InvalidInput(
                    "updated_since must be a timezone-aware datetime", field="updated_since"
                )
            given["updated_since"] = since.astimezone(UTC)
        due = given.get("due_before")
        if due is not None and (not isinstance(due, date) or isinstance(due, datetime)):
            raise InvalidInput("due_before must be a date", field="due_before")
        order = given.get("order", "id")
        if order not in get_args(Order):
            raise InvalidInput(
                f"order must be one of {', '.join(get_args(Order))}, not {order!r}", field="order"
            )
        limit = given.get("limit", 100)
        if type(limit) is not int or not 1 <= limit <= _MAX_LIMIT:
            raise InvalidInput(f"limit must be an integer from 1 to {_MAX_LIMIT}", field="limit")
        query = cls(**given)
        if cursor is not None:
            query = decode_cursor(cursor, query)
        return query

    @property
    def column(self) -> str:
        """The sort column (``id``, ``updated_at`` or ``created_at``)."""
        return self.order.removeprefix("-")

    @property
    def descending(self) -> bool:
        """Whether the order is descending."""
        return self.order.startswith("-")

    def data_filters(self) -> dict[str, str | int]:
        """The filters on the project's data: text fields and the year."""
        found: dict[str, str | int] = {
            name: value for name in DATA_FILTERS if (value := getattr(self, name)) is not None
        }
        if self.year is not None:
            found["year"] = self.year
        return found

    def fingerprint(self) -> str:
        """What a cursor is bound to: the filters and the order (not the page size)."""
        since = iso_utc(self.updated_since) if self.updated_since else None
        spec = {
            "state": self.state,
            "subtree": self.subtree,
            "updated_since": since,
            "due_before": self.due_before.isoformat() if self.due_before else None,
            "order": self.order,
            **self.data_filters(),
        }
        text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """One page of `Engine.projects`: the projects (without records) and the next cursor.

    `cursor` is ``None`` on the last page; otherwise pass it back (with the same filters
    and order) for the next page.
    """

    projects: list[Project] = field(default_factory=list)
    cursor: str | None = None

    def __iter__(self) -> Any:
        """Iterate over the page's projects."""
        return iter(self.projects)

    def __len__(self) -> int:
        """The number of projects on the page."""
        return len(self.projects)


def sort_key(project: Project, column: str) -> Any:
    """The value `project` is sorted by (before its id)."""
    value: Any = getattr(project, column)
    return value


def encode_cursor(query: ProjectQuery, last: Project) -> str:
    """The opaque cursor of the page that ends with `last`."""
    key = sort_key(last, query.column)
    spec = {
        "f": query.fingerprint(),
        "k": iso_utc(key) if isinstance(key, datetime) else key,
        "i": last.id,
    }
    raw = json.dumps(spec, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, query: ProjectQuery) -> ProjectQuery:
    """`query` continuing after `cursor`; `InvalidInput` if it is not one of its cursors."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        spec = json.loads(raw)
        fingerprint, key, last_id = spec["f"], spec["k"], spec["i"]
        if not isinstance(last_id, str) or not isinstance(key, str):
            raise TypeError("bad cursor fields")
        if query.column != "id":
            key = datetime.fromisoformat(key.replace("Z", "+00:00"))
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput("cursor is not a cursor of Engine.projects", field="cursor") from exc
    if fingerprint != query.fingerprint():
        raise InvalidInput("cursor was made for other filters or another order", field="cursor")
    return ProjectQuery(
        **{f: getattr(query, f) for f in ProjectQuery.__dataclass_fields__ if f != "after"},
        after=(key, last_id),
    )


def matches(
    project: Project,
    query: ProjectQuery,
    hubs: frozenset[str] | None,
    due: frozenset[str] | None = None,
) -> bool:
    """Whether `project` passes every filter of `query`.

    `hubs` are the subtree's hub ids; `due` the ids of the projects with an open
    obligation due before ``query.due_before`` (`Engine.due`).
    """
    if query.state is not None and project.state != query.state:
        return False
    if due is not None and project.id not in due:
        return False
    for name, wanted in query.data_filters().items():
        value = project.data.get(name)
        if type(value) is not type(wanted) or value != wanted:
            return False
    if hubs is not None:
        hub = project.data.get("hub")
        if not isinstance(hub, str) or hub not in hubs:
            return False
    return query.updated_since is None or project.updated_at >= query.updated_since


def select(
    projects: Iterable[Project],
    query: ProjectQuery,
    hubs: frozenset[str] | None,
    due: frozenset[str] | None = None,
) -> list[Project]:
    """The page of `query` over `projects` (any order), one row more if there is more."""
    column, descending = query.column, query.descending
    rows = [p for p in projects if matches(p, query, hubs, due)]
    rows.sort(key=lambda p: (sort_key(p, column), p.id), reverse=descending)
    if query.after is not None:
        after = query.after
        if descending:
            rows = [p for p in rows if (sort_key(p, column), p.id) < after]
        else:
            rows = [p for p in rows if (sort_key(p, column), p.id) > after]
    return rows[: query.limit + 1]


def page(rows: list[Project], query: ProjectQuery) -> ProjectPage:
    """The page from up to ``limit + 1`` rows: the extra one only says there is more."""
    if len(rows) > query.limit:
        kept = rows[: query.limit]
        return ProjectPage(kept, encode_cursor(query, kept[-1]))
    return ProjectPage(rows, None)
