"""The repository and unit of work: every SQL statement the engine issues lives here.

``Store.write()`` opens one transaction (``BEGIN IMMEDIATE`` on SQLite, so that two writers
queue instead of failing on a lock upgrade) and yields a ``Tx`` whose methods read and write
rows; the transaction commits when the block ends and rolls back on any exception.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from engine.errors import Conflict, EngineError, StoreUnavailable, TransactionConflict
from engine.machines.log import LogEntry
from engine.records import build, evolve
from engine.store.checkpoints import Checkpointer
from engine.store.codec import Codec, codec_for, dumps, loads
from engine.store.connections import StepConnections
from engine.store.schema import (
    access_log,
    cases,
    deadlines,
    idempotency_keys,
    outbox,
    transition_log,
)
from engine.store.turns import WriterTurns

if TYPE_CHECKING:
    from alembic.config import Config

OPEN_DEADLINE = ("armed", "paused")
# deadlock detected, serialization failure: PostgreSQL rolled the transaction back; retryable
_RETRYABLE = ("40P01", "40001")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PG_CACHED_SUBXIDS = 64  # see Tx.savepoint_budget


@dataclass(frozen=True)
class CaseRecord:
    id: str
    type: str
    definition_version: int
    state: str
    version: int
    is_open: bool
    overdue: bool
    flags: frozenset[str]
    data: dict[str, Any]
    zone: str
    subject_key: str
    last_hash: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DeadlineRecord:
    id: int
    case_id: str
    name: str
    trigger: str
    amount: int
    unit: str
    zone: str
    status: str
    event_at: datetime
    due_at: datetime | None
    remaining_seconds: float | None
    resumed_at: datetime | None
    armed_seq: int
    closed_seq: int | None
    closed_at: datetime | None
    calendar: str | None


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    event_id: str
    case_id: str
    seq: int
    kind: str
    audience: str
    text: str
    payload: dict[str, Any]
    created_at: datetime
    acked_at: datetime | None


@dataclass(frozen=True)
class NewDeadline:
    name: str
    trigger: str
    amount: int
    unit: str
    zone: str
    event_at: datetime
    due_at: datetime
    calendar: str | None


def normalize_url(url: str) -> str:
    """PostgreSQL URLs without a driver use psycopg 3, the driver this project supports."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


# Statements SQLAlchemy runs are built once, with bind parameters, at import: one built per
# call (``.where(...).values(...)``) costs 100-450 us of Python to construct and to derive its
# cache key. The step's own statements bypass SQLAlchemy altogether (``_SQL_*`` below).
_DEADLINE_FIELDS = tuple(DeadlineRecord.__dataclass_fields__)
_CASE_FIELDS = tuple(CaseRecord.__dataclass_fields__)

# The step's own statements, written out for the bare driver (see ``Tx._run``). A statement
# run through SQLAlchemy costs 60-100 us of Python (parameter processing, result wrapping)
# against 3-10 us in the driver, and a step runs 6-8 of them. ``:name`` placeholders; the
# codec turns them into the driver's style.


def _columns(fields: Sequence[str], table: str = "") -> str:
    # "trigger" is an SQL keyword: quoted, as SQLAlchemy quotes it
    prefix = f"{table}." if table else ""
    return ", ".join(prefix + ('"trigger"' if f == "trigger" else f) for f in fields)


_SQL_CASE_COLUMNS = _columns(_CASE_FIELDS)
_SQL_DEADLINE_COLUMNS = _columns(_DEADLINE_FIELDS)
# (S608: the f-strings below join the records' own field names at import, never input.)
_SQL_GET_CASE = f"SELECT {_SQL_CASE_COLUMNS} FROM cases WHERE id = :b_id"  # noqa: S608
_SQL_CASES_OF_SUBJECT = (
    f"SELECT {_SQL_CASE_COLUMNS} FROM cases "  # noqa: S608
    "WHERE subject_key = :b_subject ORDER BY created_at"
)
_SQL_INSERT_CASE = (
    f"INSERT INTO cases ({_SQL_CASE_COLUMNS}) "  # noqa: S608
    f"VALUES ({', '.join(':' + f for f in _CASE_FIELDS)})"
)
_SQL_UPDATE_CASE = (
    "UPDATE cases SET state = :state, version = :version, is_open = :is_open, "
    "overdue = :overdue, flags = :flags, data = :data, last_hash = :last_hash, "
    "updated_at = :updated_at WHERE id = :b_id AND version = :b_version"
)
# most steps leave the application as it is: neither encode it again nor write it again
_SQL_UPDATE_CASE_KEEP_DATA = _SQL_UPDATE_CASE.replace(" data = :data,", "")
# ``{where}`` is built from fixed column names; every value is a bind parameter
_SQL_LIST_CASES = (
    f"SELECT {_SQL_CASE_COLUMNS} FROM cases WHERE {{where}} "  # noqa: S608
    "ORDER BY created_at DESC, id DESC LIMIT :b_limit"
)
_SQL_CASES_BY_ID = f"SELECT {_SQL_CASE_COLUMNS} FROM cases WHERE id IN ({{ids}})"  # noqa: S608
_SQL_CASE_VERSION = "SELECT version FROM cases WHERE id = :b_id"
LOG_FIELDS = tuple(LogEntry.__dataclass_fields__)
_SQL_INSERT_LOG = (
    f"INSERT INTO transition_log ({_columns(LOG_FIELDS)})"  # noqa: S608
    f" VALUES ({', '.join(':' + f for f in LOG_FIELDS)})"
)
# ``{where}`` and ``{order}`` are built from fixed column names; every value is a parameter
_SQL_ITER_LOG = (
    f"SELECT id, {_columns(LOG_FIELDS)} FROM transition_log "  # noqa: S608
    "WHERE {where} ORDER BY {order} LIMIT :b_limit"
)
_SQL_OPEN_DEADLINES = (
    f"SELECT {_SQL_DEADLINE_COLUMNS} FROM deadlines "  # noqa: S608
    "WHERE case_id = :b_case AND status IN ('armed', 'paused') ORDER BY due_at, id"
)
_SQL_OPEN_DEADLINES_OF = (
    f"SELECT {_SQL_DEADLINE_COLUMNS} FROM deadlines "  # noqa: S608
    "WHERE case_id IN ({ids}) AND status IN ('armed', 'paused') ORDER BY due_at, id"
)
_SQL_DUE = (
    f"SELECT {_SQL_DEADLINE_COLUMNS} FROM deadlines "  # noqa: S608
    "WHERE status = 'armed' AND due_at <= :b_until{skip} ORDER BY due_at, id LIMIT :b_limit"
)
# A worker's claim locks each due timer together with its case: every writer then takes the
# case's lock before its deadlines' (a step updates the case row first), so a worker and an
# operator never wait on each other in opposite orders; a case in a step is passed over.
_SQL_DUE_SKIP_LOCKED = (
    f"SELECT {_columns(_DEADLINE_FIELDS, 'deadlines')} "  # noqa: S608
    "FROM deadlines JOIN cases ON cases.id = deadlines.case_id "
    "WHERE deadlines.status = 'armed' AND deadlines.due_at <= :b_until{skip} "
    "ORDER BY deadlines.due_at, deadlines.id LIMIT :b_limit "
    "FOR UPDATE OF deadlines, cases SKIP LOCKED"
)
_SQL_INSERT_DEADLINE = (
    'INSERT INTO deadlines (case_id, name, "trigger", amount, unit, zone, status, event_at, '
    "due_at, armed_seq, calendar) VALUES (:case_id, :name, :trigger, :amount, :unit, :zone, "
    "'armed', :event_at, :due_at, :armed_seq, :calendar) RETURNING id"
)
_SQL_CLOSE_DEADLINES = (
    "UPDATE deadlines SET status = :status, closed_seq = :closed_seq, closed_at = :closed_at "
    "WHERE id IN ({ids}) AND status IN ('armed', 'paused')"
)
_SQL_CLOSE_DUE = _SQL_CLOSE_DEADLINES.format(ids=":i0") + " AND due_at = :b_due"
_SQL_PAUSE_DEADLINE = (
    "UPDATE deadlines SET status = 'paused', due_at = NULL, "
    "remaining_seconds = :remaining_seconds WHERE id = :b_id AND status = 'armed' "
    "AND due_at = :b_due"
)
_SQL_RESUME_DEADLINE = (
    "UPDATE deadlines SET status = 'armed', due_at = :due_at, resumed_at = :resumed_at "
    "WHERE id = :b_id AND status = 'paused'"
)
_SQL_GET_IDEMPOTENCY = "SELECT request_hash, result FROM idempotency_keys WHERE key = :b_key"
_SQL_INSERT_OUTBOX = (
    "INSERT INTO outbox (event_id, case_id, seq, kind, audience, text, payload, created_at) "
    "VALUES (:event_id, :case_id, :seq, :kind, :audience, :text, :payload, :created_at)"
)


