"""The workloads, each timed on the engine and replayed on the bare driver.

One ``run_one`` call benchmarks one (backend, durability, size): it clones the filler into an
engine database and a limit database and runs every phase on the engine while a ``Recorder``
keeps its SQL. A single-process phase runs in chunks of about a tenth of a second, each
replayed on the limit database right after the engine ran it, so that both sides are timed
over the same stretch of the host's time (its slow spells last seconds); the phases from
several processes are replayed after the engine's. The SQL is replayed in the order the engine
issued it, so the two databases stay identical; the report gives engine rate, limit rate and
their ratio.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from queue import Empty
from typing import Any, NamedTuple

import psycopg
import sqlalchemy as sa
import structlog

from bench import data
from bench.capture import (
    Event,
    Recorder,
    Replayer,
    SqliteLimit,
    replay_psycopg,
    statements,
)
from engine.api import Engine
from engine.testing import ManualClock, person

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # a Monday, 10:00 in Moscow
TIMERS_DUE = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
TIMERS_RUN = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DUE_PREFIX, PROBE_PREFIX = 0xD0E, 0x9B0
LIFECYCLE: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("take", "operator:bench", {}),
    ("request_info", "operator:bench", {"comment": "Уточните адрес регистрации"}),
    ("reply", "portal:web", {"comment": "Адрес указан верно"}),
    ("approve", "operator:bench", {}),
)


@dataclass(frozen=True)
class Plan:
    """How much work each phase does."""

    cases: int  # opened, then stepped through the lifecycle (4 steps each)
    timers: int  # due at once for the timer phase
    reads: int  # get_case and list_cases calls
    audit: int  # log entries streamed
    proc_cases: int  # cases per process in the PostgreSQL process-scaling phase
    probe: bool  # run the worker probe (peak RSS, first timer)


SMOKE = Plan(cases=12, timers=30, reads=10, audit=300, proc_cases=6, probe=True)
FULL = Plan(cases=1000, timers=100_000, reads=500, audit=100_000, proc_cases=500, probe=True)


@dataclass
class Phase:
    name: str
    ops: int
    engine_s: float
    events: list[Event] = field(repr=False)
    limit_s: float = 0.0
    procs: int = 1
    per_proc: list[list[Event]] = field(default_factory=list, repr=False)
    per_proc_setup: list[list[Event]] = field(default_factory=list, repr=False)

    def result(self) -> dict[str, Any]:
        engine_rate = self.ops / self.engine_s
        limit_rate = self.ops / self.limit_s if self.limit_s else 0.0
        stmts = statements(self.events) + sum(statements(e) for e in self.per_proc)
        return {
            "ops": self.ops,
            "procs": self.procs,
            "engine_s": round(self.engine_s, 4),
            "limit_s": round(self.limit_s, 4),
            "engine_per_s": round(engine_rate, 1),
            "limit_per_s": round(limit_rate, 1),
            "ratio": round(engine_rate / limit_rate, 3) if limit_rate else None,
            "engine_us_per_op": round(1e6 * self.engine_s / self.ops, 1),
            "limit_us_per_op": round(1e6 * self.limit_s / self.ops, 1),
            "statements_per_op": round(stmts / self.ops, 3),
        }


# Set by ``python -m bench``, a process of its own: cached bound loggers, as structlog advises
# for production (otherwise every call through a module-level logger builds a bound logger
# first, ~1 µs, two a timer). A cached logger never sees a later configuration, so the smoke
# test, which runs inside pytest's process, keeps them uncached.
CACHE_LOGGERS = False


def quiet_logs() -> None:
    """The host decides logging (DESIGN.md); the benchmark's host keeps warnings only."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=CACHE_LOGGERS,
    )


def _engine(url: str, clock: ManualClock, sync: str) -> Engine:
    return Engine(url, clock=clock, synchronous=sync, migrate=False)


