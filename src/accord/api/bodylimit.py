"""A cap on request bodies, enforced before anything parses them or authenticates anyone.

``BodyLimit`` is the outermost ASGI middleware of the application. A request whose
``Content-Length`` is over its route's limit is answered ``413`` at once, its body never
read; a body without a length (chunked) is counted as it streams and cut with ``413`` as
soon as it passes the limit, so a client can never make the node hold more than the limit.
Each refusal is logged on ``accord.api`` with the address, the path and the size.

The limit is ``$ACCORD_MAX_BODY_BYTES`` (default 16 MiB: above the portal's 10 MiB uploads
and a federation push's 8 MiB), or ``create_app(node, max_body=…)``. A few routes need
more whatever it is set to: ``POST /api/v1/mail/inbound`` takes a whole raw mail in base64
(``accord.api.mail.MAX_RAW``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ENV = "ACCORD_MAX_BODY_BYTES"
DEFAULT_MAX_BODY = 16 * 1024 * 1024
log = logging.getLogger("accord.api")


def configure(max_body: int | None, environ: Mapping[str, str] = os.environ) -> int:
    """The general limit: ``max_body`` as given, else ``$ACCORD_MAX_BODY_BYTES``, else 16 MiB."""
    if max_body is None:
        raw = environ.get(ENV, "").strip()
        try:
            max_body = int(raw) if raw else DEFAULT_MAX_BODY
        except ValueError:
            raise ValueError(f"{ENV} must be a whole number of bytes, not {raw!r}") from None
    if max_body < 1024:
        raise ValueError(
            f"a body limit below 1024 bytes would refuse ordinary requests ({max_body})"
        )
    return max_body


class TooLarge(HTTPException):
    """A streamed body passed its limit after the answer had started."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"the request body is larger than {limit} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int, larger: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.larger = dict(larger or {})  # exact path -> a higher limit

    def limit_for(self, path: str) -> int:
        return max(self.limit, self.larger.get(path, 0))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.limit_for(path)
        where = (scope.get("client") or ("?",))[0]
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length")
        if length is None and b"transfer-encoding" not in headers:
            # no body at all in HTTP/1.1 (most reads): nothing to count, no wrappers
            await self.app(scope, receive, send)
            return
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0 or declared > limit:
                log.warning(
                    "refused: a %s-byte body to %s from %s (limit %d)",
                    length.decode("latin-1")[:20],
                    path,
                    where,
                    limit,
                )
                await _answer(send, 413 if declared >= 0 else 400, limit)
                return
        started = answered = False
        seen = 0

        async def counted() -> Message:
            nonlocal seen, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    log.warning(
                        "refused: a streamed body to %s from %s passed %d bytes", path, where, limit
                    )
                    if started:
                        raise TooLarge(limit)
                    # answer now, then tell the application the client has gone: whatever
                    # it does about that (a 400, an error) is never sent
                    await _answer(send, 413, limit)
                    answered = True
                    return {"type": "http.disconnect"}
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except Exception:
            if not answered:
                raise


async def _answer(send: Send, status: int, limit: int) -> None:
    detail = (
        f"the request body is larger than {limit} bytes"
        if status == 413
        else "the Content-Length header is not a number"
    )
    body = orjson.dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
