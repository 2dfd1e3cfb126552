"""Tests for grantflow.states._diagram: Mermaid and Graphviz dot export."""

from __future__ import annotations

from grantflow.states import PURCHASED_SERVICE, to_dot, to_mermaid


def test_mermaid_lists_every_edge_once() -> None:
    """The Mermaid text has the header and one line per (event, source) edge."""
    text = to_mermaid(PURCHASED_SERVICE)
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    edges = sum(len(e.sources) for e in PURCHASED_SERVICE.events)
    arrows = [line for line in lines if "-->" in line and "[*]" not in line]
    assert len(arrows) == edges
    assert "    applied --> reviewed: approve" in lines
    assert "    [*] --> applied: submit" in lines
    assert "    closed --> [*]" in lines


def test_mermaid_carries_bilingual_labels() -> None:
    """State descriptions show the English and Chinese labels."""
    assert "    rectification: Under rectification / 整改中" in to_mermaid(PURCHASED_SERVICE)


def test_dot_marks_terminal_states_and_quotes_labels() -> None:
    """Terminal states are double circles; every edge appears with its event label."""
    text = to_dot(PURCHASED_SERVICE)
    assert text.startswith('digraph "purchased-service" {')
    assert '"closed" [shape=doublecircle' in text
    assert '"applied" [shape=ellipse' in text
    assert '"contracted" -> "terminated" [label="terminate"];' in text
    assert text.rstrip().endswith("}")
