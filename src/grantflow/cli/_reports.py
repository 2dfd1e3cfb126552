"""Read-only views of the portfolio: ``report``, ``export`` and ``diagram``."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO

import typer

import grantflow
from grantflow import export as exporting
from grantflow.cli._common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    QuietOption,
    emit_json,
    emit_table,
    guarded,
    open_engine,
    output_path,
    stderr,
    usage_error,
)
from grantflow.cli._progress import meter
from grantflow.portfolio import SERVICE_DIMENSIONS, Portfolio
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


def portfolio_rows(engine: grantflow.Engine, by: GroupBy) -> list[dict[str, object]]:
    """Return one row per group: projects, money, and services where they group alike."""
    portfolio = Portfolio(engine)
    services = {}
    if by.value in SERVICE_DIMENSIONS:
        services = {s.key: s for s in portfolio.services(by.value)}  # type: ignore[arg-type]
    rows: list[dict[str, object]] = []
    for total in portfolio.totals(by.value):
        row: dict[str, object] = {
            by.value: total.key,
            "projects": total.projects,
            "awarded": total.awarded,
            "disbursed": total.disbursed,
        }
        if by.value in SERVICE_DIMENSIONS:
            served = services.get(total.key)
            row["activities"] = served.activities if served else 0
            row["person_times"] = served.person_times if served else 0
        rows.append(row)
    return rows


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
    columns = [by.value, "projects", "awarded", "disbursed"]
    if by.value in SERVICE_DIMENSIONS:
        columns += ["activities", "person_times"]
    if as_json or fmt is ReportFormat.json:
        emit_json({"by": by.value, "rows": rows})
    elif fmt is ReportFormat.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[row[c] for c in columns] for row in rows])
    else:
        table_rows = [[row[c] for c in columns] for row in rows]
        emit_table(f"projects by {by.value}", columns, table_rows)


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
        Path | None,
        typer.Option("--output", "-o", help="Write here instead of stdout (- for stdout)."),
    ] = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="Your 360Giving identifier prefix.")
    ] = exporting.ExportOptions().grant_prefix,
    org_scheme: Annotated[
        str, typer.Option("--org-scheme", help="org-id.guide list code for credit codes.")
    ] = exporting.ExportOptions().org_scheme,
    db: DbOption = DEFAULT_DB,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print a JSON summary on stdout (needs --output FILE)."),
    ] = False,
    quiet: QuietOption = False,
) -> None:
    """Export projects: awarded ones as 360Giving grants (JSON or CSV), or all as JSONL."""
    output = output_path(output, "--output")
    if as_json and output is None:
        usage_error("--json prints a summary on stdout; write the export with --output FILE")
    options = exporting.ExportOptions(grant_prefix=prefix, org_scheme=org_scheme)
    awarded_only = fmt is not ExportFormat.jsonl
    with open_engine(db) as engine:
        total = _export_total(engine, awarded_only=awarded_only)
        with (
            meter(f"export {fmt.value}", total, unit="projects", quiet=quiet) as bar,
            _output(output) as out,
        ):
            progress = bar.advance if bar.shown else None
            if fmt is ExportFormat.giving_json:
                count = exporting.write_360giving_json(engine, out, options, progress=progress)
            elif fmt is ExportFormat.giving_csv:
                count = exporting.write_360giving_csv(engine, out, options, progress=progress)
            else:
                count = exporting.write_jsonl(engine, out, options, progress=progress)
    what = "grants" if awarded_only else "projects"
    if as_json:
        emit_json({"format": fmt.value, "output": str(output), what: count})
        return
    stderr().print(f"exported {count} {what}", markup=False, highlight=False)


def _export_total(engine: grantflow.Engine, *, awarded_only: bool) -> int:
    """Return how many projects the export reads (the awarded ones, or all)."""
    names = {state.name for state in engine.lifecycle.states}
    others = names - exporting.AWARDED_STATES if awarded_only else set()
    return engine.store.count_projects({}, exclude_states=others)


@guarded
def diagram(
    fmt: Annotated[
        DiagramFormat, typer.Option("--format", help="mermaid or dot.")
    ] = DiagramFormat.mermaid,
    as_json: JsonOption = False,
) -> None:
    """Print the lifecycle as a Mermaid or Graphviz dot diagram."""
    render = to_mermaid if fmt is DiagramFormat.mermaid else to_dot
    lifecycle = grantflow.PURCHASED_SERVICE
    text = render(lifecycle)
    if as_json:
        emit_json({"lifecycle": lifecycle.name, "format": fmt.value, "diagram": text})
        return
    sys.stdout.write(text)
