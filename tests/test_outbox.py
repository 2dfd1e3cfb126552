"""The outbox consumer (`Outbox`), its retry policy and the signed webhook deliverer."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import grantflow
from grantflow.errors import DeliveryError, InvalidInput, StoreError
from grantflow.outbox import (
    SIGNATURE_HEADER,
    DeliveryPolicy,
    DeliveryReport,
    Outbox,
    Webhook,
    body_of,
    sign,
    verify_signature,
)
from grantflow.persistence import OutboxMessage
from grantflow.rules import RuleBook

APPLICANT = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
SECRET = "whsec-test"  # noqa: S105 - a test key, not a credential


class Clock:
    """Epoch seconds that tests move by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _engine(projects: int = 3) -> grantflow.Engine:
    engine = grantflow.open(rules=RuleBook(), discover_rules=False)
    for i in range(projects):
        engine.submit(actor=APPLICANT, project_id=f"p-{i}")
    return engine


# -- a receiver on the loopback address ------------------------------------------------------


@dataclass
class Receiver:
    """A local HTTP server: records each request, answers from a script (then 200)."""

    url: str = ""
    script: list[Any] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> Any:
        with self.lock:
            return self.script.pop(0) if self.script else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1: a status code, or ("slow", seconds), per request."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answer = state.next_answer()
            with state.lock:
                state.requests.append((dict(self.headers.items()), body))
            if isinstance(answer, tuple):
                time.sleep(answer[1])
                answer = 200
            self.send_response(answer)
            if 300 <= answer < 400:
                self.send_header("Location", state.url + "/elsewhere")
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
    server.shutdown()
    server.server_close()
    thread.join(5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the consumer -----------------------------------------------------------------------------


def test_deliver_hands_every_entry_over_and_acknowledges_it() -> None:
    """Each committed entry is handed to the handler once, in commit order, then acked."""
    engine = _engine()
    seen: list[OutboxMessage] = []
    report = Outbox(engine).deliver(seen.append)
    assert report == DeliveryReport(delivered=3)
    assert [(m.project_id, m.seq, m.payload["event"]) for m in seen] == [
        ("p-0", 1, "submit"),
        ("p-1", 1, "submit"),
        ("p-2", 1, "submit"),
    ]
    assert [m.id for m in seen] == [
        e.hash for pid in ("p-0", "p-1", "p-2") for e in engine.history(pid)
    ]
    assert Outbox(engine).counts() == {"acked": 3}
    assert Outbox(engine).deliver(seen.append) == DeliveryReport()


def test_a_failing_handler_is_retried_with_exponential_backoff_then_dead() -> None:
    """Failures wait backoff * factor**(n-1) seconds; after max_attempts the message is dead."""
    engine = _engine(1)
    clock = Clock()
    policy = DeliveryPolicy(max_attempts=3, backoff=10, factor=3)
    consumer = Outbox(engine, policy=policy, clock=clock)
    calls: list[float] = []

    def broken(message: OutboxMessage) -> None:
        calls.append(clock.now)
        raise RuntimeError("receiver down")

    assert consumer.deliver(broken) == DeliveryReport(retried=1)
    clock.now += 9.9
    assert consumer.deliver(broken) == DeliveryReport()  # still backing off
    clock.now += 0.1
    assert consumer.deliver(broken) == DeliveryReport(retried=1)
    clock.now += 29.9
    assert consumer.deliver(broken) == DeliveryReport()
    clock.now += 0.1
    assert consumer.deliver(broken) == DeliveryReport(dead=1)
    assert calls == [1_700_000_000.0, 1_700_000_010.0, 1_700_000_040.0]
    (dead,) = consumer.messages(status="dead")
    assert (dead.attempts, dead.last_error) == (3, "RuntimeError: receiver down")
    assert consumer.redrive() == 1
    assert consumer.deliver(lambda m: None) == DeliveryReport(delivered=1)


def test_policy_delays_are_capped_and_checked() -> None:
    """delay() grows geometrically up to max_backoff; nonsense policies are refused."""
    policy = DeliveryPolicy(backoff=2, factor=2, max_backoff=60)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [2, 4, 8, 16, 32, 60, 60]
    with pytest.raises(InvalidInput):
        DeliveryPolicy(max_attempts=0)
    with pytest.raises(InvalidInput):
        DeliveryPolicy(factor=0.5)


def test_a_consumer_whose_lease_was_taken_over_counts_the_message_as_lost() -> None:
    """A slow consumer whose lease lapsed cannot acknowledge; the new holder does, once."""
    engine = _engine(1)
    clock = Clock()
    slow = Outbox(engine, owner="slow", clock=clock)
    fast = Outbox(engine, owner="fast", clock=clock)
    (message,) = slow.claim(lease=5)
    clock.now += 6
    assert [m.id for m in fast.claim(lease=5)] == [message.id]
    assert slow.ack([message]) == 0
    assert slow.fail(message, "too late") == "lost"
    assert fast.ack([message.id]) == 1
    assert fast.counts() == {"acked": 1}


def test_the_consumer_checks_its_arguments() -> None:
    """A store without an outbox, a bad limit or lease, a naive prune time are refused."""

    class NoOutbox:
        pass

    with pytest.raises(StoreError):
        Outbox(NoOutbox())  # type: ignore[arg-type]
    consumer = Outbox(_engine(0))
    with pytest.raises(InvalidInput):
        consumer.claim(0)
    with pytest.raises(InvalidInput):
        consumer.claim(1, lease=0)
    with pytest.raises(InvalidInput):
        consumer.prune(__import__("datetime").datetime(2026, 1, 1))


def test_listeners_stay_best_effort_beside_the_outbox() -> None:
    """A listener that raises loses its notification; the outbox still holds the entry."""
    failing: list[str] = []

    def listener(entry: grantflow.AuditEntry) -> None:
        failing.append(entry.project_id)
        raise RuntimeError("listener crashed")

    engine = grantflow.open(rules=RuleBook(), discover_rules=False, listeners=[listener])
    engine.submit(actor=APPLICANT, project_id="p-1")
    assert failing == ["p-1"]
    assert [m.project_id for m in Outbox(engine).messages()] == ["p-1"]


# -- signatures ------------------------------------------------------------------------------


def test_signatures_verify_and_reject_tampering_and_old_timestamps() -> None:
    """verify_signature accepts the signed body, refuses another body, key or stale time."""
    body = b'{"id":"abc"}'
    header = sign(SECRET, body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify_signature(SECRET, body, header, now=1_700_000_100)
    assert not verify_signature(SECRET, body + b" ", header, now=1_700_000_100)
    assert not verify_signature("other", body, header, now=1_700_000_100)
    assert not verify_signature(SECRET, body, header, now=1_700_000_301)
    assert not verify_signature(SECRET, body, "v1=abc", now=1_700_000_000)


# -- the webhook against a local receiver ----------------------------------------------------


def test_the_webhook_posts_signed_json_the_receiver_can_verify(receiver: Receiver) -> None:
    """Each message arrives as JSON with the id, topic, attempt and a valid signature."""
    engine = _engine(2)
    report = Outbox(engine).deliver(Webhook(receiver.url, SECRET))
    assert report == DeliveryReport(delivered=2)
    assert len(receiver.requests) == 2
    for (headers, body), entry in zip(
        receiver.requests, [engine.history("p-0")[0], engine.history("p-1")[0]], strict=True
    ):
        assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER])
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Grantflow-Message-Id"] == entry.hash
        assert headers["X-Grantflow-Topic"] == "audit"
        assert headers["X-Grantflow-Attempt"] == "1"
        sent = json.loads(body)
        assert sent["id"] == entry.hash
        assert sent["payload"] == entry.model_dump(mode="json")