# Operations per chunk of a single-process phase: about a tenth of a second of engine work.
CHUNK = {"open": 100, "steps": 25, "get_case": 200, "list_overdue": 50}


def _timed(
    rec: Recorder,
    limit: Replayer,
    drain: Callable[[], object],
    name: str,
    ops: int,
    chunks: Sequence[Callable[[], object]],
) -> Phase:
    """Each chunk on the engine, timed with what ``drain`` then finishes, then its statements
    on the limit, timed likewise."""
    engine_s = limit_s = 0.0
    events: list[Event] = []
    for chunk in chunks:
        rec.take()
        rec.on = True
        start = time.perf_counter()
        chunk()
        drain()
        engine_s += time.perf_counter() - start
        rec.on = False
        done = rec.take()
        limit_s += limit(done)
        events.extend(done)
    return Phase(name, ops, engine_s, events, limit_s=limit_s)


def _drain(engine: Engine) -> None:
    """The WAL checkpoints a SQLite engine's chunk left to do, finished in its own time.

    The engine checkpoints from a thread (``engine.store.checkpoints``), and so does the
    limit: left running, one side's checkpoints would land in the other side's next chunk.
    Each side finishes its own after its chunk, inside its time.
    """
    if engine.store.checkpoints is not None:
        engine.store.checkpoints.checkpoint()


def _chunks(n: int, size: int, fn: Callable[[int, int], object]) -> list[Callable[[], object]]:
    """``fn(first, count)`` over ``range(n)`` in chunks of ``size``."""
    return [partial(fn, first, min(size, n - first)) for first in range(0, n, size)]


def _open(engine: Engine, first: int, n: int) -> list[str]:
    return [
        engine.open_case("restore", person("restore", first + i), "portal:web").id for i in range(n)
    ]


def _lifecycle(engine: Engine, ids: Sequence[str]) -> None:
    for trigger, actor, kwargs in LIFECYCLE:
        for cid in ids:
            engine.fire(cid, trigger, actor, **kwargs)


def _reads(engine: Engine, ids: Sequence[str], first: int, n: int) -> None:
    """``n`` reads of ``ids`` round-robin, from the ``first``-th."""
    for i in range(first, first + n):
        engine.get_case(ids[i % len(ids)])


def _lists(engine: Engine, n: int) -> None:
    for _ in range(n):
        engine.list_cases(overdue=True, limit=50)


def _audit(engine: Engine, n: int) -> int:
    seen = 0
    for _entry in engine.audit_log():
        seen += 1
        if seen >= n:
            break
    return seen


def run_one(
    backend: str,
    sync: str,
    size: int,
    plan: Plan,
    *,
    pg_url: str,
    smoke: bool,
    say: Callable[[str], None],
    root: Path = data.OUT,
) -> dict[str, Any]:
    quiet_logs()
    say(f"{backend} {sync} size={size}: preparing databases")
    build = time.perf_counter()
    pair = (
        data.sqlite_pair(size, smoke=smoke, root=root)
        if backend == "sqlite"
        else data.pg_pair(pg_url, size, smoke=smoke)
    )
    data.settle(backend, pair.engine_url)  # the limit's copy with it
    prepared_s = time.perf_counter() - build
    try:
        return _run_pair(pair, backend, sync, size, plan, prepared_s, say)
    finally:
        data.drop_pair(pair)


