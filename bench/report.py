"""The terminal table and the derived figures (scaling 10k -> 1M, targets) of a result set."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

TARGETS = {
    # (backend, sync, workload) -> minimum engine/limit ratio, from the issue
    ("sqlite", "FULL", "steps"): 0.9,
    ("sqlite", "NORMAL", "steps"): 0.5,
    ("sqlite", "FULL", "timers"): 0.5,
    ("sqlite", "NORMAL", "timers"): 0.5,
    ("postgresql", "synchronous_commit=on", "steps"): 0.9,
    ("postgresql", "synchronous_commit=on", "timers"): 0.5,
}


def derive(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-step cost at the largest size over the smallest, and each target met or not."""
    scaling = []
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        by_key.setdefault((run["backend"], run["sync"]), []).append(run)
    for (backend, sync), group in by_key.items():
        group.sort(key=lambda r: r["size"])
        if len(group) < 2:
            continue
        small, big = group[0], group[-1]
        for name, w in big["workloads"].items():
            base = small["workloads"].get(name)
            if base and base["engine_us_per_op"]:
                scaling.append(
                    {
                        "backend": backend,
                        "sync": sync,
                        "workload": name,
                        "sizes": [small["size"], big["size"]],
                        "cost_us": [base["engine_us_per_op"], w["engine_us_per_op"]],
                        "ratio": round(w["engine_us_per_op"] / base["engine_us_per_op"], 2),
                        "target": 1.25,
                    }
                )
    targets = []
    for run in runs:
        for (backend, sync, name), want in TARGETS.items():
            if run["backend"] != backend or run["sync"] != sync:
                continue
            # the steps target holds for steps from several processes too (a back office
            # runs many), where a step's computing can overlap another's flush
            names = [name, "steps_2p", "steps_4p"] if name == "steps" else [name]
            for shown in names:
                w = run["workloads"].get(shown)
                if w and w["ratio"] is not None:
                    targets.append(
                        {
                            "what": f"{backend} {sync} {shown} engine/limit, size {run['size']}",
                            "measured": w["ratio"],
                            "target": want,
                            "met": w["ratio"] >= want,
                        }
                    )
        one, four = run["workloads"].get("steps_1p"), run["workloads"].get("steps_4p")
        if run["backend"] == "postgresql" and one and four:
            speedup = round(four["engine_per_s"] / one["engine_per_s"], 2)
            targets.append(
                {
                    "what": f"postgresql 4 processes / 1, size {run['size']}",
                    "measured": speedup,
                    "target": 2.5,
                    "met": speedup >= 2.5,
                }
            )
        worker = run.get("worker")
        if worker and worker.get("pending_timers", 0) >= 1_000_000:
            first = worker["first_timer_s"]
            targets.append(
                {
                    "what": f"{run['backend']} first timer, {worker['pending_timers']} pending (s)",
                    "measured": first,
                    "target": 2.0,
                    "met": first is not None and first <= 2.0,
                }
            )
    for s in scaling:
        if s["workload"] in ("steps", "open", "timers", "get_case", "list_overdue"):
            targets.append(
                {
                    "what": f"{s['backend']} {s['sync']} {s['workload']} cost "
                    f"at {s['sizes'][1]} / {s['sizes'][0]}",
                    "measured": s["ratio"],
                    "target": "<= 1.25",
                    "met": s["ratio"] <= 1.25,
                }
            )
    return {"scaling": scaling, "targets": targets}


def show(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title="omsflow: engine vs the bare-driver limit (same SQL, same durability)")
    for col in (
        "backend",
        "durability",
        "size",
        "workload",
        "ops",
        "engine/s",
        "limit/s",
        "engine/limit",
        "µs/op",
        "stmts/op",
    ):
        table.add_column(
            col, justify="left" if col in ("backend", "durability", "workload") else "right"
        )
    for run in result["runs"]:
        for name, w in run["workloads"].items():
            table.add_row(
                run["backend"],
                run["sync"],
                f"{run['size']:,}",
                name,
                f"{w['ops']:,}",
                f"{w['engine_per_s']:,.0f}",
                f"{w['limit_per_s']:,.0f}",
                f"{w['ratio']:.2f}" if w["ratio"] is not None else "-",
                f"{w['engine_us_per_op']:,.0f}",
                f"{w['statements_per_op']:.1f}",
            )
        worker = run.get("worker")
        if worker:
            table.add_row(
                run["backend"],
                run["sync"],
                f"{run['size']:,}",
                "worker probe",
                f"{worker['pending_timers']:,} pending",
                f"first timer {worker['first_timer_s']} s",
                f"peak RSS {worker['peak_rss_mb']} MB",
                "",
                "",
                "",
            )
        table.add_section()
    console.print(table)
    derived = result.get("derived", {})
    if derived.get("targets"):
        t = Table(title="targets")
        for col in ("what", "measured", "target", "met"):
            t.add_column(col)
        for row in derived["targets"]:
            t.add_row(
                row["what"], str(row["measured"]), str(row["target"]), "yes" if row["met"] else "NO"
            )
        console.print(t)
