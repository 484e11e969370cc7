"""The worker probe's child: ``python -m bench.probe URL INSTANT`` runs omsflow's timer worker.

It is the production worker (engine.timers.worker.run_worker) on an Engine whose clock stands
at INSTANT; the parent process watches the database and this process's peak RSS.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime

import structlog

from engine.api import Engine
from engine.testing import ManualClock
from engine.timers.worker import run_worker


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    url, instant = sys.argv[1], datetime.fromisoformat(sys.argv[2])
    engine = Engine(url, clock=ManualClock(instant), migrate=False)
    run_worker(engine, poll_seconds=1.0)


if __name__ == "__main__":
    main()
