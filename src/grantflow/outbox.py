"""The durable outbox: every committed audit entry, delivered at least once, acknowledged once.

A store with an outbox (memory, SQLite, PostgreSQL) writes one message per committed
audit entry in the entry's own transaction, so no commit is ever without its message
and no message without its commit. `Outbox` is the consumer side: claim a batch with a
lease, hand each message to a handler, acknowledge what was delivered, give failures
back for a retry with exponential backoff, and send a message to the dead letters once
`DeliveryPolicy.max_attempts` attempts are spent. `Webhook` is a handler that posts
each message as JSON with an HMAC-SHA256 signature (`sign`, `verify_signature`).

>>> import grantflow
>>> from grantflow.outbox import Outbox
>>> engine = grantflow.open(rules=grantflow.RuleBook())
>>> applicant = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
>>> _ = engine.submit(actor=applicant, project_id="p-1")
>>> seen = []
>>> Outbox(engine).deliver(lambda message: seen.append(message.payload["event"]))
DeliveryReport(delivered=1, retried=0, dead=0, lost=0)
>>> seen
['submit']

Delivery is at least once: a consumer that dies after delivering but before its
acknowledgement commits leaves the message to be delivered again (its lease lapses,
or at once when its process is provably gone). Receivers de-duplicate on
`OutboxMessage.id`, which never changes (an audit message's is its entry's hash).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from grantflow.errors import DeliveryError, InvalidInput, StoreError
from grantflow.persistence import MessageStatus, OutboxMessage, OutboxStore, owner_id

if TYPE_CHECKING:
    from grantflow._engine import Engine
    from grantflow.persistence import Store

__all__ = [
    "DeliveryPolicy",
    "DeliveryReport",
    "Handler",
    "Outbox",
    "OutboxMessage",
    "Release",
    "SIGNATURE_HEADER",
    "Webhook",
    "body_of",
    "sign",
    "verify_signature",
]

#: The request header carrying ``t=<unix seconds>,v1=<hex HMAC-SHA256>``.
SIGNATURE_HEADER = "X-Grantflow-Signature"
#: Delivers one message; raising (anything) means "not delivered, retry later".
Handler = Callable[[OutboxMessage], None]
#: What became of a failed message: retried later, dead-lettered, or no longer ours.
Release = Literal["retry", "dead", "lost"]


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How often and how patiently a message is retried before it goes to the dead letters.

    The n-th failed attempt waits ``min(max_backoff, backoff * factor ** (n - 1))``
    seconds before the next one; after `max_attempts` attempts the message is dead
    (``grantflow outbox redrive`` brings dead messages back).
    """

    max_attempts: int = 8
    backoff: float = 2.0
    factor: float = 2.0
    max_backoff: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidInput("max_attempts must be at least 1", field="max_attempts")
        if self.backoff < 0 or self.factor < 1 or self.max_backoff < 0:
            raise InvalidInput(
                "backoff and max_backoff must be >= 0 and factor >= 1", field="backoff"
            )

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        return float(min(self.max_backoff, self.backoff * self.factor ** max(attempts - 1, 0)))


@dataclass(slots=True)
class DeliveryReport:
    """What one `Outbox.deliver` call did.

    Attributes:
        delivered: handled and acknowledged.
        retried: failed, given back for a later attempt.
        dead: failed for the last allowed time: now dead letters.
        lost: handled, but the lease had been taken over meanwhile (another consumer
            owns the message now; it will be delivered again, and acknowledged once).
    """

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0


