"""Tests for RuleBook.check: a book attached to events or record kinds the lifecycle lacks."""

from __future__ import annotations

import pytest

import grantflow
from grantflow.errors import RuleDefinitionError
from grantflow.models import Verdict
from grantflow.rules import ALL_EVENTS, PASS, Effects, RuleBook, RuleContext
from grantflow.rules.default import default_rules
from grantflow.states import PURCHASED_SERVICE, EventDef, Lifecycle, StateDef


def _ok(ctx: RuleContext) -> Verdict:
    return PASS


def _nothing(ctx: RuleContext) -> Effects:
    return Effects()


def _lifecycle(*names: str) -> Lifecycle:
    """A two-state lifecycle: `names[0]` creates, the others go from open to done."""
    states = (StateDef("open"), StateDef("done", terminal=True))
    events = (
        EventDef(names[0], (), "open", creates=True),
        *(EventDef(n, ("open",), "done") for n in names[1:]),
    )
    return Lifecycle(name="tiny", version="1", states=states, events=events)


def test_a_rule_on_a_misspelled_event_is_refused_with_the_close_match() -> None:
    """A rule on 'aproove' is a RuleDefinitionError naming 'approve' (it would never run)."""
    book = RuleBook().on("aproove", _ok)
    with pytest.raises(RuleDefinitionError, match=r"'aproove'.*did you mean 'approve'\?") as exc:
        book.check(PURCHASED_SERVICE)
    assert exc.value.event == "aproove"


def test_the_engine_refuses_a_book_that_does_not_fit_its_lifecycle() -> None:
    """grantflow.open with a misspelled event fails when the engine is built, not later."""
    with pytest.raises(RuleDefinitionError, match="did you mean 'approve'"):
        grantflow.open(rules=RuleBook().on("aproove", _ok), discover_rules=False)


@pytest.mark.parametrize(
    ("book", "what"),
    [
        (RuleBook().provide("people", lambda request: [], events=["sing"]), "fact"),
        (RuleBook().effect("sing", _nothing), "effect"),
    ],
)
def test_facts_and_effects_on_unknown_events_are_refused(book: RuleBook, what: str) -> None:
    """Facts and effects are checked like rules, and the message says which was attached."""
    with pytest.raises(RuleDefinitionError, match=rf"a {what} is attached to 'sing'.*'sign'"):
        book.check(PURCHASED_SERVICE)


def test_a_misspelled_record_kind_is_refused_with_the_close_match() -> None:
    """'record.reveiw' is neither built in nor declared; the error names 'review'."""
    book = RuleBook().on("record.reveiw", _ok)
    with pytest.raises(RuleDefinitionError, match=r"'reveiw'.*did you mean 'review'\?"):
        book.check(PURCHASED_SERVICE)


def test_a_declared_record_kind_passes_and_an_undeclared_one_does_not() -> None:
    """Custom record kinds pass once declared; built-in kinds need no declaration."""
    book = RuleBook().on("record.site_visit", _ok).on("record.review", _ok)
    with pytest.raises(RuleDefinitionError, match="'site_visit' is neither built in"):
        book.check(PURCHASED_SERVICE)
    book.declare_records("site_visit")
    book.check(PURCHASED_SERVICE)
    assert book.copy().record_kinds == frozenset({"site_visit"})


def test_the_default_rules_fit_the_default_lifecycle() -> None:
    """The default regime passes its own lint."""
    default_rules().check(PURCHASED_SERVICE)


def test_the_default_rules_do_not_fit_a_lifecycle_without_their_events() -> None:
    """Default rules on a lifecycle lacking 'approve' are refused (they could never run)."""
    with pytest.raises(RuleDefinitionError, match="attached to"):
        default_rules().check(_lifecycle("submit", "reject", "withdraw"))


def test_all_events_is_always_allowed() -> None:
    """A rule for every event fits every lifecycle."""
    RuleBook().on(ALL_EVENTS, _ok).check(_lifecycle("start", "finish"))


@pytest.mark.parametrize("name", ["*", "record.review"])
def test_reserved_names_are_refused_as_lifecycle_events(name: str) -> None:
    """A lifecycle event named '*' or 'record.<kind>' collides with the book's namespaces."""
    lifecycle = _lifecycle("start", name)
    with pytest.raises(RuleDefinitionError, match="reserved name"):
        RuleBook().check(lifecycle)
    with pytest.raises(RuleDefinitionError, match="reserved name"):
        grantflow.open(lifecycle=lifecycle, rules=RuleBook(), discover_rules=False)


@pytest.mark.parametrize("name", ["", " approve", "record.", "record. "])
def test_invalid_keys_are_refused_when_attached(name: str) -> None:
    """Empty, padded or kind-less names are refused by on(), provide() and effect()."""
    with pytest.raises(RuleDefinitionError):
        RuleBook().on(name, _ok)
    with pytest.raises(RuleDefinitionError):
        RuleBook().provide("fact", lambda request: None, events=[name])
    with pytest.raises(RuleDefinitionError):
        RuleBook().effect(name, _nothing)


def test_provide_refuses_a_single_string_for_events() -> None:
    """events='approve' would attach the fact to 'a', 'p', ...: refused."""
    with pytest.raises(RuleDefinitionError, match="list of names"):
        RuleBook().provide("people", lambda request: [], events="approve")


@pytest.mark.parametrize("kind", ["", " note", "a*"])
def test_invalid_record_kinds_cannot_be_declared(kind: str) -> None:
    """Declared record kinds are plain names."""
    with pytest.raises(RuleDefinitionError, match="not a valid name"):
        RuleBook().declare_records(kind)


def test_keys_lists_events_with_rules_facts_or_effects() -> None:
    """attached_events() sees every attachment, events() only those with rules."""
    book = RuleBook().on("approve", _ok).effect("sign", _nothing)
    book.provide("people", lambda request: [], events=["record.review"])
    assert book.attached_events() == ["approve", "record.review", "sign"]
    assert book.events() == ["approve"]
