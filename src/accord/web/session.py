"""Who is looking at a page: the member behind the session cookie, and their CSRF token.

Pages share the API's sessions (``accord.auth.sessions``): logging in here also admits the
browser to ``/api/v1`` and the outcome pages. A page that needs a member and finds none
redirects to ``/login``; every form post carries the session's CSRF token in a hidden
field, compared in constant time. Logins are rate-limited per username and per address.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from fastapi import HTTPException, Request, Response

from accord.api.auth import SESSION_COOKIE, member_key
from accord.api.ratelimit import RateLimiter
from accord.auth.members import Member
from accord.auth.scopes import CHANNELS_ADMIN, MEMBERS_ADMIN, TOKENS_ADMIN, WORKFLOWS_ADMIN
from accord.auth.sessions import csrf_matches
from accord.service.canned import MANAGERS
from accord.store.database import acting_for

if TYPE_CHECKING:
    from accord.wiring import Services

log = logging.getLogger("accord.auth")

ADMIN_SCOPES = frozenset({MEMBERS_ADMIN, CHANNELS_ADMIN, WORKFLOWS_ADMIN, TOKENS_ADMIN})
SESSION_TTL = timedelta(hours=12)
LOGIN_ATTEMPTS_PER_MINUTE = 10
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)


class LoginRequired(Exception):
    """No live session: the handler sends the browser to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


@dataclass(frozen=True)
class Viewer:
    """The member on this page, what they may do, and the token their forms carry."""

    member: Member
    scopes: frozenset[str]
    csrf: str
    unread: int = 0  # unread notifications, for the header's count

    def may(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def sees_admin(self) -> bool:
        """Whether the admin page has a section for this member (an admin scope, or a
        lead's canned replies): the header shows no link the member cannot use."""
        return bool(self.scopes & ADMIN_SCOPES) or self.member.role in MANAGERS


def viewer(request: Request) -> Viewer:
    """The logged-in member (a FastAPI dependency); ``LoginRequired`` otherwise."""
    services: Services = request.app.state.services
    cookie = request.cookies.get(SESSION_COOKIE)
    found = services.sessions.lookup(cookie) if cookie else None
    if found is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    member, csrf = found
    acting_for(member_key(member.id))  # the page's replica reads see the member's own writes
    return Viewer(member, member.scopes, csrf, services.ownership.unread_count(member.id))


def check_csrf(who: Viewer, given: str | None) -> None:
    """Refuse a form post whose hidden CSRF field does not match the session."""
    if not csrf_matches(who.csrf, given):
        raise HTTPException(403, detail="this form has expired or did not come from Accord")


LOGIN_CSRF_COOKIE = "accord_login_csrf"


def login_csrf(request: Request) -> str:
    """The login form's CSRF token: the browser's own, else a new one. Before a session
    exists the token is a double-submit cookie (``SameSite=Strict``, only for ``/login``)
    that the form repeats in a hidden field, so another site cannot log a browser in as
    the attacker (login CSRF)."""
    held = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return (
        held
        if len(held) == 43 and held.replace("-", "").replace("_", "").isalnum()
        else (secrets.token_urlsafe(32))
    )


def set_login_csrf(response: Response, request: Request, token: str) -> Response:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/login",
    )
    return response


def login_csrf_ok(request: Request, given: str | None) -> bool:
    """Whether a login post repeats the browser's login cookie (refusals are logged)."""
    held = request.cookies.get(LOGIN_CSRF_COOKIE)
    if held and given and csrf_matches(held, given):
        return True
    where = request.client.host if request.client else "?"
    log.warning("refused: a login post from %s without the login form's CSRF token", where)
    return False


def need(who: Viewer, scope: str) -> None:
    """Refuse (403, logged) a member whose role lacks ``scope``: call it before any work."""
    if not who.may(scope):
        log.warning("refused: %s (%s) lacks %s", who.member.username, who.member.role, scope)
        raise HTTPException(403, detail=f"your role does not allow this ({scope})")


def login_redirect(next_path: str) -> str:
    return "/login?next=" + quote(safe_next(next_path), safe="")


def safe_next(path: str | None) -> str:
    """Only a path on this site: never an open redirect to another one."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def secure_headers(response: Response, *, referrer: str = "same-origin") -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = referrer
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    return response


def login_limiter(request: Request) -> RateLimiter:
    """The application's login limiter (one per application, so per process)."""
    limiter: RateLimiter | None = getattr(request.app.state, "login_limiter", None)
    if limiter is None:
        limiter = request.app.state.login_limiter = RateLimiter(LOGIN_ATTEMPTS_PER_MINUTE)
    return limiter


def login_wait(request: Request, username: str, *, way: str) -> int:
    """Count one login attempt for ``username`` from the caller's address, whichever way
    in (``way``: the web ``/login`` or the API's ``POST /api/v1/session``) — one limiter
    for both; 0 if admitted, else the seconds to wait (the refusal is logged)."""
    limiter = login_limiter(request)
    address = request.client.host if request.client else "?"
    wait = max(limiter.take(f"user:{username.lower()}"), limiter.take(f"addr:{address}"))
    if wait:
        log.warning(
            "login refused (%s): too many attempts for %r from %s; retry in %d s",
            way,
            username[:64],
            address,
            wait,
        )
    return wait
