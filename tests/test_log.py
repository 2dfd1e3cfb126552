"""Tests for grantflow._log: silent by default, cheap when disabled, visible when asked."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import grantflow
from grantflow import Actor
from grantflow._log import LOGGER_NAME, Logger, get_logger, log_to_console
from grantflow.rules import RuleBook, RuleContext, Verdict, rule

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
PURCHASER = Actor(id="staff-1", roles=frozenset({"purchaser"}))

# A new user's script: 2,000 transitions (single fires and a bulk run, on SQLite), a rule
# that raises and a listener that raises, and no logging configuration at all.
SCRIPT = textwrap.dedent(
    """
    import sys
    import grantflow
    from grantflow import Actor
    from grantflow.rules import RuleBook, rule

    @rule
    def broken(ctx):
        raise RuntimeError("rule bug")

    def angry(entry):
        raise RuntimeError("listener bug")

    applicant = Actor(id="org-1", roles=frozenset({"applicant"}))
    purchaser = Actor(id="staff-1", roles=frozenset({"purchaser"}))
    book = RuleBook().on("approve", broken)
    with grantflow.open(sys.argv[1], rules=book, listeners=[angry]) as engine:
        ids = [engine.submit(actor=applicant).project_id for _ in range(10)]
        for pid in ids:
            engine.fire(pid, "approve", actor=purchaser)
        ids += [f"p{n}" for n in range(990)]
        engine.fire_many("submit", [(pid, {"n": 1}) for pid in ids[10:]], actor=applicant)
        engine.fire_many("reject", [(pid, {"reason": "late"}) for pid in ids], actor=purchaser)
    """
)


@pytest.fixture
def grantflow_logger() -> Iterator[logging.Logger]:
    """The grantflow stdlib logger, with its level and handlers restored after the test."""
    logger = logging.getLogger(LOGGER_NAME)
    level, handlers = logger.level, list(logger.handlers)
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


def test_a_script_firing_2000_transitions_prints_nothing(tmp_path: Path) -> None:
    """Without any logging configuration, grantflow writes nothing to stdout or stderr."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), f"sqlite:///{tmp_path / 'grants.db'}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_the_grantflow_logger_has_a_null_handler_and_no_level() -> None:
    """The library adds a NullHandler (no last-resort output) and leaves the level to the host."""
    logger = logging.getLogger(LOGGER_NAME)
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)
    assert logger.level == logging.NOTSET


def test_a_disabled_level_builds_no_record(grantflow_logger: logging.Logger) -> None:
    """Below the logger's level no LogRecord is made: the event values are never touched."""
    made: list[logging.LogRecord] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record)
        return record

    grantflow_logger.setLevel(logging.WARNING)
    logging.setLogRecordFactory(counting)
    try:
        log = get_logger().bind(run="r1")
        log.info("grantflow.audit", project_id="p-1")
        log.debug("grantflow.retry", project_id="p-1")
        assert made == []
        log.warning("grantflow.rule_error", rule="r")
    finally:
        logging.setLogRecordFactory(factory)
    assert [r.getMessage() for r in made] == ["grantflow.rule_error run='r1' rule='r'"]


def test_the_host_sees_structured_audit_records(
    grantflow_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """Once the host enables INFO, each audit entry is a record with the fields as attributes."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    with grantflow.open(rules=RuleBook()) as engine:
        pid = engine.submit(actor=APPLICANT).project_id
        engine.fire(pid, "sign", actor=PURCHASER)
    audit = [r for r in caplog.records if getattr(r, "event", None) == "grantflow.audit"]
    assert [(r.transition, r.accepted) for r in audit] == [("submit", True), ("sign", False)]  # type: ignore[attr-defined]
    assert audit[1].refusals == ["lifecycle.no_edge"]  # type: ignore[attr-defined]
    assert audit[1].getMessage().startswith(f"grantflow.audit project_id={pid!r} seq=2 ")


def test_a_raising_rule_is_logged_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A rule that raises refuses the transition and logs grantflow.rule_error."""

    @rule
    def broken(ctx: RuleContext) -> Verdict:
        raise RuntimeError("bug")

    with grantflow.open(rules=RuleBook().on("approve", broken)) as engine:
        pid = engine.submit(actor=APPLICANT).project_id
        assert not engine.fire(pid, "approve", actor=PURCHASER).accepted
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [getattr(r, "event", None) for r in warnings] == ["grantflow.rule_error"]


def test_field_names_of_log_records_are_kept_apart(grantflow_logger: logging.Logger) -> None:
    """A field named like a LogRecord attribute is passed with a prefix, never an error."""
    stream = io.StringIO()
    undo = log_to_console(logging.DEBUG, stream)
    try:
        Logger(grantflow_logger).info("e", name="x", event="y")
    finally:
        undo()
    assert stream.getvalue() == "INFO e name='x' event='y'\n"


def test_log_to_console_shows_events_and_undo_restores(
    grantflow_logger: logging.Logger,
) -> None:
    """The application hook prints from its level up on the stream; undo removes it."""
    stream = io.StringIO()
    undo = log_to_console(logging.WARNING, stream)
    get_logger().info("hidden")
    get_logger().warning("shown", n=1)
    undo()
    get_logger().warning("after")
    assert stream.getvalue() == "WARNING shown n=1\n"
    assert grantflow_logger.level == logging.NOTSET


def test_bulk_runs_log_one_record_per_committed_chunk(
    grantflow_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """fire_many logs a grantflow.audit_batch record per chunk, every entry in it.

    Regression: a record per item made the audit log cost about a third of a bulk run
    with a file handler; a chunk's record keeps every entry's fields and a line each.
    """
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    with grantflow.open(rules=RuleBook()) as engine:
        items = [(f"p{n}", {"n": n}) for n in range(5)]
        engine.fire_many("submit", items, actor=APPLICANT, chunk_size=2)
    batches = [r for r in caplog.records if getattr(r, "event", None) == "grantflow.audit_batch"]
    assert [r.count for r in batches] == [2, 2, 1]  # type: ignore[attr-defined]
    fields = [e for r in batches for e in r.entries]  # type: ignore[attr-defined]
    assert [(e["project_id"], e["seq"], e["to_state"]) for e in fields] == [
        (f"p{n}", 1, "applied") for n in range(5)
    ]
    assert all(f["hash"] and f["accepted"] and f["transition"] == "submit" for f in fields)
    lines = batches[0].getMessage().splitlines()
    assert lines[0].startswith("grantflow.audit_batch transition='submit' count=2 entries=")
    assert [line.split()[0] for line in lines[1:]] == ["p0", "p1"]
    assert not [r for r in caplog.records if getattr(r, "event", None) == "grantflow.audit"]
