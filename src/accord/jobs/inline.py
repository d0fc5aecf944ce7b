"""The worker ``accord serve`` runs in a thread on the embedded default (SQLite, one
process); with PostgreSQL, ``accord worker`` processes do this work instead."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from accord.jobs.worker import Worker

log = logging.getLogger("accord.jobs")


class InlineWorker:
    """Runs ``prepare`` (the timers rebuilt at start, ``Services.prepare``) and then the
    worker ``make`` builds, in a thread of its own until ``stop``."""

    def __init__(
        self, make: Callable[[], Worker], prepare: Callable[[], None], *, idle: float = 1.0
    ) -> None:
        self.make = make
        self.prepare = prepare
        self.idle = idle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="accord-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        self.prepare()
        self.make().run(self._stop, idle=self.idle)
