"""The exception tree: every error grantflow raises derives from `GrantflowError`.

```
GrantflowError                    project_id, event, state on every error
├── LifecycleDefinitionError      a lifecycle that cannot work (offender named)
├── RuleDefinitionError           a rule or rule plug-in that cannot be loaded
├── ProjectNotFound               no project with that id
├── ProjectExists                 submit with an id already taken
├── UnknownEvent                  an event the lifecycle does not define
├── TransitionRefused             raised by `Outcome.raise_for_refusal()`; carries refusals
├── ConcurrencyError              another writer changed the project first
├── InvalidInput                  bad input; names the field (and row, in bulk)
├── CalendarUnavailable           a working day asked of a year with no calendar data
├── EvidenceError                 a signature, proof or audit log that does not hold
├── DeliveryError                 an outbox message could not be delivered (will be retried)
├── StoreError                    the database failed or is unusable
│   └── SchemaVersionError        the database schema is older/newer than this code
└── IdempotencyError              a bulk idempotency key was misused
    ├── IdempotencyKeyMismatch    same key, different input
    └── IdempotencyKeyInUse       same key, another run still holds it
```

Catch `GrantflowError` to handle all of them; the context fields say which project,
event and state an error concerns (each may be ``None`` when it does not apply).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grantflow.models import Refusal

__all__ = [
    "CalendarUnavailable",
    "ConcurrencyError",
    "DeliveryError",
    "EvidenceError",
    "GrantflowError",
    "IdempotencyError",
    "IdempotencyKeyInUse",
    "IdempotencyKeyMismatch",
    "InvalidInput",
    "LifecycleDefinitionError",
    "ProjectExists",
    "ProjectNotFound",
    "RuleDefinitionError",
    "SchemaVersionError",
    "StoreError",
    "TransitionRefused",
    "UnknownEvent",
]


class GrantflowError(Exception):
    """Base of every grantflow error; carries the project, event and state it concerns."""

    def __init__(
        self,
        message: str,
        *,
        project_id: str | None = None,
        event: str | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.project_id = project_id
        self.event = event
        self.state = state

    def context(self) -> dict[str, Any]:
        """Return the context fields as a dict, for structured logs."""
        return {"project_id": self.project_id, "event": self.event, "state": self.state}


class LifecycleDefinitionError(GrantflowError):
    """A lifecycle definition is inconsistent; `offender` names the state or event at fault."""

    def __init__(self, message: str, *, offender: str | None = None) -> None:
        super().__init__(message)
        self.offender = offender


class RuleDefinitionError(GrantflowError):
    """A rule, rule book or `grantflow.rules` entry point cannot be used."""


class ProjectNotFound(GrantflowError):  # noqa: N818 - reads better than ProjectNotFoundError
    """No project has the given id."""


class ProjectExists(GrantflowError):  # noqa: N818
    """A project with the given id already exists."""


class UnknownEvent(GrantflowError):  # noqa: N818
    """The event is not defined by the engine's lifecycle."""


class TransitionRefused(GrantflowError):  # noqa: N818
    """A transition was refused; `refusals` lists every rule that said no and why."""

    def __init__(
        self,
        message: str,
        *,
        refusals: Sequence[Refusal],
        project_id: str | None = None,
        event: str | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(message, project_id=project_id, event=event, state=state)
        self.refusals: tuple[Refusal, ...] = tuple(refusals)


class ConcurrencyError(GrantflowError):
    """Another writer changed the project between read and write; nothing was written."""

    def __init__(
        self,
        message: str,
        *,
        project_id: str | None = None,
        event: str | None = None,
        state: str | None = None,
        expected_version: int | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message, project_id=project_id, event=event, state=state)
        self.expected_version = expected_version
        self.index = index


class InvalidInput(GrantflowError):  # noqa: N818
    """Input failed validation; `field` names it, `row` gives its position in bulk input."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        row: int | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
        project_id: str | None = None,
        event: str | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(message, project_id=project_id, event=event, state=state)
        self.field = field
        self.row = row
        self.errors: tuple[Mapping[str, Any], ...] = tuple(errors)


class EvidenceError(GrantflowError):
    """Evidence does not hold: a bad signature, or a log position that is gone or altered.

    `position` is the audit log position concerned, `seq` the entry of the project's
    chain, when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        position: int | None = None,
        project_id: str | None = None,
        seq: int | None = None,
    ) -> None:
        super().__init__(message, project_id=project_id)
        self.position = position
        self.seq = seq


class DeliveryError(GrantflowError):
    """An outbox message was not delivered: the receiver failed, was too slow or unreachable.

    `message_id` names the message; `status` is the HTTP status when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        message_id: str,
        status: int | None = None,
        project_id: str | None = None,
    ) -> None:
        super().__init__(message, project_id=project_id)
        self.message_id = message_id
        self.status = status


class CalendarUnavailable(GrantflowError):  # noqa: N818
    """The working-day calendar has no data for `year` (official or from the policy)."""

    def __init__(self, message: str, *, year: int) -> None:
        super().__init__(message)
        self.year = year


class StoreError(GrantflowError):
    """The database failed, or is not usable by grantflow."""


class SchemaVersionError(StoreError):
    """The database schema version differs from the one this grantflow expects."""

    def __init__(self, message: str, *, found: int | None, expected: int) -> None:
        super().__init__(message)
        self.found = found
        self.expected = expected


class IdempotencyError(GrantflowError):
    """Base of errors about bulk idempotency keys."""

    def __init__(self, message: str, *, key: str, event: str | None = None) -> None:
        super().__init__(message, event=event)
        self.key = key


class IdempotencyKeyMismatch(IdempotencyError):  # noqa: N818
    """The idempotency key was used before with different input."""


class IdempotencyKeyInUse(IdempotencyError):  # noqa: N818
    """Another run holds this idempotency key right now."""