def _deadline(row: sa.Row[Any]) -> DeadlineRecord:
    # Positional when the row is the table's columns in the record's order (every query here).
    if row._fields == _DEADLINE_FIELDS:
        return DeadlineRecord(*row)  # type: ignore[call-arg]
    return DeadlineRecord(**{name: row._mapping[name] for name in _DEADLINE_FIELDS})


def _raw_case(row: Sequence[Any], c: Codec) -> CaseRecord:
    (id_, type_, version_of, state, version, is_open, overdue, flags, data, zone, subject, head,
     created, updated) = row  # fmt: skip
    return build(
        CaseRecord,
        _CASE_FIELDS,
        (
            id_,
            type_,
            version_of,
            state,
            version,
            c.bool_out(is_open),
            c.bool_out(overdue),
            frozenset(c.json_out(flags)),
            dict(c.json_out(data)),
            zone,
            subject,
            head,
            c.time_out(created),
            c.time_out(updated),
        ),
    )


def _raw_deadline(row: Sequence[Any], c: Codec) -> DeadlineRecord:
    (id_, case_id, name, trigger, amount, unit, zone, status, event_at, due_at, remaining,
     resumed_at, armed_seq, closed_seq, closed_at, calendar) = row  # fmt: skip
    time_out = c.time_out
    return build(
        DeadlineRecord,
        _DEADLINE_FIELDS,
        (
            id_,
            case_id,
            name,
            trigger,
            amount,
            unit,
            zone,
            status,
            time_out(event_at),
            time_out(due_at),
            remaining,
            time_out(resumed_at),
            armed_seq,
            closed_seq,
            time_out(closed_at),
            calendar,
        ),
    )


def _entry(row: sa.Row[Any]) -> LogEntry:
    m = row._mapping
    return LogEntry(
        case_id=m["case_id"],
        seq=m["seq"],
        trigger=m["trigger"],
        from_state=m["from_state"],
        to_state=m["to_state"],
        actor=m["actor"],
        reason=m["reason"],
        comment=m["comment"],
        changes=m["changes"],
        correlation_id=m["correlation_id"],
        at=m["at"],
        recorded_at=m["recorded_at"],
        prev_hash=m["prev_hash"],
        hash=m["hash"],
        meta=m["meta"],
    )


def _raw_entry(row: Sequence[Any], c: Codec) -> LogEntry:
    (_id, case_id, seq, trigger, from_state, to_state, actor, reason, comment, changes,
     correlation_id, at, recorded_at, prev_hash, hash_, meta) = row  # fmt: skip
    return build(
        LogEntry,
        LOG_FIELDS,
        (
            case_id,
            seq,
            trigger,
            from_state,
            to_state,
            actor,
            reason,
            comment,
            c.json_out(changes),
            correlation_id,
            c.time_out(at),
            c.time_out(recorded_at),
            prev_hash,
            hash_,
            c.json_out(meta),
        ),
    )


def _case_sql(locking: bool) -> str:
    return _SQL_GET_CASE + " FOR UPDATE" if locking else _SQL_GET_CASE


def _moved(deadline: DeadlineRecord) -> TransactionConflict:
    return TransactionConflict(
        f"deadline {deadline.name!r} of case {deadline.case_id} moved while the step was computed"
    )


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class Write(NamedTuple):
    """One write statement, built and not yet run (``Tx.staging``)."""

    sql: str
    params: dict[str, Any]
    check: Callable[[Any], None] | None  # of the cursor, inside the transaction: raises
    keep: Callable[[], None] | None  # the identity map's upkeep once the write is done


class _Scope:
    """A transaction or savepoint of a ``Tx`` and the keys it remembered.

    What a savepoint remembered is void once it is rolled back; once it is released it
    belongs to the enclosing scope, as the rows it wrote do.
    """

    __slots__ = ("active", "cases", "opens")

    def __init__(self) -> None:
        self.active = True
        self.cases: list[str] = []
        self.opens: list[str] = []


