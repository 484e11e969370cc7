"""Fixtures of the CLI tests: an isolated environment and a CLI bound to a fresh database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.cli.helpers import Cli


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No OMSFLOW_* variable of the caller leaks in; files land in tmp; logging is restored."""
    for name in list(os.environ):
        if name.startswith("OMSFLOW_") and name != "OMSFLOW_TEST_PG_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    try:
        yield
    finally:
        if was_configured:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()


@pytest.fixture
def cli(sqlite_url: str) -> Cli:
    return Cli(sqlite_url)


@pytest.fixture
def any_cli(db_url: str) -> Cli:
    """The same on SQLite and, when configured, PostgreSQL."""
    return Cli(db_url)
