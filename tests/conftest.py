"""Shared fixtures: a fresh database per test on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import structlog

from engine.testing import ManualClock

PG_URL = os.environ.get("OMSFLOW_TEST_PG_URL")
# Monday 23 November 2026, 10:00 in Moscow
START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)]


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Each test starts from structlog's defaults: a CLI test's configure() must not leak."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PG_URL:
        return
    skip = pytest.mark.skip(reason="OMSFLOW_TEST_PG_URL is not set (.ci/run always sets it)")
    for item in items:
        if "pg" in item.keywords:
            item.add_marker(skip)


def _pg_schema_url(schema: str) -> str:
    assert PG_URL
    url = sa.engine.make_url(PG_URL)
    url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose connections live in a fresh, private PostgreSQL schema."""
    yield from _private_schema()


@pytest.fixture
def second_pg_url() -> Iterator[str]:
    """Another private schema beside ``pg_url``'s (an identical second database)."""
    yield from _private_schema()


def _private_schema() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("OMSFLOW_TEST_PG_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield _pg_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'omsflow.db'}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'omsflow.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)
