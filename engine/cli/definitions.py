"""``omsflow definitions``: the loaded definitions, their checks, schemas, examples, diagrams."""

from __future__ import annotations

import shutil
import subprocess
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from engine import applications
from engine.cli import output
from engine.cli.context import settings
from engine.errors import EngineError, FieldError, InvalidDefinition, InvalidInput
from engine.machines.compiled import CompiledDefinition
from engine.machines.graph import Step, to_dot, to_mermaid
from engine.machines.loader import DefinitionRegistry, default_definitions_dir, load_file

app = typer.Typer(help="The loaded definitions: list, show, validate, schema, graph.")

TypeArgument = Annotated[str, typer.Argument(metavar="TYPE", help="Application type.")]
VersionOption = Annotated[
    int | None, typer.Option("--version", metavar="N", help="This version (default: latest).")
]


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"


class GraphvizMissing(EngineError):
    """``--format svg`` needs Graphviz's ``dot`` program."""

    code = "graphviz_missing"
    exit_code = 1

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(
            f"{problem}; install Graphviz (e.g. apt-get install graphviz) "
            "or use --format dot or --format mermaid"
        )

    def details(self) -> dict[str, Any]:
        return {"problem": self.problem}


class DefinitionsInvalid(EngineError):
    """Some of the files ``definitions validate`` checked failed; lists every one."""

    code = InvalidDefinition.code
    exit_code = InvalidDefinition.exit_code

    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.results = results
        self.failed = [r for r in results if not r["ok"]]
        self.lines = [r["error"]["message"] for r in self.failed]
        super().__init__(
            f"{len(self.failed)} of {len(results)} definition file(s) failed the checks"
        )

    def details(self) -> dict[str, Any]:
        return {"files": self.results}


def _registry() -> DefinitionRegistry:
    return DefinitionRegistry.from_dir()


def _summary(c: CompiledDefinition) -> dict[str, Any]:
    d = c.definition
    return {
        "type": d.type,
        "version": d.version,
        "title": d.title,
        "data_model": d.data_model,
        "initial": d.initial,
        "states": list(d.states),
        "terminal_states": [name for name, st in d.states.items() if st.terminal],
        "triggers": sorted({tr.trigger for tr in d.transitions}),
        "path": c.path,
    }


@app.command("list")
def list_definitions(ctx: typer.Context) -> None:
    """Every loaded definition (type and version)."""
    s = settings(ctx)
    compiled = _registry().all()
    if s.json:
        output.emit_json([_summary(c) for c in compiled])
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("type", "version", "title", "states", "transitions", "file"):
        table.add_column(column, no_wrap=column != "title")
    for c in compiled:
        d = c.definition
        table.add_row(
            d.type,
            str(d.version),
            d.title,
            str(len(d.states)),
            str(len(d.transitions)),
            Path(c.path).name,
        )
    output.console().print(table)


@app.command("show")
def show(ctx: typer.Context, type_: TypeArgument, version: VersionOption = None) -> None:
    """A definition: states with labels and deadlines, transitions with roles and reasons."""
    s = settings(ctx)
    c = _registry().get(type_, version)
    d = c.definition
    if s.json:
        output.emit_json({**d.model_dump(mode="json"), "path": c.path})
        return
    out = output.console()
    out.print(Text.assemble((f"{d.title}", "bold"), f"  {d.type} v{d.version}  ", (c.path, "dim")))
    states = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        title="states",
        title_justify="left",
    )
    for column in ("state", "label", "deadlines"):
        states.add_column(column, overflow="fold")
    for name, st in d.states.items():
        marks = " (initial)" if name == d.initial else ""
        marks += " (terminal)" if st.terminal else ""
        states.add_row(
            Text(name + marks, style="bold" if st.terminal else ""),
            st.label,
            "\n".join(f"⏱ {dl.name}: {dl.amount} {dl.unit} → {dl.trigger}" for dl in st.deadlines),
        )
    out.print(states)
    transitions = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        title="transitions",
        title_justify="left",
    )
    for column in ("trigger", "from", "to", "roles", "needs", "reasons", "notifies"):
        transitions.add_column(column, overflow="fold")
    for tr in d.transitions:
        needs = [*tr.requires, *(f"guard {g}" for g in tr.guards)]
        arms = [f"arms ⏱ {a.name}: {a.amount} {a.unit} → {a.trigger}" for a in tr.arms]
        transitions.add_row(
            tr.trigger,
            ", ".join(tr.source),
            tr.dest or "(stays)",
            ", ".join(tr.roles),
            "\n".join(needs + arms),
            tr.reason.value if tr.reason else ", ".join(r.value for r in tr.reasons),
            ", ".join(tr.notify),
        )
    out.print(transitions)


