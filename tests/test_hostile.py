"""The hostile-input suite: every public input and every bulk file format under attack.

Inputs are oversized strings, control and bidirectional characters, lone surrogates, NFC
and NFD spellings, SQL-injection payloads, deep nesting, wrong types, and NaN, infinite
or huge numbers where money goes. For each call the result is a correct result or a
`GrantflowError` (model constructors: a pydantic `ValidationError`), never another
exception; a refused input changes no row; stored values read back exactly as written;
every log record renders as one line.
"""

from __future__ import annotations

import contextlib
import json
import unicodedata
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import grantflow
from grantflow import Actor, Engine, Entity, GrantflowError, Outcome
from grantflow._canonical import MAX_STRING
from grantflow.bulk import BulkItem
from grantflow.demo import DemoClock, run_demo
from grantflow.inputs import BulkReader, RowError
from grantflow.models import Record
from grantflow.persistence import MemoryStore, Store
from grantflow.rules import RuleBook

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}), organisation="org-1")
PURCHASER = Actor(id="staff-1", roles=frozenset({"purchaser"}), organisation="city")

# -- hostile values ----------------------------------------------------------------------

SQL_INJECTION = [
    "'; DROP TABLE grantflow_projects; --",
    "p-1' OR '1'='1",
    '" OR 1=1 --',
    "x\\'); DELETE FROM grantflow_audit; --",
    "$.a\") OR json_extract(data, '$') --",
    "%' UNION SELECT hash FROM grantflow_audit --",
]
LINE_FORGERY = [
    "ok\n2026-01-01 [info     ] grantflow.audit accepted=True actor=admin",
    "ok\r\nforged",
    "ok\rforged",
    "a\u2028b",
    "a\u2029b",
    "a\x85b",
    "a\x0bb\x0cc",
]
BIDI_AND_INVISIBLE = ["abc\u202edcba", "\u2066x\u2069", "a\u200bb", "\ufeffbom", "\u200fRTL"]
NORMALISATION = ["café", unicodedata.normalize("NFD", "café"), "Å", "Å", "ﬁ", "①"]
SURROGATES = ["\ud800", "a\udfffb", "\udc00\ud800"]

_payloads = st.sampled_from(
    SQL_INJECTION + LINE_FORGERY + BIDI_AND_INVISIBLE + NORMALISATION + SURROGATES
)
_any_char = st.one_of(
    st.characters(),
    st.characters(categories=["Cs", "Cc", "Cf", "Zl", "Zp", "Co"]),
)
hostile_text = st.one_of(
    _payloads,
    st.text(_any_char, max_size=30),
    st.sampled_from(["x", "中"]).map(lambda ch: ch * (MAX_STRING + 1)),
    st.just(""),
    st.just("\x00"),
)
hostile_numbers = st.one_of(
    st.sampled_from(
        [
            float("nan"),
            float("inf"),
            -float("inf"),
            0.1,
            Decimal("NaN"),
            Decimal("sNaN"),
            Decimal("Infinity"),
            Decimal("-Infinity"),
            Decimal("1E+999999"),
            Decimal("-1E-999999"),
            Decimal("-0.00"),
            2**63,
            -(2**63) - 1,
            True,
        ]
    ),
    st.integers(),
    st.decimals(),
    st.floats(),
    st.sampled_from([4299, 4300, 5000]).map(lambda n: Lazy(f"10**{n}", lambda: 10**n)),
    st.sampled_from([4300, 5000]).map(lambda n: Lazy(f"-(10**{n})", lambda: -(10**n))),
    st.just(5000).map(lambda n: Lazy(f"Decimal('9' * {n})", lambda: Decimal("9" * n))),
)
hostile_scalars = st.one_of(
    hostile_text,
    hostile_numbers,
    st.sampled_from(
        [
            None,
            b"bytes",
            bytearray(b"x"),
            {1, 2},
            frozenset({"a"}),
            object(),
            datetime(2026, 1, 1),  # naive
            datetime(1, 1, 1, tzinfo=UTC),
            complex(1, 2),
            ...,
            print,
        ]
    ),
)


