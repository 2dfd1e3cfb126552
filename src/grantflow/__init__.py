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
"""

from grantflow._engine import Engine
from grantflow._open import open
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