@app.command("validate")
def validate(
    ctx: typer.Context,
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="[FILE...]",
            help="Definition files to check (default: every file of the definitions folder).",
        ),
    ] = None,
) -> None:
    """Run the static checks; exit 4 naming each file that fails and why."""
    s = settings(ctx)
    paths = list(files or sorted(default_definitions_dir().glob("*.yaml")))
    results: list[dict[str, Any]] = []
    compiled: list[CompiledDefinition] = []
    for path in paths:
        try:
            if not path.is_file():
                raise InvalidDefinition(str(path), "no such file")
            c = load_file(path)
        except InvalidDefinition as exc:
            results.append(
                {
                    "path": str(path),
                    "ok": False,
                    "error": output.error_json(exc.code, str(exc), exc.details()),
                }
            )
        else:
            compiled.append(c)
            results.append(
                {
                    "path": str(path),
                    "ok": True,
                    "type": c.definition.type,
                    "version": c.definition.version,
                }
            )
    if not paths:
        raise InvalidDefinition(str(default_definitions_dir()), "no definition files found")
    try:
        # together the files must not define one (type, version) twice
        DefinitionRegistry(compiled)
    except InvalidDefinition as exc:
        results.append(
            {
                "path": exc.path,
                "ok": False,
                "error": output.error_json(exc.code, str(exc), exc.details()),
            }
        )
    if not all(r["ok"] for r in results):
        raise DefinitionsInvalid(results)
    if s.json:
        output.emit_json({"ok": True, "files": results})
        return
    out = output.console()
    for r in results:
        out.print(Text.assemble(("✔ ", "green"), f"{r['path']}: {r['type']} v{r['version']}"))


@app.command("schema")
def schema(type_: TypeArgument, version: VersionOption = None) -> None:
    """The JSON Schema of the type's application data (always JSON)."""
    c = _registry().get(type_, version)
    output.emit_json(applications.json_schema(c.definition.data_model))


@app.command("example")
def example(type_: TypeArgument, version: VersionOption = None) -> None:
    """A valid example application that 'case open TYPE --data -' accepts as is (JSON)."""
    c = _registry().get(type_, version)
    output.emit_json(applications.example_application(c.definition.data_model))


def render_svg(dot: str) -> str:
    """Graphviz's ``dot -Tsvg`` over a DOT text."""
    program = shutil.which("dot")
    if program is None:
        raise GraphvizMissing("Graphviz's 'dot' program is not on the PATH")
    done = subprocess.run(  # noqa: S603 - a fixed program, the diagram on stdin
        [program, "-Tsvg"], input=dot, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise GraphvizMissing(f"dot failed: {done.stderr.strip()}")
    return done.stdout


@app.command("graph")
def graph(
    ctx: typer.Context,
    type_: TypeArgument,
    fmt: Annotated[GraphFormat, typer.Option("--format", help="Diagram format.")] = (
        GraphFormat.mermaid
    ),
    case_id: Annotated[
        str | None,
        typer.Option("--case", metavar="ID", help="Highlight this case's path."),
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("-o", "--output", metavar="FILE", help="Write to FILE.")
    ] = None,
    version: VersionOption = None,
) -> None:
    """The state diagram (Mermaid, DOT or SVG); with --case, that case's path highlighted."""
    s = settings(ctx)
    path: list[Step] = []
    if case_id is None:
        definition = _registry().get(type_, version).definition
    else:
        with s.engine() as engine:
            case = engine.get_case(case_id)
            if case.type != type_:
                raise InvalidInput(
                    [
                        FieldError(
                            "case",
                            "case_type",
                            f"case {case_id} is a {case.type} case, not {type_}",
                            f"a {type_} case, or TYPE {case.type}",
                        )
                    ]
                )
            definition = engine.definitions.get(case.type, case.definition_version).definition
            path = [(e.from_state, e.trigger, e.to_state) for e in engine.history(case_id)]
    if fmt is GraphFormat.mermaid:
        text = to_mermaid(definition, path)
    else:
        text = to_dot(definition, path)
        if fmt is GraphFormat.svg:
            text = render_svg(text)
    if out_file is not None:
        out_file.write_text(text, encoding="utf-8")
    if s.json:
        body: dict[str, Any] = {
            "type": definition.type,
            "version": definition.version,
            "format": fmt.value,
            "case_id": case_id,
        }
        body.update({"file": str(out_file)} if out_file else {"diagram": text})
        output.emit_json(body)
    elif out_file is not None:
        output.console().print(f"{fmt.value} diagram of {definition.type} written to {out_file}")
    else:
        typer.echo(text, nl=False)
