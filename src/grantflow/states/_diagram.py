"""Diagram export: Mermaid ``stateDiagram-v2`` and Graphviz dot text for a lifecycle."""

from __future__ import annotations

from grantflow.states._lifecycle import Lifecycle

__all__ = ["to_dot", "to_mermaid"]


def _label(name: str, label: str, label_zh: str) -> str:
    parts = [p for p in (label or name, label_zh) if p]
    return " / ".join(parts)


def to_mermaid(lifecycle: Lifecycle) -> str:
    """Return Mermaid ``stateDiagram-v2`` text: one edge per (event, source)."""
    lines = ["stateDiagram-v2"]
    for state in lifecycle.states:
        lines.append(f"    {state.name}: {_label(state.name, state.label, state.label_zh)}")
    creating = lifecycle.initial_event
    lines.append(f"    [*] --> {creating.target}: {creating.name}")
    for event in lifecycle.events:
        for source in event.sources:
            lines.append(f"    {source} --> {event.target}: {event.name}")
    for state in lifecycle.states:
        if state.terminal:
            lines.append(f"    {state.name} --> [*]")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(lifecycle: Lifecycle) -> str:
    """Return Graphviz dot text; terminal states are drawn with a double border."""
    lines = [f"digraph {_dot_quote(lifecycle.name)} {{", "    rankdir=LR;"]
    lines.append('    "__start__" [shape=point];')
    for state in lifecycle.states:
        shape = "doublecircle" if state.terminal else "ellipse"
        label = _dot_quote(_label(state.name, state.label, state.label_zh))
        lines.append(f"    {_dot_quote(state.name)} [shape={shape}, label={label}];")
    creating = lifecycle.initial_event
    lines.append(
        f'    "__start__" -> {_dot_quote(creating.target)} [label={_dot_quote(creating.name)}];'
    )
    for event in lifecycle.events:
        for source in event.sources:
            lines.append(
                f"    {_dot_quote(source)} -> {_dot_quote(event.target)}"
                f" [label={_dot_quote(event.name)}];"
            )
    lines.append("}")
    return "\n".join(lines) + "\n"
