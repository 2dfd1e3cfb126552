"""Read-only views of the portfolio: ``report``, ``export`` and ``diagram``."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO

import typer

import grantflow
from grantflow import export as exporting
from grantflow.cli._common import (
    DEFAULT_DB,
    DbOption,
    emit_json,
    emit_table,
    guarded,
    open_engine,
    stderr,
)
from grantflow.states import to_dot, to_mermaid

__all__ = ["diagram", "export", "report"]


class GroupBy(StrEnum):
    """What a portfolio report groups projects by."""

    state = "state"
    hub = "hub"
    brand = "brand"
    domain = "domain"
    year = "year"


class ReportFormat(StrEnum):
    """How a report is printed."""

    table = "table"
    json = "json"
    csv = "csv"


class ExportFormat(StrEnum):
    """What ``export`` writes."""

    giving_json = "360giving-json"
    giving_csv = "360giving-csv"
    jsonl = "jsonl"


class DiagramFormat(StrEnum):
    """Diagram notations."""

    mermaid = "mermaid"
    dot = "dot"


_COLUMNS = ("group", "projects", "awarded")


def _group_of(project: grantflow.Project, by: GroupBy) -> str:
    if by is GroupBy.state:
        return project.state
    if by is GroupBy.year:
        return str(project.created_at.year)
    value = project.data.get(by.value)
    return str(value) if value not in (None, "") else "(none)"


def _money(value: object) -> Decimal:
    try:
        return Decimal(str(value)) if value not in (None, "") else Decimal("0.00")
    except ArithmeticError:
        return Decimal("0.00")


def portfolio_rows(engine: grantflow.Engine, by: GroupBy) -> list[dict[str, object]]:
    """Count projects and sum awarded amounts per group, streaming over the projects."""
    counts: dict[str, int] = {}
    awarded: dict[str, Decimal] = {}
    for project in engine.store.projects():
        group = _group_of(project, by)
        counts[group] = counts.get(group, 0) + 1
        amount = _money(project.data.get("amount_awarded"))
        if project.state in exporting.AWARDED_STATES:
            awarded[group] = awarded.get(group, Decimal("0.00")) + amount
    return [
        {"group": g, "projects": counts[g], "awarded": awarded.get(g, Decimal("0.00"))}
        for g in sorted(counts)
    ]


@guarded
def report(
    by: Annotated[GroupBy, typer.Option("--by", help="Group projects by this.")] = GroupBy.state,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", help="table, json or csv.")
    ] = ReportFormat.table,
    db: DbOption = DEFAULT_DB,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Report the portfolio by state, hub, brand, domain or year."""
    with open_engine(db) as engine:
        rows = portfolio_rows(engine, by)
    if as_json or fmt is ReportFormat.json:
        emit_json({"by": by.value, "rows": rows})
    elif fmt is ReportFormat.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([by.value, "projects", "awarded"])
        writer.writerows([[r["group"], r["projects"], r["awarded"]] for r in rows])
    else:
        table_rows = [[r["group"], r["projects"], r["awarded"]] for r in rows]
        emit_table(f"projects by {by.value}", [by.value, "projects", "awarded"], table_rows)


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    newline = "" if path.suffix.lower() == ".csv" else None
    with path.open("w", encoding="utf-8", newline=newline) as out:
        yield out


@guarded
def export(
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="360giving-json, 360giving-csv or jsonl.")
    ] = ExportFormat.giving_json,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="Your 360Giving identifier prefix.")
    ] = exporting.ExportOptions().grant_prefix,
    org_scheme: Annotated[
        str, typer.Option("--org-scheme", help="org-id.guide list code for credit codes.")
    ] = exporting.ExportOptions().org_scheme,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Export projects: awarded ones as 360Giving grants (JSON or CSV), or all as JSONL."""
    options = exporting.ExportOptions(grant_prefix=prefix, org_scheme=org_scheme)
    with open_engine(db) as engine, _output(output) as out:
        if fmt is ExportFormat.giving_json:
            count = exporting.write_360giving_json(engine, out, options)
        elif fmt is ExportFormat.giving_csv:
            count = exporting.write_360giving_csv(engine, out, options)
        else:
            count = exporting.write_jsonl(engine, out, options)
    what = "projects" if fmt is ExportFormat.jsonl else "grants"
    stderr().print(f"exported {count} {what}", markup=False, highlight=False)


@guarded
def diagram(
    fmt: Annotated[
        DiagramFormat, typer.Option("--format", help="mermaid or dot.")
    ] = DiagramFormat.mermaid,
) -> None:
    """Print the lifecycle as a Mermaid or Graphviz dot diagram."""
    render = to_mermaid if fmt is DiagramFormat.mermaid else to_dot
    sys.stdout.write(render(grantflow.PURCHASED_SERVICE))
