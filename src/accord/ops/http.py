"""What every HTTP request goes through: a request id, an access log line, metrics, and a
clean ``503`` when the database is out of reach.

The id is set before anything else runs and echoed in ``X-Request-ID``; the access line
names the route template (``/api/v1/cases/{case_id}``), never the path with its ids, nor
the query string, nor any header — tokens and case links stay out of the logs.
"""

from __future__ import annotations

import logging
import time

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def _template(scope: Scope) -> str:
    """The route template a request matched (``/api/v1/cases/{case_id}``): a label with
    few values, and no ids, in the metrics and the logs. FastAPI keeps an included
    router's routes unprefixed and records the effective one in the scope."""
    effective = (scope.get("fastapi") or {}).get("effective_route_context")
    route = effective or scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def _request_id_header(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"x-request-id":
            return bytes(value).decode("latin-1")
    return None


class Observe:
    """The request id, the access line and the metrics of every HTTP request.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
    runs the app in a task of its own and copies the response through a stream, about a
    tenth of a cheap request's time (benchmarks/RESULTS.md, case reads)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = request_id.set(new_request_id(_request_id_header(scope)))
        _, tracking = track_writes()  # whether a commit happened, for the 503 below
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", (request_id.get() or "").encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            method = scope.get("method", "")
            template = _template(scope)
            metrics.observe(method, template, status, started)
            access.info(
                "%s %s %d",
                method,
                template,
                status,
                extra={
                    "method": method,
                    "route": template,
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            stop_tracking(tracking)
            request_id.reset(token)


def instrument(app: FastAPI) -> None:
    app.add_middleware(Observe)

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
