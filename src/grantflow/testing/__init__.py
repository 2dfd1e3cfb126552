"""Testing helpers, part of the public API: strategies, a stateful harness, audit capture.

* `grantflow.testing.strategies`: Hypothesis strategies (lifecycles, actors, evidence,
  event sequences, projects, rule contexts).
* `LifecycleStateMachine`: a stateful harness that drives any engine and checks its
  invariants after every step.
* `capture_audit`: collect the audit entries an engine commits.
* `FrozenClock`: a clock you move by hand.
* `StoreContract`: the contract suite a store backend subclasses (pytest).
* `grantflow.testing.plugin`: the pytest plugin (fixtures ``grantflow_engine``, ...),
  loaded automatically.

Hypothesis is imported only when the harness or the strategies are used, so the pytest
plugin costs nothing to load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from grantflow.testing._capture import capture_audit
from grantflow.testing._clock import FrozenClock

if TYPE_CHECKING:
    from grantflow.testing import strategies
    from grantflow.testing.harness import LifecycleStateMachine
    from grantflow.testing.store_contract import StoreContract

__all__ = ["FrozenClock", "LifecycleStateMachine", "StoreContract", "capture_audit", "strategies"]


def __getattr__(name: str) -> Any:
    # Lazy, so that loading the pytest plugin never imports Hypothesis.
    # import_module, not a from-import: that would ask this very __getattr__ again.
    if name == "LifecycleStateMachine":
        return importlib.import_module("grantflow.testing.harness").LifecycleStateMachine
    if name == "StoreContract":
        return importlib.import_module("grantflow.testing.store_contract").StoreContract
    if name == "strategies":
        return importlib.import_module("grantflow.testing.strategies")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
