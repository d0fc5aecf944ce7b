"""Rate limits for the REST API: a token bucket per caller, in this process's memory.

Every authenticated request takes one request from its caller's bucket: the API token
(``token:<id>``), the member of a browser session (``member:<id>``) or the case link of a
portal session (``portal:<session_ref>``). A bucket holds at most ``burst`` requests (by
default a minute's worth) and refills continuously at ``per_minute`` a minute. When it is
empty the API answers ``429`` with ``Retry-After``: the whole seconds after which the
next request will be admitted, provided nothing else spends the bucket first.

``/health``, ``/ready``, ``/openapi.json`` and logging in do not authenticate a caller and
are not counted; ``/federation`` has its own limit per peer node. Both are the one
token bucket of ``accord.ops.ratelimit``.

Buckets are per process. With several web processes behind a load balancer each keeps
its own, so a caller may make up to ``per_minute`` requests a minute to *each*; divide
the limit by the number of processes if that matters. Nothing is shared or persisted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from accord.ops.ratelimit import RateLimiter

__all__ = ["DEFAULT_PER_MINUTE", "ENV", "RateLimiter", "configure"]

ENV = "ACCORD_RATE_LIMIT_PER_MINUTE"
DEFAULT_PER_MINUTE = 600


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
