"""Who is calling: a member (API token or web session) or a customer (portal link).

Access checks live here and nowhere else. Every endpoint but ``/health`` and
``/ready`` depends on one of these: ``require(scope)`` for members,
``portal_grant`` for customers, who see and act on exactly one case as their party.
Both then spend one request of the caller's rate limit (``accord.api.ratelimit``):
per API token, per member for a session, per case link for the portal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI, HTTPException, Request

from accord.api.ratelimit import RateLimiter, configure
from accord.auth.errors import LinkExpired, LinkInvalid
from accord.auth.members import Member
from accord.auth.portal import PortalGrant
from accord.auth.sessions import csrf_matches

if TYPE_CHECKING:
    from accord.wiring import Services

SESSION_COOKIE = "accord_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """An authenticated member and what they may do on this request."""

    member: Member
    scopes: frozenset[str]
    via: str  # "api" for a token, "web" for a browser session


def _unauthorised(message: str, scheme: str = "Bearer") -> HTTPException:
    return HTTPException(401, detail=message, headers={"WWW-Authenticate": scheme})


_configuring = threading.Lock()


def rate_limiter(app: FastAPI) -> RateLimiter | None:
    """The application's limiter (``create_app(rate_limit=…)``); one from the environment
    if it has none yet. ``None``: not limited."""
    try:
        limiter: RateLimiter | None = app.state.rate_limiter
    except AttributeError:
        with _configuring:
            if not hasattr(app.state, "rate_limiter"):
                app.state.rate_limiter = configure(None)
            limiter = app.state.rate_limiter
    return limiter


def spend(request: Request, caller: str) -> None:
    """Count one request of ``caller``; ``429`` with ``Retry-After`` over the limit."""
    limiter = rate_limiter(request.app)
    if limiter is None:
        return
    wait = limiter.take(caller)
    if wait:
        raise HTTPException(
            429,
            detail=f"rate limit exceeded: {limiter.per_minute} requests a minute for this "
            f"credential; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )


def principal(request: Request) -> Principal:
    """The calling member, from ``Authorization: Bearer`` or the session cookie."""
    services: Services = request.app.state.services
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise _unauthorised("use 'Authorization: Bearer <API token>'")
        grant = services.tokens.authenticate(credential.strip())
        if grant is None:
            raise _unauthorised("the API token is unknown, expired or revoked")
        spend(request, f"token:{grant.token_id}")
        return Principal(grant.member, frozenset(grant.scopes), "api")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        found = services.sessions.lookup(cookie)
        if found is None:
            raise _unauthorised("the session has expired; log in again", "Session")
        member, csrf = found
        spend(request, f"member:{member.id}")
        if request.method not in SAFE_METHODS and not csrf_matches(
            csrf, request.headers.get(CSRF_HEADER, "")
        ):
            raise HTTPException(403, detail=f"missing or wrong {CSRF_HEADER} header")
        return Principal(member, member.scopes, "web")
    raise _unauthorised("authentication required: an API token or a session")


def require(scope: str) -> Callable[..., Principal]:
    """A dependency admitting members whose token or role grants ``scope``."""

    def check(who: Principal = Depends(principal)) -> Principal:
        if scope not in who.scopes:
            raise HTTPException(403, detail=f"this credential lacks the scope {scope!r}")
        return who

    check.__name__ = f"require_{scope.replace(':', '_')}"
    return check


def portal_grant(request: Request) -> PortalGrant:
    """The customer's grant from ``Authorization: Portal <link token>``."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "portal" or not token.strip():
        raise _unauthorised("use 'Authorization: Portal <token from your case link>'", "Portal")
    try:
        grant: PortalGrant = request.app.state.services.links.verify(token.strip())
    except LinkExpired as exc:
        raise _unauthorised("this case link has expired; ask for a new one", "Portal") from exc
    except LinkInvalid as exc:
        raise _unauthorised("this case link is not valid", "Portal") from exc
    spend(request, f"portal:{grant.session_ref}")
    return grant
