"""The ``bulk`` command: fire one event on every project named in a CSV, JSON or JSONL file."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

import grantflow
from grantflow._canonical import plain
from grantflow.bulk import BulkItem, BulkResult, Worker
from grantflow.cli._common import (
    DEFAULT_DB,
    EXIT_FAILED,
    ActorIdOption,
    DbOption,
    JsonOption,
    OrgOption,
    RoleOption,
    emit_json,
    emit_table,
    guarded,
    make_actor,
    open_engine,
    stderr,
    stdout,
    usage_error,
)
from grantflow.inputs import BulkReader, FileFormat, RowError

__all__ = ["bulk"]

_SHOWN = 20
_REPORT_COLUMNS = ("row", "project_id", "status", "state", "refusals", "error")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as raw:
        for block in iter(lambda: raw.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


class _Rows:
    """The good rows of a bulk file, keeping the bad ones aside for the report."""

    def __init__(self, reader: BulkReader) -> None:
        self.reader = reader
        self.bad: list[RowError] = []

    def __iter__(self) -> Iterator[BulkItem]:
        for row in self.reader:
            if isinstance(row, RowError):
                self.bad.append(row)
            else:
                yield row


@guarded
def bulk(
    file: Annotated[Path, typer.Argument(help="CSV, JSON (array) or JSONL file of rows.")],
    event: Annotated[str, typer.Option("--event", help="The event to fire on every row.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Decide every row and write nothing.")
    ] = False,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Idempotency key: re-running with it resumes or replays."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write a per-row report (.json or .csv) to this file."),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="Processes sharing the job.")
    ] = 1,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, max=100_000, help="Rows per transaction.")
    ] = 500,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, json or jsonl (default: by suffix).")
    ] = None,
    encoding: Annotated[
        str | None, typer.Option("--encoding", help="Text encoding (default: detected).")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", hidden=True)] = None,
    actor: ActorIdOption = None,
    role: RoleOption = None,
    org: OrgOption = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Fire EVENT on every project in FILE; exit 1 if any row was refused, failed or bad.

    Each row names a project (column project_id or id); the other columns are evidence.
    Bad rows are reported with their row number and the good rows are still applied.
    """
    who = make_actor(actor, role, org)
    if report is not None and report.suffix.lower() not in {".json", ".csv"}:
        usage_error("--report must end in .json or .csv")
    if fmt is not None and fmt not in {"csv", "json", "jsonl"}:
        usage_error("--format must be csv, json or jsonl")
    if workers > 1 and (db.startswith("memory") or dry_run):
        usage_error("--workers needs a shared database (not memory://) and no --dry-run")
    reader = BulkReader(file, fmt=_as_format(fmt), encoding=encoding)
    for warning in reader.warnings:
        stderr().print(f"warning: {warning}", markup=False, highlight=False)
    rows = _Rows(reader)
    job_key = key or f"bulk-{uuid.uuid4().hex}"
    worker = Worker(run_id=run_id, owner=_owner()) if run_id else None
    with open_engine(db) as engine:
        if workers > 1:
            result = _run_shared(engine, rows, file, event, who, job_key, chunk_size, workers)
        else:
            result = _run(
                engine,
                rows,
                file,
                event,
                who,
                job_key,
                chunk_size,
                dry_run,
                worker,
                keep_all=report is not None,
                quiet=as_json or run_id is not None,
            )
    bad = rows.bad
    if report is not None:
        _write_report(report, result, bad)
    if as_json:
        emit_json(_summary(result, bad, reader))
    elif run_id is None:
        _print_summary(result, bad)
    if not result.ok or bad:
        raise typer.Exit(EXIT_FAILED)


def _as_format(fmt: str | None) -> FileFormat | None:
    if fmt == "csv":
        return "csv"
    if fmt == "json":
        return "json"
    return "jsonl" if fmt == "jsonl" else None


def _owner() -> str:
    return f"cli-{uuid.uuid4().hex[:12]}"


def _run(
    engine: grantflow.Engine,
    rows: _Rows,
    file: Path,
    event: str,
    actor: grantflow.Actor,
    key: str,
    chunk_size: int,
    dry_run: bool,
    worker: Worker | None,
    *,
    keep_all: bool,
    quiet: bool,
) -> BulkResult:
    with _progress(quiet, f"{event} {file.name}") as advance:
        return engine.fire_many(
            event,
            rows,
            actor=actor,
            idempotency_key=None if dry_run else key,
            input_digest=_file_digest(file),
            chunk_size=chunk_size,
            dry_run=dry_run,
            keep="all" if keep_all else "failures",
            progress=advance,
            worker=worker,
        )