class Lazy:
    """A value built only when the test runs: Hypothesis cannot print it (too deep, too long)."""

    def __init__(self, label: str, build: Callable[[], Any]) -> None:
        self.label = label
        self.build = build

    def __repr__(self) -> str:
        return self.label


def real(value: Any) -> Any:
    """Replace every `Lazy` in a drawn value by the value it stands for."""
    if isinstance(value, Lazy):
        return value.build()
    if isinstance(value, dict):
        return {real(k): real(v) for k, v in value.items()}
    if isinstance(value, list):
        return [real(v) for v in value]
    if isinstance(value, tuple):
        return tuple(real(v) for v in value)
    return value


def _nested(depth: int, leaf: Any = 0) -> Any:
    value: Any = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


hostile_json = st.one_of(
    st.recursive(
        hostile_scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.one_of(hostile_text, st.integers()), inner, max_size=3),
            st.tuples(inner, inner),
        ),
        max_leaves=8,
    ),
    st.integers(min_value=30, max_value=3000).map(
        lambda depth: Lazy(f"nested({depth})", lambda: _nested(depth))
    ),
)
hostile_mappings = st.one_of(
    st.dictionaries(hostile_text, hostile_json, max_size=4),
    hostile_json,  # often not a mapping at all
    st.none(),
)
#: Evidence shaped like the default regime's, with hostile values where money, dates and
#: reasons go: the rules and effects are made to read them.
regime_evidence = st.one_of(
    st.fixed_dictionaries({"reason": hostile_json}),
    st.fixed_dictionaries({"recommended_amount": hostile_json}),
    st.fixed_dictionaries(
        {
            "contracts": st.lists(
                st.fixed_dictionaries(
                    {
                        "kind": st.sampled_from(["purchase", "supervision"]) | hostile_text,
                        "amount": hostile_json,
                        "signed_on": hostile_json,
                        "start": hostile_json,
                        "end": hostile_json,
                    }
                ),
                max_size=2,
            ),
            "budget": st.lists(
                st.fixed_dictionaries(
                    {"line": st.sampled_from(["activities", "personnel"]), "amount": hostile_json}
                ),
                max_size=2,
            ),
        }
    ),
    st.fixed_dictionaries({"order": hostile_json, "closeout": hostile_json}),
    hostile_mappings,
)

# -- harness -----------------------------------------------------------------------------


def _snapshot(store: Store) -> tuple[Any, ...]:
    projects = list(store.projects())
    return (
        list(store.all_entries()),
        projects,
        [store.load(p.id) for p in projects],
    )


def _one_line_logs(records: list[dict[str, Any]]) -> None:
    renderers: list[Callable[..., Any]] = [
        structlog.dev.ConsoleRenderer(colors=False),
        structlog.processors.KeyValueRenderer(),
        structlog.processors.JSONRenderer(),
    ]
    for record in records:
        for render in renderers:
            line = str(render(None, "info", dict(record)))
            assert "\n" not in line, line
            assert "\r" not in line, line


def attempt(store: Store, call: Callable[[], Any]) -> Any:
    """Run `call`: a GrantflowError leaves every row as it was; log records are one line."""
    before = _snapshot(store)
    with structlog.testing.capture_logs() as logs:
        try:
            result = call()
        except GrantflowError as exc:
            result = exc
    if isinstance(result, GrantflowError):
        assert _snapshot(store) == before, f"{type(result).__name__} after writing: {result}"
    _one_line_logs(logs)
    return result


def _bare() -> Engine:
    return grantflow.open(MemoryStore(), rules=RuleBook(), discover_rules=False)


def _consistent(engine: Engine, project_id: str) -> None:
    assert engine.replay(project_id) == engine.get(project_id)


_FAST = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))

# -- the engine's inputs -----------------------------------------------------------------


