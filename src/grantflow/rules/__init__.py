"""Rules: plain callables from an immutable `RuleContext` to a `Verdict`.

>>> from grantflow.rules import PASS, all_of, refuse, rule
>>> @rule
... def has_reason(ctx):
...     if ctx.evidence.get("reason"):
...         return PASS
...     return refuse("reason.missing", "a reason is required", "须说明理由")
>>> all_of(has_reason, has_reason)
all_of(has_reason, has_reason)
"""

from grantflow.models import Refusal, Verdict
from grantflow.rules._base import (
    PASS,
    ParseCache,
    Parsed,
    Rule,
    RuleContext,
    refuse,
    rule,
    rule_name,
)
from grantflow.rules._book import (
    ALL_EVENTS,
    BUILTIN_RECORD_KINDS,
    ENTRY_POINT_GROUP,
    RECORD_PREFIX,
    Effects,
    FactRequest,
    RuleBook,
)
from grantflow.rules._combinators import all_of, any_of, not_

__all__ = [
    "ALL_EVENTS",
    "BUILTIN_RECORD_KINDS",
    "ENTRY_POINT_GROUP",
    "Effects",
    "FactRequest",
    "PASS",
    "ParseCache",
    "Parsed",
    "RECORD_PREFIX",
    "Refusal",
    "Rule",
    "RuleBook",
    "RuleContext",
    "Verdict",
    "all_of",
    "any_of",
    "not_",
    "refuse",
    "rule",
    "rule_name",
]
