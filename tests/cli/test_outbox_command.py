"""``grantflow outbox``: webhook delivery that survives a SIGKILL, and the dead letters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import grantflow
from grantflow.outbox import SIGNATURE_HEADER, Outbox, verify_signature
from grantflow.rules import RuleBook

APPLICANT = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
SECRET = "cli-test-key"  # noqa: S105 - a test key, not a credential
MESSAGES = 20
BLOCK_AT = 8  # the receiver holds the 8th request until the consumer is killed


class Receiver:
    """Records the message ids it receives (signature checked); can hold one request."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.bad_signatures = 0
        self.block_at: int | None = None
        self.blocked = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.url = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 that verifies signatures."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if not verify_signature(SECRET, body, self.headers[SIGNATURE_HEADER]):
                state.bad_signatures += 1
            with state.lock:
                state.ids.append(json.loads(body)["id"])
                count = len(state.ids)
            if count == state.block_at:
                state.blocked.set()
                state.release.wait(30)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A SQLite database holding MESSAGES committed entries (one submission each)."""
    url = f"sqlite:///{tmp_path / 'grants.db'}"
    with grantflow.open(url, rules=RuleBook(), discover_rules=False) as engine:
        for i in range(MESSAGES):
            engine.submit(actor=APPLICANT, project_id=f"p-{i:02d}")
    return url


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTFLOW_")}
    return {**env, "PYTHONIOENCODING": "utf-8", "no_proxy": "*", "NO_PROXY": "*"}


def _deliver(url: str, db: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "grantflow",
        "outbox",
        "deliver",
        "--url",
        url,
        "--secret",
        SECRET,
        "--db",
        db,
        "--batch",
        "10",
        "--lease",
        "600",
        "--json",
        *extra,
    ]


def test_a_consumer_killed_mid_batch_loses_nothing_and_acks_once(
    receiver: Receiver, db: str
) -> None:
    """SIGKILL while a batch is in flight: every message arrives, each is acked exactly once.

    The receiver holds the 8th request and the consumer is killed meanwhile: seven
    messages are acknowledged, three stay leased to the dead process. A second consumer
    takes them over at once (the holder is provably dead, the 600 s lease notwithstanding)
    and delivers the other thirteen, the 8th again: at least once, never lost, and the
    acknowledgements add up to exactly one per message.
    """
    receiver.block_at = BLOCK_AT
    first = subprocess.Popen(
        _deliver(receiver.url, db),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert receiver.blocked.wait(60), "the consumer never reached the 8th message"
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.wait(30)
    receiver.release.set()
    with grantflow.open(db, rules=RuleBook(), discover_rules=False) as engine:
        acked_by_first = Outbox(engine).counts().get("acked", 0)
        leased = [m.id for m in Outbox(engine).messages(status="pending")]
    assert acked_by_first == BLOCK_AT - 1
    done = subprocess.run(
        _deliver(receiver.url, db),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout)
    assert second["delivered"] == MESSAGES - acked_by_first
    assert acked_by_first + second["delivered"] == MESSAGES  # one ack per message
    with grantflow.open(db, rules=RuleBook(), discover_rules=False) as engine:
        heads = {e.hash for i in range(MESSAGES) for e in engine.history(f"p-{i:02d}")}
        consumer = Outbox(engine)
        assert consumer.counts() == {"acked": MESSAGES}
        assert consumer.ack(sorted(heads)) == 0  # nothing is left to acknowledge
    assert set(receiver.ids) == heads  # every message delivered at least once
    assert receiver.ids.count(leased[0]) == 2  # the one in flight, delivered twice
    assert len(receiver.ids) == MESSAGES + 1
    assert receiver.bad_signatures == 0


@pytest.mark.slow
def test_failures_go_to_the_dead_letters_and_come_back(run: Any, tmp_path: Path) -> None:
    """Nobody listening: --max-attempts 1 dead-letters; list, redrive, status, prune."""
    url = f"sqlite:///{tmp_path / 'grants.db'}"
    with grantflow.open(url, rules=RuleBook(), discover_rules=False) as engine:
        engine.submit(actor=APPLICANT, project_id="p-1")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"GRANTFLOW_DB": url, "GRANTFLOW_WEBHOOK_SECRET": SECRET, "no_proxy": "*"}
    done = run(
        "outbox",
        "deliver",
        "--url",
        f"http://127.0.0.1:{port}/",
        "--max-attempts",
        "1",
        "--timeout",
        "2",
        "--json",
        env=env,
    )
    assert done.returncode == 1
    assert json.loads(done.stdout) == {
        "delivered": 0,
        "retried": 0,
        "dead": 1,
        "lost": 0,
        "pending": 0,
        "dead_letters": 1,
    }
    listed = run("outbox", "list", "--status", "dead", env=env)
    header, row = listed.stdout.splitlines()
    assert header.split("\t") == [
        "id",
        "topic",
        "project",
        "seq",
        "status",
        "attempts",
        "last_error",
    ]
    assert row.split("\t")[1:6] == ["audit", "p-1", "1", "dead", "1"]
    assert "not reached" in row
    assert json.loads(run("outbox", "redrive", "--json", env=env).stdout) == {"redriven": 1}
    assert json.loads(run("outbox", "status", "--json", env=env).stdout) == {
        "pending": 1,
        "acked": 0,
        "dead": 0,
    }
    pruned = run("outbox", "prune", "--before", "2999-01-01T00:00:00Z", "--json", env=env)
    assert json.loads(pruned.stdout) == {"pruned": 0}