@_FAST
@given(data=hostile_mappings, evidence=hostile_mappings, project_id=hostile_text | hostile_json)
def test_submit_takes_valid_input_or_raises_a_typed_error(
    data: Any, evidence: Any, project_id: Any
) -> None:
    """submit: an accepted project reads back as written; anything else is typed."""
    data, evidence, project_id = real(data), real(evidence), real(project_id)
    engine = _bare()
    result = attempt(
        engine.store,
        lambda: engine.submit(actor=APPLICANT, data=data, evidence=evidence, project_id=project_id),
    )
    if isinstance(result, Outcome):
        assert result.project_id == project_id
        assert engine.get(project_id).data == json.loads(json.dumps(engine.get(project_id).data))
        _consistent(engine, project_id)
        assert engine.verify().ok


@_FAST
@given(event=hostile_text | hostile_json, evidence=hostile_mappings, target=hostile_text)
def test_fire_and_can_fire_take_valid_input_or_raise_typed_errors(
    event: Any, evidence: Any, target: str
) -> None:
    """Fire and can_fire with hostile events, evidence and project ids."""
    event, evidence = real(event), real(evidence)
    engine = _bare()
    pid = engine.submit(actor=APPLICANT, project_id="p-1").project_id
    for project_id in (pid, target):
        for call in (engine.can_fire, engine.fire):
            attempt(
                engine.store,
                lambda call=call, project_id=project_id: call(  # type: ignore[misc]
                    project_id, event, actor=PURCHASER, evidence=evidence
                ),
            )
    for approve in ("approve", "reject"):
        attempt(
            engine.store,
            lambda approve=approve: engine.fire(  # type: ignore[misc]
                pid, approve, actor=PURCHASER, evidence=evidence
            ),
        )
    _consistent(engine, pid)
    assert engine.verify().ok


@_FAST
@given(kind=hostile_text | hostile_json, data=hostile_mappings, record_id=hostile_text)
def test_add_record_takes_valid_input_or_raises_a_typed_error(
    kind: Any, data: Any, record_id: Any
) -> None:
    """add_record with hostile kinds, ids and data."""
    kind, data = real(kind), real(data)
    engine = _bare()
    pid = engine.submit(actor=APPLICANT, project_id="p-1").project_id
    result = attempt(
        engine.store,
        lambda: engine.add_record(pid, kind, data, actor=APPLICANT, record_id=record_id),
    )
    if isinstance(result, Outcome) and result.accepted:
        (record,) = engine.get(pid).records
        assert (record.kind, record.id) == (kind, record_id)
    _consistent(engine, pid)


@_FAST
@given(
    items=st.lists(
        st.one_of(hostile_text, st.tuples(hostile_text, hostile_mappings), hostile_json), max_size=6
    )
    | hostile_json,
    event=st.sampled_from(["approve", "submit", "record.review"]) | hostile_text,
)
def test_fire_many_reports_per_item_or_raises_a_typed_error(items: Any, event: Any) -> None:
    """fire_many with hostile items, ids, evidence and events: per-item results."""
    items = real(items)
    engine = _bare()
    engine.submit(actor=APPLICANT, project_id="p-1")
    result = attempt(engine.store, lambda: engine.fire_many(event, items, actor=PURCHASER))
    if not isinstance(result, GrantflowError):
        assert sum(result.counts.values()) == len(items)
    assert engine.verify().ok


@_FAST
@given(
    actor_id=hostile_text | hostile_json,
    roles=st.lists(hostile_text, max_size=3) | hostile_json,
    organisation=hostile_text | hostile_json,
)
def test_actors_are_valid_models_or_validation_errors(
    actor_id: Any, roles: Any, organisation: Any
) -> None:
    """Actor construction: a valid actor works everywhere; a bad one is a ValidationError."""
    actor_id, roles, organisation = real(actor_id), real(roles), real(organisation)
    try:
        actor = Actor(id=actor_id, roles=roles, organisation=organisation)
    except ValidationError:
        return
    engine = _bare()
    attempt(engine.store, lambda: engine.submit(actor=actor, project_id="p-1"))
    attempt(engine.store, lambda: engine.fire("p-1", "approve", actor=actor))
    assert engine.verify().ok


