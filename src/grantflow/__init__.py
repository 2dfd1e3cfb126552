"""grantflow: the lifecycle of purchased-service projects, with rules and an audit trail.

>>> import grantflow
>>> engine = grantflow.open(rules=grantflow.RuleBook())  # a bare engine: no default regime
>>> applicant = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
>>> outcome = engine.submit(actor=applicant, data={"title": "Skills for couriers"})
>>> outcome.accepted, outcome.state
(True, 'applied')

With the default regime (``grantflow.open()``), the same submission is refused until the
provider, hub and call exist and the application is complete:

>>> refused = grantflow.open().submit(actor=applicant, data={"title": "Skills for couriers"})
>>> refused.accepted, refused.refusals[0].code
(False, 'eligibility.application')

The names below load on first use (PEP 562), so ``import grantflow`` costs a few
milliseconds and a script pays only for what it touches.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grantflow._engine import Engine
    from grantflow._open import open
    from grantflow._query import ProjectPage
    from grantflow.audit import Checkpoint, VerifyReport
    from grantflow.errors import (
        ConcurrencyError,
        EvidenceError,
        GrantflowError,
        IdempotencyError,
        IdempotencyKeyInUse,
        IdempotencyKeyMismatch,
        InvalidInput,
        LifecycleDefinitionError,
        ProjectExists,
        ProjectNotFound,
        RuleDefinitionError,
        SchemaVersionError,
        StoreError,
        TransitionRefused,
        UnknownEvent,
    )
    from grantflow.models import (
        Actor,
        AuditEntry,
        Entity,
        Outcome,
        Project,
        Record,
        Refusal,
        Verdict,
    )
    from grantflow.policy import Policy
    from grantflow.rules import RuleBook, RuleContext
    from grantflow.states import PURCHASED_SERVICE, Lifecycle


__version__ = "0.1.0"

__all__ = [
    "Actor",
    "AuditEntry",
    "Checkpoint",
    "ConcurrencyError",
    "Engine",
    "Entity",
    "EvidenceError",
    "GrantflowError",
    "IdempotencyError",
    "IdempotencyKeyInUse",
    "IdempotencyKeyMismatch",
    "InvalidInput",
    "Lifecycle",
    "LifecycleDefinitionError",
    "Outcome",
    "PURCHASED_SERVICE",
    "Policy",
    "Project",
    "ProjectExists",
    "ProjectNotFound",
    "ProjectPage",
    "Record",
    "Refusal",
    "RuleBook",
    "RuleContext",
    "RuleDefinitionError",
    "SchemaVersionError",
    "StoreError",
    "TransitionRefused",
    "UnknownEvent",
    "Verdict",
    "VerifyReport",
    "open",
]

# Where each public name lives; read by __getattr__ on first use.
_ORIGIN = {
    "Actor": "grantflow.models",
    "AuditEntry": "grantflow.models",
    "Checkpoint": "grantflow.audit",
    "ConcurrencyError": "grantflow.errors",
    "Engine": "grantflow._engine",
    "Entity": "grantflow.models",
    "EvidenceError": "grantflow.errors",
    "GrantflowError": "grantflow.errors",
    "IdempotencyError": "grantflow.errors",
    "IdempotencyKeyInUse": "grantflow.errors",
    "IdempotencyKeyMismatch": "grantflow.errors",
    "InvalidInput": "grantflow.errors",
    "Lifecycle": "grantflow.states",
    "LifecycleDefinitionError": "grantflow.errors",
    "Outcome": "grantflow.models",
    "PURCHASED_SERVICE": "grantflow.states",
    "Policy": "grantflow.policy",
    "Project": "grantflow.models",
    "ProjectExists": "grantflow.errors",
    "ProjectNotFound": "grantflow.errors",
    "ProjectPage": "grantflow._query",
    "Record": "grantflow.models",
    "Refusal": "grantflow.models",
    "RuleBook": "grantflow.rules",
    "RuleContext": "grantflow.rules",
    "RuleDefinitionError": "grantflow.errors",
    "SchemaVersionError": "grantflow.errors",
    "StoreError": "grantflow.errors",
    "TransitionRefused": "grantflow.errors",
    "UnknownEvent": "grantflow.errors",
    "Verdict": "grantflow.models",
    "VerifyReport": "grantflow.audit",
    "open": "grantflow._open",
}


if not TYPE_CHECKING:  # type checkers see the imports above; an unknown name stays an error

    def __getattr__(name: str) -> Any:
        module = _ORIGIN.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later reads skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
