"""State diagrams of a definition as Mermaid or Graphviz DOT text (pure: no I/O).

Each state shows its Russian label, its name and the deadlines armed for it; terminal states
are double-bordered; transitions are labelled by trigger, internal ones (no state change) are
dashed self-loops and triggers that a deadline fires carry a ⏱. Given a case's ``path`` — its
``(from_state, trigger, to_state)`` steps from the transition log, ``from_state`` None for the
opening step — the states it went through and the transitions it took are highlighted and its
current state is drawn bold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.machines.definition import Definition

Step = tuple[str | None, str, str]
"""One step of a case's path: ``(from_state, trigger, to_state)``; ``from_state`` None = open."""

_START = "__start__"
_GREEN = "#2b8a3e"
_VISITED_FILL = "#d3f9d8"
_CURRENT_FILL = "#8ce99a"
_TERMINAL_FILL = "#f1f3f5"


@dataclass(frozen=True)
class _Edge:
    source: str
    dest: str
    trigger: str
    internal: bool
    timed: bool


@dataclass(frozen=True)
class _Node:
    name: str
    lines: tuple[str, ...]
    terminal: bool


@dataclass(frozen=True)
class _Layout:
    """What both renderers draw: nodes, edges, and the parts of them a path highlights."""

    title: str
    initial: str
    nodes: tuple[_Node, ...]
    edges: tuple[_Edge, ...]
    taken: frozenset[int]
    start_taken: bool
    visited: frozenset[str]
    current: str | None


def _layout(definition: Definition, path: Sequence[Step]) -> _Layout:
    timed_in: dict[str, set[str]] = {}
    notes: dict[str, list[str]] = {name: [] for name in definition.states}
    armed_by = {spec.name: tr.trigger for tr in definition.transitions for spec in tr.arms}
    for spec, armed_for in definition.deadline_specs().values():
        after = f" (after {armed_by[spec.name]})" if spec.name in armed_by else ""
        notes[armed_for].append(f"⏱ {spec.amount} {spec.unit} → {spec.trigger}{after}")
        for live in definition.live_states(spec, armed_for):
            if live not in spec.paused_in:
                timed_in.setdefault(live, set()).add(spec.trigger)
    nodes = tuple(
        _Node(name, (state.label, name, *notes[name]), state.terminal)
        for name, state in definition.states.items()
    )
    edges = tuple(
        _Edge(
            source,
            tr.target(source),
            tr.trigger,
            tr.internal,
            tr.trigger in timed_in.get(source, set()),
        )
        for tr in definition.transitions
        for source in tr.source
    )
    index = {(e.source, e.trigger): i for i, e in enumerate(edges)}
    taken: set[int] = set()
    visited: set[str] = set()
    start_taken = False
    current: str | None = None
    for from_state, trigger, to_state in path:
        if from_state is None:
            start_taken = start_taken or to_state == definition.initial
        else:
            found = index.get((from_state, trigger))
            if found is not None and edges[found].dest == to_state:
                taken.add(found)
            visited.add(from_state)
        visited.add(to_state)
        current = to_state
    known = set(definition.states)
    return _Layout(
        title=f"{definition.title} ({definition.type} v{definition.version})",
        initial=definition.initial,
        nodes=nodes,
        edges=edges,
        taken=frozenset(taken),
        start_taken=start_taken,
        visited=frozenset(visited & known),
        current=current if current in known else None,
    )


# ---- Mermaid -------------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    # Mermaid reads these inside a quoted label as markup; its entity codes keep them literal.
    for raw, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(raw, code)
    return text


def _mermaid_id(state: str) -> str:
    # A prefix keeps state names clear of Mermaid keywords such as "end" or "graph".
    return f"s_{state}"


