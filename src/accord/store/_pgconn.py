"""A psycopg connection that does not wait for the server forever.

``statement_timeout`` is enforced by the server: a server that is frozen (stopped, not
gone), or a network that silently drops packets, never sends the error, and a blocking
read waits until TCP gives up (many minutes). ``BoundedConnection`` bounds every wait on
the socket — a statement, its results, COMMIT, ROLLBACK, the pool's ping — by
``io_timeout`` seconds; past it the connection is closed (its state is unknown) and an
``OperationalError`` is raised, which SQLAlchemy reports as a disconnect and drops from
its pool. Only imported when a PostgreSQL engine connects.
"""

from __future__ import annotations

import inspect
from typing import Any

import psycopg
from psycopg import errors

_WaitTimeout: type[Exception] | None = getattr(errors, "_WaitTimeout", None)
# psycopg >= 3.2 can time out a wait; older versions keep only the server-side limits.
CAN_BOUND = (
    _WaitTimeout is not None and "timeout" in inspect.signature(psycopg.Connection.wait).parameters
)


class BoundedConnection(psycopg.Connection[Any]):
    io_timeout: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if timeout is not None:  # the caller's own limit (psycopg's notifies): as is
            return super().wait(gen, interval, timeout)
        if not self.io_timeout or not CAN_BOUND or _WaitTimeout is None:
            return super().wait(gen, interval)
        try:
            return super().wait(gen, interval, self.io_timeout)
        except _WaitTimeout:
            self.pgconn.finish()  # mid-protocol: the connection cannot be used again
            raise psycopg.OperationalError(
                f"the database did not answer within {self.io_timeout:g} s"
            ) from None
