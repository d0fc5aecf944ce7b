"""Rate limits for the REST API: a token bucket per caller, in this process's memory.

Every authenticated request takes one request from its caller's bucket: the API token
(``token:<id>``), the member of a browser session (``member:<id>``) or the case link of a
portal session (``portal:<session_ref>``). A bucket holds at most ``burst`` requests (by
default a minute's worth) and refills continuously at ``per_minute`` a minute. When it is
empty the API answers ``429`` with ``Retry-After``: the whole seconds after which the
next request will be admitted, provided nothing else spends the bucket first.

``/health``, ``/ready``, ``/openapi.json`` and logging in do not authenticate a caller and
are not counted; ``/federation`` has its own limit per peer node.

Buckets are per process. With several web processes behind a load balancer each keeps
its own, so a caller may make up to ``per_minute`` requests a minute to *each*; divide
the limit by the number of processes if that matters. Nothing is shared or persisted.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping

ENV = "ACCORD_RATE_LIMIT_PER_MINUTE"
DEFAULT_PER_MINUTE = 600
PRUNE_ABOVE = 10_000  # buckets kept before full ones (the same as none) are dropped
EPSILON = 1e-9  # float slack, so that waiting exactly Retry-After seconds always suffices


class RateLimiter:
    """A token bucket per key: ``burst`` deep, refilled at ``per_minute`` a minute."""

    def __init__(
        self,
        per_minute: int = DEFAULT_PER_MINUTE,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1 or (burst is not None and burst < 1):
            raise ValueError("a rate limit needs at least one request a minute and a burst of 1")
        self.per_minute = per_minute
        self.burst = burst or per_minute
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (requests left, when)
        self._lock = threading.Lock()

    def take(self, key: str) -> int:
        """Spend one request of ``key``: 0 if admitted, else the whole seconds to wait."""
        rate = self.per_minute / 60
        with self._lock:
            now = self.clock()
            left, since = self._buckets.get(key, (float(self.burst), now))
            left = min(float(self.burst), left + (now - since) * rate)
            if left + EPSILON >= 1:
                self._buckets[key] = (left - 1, now)
                if len(self._buckets) > PRUNE_ABOVE:
                    self._prune(now, rate)
                return 0
            self._buckets[key] = (left, now)
            return max(1, math.ceil((1 - left) / rate))

    def _prune(self, now: float, rate: float) -> None:
        full = [
            key
            for key, (left, since) in self._buckets.items()
            if left + (now - since) * rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]


def configure(
    rate_limit: RateLimiter | int | None, environ: Mapping[str, str] = os.environ
) -> RateLimiter | None:
    """The limiter an application uses: ``rate_limit`` as given (an int is requests a
    minute), else ``$ACCORD_RATE_LIMIT_PER_MINUTE``, else 600 a minute. 0 turns it off."""
    if isinstance(rate_limit, RateLimiter):
        return rate_limit
    if rate_limit is None:
        raw = environ.get(ENV, "").strip()
        try:
            rate_limit = int(raw) if raw else DEFAULT_PER_MINUTE
        except ValueError:
            raise ValueError(f"{ENV} must be a whole number of requests, not {raw!r}") from None
    if rate_limit < 0:
        raise ValueError(f"a rate limit cannot be negative ({rate_limit})")
    return RateLimiter(rate_limit) if rate_limit else None
