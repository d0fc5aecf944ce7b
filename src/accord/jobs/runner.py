"""A node's worker, and running one in a background thread.

``accord worker`` runs ``node_worker(node)`` in the foreground; ``accord serve`` runs one
inline with ``WorkerThread`` (the embedded SQLite default needs no other process)::

    inline = WorkerThread(node_worker(node, worker_id="serve"))
    inline.start()
    ...
    inline.stop()        # finishes the batch in hand, then returns
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from accord.jobs import registry
from accord.jobs.queue import Clock, JobQueue
from accord.jobs.worker import Worker

if TYPE_CHECKING:
    from accord.node import Node


def system_clock() -> datetime:
    return datetime.now(UTC)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def node_worker(
    node: Node,
    *,
    worker_id: str | None = None,
    lease: timedelta = timedelta(minutes=5),
    batch: int = 20,
    now: Clock = system_clock,
) -> Worker:
    """A Worker on the node's database with every registered handler (``registry``)."""
    return Worker(
        node.db,
        JobQueue(node.db, now=now),
        registry.handlers(node),
        worker_id=worker_id or default_worker_id(),
        now=now,
        lease=lease,
        batch=batch,
    )


class WorkerThread:
    """Runs ``worker.run`` in a daemon thread until ``stop``."""

    def __init__(self, worker: Worker, *, idle: float = 1.0) -> None:
        self.worker = worker
        self.idle = idle
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=worker.run,
            args=(self._stop,),
            kwargs={"idle": idle},
            name="accord-worker",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