class Tx:
    """One open transaction; every method is one or a few SQL statements.

    The transaction remembers the cases and open deadlines it has read or written (an
    identity map), so that a step reads a case once: the load before the step, the timer
    catch-up and the view after it are served from memory. It is safe because a writing
    transaction holds the case (``BEGIN IMMEDIATE`` on SQLite; on PostgreSQL the step's
    version-checked UPDATE locks the row), and every write here updates what it remembers.
    Each remembered value is tagged with the innermost transaction or savepoint (``savepoint``)
    that last wrote it and is forgotten once that one has ended: a savepoint rolled back (one
    failed timer among a batch) never leaves a stale case behind, and a savepoint released
    hands what it remembered to the scope around it.

    The statements of a step run on the connection's own DBAPI cursor (``_run``), inside the
    transaction SQLAlchemy opened; the rest go through SQLAlchemy.

    An optimistic step builds its write statements before it takes the write lock
    (``staging``) and runs them inside it (``run_staged``); the identity map's upkeep of those
    writes waits until ``writing`` has committed and let the lock go, or until the map is read
    first. The lock is then held for the statements and the commit, and little else.
    """

    def __init__(
        self, conn: Connection, turn: Callable[[], AbstractContextManager[None]] = nullcontext
    ) -> None:
        self.conn = conn
        self._turn = turn
        self.dialect = conn.dialect.name
        self._codec = codec_for(self.dialect)
        self._cursor: Any = None
        # looked up once: SQLAlchemy builds these listener views on every attribute access
        self._listeners = _listeners(conn)
        self._sql = self._codec.sql
        self._scopes = [_Scope()]  # the transaction, then the savepoints open inside it
        self._staging: list[Write] | None = None  # set: writes are collected, not run
        self._later: list[Callable[[], None]] | None = None  # set: upkeep waits for the commit
        self.savepoints = 0  # opened in this transaction, released or not
        # PostgreSQL keeps the subtransactions of a transaction in a per-backend cache of 64
        # (PGPROC_MAX_CACHED_SUBXIDS), and a released savepoint stays in it until the commit.
        # One transaction past it "overflows": until it ends, every session's snapshot checks
        # go through pg_subtrans, a server-wide slowdown. SQLite has no such limit.
        self.savepoint_budget = _PG_CACHED_SUBXIDS if self.dialect == "postgresql" else None
        self._cases: dict[str, tuple[_Scope, CaseRecord]] = {}
        self._open: dict[str, tuple[_Scope, list[DeadlineRecord]]] = {}
        # which case a remembered deadline belongs to: a timer batch remembers hundreds of
        # cases, and closing one deadline must not walk all of them
        self._owner: dict[int, str] = {}
        # PostgreSQL sorts NULL last, SQLite first: the remembered lists sort as a query would.
        nulls_first = self.dialect != "postgresql"
        self._order: Callable[[DeadlineRecord], tuple[Any, ...]] = lambda d: (
            (d.due_at is not None) if nulls_first else (d.due_at is None),
            d.due_at or _EPOCH,
            d.id,
        )

    # ---- the bare driver ------------------------------------------------------------------

    def _run(self, sql: str, params: dict[str, Any]) -> Any:
        """Execute on the DBAPI cursor; returns the cursor (its rows, its rowcount)."""
        if self._cursor is None:
            self._cursor = self.conn.connection.cursor()
        return _driver_execute(self.conn, self._cursor, self._sql(sql), params, self._listeners)

    def _run_pipelined(self, statements: Sequence[tuple[str, dict[str, Any]]]) -> list[Any]:
        """Execute several statements in one round trip (PostgreSQL's pipeline mode); returns
        a cursor for each, holding its result, as ``_run`` would have.

        The server runs them in order and stops at the first that fails: that error is
        raised, once every result is in, and the transaction is then aborted. Listeners see
        each statement before it is sent, and after every result arrived.
        """
        driver = self.conn.connection.dbapi_connection
        assert driver is not None
        before, after, error = self._listeners
        conn, sent = self.conn, [(self._sql(sql), params) for sql, params in statements]
        cursors = [driver.cursor() for _ in sent]
        sending = (before, (), error)  # the after-listeners wait for the results
        try:
            with driver.pipeline():
                for cursor, (sql, params) in zip(cursors, sent, strict=True):
                    _driver_execute(conn, cursor, sql, params, sending)
        except error as exc:
            # which statement failed is not known here: the error names them all
            text = ";\n".join(sql for sql, _params in sent)
            raise DBAPIError.instance(text, None, exc, error, hide_parameters=True) from exc
        for cursor, (sql, params) in zip(cursors, sent, strict=True):
            for fn in after:
                fn(conn, cursor, sql, params, None, False)
        return cursors

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A savepoint: an exception inside rolls back what the block wrote, and only that."""
        # named by depth: the savepoints of a timer batch, one after another, reuse one name,
        # and so one prepared statement each in the driver's cache instead of 400 a batch
        name = f"omsflow_sp_{len(self._scopes)}"
        self._run(f"SAVEPOINT {name}", {})
        self.savepoints += 1
        scope = _Scope()
        self._scopes.append(scope)
        try:
            yield
        except BaseException:
            self._end(scope)
            self._run(f"ROLLBACK TO SAVEPOINT {name}", {})
            self._run(f"RELEASE SAVEPOINT {name}", {})
            raise
        self._run(f"RELEASE SAVEPOINT {name}", {})
        self._end(scope)
        self._hand_over(scope, self._scopes[-1])

    def savepoint_room(self) -> bool:
        """Whether one more savepoint fits in the transaction (see ``savepoint_budget``)."""
        return self.savepoint_budget is None or self.savepoints < self.savepoint_budget

    @contextmanager
    def writing(self) -> Iterator[None]:
        """The write transaction of an optimistic step (``Store.optimistic``).

        The identity map catches up with the block's writes after the commit, outside the
        write lock (or when the block reads it); a block that fails drops what it had not
        taken in yet.
        """
        self._later = []
        try:
            with self._turn(), self.conn.begin():
                yield
        except BaseException:
            self._later = None
            raise
        try:
            self._keep_up()
        finally:
            self._later = None

    @contextmanager
    def staging(self) -> Iterator[list[Write]]:
        """Collect the writes that the block's calls ask for, built but not run."""
        writes: list[Write] = []
        self._staging = writes
        try:
            yield writes
        finally:
            self._staging = None

    def run_staged(self, writes: Sequence[Write]) -> None:
        """Run writes collected by ``staging``, in order; raises as the calls would have.

        On PostgreSQL the writes after the first go out together in one round trip
        (``_run_pipelined``) instead of one each. The first, the case's version-checked UPDATE
        (or a new case's INSERT), runs alone and is checked before the rest is sent: once it
        succeeded the transaction holds the case's row, so that a lost race is a Conflict, as
        it is on SQLite, and never a duplicate log row failing in the pipeline.
        """
        # a pipeline of one statement would save no round trip
        if self.dialect != "postgresql" or len(writes) < 3:
            for write in writes:
                self._run_write(*write)
            return
        self._run_write(*writes[0])
        rest = writes[1:]
        cursors = self._run_pipelined([(w.sql, w.params) for w in rest])
        for write, cursor in zip(rest, cursors, strict=True):
            self._finish_write(cursor, write.check, write.keep)

    def _write(
        self,
        sql: str,
        params: dict[str, Any],
        check: Callable[[Any], None] | None = None,
        keep: Callable[[], None] | None = None,
    ) -> None:
        if self._staging is not None:
            self._staging.append(Write(sql, params, check, keep))
        else:
            self._run_write(sql, params, check, keep)

    def _run_write(
        self,
        sql: str,
        params: dict[str, Any],
        check: Callable[[Any], None] | None,
        keep: Callable[[], None] | None,
    ) -> None:
        self._finish_write(self._run(sql, params), check, keep)

    def _finish_write(
        self, cursor: Any, check: Callable[[Any], None] | None, keep: Callable[[], None] | None
    ) -> None:
        if check is not None:
            check(cursor)
        if keep is None:
            return
        if self._later is None:
            keep()
        else:
            self._later.append(keep)

    def _keep_up(self) -> None:
        # after ``writing`` commits, or when the map is read inside it: what the block wrote
        # so far is remembered first
        pending = self._later
        if pending:
            self._later = []
            for keep in pending:
                keep()

    def _end(self, scope: _Scope) -> None:
        scope.active = False
        self._scopes.remove(scope)

    def _hand_over(self, released: _Scope, parent: _Scope) -> None:
        # A timer batch's next look at the case (its next due timer) is then served from
        # memory instead of one more SELECT per timer.
        for memory, keys, kept in (
            (self._cases, released.cases, parent.cases),
            (self._open, released.opens, parent.opens),
        ):
            for key in keys:
                hit = memory.get(key)
                if hit is not None and hit[0] is released:
                    memory[key] = (parent, hit[1])  # type: ignore[assignment]
                    kept.append(key)

    # ---- the identity map ------------------------------------------------------------------

    def _recall_case(self, case_id: str) -> CaseRecord | None:
        if self._later:
            self._keep_up()
        hit = self._cases.get(case_id)
        if hit is None or not hit[0].active:
            return None
        return hit[1]

    def _recall_open(self, case_id: str) -> list[DeadlineRecord] | None:
        if self._later:
            self._keep_up()
        hit = self._open.get(case_id)
        if hit is None or not hit[0].active:
            return None
        return hit[1]

    def _remember_case(self, record: CaseRecord) -> None:
        scope = self._scopes[-1]
        self._cases[record.id] = (scope, record)
        scope.cases.append(record.id)

    def _remember_open(self, case_id: str, rows: list[DeadlineRecord]) -> None:
        rows.sort(key=self._order)
        for d in rows:
            self._owner[d.id] = case_id
        scope = self._scopes[-1]
        self._open[case_id] = (scope, rows)
        scope.opens.append(case_id)

    def _edit_open(self, ids: Sequence[int], edit: Callable[[DeadlineRecord], Any]) -> None:
        """Apply ``edit`` to remembered open deadlines with these ids (None: now closed)."""
        wanted = set(ids)
        for case_id in {self._owner[i] for i in wanted if i in self._owner}:
            rows = self._recall_open(case_id)
            if rows is not None and any(d.id in wanted for d in rows):
                kept = [edit(d) if d.id in wanted else d for d in rows]
                self._remember_open(case_id, [d for d in kept if d is not None])

    # ---- cases ---------------------------------------------------------------------------

    def get_case(self, case_id: str, *, lock: bool = False) -> CaseRecord | None:
        locking = lock and self.dialect == "postgresql"
        if not locking:
            known = self._recall_case(case_id)
            if known is not None:
                return known
        return self._found_case(self._run(_case_sql(locking), {"b_id": case_id}).fetchone())

    def _found_case(self, row: Sequence[Any] | None) -> CaseRecord | None:
        if row is None:
            return None
        record = _raw_case(row, self._codec)
        self._remember_case(record)
        return record

    def load_case(
        self, case_id: str, *, lock: bool = False
    ) -> tuple[CaseRecord | None, list[DeadlineRecord]]:
        """``get_case``, then ``open_deadlines`` if the case exists: on PostgreSQL both in one
        round trip when neither is remembered (the second is wasted on a missing case)."""
        locking = lock and self.dialect == "postgresql"
        both_read = (
            self.dialect == "postgresql"
            and (locking or self._recall_case(case_id) is None)
            and self._recall_open(case_id) is None
        )
        if not both_read:
            record = self.get_case(case_id, lock=lock)
            return record, (self.open_deadlines(case_id) if record is not None else [])
        found, opened = self._run_pipelined(
            [(_case_sql(locking), {"b_id": case_id}), (_SQL_OPEN_DEADLINES, {"b_case": case_id})]
        )
        record = self._found_case(found.fetchone())
        return record, ([] if record is None else self._found_open(case_id, opened.fetchall()))

    def insert_case(self, record: CaseRecord) -> None:
        c = self._codec
        flags = sorted(record.flags)
        data_param, stored = c.json_stored(record.data)
        values = {f: getattr(record, f) for f in _CASE_FIELDS}
        values.update(
            flags=c.json(flags),
            data=data_param,
            created_at=c.time(record.created_at),
            updated_at=c.time(record.updated_at),
        )

        def keep() -> None:
            self._remember_case(
                evolve(
                    record,
                    flags=frozenset(flags),
                    data=stored,
                    created_at=_utc(record.created_at),
                    updated_at=_utc(record.updated_at),
                )
            )
            self._remember_open(record.id, [])

        self._write(_SQL_INSERT_CASE, values, keep=keep)

    def update_case(
        self,
        case_id: str,
        expected_version: int,
        *,
        state: str,
        version: int,
        is_open: bool,
        flags: Iterable[str],
        data: dict[str, Any] | None,
        last_hash: str,
        updated_at: datetime,
    ) -> None:
        """The optimistic-lock write: succeeds only if nobody stepped the case meanwhile.

        ``data`` None keeps the application as stored.
        """
        c = self._codec
        flag_list = sorted(flags)
        params = {
            "b_id": case_id,
            "b_version": expected_version,
            "state": state,
            "version": version,
            "is_open": is_open,
            "overdue": "overdue" in flag_list,
            "flags": c.json(flag_list),
            "last_hash": last_hash,
            "updated_at": c.time(updated_at),
        }
        if data is None:
            stored = None
            sql = _SQL_UPDATE_CASE_KEEP_DATA
        else:
            params["data"], stored = c.json_stored(data)
            sql = _SQL_UPDATE_CASE

        def keep() -> None:
            known = self._recall_case(case_id)
            if known is not None:
                self._remember_case(
                    evolve(
                        known,
                        state=state,
                        version=version,
                        is_open=is_open,
                        overdue="overdue" in flag_list,
                        flags=frozenset(flag_list),
                        data=known.data if stored is None else stored,
                        last_hash=last_hash,
                        updated_at=_utc(updated_at),
                    )
                )

        def check(cursor: Any) -> None:
            if cursor.rowcount != 1:
                row = self._run(_SQL_CASE_VERSION, {"b_id": case_id}).fetchone()
                raise Conflict(case_id, expected_version, row[0] if row else None)

        self._write(sql, params, check, keep)

    def list_cases(
        self,
        *,
        type_: str | None = None,
        state: str | None = None,
        overdue: bool | None = None,
        is_open: bool | None = None,
        limit: int = 50,
    ) -> list[CaseRecord]:
        filters: dict[str, Any] = {
            "type": type_ or None,
            "state": state or None,
            "overdue": overdue,
            "is_open": is_open,
        }
        used = {name: value for name, value in filters.items() if value is not None}
        where = " AND ".join(f"{name} = :{name}" for name in used) or "1 = 1"
        sql = _SQL_LIST_CASES.format(where=where)
        rows = self._run(sql, {**used, "b_limit": limit}).fetchall()
        records = [_raw_case(r, self._codec) for r in rows]
        # A listing is shown case by case: fetch the open deadlines of all of them at once.
        self._prefetch(records)
        return records

    def cases_of_subject(self, subject_key: str, type_: str | None = None) -> list[CaseRecord]:
        rows = self._run(_SQL_CASES_OF_SUBJECT, {"b_subject": subject_key}).fetchall()
        records = [_raw_case(r, self._codec) for r in rows]
        if type_:
            records = [r for r in records if r.type == type_]
        for record in records:
            self._remember_case(record)
        return records

    def prefetch(self, case_ids: Iterable[str]) -> None:
        """Read these cases and their open deadlines in two statements, for the steps to come.

        For a writer holding the cases (a timer batch): what it remembers stays true.
        """
        wanted = [i for i in dict.fromkeys(case_ids) if self._recall_case(i) is None]
        if not wanted:
            return
        marks = ", ".join(f":c{n}" for n in range(len(wanted)))
        params = {f"c{n}": case_id for n, case_id in enumerate(wanted)}
        rows = self._run(_SQL_CASES_BY_ID.format(ids=marks), params).fetchall()
        self._prefetch([_raw_case(r, self._codec) for r in rows])

    def _prefetch(self, records: Sequence[CaseRecord]) -> None:
        if not records:
            return
        found: dict[str, list[DeadlineRecord]] = {r.id: [] for r in records}
        marks = ", ".join(f":c{n}" for n in range(len(found)))
        params = {f"c{n}": case_id for n, case_id in enumerate(found)}
        for row in self._run(_SQL_OPEN_DEADLINES_OF.format(ids=marks), params).fetchall():
            d = _raw_deadline(row, self._codec)
            found[d.case_id].append(d)
        for record in records:
            self._remember_case(record)
            self._remember_open(record.id, found[record.id])

    # ---- the transition log --------------------------------------------------------------

    def append_log(self, entry: LogEntry) -> None:
        c = self._codec
        self._write(
            _SQL_INSERT_LOG,
            {
                "case_id": entry.case_id,
                "seq": entry.seq,
                "trigger": entry.trigger,
                "from_state": entry.from_state,
                "to_state": entry.to_state,
                "actor": entry.actor,
                "reason": entry.reason,
                "comment": entry.comment,
                "changes": c.json(dict(entry.changes)),
                "meta": c.json(dict(entry.meta)),
                "correlation_id": entry.correlation_id,
                "at": c.time(entry.at),
                "recorded_at": c.time(entry.recorded_at),
                "prev_hash": entry.prev_hash,
                "hash": entry.hash,
            },
        )

    def history(self, case_id: str) -> list[LogEntry]:
        query = (
            sa.select(transition_log)
            .where(transition_log.c.case_id == case_id)
            .order_by(transition_log.c.seq)
        )
        return [_entry(r) for r in self.conn.execute(query)]

    def entry(self, case_id: str, seq: int) -> LogEntry | None:
        query = sa.select(transition_log).where(
            transition_log.c.case_id == case_id, transition_log.c.seq == seq
        )
        row = self.conn.execute(query).first()
        return _entry(row) if row else None

    def iter_log(
        self,
        *,
        case_id: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        order_by_case: bool = False,
        batch: int = 2000,
    ) -> Iterator[LogEntry]:
        """Stream entries page by page (keyset pagination): memory stays flat on any log size.

        On the driver's cursor, as a step's statements are: an audit reads millions of rows.
        """
        c = self._codec
        where: list[str] = []
        params: dict[str, Any] = {"b_limit": batch}
        if case_id:
            where.append("case_id = :w_case")
            params["w_case"] = case_id
        if actor:
            where.append("actor = :w_actor")
            params["w_actor"] = actor
        if since:
            where.append("at >= :w_since")
            params["w_since"] = c.time(since)
        if until:
            where.append("at < :w_until")
            params["w_until"] = c.time(until)
        # the row's id comes first, then the entry's fields (case_id, seq, ...)
        order, after, key_at = (
            ("case_id, seq", "(case_id, seq) > (:k0, :k1)", (1, 2))
            if order_by_case
            else ("id", "id > :k0", (0,))
        )
        last: tuple[Any, ...] | None = None
        while True:
            conditions = [*where, after] if last is not None else where
            sql = _SQL_ITER_LOG.format(where=" AND ".join(conditions) or "1 = 1", order=order)
            if last is not None:
                params.update({f"k{n}": value for n, value in enumerate(last)})
            rows = self._run(sql, params).fetchall()
            for row in rows:
                yield _raw_entry(row, c)
            if len(rows) < batch:
                return
            last = tuple(rows[-1][i] for i in key_at)

    def case_heads(self, batch: int = 5000) -> Iterator[tuple[str, int, str]]:
        """Every case's (id, version, last_hash), streamed in id order."""
        last = ""
        while True:
            query = (
                sa.select(cases.c.id, cases.c.version, cases.c.last_hash)
                .where(cases.c.id > last)
                .order_by(cases.c.id)
                .limit(batch)
            )
            rows = self.conn.execute(query).all()
            for row in rows:
                yield row[0], row[1], row[2]
            if len(rows) < batch:
                return
            last = rows[-1][0]

    # ---- deadlines -----------------------------------------------------------------------

    def open_deadlines(self, case_id: str) -> list[DeadlineRecord]:
        known = self._recall_open(case_id)
        if known is None:
            rows = self._run(_SQL_OPEN_DEADLINES, {"b_case": case_id}).fetchall()
            return self._found_open(case_id, rows)
        return list(known)

    def _found_open(self, case_id: str, rows: Sequence[Sequence[Any]]) -> list[DeadlineRecord]:
        known = [_raw_deadline(r, self._codec) for r in rows]
        self._remember_open(case_id, known)
        return list(known)

    def insert_deadlines(self, case_id: str, seq: int, rows: Sequence[NewDeadline]) -> None:
        if not rows:
            return
        c = self._codec
        ids: list[int] = []  # RETURNING's, as the statements run

        def keep() -> None:
            known = self._recall_open(case_id)
            if known is not None:
                self._remember_open(case_id, [*known, *self._armed(case_id, seq, ids, rows)])

        def returned(cursor: Any) -> None:
            ids.append(cursor.fetchone()[0])

        last = len(rows) - 1
        for n, d in enumerate(rows):
            self._write(
                _SQL_INSERT_DEADLINE,
                {
                    "case_id": case_id,
                    "name": d.name,
                    "trigger": d.trigger,
                    "amount": d.amount,
                    "unit": d.unit,
                    "zone": d.zone,
                    "event_at": c.time(d.event_at),
                    "due_at": c.time(d.due_at),
                    "armed_seq": seq,
                    "calendar": d.calendar,
                },
                returned,
                keep if n == last else None,  # once every row has its id
            )

    @staticmethod
    def _armed(
        case_id: str, seq: int, ids: Sequence[int], rows: Sequence[NewDeadline]
    ) -> list[DeadlineRecord]:
        return [
            DeadlineRecord(
                id=new_id,
                case_id=case_id,
                name=d.name,
                trigger=d.trigger,
                amount=d.amount,
                unit=d.unit,
                zone=d.zone,
                status="armed",
                event_at=_utc(d.event_at),
                due_at=_utc(d.due_at),
                remaining_seconds=None,
                resumed_at=None,
                armed_seq=seq,
                closed_seq=None,
                closed_at=None,
                calendar=d.calendar,
            )
            for new_id, d in zip(ids, rows, strict=True)
        ]

    def close_deadlines(self, ids: Sequence[int], status: str, seq: int, at: datetime) -> None:
        """Mark open deadlines fired, cancelled or stale (those still open)."""
        if not ids:
            return
        params: dict[str, Any] = {f"i{n}": i for n, i in enumerate(ids)}
        params.update(status=status, closed_seq=seq, closed_at=self._codec.time(at))
        sql = _SQL_CLOSE_DEADLINES.format(ids=", ".join(f":i{n}" for n in range(len(ids))))
        self._write(sql, params, keep=lambda: self._edit_open(ids, lambda _d: None))

    def close_due(self, deadline: DeadlineRecord, status: str, seq: int, at: datetime) -> None:
        """Close a timer that fell due, as read: raises TransactionConflict if it moved since.

        ``recompute_deadlines`` moves armed deadlines without the case's lock or version, so
        a timer batch can hold a remembered due instant that no longer is the row's.
        """
        params: dict[str, Any] = {
            "i0": deadline.id,
            "status": status,
            "closed_seq": seq,
            "closed_at": self._codec.time(at),
            "b_due": self._codec.time(deadline.due_at),
        }

        def check(cursor: Any) -> None:
            if cursor.rowcount != 1:
                raise _moved(deadline)

        self._write(
            _SQL_CLOSE_DUE, params, check, lambda: self._edit_open([deadline.id], lambda _d: None)
        )

    def pause_deadline(self, deadline: DeadlineRecord, remaining_seconds: float) -> None:
        """Pause a deadline armed as read: raises TransactionConflict if it moved since.

        Its remainder was computed from the due instant read (see ``close_due``).
        """
        params = {
            "b_id": deadline.id,
            "remaining_seconds": remaining_seconds,
            "b_due": self._codec.time(deadline.due_at),
        }

        def check(cursor: Any) -> None:
            if cursor.rowcount != 1:
                raise _moved(deadline)

        self._write(
            _SQL_PAUSE_DEADLINE,
            params,
            check,
            lambda: self._edit_open(
                [deadline.id],
                lambda d: evolve(
                    d, status="paused", due_at=None, remaining_seconds=remaining_seconds
                ),
            ),
        )

    def resume_deadline(self, deadline_id: int, due_at: datetime, resumed_at: datetime) -> None:
        c = self._codec
        self._write(
            _SQL_RESUME_DEADLINE,
            {"b_id": deadline_id, "due_at": c.time(due_at), "resumed_at": c.time(resumed_at)},
            keep=lambda: self._edit_open(
                [deadline_id],
                lambda d: evolve(
                    d, status="armed", due_at=_utc(due_at), resumed_at=_utc(resumed_at)
                ),
            ),
        )

    def move_deadline(self, deadline_id: int, due_at: datetime, calendar: str) -> int:
        """Recompute's write: only a deadline still armed moves."""
        result = self.conn.execute(
            deadlines.update()
            .where(deadlines.c.id == deadline_id, deadlines.c.status == "armed")
            .values(due_at=due_at, calendar=calendar)
        )
        if result.rowcount:
            self._edit_open(
                [deadline_id], lambda d: evolve(d, due_at=_utc(due_at), calendar=calendar)
            )
        return result.rowcount

    def due_deadlines(
        self,
        until: datetime,
        *,
        limit: int,
        case_id: str | None = None,
        skip_locked: bool = False,
        skip_cases: frozenset[str] = frozenset(),
    ) -> list[DeadlineRecord]:
        """Armed deadlines due at or before ``until``, oldest first (by due instant, then id).

        With ``skip_locked`` on PostgreSQL the rows are locked for this transaction and rows
        another worker holds are passed over, so two workers never take the same timer.
        Timers of ``skip_cases`` are left out; with ``case_id``, that case's timers only.
        """
        if case_id is not None:
            # A case's few open deadlines, read by (case_id, status): a query on due_at would
            # take the (status, due_at) index and walk every due timer of every case.
            open_ = self.open_deadlines(case_id)
            due = [d for d in open_ if d.status == "armed" and d.due_at and d.due_at <= until]
            due.sort(key=lambda d: (d.due_at, d.id))
            return due[:limit]
        params: dict[str, Any] = {"b_until": self._codec.time(until), "b_limit": limit}
        sql = _SQL_DUE_SKIP_LOCKED if skip_locked and self.dialect == "postgresql" else _SQL_DUE
        skip = ""
        if skip_cases:
            marks = ", ".join(f":s{n}" for n in range(len(skip_cases)))
            params.update({f"s{n}": case_id for n, case_id in enumerate(sorted(skip_cases))})
            skip = f" AND deadlines.case_id NOT IN ({marks})"
        rows = self._run(sql.format(skip=skip), params).fetchall()
        return [_raw_deadline(r, self._codec) for r in rows]

    def next_due(self) -> datetime | None:
        query = (
            sa.select(deadlines.c.due_at)
            .where(deadlines.c.status == "armed")
            .order_by(deadlines.c.due_at)
            .limit(1)
        )
        return self.conn.execute(query).scalar()

    def calendar_deadlines(self, fingerprint: str, *, limit: int) -> list[DeadlineRecord]:
        """Armed day-unit deadlines computed with a calendar other than ``fingerprint``."""
        query = (
            sa.select(deadlines)
            .where(
                deadlines.c.status == "armed",
                deadlines.c.unit.in_(("working_days", "calendar_days")),
                deadlines.c.calendar != fingerprint,
            )
            .order_by(deadlines.c.id)
            .limit(limit)
        )
        return [_deadline(r) for r in self.conn.execute(query)]

    def list_deadlines(self, *, due_before: datetime | None, limit: int) -> list[DeadlineRecord]:
        query = sa.select(deadlines).where(deadlines.c.status.in_(OPEN_DEADLINE))
        if due_before is not None:
            query = query.where(deadlines.c.due_at <= due_before)
        query = query.order_by(deadlines.c.due_at, deadlines.c.id).limit(limit)
        return [_deadline(r) for r in self.conn.execute(query)]

    # ---- outbox --------------------------------------------------------------------------

    def add_outbox(
        self,
        case_id: str,
        seq: int,
        items: Sequence[tuple[str, str, str, dict[str, Any]]],
        at: datetime,
    ) -> None:
        c = self._codec
        created_at = c.time(at)
        for kind, audience, text, payload in items:
            self._write(
                _SQL_INSERT_OUTBOX,
                {
                    "event_id": str(uuid.uuid4()),
                    "case_id": case_id,
                    "seq": seq,
                    "kind": kind,
                    "audience": audience,
                    "text": text,
                    "payload": c.json(payload),
                    "created_at": created_at,
                },
            )

    def pending_outbox(self, *, limit: int, case_id: str | None = None) -> list[OutboxEvent]:
        query = sa.select(outbox).where(outbox.c.acked_at.is_(None))
        if case_id:
            query = query.where(outbox.c.case_id == case_id)
        rows = self.conn.execute(query.order_by(outbox.c.id).limit(limit))
        return [OutboxEvent(**dict(r._mapping)) for r in rows]

    def case_outbox(self, case_id: str) -> list[OutboxEvent]:
        query = sa.select(outbox).where(outbox.c.case_id == case_id).order_by(outbox.c.id)
        return [OutboxEvent(**dict(r._mapping)) for r in self.conn.execute(query)]

    def ack_outbox(self, event_ids: Sequence[str], at: datetime) -> int:
        if not event_ids:
            return 0
        result = self.conn.execute(
            outbox.update()
            .where(outbox.c.event_id.in_(event_ids), outbox.c.acked_at.is_(None))
            .values(acked_at=at)
        )
        return result.rowcount

    # ---- idempotency and access ----------------------------------------------------------

    def get_idempotency(self, key: str) -> tuple[str, dict[str, Any]] | None:
        row = self._run(_SQL_GET_IDEMPOTENCY, {"b_key": key}).fetchone()
        return (row[0], dict(self._codec.json_out(row[1]))) if row else None

    def put_idempotency(
        self, key: str, request_hash: str, case_id: str, result: dict[str, Any], at: datetime
    ) -> None:
        self.conn.execute(
            idempotency_keys.insert().values(
                key=key, request_hash=request_hash, case_id=case_id, result=result, created_at=at
            )
        )

    def log_access(self, case_id: str, actor: str, what: str, at: datetime) -> None:
        self.conn.execute(
            access_log.insert().values(case_id=case_id, actor=actor, what=what, at=at)
        )

    def access_entries(self, case_id: str) -> list[dict[str, Any]]:
        query = (
            sa.select(access_log).where(access_log.c.case_id == case_id).order_by(access_log.c.id)
        )
        return [dict(r._mapping) for r in self.conn.execute(query)]


