"""The hash chain detects every kind of tampering, as a pure function."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from engine.machines.log import GENESIS, LogEntry, verify_chain

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def _chain(n: int = 5) -> list[LogEntry]:
    entries: list[LogEntry] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        entry = LogEntry(
            case_id="c1",
            seq=seq,
            trigger="open" if seq == 1 else f"step{seq}",
            from_state=None if seq == 1 else "a",
            to_state="a",
            actor="operator:ivanova",
            reason=None,
            comment=f"комментарий {seq}",
            changes={"applicant.phone": {"before": "1", "after": str(seq)}},
            correlation_id=None,
            at=T0 + timedelta(minutes=seq),
            recorded_at=T0 + timedelta(minutes=seq),
            prev_hash=prev,
        ).sealed()
        entries.append(entry)
        prev = entry.hash
    return entries


def test_an_untouched_chain_verifies() -> None:
    chain = _chain()
    assert verify_chain(chain, chain[-1].hash) is None
    assert len({e.hash for e in chain}) == len(chain)


def test_a_changed_field_is_found_at_its_entry() -> None:
    chain = _chain()
    chain[2] = replace(chain[2], actor="operator:mallory")
    broken = verify_chain(chain, chain[-1].hash)
    assert broken is not None
    assert (broken.seq, broken.problem) == (3, "content does not match its hash")


def test_a_changed_field_with_a_recomputed_hash_breaks_the_next_link() -> None:
    chain = _chain()
    chain[2] = replace(chain[2], reason="data_mismatch").sealed()
    broken = verify_chain(chain, chain[-1].hash)
    assert broken is not None
    assert broken.seq == 4
    assert "prev_hash" in broken.problem


def test_a_deleted_row_is_a_gap() -> None:
    chain = _chain()
    del chain[1]
    broken = verify_chain(chain)
    assert broken is not None
    assert broken.seq == 3
    assert "sequence gap" in broken.problem


def test_swapped_rows_are_found() -> None:
    chain = _chain()
    chain[1], chain[2] = chain[2], chain[1]
    broken = verify_chain(chain)
    assert broken is not None
    assert broken.seq == 3


def test_an_inserted_row_is_found() -> None:
    chain = _chain()
    forged = replace(chain[1], comment="вставка").sealed()
    chain.insert(2, forged)
    assert verify_chain(chain) is not None


def test_a_truncated_tail_is_found_against_the_head() -> None:
    chain = _chain()
    head = chain[-1].hash
    assert verify_chain(chain[:-2]) is None  # without a head, a clean prefix looks whole
    broken = verify_chain(chain[:-2], head)
    assert broken is not None
    assert "truncated" in broken.problem