class Outbox:
    """The consumer side of a store's outbox.

    Args:
        source: an engine or a store with an outbox (`OutboxStore`).
        owner: this consumer's name for its leases (default ``host:pid:nonce``, which
            lets another consumer on this host take over at once if this process dies).
        policy: retries and dead letters.
        clock: epoch seconds (`time.time`); tests move it.
    """

    def __init__(
        self,
        source: Engine | Store,
        *,
        owner: str | None = None,
        policy: DeliveryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        store = getattr(source, "store", source)
        if not isinstance(store, OutboxStore):
            raise StoreError(f"{type(store).__name__} has no outbox (it is no OutboxStore)")
        self._store: OutboxStore = store
        self.owner = owner or owner_id()
        self.policy = policy or DeliveryPolicy()
        self._clock = clock

    def __repr__(self) -> str:
        return f"Outbox(owner={self.owner!r}, policy={self.policy!r})"

    # -- one step at a time ----------------------------------------------------------------

    def claim(self, limit: int = 100, *, lease: float = 60.0) -> list[OutboxMessage]:
        """Lease up to `limit` messages to this consumer for `lease` seconds, oldest first."""
        if not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be between 1 and 10000", field="limit")
        if lease <= 0:
            raise InvalidInput("lease must be positive", field="lease")
        return self._store.outbox_claim(
            self.owner,
            limit=limit,
            now=self._clock(),
            lease=lease,
            max_attempts=self.policy.max_attempts,
        )

    def ack(self, messages: Iterable[OutboxMessage | str]) -> int:
        """Acknowledge delivered messages; return how many were still this consumer's."""
        ids = [m if isinstance(m, str) else m.id for m in messages]
        return self._store.outbox_ack(self.owner, ids, now=self._clock())

    def fail(self, message: OutboxMessage, error: str) -> Release:
        """Give a failed message back: ``retry`` later, ``dead`` letter, or ``lost`` lease."""
        if message.attempts >= self.policy.max_attempts:
            retry_at = None
        else:
            retry_at = self._clock() + self.policy.delay(message.attempts)
        released = self._store.outbox_release(
            self.owner, message.id, error=error, retry_at=retry_at
        )
        if not released:
            return "lost"
        return "dead" if retry_at is None else "retry"

    # -- the loop ------------------------------------------------------------------------

    def deliver(
        self,
        handler: Handler,
        *,
        limit: int = 100,
        lease: float = 60.0,
        max_batches: int | None = None,
    ) -> DeliveryReport:
        """Claim and deliver batches until none is available (or `max_batches` ran).

        Each message is acknowledged right after `handler` returns, so a crash
        re-delivers at most the message in hand. A handler that raises fails the
        message (retry with backoff, or dead letter); the others go on. Messages
        waiting for their backoff are not waited for: call again later (``grantflow
        outbox deliver --follow`` polls).
        """
        report = DeliveryReport()
        batches = 0
        while max_batches is None or batches < max_batches:
            batch = self.claim(limit, lease=lease)
            if not batch:
                break
            batches += 1
            for message in batch:
                try:
                    handler(message)
                except Exception as exc:  # any failure of the handler: not delivered
                    verdict = self.fail(message, _describe(exc))
                    if verdict == "retry":
                        report.retried += 1
                    elif verdict == "dead":
                        report.dead += 1
                    else:
                        report.lost += 1
                    continue
                if self.ack([message]):
                    report.delivered += 1
                else:
                    report.lost += 1
        return report

    # -- inspection and maintenance ------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Messages per status (``pending``, ``acked``, ``dead``)."""
        return self._store.outbox_counts()

    def messages(
        self, *, status: MessageStatus | None = None, limit: int = 100
    ) -> list[OutboxMessage]:
        """Up to `limit` messages (of `status`), oldest first."""
        return self._store.outbox_messages(status=status, limit=limit)

    def redrive(self, ids: Iterable[str] | None = None) -> int:
        """Make dead messages (all, or `ids`) pending again with fresh attempts."""
        return self._store.outbox_redrive(None if ids is None else list(ids))

    def prune(self, before: datetime) -> int:
        """Delete messages acknowledged before `before` (timezone-aware)."""
        if not isinstance(before, datetime) or before.tzinfo is None:
            raise InvalidInput("before must be a timezone-aware datetime", field="before")
        return self._store.outbox_prune(before)


# -- webhooks ------------------------------------------------------------------------------


def body_of(message: OutboxMessage) -> bytes:
    """The JSON body a webhook posts: compact, keys sorted, UTF-8."""
    return json.dumps(
        message.to_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":")
    ).encode()


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The signature header value: ``t=<timestamp>,v1=<hex HMAC-SHA256(secret, "t.body")>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: str | bytes,
    body: bytes,
    header: str,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether `header` signs `body` with `secret`, made within `tolerance` seconds of `now`.

    >>> header = sign("s3cret", b'{"id":"x"}', 1_700_000_000)
    >>> verify_signature("s3cret", b'{"id":"x"}', header, now=1_700_000_060)
    True
    >>> verify_signature("s3cret", b'{"id":"y"}', header, now=1_700_000_060)
    False
    """
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    stamp = fields.get("t", "")
    if not stamp.isdigit() or "v1" not in fields:
        return False
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance:
        return False
    expected = sign(secret, body, int(stamp)).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields["v1"])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a delivery: never follow one with the signed body."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Webhook:
    """A handler posting each message as signed JSON; raises `DeliveryError` unless 2xx.

    Headers: ``Content-Type: application/json``, `SIGNATURE_HEADER`
    (``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>``),
    ``X-Grantflow-Message-Id`` (the de-duplication id), ``X-Grantflow-Topic`` and
    ``X-Grantflow-Attempt``. Redirects are not followed; a timeout, a refused
    connection or any status but 2xx is a failed attempt.
    """

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInput("the webhook URL must be http:// or https://", field="url")
        if not secret:
            raise InvalidInput("the webhook needs a secret to sign with", field="secret")
        if timeout <= 0:
            raise InvalidInput("timeout must be positive", field="timeout")
        self.url = url
        self._secret = secret
        self._timeout = timeout
        self._headers = dict(headers or {})
        self._clock = clock
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:
        return f"Webhook({self.url!r})"  # never the secret

    def __call__(self, message: OutboxMessage) -> None:
        """Post `message`; return on 2xx, raise `DeliveryError` otherwise."""
        body = body_of(message)
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "User-Agent": "grantflow-outbox",
            SIGNATURE_HEADER: sign(self._secret, body, int(self._clock())),
            "X-Grantflow-Message-Id": message.id,
            "X-Grantflow-Topic": message.topic,
            "X-Grantflow-Attempt": str(message.attempts),
        }
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked in __init__
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise DeliveryError(
                f"{self.url} answered {exc.code}",
                message_id=message.id,
                status=exc.code,
                project_id=message.project_id,
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(
                f"{self.url} not reached: {reason}",
                message_id=message.id,
                project_id=message.project_id,
            ) from None
        if not 200 <= status < 300:
            raise DeliveryError(
                f"{self.url} answered {status}",
                message_id=message.id,
                status=status,
                project_id=message.project_id,
            )


def _describe(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
    return text[:2000]
