"""The cheap record copy and the store's JSON text behave as the standard library does."""

from __future__ import annotations

import json
import math
from dataclasses import FrozenInstanceError, dataclass, field, replace

import pytest

from engine.records import evolve
from engine.store.codec import dumps, loads


@dataclass(frozen=True)
class _Row:
    id: int
    name: str
    tags: tuple[str, ...] = ()
    meta: dict[str, int] = field(default_factory=dict)


def test_evolve_equals_replace_and_leaves_the_original_alone() -> None:
    row = _Row(1, "a", ("x",), {"k": 1})
    changed = evolve(row, name="b", tags=())
    assert changed == replace(row, name="b", tags=())
    assert type(changed) is _Row
    assert row == _Row(1, "a", ("x",), {"k": 1})
    with pytest.raises(FrozenInstanceError):
        changed.name = "c"  # type: ignore[misc]


def test_evolve_refuses_a_field_the_record_does_not_have() -> None:
    with pytest.raises(TypeError, match="no field 'nmae'"):
        evolve(_Row(1, "a"), nmae="b")


@pytest.mark.parametrize(
    "value",
    [
        {"applicant": {"full_name": "Иванова Мария Петровна", "snils": "112-233-445 95"}},
        [1, 2.5, None, True, "текст", {"a": []}],
        {"1": "one", "z": {"y": [0.1, -3]}},
    ],
)
def test_json_text_reads_back_as_the_json_module_reads_it(value: object) -> None:
    assert loads(dumps(value)) == json.loads(json.dumps(value))


def test_what_orjson_refuses_is_written_and_read_by_the_json_module() -> None:
    big = {"n": 2**70}
    assert loads(dumps(big)) == big
    assert dumps({1: "a"}) == '{"1":"a"}'  # integer keys become strings, as json.dumps does
    assert math.isnan(loads('{"x": NaN}')["x"])  # text json.dumps once wrote
