"""Integrity commands: ``verify`` the audit chains and write a ``checkpoint``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from grantflow.audit import Checkpoint
from grantflow.cli._common import (
    DEFAULT_DB,
    EXIT_FAILED,
    DbOption,
    JsonOption,
    QuietOption,
    emit_json,
    emit_table,
    guarded,
    open_engine,
    output_path,
    read_input,
    stdout,
    usage_error,
)

__all__ = ["checkpoint", "verify"]


def _load_checkpoint(path: Path) -> Checkpoint:
    data = read_input(path, "checkpoint")
    try:
        return Checkpoint.model_validate_json(data)
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        usage_error(f"{path} is not a grantflow checkpoint: {first}")


@guarded
def verify(
    checkpoint_file: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint JSON file written by `checkpoint` (- reads standard input).",
        ),
    ] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Recompute every audit chain (and check a checkpoint); exit 1 on any problem."""
    # No bar yet: the chains are walked inside Engine.verify, which takes no progress
    # callback; `quiet` is accepted now so that scripts need not change when it does.
    del quiet
    cp = _load_checkpoint(checkpoint_file) if checkpoint_file else None
    with open_engine(db) as engine:
        report = engine.verify(checkpoint=cp)
    if as_json:
        emit_json({**report.model_dump(mode="python"), "ok": report.ok})
    else:
        verdict = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        stdout().print(
            f"verified {report.entries} entries in {report.projects} chains: {verdict}",
            markup=False,
        )
        if report.problems:
            rows = [(p.project_id, p.seq, p.reason) for p in report.problems]
            emit_table("problems", ["project", "seq", "reason"], rows)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


@guarded
def checkpoint(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the JSON to this file.")
    ] = None,
    db: DbOption = DEFAULT_DB,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (checkpoint always does).")
    ] = False,
) -> None:
    """Take a checkpoint (Merkle root over every chain head) and print it as JSON.

    Keep the JSON outside the database; `verify --checkpoint FILE` later proves that no
    chain was truncated or rewritten since.
    """
    del as_json  # the checkpoint is JSON; the option is there so every command takes it
    output = output_path(output, "--output")
    with open_engine(db) as engine:
        cp = engine.checkpoint()
    text = json.dumps(cp.model_dump(mode="json"), indent=2) + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
    typer.echo(text, nl=False)