# The newest migration in engine/store/migrations/versions; a test holds it to alembic's head.
HEAD_REVISION = "0004"

# Both backends: errors without parameters (applicants' data), JSON columns as the codec's.
_ENGINE_OPTIONS: dict[str, Any] = {
    "hide_parameters": True,
    "json_serializer": dumps,
    "json_deserializer": loads,
}


class Store:
    """A database: its engine, its migrations, its transactions.

    Database errors never carry a statement's parameters (``hide_parameters``): they are
    applicants' data, and errors end up in logs.
    """

    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        self.synchronous = synchronous
        if self.dialect == "sqlite":
            database = parsed.database or ""
            in_memory = database in ("", ":memory:") or "mode=memory" in self.url
            # the connection given back last is handed out first: its page cache is warm
            pooling: dict[str, Any] = {} if in_memory else {"pool_use_lifo": True}
            self.engine: Engine = sa.create_engine(
                self.url,
                connect_args={"timeout": 30, "check_same_thread": False},
                **pooling,
                **_ENGINE_OPTIONS,
            )
            sa.event.listen(self.engine, "connect", self._sqlite_connect)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
            self.turns: WriterTurns | None = WriterTurns(
                None if in_memory else f"{database}-writers"
            )
            # an in-memory database has no WAL
            self.checkpoints: Checkpointer | None = (
                None if in_memory else Checkpointer(database, synchronous, self.turns)
            )
            if self.checkpoints is not None:
                sa.event.listen(self.engine, "commit", self._committed)
        else:
            self.engine = sa.create_engine(
                self.url, pool_pre_ping=True, pool_use_lifo=True, **_ENGINE_OPTIONS
            )
            self.turns = None
            self.checkpoints = None
        self.kept = StepConnections(self.engine)

    def _sqlite_connect(self, dbapi_conn: Any, _record: Any) -> None:
        # Autocommit at the driver level, so that our own BEGIN (IMMEDIATE) decides locking.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={self.synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if self.checkpoints is not None:
            # checkpoints run on their own thread (engine.store.checkpoints), not in a commit
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    def _committed(self, conn: Connection) -> None:
        if self.checkpoints is not None and not conn.get_execution_options().get("omsflow_read"):
            self.checkpoints.committed()

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """One write transaction; commits at the end of the block, rolls back on error."""
        with _store_errors(), self._turn(), self._connection() as conn, conn.begin():
            yield Tx(conn, self._turn)

    @contextmanager
    def optimistic(self) -> Iterator[Tx]:
        """A step computed from what it read, then written only if that is still so.

        The reads (``get_case``, ``open_deadlines``, ``get_idempotency``) run at once,
        outside any transaction; ``tx.writing()`` then opens the write transaction, in which
        the case's version check proves that nobody stepped the case in between (a
        ``Conflict`` otherwise). The database's write lock is held for the writes alone,
        not for the reading and the computing, so that other writers run meanwhile.
        """
        with _store_errors(), self._connection() as conn:
            yield Tx(conn, self._turn)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read-only transaction (a plain, non-locking BEGIN on SQLite)."""
        with self._connection() as conn:
            # in place on the connection, which is kept for the next block: undone after
            conn.execution_options(omsflow_read=True)
            try:
                with conn.begin():
                    yield Tx(conn)
            finally:
                conn.execution_options(omsflow_read=False)

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A connection for one block: the one the last block gave back, when it is fresh.

        A single thread then works on one connection throughout, and on SQLite that matters
        beyond the checkout: a connection drops its page cache whenever it finds that
        another connection wrote, so alternating between two reads every page again.
        """
        conn = self.kept.take()
        ok = False
        try:
            yield conn
            ok = True
        except EngineError as exc:
            # a refusal or a lost race leaves the connection as good as before; a database
            # failure does not
            ok = not isinstance(exc, StoreUnavailable)
            raise
        finally:
            self.kept.give_back(conn, ok)

    def _turn(self) -> AbstractContextManager[None]:
        """This database's writer turn (SQLite), for a block that writes."""
        return self.turns.turn() if self.turns is not None else nullcontext()

    # ---- migrations ----------------------------------------------------------------------
    # alembic is imported by these methods alone, and by ``upgrade`` only when the database
    # is behind: it costs ~0.2 s at startup, which every CLI command and worker paid to learn
    # that nothing was to be done.

    def _alembic(self) -> Config:
        from alembic.config import Config  # noqa: PLC0415

        cfg = Config()
        cfg.set_main_option("script_location", str(files("engine.store") / "migrations"))
        return cfg

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema; a fresh database is created this way, never by create_all."""
        if revision == "head" and self.current_revision() == HEAD_REVISION:
            return
        from alembic import command  # noqa: PLC0415

        cfg = self._alembic()
        with self._turn(), self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def downgrade(self, revision: str) -> None:
        from alembic import command  # noqa: PLC0415

        cfg = self._alembic()
        with self._turn(), self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)

    def current_revision(self) -> str | None:
        """alembic's version row read with one SELECT; None when there is none (or no table)."""
        try:
            with self.engine.connect() as conn:
                # a plain BEGIN on SQLite: a look at the version takes no write lock
                conn.execution_options(omsflow_read=True)
                rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        except DBAPIError:
            return None  # a fresh database: alembic creates the table
        return str(rows[0][0]) if len(rows) == 1 else None

    def head_revision(self) -> str | None:
        from alembic.script import ScriptDirectory  # noqa: PLC0415

        return ScriptDirectory.from_config(self._alembic()).get_current_head()

    def dispose(self) -> None:
        if self.checkpoints is not None:
            self.checkpoints.close()
        self.kept.close(final=True)
        self.engine.dispose()
        if self.turns is not None:
            self.turns.close()


