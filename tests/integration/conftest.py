"""An Engine on a fresh database (SQLite, and PostgreSQL when configured) with a manual clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.api import Engine
from engine.testing import ManualClock


@pytest.fixture
def eng(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    engine = Engine(db_url, clock=clock)
    try:
        yield engine
    finally:
        engine.close()
