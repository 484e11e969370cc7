"""Public fakes for embedders' tests, rehearsals and the demo: a clock you move by hand.

These are fakes of the engine's own ports; tests never mock the database or the ORM.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from engine.applications import example_application
from engine.applications.fields import format_snils, snils_check_number
from engine.clock import ensure_utc


class ManualClock:
    """A clock that stands still until told to move; thread-safe."""

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start, "start")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by ``delta`` or by ``timedelta(**kwargs)``; never backwards."""
        step = delta if delta is not None else timedelta(**kwargs)
        if step < timedelta(0):
            raise ValueError("a ManualClock never goes backwards")
        with self._lock:
            self._now += step
            return self._now

    def set(self, instant: datetime) -> datetime:
        """Jump to ``instant`` (not before the current time)."""
        target = ensure_utc(instant, "instant")
        with self._lock:
            if target < self._now:
                raise ValueError(f"{target.isoformat()} is before {self._now.isoformat()}")
            self._now = target
            return self._now


def make_snils(n: int) -> str:
    """The ``n``-th valid SNILS (formatted), for seeding tests, rehearsals and the demo."""
    body = f"{2_000_000 + n:09d}"
    return format_snils(f"{body}{snils_check_number(body):02d}")


def person(type_: str, n: int) -> dict[str, Any]:
    """The example application of ``type_`` for the ``n``-th distinct person."""
    data = example_application(type_)
    data["applicant"]["snils"] = make_snils(2 * n)
    if "parent_snils" in data:
        data["parent_snils"] = data["applicant"]["snils"]
    if isinstance(data.get("child"), dict):
        data["child"]["snils"] = make_snils(2 * n + 1)
    return data
