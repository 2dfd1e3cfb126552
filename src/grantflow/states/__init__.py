"""Lifecycle definitions: the `Lifecycle` data type, diagrams, and the default lifecycle.

Examples:
    >>> from grantflow.states import PURCHASED_SERVICE
    >>> [s.name for s in PURCHASED_SERVICE.states if s.terminal]
    ['closed', 'rejected', 'withdrawn', 'terminated']
"""

from grantflow.states._diagram import to_dot, to_mermaid
from grantflow.states._lifecycle import EventDef, Lifecycle, StateDef
from grantflow.states._time import CONDITIONS, Duration, ObligationDef, TimerDef
from grantflow.states.purchased_service import (
    APPLICANT,
    EVALUATOR,
    PURCHASED_SERVICE,
    PURCHASER,
    REVIEWER,
)

__all__ = [
    "APPLICANT",
    "CONDITIONS",
    "Duration",
    "EVALUATOR",
    "EventDef",
    "Lifecycle",
    "ObligationDef",
    "PURCHASED_SERVICE",
    "PURCHASER",
    "REVIEWER",
    "StateDef",
    "TimerDef",
    "to_dot",
    "to_mermaid",
]
