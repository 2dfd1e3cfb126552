"""Tests for RuleBook.without / replace (overriding default rules) and RuleBook.fingerprint."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from grantflow.errors import RuleDefinitionError
from grantflow.models import Verdict
from grantflow.rules import PASS, RuleBook, RuleContext, all_of, refuse, rule, rule_name
from grantflow.rules.default import default_rules


@rule(name="custom.limit")
def three_per_call(ctx: RuleContext) -> Verdict:
    """At most 3 applications per provider per call (instead of the policy's number)."""
    existing = int(ctx.facts.get("applications") or 0)
    if existing < 3:
        return PASS
    return refuse("custom.limit", "at most 3", "最多3个", limit=3, existing=existing)


def _names(book: RuleBook, event: str) -> list[str]:
    return [rule_name(r) for r in book.rules_for(event)]


def test_without_drops_one_default_rule_and_leaves_the_original_alone() -> None:
    """default_rules().without(code) has every rule but that one; the source book is unchanged."""
    book = default_rules()
    lighter = book.without("eligibility.limit")
    assert "eligibility.limit" not in _names(lighter, "submit")
    assert _names(lighter, "submit") == [
        n for n in _names(book, "submit") if n != "eligibility.limit"
    ]
    assert "eligibility.limit" in _names(book, "submit")
    assert lighter.facts_for("submit") == book.facts_for("submit")
    assert lighter.effects_for("submit") == book.effects_for("submit")


def test_without_removes_a_shared_rule_everywhere_or_on_one_event() -> None:
    """A code used on several events is removed from all, or from the one named."""
    book = default_rules()
    everywhere = book.without("conflict.own_project")
    assert all("conflict.own_project" not in _names(everywhere, e) for e in book.attached_events())
    only_sign = book.without("conflict.own_project", event="sign")
    assert "conflict.own_project" not in _names(only_sign, "sign")
    assert "conflict.own_project" in _names(only_sign, "approve")


def test_replace_keeps_the_position_of_the_rule() -> None:
    """The replacement runs where the replaced rule ran."""
    book = default_rules()
    swapped = book.replace("eligibility.limit", three_per_call)
    expected = ["custom.limit" if n == "eligibility.limit" else n for n in _names(book, "submit")]
    assert _names(swapped, "submit") == expected


def test_an_unknown_code_names_the_closest_one() -> None:
    """A misspelled code is a RuleDefinitionError, not a silent no-op."""
    with pytest.raises(RuleDefinitionError, match=r"'eligibility.limt'.*'eligibility.limit'"):
        default_rules().without("eligibility.limt")
    with pytest.raises(RuleDefinitionError, match=r"no rule 'review\.quorum' on 'sign'"):
        default_rules().replace("review.quorum", three_per_call, event="sign")


def test_replace_refuses_a_non_callable() -> None:
    """The replacement must be a rule."""
    with pytest.raises(RuleDefinitionError, match="not callable"):
        default_rules().replace("eligibility.limit", "three")  # type: ignore[arg-type]


def test_removing_the_last_rule_of_an_event_removes_the_event() -> None:
    """events() lists only events that still have a rule."""
    book = RuleBook().on("reject", three_per_call)
    assert book.without("custom.limit").events() == []


def test_codes_lists_every_rule_code_once() -> None:
    """codes() is sorted and unique."""
    codes = default_rules().codes()
    assert codes == sorted(set(codes))
    assert "review.quorum" in codes


# -- fingerprint -----------------------------------------------------------------------


def test_the_fingerprint_is_the_same_in_another_process() -> None:
    """Two interpreters (other hash seeds, other addresses) compute the same fingerprint."""
    script = "from grantflow.rules.default import default_rules; print(default_rules().fingerprint)"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            # The same grantflow as this process (under mutation testing, the mutated copy).
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {default_rules().fingerprint}
    assert len(outputs.pop()) == 64


def test_the_fingerprint_changes_when_a_rule_is_removed_replaced_or_versioned() -> None:
    """Overrides show in the fingerprint; copies and identical books do not."""
    book = default_rules()
    seen = {
        book.fingerprint,
        book.without("eligibility.limit").fingerprint,
        book.replace("eligibility.limit", three_per_call).fingerprint,
        book.copy().declare_records("site_visit").fingerprint,
    }
    assert len(seen) == 4
    assert book.copy().fingerprint == default_rules().fingerprint == book.fingerprint
    versioned = rule(three_per_call.fn, name="custom.limit")
    versioned.version = "2"  # type: ignore[attr-defined]
    assert (
        RuleBook().on("submit", versioned).fingerprint
        != RuleBook().on("submit", three_per_call).fingerprint
    )


def test_the_fingerprint_ignores_registration_order_across_events_but_not_within() -> None:
    """Events are sorted; the order of an event's rules (which decides refusal order) counts."""
    other = rule(lambda ctx: PASS, name="custom.other")
    a = RuleBook().on("approve", other).on("sign", three_per_call)
    b = RuleBook().on("sign", three_per_call).on("approve", other)
    assert a.fingerprint == b.fingerprint
    c = RuleBook().on("sign", three_per_call, other)
    d = RuleBook().on("sign", other, three_per_call)
    assert c.fingerprint != d.fingerprint


def test_the_fingerprint_names_anonymous_callables_without_addresses() -> None:
    """Lambdas, combinators and callable objects have address-free identities."""

    class Gate:
        def __call__(self, ctx: RuleContext) -> Verdict:
            return PASS

    book = RuleBook().on("sign", Gate(), all_of(three_per_call), lambda ctx: PASS)
    identity = book._identity()
    assert "0x" not in identity
    assert "Gate" in identity
    assert "all_of(custom.limit)" in identity
    assert book.fingerprint == (
        RuleBook().on("sign", Gate(), all_of(three_per_call), lambda ctx: PASS).fingerprint
    )


def test_unknown_code_messages_name_the_event_and_the_closest_code() -> None:
    """The message says where it looked and suggests only when something is close."""
    book = RuleBook().on("sign", three_per_call)
    with pytest.raises(RuleDefinitionError) as on_event:
        book.without("custom.limt", event="sign")
    assert str(on_event.value) == (
        "no rule 'custom.limt' on 'sign' in the rule book; did you mean 'custom.limit'?"
    )
    assert on_event.value.event == "sign"
    with pytest.raises(RuleDefinitionError) as anywhere:
        book.without("zzz")
    assert str(anywhere.value) == "no rule 'zzz' in the rule book"
    assert anywhere.value.event is None
    with pytest.raises(RuleDefinitionError, match=r"no rule 'custom\.limit' on 'approve'"):
        book.without("custom.limit", event="approve")


@rule(name="demo.审核")
def _chinese_named(ctx: RuleContext) -> Verdict:
    return PASS


def _golden_book() -> RuleBook:
    versioned = rule(lambda ctx: PASS, name="demo.versioned")
    versioned.version = "3"  # type: ignore[attr-defined]
    book = RuleBook().declare_records("site_visit", "note")
    book.on("sign", _chinese_named, versioned)
    # Named, so the golden value does not depend on where this test module lives.
    book.provide("people", rule(_people, name="demo.people"), events=["record.site_visit"])  # type: ignore[arg-type]
    book.effect("close", rule(_no_effect, name="demo.no_effect"))  # type: ignore[arg-type]
    return book


def _people(request: object) -> list[str]:
    return []


def _no_effect(ctx: RuleContext) -> object:
    return None


#: The fingerprint of `_golden_book()`. Every audit entry will carry fingerprints: a change
#: here breaks the comparison with every one recorded before, so make it deliberately.
GOLDEN = "660fec5875c6af6cafd3a772f1a838dabed80a86ccaf8f1a08ccd951316ffd80"


def test_the_fingerprint_encoding_is_fixed() -> None:
    """A given book always has the same fingerprint (the encoding is part of the contract)."""
    book = _golden_book()
    assert book.fingerprint == GOLDEN
    identity = book._identity()
    assert "demo.审核" in identity  # UTF-8, not \\u escapes
    assert '"facts":[["people",["demo.people",""]]]' in identity  # on an event with no rule
    assert '"effects":[["demo.no_effect",""]]' in identity
    assert '["demo.versioned","3"]' in identity
    assert '"record_kinds":["note","site_visit"]' in identity


def test_callables_are_named_by_module_and_qualified_name() -> None:
    """Functions and callable objects get module-qualified names; named rules their code."""
    from grantflow.rules._book import _callable_identity

    class Gate:
        def __call__(self, ctx: RuleContext) -> Verdict:
            return PASS

    module = __name__
    assert _callable_identity(_people) == [f"{module}._people", ""]
    assert _callable_identity(Gate()) == [
        f"{module}.test_callables_are_named_by_module_and_qualified_name.<locals>.Gate",
        "",
    ]
    assert _callable_identity(three_per_call) == ["custom.limit", ""]
    assert _callable_identity(all_of(three_per_call)) == ["all_of(custom.limit)", ""]
