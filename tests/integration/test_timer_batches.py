"""Timer catch-up runs in batches that commit once, each timer's step in its own savepoint.

A case whose step the database refuses (here a trigger raising for that case alone, as a
corrupt row or a violated constraint would) is rolled back alone: the other cases of the batch
fire and commit, the refused case keeps its state, log and armed deadlines, the failure is
counted and logged as an error, and the case's timers fire in order once the cause is gone.
With batches of one the refused timer heads every batch: it must not stop the run either.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from engine.api import Engine, FireReport
from engine.store.repository import Tx
from engine.testing import ManualClock, person
from engine.timers.worker import Worker
from tests.conftest import START


def _poison(eng: Engine, case_id: str) -> None:
    with eng.store.write() as tx:
        if eng.store.dialect == "sqlite":
            tx.conn.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON transition_log "
                f"WHEN NEW.case_id = '{case_id}' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            )
        else:
            tx.conn.exec_driver_sql(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.case_id = '{case_id}' THEN RAISE EXCEPTION 'poisoned'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            tx.conn.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON transition_log "
                "FOR EACH ROW EXECUTE FUNCTION poison()"
            )


def _cure(eng: Engine) -> None:
    with eng.store.write() as tx:
        if eng.store.dialect == "sqlite":
            tx.conn.exec_driver_sql("DROP TRIGGER poison")
        else:
            tx.conn.exec_driver_sql("DROP TRIGGER poison ON transition_log")


@pytest.mark.parametrize("batch", [200, 1])
def test_one_refused_case_is_rolled_back_alone_and_fires_later(db_url: str, batch: int) -> None:
    clock = ManualClock(START)
    with Engine(db_url, clock=clock) as eng:
        ids = [eng.open_case("restore", person("restore", i), "portal:web").id for i in range(3)]
        bad = ids[1]
        before = eng.get_case(bad)
        _poison(eng, bad)
        clock.set(START + timedelta(days=10))

        with capture_logs() as logs:
            report = eng.fire_due_timers(batch=batch)

        assert report.fired == 4  # decision_target and decision_limit of the two good cases
        # the case's first timer fails; its second waits with it for the next run
        assert report.failed == 1
        assert {o.deadline.case_id for o in report.outcomes if not o.fired} == {bad}
        assert all("poisoned" in (o.problem or "") for o in report.outcomes if not o.fired)
        failures = [e for e in logs if e["event"] == "timer_failed"]
        assert failures
        assert {(e["log_level"], e["case_id"]) for e in failures} == {("error", bad)}
        for good in (ids[0], ids[2]):
            assert [e.trigger for e in eng.history(good)][1:] == ["target_missed", "flag_overdue"]
        after = eng.get_case(bad)
        assert (after.version, after.state, after.deadlines) == (
            before.version,
            before.state,
            before.deadlines,
        )
        assert len(eng.history(bad)) == 1
        assert eng.verify() == {}

        _cure(eng)
        assert eng.fire_due_timers(batch=batch).fired == 2
        assert [e.trigger for e in eng.history(bad)][1:] == ["target_missed", "flag_overdue"]
        with eng.store.read() as tx:
            armed = tx.conn.execute(
                sa.text("SELECT COUNT(*) FROM deadlines WHERE status = 'armed'")
            ).scalar()
        assert armed == 0
        assert eng.verify() == {}


def _case_reads(eng: Engine) -> list[str]:
    seen: list[str] = []

    @sa.event.listens_for(eng.store.engine, "before_cursor_execute")
    def _keep(_c: object, _cur: object, statement: str, *_rest: object) -> None:
        if statement.startswith("SELECT") and "WHERE id = " in statement.replace("\n", " "):
            seen.append(statement)

    return seen


def _take(tx: Tx, case_id: str) -> None:
    tx.update_case(
        case_id,
        1,
        state="in_review",
        version=2,
        is_open=True,
        flags=(),
        data=None,
        last_hash="f" * 64,
        updated_at=START,
    )


def _write_then_fail(tx: Tx, case_id: str) -> None:
    with tx.savepoint():
        _take(tx, case_id)
        raise RuntimeError("the step failed after its write")


def test_what_a_released_savepoint_read_stays_known_and_a_rolled_back_one_forgets(
    db_url: str,
) -> None:
    with Engine(db_url, clock=ManualClock(START)) as eng:
        case_id = eng.open_case("restore", person("restore", 1), "portal:web").id
        reads = _case_reads(eng)
        with eng.store.write() as tx:
            with tx.savepoint():
                assert tx.get_case(case_id) is not None
            assert tx.get_case(case_id) is not None  # handed to the transaction: no read
            assert len(reads) == 1
            with pytest.raises(RuntimeError):
                _write_then_fail(tx, case_id)
            record = tx.get_case(case_id)  # what the rolled-back savepoint wrote is forgotten
            assert record is not None
            assert (record.version, record.state) == (1, "pending")
            assert len(reads) == 2


def test_savepoints_one_after_another_share_a_name_and_each_rolls_back_alone(
    db_url: str,
) -> None:
    with Engine(db_url, clock=ManualClock(START)) as eng:
        first = eng.open_case("restore", person("restore", 1), "portal:web").id
        second = eng.open_case("restore", person("restore", 2), "portal:web").id
        names: set[str] = set()

        @sa.event.listens_for(eng.store.engine, "before_cursor_execute")
        def _keep(_c: object, _cur: object, statement: str, *_rest: object) -> None:
            if statement.startswith("SAVEPOINT"):
                names.add(statement)

        with eng.store.write() as tx:
            with tx.savepoint():
                _take(tx, first)
            with pytest.raises(RuntimeError):
                _write_then_fail(tx, second)  # the same name again: undoes only its own write
            with tx.savepoint(), pytest.raises(RuntimeError):
                _write_then_fail(tx, second)  # nested: rolled back, the outer goes on
        # a name per depth, so that a batch of hundreds prepares two statements, not hundreds
        assert names == {"SAVEPOINT omsflow_sp_1", "SAVEPOINT omsflow_sp_2"}
        one, two = eng.get_case(first), eng.get_case(second)
        assert (one.version, one.state) == (2, "in_review")
        assert (two.version, two.state) == (1, "pending")


def test_a_case_with_two_due_timers_reads_its_deadlines_once(db_url: str) -> None:
    clock = ManualClock(START)
    with Engine(db_url, clock=clock) as eng:
        eng.open_case("restore", person("restore", 1), "portal:web")
        seen: list[str] = []

        @sa.event.listens_for(eng.store.engine, "before_cursor_execute")
        def _keep(_c: object, _cur: object, statement: str, *_rest: object) -> None:
            if "FROM deadlines" in statement:
                seen.append(statement)

        clock.set(START + timedelta(days=10))
        report = eng.fire_due_timers()
        assert report.fired == 2
        # the batch's claim and its prefetch, and the empty claim that ends the run; the
        # case's second timer and the check for a third come from the batch's memory
        assert len(seen) == 3, seen


def test_on_postgresql_a_timer_writes_its_case_first_then_the_rest_in_one_round_trip(
    pg_url: str,
) -> None:
    clock = ManualClock(START)
    with Engine(pg_url, clock=clock) as eng:
        case_id = eng.open_case("restore", person("restore", 1), "portal:web").id
        sent: list[tuple[str, bool]] = []

        @sa.event.listens_for(eng.store.engine, "before_cursor_execute")
        def _keep(_c: object, cursor: Any, statement: str, *_rest: object) -> None:
            if not statement.startswith("SELECT"):
                words = " ".join(statement.split()[:3])
                sent.append((words, cursor.connection.pgconn.pipeline_status != 0))

        clock.set(START + timedelta(days=10))
        assert eng.fire_due_timers().fired == 2
        start, end = ("SAVEPOINT omsflow_sp_1", False), ("RELEASE SAVEPOINT omsflow_sp_1", False)
        case = ("UPDATE cases SET", False)  # checked alone, before the rest goes out
        log, notice = ("INSERT INTO transition_log", True), ("INSERT INTO outbox", True)
        fired = ("UPDATE deadlines SET", True)  # the timer closed as fired
        assert sent == [start, case, log, fired, end, start, case, log, notice, fired, end]
        # both fired and committed as they would one statement at a time
        assert [e.trigger for e in eng.history(case_id)] == [
            "open",
            "target_missed",
            "flag_overdue",
        ]
        after = eng.get_case(case_id)
        assert (after.state, after.deadlines) == ("pending", ())
        assert "overdue" in after.flags
        assert eng.verify() == {}


def test_a_catch_up_that_keeps_no_outcomes_still_counts_and_keeps_failures(db_url: str) -> None:
    clock = ManualClock(START)
    with Engine(db_url, clock=clock) as eng:
        ids = [eng.open_case("restore", person("restore", i), "portal:web").id for i in range(3)]
        good = [ids[0], ids[2]]
        due = [d.due_at for cid in good for d in eng.get_case(cid).deadlines if d.due_at]
        _poison(eng, ids[1])
        clock.set(START + timedelta(days=10))

        report = eng.fire_due_timers(keep_outcomes=False)

        assert (report.fired, report.stale, report.failed) == (4, 0, 1)
        assert [o.deadline.case_id for o in report.outcomes] == [ids[1]]  # the failure only
        worst = max(START + timedelta(days=10) - d for d in due).total_seconds()
        assert report.max_lateness_seconds == worst


def _fire_counting(db_url: str, cases: int, prefix: str) -> tuple[FireReport, list[int], str]:
    """Open restore cases, let their timers fall due and fire them all at once: the report,
    how many statements starting with ``prefix`` each commit held, and the dialect."""
    clock = ManualClock(START)
    with Engine(db_url, clock=clock) as eng:
        for i in range(cases):
            eng.open_case("restore", person("restore", i), "portal:web")
        per_commit: list[int] = [0]

        @sa.event.listens_for(eng.store.engine, "before_cursor_execute")
        def _count(_c: object, _cur: object, statement: str, *_rest: object) -> None:
            if statement.startswith(prefix):
                per_commit[-1] += 1

        @sa.event.listens_for(eng.store.engine, "commit")
        def _commit(_c: object) -> None:
            per_commit.append(0)

        clock.set(START + timedelta(days=10))
        return eng.fire_due_timers(batch=200), per_commit, eng.store.dialect


def test_a_run_commits_its_oldest_timers_in_a_small_first_batch_then_larger_ones(
    db_url: str,
) -> None:
    report, per_commit, _ = _fire_counting(db_url, 25, "INSERT INTO transition_log")

    assert report.fired == 50  # two timers a case
    fired = [n for n in per_commit if n]
    assert sum(fired) == 50
    # eight claimed timers first (their cases' later timers come along), not all 50
    assert 0 < fired[0] <= 16
    assert len(fired) >= 2
    assert fired[1] > fired[0]


def test_a_postgresql_batch_stays_within_the_servers_subtransaction_cache(db_url: str) -> None:
    # Past 64 subtransactions in one transaction PostgreSQL's snapshots overflow to
    # pg_subtrans and every session of the server slows down; SQLite has no such limit.
    report, per_commit, dialect = _fire_counting(db_url, 100, "SAVEPOINT")

    assert report.fired == 200  # two timers a case, every one fired
    assert sum(per_commit) == 200
    if dialect == "postgresql":
        assert max(per_commit) == 64
    else:
        assert max(per_commit) > 64


class _Recording(Engine):
    """A real engine that remembers how the worker asked it to fire."""

    asked: list[dict[str, object]]

    def fire_due_timers(self, until: datetime | None = None, **kwargs: Any) -> FireReport:
        self.asked = [*getattr(self, "asked", []), kwargs]
        return super().fire_due_timers(until, **kwargs)


def test_the_worker_fires_without_keeping_each_outcome(db_url: str) -> None:
    clock = ManualClock(START)
    with _Recording(db_url, clock=clock) as eng:
        eng.open_case("restore", person("restore", 1), "portal:web")
        clock.set(START + timedelta(days=10))
        Worker(eng, batch=7).tick()
        assert eng.asked == [{"batch": 7, "keep_outcomes": False}]
        assert eng.next_due() is None or eng.next_due() > clock.now()


def _claim_plan(eng: Engine) -> str:
    """The database's plan for the worker's claim, exactly as the engine sends it."""
    sent: list[tuple[str, Any]] = []

    def _keep(_c: object, _cur: object, statement: str, params: Any, *_rest: object) -> None:
        if "due_at <=" in statement:
            sent.append((statement, params))

    sa.event.listen(eng.store.engine, "before_cursor_execute", _keep)
    with eng.store.write() as tx:
        tx.due_deadlines(START + timedelta(days=10), limit=64, skip_locked=True)
    sa.event.remove(eng.store.engine, "before_cursor_execute", _keep)
    statement, params = sent[-1]
    with eng.store.read() as tx:
        cursor = tx.conn.connection.cursor()
        if eng.store.dialect == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", params)
            return " / ".join(str(row[-1]) for row in cursor.fetchall())
        # the planner's costs must not hide a sort: with every sort priced out, a plan that
        # still sorts has no index that gives the claim's order
        for setting in ("enable_sort", "enable_incremental_sort", "enable_seqscan"):
            cursor.execute(f"SET LOCAL {setting} = off")
        cursor.execute(f"EXPLAIN {statement}", params)
        return " / ".join(str(row[0]) for row in cursor.fetchall())


def test_a_claim_reads_due_timers_in_order_off_an_index_and_never_sorts_them(
    db_url: str,
) -> None:
    # Deadlines counted in days end at a local midnight, so a catch-up's timers share their
    # due instant by the thousand. A claim that sorted every timer of the oldest instant by id
    # to return 64 made a PostgreSQL catch-up quadratic (0.75 s a batch at 100,000 due).
    clock = ManualClock(START)
    with Engine(db_url, clock=clock) as eng:
        for i in range(3):
            eng.open_case("restore", person("restore", i), "portal:web")
        plan = _claim_plan(eng)
    assert "deadlines" in plan
    assert "Sort" not in plan, plan
    assert "TEMP B-TREE" not in plan, plan
