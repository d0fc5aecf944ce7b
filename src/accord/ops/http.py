"""What every HTTP request goes through: a request id, an access log line, metrics, and a
clean ``503`` when the database is out of reach.

The id is set before anything else runs and echoed in ``X-Request-ID``; the access line
names the route template (``/api/v1/cases/{case_id}``), never the path with its ids, nor
the query string, nor any header — tokens and case links stay out of the logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from accord.ops import metrics
from accord.ops.logs import new_request_id, request_id
from accord.store.database import stop_tracking, track_writes, tracked_writes

access = logging.getLogger("accord.access")
log = logging.getLogger("accord.api")
UNREACHABLE = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.DisconnectionError,
    sa.exc.TimeoutError,
)


def _template(request: Request) -> str:
    """The route template a request matched (``/api/v1/cases/{case_id}``): a label with
    few values, and no ids, in the metrics and the logs. FastAPI keeps an included
    router's routes unprefixed and records the effective one in the scope."""
    effective = (request.scope.get("fastapi") or {}).get("effective_route_context")
    route = effective or request.scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def instrument(app: FastAPI) -> None:
    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        token = request_id.set(new_request_id(request.headers.get("x-request-id")))
        _, tracking = track_writes()  # whether a commit happened, for the 503 below
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["X-Request-ID"] = request_id.get() or ""
            return response
        finally:
            template = _template(request)
            metrics.observe(request.method, template, status, started)
            access.info(
                "%s %s %d",
                request.method,
                template,
                status,
                extra={
                    "method": request.method,
                    "route": template,
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            stop_tracking(tracking)
            request_id.reset(token)

    @app.exception_handler(sa.exc.OperationalError)
    @app.exception_handler(sa.exc.InterfaceError)
    @app.exception_handler(sa.exc.DisconnectionError)
    @app.exception_handler(sa.exc.TimeoutError)
    def unavailable(request: Request, exc: Exception) -> JSONResponse:
        # Unreachable, or did not answer within its timeouts (accord.store.database). A
        # transaction that failed before COMMIT rolled back: if none of this request's
        # commits went through or failed on the way, nothing was changed. A failed COMMIT
        # is another matter: the server may have committed and the answer been lost. A
        # GET changes nothing the client asked for (at most bookkeeping, such as when a
        # token was last used), whatever it committed.
        outcome = tracked_writes()
        log.warning("database unreachable or too slow: %s", type(exc).__name__)
        safe = request.method in ("GET", "HEAD", "OPTIONS")
        if safe or outcome is None or outcome.nothing_changed:
            body = {
                "error": "unavailable",
                "message": "the database did not answer in time; nothing was changed, try again",
                "changed": False,
            }
        else:
            body = {
                "error": "unavailable",
                "message": "the database stopped answering while this request was saving; "
                "some or all of it may have been saved: check before trying again",
                "changed": None,
            }
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
