"""Who a worker is: its id (``host:pid``), and whether a worker of this machine died.

A node's worker is built with its services (``accord.wiring.Services.worker``): ``accord
worker`` runs it in the foreground, ``accord serve`` in a thread (``accord.jobs.inline``).
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime


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
