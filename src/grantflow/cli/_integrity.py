"""Integrity commands: ``verify`` the stored facts, take a ``checkpoint``, ``prove`` an entry.

A checkpoint is either the JSON of a `Checkpoint` (chain heads, also kept in the
database) or, with ``checkpoint --sign KEY``, a signed tree head of the audit log (a
C2SP signed note, see docs/evidence.md) that ``verify --checkpoint FILE --key PUB``
proves the log against. ``prove PROJECT/SEQ`` prints an entry's inclusion proof.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy
import typer

from grantflow.audit import (
    DEFAULT_ORIGIN,
    Checkpoint,
    entry_bytes,
    inclusion_proof,
    tree_head,
    verify_inclusion,
)
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
    say,
    stdout,
    usage_error,
)
from grantflow.cli._progress import meter
from grantflow.signing import checkpoint_head, load_private_key, load_public_key

__all__ = ["PASSWORD_ENV", "checkpoint", "prove", "verify"]

#: Environment variable holding the password of an encrypted private key (``--sign``).
PASSWORD_ENV = "GRANTFLOW_KEY_PASSWORD"  # noqa: S105 - the name of a variable, not a password


def _entry_count(store: object) -> int | None:
    """The number of audit entries `verify` reads: the bar's total (one ``count(*)``)."""
    from grantflow.persistence.sql import SqlStore

    if not isinstance(store, SqlStore):
        return None
    audit = store.tables.audit
    with store.connect() as conn:
        found = conn.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(audit))
        return int(found.scalar_one())


OriginOption = Annotated[
    str | None,
    typer.Option(
        "--origin",
        help=f"The log's name in signed checkpoints (default {DEFAULT_ORIGIN!r}).",
    ),
]


def _load_checkpoint(path: Path) -> Checkpoint | str:
    """A chain-head checkpoint (JSON) or a signed checkpoint's text, as the file holds."""
    data = read_input(path, "checkpoint")
    if not data.lstrip().startswith(b"{"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            usage_error(f"{path} is not a grantflow checkpoint: not UTF-8 text")
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
            help="A checkpoint written by `checkpoint` (JSON, or signed text with --key; "
            "- reads standard input).",
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="The purchaser's public key (PEM) for a signed checkpoint."),
    ] = None,
    origin: OriginOption = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Check every stored fact against the audit chains (and a checkpoint); exit 1 on problems.

    Every chain's hashes and steps (each accepted entry an edge of the lifecycle), and
    every project and record row against what replaying the chain gives.
    """
    cp = _load_checkpoint(checkpoint_file) if checkpoint_file else None
    if isinstance(cp, str) and key is None:
        usage_error("a signed checkpoint is verified with the purchaser's public key: add --key")
    if key is not None and not isinstance(cp, str):
        usage_error("--key verifies a signed checkpoint: name one with --checkpoint")
    public = load_public_key(key) if key is not None else None
    with open_engine(db) as engine:
        total = None if quiet else _entry_count(engine.store)
        with meter("verify", total, unit="entries", quiet=quiet) as bar:
            report = engine.verify(
                checkpoint=cp, public_key=public, origin=origin, progress=bar.advance
            )
    if as_json:
        emit_json({**report.model_dump(mode="python"), "ok": report.ok})
    else:
        verdict = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        say(f"verified {report.entries} entries in {report.projects} chains: {verdict}")
        if report.problems:
            rows = [(p.project_id, p.seq, p.field, p.reason) for p in report.problems]
            emit_table("problems", ["project", "seq", "field", "reason"], rows)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


@guarded
def checkpoint(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the checkpoint to this file.")
    ] = None,
    sign: Annotated[
        Path | None,
        typer.Option(
            "--sign",
            help=f"Sign a tree head of the audit log with this Ed25519 private key (PEM; "
            f"an encrypted key's password is read from ${PASSWORD_ENV}).",
        ),
    ] = None,
    origin: OriginOption = None,
    db: DbOption = DEFAULT_DB,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print JSON (a checkpoint without --sign always is)."),
    ] = False,
) -> None:
    """Take a checkpoint to keep outside the database, and print it.

    Without --sign: a Merkle root over every chain head, as JSON; `verify --checkpoint
    FILE` later proves no chain was truncated or rewritten since. With --sign KEY: the
    audit log's tree head signed with the purchaser's key (a signed note); `verify
    --checkpoint FILE --key PUB` proves the log still holds what it signed.
    """
    output = output_path(output, "--output")
    if origin is not None and sign is None:
        usage_error("--origin names the log in a signed checkpoint: add --sign KEY")
    if sign is None:
        with open_engine(db) as engine:
            cp = engine.checkpoint()
        text = json.dumps(cp.model_dump(mode="json"), indent=2) + "\n"
        _write(output, text)
        typer.echo(text, nl=False)
        return
    password = os.environ.get(PASSWORD_ENV)
    private = load_private_key(sign, password=password.encode() if password else None)
    with open_engine(db) as engine:
        note = engine.checkpoint(sign_with=private, origin=origin or DEFAULT_ORIGIN)
    _write(output, note)
    if as_json:
        head = checkpoint_head(note)
        emit_json({"checkpoint": note, **head.model_dump(mode="python")})
    else:
        typer.echo(note, nl=False)


def _write(output: Path | None, text: str) -> None:
    if output is not None:
        output.write_text(text, encoding="utf-8")


@guarded
def prove(
    entry: Annotated[str, typer.Argument(help="The audit entry, as PROJECT_ID/SEQ.")],
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            min=1,
            help="Prove it in the log's first SIZE entries (a checkpoint's size); default: "
            "sequence the log and use all of it.",
        ),
    ] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Print the inclusion proof of one audit entry in the audit log's Merkle tree.

    The proof, the tree head it leads to and the entry's exact bytes: with them an
    auditor checks the entry is in a signed checkpoint of that size, without the rest
    of the log (see docs/evidence.md for a check in a dozen lines of Python).
    """
    project_id, sep, seq_text = entry.rpartition("/")
    if not sep or not project_id or not seq_text.isdigit() or int(seq_text) < 1:
        usage_error(f"ENTRY {entry!r}: write the project id, a slash and the entry number")
    seq = int(seq_text)
    with open_engine(db) as engine:
        history = engine.history(project_id)
        found = next((e for e in history if e.seq == seq), None)
        if found is None:
            usage_error(f"project {project_id} has no entry {seq} (it has {len(history)})")
        store = engine.store
        head = tree_head(store) if size is None else tree_head(store, size=size)
        proof = inclusion_proof(store, project_id, seq, size=head.size)
    checked = verify_inclusion(found, proof, head)
    result: dict[str, Any] = {
        "entry": found.model_dump(mode="json"),
        "entry_bytes": entry_bytes(found).decode("utf-8"),
        "proof": proof.model_dump(mode="json"),
        "tree_head": head.model_dump(mode="json"),
        "verified": checked,
    }
    if as_json:
        emit_json(result)
    else:
        out = stdout()
        for line in (
            f"entry {project_id}/{seq} is leaf {proof.index} of {proof.size}",
            f"root {head.root}",
            *(f"path {i} {node}" for i, node in enumerate(proof.path)),
            f"verified: {'yes' if checked else 'NO'}",
        ):
            out.print(line, markup=False, highlight=False)
    if not checked:
        raise typer.Exit(EXIT_FAILED)
