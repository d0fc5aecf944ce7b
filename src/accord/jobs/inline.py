"""The worker ``accord serve`` runs in a thread on the embedded default (SQLite, one
process); with PostgreSQL, ``accord worker`` processes do this work instead."""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime

from accord.jobs.runner import node_worker
from accord.node import Node

log = logging.getLogger("accord.jobs")


def prepare(node: Node) -> None:
    """Before a worker starts: the jobs a dead worker of this machine held (a killed
    ``accord serve``), timers for callbacks agreed while no worker ran, response clocks
    rebuilt from the case logs, and the next daily digest. Each is idempotent: a timer
    that already fired does not fire again."""
    from accord.jobs.queue import JobQueue
    from accord.jobs.runner import local_worker_gone
    from accord.service import callbacks, digest, sla

    try:
        reaped = JobQueue(node.db, now=lambda: datetime.now(UTC)).reap(local_worker_gone)
        if reaped:
            log.info("took back %d job(s) from a worker process that died", reaped)
        callbacks.build(node).reconcile_all()
        sla.build(node).reconcile_all()
        digest.build(node).ensure_scheduled()
    except Exception:
        log.exception("could not prepare the timers at start")


class InlineWorker:
    def __init__(self, node: Node, *, idle: float = 1.0) -> None:
        self.node = node
        self.idle = idle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="accord-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        prepare(self.node)
        worker = node_worker(self.node, worker_id=f"serve-{os.getpid()}")
        worker.run(self._stop, idle=self.idle)
