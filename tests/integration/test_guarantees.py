"""Optimistic locking, idempotency, refusal of bad input, the append-only log, migrations."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from engine.api import Engine
from engine.applications import example_application
from engine.errors import Conflict, IdempotencyMismatch, InvalidInput, NotFound
from engine.machines.loader import DefinitionRegistry, default_definitions_dir, load_file
from engine.store.repository import HEAD_REVISION
from engine.store.schema import metadata
from engine.testing import ManualClock

PORTAL = "portal:gosuslugi"
OP = "operator:ivanova"


def _counts(eng: Engine) -> dict[str, int]:
    with eng.store.read() as tx:
        return {
            table: tx.conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
            for table in ("cases", "transition_log", "deadlines", "outbox", "idempotency_keys")
        }


def test_two_threads_with_the_same_expected_version_one_wins(eng: Engine) -> None:
    case_id = eng.open_case("restore", example_application("restore"), PORTAL).id
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def step(actor: str) -> None:
        barrier.wait()
        try:
            results.append(eng.fire(case_id, "take", actor, expected_version=1))
        except Conflict as exc:
            results.append(exc)

    threads = [threading.Thread(target=step, args=(a,)) for a in (OP, "operator:petrova")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(results) == 2
    assert len(conflicts) == 1
    assert conflicts[0].expected == 1
    assert conflicts[0].actual == 2
    assert conflicts[0].case_id == case_id
    history = eng.history(case_id)
    assert [e.trigger for e in history] == ["open", "take"]
    assert eng.get_case(case_id).version == 2


def test_many_threads_stepping_one_case_lose_nothing(eng: Engine) -> None:
    case_id = eng.open_case("restore", example_application("restore"), PORTAL).id
    eng.fire(case_id, "take", OP)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for _ in range(5):
            version = eng.get_case(case_id).version
            try:
                eng.fire(
                    case_id,
                    "request_info" if eng.get_case(case_id).state == "in_review" else "reply",
                    OP if eng.get_case(case_id).state == "in_review" else PORTAL,
                    comment=f"шаг {n}",
                    expected_version=version,
                )
                result = "ok"
            except Conflict:
                result = "conflict"
            except Exception as exc:  # a refused trigger after a race is fine too
                result = type(exc).__name__
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history = eng.history(case_id)
    assert outcomes.count("ok") == len(history) - 2
    assert eng.get_case(case_id).version == len(history)
    assert eng.verify() == {}


def test_stale_expected_version_is_a_conflict_and_writes_nothing(eng: Engine) -> None:
    case_id = eng.open_case("restore", example_application("restore"), PORTAL).id
    eng.fire(case_id, "take", OP, expected_version=1)
    before = _counts(eng)
    with pytest.raises(Conflict) as info:
        eng.fire(case_id, "approve", OP, expected_version=1)
    assert (info.value.expected, info.value.actual) == (1, 2)
    assert _counts(eng) == before


def test_open_with_a_key_twice_returns_the_first_case(eng: Engine) -> None:
    data = example_application("restore")
    first = eng.open_case("restore", data, PORTAL, key="portal-req-1")
    before = _counts(eng)
    again = eng.open_case("restore", data, PORTAL, key="portal-req-1")
    assert again.id == first.id
    assert again.version == 1
    assert _counts(eng) == before
    other = dict(data)
    other["region_zone"] = "Asia/Vladivostok"
    with pytest.raises(IdempotencyMismatch):
        eng.open_case("restore", other, PORTAL, key="portal-req-1")
    assert _counts(eng) == before


def test_fire_with_a_key_twice_steps_once(eng: Engine) -> None:
    case_id = eng.open_case("restore", example_application("restore"), PORTAL).id
    first = eng.fire(case_id, "take", OP, key="op-1")
    before = _counts(eng)
    again = eng.fire(case_id, "take", OP, key="op-1")
    assert again.replayed
    assert again.entry == first.entry
    assert again.case.version == 2
    assert _counts(eng) == before
    with pytest.raises(IdempotencyMismatch):
        eng.fire(case_id, "take", "operator:petrova", key="op-1")


def test_bad_application_lists_every_field_and_writes_nothing(eng: Engine) -> None:
    data = example_application("restore")
    data["applicant"]["snils"] = "112-233-445 00"
    data["applicant"]["full_name"] = "Ivanov Ivan"
    data["applicant"]["phone"] = "12"
    before = _counts(eng)
    with pytest.raises(InvalidInput) as info:
        eng.open_case("restore", data, PORTAL)
    fields = {e.field for e in info.value.errors}
    assert {"applicant.snils", "applicant.full_name", "applicant.phone"} <= fields
    assert _counts(eng) == before


def test_bad_step_input_writes_nothing(eng: Engine) -> None:
    case_id = eng.open_case("restore", example_application("restore"), PORTAL).id
    eng.fire(case_id, "take", OP)
    eng.fire(case_id, "request_info", OP, comment="Приложите скан паспорта")
    before = _counts(eng)
    with pytest.raises(InvalidInput) as info:
        eng.fire(case_id, "reply", PORTAL, data={"applicant": {"snils": "000"}})
    assert info.value.errors[0].field == "applicant.snils"
    with pytest.raises(InvalidInput):
        eng.fire(case_id, "reply", PORTAL)  # neither data nor comment
    with pytest.raises(InvalidInput):
        eng.fire(case_id, "take", "not-an-actor")
    with pytest.raises(NotFound):
        eng.fire("no-such-case", "take", OP)
    assert _counts(eng) == before


def test_reply_records_the_before_and_after_of_each_changed_field(eng: Engine) -> None:
    data = example_application("restore")
    case_id = eng.open_case("restore", data, PORTAL).id
    eng.fire(case_id, "take", OP)
    eng.fire(case_id, "request_info", OP, comment="Уточните телефон")
    eng.fire(case_id, "reply", PORTAL, data={"applicant": {"phone": "9161234567"}})
    entry = eng.history(case_id)[-1]
    assert list(entry.changes) == ["applicant.phone"]
    assert entry.changes["applicant.phone"]["after"] == "9161234567"


def test_the_database_refuses_to_change_the_log(eng: Engine) -> None:
    case_id = eng.open_case("restore", example_application("restore"), PORTAL).id
    eng.get_case(case_id, OP, reveal=True)  # SQLite's row triggers need a row to refuse
    for statement in (
        "UPDATE transition_log SET actor = 'operator:mallory'",
        "DELETE FROM transition_log",
        "UPDATE access_log SET actor = 'x'",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), eng.store.write() as tx:
            tx.conn.execute(sa.text(statement))
    assert eng.history(case_id)[0].actor == PORTAL
    assert eng.verify() == {}


def test_migrations_give_exactly_the_models_schema(db_url: str) -> None:
    eng = Engine(db_url)
    try:
        with eng.store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
        assert eng.store.current_revision() == eng.store.head_revision() == HEAD_REVISION
    finally:
        eng.close()


def test_an_engine_on_a_database_one_migration_behind_brings_it_to_head(db_url: str) -> None:
    Engine(db_url).close()
    eng = Engine(db_url, migrate=False)
    try:
        eng.store.downgrade("0002")
        assert eng.store.current_revision() == "0002"
    finally:
        eng.close()
    with Engine(db_url) as again:
        assert again.store.current_revision() == HEAD_REVISION


def test_migrations_go_down_and_up_again(db_url: str) -> None:
    eng = Engine(db_url)
    try:
        eng.store.downgrade("base")
        assert eng.store.current_revision() is None
        eng.store.upgrade()
        assert eng.store.current_revision() == eng.store.head_revision()
    finally:
        eng.close()


def test_a_case_finishes_under_the_version_it_was_opened_with(
    db_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    v1 = default_definitions_dir() / "restore.v1.yaml"
    raw = yaml.safe_load(v1.read_text(encoding="utf-8"))
    raw["version"] = 2
    raw["states"]["in_review"]["label"] = "На проверке"
    raw["transitions"] = [t for t in raw["transitions"] if t["trigger"] != "withdraw"]
    del raw["states"]["withdrawn"]
    v2 = tmp_path / "restore.v2.yaml"
    v2.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    others = [p for p in default_definitions_dir().glob("*.yaml") if p.name != "restore.v1.yaml"]

    with Engine(db_url, clock=clock, definitions=DefinitionRegistry([load_file(v1)])) as old:
        old_case = old.open_case("restore", example_application("restore"), PORTAL).id
        old.fire(old_case, "take", OP)
    both = DefinitionRegistry([load_file(p) for p in [v1, v2, *others]])
    with Engine(db_url, clock=clock, definitions=both) as eng:
        assert eng.get_case(old_case).definition_version == 1
        assert eng.get_case(old_case).label == "В работе"
        someone_else = example_application("restore")
        someone_else["applicant"]["snils"] = example_application("child_link")["child"]["snils"]
        new_case = eng.open_case("restore", someone_else, "operator:x").id
        assert eng.get_case(new_case).definition_version == 2
        eng.fire(new_case, "take", OP)
        assert eng.get_case(new_case).label == "На проверке"
        assert "withdraw" not in eng.get_case(new_case, PORTAL).allowed_triggers
        eng.fire(old_case, "withdraw", PORTAL)
        assert eng.get_case(old_case).state == "withdrawn"


def test_concurrent_requests_with_one_key_step_once_and_agree(eng: Engine) -> None:
    data = example_application("restore")
    barrier = threading.Barrier(4)
    opened: list[str] = []
    errors: list[BaseException] = []

    def open_once() -> None:
        barrier.wait()
        try:
            opened.append(eng.open_case("restore", data, PORTAL, key="same-key").id)
        except BaseException as exc:  # any error fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=open_once) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(opened)) == 1
    assert _counts(eng)["cases"] == 1

    steps: list[int] = []

    def take_once() -> None:
        barrier.wait()
        try:
            steps.append(eng.fire(opened[0], "take", OP, key="take-key").entry.seq)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=take_once) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert steps == [2, 2, 2, 2]
    assert len(eng.history(opened[0])) == 2


def test_concurrent_opens_for_one_person_leave_one_open_case(eng: Engine) -> None:
    data = example_application("restore")
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def open_once() -> None:
        barrier.wait()
        try:
            eng.open_case("restore", data, PORTAL)
            outcomes.append("opened")
        except InvalidInput as exc:
            outcomes.append(exc.errors[0].rule)

    threads = [threading.Thread(target=open_once) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["duplicate_open_case"] * 3 + ["opened"]
    assert _counts(eng)["cases"] == 1


def test_the_database_itself_refuses_a_second_open_case(eng: Engine) -> None:
    case_id = eng.open_case("restore", example_application("restore"), PORTAL).id
    with pytest.raises(sa.exc.IntegrityError), eng.store.write() as tx:
        tx.conn.execute(
            sa.text(
                "INSERT INTO cases (id, type, definition_version, state, version, is_open, "
                "overdue, flags, data, zone, subject_key, last_hash, created_at, updated_at) "
                "SELECT 'copy', type, definition_version, state, version, is_open, overdue, "
                "flags, data, zone, subject_key, last_hash, created_at, updated_at "
                "FROM cases WHERE id = :id"
            ),
            {"id": case_id},
        )
