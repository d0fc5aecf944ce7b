"""The same security headers on every answer of the application (issue 22, row 10).

Pages set their headers through ``accord.web.session.secure_headers``; this outermost
ASGI middleware makes sure no answer goes without them, whatever produced it — a JSON
answer of the API, a redirect, a 404 or 405 from the router, a 413 of ``BodyLimit``, an
error page, a static file, a route someone adds later:

* ``Content-Security-Policy`` (the pages' policy: ``default-src 'self'``, no inline
  script or style, ``frame-ancestors 'none'``), ``X-Content-Type-Options: nosniff``,
  ``X-Frame-Options: DENY`` and ``Referrer-Policy: same-origin``, unless the answer set
  its own (the portal's ``no-referrer``, the raw-mail download's sandboxing policy);
* ``Cache-Control: no-store`` unless the answer set a cache policy, except for the
  static assets (``/web/static/``, ``/docs/assets/``), which hold nothing private.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accord.web.session import CSP

HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)
STATIC = ("/web/static/", "/docs/assets/")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(STATIC)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                wanted = [*HEADERS] if static else [*HEADERS, (b"cache-control", b"no-store")]
                headers.extend((n, v) for n, v in wanted if n not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
