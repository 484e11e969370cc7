"""Guarantee 5: tampering done directly in the database is detected and located.

The append-only triggers are dropped first (as an attacker with database rights would), then
one kind of tampering per test: a changed field, a deleted row, a swapped order, an inserted
row, a truncated tail (with and without rewriting the case row's head). ``Engine.verify()`` and
``omsflow audit verify`` must name the case and the entry; a truncated tail whose head was
rewritten leaves a valid shorter chain, which only a signed checkpoint
(``omsflow audit checkpoint`` / ``audit verify --checkpoint``) reveals.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from engine.api import Engine
from engine.checkpoint import (
    CheckpointInvalid,
    verify_against_checkpoint,
    write_checkpoint,
)
from engine.cli import app
from engine.machines.log import LogEntry
from engine.store.schema import transition_log
from engine.testing import ManualClock, person
from tests.conftest import START
from tests.reliability.conftest import raw_engine

KEY = b"test-checkpoint-key"
OP = "operator:ivanova"
PORTAL = "portal:gosuslugi"


def _drop_guards(conn: sa.Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("DROP TRIGGER transition_log_no_update")
        conn.exec_driver_sql("DROP TRIGGER transition_log_no_delete")
    else:
        conn.exec_driver_sql("DROP TRIGGER transition_log_append_only ON transition_log")


def _build(url: str) -> tuple[str, str]:
    """Two cases with five entries each; returns (victim, bystander)."""
    ids = []
    with Engine(url, clock=ManualClock(START)) as eng:
        for n in range(2):
            cid = eng.open_case("restore", person("restore", n), PORTAL).id
            eng.fire(cid, "take", OP)
            eng.fire(cid, "request_info", OP, comment="нужен скан паспорта")
            eng.fire(cid, "reply", PORTAL, comment="скан приложен")
            eng.fire(cid, "approve", OP)
            ids.append(cid)
    return ids[0], ids[1]


def _rows(conn: sa.Connection, case_id: str) -> list[dict[str, Any]]:
    q = sa.select(transition_log).where(transition_log.c.case_id == case_id)
    return [dict(r._mapping) for r in conn.execute(q.order_by(transition_log.c.seq))]


def _set_head(conn: sa.Connection, case_id: str, row: dict[str, Any]) -> None:
    conn.execute(
        sa.text("UPDATE cases SET last_hash = :h, version = :v, state = :s WHERE id = :c"),
        {"h": row["hash"], "v": row["seq"], "s": row["to_state"], "c": case_id},
    )


def change_field(conn: sa.Connection, cid: str) -> int:
    conn.execute(
        sa.text(
            "UPDATE transition_log SET actor = 'operator:mallory' WHERE case_id = :c AND seq = 3"
        ),
        {"c": cid},
    )
    return 3


def delete_row(conn: sa.Connection, cid: str) -> int:
    conn.execute(sa.text("DELETE FROM transition_log WHERE case_id = :c AND seq = 3"), {"c": cid})
    return 4  # the first entry after the hole


def swap_order(conn: sa.Connection, cid: str) -> int:
    q = "UPDATE transition_log SET seq = :to WHERE case_id = :c AND seq = :frm"
    conn.execute(sa.text(q), {"c": cid, "frm": 2, "to": -2})
    conn.execute(sa.text(q), {"c": cid, "frm": 3, "to": 2})
    conn.execute(sa.text(q), {"c": cid, "frm": -2, "to": 3})
    return 2


def insert_row(conn: sa.Connection, cid: str) -> int:
    """A forged entry after seq 2, sealed with a correct hash chained to entry 2."""
    rows = _rows(conn, cid)
    for row in reversed(rows[2:]):
        conn.execute(
            sa.text("UPDATE transition_log SET seq = seq + 1 WHERE id = :i"), {"i": row["id"]}
        )
    base = rows[1]
    forged = LogEntry(
        case_id=cid,
        seq=3,
        trigger="approve",
        from_state="in_review",
        to_state="approved",
        actor="operator:mallory",
        reason=None,
        comment="forged",
        changes={},
        correlation_id=None,
        at=base["at"],
        recorded_at=base["recorded_at"],
        prev_hash=base["hash"],
    ).sealed()
    values = dict(forged.__dict__)
    conn.execute(transition_log.insert().values(**values))
    return 4  # the genuine entry pushed down no longer chains to the forged one


def truncate_tail(conn: sa.Connection, cid: str) -> int:
    conn.execute(sa.text("DELETE FROM transition_log WHERE case_id = :c AND seq >= 4"), {"c": cid})
    return 4


def truncate_tail_and_head(conn: sa.Connection, cid: str) -> int:
    truncate_tail(conn, cid)
    _set_head(conn, cid, _rows(conn, cid)[-1])
    return 4


TAMPERINGS: dict[str, Callable[[sa.Connection, str], int]] = {
    "changed_field": change_field,
    "deleted_row": delete_row,
    "swapped_order": swap_order,
    "inserted_row": insert_row,
    "truncated_tail": truncate_tail,
}


def _cli_verify(url: str, *extra: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    result = CliRunner().invoke(app, ["--db", url, "--json", "audit", "verify", *extra], env=env)
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("kind", sorted(TAMPERINGS))
def test_verify_names_the_tampered_case_and_entry(
    db_url: str, kind: str, figures: dict[str, Any]
) -> None:
    victim, bystander = _build(db_url)
    db = raw_engine(db_url)
    with db.begin() as conn:
        _drop_guards(conn)
        seq = TAMPERINGS[kind](conn, victim)
    db.dispose()
    with Engine(db_url, migrate=False) as eng:
        broken = eng.verify()
    assert set(broken) == {victim}, broken
    assert broken[victim].seq == seq, broken[victim]
    code, body = _cli_verify(db_url)
    assert code == 7
    assert body["details"]["cases"] == [
        {"case_id": victim, "seq": seq, "problem": broken[victim].problem}
    ]
    assert bystander not in json.dumps(body)
    figures.update({"tampering": kind, "tried": 1, "detected": 1, "named_entry": seq})


def test_a_truncated_tail_with_a_rewritten_head_needs_the_checkpoint(
    db_url: str, tmp_path: Path, figures: dict[str, Any]
) -> None:
    victim, bystander = _build(db_url)
    point = tmp_path / "checkpoint.json"
    env = {"OMSFLOW_CHECKPOINT_KEY": KEY.decode()}
    made = CliRunner().invoke(
        app, ["--db", db_url, "--json", "audit", "checkpoint", "-o", str(point)], env=env
    )
    assert made.exit_code == 0, made.stdout
    assert json.loads(made.stdout)["cases"] == 2
    # legitimate steps after the checkpoint are fine: the log still extends the checkpoint
    with Engine(db_url, clock=ManualClock(START)) as eng:
        eng.fire(bystander, "issue_policy", OP)
    assert _cli_verify(db_url, "--checkpoint", str(point), env=env)[0] == 0

    db = raw_engine(db_url)
    with db.begin() as conn:
        _drop_guards(conn)
        truncate_tail_and_head(conn, victim)
    db.dispose()
    with Engine(db_url, migrate=False) as eng:
        # the chain alone is a valid, shorter one: this is exactly what verify() cannot see
        assert eng.verify() == {}
        problems = verify_against_checkpoint(eng, point, KEY)
    assert set(problems) == {victim}
    assert "entry 5 is missing" in problems[victim]
    code, body = _cli_verify(db_url, "--checkpoint", str(point), env=env)
    assert code == 7
    assert set(body["details"]["broken"]) == {victim}
    figures.update({"tampering": "truncated_tail_rewritten_head", "tried": 1, "detected": 1})


def test_a_forged_or_unsigned_checkpoint_is_refused(db_url: str, tmp_path: Path) -> None:
    victim, _ = _build(db_url)
    point = tmp_path / "checkpoint.json"
    with Engine(db_url, migrate=False) as eng:
        write_checkpoint(eng, point, KEY)
        document = json.loads(point.read_text())
        # an attacker lowers the checkpointed version to match a truncated log
        for item in document["cases"]:
            if item[0] == victim:
                item[1] = 2
        forged = tmp_path / "forged.json"
        forged.write_text(json.dumps(document))
        with pytest.raises(CheckpointInvalid):
            verify_against_checkpoint(eng, forged, KEY)
        with pytest.raises(CheckpointInvalid):
            verify_against_checkpoint(eng, point, b"another key")
    env = {"OMSFLOW_CHECKPOINT_KEY": KEY.decode()}
    code, body = _cli_verify(db_url, "--checkpoint", str(forged), env=env)
    assert (code, body["error"]) == (7, "checkpoint_invalid")
    # no key at all is the caller's mistake, not a verdict on the log
    code, body = _cli_verify(db_url, "--checkpoint", str(point), env={"OMSFLOW_CHECKPOINT_KEY": ""})
    assert code == 4
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY + b"\n")
    code, _ = _cli_verify(db_url, "--checkpoint", str(point), "--key-file", str(key_file))
    assert code == 0
