"""Tests for grantflow.rules._book: RuleBook registration and entry-point discovery."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from grantflow.errors import RuleDefinitionError
from grantflow.rules import ALL_EVENTS, PASS, RuleBook


def _always(ctx: object) -> object:
    return PASS


def test_rules_for_puts_all_event_rules_first() -> None:
    """Rules attached to every event run before the event's own rules."""

    def own(ctx: object) -> object:
        return PASS

    book = RuleBook().on("approve", own).on(ALL_EVENTS, _always)  # type: ignore[arg-type]
    assert book.rules_for("approve") == (_always, own)
    assert book.rules_for("sign") == (_always,)
    assert book.events() == ["*", "approve"]


def test_non_callable_rules_are_refused() -> None:
    """Registering something that is not callable raises RuleDefinitionError."""
    with pytest.raises(RuleDefinitionError, match="not callable"):
        RuleBook().on("approve", "quorum")  # type: ignore[arg-type]


def test_copy_is_independent() -> None:
    """Changing a book after copying it does not change the copy."""
    book = RuleBook().on("approve", _always)  # type: ignore[arg-type]
    copy = book.copy()
    book.on("approve", _always)  # type: ignore[arg-type]
    assert len(copy.rules_for("approve")) == 1
    assert len(book.rules_for("approve")) == 2


def _install_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, body: str
) -> None:
    (tmp_path / "gf_plugin_mod.py").write_text(textwrap.dedent(body))
    dist = tmp_path / "gf_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gf-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[grantflow.rules]\nplug = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "gf_plugin_mod", raising=False)


def test_entry_point_rule_books_are_discovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A RuleBook factory published under grantflow.rules is loaded and merged."""
    _install_plugin(
        tmp_path,
        monkeypatch,
        "gf_plugin_mod:make",
        """
        from grantflow.rules import RuleBook, refuse
        def no_sign(ctx):
            return refuse("plugin.no_sign", "never sign", "不得签约")
        def make():
            return RuleBook().on("sign", no_sign)
        """,
    )
    book = RuleBook.from_entry_points()
    assert [r.__name__ for r in book.rules_for("sign")] == ["no_sign"]  # type: ignore[attr-defined]


def test_broken_entry_points_raise_rule_definition_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plug-in that is not a RuleBook is refused with its name."""
    _install_plugin(tmp_path, monkeypatch, "gf_plugin_mod:thing", "thing = 42\n")
    with pytest.raises(RuleDefinitionError, match="'plug' gave int"):
        RuleBook.from_entry_points()
