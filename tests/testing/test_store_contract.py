"""Tests for grantflow.testing.store_contract beyond running it (see tests/persistence)."""

from __future__ import annotations

import subprocess
import sys

from grantflow.testing.store_contract import StoreContract


def test_importing_grantflow_does_not_import_pytest() -> None:
    """Importing grantflow and its SQL store loads no pytest; only testing modules need it."""
    code = "import sys, grantflow, grantflow.persistence.sql; print('pytest' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_contract_covers_every_store_method() -> None:
    """Each method of the Store protocol is named in at least one contract test's body."""
    import inspect

    from grantflow.persistence import Store

    source = inspect.getsource(StoreContract)
    methods = [
        name for name in dir(Store) if not name.startswith("_") and callable(getattr(Store, name))
    ]
    missing = [name for name in methods if f".{name}(" not in source and name != "close"]
    assert missing == []
