"""Tests for grantflow.errors: one tree, context on every error."""

from __future__ import annotations

import inspect

from grantflow import errors
from grantflow.errors import (
    ConcurrencyError,
    GrantflowError,
    IdempotencyKeyMismatch,
    InvalidInput,
    SchemaVersionError,
    StoreError,
)


def test_every_error_derives_from_grantflow_error() -> None:
    """All exception classes in grantflow.errors are GrantflowError subclasses."""
    classes = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, BaseException)
    ]
    assert len(classes) == len(errors.__all__)
    assert all(issubclass(c, GrantflowError) for c in classes)


def test_errors_carry_context_fields() -> None:
    """Project, event and state are kept and offered as a dict."""
    exc = ConcurrencyError(
        "lost", project_id="p", event="sign", state="reviewed", expected_version=3
    )
    assert exc.context() == {"project_id": "p", "event": "sign", "state": "reviewed"}
    assert exc.expected_version == 3
    assert str(exc) == "lost"


def test_input_schema_and_idempotency_errors_carry_their_specifics() -> None:
    """InvalidInput names field and row; schema and key errors keep their values."""
    bad = InvalidInput("amount: not a number", field="amount", row=12)
    assert (bad.field, bad.row) == ("amount", 12)
    schema = SchemaVersionError("old", found=1, expected=2)
    assert isinstance(schema, StoreError)
    assert (schema.found, schema.expected) == (1, 2)
    assert IdempotencyKeyMismatch("k", key="job-1").key == "job-1"


def test_errors_docstring_draws_the_whole_tree() -> None:
    """The module docstring names every exception it exports."""
    doc = errors.__doc__ or ""
    assert all(name in doc for name in errors.__all__)