def _run_pair(
    pair: data.Pair,
    backend: str,
    sync: str,
    size: int,
    plan: Plan,
    prepared_s: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    clock = ManualClock(START)
    engine = _engine(pair.engine_url, clock, sync)
    rec = Recorder(engine.store.engine)
    limit, limit_conn, close_limit = _limit(pair, backend, sync)
    try:
        phases, fill_s = _single_process_phases(
            engine, rec, limit, limit_conn, pair, size, plan, clock, say
        )
    finally:
        engine.close()
        close_limit()
    say("  steps with 1, 2 and 4 processes, chunk by chunk in turn")
    phases.extend(_processes(pair.engine_url, sync, PROCS, plan.proc_cases, 10 * size + 1_000_000))

    say("  replaying the processes' steps on the bare driver")
    _replay_processes_phases(pair, backend, sync, phases)
    out: dict[str, Any] = {
        "backend": backend,
        "sync": sync if backend == "sqlite" else "synchronous_commit=on",
        "size": size,
        "prepare_s": round(prepared_s + fill_s, 1),
        "workloads": {p.name: p.result() for p in phases},
    }
    if plan.probe:
        say("  worker probe")
        out["worker"] = probe_worker(pair.engine_url, backend)
    return out


def _limit(pair: data.Pair, backend: str, sync: str) -> tuple[Replayer, Any, Callable[[], None]]:
    """The limit database's bare connection, kept for the single-process phases (as the
    engine keeps its connection), a replayer on it, and what closes them."""
    if backend == "sqlite":
        lite = SqliteLimit(data.sqlite_path(pair.limit_url), sync)
        return lite.replay, lite.conn, lite.close
    pg = psycopg.connect(data.conninfo(pair.limit_url))
    return (lambda events: replay_psycopg(pg, events)), pg, pg.close


def _single_process_phases(
    engine: Engine,
    rec: Recorder,
    limit: Replayer,
    limit_conn: Any,
    pair: data.Pair,
    size: int,
    plan: Plan,
    clock: ManualClock,
    say: Callable[[str], None],
) -> tuple[list[Phase], float]:
    """Every single-process phase, engine and limit interleaved; also the due fill's time."""
    phases: list[Phase] = []
    drain = partial(_drain, engine)
    base = 10 * size + 1_000_000
    say(f"  open {plan.cases} cases")
    ids: list[str] = []
    phases.append(
        _timed(
            rec,
            limit,
            drain,
            "open",
            plan.cases,
            _chunks(plan.cases, CHUNK["open"], lambda i, n: ids.extend(_open(engine, base + i, n))),
        )
    )
    say(f"  {4 * plan.cases} lifecycle steps")
    phases.append(
        _timed(
            rec,
            limit,
            drain,
            "steps",
            4 * plan.cases,
            _chunks(plan.cases, CHUNK["steps"], lambda i, n: _lifecycle(engine, ids[i : i + n])),
        )
    )

    say(f"  {plan.timers} due timers")
    data_fill = time.perf_counter()
    # The same due cases in both databases; one settle reaches both (the machine, the server).
    # The fill turns the foreign keys' triggers off, which waits for every open transaction on
    # the tables: the limit's connection holds none while it fills.
    limit_conn.rollback()
    _fill_due(pair.backend, pair.engine_url, plan.timers)
    _fill_due(pair.backend, pair.limit_url, plan.timers)
    data.settle(pair.backend, pair.engine_url)
    fill_s = time.perf_counter() - data_fill
    clock.set(TIMERS_RUN)
    report: list[Any] = []
    # as the worker fires a catch-up: counts kept, not an outcome per timer; one call, so one
    # chunk
    phases.append(
        _timed(
            rec,
            limit,
            drain,
            "timers",
            plan.timers,
            [lambda: report.append(engine.fire_due_timers(keep_outcomes=False))],
        )
    )
    fired = report[0].fired
    if fired != plan.timers:
        raise RuntimeError(
            f"expected {plan.timers} timers to fire, {fired} did ({report[0].failed} failed)"
        )

    say("  reads")
    sample = ids + [
        data.case_id(0xF111, i) for i in random.Random(7).sample(range(size), min(size, plan.reads))
    ]
    phases.append(
        _timed(
            rec,
            limit,
            drain,
            "get_case",
            plan.reads,
            _chunks(
                plan.reads,
                CHUNK["get_case"],
                lambda i, n: _reads(engine, sample, i, n),
            ),
        )
    )
    phases.append(
        _timed(
            rec,
            limit,
            drain,
            "list_overdue",
            plan.reads,
            _chunks(plan.reads, CHUNK["list_overdue"], lambda _i, n: _lists(engine, n)),
        )
    )
    streamed: list[int] = []
    # one generator read from start to end: one chunk
    phases.append(
        _timed(
            rec,
            limit,
            drain,
            "audit_stream",
            plan.audit,
            [lambda: streamed.append(_audit(engine, plan.audit))],
        )
    )
    phases[-1].ops = streamed[0]
    return phases, fill_s


def _fill_due(backend: str, url: str, n: int, prefix: int = DUE_PREFIX) -> None:
    """Pending restore cases whose decision target falls due at TIMERS_DUE (setup, untimed)."""
    if backend == "sqlite":
        data.fill_sqlite(data.sqlite_path(url), prefix, 0, n, due=TIMERS_DUE)
    else:
        data.fill_pg(data.conninfo(url), prefix, 0, n, due=TIMERS_DUE)


def _replay_processes_phases(pair: data.Pair, backend: str, sync: str, phases: list[Phase]) -> None:
    for phase in phases:
        if phase.per_proc:
            phase.limit_s = _replay_processes(
                backend, pair.limit_url, sync, phase.per_proc_setup, phase.per_proc
            )


# ---- the same steps from several processes ----------------------------------------------


PROCS = (1, 2, 4)


def _proc_engine(
    url: str, sync: str, k: int, first: int, n: int, barrier: Any, go: Any, out: Any, done: Any
) -> None:
    """One process of a group: opens its cases, then steps a chunk of them at each ``go``."""
    quiet_logs()
    clock = ManualClock(START + timedelta(days=30))
    engine = _engine(url, clock, sync)
    rec = Recorder(engine.store.engine, on=True)
    ids = _open(engine, first, n)  # setup, not timed: only the lifecycle steps are
    rec.on = False
    opened = rec.take()
    out.put(("ready", k))
    for i in range(0, n, CHUNK["steps"]):
        go.get()
        barrier.wait()
        rec.on = True
        start = time.perf_counter()
        _lifecycle(engine, ids[i : i + CHUNK["steps"]])
        _drain(engine)
        end = time.perf_counter()
        rec.on = False
        out.put((start, end))
    engine.close()
    done.put((k, opened, rec.take()))


def _processes(url: str, sync: str, counts: Sequence[int], n: int, first: int) -> list[Phase]:
    """The lifecycle from 1, 2 and 4 processes, each on cases of its own.

    Every group's processes start at once and open their cases; then the groups take turns,
    one chunk each (the lifecycles of 25 cases per process), so that the host's slow spells,
    which last seconds, fall on every group alike: the scaling compares groups timed over
    the same minutes. A group's time is the sum over its chunks of the first start to the
    last end.
    """
    ctx = mp.get_context("fork")
    groups: list[_Group] = []
    for g, procs in enumerate(counts):
        barrier, out, done = ctx.Barrier(procs), ctx.Queue(), ctx.Queue()
        gos = [ctx.Queue() for _ in range(procs)]
        workers = [
            ctx.Process(
                target=_proc_engine,
                args=(
                    url,
                    sync,
                    k,
                    first + 100_000 * (g + 1) + 10_000 * k,
                    n,
                    barrier,
                    gos[k],
                    out,
                    done,
                ),
            )
            for k in range(procs)
        ]
        for w in workers:
            # daemonic: a coordinator that fails does not wait for workers waiting on it
            w.daemon = True
            w.start()
        groups.append(_Group(procs, gos, out, done, workers))
    for group in groups:
        for _ in range(group.procs):
            group.get(group.out)  # its processes' cases are open
    took = dict.fromkeys(counts, 0.0)
    for _chunk in range(0, n, CHUNK["steps"]):
        for group in groups:
            for go in group.gos:
                go.put(True)
            spans = [group.get(group.out) for _ in range(group.procs)]
            took[group.procs] += max(e for _s, e in spans) - min(s for s, _e in spans)
    phases = []
    for group in groups:
        results = sorted(group.get(group.done) for _ in range(group.procs))
        for w in group.workers:
            w.join()
        procs = group.procs
        phase = Phase(f"steps_{procs}p", 4 * n * procs, took[procs], [], procs=procs)
        phase.per_proc = [r[2] for r in results]
        phase.per_proc_setup = [r[1] for r in results]
        phases.append(phase)
    return phases


class _Group(NamedTuple):
    """The processes of one count, and the queues the coordinator drives them with."""

    procs: int
    gos: list[Any]  # one per process: step your next chunk
    out: Any  # "ready", then a (start, end) per chunk
    done: Any  # at the end: (index, setup events, step events)
    workers: list[Any]

    def get(self, queue: Any) -> Any:
        """The next message on ``queue``; raises if one of the processes died instead."""
        while True:
            try:
                return queue.get(timeout=1.0)
            except Empty:
                dead = [w.exitcode for w in self.workers if w.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a benchmark process failed (exit codes {dead})") from None


def _proc_replay(
    backend: str,
    url: str,
    sync: str,
    setup: list[Event],
    events: list[Event],
    barrier: Any,
    queue: Any,
) -> None:
    if backend == "sqlite":
        lite = SqliteLimit(data.sqlite_path(url), sync, processes=True)
        lite.replay(setup)
        barrier.wait()
        start = time.perf_counter()
        lite.replay(events)
        queue.put((start, time.perf_counter()))
        lite.close()
        return
    with psycopg.connect(data.conninfo(url)) as conn:
        replay_psycopg(conn, setup)
        barrier.wait()
        start = time.perf_counter()
        replay_psycopg(conn, events)
        queue.put((start, time.perf_counter()))


def _replay_processes(
    backend: str, url: str, sync: str, setup: list[list[Event]], per_proc: list[list[Event]]
) -> float:
    # The engine processes' opens were not timed, and neither are they here: only the steps.
    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(len(per_proc)), ctx.Queue()
    workers = [
        ctx.Process(target=_proc_replay, args=(backend, url, sync, su, ev, barrier, queue))
        for su, ev in zip(setup, per_proc, strict=True)
    ]
    for w in workers:
        w.start()
    got = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    return float(max(g[1] for g in got) - min(g[0] for g in got))


# ---- the timer worker: peak memory and first timer with many pending ------------------------


def probe_worker(url: str, backend: str, due: int = 20) -> dict[str, Any]:
    """Start ``omsflow``'s worker in a fresh process on ``url`` and watch it from outside."""
    _fill_due(backend, url, due, PROBE_PREFIX)
    db = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    probe_ids = [data.case_id(PROBE_PREFIX, i) for i in range(due)]
    count = sa.text(
        "SELECT count(*) FROM deadlines WHERE status = 'fired' AND case_id IN :ids"
    ).bindparams(sa.bindparam("ids", expanding=True))
    with db.connect() as conn:
        pending = conn.execute(
            sa.text("SELECT count(*) FROM deadlines WHERE status = 'armed'")
        ).scalar()
    run_at = TIMERS_RUN + timedelta(days=60)
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.probe", url, run_at.isoformat()],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    first = None
    try:
        while time.perf_counter() - start < 120:
            with db.connect() as conn:
                fired = conn.execute(count, {"ids": probe_ids}).scalar() or 0
            if fired and first is None:
                first = time.perf_counter() - start
            if fired >= due:
                break
            time.sleep(0.01)
        time.sleep(0.5)
        peak_kb = _peak_rss_kb(child.pid)
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
        db.dispose()
    return {
        "pending_timers": pending,
        "first_timer_s": round(first, 3) if first is not None else None,
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0
