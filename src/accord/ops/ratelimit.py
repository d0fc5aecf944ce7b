"""The one token-bucket rate limiter: a bucket per key, in this process's memory.

The REST API limits each caller's requests with it (``accord.api.ratelimit``: API token,
session member, portal link; the login form per username and per address) and federation
limits the events each peer node pushes (``accord.federation.server``). A bucket holds at
most ``burst`` units (by default a minute's worth) and refills continuously at
``per_minute`` a minute; ``take`` spends ``count`` units or says how many whole seconds to
wait — the ``Retry-After`` both answer with a ``429`` — after which the same request is
admitted, provided nothing else spends the bucket first.

Buckets are per process: nothing is shared or persisted. Full buckets (the same as none)
are dropped once more than ``PRUNE_ABOVE`` keys are held, so a stream of new keys cannot
grow the memory without bound.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

PRUNE_ABOVE = 10_000  # buckets kept before full ones (the same as none) are dropped
EPSILON = 1e-9  # float slack, so that waiting exactly the seconds named always suffices


class RateLimiter:
    """A token bucket per key: ``burst`` deep, refilled at ``per_minute`` a minute."""

    def __init__(
        self,
        per_minute: int,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1 or (burst is not None and burst < 1):
            raise ValueError("a rate limit needs at least one request a minute and a burst of 1")
        self.per_minute = per_minute
        self.burst = burst or per_minute
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (units left, when)
        self._lock = threading.Lock()

    def take(self, key: str, count: int = 1) -> int:
        """Spend ``count`` units of ``key``: 0 if admitted, else the whole seconds to wait.

        ``count`` above ``burst`` can never be admitted; callers refuse it up front (a
        ``413`` for a push larger than a minute's allowance) rather than name a wait."""
        rate = self.per_minute / 60
        with self._lock:
            now = self.clock()
            left, since = self._buckets.get(key, (float(self.burst), now))
            left = min(float(self.burst), left + (now - since) * rate)
            if left + EPSILON >= count:
                self._buckets[key] = (left - count, now)
                if len(self._buckets) > PRUNE_ABOVE:
                    self._prune(now, rate)
                return 0
            self._buckets[key] = (left, now)
            return max(1, math.ceil((count - left) / rate))

    def _prune(self, now: float, rate: float) -> None:
        full = [
            key
            for key, (left, since) in self._buckets.items()
            if left + (now - since) * rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
