"""End-to-end tests of the ``grantflow`` command on a SQLite file, through subprocesses.

Projects are seeded through the public API (without rules, so that seeding needs no
reviews or contracts); the command then runs with the default regime rules.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

import grantflow
from grantflow.records import Directory, Hub
from grantflow.rules import RuleBook

APPLICANT = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
STAFF = {"GRANTFLOW_ACTOR": "staff-1", "GRANTFLOW_ROLE": "purchaser", "GRANTFLOW_ORG": "city"}


@pytest.fixture
def db(tmp_path: Path) -> dict[str, str]:
    """A SQLite file holding five applied projects p-1 .. p-5; returns the command's env."""
    url = f"sqlite:///{tmp_path / 'grants.db'}"
    with grantflow.open(url, rules=RuleBook(), discover_rules=False) as engine:
        # The purchaser the staff act for (the default rules check the hub tree).
        Directory(engine).add_hub(Hub(id="city", name="City federation", kind="city"))
        for i in range(1, 6):
            data = {"title": f"Project {i}", "hub": "city", "purchaser": "city"}
            data["domain"] = "legal_aid"
            engine.submit(actor=APPLICANT, project_id=f"p-{i}", data=data)
    return {"GRANTFLOW_DB": url, **STAFF}


def _state(env: dict[str, str], project_id: str) -> str:
    with grantflow.open(env["GRANTFLOW_DB"]) as engine:
        return engine.get(project_id).state


