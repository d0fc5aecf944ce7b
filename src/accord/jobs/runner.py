"""A node's worker: its database, the system clock and every registered handler.

``accord worker`` runs ``node_worker(node).run(stop)`` in the foreground; the worker
``accord serve`` runs in a thread is ``accord.jobs.inline``.
"""

from __future__ import annotations

import os
import socket
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


def local_worker_gone(worker_id: str) -> bool:
    """Whether ``worker_id`` names a worker process of this machine that no longer runs
    (``accord worker``'s ``host:pid`` or the inline worker's ``serve-pid``)."""
    host, _, pid = worker_id.rpartition(":")
    if not host and worker_id.startswith("serve-"):
        pid = worker_id.removeprefix("serve-")
    elif host != socket.gethostname():
        return False
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


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