def to_mermaid(definition: Definition, path: Sequence[Step] = ()) -> str:
    """A Mermaid ``flowchart`` of the definition; ``path`` highlights a case's steps."""
    lay = _layout(definition, path)
    lines = [
        "---",
        f"title: {_mermaid_text(lay.title)}",
        "---",
        "flowchart TD",
        f'    {_START}(("start"))',
    ]
    for node in lay.nodes:
        label = "<br/>".join(_mermaid_text(line) for line in node.lines)
        shape = ('((("', '")))') if node.terminal else ('["', '"]')
        lines.append(f"    {_mermaid_id(node.name)}{shape[0]}{label}{shape[1]}")
    links = [f"    {_START} --> {_mermaid_id(lay.initial)}"]
    for edge in lay.edges:
        arrow = "-.->" if edge.internal else "-->"
        label = _mermaid_text(f"⏱ {edge.trigger}" if edge.timed else edge.trigger)
        links.append(f'    {_mermaid_id(edge.source)} {arrow}|"{label}"| {_mermaid_id(edge.dest)}')
    lines.extend(links)
    lines += [
        f"    classDef terminal fill:{_TERMINAL_FILL},stroke:#495057,stroke-width:2px",
        f"    classDef visited fill:{_VISITED_FILL},stroke:{_GREEN},stroke-width:2px",
        f"    classDef current fill:{_CURRENT_FILL},stroke:{_GREEN},stroke-width:4px,"
        "font-weight:bold",
    ]
    terminal = [_mermaid_id(n.name) for n in lay.nodes if n.terminal]
    if terminal:
        lines.append(f"    class {','.join(terminal)} terminal")
    visited = [_mermaid_id(n.name) for n in lay.nodes if n.name in lay.visited - {lay.current}]
    if visited:
        lines.append(f"    class {','.join(visited)} visited")
    if lay.current is not None:
        lines.append(f"    class {_mermaid_id(lay.current)} current")
    # linkStyle counts links in the order they were written: the start link is number 0.
    taken = ([0] if lay.start_taken else []) + sorted(i + 1 for i in lay.taken)
    if taken:
        lines.append(
            f"    linkStyle {','.join(map(str, taken))} "
            f"stroke:{_GREEN},stroke-width:3px,color:{_GREEN}"
        )
    return "\n".join(lines) + "\n"


# ---- Graphviz DOT --------------------------------------------------------------------------


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_attrs(attrs: dict[str, str]) -> str:
    return "[" + ", ".join(f"{key}={value}" for key, value in attrs.items()) + "]"


def to_dot(definition: Definition, path: Sequence[Step] = ()) -> str:
    """A Graphviz ``digraph`` of the definition; ``path`` highlights a case's steps."""
    lay = _layout(definition, path)
    lines = [
        f"digraph {_dot_text(f'{definition.type}_v{definition.version}')} {{",
        "    "
        + "graph "
        + _dot_attrs(
            {
                "label": _dot_text(lay.title),
                "labelloc": "t",
                "fontname": '"Helvetica"',
                "rankdir": "TB",
            }
        )
        + ";",
        '    node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
        f"    {_dot_text(_START)} [shape=point, width=0.15];",
    ]
    for node in lay.nodes:
        attrs = {"label": _dot_text("\n".join(node.lines))}
        if node.terminal:
            attrs.update(peripheries="2", fillcolor=_dot_text(_TERMINAL_FILL))
        if node.name in lay.visited:
            attrs.update(fillcolor=_dot_text(_VISITED_FILL), color=_dot_text(_GREEN))
            attrs["penwidth"] = "2"
        if node.name == lay.current:
            attrs.update(fillcolor=_dot_text(_CURRENT_FILL), penwidth="3")
            attrs["fontname"] = '"Helvetica-Bold"'
        lines.append(f"    {_dot_text(node.name)} {_dot_attrs(attrs)};")
    highlight = {"color": _dot_text(_GREEN), "fontcolor": _dot_text(_GREEN), "penwidth": "2.5"}
    start = f"    {_dot_text(_START)} -> {_dot_text(lay.initial)}"
    lines.append(f"{start} {_dot_attrs(highlight)};" if lay.start_taken else f"{start};")
    for i, edge in enumerate(lay.edges):
        attrs = {"label": _dot_text(f"⏱ {edge.trigger}" if edge.timed else edge.trigger)}
        if edge.internal:
            attrs["style"] = "dashed"
        if i in lay.taken:
            attrs.update(highlight)
            attrs["style"] = '"dashed,bold"' if edge.internal else "bold"
        lines.append(f"    {_dot_text(edge.source)} -> {_dot_text(edge.dest)} {_dot_attrs(attrs)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


__all__ = ["Step", "to_dot", "to_mermaid"]