@_FAST
@given(
    kind=hostile_text,
    entity_id=hostile_text,
    parent=hostile_text | st.none(),
    data=hostile_mappings,
)
def test_entities_and_records_are_valid_models_or_validation_errors(
    kind: Any, entity_id: Any, parent: Any, data: Any
) -> None:
    """Entity and Record construction never raise anything but ValidationError."""
    data = real(data)
    for build in (
        lambda: Entity(kind=kind, id=entity_id, parent=parent, data=data),
        lambda: Record(kind=kind, id=entity_id, data=data),
    ):
        with contextlib.suppress(ValidationError):
            build()


# -- the default regime under hostile evidence --------------------------------------------


@pytest.fixture(scope="module")
def portfolio() -> Iterator[Engine]:
    """A small demo portfolio: projects in every state, the default rules and effects."""
    clock = DemoClock()
    engine = grantflow.open(clock=clock)
    with structlog.testing.capture_logs():
        run_demo(engine, clock=clock, projects=20)
    yield engine
    engine.close()


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), evidence=regime_evidence)
def test_default_rules_and_effects_survive_hostile_evidence(
    portfolio: Engine, data: st.DataObject, evidence: Any
) -> None:
    """Every event of the regime, by every role, with hostile money, dates and reasons."""
    evidence = real(evidence)
    engine = portfolio
    pid = data.draw(st.sampled_from([p.id for p in engine.store.projects()]), label="project")
    event = data.draw(
        st.sampled_from((*(e.name for e in engine.lifecycle.events), "record.expenditure"))
    )
    role = data.draw(st.sampled_from(["purchaser", "applicant", "evaluator", "reviewer"]))
    actor = Actor(id=f"hostile-{role}", roles=frozenset({role}), organisation="city-federation")
    if event.startswith("record."):
        attempt(engine.store, lambda: engine.add_record(pid, "expenditure", evidence, actor=actor))
    else:
        attempt(engine.store, lambda: engine.fire(pid, event, actor=actor, evidence=evidence))
    _consistent(engine, pid)


# -- SQL stores: injection payloads and exact round trips ----------------------------------


@pytest.fixture(scope="module")
def sql_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """An engine on a SQLite file, shared by the examples of a test."""
    path = tmp_path_factory.mktemp("hostile") / "hostile.db"
    engine = grantflow.open(f"sqlite:///{path}", rules=RuleBook(), discover_rules=False)
    yield engine
    engine.close()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    text=st.one_of(
        st.sampled_from(SQL_INJECTION + NORMALISATION + BIDI_AND_INVISIBLE),
        st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20),
    ),
    serial=st.uuids(),
)
def test_sql_payloads_are_stored_as_text_and_read_back_exactly(
    sql_engine: Engine, text: str, serial: Any
) -> None:
    """Injection payloads and Unicode variants as ids, keys and values: stored verbatim."""
    engine = sql_engine
    pid = f"{text[:60]}-{serial.hex[:8]}"
    data = {text: text, "title": text, "nested": {text: [text]}}
    result = attempt(
        engine.store, lambda: engine.submit(actor=APPLICANT, data=data, project_id=pid)
    )
    if isinstance(result, GrantflowError):
        return
    project = engine.get(pid)
    assert project.id == pid
    assert {k: v for k, v in project.data.items() if k in data} == data
    engine.add_record(pid, "note", {"text": text}, actor=APPLICANT, record_id=f"r-{serial.hex[:8]}")
    assert engine.get(pid).records[0].data == {"text": text}
    for key, value in (("title", text), (text, text)):
        counted = attempt(
            engine.store,
            lambda key=key, value=value: engine.store.count_projects(  # type: ignore[misc]
                {key: value}
            ),
        )
        assert isinstance(counted, GrantflowError) or counted >= 1
    _consistent(engine, pid)


