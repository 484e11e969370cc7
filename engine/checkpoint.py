"""Signed checkpoints of the transition log: what makes a truncated tail detectable.

Each log entry hashes its predecessor, and each case row records the hash its chain ends with,
so ``Engine.verify()`` catches a changed, removed, reordered or inserted entry. It cannot catch
an attacker who deletes the newest entries *and* rewrites the case row's head to the last one
kept: what is left is a valid, shorter chain. A checkpoint, exported periodically and kept
outside the database, pins every case's (id, version, head hash) at that moment; later, every
case's log must still extend its checkpointed head. The file is signed with HMAC-SHA256 so it
cannot be edited to agree with a rewritten database either.

The key comes from ``OMSFLOW_CHECKPOINT_KEY`` or a key file; it must not live in the database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import AuditFailed, FieldError, InvalidInput
from engine.machines.log import canonical_json

if TYPE_CHECKING:
    from engine.api import Engine

FORMAT = "omsflow-checkpoint/1"
KEY_ENV = "OMSFLOW_CHECKPOINT_KEY"


class CheckpointInvalid(AuditFailed):
    """The checkpoint file itself cannot be trusted: unreadable, wrong format or bad signature.

    An audit failure (exit 7): a forged or damaged checkpoint proves nothing about the log.
    """

    code = "checkpoint_invalid"

    def __init__(self, path: str, problem: str) -> None:
        super().__init__({})
        self.path = path
        self.problem = problem
        self.args = (f"checkpoint {path}: {problem}",)

    def details(self) -> dict[str, Any]:
        return {"path": self.path, "problem": self.problem, "broken": {}}


def load_key(key_file: Path | None = None) -> bytes:
    """The signing key: the key file's content when given, else ``OMSFLOW_CHECKPOINT_KEY``.

    Raises:
        InvalidInput: neither is set, the file is unreadable, or the key is empty.
    """
    if key_file is not None:
        try:
            key = key_file.read_bytes().strip()
        except OSError as exc:
            raise InvalidInput(
                [FieldError("key_file", "unreadable", f"cannot read {key_file}: {exc.strerror}")]
            ) from None
    else:
        key = os.environ.get(KEY_ENV, "").encode("utf-8")
    if not key:
        raise InvalidInput(
            [
                FieldError(
                    "key",
                    "key_required",
                    "a checkpoint needs a signing key",
                    f"set {KEY_ENV} or give --key-file FILE",
                )
            ]
        )
    return key


def _signature(body: Mapping[str, Any], key: bytes) -> str:
    return hmac.new(key, canonical_json(body).encode("utf-8"), hashlib.sha256).hexdigest()


def write_checkpoint(engine: Engine, path: Path, key: bytes) -> int:
    """Write every case's (id, version, head hash) to ``path``, signed; returns the case count.

    The file is written next to its final name and renamed, so a crash never leaves a
    half-written checkpoint behind under the real name.
    """
    with engine.store.read() as tx:
        heads = [[cid, version, head] for cid, version, head in tx.case_heads()]
    body: dict[str, Any] = {
        "format": FORMAT,
        "created_at": engine.now().isoformat(),
        "cases": heads,
    }
    document = {**body, "signature": _signature(body, key)}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return len(heads)


def read_checkpoint(path: Path, key: bytes) -> list[tuple[str, int, str]]:
    """The checkpointed heads, after checking the format and the signature.

    Raises:
        CheckpointInvalid: the file is unreadable, malformed or its signature does not match.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointInvalid(str(path), f"unreadable: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointInvalid(str(path), f"not an {FORMAT} file")
    signature = document.pop("signature", None)
    if not isinstance(signature, str) or not hmac.compare_digest(
        signature, _signature(document, key)
    ):
        raise CheckpointInvalid(str(path), "bad signature (wrong key, or the file was edited)")
    heads: list[tuple[str, int, str]] = []
    for item in document.get("cases", []):
        # signed, so well-formed unless the signer was broken; still refuse to guess
        if not (
            isinstance(item, list)
            and len(item) == 3
            and isinstance(item[0], str)
            and isinstance(item[1], int)
            and isinstance(item[2], str)
        ):
            raise CheckpointInvalid(str(path), f"malformed case entry {item!r}")
        heads.append((item[0], item[1], item[2]))
    return heads


def verify_against_checkpoint(engine: Engine, path: Path, key: bytes) -> dict[str, str]:
    """Every checkpointed case whose log no longer extends its checkpointed head, with why.

    A case passes when its log still holds, at the checkpointed version, the entry with the
    checkpointed hash; newer entries are fine (the chain check covers them). Cases opened after
    the checkpoint are not its business.

    Raises:
        CheckpointInvalid: the checkpoint file cannot be trusted.
    """
    heads = read_checkpoint(path, key)
    problems: dict[str, str] = {}
    with engine.store.read() as tx:
        for case_id, version, head in heads:
            record = tx.get_case(case_id)
            if record is None:
                problems[case_id] = "the case was deleted after the checkpoint"
                continue
            entry = tx.entry(case_id, version)
            if entry is None:
                problems[case_id] = (
                    f"entry {version} is missing: the log was truncated below the checkpoint "
                    f"(now {record.version} entries recorded)"
                )
            elif entry.hash != head:
                problems[case_id] = (
                    f"entry {version} differs from the checkpoint: the log was rewritten"
                )
            elif record.version < version:
                problems[case_id] = (
                    f"the case row says version {record.version}, below the checkpointed {version}"
                )
    return problems


__all__ = [
    "FORMAT",
    "KEY_ENV",
    "CheckpointInvalid",
    "load_key",
    "read_checkpoint",
    "verify_against_checkpoint",
    "write_checkpoint",
]
