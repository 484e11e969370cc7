"""structlog processors (masking of personal data) and the ``configure()`` the CLI calls.

The package itself only calls ``structlog.get_logger()`` and never configures logging at import:
logging belongs to the host. A host that wants the engine's events masked puts
:func:`mask_event` (or the whole :func:`processors` chain) into its own configuration. Logs go
to standard error so that standard output stays a clean JSON document for ``--json``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

from engine.masking import mask_event

LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class StderrLoggerFactory:
    """Loggers that write to whatever ``sys.stderr`` is when they are created.

    structlog's own factories bind the stream once at configuration time; a host (or a test
    runner) that later swaps ``sys.stderr`` would keep writing to the old, maybe closed, one.
    """

    def __call__(self, *args: Any) -> structlog.PrintLogger:
        stream: TextIO = sys.stderr
        return structlog.PrintLogger(stream)


def processors(*, json: bool, colors: bool = False) -> list[Processor]:
    """The chain ``configure`` installs: context, level, UTC timestamp, masking, renderer.

    Masking runs after every processor that may add data and right before rendering, so no
    personal data reaches the output whatever the event carried.
    """
    chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if json:
        chain += [
            structlog.processors.format_exc_info,
            mask_event,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
    else:
        # Tracebacks without local variables: those hold applicants' data unmasked.
        tracebacks = structlog.dev.RichTracebackFormatter(show_locals=False)
        chain += [
            mask_event,
            structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=tracebacks),
        ]
    return chain


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def configure(json: bool | None = None, level: str = "INFO") -> None:
    """Configure structlog for a command-line host.

    Args:
        json: JSON lines when True, human console lines when False; None picks JSON when
            standard output is not a terminal (a script or a pipe reads it).
        level: the least severe level written (DEBUG, INFO, WARNING, ERROR or CRITICAL).

    Raises:
        ValueError: an unknown level name.
    """
    name = level.upper()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r} (known: {', '.join(LEVELS)})")
    as_json = not _is_terminal(sys.stdout) if json is None else json
    structlog.configure(
        processors=processors(json=as_json, colors=_is_terminal(sys.stderr)),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[name]),
        logger_factory=StderrLoggerFactory(),
        # Not cached: a second configure() (tests, embedding hosts) must take effect at once.
        cache_logger_on_first_use=False,
    )


__all__ = ["LEVELS", "StderrLoggerFactory", "configure", "mask_event", "processors"]
