"""Transition log entries and their SHA-256 hash chain (pure: used by the store, CLI and audits).

Each entry hashes its own content together with the previous entry's hash of the same case,
so a changed, removed, inserted or reordered row breaks the chain from that entry on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.records import evolve

GENESIS = "0" * 64


# what json.dumps builds on every call with these options, built once
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """One text for one value: sorted keys, no spaces, UTF-8 kept."""
    return _CANONICAL.encode(value)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class LogEntry:
    """One step of one case, as written to the transition log."""

    case_id: str
    seq: int
    trigger: str
    from_state: str | None
    to_state: str
    actor: str
    reason: str | None
    comment: str | None
    changes: Mapping[str, Any]
    correlation_id: str | None
    at: datetime
    recorded_at: datetime
    prev_hash: str
    hash: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def content(self) -> dict[str, Any]:
        """Everything the hash covers."""
        return {
            "case_id": self.case_id,
            "seq": self.seq,
            "trigger": self.trigger,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "actor": self.actor,
            "reason": self.reason,
            "comment": self.comment,
            "changes": self.changes,
            "correlation_id": self.correlation_id,
            "at": _iso(self.at),
            "recorded_at": _iso(self.recorded_at),
            "meta": self.meta,
            "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.content()).encode("utf-8")).hexdigest()

    def sealed(self) -> LogEntry:
        """The same entry with its hash filled in."""
        return evolve(self, hash=self.compute_hash())

    def to_json(self) -> dict[str, Any]:
        out = self.content()
        out["hash"] = self.hash
        return out


@dataclass(frozen=True)
class ChainBreak:
    """The first entry of a case whose chain does not verify, and why."""

    case_id: str
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"case {self.case_id}, entry {self.seq}: {self.problem}"


def verify_chain(entries: Iterable[LogEntry], head: str | None = None) -> ChainBreak | None:
    """Check one case's entries in ``seq`` order; None when the chain holds.

    ``head`` is the hash the case row (or an exported checkpoint) says the chain ends with; it
    is what makes a truncated tail detectable.
    """
    prev = GENESIS
    expected_seq = 1
    case_id = ""
    last_hash = GENESIS
    for entry in entries:
        case_id = entry.case_id
        if entry.seq != expected_seq:
            return ChainBreak(case_id, entry.seq, f"sequence gap: expected {expected_seq}")
        if entry.prev_hash != prev:
            return ChainBreak(case_id, entry.seq, "prev_hash does not match the previous entry")
        if entry.compute_hash() != entry.hash:
            return ChainBreak(case_id, entry.seq, "content does not match its hash")
        prev = entry.hash
        last_hash = entry.hash
        expected_seq += 1
    if head is not None and head != last_hash:
        return ChainBreak(
            case_id, expected_seq, "the log ends before the recorded head (truncated or rewritten)"
        )
    return None