def test_db_upgrade_creates_a_database_in_the_working_directory(run: Any, tmp_path: Path) -> None:
    """Without --db the command uses sqlite:///grantflow.db in the working directory."""
    done = run("db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert "is at schema version" in done.stdout
    assert (tmp_path / "grantflow.db").is_file()


def test_fire_applies_and_refuses_with_both_messages(run: Any, db: dict[str, str]) -> None:
    """A refused fire prints code and both messages and exits 1; an accepted one exits 0."""
    refused = run("fire", "p-1", "reject", env=db)
    assert refused.returncode == 1
    assert "reasons.required: reject needs a reason" in refused.stdout
    assert "执行驳回须说明理由" in refused.stdout
    accepted = run("fire", "p-1", "reject", "-e", "reason=budget not credible", env=db)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.strip() == "p-1: reject accepted, applied → rejected"
    assert _state(db, "p-1") == "rejected"


def test_explain_writes_nothing(run: Any, db: dict[str, str]) -> None:
    """``explain`` reports the refusals as JSON, exits 1, and adds no audit entry."""
    done = run("explain", "p-2", "reject", "--json", env=db)
    assert done.returncode == 1
    out = json.loads(done.stdout)
    assert [r["code"] for r in out["refusals"]] == ["reasons.required"]
    assert out["refusals"][0]["message_zh"] == "执行驳回须说明理由"
    assert "reject" in out["events_allowed_to_actor"]
    history = json.loads(run("history", "p-2", "--json", env=db).stdout)
    assert [e["event"] for e in history] == ["submit"]


def test_show_history_verify_checkpoint(run: Any, db: dict[str, str], tmp_path: Path) -> None:
    """The read commands agree with the database, and a checkpoint verifies."""
    run("fire", "p-3", "reject", env=db)
    shown = json.loads(run("show", "p-3", "--json", env=db).stdout)
    assert (shown["state"], shown["version"]) == ("applied", 2)
    history = run("history", "p-3", env=db).stdout.splitlines()
    assert history[0].split("\t")[:3] == ["seq", "at", "event"]
    assert history[2].split("\t")[5:] == ["no", "staff-1", "reasons.required"]
    checkpoint = run("checkpoint", "--output", "cp.json", env=db)
    assert json.loads(checkpoint.stdout)["size"] == 5
    verified = run("verify", "--checkpoint", "cp.json", "--json", env=db)
    assert verified.returncode == 0
    assert json.loads(verified.stdout)["ok"] is True
    assert (tmp_path / "cp.json").is_file()


def test_verify_finds_a_tampered_entry_and_exits_1(run: Any, db: dict[str, str]) -> None:
    """After an audit row is edited with plain SQL, ``verify`` reports it and exits 1."""
    import sqlite3

    path = db["GRANTFLOW_DB"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        table = next(
            name
            for (name,) in conn.execute("select name from sqlite_master where type='table'")
            if name.endswith("audit")
        )
        conn.execute(f"update {table} set event = 'forged' where project_id = 'p-4'")
    done = run("verify", env=db)
    assert done.returncode == 1
    assert "p-4" in done.stdout


def test_report_and_export(run: Any, db: dict[str, str]) -> None:
    """``report`` totals by domain as CSV and ``export --format jsonl`` lists every project."""
    report = run("report", "--by", "domain", "--format", "csv", env=db)
    assert report.returncode == 0
    rows = list(csv.reader(io.StringIO(report.stdout)))
    assert rows[0] == ["domain", "projects", "awarded", "disbursed", "activities", "person_times"]
    assert rows[1][:2] == ["legal_aid", "5"]
    exported = run("export", "--format", "jsonl", "--output", "all.jsonl", env=db)
    assert exported.returncode == 0
    assert exported.stderr.strip() == "exported 5 projects"
    grants = run("export", "--format", "360giving-csv", env=db)
    assert grants.stdout.splitlines()[0].startswith("Identifier,Title,Description,Currency")


def _bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "reject.csv"
    path.write_text(
        "project_id,reason\n"
        "p-1,weak budget\n"  # applied
        "p-2,\n"  # refused: no reason
        "p-1,again\n"  # bad: duplicate
        "p-404,unknown\n"  # not found
        ",no id\n"  # bad: no id
        "p-3,late\n",  # applied
        encoding="utf-8",
    )
    return path


def test_bulk_dry_run_reports_every_row_and_writes_nothing(
    run: Any, db: dict[str, str], tmp_path: Path
) -> None:
    """A dry run decides each good row, reports the bad ones by row, and changes nothing."""
    _bad_file(tmp_path)
    args = ("bulk", "reject.csv", "reject", "--dry-run")
    done = run(*args, "--json", "--report", "r.json", env=db)
    assert done.returncode == 1
    out = json.loads(done.stdout)
    assert out["counts"] == {"applied": 2, "invalid": 2, "not_found": 1, "refused": 1}
    report = json.loads((tmp_path / "r.json").read_text("utf-8"))
    assert [(i["row"], i["status"]) for i in report["items"]] == [
        (2, "applied"),
        (3, "refused"),
        (4, "invalid"),
        (5, "not_found"),
        (6, "invalid"),
        (7, "applied"),
    ]
    assert _state(db, "p-1") == "applied"
    plain = run(*args, env=db)
    assert plain.stdout.splitlines()[0] == (
        "reject: 2 applied, 2 invalid, 1 not_found, 1 refused (dry run: nothing written)"
    )
    assert "4\tp-1\tinvalid\tduplicate project id p-1 (first on row 2)" in plain.stdout


def test_bulk_applies_good_rows_and_reports_bad_ones(
    run: Any, db: dict[str, str], tmp_path: Path
) -> None:
    """Good rows are applied, bad rows reported with row numbers, exit 1; a re-run replays."""
    _bad_file(tmp_path)
    args = ("bulk", "reject.csv", "reject", "--key", "k1", "--report", "r.json")
    done = run(*args, env=db)
    assert "error:" not in done.stderr, done.stderr
    assert done.returncode == 1
    report = json.loads((tmp_path / "r.json").read_text("utf-8"))
    assert [(i["row"], i["status"]) for i in report["items"]] == [
        (2, "applied"),
        (3, "refused"),
        (4, "invalid"),
        (5, "not_found"),
        (6, "invalid"),
        (7, "applied"),
    ]
    assert [_state(db, p) for p in ("p-1", "p-2", "p-3")] == ["rejected", "applied", "rejected"]
    again = run(*args, "--json", env=db)
    assert json.loads(again.stdout)["replayed"] is True
    assert run("verify", env=db).returncode == 0


def test_bulk_with_workers_transitions_every_project_once(
    run: Any, db: dict[str, str], tmp_path: Path
) -> None:
    """Three processes share one job: every project is rejected exactly once."""
    url = db["GRANTFLOW_DB"]
    with grantflow.open(url, rules=RuleBook(), discover_rules=False) as engine:
        for i in range(6, 61):
            engine.submit(actor=APPLICANT, project_id=f"p-{i}", data={"purchaser": "city"})
    rows = "".join(f"p-{i},too late\n" for i in range(1, 61))
    (tmp_path / "all.csv").write_text("project_id,reason\n" + rows, encoding="utf-8")
    args = ("bulk", "all.csv", "reject", "--workers", "3", "--chunk-size", "4")
    done = run(*args, "--json", env=db)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"] == {"applied": 60}
    with grantflow.open(url) as engine:
        assert all(len(engine.history(f"p-{i}")) == 2 for i in range(1, 61))
        assert engine.verify().ok


def test_demo_seeds_reports_and_verifies_in_a_fresh_database(run: Any, tmp_path: Path) -> None:
    """`grantflow demo` writes grantflow-demo.db here, reports every state, verifies."""
    done = run("demo", "--projects", "40", "--seed", "5", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["projects"] == 40
    assert report["audit"]["verified"] is True
    assert {"closed", "rejected"} <= set(report["states"])
    assert (tmp_path / "grantflow-demo.db").exists()
    again = run("demo", "--projects", "40", "--seed", "5", "--json")
    assert {k: v for k, v in json.loads(again.stdout).items() if k != "seconds"} == {
        k: v for k, v in report.items() if k != "seconds"
    }
    with grantflow.open(f"sqlite:///{tmp_path / 'grantflow-demo.db'}") as engine:
        assert engine.verify().ok
        assert sum(1 for _ in engine.store.projects()) == 40