def test_the_webhook_survives_server_errors_and_retries(receiver: Receiver) -> None:
    """A 5xx answer is a failed attempt; the retry after the backoff is delivered."""
    engine = _engine(1)
    clock = Clock()
    consumer = Outbox(engine, clock=clock, policy=DeliveryPolicy(backoff=1))
    receiver.script = [503, 500]
    hook = Webhook(receiver.url, SECRET, clock=clock)
    assert consumer.deliver(hook) == DeliveryReport(retried=1)
    clock.now += 1
    assert consumer.deliver(hook) == DeliveryReport(retried=1)
    clock.now += 2
    assert consumer.deliver(hook) == DeliveryReport(delivered=1)
    ids = {h["X-Grantflow-Message-Id"] for h, _ in receiver.requests}
    assert len(ids) == 1
    assert [h["X-Grantflow-Attempt"] for h, _ in receiver.requests] == ["1", "2", "3"]


def test_the_webhook_gives_up_on_a_slow_receiver_and_retries(receiver: Receiver) -> None:
    """A receiver slower than the timeout fails the attempt (not the consumer)."""
    engine = _engine(1)
    clock = Clock()
    consumer = Outbox(engine, clock=clock, policy=DeliveryPolicy(backoff=1))
    receiver.script = [("slow", 1.0)]
    hook = Webhook(receiver.url, SECRET, timeout=0.2)
    started = time.monotonic()
    assert consumer.deliver(hook) == DeliveryReport(retried=1)
    assert time.monotonic() - started < 0.9
    (message,) = consumer.messages()
    assert "timed out" in message.last_error
    clock.now += 1
    assert consumer.deliver(hook) == DeliveryReport(delivered=1)


def test_the_webhook_survives_a_refused_connection() -> None:
    """Nobody listening: the attempt fails with a DeliveryError, the message waits."""
    engine = _engine(1)
    hook = Webhook(f"http://127.0.0.1:{_closed_port()}/hook", SECRET, timeout=2)
    (message,) = Outbox(engine).messages()
    with pytest.raises(DeliveryError) as caught:
        hook(message)
    assert caught.value.message_id == message.id
    assert caught.value.status is None
    assert Outbox(engine).deliver(hook) == DeliveryReport(retried=1)
    assert Outbox(engine).counts() == {"pending": 1}


def test_the_webhook_does_not_follow_redirects(receiver: Receiver) -> None:
    """A 3xx answer is a failure: the signed body is never re-posted elsewhere."""
    engine = _engine(1)
    receiver.script = [307]
    (message,) = Outbox(engine).messages()
    with pytest.raises(DeliveryError) as caught:
        Webhook(receiver.url, SECRET)(message)
    assert caught.value.status == 307
    assert len(receiver.requests) == 1


def test_the_webhook_checks_url_secret_and_timeout() -> None:
    """Only http(s) URLs, a non-empty secret and a positive timeout; repr hides the secret."""
    with pytest.raises(InvalidInput):
        Webhook("file:///etc/passwd", SECRET)
    with pytest.raises(InvalidInput):
        Webhook("http://127.0.0.1/", "")
    with pytest.raises(InvalidInput):
        Webhook("http://127.0.0.1/", SECRET, timeout=0)
    assert SECRET not in repr(Webhook("http://127.0.0.1/", SECRET))


def test_the_body_is_canonical_json() -> None:
    """body_of: compact JSON with sorted keys, times in ISO-8601 UTC, the attempt number."""
    engine = _engine(1)
    (message,) = Outbox(engine).messages()
    body = body_of(message)
    assert (
        body
        == json.dumps(
            json.loads(body), ensure_ascii=False, sort_keys=True, separators=(",", ":")
        ).encode()
    )
    assert json.loads(body)["created_at"].endswith("Z")
