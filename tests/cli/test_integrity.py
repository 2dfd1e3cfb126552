"""The integrity commands: signed checkpoints, `prove`, `verify --checkpoint FILE --key PUB`.

They run ``python -m grantflow`` in a subprocess (fixture `run` in conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import grantflow
from grantflow import Actor
from grantflow.audit import TreeHead, entry_bytes
from grantflow.rules import RuleBook
from grantflow.signing import generate_key, open_checkpoint, private_key_pem, public_key_pem

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))


@pytest.fixture
def db(tmp_path: Path) -> dict[str, str]:
    """A SQLite file with three projects, and the purchaser's key pair in key.pem/key.pub."""
    url = f"sqlite:///{tmp_path / 'grants.db'}"
    with grantflow.open(url, rules=RuleBook(), discover_rules=False) as engine:
        for i in range(1, 4):
            engine.submit(actor=APPLICANT, project_id=f"p-{i}", data={"title": f"P{i}"})
    key = generate_key()
    (tmp_path / "key.pem").write_bytes(private_key_pem(key, password=b"s3cret"))
    (tmp_path / "key.pub").write_bytes(public_key_pem(key))
    (tmp_path / "other.pub").write_bytes(public_key_pem(generate_key()))
    return {"GRANTFLOW_DB": url, "GRANTFLOW_KEY_PASSWORD": "s3cret"}


def _tamper(env: dict[str, str], sql: str) -> None:
    path = env["GRANTFLOW_DB"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute(sql)


@pytest.mark.slow
def test_signed_checkpoint_verifies_with_the_key_and_catches_a_rewrite(
    run: Any, db: dict[str, str], tmp_path: Path
) -> None:
    """`checkpoint --sign` writes a signed note; `verify --checkpoint --key` proves the log.

    A rewrite of a covered entry (its hash recomputed so the chain still holds) is found
    against the checkpoint; another key is refused in one line, without a traceback.
    """
    signed = run("checkpoint", "--sign", "key.pem", "--output", "cp.txt", env=db)
    assert signed.returncode == 0, signed.stderr
    note = (tmp_path / "cp.txt").read_text(encoding="utf-8")
    assert signed.stdout == note
    head = open_checkpoint(note, grantflow.signing.load_public_key(tmp_path / "key.pub"))
    assert head.size == 3
    ok = run("verify", "--checkpoint", "cp.txt", "--key", "key.pub", "--json", env=db)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    wrong = run("verify", "--checkpoint", "cp.txt", "--key", "other.pub", env=db)
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("error: EvidenceError: ")
    assert "Traceback" not in wrong.stderr
    missing = run("verify", "--checkpoint", "cp.txt", env=db)
    assert missing.returncode == 2
    assert "--key" in missing.stderr
    _rewrite_first_entry(db)
    assert run("verify", env=db).returncode == 0  # the chain alone cannot tell
    caught = run("verify", "--checkpoint", "cp.txt", "--key", "key.pub", "--json", env=db)
    assert caught.returncode == 1
    reasons = [p["reason"] for p in json.loads(caught.stdout)["problems"]]
    assert reasons == ["the log's first 3 entries no longer have the checkpoint's root"]


def _rewrite_first_entry(env: dict[str, str]) -> None:
    """Re-seal p-1's only entry with other evidence and a fresh hash, row updated to match."""
    with grantflow.open(env["GRANTFLOW_DB"], rules=RuleBook(), discover_rules=False) as engine:
        (entry,) = engine.history("p-1")
    body = entry.model_dump(exclude={"hash"})
    body.update(evidence={"rewritten": True})
    body["actor"], body["refusals"], body["records"] = entry.actor, entry.refusals, entry.records
    forged = grantflow.audit.seal(**body)
    evidence = json.dumps(dict(forged.evidence))
    _tamper(
        env,
        f"update grantflow_audit set evidence = '{evidence}', hash = '{forged.hash}' "
        "where project_id = 'p-1'",
    )
    _tamper(env, f"update grantflow_projects set head = '{forged.hash}' where id = 'p-1'")


def test_checkpoint_json_names_the_signed_tree_head(run: Any, db: dict[str, str]) -> None:
    """`checkpoint --sign KEY --json` prints the note and the tree head it states."""
    done = run(
        "checkpoint", "--sign", "key.pem", "--origin", "city.example/grants", "--json", env=db
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["checkpoint"].startswith("city.example/grants\n3\n")
    assert TreeHead.model_validate({k: out[k] for k in ("origin", "size", "root", "at")}).size == 3


def test_prove_prints_an_inclusion_proof_an_auditor_can_check(run: Any, db: dict[str, str]) -> None:
    """`prove p-2/1 --json`: the entry's bytes hash to its hash and the proof verifies."""
    done = run("prove", "p-2/1", "--json", env=db)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["verified"] is True
    assert out["proof"]["size"] == out["tree_head"]["size"] == 3
    text = out["entry_bytes"].encode("utf-8")
    assert hashlib.sha256(text).hexdigest() == out["entry"]["hash"]
    with grantflow.open(db["GRANTFLOW_DB"], rules=RuleBook(), discover_rules=False) as engine:
        (entry,) = engine.history("p-2")
        assert entry_bytes(entry) == text
        again = engine.prove("p-2", 1, size=3)
    assert again.model_dump(mode="json") == out["proof"]
    plain = run("prove", "p-2/1", env=db)
    assert "verified: yes" in plain.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("prove", "p-2"), "ENTRY"),
        (("prove", "p-2/0"), "ENTRY"),
        (("prove", "p-2/7"), "no entry 7"),
        (("prove", "nobody/1"), "ProjectNotFound"),
        (("prove", "p-2/1", "--size", "99"), "larger than the log"),
        (("checkpoint", "--sign", "missing.pem"), "cannot read"),
        (("checkpoint", "--origin", "x"), "--sign"),
        (("verify", "--key", "key.pub"), "--checkpoint"),
    ],
)
def test_bad_integrity_arguments_are_one_line_errors(
    run: Any, db: dict[str, str], args: tuple[str, ...], needle: str
) -> None:
    """Bad entries, sizes, keys and option pairs: one line on stderr, no traceback."""
    done = run(*args, env=db)
    assert done.returncode in {1, 2}
    assert needle in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