def _run_shared(
    engine: grantflow.Engine,
    rows: _Rows,
    file: Path,
    event: str,
    actor: grantflow.Actor,
    key: str,
    chunk_size: int,
    workers: int,
) -> BulkResult:
    """Run the job in this process and `workers - 1` more; return the job's tally."""
    run_id = uuid.uuid4().hex
    children = [_spawn(sys.argv[1:], key, run_id) for _ in range(workers - 1)]
    digest = _file_digest(file)
    shared = Worker(run_id=run_id, owner=_owner())
    kwargs: dict[str, Any] = {"actor": actor, "idempotency_key": key, "input_digest": digest}
    engine.fire_many(event, rows, chunk_size=chunk_size, worker=shared, **kwargs)
    for child in children:
        child.wait()
    # Every chunk is done (or was left by a dead worker and is taken over now): this pass
    # finishes the job and returns the tally of all workers.
    rows.bad.clear()
    result = engine.fire_many(event, rows, chunk_size=chunk_size, worker=shared, **kwargs)
    # A worker finishing last marks the job done, so this pass finds it "replayed"; it is
    # this command's own job all the same.
    result.replayed = False
    return result


def _spawn(argv: list[str], key: str, run_id: str) -> subprocess.Popen[bytes]:
    args = _drop_option(argv, "--workers")
    args = _drop_option(_drop_option(args, "--report"), "--key")
    args = [a for a in args if a != "--json"]
    cmd = [sys.executable, "-m", "grantflow", *args, "--key", key, "--run-id", run_id]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL)


def _drop_option(args: list[str], name: str) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == name:
            skip = True
            continue
        if arg.startswith(name + "="):
            continue
        out.append(arg)
    return out


class _progress:  # noqa: N801 - used as a function
    """A rich progress counter on a terminal; a no-op callback otherwise."""

    def __init__(self, quiet: bool, label: str) -> None:
        self._bar: Progress | None = None
        if not quiet and stdout().is_terminal:
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.completed} rows"),
                TimeElapsedColumn(),
                console=stdout(),
                transient=True,
            )
        self._label = label

    def __enter__(self) -> Callable[[int], None] | None:
        if self._bar is None:
            return None
        self._bar.start()
        task = self._bar.add_task(self._label, total=None)
        bar = self._bar
        return lambda done: bar.advance(task, done)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


# -- output ----------------------------------------------------------------------------


def _report_items(result: BulkResult, bad: list[RowError]) -> list[dict[str, Any]]:
    items = [plain(item.to_dict()) for item in result.items]
    for error in bad:
        items.append(
            {
                "index": None,
                "row": error.row,
                "project_id": error.project_id,
                "status": "invalid",
                "state": None,
                "refusals": [],
                "error": error.reason,
                "field": error.field,
            }
        )
    items.sort(key=lambda item: (item["row"] is None, item["row"] or 0))
    return items


def _counts(result: BulkResult, bad: list[RowError]) -> dict[str, int]:
    counts = dict(result.counts)
    if bad:
        counts["invalid"] = counts.get("invalid", 0) + len(bad)
    return dict(sorted(counts.items()))


def _summary(result: BulkResult, bad: list[RowError], reader: BulkReader) -> dict[str, Any]:
    return {
        "event": result.event,
        "key": result.key,
        "file": str(reader.path),
        "encoding": reader.encoding,
        "warnings": reader.warnings,
        "dry_run": result.dry_run,
        "replayed": result.replayed,
        "total": result.total + len(bad),
        "counts": _counts(result, bad),
        "ok": result.ok and not bad,
        "items": _report_items(result, bad),
    }


def _write_report(path: Path, result: BulkResult, bad: list[RowError]) -> None:
    items = _report_items(result, bad)
    if path.suffix.lower() == ".json":
        body = {
            "event": result.event,
            "key": result.key,
            "counts": _counts(result, bad),
            "items": items,
        }
        path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(_REPORT_COLUMNS)
        for item in items:
            codes = "; ".join(r["code"] for r in item["refusals"])
            writer.writerow(
                [
                    item["row"],
                    item["project_id"],
                    item["status"],
                    item["state"],
                    codes,
                    item["error"],
                ]
            )


def _print_summary(result: BulkResult, bad: list[RowError]) -> None:
    counts = _counts(result, bad)
    tally = ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing to do"
    mode = " (dry run: nothing written)" if result.dry_run else ""
    again = " (replayed: this key already ran)" if result.replayed else ""
    console = stdout()
    console.print(f"{result.event}: {tally}{mode}{again}", markup=False, highlight=False)
    if not result.dry_run:
        console.print(f"key: {result.key}", markup=False, highlight=False)
    failed = [i for i in _report_items(result, bad) if i["status"] not in {"applied", "skipped"}]
    if failed:
        rows = [
            (
                i["row"],
                i["project_id"] or "",
                i["status"],
                "; ".join(r["code"] for r in i["refusals"]) or i["error"],
            )
            for i in failed[:_SHOWN]
        ]
        emit_table("not applied", ["row", "project", "status", "why"], rows)
        if len(failed) > _SHOWN:
            console.print(f"... and {len(failed) - _SHOWN} more (use --report FILE)")
