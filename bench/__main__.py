"""``python -m bench``: run the benchmark, print the table, write the JSON results.

python -m bench --smoke                      # seconds: tiny sizes, every workload
python -m bench --size 10000 --size 1000000 --backend all --sync FULL --sync NORMAL
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import report, workloads
from bench.data import OUT
from bench.workloads import FULL, SMOKE, run_one

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def machine() -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run(
    *,
    sizes: list[int],
    backends: list[str],
    syncs: list[str],
    smoke: bool,
    pg_url: str,
    out: Path | None,
    timers: int | None = None,
    cases: int | None = None,
    probe: bool = True,
    quiet: bool = False,
    work_dir: Path = OUT,
) -> dict[str, Any]:
    """Run every (backend, durability, size) and return (and write) the result document."""
    console = Console(stderr=True, quiet=quiet)
    plan = SMOKE if smoke else FULL
    plan = replace(plan, probe=probe)
    if timers is not None:
        plan = replace(plan, timers=timers)
    if cases is not None:
        plan = replace(plan, cases=cases, proc_cases=cases // 2 or 1)
    runs = []
    started = time.time()
    for backend in backends:
        for sync in syncs if backend == "sqlite" else syncs[:1]:
            for size in sizes:
                runs.append(
                    run_one(
                        backend,
                        sync,
                        size,
                        plan,
                        pg_url=pg_url,
                        smoke=smoke,
                        say=console.log,
                        root=work_dir,
                    )
                )
    result: dict[str, Any] = {
        "machine": machine(),
        "plan": plan.__dict__,
        "smoke": smoke,
        "seconds": round(time.time() - started, 1),
        "runs": runs,
    }
    result["derived"] = report.derive(runs)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--size", type=int, action="append", help="existing cases (repeat; default 10000)"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="sqlite")
    parser.add_argument(
        "--sync",
        action="append",
        choices=["FULL", "NORMAL"],
        help="SQLite synchronous (repeat; default FULL)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks that everything runs"
    )
    parser.add_argument("--timers", type=int, help="due timers fired at once (default 100000)")
    parser.add_argument("--cases", type=int, help="cases opened and stepped (default 1000)")
    parser.add_argument("--no-probe", action="store_true", help="skip the worker probe")
    parser.add_argument("--pg-url", default=os.environ.get("OMSFLOW_BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--out", type=Path, default=OUT / "results.json")
    parser.add_argument(
        "--work-dir", type=Path, default=OUT, help="SQLite cache and work files (bench/out)"
    )
    args = parser.parse_args()
    workloads.CACHE_LOGGERS = True
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    sizes = args.size or ([200] if args.smoke else [10_000])
    result = run(
        sizes=sizes,
        backends=backends,
        syncs=args.sync or ["FULL"],
        smoke=args.smoke,
        pg_url=args.pg_url,
        out=args.out,
        timers=args.timers,
        cases=args.cases,
        probe=not args.no_probe,
        work_dir=args.work_dir,
    )
    report.show(result)
    Console().print(f"results: {args.out}")


if __name__ == "__main__":
    main()
