"""Who is calling: a member (API token or web session) or a customer (portal link).

Access checks live here and nowhere else. Every endpoint but ``/health`` and
``/ready`` depends on one of these: ``require(scope)`` for members,
``portal_grant`` for customers, who see and act on exactly one case as their party.
Both then spend one request of the caller's rate limit (``accord.api.ratelimit``):
per API token, per member for a session, per case link for the portal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException, Request

from accord.api.ratelimit import RateLimiter, configure
from accord.auth import version as grants_version
from accord.auth.clock import now_utc
from accord.auth.errors import LinkExpired, LinkInvalid
from accord.auth.members import Member
from accord.auth.portal import PortalGrant
from accord.auth.sessions import csrf_matches
from accord.auth.tokens import TokenGrant, token_hash
from accord.store.database import acting_for

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

GRANT_SECONDS = 5.0  # how long a process keeps an API token's grant (see GrantCache)


class GrantCache:
    """API tokens' grants kept by this process for ``GRANT_SECONDS``, so that a request
    with a known token costs one primary-key read instead of the token lookup (a join,
    the scopes parsed, the member rebuilt: about a millisecond on SQLite).

    As strict as the lookup: a kept grant is used only while the grants' version
    (``accord.auth.version``, changed in the same transaction as every revocation and
    every change to a member) is the one read before it was looked up, and only before
    the token's own expiry time. Keyed by the token's SHA-256, never the token."""

    def __init__(self, seconds: float = GRANT_SECONDS, size: int = 10_000) -> None:
        self.seconds = seconds
        self.size = size
        self._kept: dict[str, tuple[TokenGrant, str | None, float]] = {}
        self._lock = threading.Lock()

    def authenticate(self, services: Services, token: str) -> TokenGrant | None:
        tokens = services.tokens
        key = token_hash(token)
        version = grants_version.current(tokens.db)
        kept = self._kept.get(key)
        if kept is not None:
            grant, seen, at = kept
            if (
                seen == version
                and time.monotonic() - at < self.seconds
                and (grant.expires_at is None or now_utc(tokens.now) < grant.expires_at)
            ):
                return grant
        found = tokens.authenticate(token)  # read after the version: a change since shows
        with self._lock:
            if found is None:
                self._kept.pop(key, None)
            else:
                if len(self._kept) >= self.size:
                    self._kept.clear()  # many live tokens at once: start again
                self._kept[key] = (found, version, time.monotonic())
        return found


def grant_cache(app: FastAPI) -> GrantCache:
    """The application's kept grants (made on first use)."""
    try:
        cache: GrantCache = app.state.grant_cache
    except AttributeError:
        with _configuring:
            if not hasattr(app.state, "grant_cache"):
                app.state.grant_cache = GrantCache()
            cache = app.state.grant_cache
    return cache


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
    """The calling member, from ``Authorization: Bearer`` or the session cookie.

    Authenticated once per request, however many checks ask (the rate limit is spent
    once): the answer is kept on ``request.state``, and the request reads and writes for
    that member (``acting_for``: reads from a replica see their own writes)."""
    try:
        known: Principal = request.state.accord_principal
    except AttributeError:
        known = _authenticate(request)
        request.state.accord_principal = known
        acting_for(member_key(known.member.id))
    return known


def member_key(member_id: int) -> str:
    """Whom a member's requests read and write for (``accord.store.database``)."""
    return f"member:{member_id}"


def _authenticate(request: Request) -> Principal:
    services: Services = request.app.state.services
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise _unauthorised("use 'Authorization: Bearer <API token>'")
        grant = grant_cache(request.app).authenticate(services, credential.strip())
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
    """A dependency admitting members whose token or role grants ``scope``.

    One dependency, not two (``principal`` is called, not depended on): FastAPI runs each
    synchronous dependency in its own hop to the thread pool, which the profile of case
    reads showed costing more than the token lookup itself (benchmarks/RESULTS.md)."""

    def check(request: Request) -> Principal:
        return admit(request, scope)

    check.__name__ = f"require_{scope.replace(':', '_')}"
    return check


def admit(request: Request, scope: str) -> Principal:
    """The calling member if their token or role grants ``scope``; 401 or 403 if not.
    ``require``'s check, for an endpoint that authenticates inside its own work."""
    who = principal(request)
    if scope not in who.scopes:
        raise HTTPException(403, detail=f"this credential lacks the scope {scope!r}")
    return who


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
