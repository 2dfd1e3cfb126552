"""RuleBook.check's errors word for word, and the order plug-in books are merged in.

`RuleBook.check` names what is attached where and carries the offending key as the
error's ``event``; `RuleBook.from_entry_points` merges plug-ins by entry-point name only,
so two of one name keep the order Python finds them in.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from grantflow.errors import RuleDefinitionError
from grantflow.models import Verdict
from grantflow.rules import ALL_EVENTS, PASS, RuleBook, RuleContext
from grantflow.states import PURCHASED_SERVICE, EventDef, Lifecycle, StateDef


def _ok(ctx: RuleContext) -> Verdict:
    return PASS


def _lifecycle(*names: str) -> Lifecycle:
    """A two-state lifecycle: `names[0]` creates, the others go from open to done."""
    states = (StateDef("open"), StateDef("done", terminal=True))
    events = (
        EventDef(names[0], (), "open", creates=True),
        *(EventDef(n, ("open",), "done") for n in names[1:]),
    )
    return Lifecycle(name="tiny", version="1", states=states, events=events)


def test_a_reserved_event_name_is_named_in_full_and_carried_as_the_event() -> None:
    """The message explains both reserved names; ``event`` is the lifecycle's offending event."""
    with pytest.raises(RuleDefinitionError) as exc:
        RuleBook().check(_lifecycle("start", "record.review"))
    assert exc.value.message == (
        "lifecycle 'tiny' uses the reserved name 'record.review' for an event "
        "('*' means every event, 'record.'<kind> adds a record)"
    )
    assert exc.value.event == "record.review"


def test_a_rule_on_an_unknown_event_is_called_a_rule() -> None:
    """The message says a *rule* is attached (facts and effects say fact, effect)."""
    with pytest.raises(RuleDefinitionError) as exc:
        RuleBook().on("aproove", _ok).check(PURCHASED_SERVICE)
    assert exc.value.message == (
        "a rule is attached to 'aproove', which lifecycle 'purchased-service' does not have; "
        "did you mean 'approve'?"
    )


def test_a_rule_for_all_events_does_not_end_the_check() -> None:
    """A rule on '*' is skipped, and the keys after it are still checked."""
    book = RuleBook().on(ALL_EVENTS, _ok).on("aproove", _ok)
    with pytest.raises(RuleDefinitionError, match="'aproove'") as exc:
        book.check(PURCHASED_SERVICE)
    assert exc.value.event == "aproove"


def test_an_undeclared_record_kind_is_named_with_the_method_that_declares_it() -> None:
    """The message names `RuleBook.declare_records`; ``event`` is the ``record.<kind>`` key."""
    with pytest.raises(RuleDefinitionError) as exc:
        RuleBook().on("record.reveiw", _ok).check(PURCHASED_SERVICE)
    assert exc.value.message == (
        "a rule is attached to 'record.reveiw', but record kind 'reveiw' is neither built in "
        "nor declared (RuleBook.declare_records); did you mean 'review'?"
    )
    assert exc.value.event == "record.reveiw"


def _dist(root: Path, dist: str, module: str, rule: str) -> None:
    """Install, under `root`, distribution `dist` publishing ``plug`` -> `module`:make."""
    root.mkdir()
    (root / f"{module}.py").write_text(
        textwrap.dedent(
            f"""
            from grantflow.rules import PASS, RuleBook, rule
            def make():
                return RuleBook().on("sign", rule(lambda ctx: PASS, name="{rule}"))
            """
        )
    )
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[grantflow.rules]\nplug = {module}:make\n")


def test_plug_ins_of_one_name_keep_the_order_they_are_found_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sorted by name only: of two ``plug`` entry points, the first on sys.path comes first.

    Their targets (``zz_mod:make`` before ``aa_mod:make``) play no part in the order.
    """
    _dist(tmp_path / "second", "gf_second", "aa_mod", "second.ok")
    _dist(tmp_path / "first", "gf_first", "zz_mod", "first.ok")
    monkeypatch.syspath_prepend(str(tmp_path / "second"))
    monkeypatch.syspath_prepend(str(tmp_path / "first"))
    for module in ("aa_mod", "zz_mod"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    book = RuleBook.from_entry_points()
    assert [repr(r) for r in book.rules_for("sign")] == ["first.ok", "second.ok"]
