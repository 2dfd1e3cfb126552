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


def test_a_key_naming_no_record_kind_is_refused_with_the_key_as_its_event() -> None:
    """``record.`` names no kind; ``record.review`` does."""
    with pytest.raises(RuleDefinitionError) as exc:
        RuleBook().on("record.", _ok)
    assert exc.value.message == "'record.' names no record kind"
    assert exc.value.event == "record."
    assert RuleBook().on("record.review", _ok).rules_for("record.review") == (_ok,)


def test_a_rule_that_is_not_callable_is_refused_naming_its_event() -> None:
    """``on`` refuses anything but a callable, with the event it was given."""
    with pytest.raises(RuleDefinitionError) as exc:
        RuleBook().on("approve", "review.quorum")  # type: ignore[arg-type]
    assert exc.value.message == "rule for 'approve' is not callable: 'review.quorum'"
    assert exc.value.event == "approve"


def test_facts_for_a_string_of_events_are_refused_naming_the_string() -> None:
    """``provide(events="approve")`` is a mistake for ``["approve"]``: refused, with it."""
    with pytest.raises(RuleDefinitionError) as exc:
        RuleBook().provide("people", lambda request: {}, events="approve")
    assert exc.value.event == "approve"
    assert "not the string 'approve'" in exc.value.message


def test_declared_kinds_are_written_directly_unless_effect_owned() -> None:
    """``declare_records`` alone leaves a kind open to `add_record`; ``effect_owned`` closes it."""
    book = RuleBook().declare_records("note")
    assert (book.record_kinds, book.reserved_kinds) == (frozenset({"note"}), frozenset())
    book.declare_records("ledger", effect_owned=True)
    assert book.reserved_kinds == frozenset({"ledger"})


def test_a_rule_object_without_a_name_is_named_by_its_repr() -> None:
    """`rule` names a callable object with no ``__name__`` by its ``repr``."""
    from grantflow.rules import rule

    class Gate:
        def __call__(self, ctx: RuleContext) -> Verdict:
            return PASS

        def __repr__(self) -> str:
            return "Gate()"

    assert repr(rule(Gate())) == "Gate()"
    assert repr(rule(Gate(), name="gate")) == "gate"
