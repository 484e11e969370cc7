"""The ``omsflow`` command: a thin shell over :class:`engine.api.Engine` (Typer, Rich).

The command tree, its options, JSON shapes and exit codes are a contract that admin scripts
depend on (see the README's operator's and auditor's guides): keys and options may be added,
never renamed. The CLI holds no business logic; every decision is the engine's.
"""

from __future__ import annotations

from engine.cli.app import app, main

__all__ = ["app", "main"]
