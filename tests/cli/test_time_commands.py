"""``grantflow due`` and ``grantflow sweep``: listing due dates and firing timers for cron."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import grantflow
from grantflow.rules import RuleBook
from grantflow.testing import FrozenClock


@pytest.fixture
def approved_db(tmp_path: Path) -> dict[str, str]:
    """A database with one approved project (its approval recorded by a bare engine)."""
    url = f"sqlite:///{tmp_path / 'grants.db'}"
    with grantflow.open(url, rules=RuleBook(), clock=FrozenClock()) as engine:
        actor = grantflow.Actor(id="u-1", roles=frozenset({"applicant", "purchaser"}))
        engine.submit(actor=actor, data={"hub": "s1"}, project_id="P-1")
        engine.fire("P-1", "approve", actor=actor)
        approval = {
            "approver": "staff-1",
            "score": "80",
            "recommended_amount": "100000.00",
            "reviews_counted": [],
            "approved_at": "2025-03-03T09:00:00+00:00",
        }
        engine.add_record("P-1", "approval", approval, actor=actor)
    return {"GRANTFLOW_DB": url}


@pytest.mark.slow
def test_due_lists_the_publicity_end_and_sweep_closes_it_once(
    run: Any, approved_db: dict[str, str]
) -> None:
    """Due --json shows 公示期满 on 2025-03-10; sweep after it fires once, then nothing."""
    listed = run("due", "--json", env=approved_db)
    assert listed.returncode == 0, listed.stderr
    (only,) = json.loads(listed.stdout)
    assert (only["kind"], only["due_on"], only["label_zh"]) == (
        "publicity_end",
        "2025-03-10",
        "公示期满",
    )
    assert (
        run("due", "--overdue", env=approved_db)
        .stdout.splitlines()[1]
        .startswith("2025-03-10\tP-1\tpublicity_end")
    )
    early = run("sweep", "--now", "2025-03-10T09:00:00+08:00", "--json", env=approved_db)
    assert json.loads(early.stdout)["fired"] == 0
    dry = run("sweep", "--now", "2025-03-11T09:00:00+08:00", "--dry-run", env=approved_db)
    assert "close_publicity" in dry.stdout
    fired = run("sweep", "--now", "2025-03-11T09:00:00+08:00", "--json", env=approved_db)
    assert fired.returncode == 0, fired.stderr
    assert json.loads(fired.stdout)["fired"] == 1
    again = run("sweep", "--now", "2025-03-11T09:00:00+08:00", env=approved_db)
    assert again.stdout.startswith("fired 0 of 0 due timer(s)")
    assert run("due", env=approved_db).stdout == "nothing due\n"
    history = json.loads(run("history", "P-1", "--json", env=approved_db).stdout)
    assert history[-1]["actor"]["id"] == "grantflow-timer"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("due", "--before", "2025-13-01"), "is not a date"),
        (("due", "--kind", "nope"), "unknown obligation kind 'nope'"),
        (("due", "--subtree"), "subtree needs a hub"),
        (("sweep", "--now", "2025-03-11"), "needs a time zone"),
    ],
)
def test_bad_options_are_one_line_usage_errors(
    run: Any, approved_db: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    """Bad dates, kinds and times exit 2 with one line naming the problem, no traceback."""
    done = run(*args, env=approved_db)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_due_reindex_rebuilds_the_index(run: Any, approved_db: dict[str, str]) -> None:
    """--reindex rebuilds the rows of a database whose index is empty (an upgraded one)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(approved_db["GRANTFLOW_DB"])
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM grantflow_obligations")
    engine.dispose()
    assert run("due", env=approved_db).stdout == "nothing due\n"
    assert "publicity_end" in run("due", "--reindex", env=approved_db).stdout
