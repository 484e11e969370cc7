"""The engine's frozen records made and copied cheaply.

A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__``,
and ``dataclasses.replace`` walks the field list on top (about 4 us a copy); a step copies its
log entry, case row and deadlines several times, and a timer batch reads hundreds of rows.
These records are plain frozen dataclasses without ``__post_init__`` or slots, so filling
their attribute dictionary is the same thing at a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

_R = TypeVar("_R")


def evolve(record: _R, **changes: Any) -> _R:
    """``dataclasses.replace`` for a frozen dataclass with neither ``__post_init__`` nor slots."""
    fields = record.__dataclass_fields__  # type: ignore[attr-defined]
    unknown = changes.keys() - fields.keys()
    if unknown:
        raise TypeError(f"{type(record).__name__} has no field {sorted(unknown)[0]!r}")
    new = object.__new__(type(record))
    attrs = new.__dict__
    attrs.update(record.__dict__)
    attrs.update(changes)
    return new


def build(cls: type[_R], names: tuple[str, ...], values: Iterable[Any]) -> _R:
    """``cls(**dict(zip(names, values)))`` for such a dataclass, ``names`` being all its fields."""
    new = object.__new__(cls)
    new.__dict__.update(zip(names, values, strict=True))
    return new
