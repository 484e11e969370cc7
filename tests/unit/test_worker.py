"""The worker's start: the catch-up fires before the scheduler is built, and a stop during it ends
the worker instead of leaving a scheduler running.

The runner here is a fake of the worker's own port (``Runner``); the engine behind the real one
is exercised by the integration and reliability suites.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from engine.timers.worker import Worker

NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


@dataclass
class _Report:
    fired: int = 0
    stale: int = 0
    failed: int = 0
    max_lateness_seconds: float = 0.0


@dataclass
class _Runner:
    worker: Worker | None = None
    calls: list[bool] = field(default_factory=list)  # was APScheduler loaded at each call?

    def fire_due_timers(
        self, until: datetime | None = None, *, batch: int = 200, keep_outcomes: bool = True
    ) -> _Report:
        self.calls.append("apscheduler" in sys.modules)
        assert self.worker is not None
        self.worker.stop()
        return _Report(fired=3)

    def next_due(self) -> datetime | None:
        return None

    def now(self) -> datetime:
        return NOW


def test_a_stop_during_the_catch_up_ends_the_worker() -> None:
    runner = _Runner()
    worker = Worker(runner, poll_seconds=0.05)
    runner.worker = worker
    thread = threading.Thread(target=worker.start, kwargs={"install_signals": False})
    thread.start()
    thread.join(10)
    assert not thread.is_alive()  # start() returned: no scheduler left running
    assert len(runner.calls) == 1  # the catch-up ran once, and nothing after the stop
    assert worker.scheduler is not None
    assert not worker.scheduler.running


CATCH_UP_FIRST = """
import sys
from tests.unit.test_worker import _Runner
from engine.timers.worker import Worker
runner = _Runner()
runner.worker = Worker(runner)
runner.worker.start(install_signals=False)
print(runner.calls)
"""


def test_the_catch_up_fires_before_apscheduler_is_imported() -> None:
    # in a fresh process: this one may have imported APScheduler for other tests
    out = subprocess.run(
        [sys.executable, "-c", CATCH_UP_FIRST], capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines()[-1] == "[False]"
