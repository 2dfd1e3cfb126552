"""The ``bulk`` command: fire one event on every project named in a CSV, JSON or JSONL file."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer

import grantflow
from grantflow._canonical import plain
from grantflow.bulk import BulkItem, BulkResult, Worker
from grantflow.cli._common import (
    DEFAULT_DB,
    EXIT_FAILED,
    STDIN,
    ActorIdOption,
    DbOption,
    JsonOption,
    OrgOption,
    QuietOption,
    RoleOption,
    emit_json,
    emit_table,
    guarded,
    make_actor,
    open_engine,
    output_path,
    stderr,
    stdin_to_file,
    stdout,
    usage_error,
)
from grantflow.cli._progress import Meter, meter
from grantflow.inputs import BulkReader, FileFormat, RowError
from grantflow.persistence import JobStore

__all__ = ["bulk"]

_SHOWN = 20
_REPORT_COLUMNS = ("row", "project_id", "status", "state", "refusals", "error")
_POLL_SECONDS = 0.25


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

    def count(self) -> int:
        """Count the good rows (one more pass over the file)."""
        return sum(1 for row in self.reader if not isinstance(row, RowError))


@guarded
def bulk(
    file: Annotated[
        Path, typer.Argument(help="CSV, JSON (array) or JSONL file of rows; - reads stdin.")
    ],
    event: Annotated[
        str | None, typer.Argument(help="The event to fire on every row, e.g. sign.")
    ] = None,
    event_option: Annotated[
        str | None,
        typer.Option("--event", help="Deprecated: name the event as the second argument."),
    ] = None,
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
        str | None,
        typer.Option("--format", help="csv, json or jsonl (default: by suffix, or sniffed)."),
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
    quiet: QuietOption = False,
) -> None:
    """Fire EVENT on every project in FILE; exit 1 if any row was refused, failed or bad.

    Each row names a project (column project_id or id); the other columns are evidence.
    Bad rows are reported with their row number and the good rows are still applied.
    """
    event = _event(event, event_option)
    who = make_actor(actor, role, org)
    if report is not None and report.suffix.lower() not in {".json", ".csv"}:
        usage_error("--report must end in .json or .csv")
    report = output_path(report, "--report")
    if fmt is not None and fmt not in {"csv", "json", "jsonl"}:
        usage_error("--format must be csv, json or jsonl")
    if workers > 1 and (db.startswith("memory") or dry_run):
        usage_error("--workers needs a shared database (not memory://) and no --dry-run")
    source = str(file)
    with ExitStack() as stack:
        if source == STDIN:
            file = stack.enter_context(stdin_to_file(".txt"))
            fmt = fmt or _sniff(file)
        reader = BulkReader(file, fmt=_as_format(fmt), encoding=encoding)
        for warning in reader.warnings:
            stderr().print(f"warning: {warning}", markup=False, highlight=False)
        rows = _Rows(reader)
        job_key = key or f"bulk-{uuid.uuid4().hex}"
        worker = Worker(run_id=run_id, owner=_owner()) if run_id else None
        engine = stack.enter_context(open_engine(db))
        bar = stack.enter_context(
            meter(f"{event} {Path(source).name}", None, unit="rows", quiet=quiet or bool(run_id))
        )
        if bar.shown:
            bar.set(0, total=rows.count())
        if workers > 1:
            result = _run_shared(engine, rows, file, event, who, job_key, chunk_size, workers, bar)
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
                bar=bar,
            )
    bad = rows.bad
    if report is not None:
        _write_report(report, result, bad)
    if as_json:
        emit_json(_summary(result, bad, reader, source))
    elif run_id is None:
        _print_summary(result, bad)
    if not result.ok or bad:
        raise typer.Exit(EXIT_FAILED)


def _event(argument: str | None, option: str | None) -> str:
    """One way to name the event: the argument; ``--event`` still works, with a warning."""
    if option is not None:
        if argument is not None and argument != option:
            usage_error(f"two events named: {argument} and --event {option}")
        stderr().print(
            "warning: --event is deprecated; write `grantflow bulk FILE EVENT`",
            markup=False,
            highlight=False,
        )
        return option
    if argument is None:
        usage_error("name the event: grantflow bulk FILE EVENT")
    return argument


def _sniff(path: Path) -> str:
    """Guess the format of standard input: a JSON array, JSON lines or CSV."""
    with path.open("rb") as raw:
        start = raw.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith(b"["):
        return "json"
    return "jsonl" if start.startswith(b"{") else "csv"


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
    bar: Meter,
) -> BulkResult:
    return engine.fire_many(
        event,
        rows,
        actor=actor,
        idempotency_key=None if dry_run else key,
        input_digest=_file_digest(file),
        chunk_size=chunk_size,
        dry_run=dry_run,
        keep="all" if keep_all else "failures",
        progress=bar.advance if bar.shown else None,
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
    bar: Meter,
) -> BulkResult:
    """Run the job in this process and `workers - 1` more; return the job's tally.

    The bar shows the whole job: the tally every worker commits with its chunks.
    """
    run_id = uuid.uuid4().hex
    children = [_spawn(sys.argv[1:], file, key, run_id) for _ in range(workers - 1)]
    digest = _file_digest(file)
    shared = Worker(run_id=run_id, owner=_owner())
    kwargs: dict[str, Any] = {"actor": actor, "idempotency_key": key, "input_digest": digest}

    def show_job(_done: int = 0) -> None:
        _show_job(engine, key, bar)

    progress = show_job if bar.shown else None
    engine.fire_many(event, rows, chunk_size=chunk_size, worker=shared, progress=progress, **kwargs)
    while running := [child for child in children if child.poll() is None]:
        if bar.shown:
            show_job()
        with contextlib.suppress(subprocess.TimeoutExpired):
            running[0].wait(timeout=_POLL_SECONDS)
    # Every chunk is done (or was left by a dead worker and is taken over now): this pass
    # finishes the job and returns the tally of all workers.
    rows.bad.clear()
    result = engine.fire_many(event, rows, chunk_size=chunk_size, worker=shared, **kwargs)
    bar.set(result.total)
    # A worker finishing last marks the job done, so this pass finds it "replayed"; it is
    # this command's own job all the same.
    result.replayed = False
    return result


def _show_job(engine: grantflow.Engine, key: str, bar: Meter) -> None:
    store = engine.store
    if isinstance(store, JobStore):
        job = store.job_get(key)
        if job is not None:
            bar.set(sum(job.counts.values()))


def _spawn(argv: list[str], file: Path, key: str, run_id: str) -> subprocess.Popen[bytes]:
    args = _drop_option(argv, "--workers")
    args = _drop_option(_drop_option(args, "--report"), "--key")
    args = [a for a in args if a not in {"--json", "--quiet", "-q"}]
    if STDIN in args:  # the children read the copy of standard input
        args[args.index(STDIN)] = str(file)
    cmd = [sys.executable, "-m", "grantflow", *args, "--key", key, "--run-id", run_id]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


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


def _summary(
    result: BulkResult, bad: list[RowError], reader: BulkReader, source: str
) -> dict[str, Any]:
    return {
        "event": result.event,
        "key": result.key,
        "file": source,
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
