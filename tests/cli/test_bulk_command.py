"""Tests for ``grantflow bulk`` through a subprocess: bad files, reports, exit codes.

Tests needing projects to exist across processes use a SQLite file and live in
test_app.py; these run on ``memory://``, where every id is unknown.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

MEMORY = {"GRANTFLOW_DB": "memory://", "GRANTFLOW_ACTOR": "staff", "GRANTFLOW_ROLE": "purchaser"}


def test_bad_rows_are_reported_with_row_numbers(run: Any, tmp_path: Path) -> None:
    """Missing ids, duplicates and short rows are reported by row; the rest are processed."""
    (tmp_path / "in.csv").write_text(
        "project_id,reason\np-1,ok\n,no id\np-1,again\np-2,\np-3,ok,extra\n", encoding="utf-8"
    )
    done = run("bulk", "in.csv", "approve", "--report", "out.json", env=MEMORY)
    assert done.returncode == 1
    report = json.loads((tmp_path / "out.json").read_text("utf-8"))
    rows = [(i["row"], i["status"], i["project_id"]) for i in report["items"]]
    assert rows == [
        (2, "not_found", "p-1"),
        (3, "invalid", None),
        (4, "invalid", "p-1"),
        (5, "not_found", "p-2"),
        (6, "invalid", None),
    ]
    assert report["counts"] == {"invalid": 3, "not_found": 2}
    assert report["items"][2]["error"] == "duplicate project id p-1 (first on row 2)"


def test_csv_report_and_plain_summary(run: Any, tmp_path: Path) -> None:
    """A .csv report has one line per row; the plain summary counts and lists failures."""
    (tmp_path / "in.jsonl").write_text('{"id": "p-1"}\n{"id": 5}\n', encoding="utf-8")
    done = run("bulk", "in.jsonl", "approve", "--report", "out.csv", env=MEMORY)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == "approve: 1 invalid, 1 not_found"
    assert "2\t\tinvalid\tid must be a string, not a number" in done.stdout
    with (tmp_path / "out.csv").open(encoding="utf-8") as report:
        lines = list(csv.reader(report))
    assert lines[0] == ["row", "project_id", "status", "state", "refusals", "error"]
    assert [line[:3] for line in lines[1:]] == [["1", "p-1", "not_found"], ["2", "", "invalid"]]


def test_json_output_has_counts_items_and_encoding(run: Any, tmp_path: Path) -> None:
    """``--json`` prints the whole result, including the detected encoding and warnings."""
    (tmp_path / "in.csv").write_bytes("project_id,原因\np-1,齐全\n".encode("gbk"))
    done = run("bulk", "in.csv", "approve", "--json", env=MEMORY)
    assert done.returncode == 1
    out = json.loads(done.stdout)
    assert out["encoding"] == "gb18030"
    assert out["counts"] == {"not_found": 1}
    assert out["ok"] is False
    assert "GB18030" in out["warnings"][0]
    assert done.stderr.startswith("warning:")


def test_unreadable_files_exit_2_before_anything_runs(run: Any, tmp_path: Path) -> None:
    """A missing file, an undecodable one or one without an id column is a usage error."""
    (tmp_path / "bin.csv").write_bytes(b"project_id\np\xff\xff\n")
    (tmp_path / "noid.csv").write_text("name\nx\n", encoding="utf-8")
    for name, message in [
        ("missing.csv", "no such file"),
        ("bin.csv", "cannot decode the file"),
        ("noid.csv", "no project_id or id column"),
    ]:
        done = run("bulk", name, "approve", env=MEMORY)
        assert done.returncode == 2, name
        assert message in done.stderr
        assert "Traceback" not in done.stderr


def test_bad_bulk_options_exit_2(run: Any, tmp_path: Path) -> None:
    """A report suffix other than .json/.csv, or workers on memory, are usage errors."""
    (tmp_path / "in.csv").write_text("id\np\n", encoding="utf-8")
    base = ("bulk", "in.csv", "approve")
    assert run(*base, "--report", "r.txt", env=MEMORY).returncode == 2
    assert run(*base, "--workers", "2", env=MEMORY).returncode == 2
    assert run(*base, "--chunk-size", "0", env=MEMORY).returncode == 2
