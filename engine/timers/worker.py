"""The long-running timer worker: APScheduler only wakes the runner; the database decides.

The scheduler holds two jobs in its own in-memory job store (never shared between processes):
a safety poll every ``poll_seconds`` and a one-off wake-up at the next due instant, re-planned
after every run. Each wake-up calls ``fire_due_timers()``, which claims due timers in the
database, so a crash between a commit and the scheduler loses nothing, and several workers on
PostgreSQL never fire one timer twice. Misfires are never dropped: a late wake-up still runs.
"""

from __future__ import annotations

import importlib.util
import signal
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Protocol

import structlog

if TYPE_CHECKING:
    from apscheduler.schedulers.blocking import BlockingScheduler

log = structlog.get_logger("omsflow.worker")


class Report(Protocol):
    fired: int
    stale: int
    failed: int

    @property
    def max_lateness_seconds(self) -> float: ...


class Runner(Protocol):
    """What the worker needs of the engine."""

    def fire_due_timers(
        self, until: datetime | None = None, *, batch: int = 200, keep_outcomes: bool = True
    ) -> Report: ...

    def next_due(self) -> datetime | None: ...

    def now(self) -> datetime: ...


class Worker:
    """Fires due timers now, then whenever the next one falls due (and on a safety poll)."""

    def __init__(self, runner: Runner, *, poll_seconds: float = 5.0, batch: int = 200) -> None:
        self.runner = runner
        self.poll_seconds = poll_seconds
        self.batch = batch
        # built by start() after the first catch-up (see there); a broken install still
        # fails here, at once, rather than after the catch-up
        if importlib.util.find_spec("apscheduler") is None:
            raise ImportError("APScheduler is not installed: the timer worker needs it")
        self.scheduler: BlockingScheduler | None = None
        self._stopped = False
        self._lock = threading.Lock()

    def tick(self) -> None:
        """Fire everything due; then plan the next wake-up at the next due instant."""
        if not self._lock.acquire(blocking=False):
            return  # the other job is already firing; it will plan the next wake-up
        try:
            # counts only: a catch-up after downtime may fire millions of timers in one call
            report = self.runner.fire_due_timers(batch=self.batch, keep_outcomes=False)
            if report.fired or report.stale or report.failed:
                log.info(
                    "timers_run",
                    fired=report.fired,
                    stale=report.stale,
                    failed=report.failed,
                    max_late_seconds=report.max_lateness_seconds,
                )
            self._plan()
        except Exception:
            # The worker must outlive a database hiccup: the safety poll tries again.
            log.exception("timers_run_failed")
        finally:
            self._lock.release()

    def _plan(self) -> None:
        if self.scheduler is None:
            return  # the first catch-up: start() plans once the scheduler is there
        nxt = self.runner.next_due()
        if nxt is None:
            return
        now = self.runner.now()
        horizon = now + timedelta(seconds=self.poll_seconds)
        if nxt >= horizon:
            return  # the safety poll comes first anyway
        self.scheduler.add_job(
            self.tick,
            "date",
            run_date=max(nxt, now),
            id="next_due",
            replace_existing=True,
        )

    def start(self, install_signals: bool = True) -> None:
        """Catch up on what fell due while no worker ran, then run until stopped."""
        log.info("worker_start", poll_seconds=self.poll_seconds)
        # The catch-up runs before APScheduler is even imported (~0.15 s): after a restart the
        # oldest timers do not wait for what only wakes the later runs.
        self.tick()
        from apscheduler.schedulers.blocking import BlockingScheduler  # noqa: PLC0415

        self.scheduler = BlockingScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.scheduler.add_job(self.tick, "interval", seconds=self.poll_seconds, id="poll")
        self._plan()  # what fell due during the catch-up runs at once
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._stop_on_signal)
        if not self._stopped:  # stop() came during the catch-up
            self.scheduler.start()
        log.info("worker_stop")

    def stop(self) -> None:
        self._stopped = True
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def _stop_on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.stop()


def run_worker(
    runner: Runner,
    *,
    poll_seconds: float = 5.0,
    batch: int = 200,
    on_start: Callable[[Worker], None] | None = None,
) -> None:
    """Run a worker in this process until SIGTERM or SIGINT."""
    worker = Worker(runner, poll_seconds=poll_seconds, batch=batch)
    if on_start is not None:
        on_start(worker)
    worker.start()