@contextmanager
def _store_errors() -> Iterator[None]:
    """The database's own failures as the engine's errors."""
    try:
        yield
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) in _RETRYABLE:
            raise TransactionConflict(str(exc.orig)) from exc
        raise StoreUnavailable(f"database error: {exc.orig}") from exc


def _listeners(conn: Connection) -> tuple[tuple[Any, ...], tuple[Any, ...], type[Exception]]:
    """The cursor-event listeners of ``conn`` and its driver's error class, looked up once.

    SQLAlchemy builds its listener views on every attribute access; with nobody listening
    (the common case) a statement is then the driver's execute and nothing else.
    """
    # Without listeners of its own (SQLAlchemy marks a connection that has some), a
    # connection's are its engine's: that view is built without joining two collections.
    dispatch = conn.dispatch if conn._has_events else conn.engine.dispatch
    return (
        tuple(dispatch.before_cursor_execute),
        tuple(dispatch.after_cursor_execute),
        conn.dialect.loaded_dbapi.Error,
    )


def _driver_execute(
    conn: Connection,
    cursor: Any,
    statement: str,
    params: Any,
    listeners: tuple[tuple[Any, ...], tuple[Any, ...], type[Exception]],
) -> Any:
    """Execute on a DBAPI cursor of ``conn``, bypassing SQLAlchemy's execution machinery.

    Whoever listens to SQLAlchemy's cursor events (the benchmark's recorder, the crash tests'
    fault injection) still sees the statement as the driver receives it, and driver errors
    are raised as SQLAlchemy's exceptions, as every other statement's are, without the
    parameters (applicants' data).
    """
    before, after, error = listeners
    for fn in before:
        fn(conn, cursor, statement, params, None, False)
    try:
        cursor.execute(statement, params)
    except error as exc:
        raise DBAPIError.instance(statement, params, exc, error, hide_parameters=True) from exc
    for fn in after:
        fn(conn, cursor, statement, params, None, False)
    return cursor


def _sqlite_begin(conn: Connection) -> None:
    read_only = conn.get_execution_options().get("omsflow_read", False)
    statement = "BEGIN" if read_only else "BEGIN IMMEDIATE"
    _driver_execute(conn, conn.connection.cursor(), statement, (), _listeners(conn))


def is_unique_violation(exc: BaseException) -> bool:
    """Whether a driver error is a unique-constraint violation (two writers raced on a key)."""
    if not isinstance(exc, IntegrityError | DBAPIError):
        return False
    text = str(exc.orig).lower()
    return "unique" in text or "duplicate key" in text