def test_nfc_and_nfd_spellings_stay_distinct_everywhere(tmp_path: Path) -> None:
    """Two ids or keys differing only in normalisation are two ids or keys, never merged."""
    nfc, nfd = "café", unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    engine = grantflow.open(f"sqlite:///{tmp_path / 'nf.db'}", rules=RuleBook())
    engine.submit(actor=APPLICANT, project_id=nfc, data={nfc: 1, nfd: 2})
    engine.submit(actor=APPLICANT, project_id=nfd, data={"title": nfd})
    assert {k: engine.get(nfc).data[k] for k in (nfc, nfd)} == {nfc: 1, nfd: 2}
    assert engine.get(nfd).data["title"] == nfd
    assert sorted(engine.store.chain_ids()) == sorted([nfc, nfd])
    assert engine.verify().ok
    engine.close()


# -- bulk files ----------------------------------------------------------------------------

_cell = st.one_of(
    st.sampled_from(SQL_INJECTION + LINE_FORGERY + BIDI_AND_INVISIBLE + NORMALISATION),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
)


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _json_value(draw_value: Any) -> str:
    return json.dumps(draw_value, ensure_ascii=True)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    fmt=st.sampled_from(["csv", "json", "jsonl"]),
    header=st.lists(_cell, max_size=4),
    rows=st.lists(st.lists(_cell, max_size=5), max_size=5),
    raw=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    '{"id":"p1","x":"\\ud800"}',
                    '{"id":"p1","x":' + "[" * 3000 + "]" * 3000 + "}",
                    '{"id":"p1","amount":' + "9" * 5000 + "}",
                    '{"id":"p1","amount":NaN}',
                    '{"id":"p1","amount":-Infinity}',
                    '{"id":"p1","amount":1e999999}',
                    '{"id":"p1\\r\\nforged"}',
                    '{"id":"p1","id":"p2"}',
                    '{"project_id":"p1","id":"p2"}',
                    '{"id":["p1"]}',
                    "[1,2]",
                    '"just a string"',
                    "{bad json",
                    '{"id":"p1","evidence":{"a":{"b":1}},"evidence.a.b":2}',
                    '{"id":"p1","evidence.":1}',
                ]
            ),
            st.builds(lambda v: json.dumps({"id": "p9", "v": v}, ensure_ascii=True), _cell),
        ),
        max_size=6,
    ),
    tail=st.sampled_from(["", "\n", "\r\n", "\ufeff", "\x00", "\u2028"]),
)
def test_bulk_readers_yield_items_or_row_errors_and_never_raise_anything_else(
    tmp_path_factory: pytest.TempPathFactory,
    fmt: str,
    header: list[str],
    rows: list[list[str]],
    raw: list[str],
    tail: str,
) -> None:
    """Every file of every format: items, RowErrors by row number, or InvalidInput."""
    if fmt == "csv":
        text = _csv_text(["id", *header], rows) + tail
    elif fmt == "json":
        text = "[" + ",".join(raw) + "]" + tail
    else:
        text = "\n".join(raw) + tail
    path = tmp_path_factory.mktemp("bulk") / f"in.{fmt}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        out = list(BulkReader(path))
    except GrantflowError:
        return
    seen_rows = []
    for row in out:
        assert isinstance(row, BulkItem | RowError)
        assert row.row is not None
        assert row.row >= 1
        seen_rows.append(row.row)
        if isinstance(row, RowError):
            assert "\n" not in row.reason
            assert "\r" not in row.reason
            row.reason.encode("utf-8")  # printable in any report
        else:
            row.project_id.encode("utf-8")
    assert seen_rows == sorted(seen_rows)
    engine = _bare()
    engine.submit(actor=APPLICANT, project_id="p1")
    items = [r for r in out if isinstance(r, BulkItem)]
    attempt(engine.store, lambda: engine.fire_many("approve", items, actor=PURCHASER))


def test_model_json_fields_refuse_floats_and_deep_values_as_validation_errors() -> None:
    """Record/Entity data with a float or 10,000 levels: ValidationError, not TypeError."""
    for data in ({"x": 0.5}, {"x": _nested(10_000)}):
        with pytest.raises(ValidationError):
            Record(kind="k", id="i", data=data)
        with pytest.raises(ValidationError):
            Entity(kind="k", id="i", data=data)
