"""The web UI: the members' inbox and case workspace, the customer portal, and admin.

Server-rendered with Jinja2 (autoescaped), one small stylesheet and one small script
(``static/``) for keyboard shortcuts and live updates — no build step, no framework on
the client, every page usable without JavaScript. ``install`` adds it to the application.
Live updates poll ``/web/changes``, a token read from the database, so they work the same
whichever process serves the page (``accord serve --workers N``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from accord.service.errors import ServiceError
from accord.service.inbox import Inbox
from accord.web.admin import admin_routes
from accord.web.outcomes import outcome_pages
from accord.web.pages import member_routes
from accord.web.portal import portal_routes
from accord.web.render import render
from accord.web.session import LoginRequired, login_redirect

if TYPE_CHECKING:
    from accord.wiring import Services

STATIC = Path(__file__).parent / "static"
API_PREFIXES = ("/api/", "/hooks/", "/federation", "/chat/")


def _wants_page(request: Request) -> bool:
    """A browser asking for a page (not the API, not a program)."""
    path = request.url.path
    return not path.startswith(API_PREFIXES) and "text/html" in request.headers.get("accept", "")


def install(app: FastAPI, services: Services) -> Inbox:
    """Add the pages to ``app``; call after the outcome routes (it uses their services)."""
    inbox = Inbox(services.node.cases, services.node.key.public, now=services.negotiation.now)
    app.state.inbox = inbox
    app.mount("/web/static", StaticFiles(directory=STATIC), name="web-static")
    app.include_router(member_routes(services, inbox, app.state.outcomes), include_in_schema=False)
    app.include_router(portal_routes(services), include_in_schema=False)
    app.include_router(admin_routes(services, app.state), include_in_schema=False)
    app.include_router(outcome_pages(services, app.state.outcomes), include_in_schema=False)

    @app.exception_handler(LoginRequired)
    def to_login(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(login_redirect(exc.next_path), status_code=303)

    @app.exception_handler(ServiceError)
    def service_error(request: Request, exc: ServiceError) -> Response:
        if _wants_page(request):
            return render("error.html", status=exc.status, message=exc.message)
        return JSONResponse(exc.to_json(), status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if _wants_page(request) and exc.status_code in (400, 403, 404, 409, 413, 422):
            return render("error.html", status=exc.status_code, message=str(exc.detail))
        return await http_exception_handler(request, exc)

    return inbox
