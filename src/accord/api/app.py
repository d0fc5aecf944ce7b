"""The ASGI application: the REST API under ``/api/v1`` and operations endpoints.

Members authenticate with an API token (``Authorization: Bearer``) or a session
cookie from ``POST /api/v1/session``; customers with the token of their case link
(``Authorization: Portal``). Every refusal is JSON: ``{"error", "message", "field"?}``
from the services, ``{"detail"}`` from authentication and request validation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from accord import __version__
from accord.api.auth import (
    SESSION_COOKIE,
    Principal,
    admit,
    portal_grant,
    principal,
    require,
)
from accord.api.bodylimit import BodyLimit
from accord.api.bodylimit import configure as body_limit
from accord.api.connectors import connector_routes
from accord.api.customers import customer_routes
from accord.api.docs import install_docs
from accord.api.inbound import inbound_routes
from accord.api.mail import MAX_RAW, mail_routes
from accord.api.models import CaseIn, InviteIn, LoginIn, NoteIn, PortalLinkIn
from accord.api.negotiation import Context, Contexts, add_negotiation_routes, changed
from accord.api.outbound import outbound_routes
from accord.api.outcomes import install as install_outcomes
from accord.api.ownership import assignment_json, ownership_routes
from accord.api.ratelimit import RateLimiter, configure
from accord.api.responses import (
    PROMETHEUS,
    CaseList,
    HealthOut,
    InviteOut,
    LoginOut,
    MeOut,
    NoteOut,
    OpenedCase,
    PortalLinkOut,
    ReadyOut,
)
from accord.api.securityheaders import SecurityHeaders
from accord.api.webchat import webchat_routes
from accord.api.webhooks import webhook_routes
from accord.auth.passwords import Passwords
from accord.auth.portal import PortalGrant
from accord.auth.scopes import METRICS_READ
from accord.channels.blobs import node_blobs
from accord.channels.outbound import Outbound
from accord.federation.server import federation_router
from accord.node import Node
from accord.ops import metrics
from accord.ops.http import instrument
from accord.privacy import Privacy
from accord.service.errors import Conflict, Forbidden, ServiceError
from accord.service.links import issue_case_link
from accord.service.negotiation import Actor
from accord.web import install as install_pages
from accord.web.session import login_wait
from accord.wiring import Services

Clock = Callable[[], datetime]
SESSION_TTL = timedelta(hours=12)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    node: Node,
    *,
    now: Clock = _utc_now,
    transport: httpx.BaseTransport | None = None,
    push_rate: int = 20_000,
    rate_limit: RateLimiter | int | None = None,
    passwords: Passwords | None = None,
    inline_followers: bool = True,
    max_body: int | None = None,
    services: Services | None = None,
) -> FastAPI:
    """The application for ``node``; ``transport`` carries its requests to other nodes,
    ``push_rate`` caps the events each peer may push per minute, ``rate_limit`` the
    requests each API token, session or case link may make per minute (default
    ``$ACCORD_RATE_LIMIT_PER_MINUTE`` or 600; 0 for none; see ``accord.api.ratelimit``).
    ``now`` is the clock every service reads and ``passwords`` the members' hashing
    (argon2id's production profile by default); tests inject both. With
    ``inline_followers`` the followers of the case log (``accord.service.followers``) run
    in the request's thread right after each commit; ``accord serve`` sets it off and runs
    them in its worker thread instead. ``max_body`` caps request bodies (default
    ``$ACCORD_MAX_BODY_BYTES`` or 16 MiB; see ``accord.api.bodylimit``). A process that
    built its ``services`` already (``accord serve``: its worker, followers and mail
    listeners share them) passes them, and the other settings of services are unused."""
    app = FastAPI(
        title="Accord",
        version=__version__,
        description="Customer cases as negotiated agreements between parties.",
        docs_url=None,  # served from this node by install_docs, not from a CDN
        redoc_url=None,
    )
    install_docs(app)
    app.state.rate_limiter = configure(rate_limit)
    if services is None:
        services = Services.build(
            node,
            now=now,
            transport=transport,
            passwords=passwords,
            inline_followers=inline_followers,
        )
    app.state.services = services
    app.router.on_shutdown.append(services.close)

    @app.exception_handler(ServiceError)
    def service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status)

    instrument(app)
    # outermost: a body over the limit is refused before it is parsed or anyone authenticated
    app.add_middleware(
        BodyLimit,
        limit=body_limit(max_body),
        larger={"/api/v1/mail/inbound": MAX_RAW + 64 * 1024},
    )
    app.add_middleware(SecurityHeaders)  # outside it: every answer, a 413 too, has them

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {metrics.CONTENT_TYPE: {"schema": PROMETHEUS}}}},
    )
    def prometheus(request: Request) -> Response:
        """Prometheus metrics: requests, latencies, messages in, the outbox, timer lag,
        cases, peer sync age. From loopback, or with a token holding ``metrics:read``."""
        client = request.client.host if request.client else ""
        if client not in ("127.0.0.1", "::1"):
            who = principal(request)
            if METRICS_READ not in who.scopes:
                raise HTTPException(403, detail=f"this credential lacks the scope {METRICS_READ!r}")
        return Response(metrics.render(node.db), media_type=metrics.CONTENT_TYPE)

    @app.get("/health", tags=["operations"], response_model=HealthOut)
    def health() -> dict[str, str]:
        """Liveness: the process answers. Reveals no data."""
        return {"status": "ok", "version": __version__}

    @app.get(
        "/ready",
        tags=["operations"],
        responses={
            200: {"model": ReadyOut, "description": "The database answers."},
            503: {"model": ReadyOut, "description": "The database does not answer."},
        },
    )
    def ready() -> JSONResponse:
        """Readiness: the database answers, within a second (a database that hangs is
        "not ready" at once, not after its timeouts)."""
        if not node.db.ping(deadline=1.0):
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ready"})

    app.include_router(_session_routes(services), prefix="/api/v1", tags=["session"])
    top_level = APIRouter()
    hooks, channels_top, replied = connector_routes(
        services.connectors, services.mail, services.negotiation
    )
    app.include_router(
        _case_routes(services, top_level, replied), prefix="/api/v1/cases", tags=["cases"]
    )
    app.include_router(top_level, prefix="/api/v1")
    app.include_router(_portal_routes(services), prefix="/api/v1/portal", tags=["portal"])
    customer_router, erasure_router = customer_routes(
        services.customers, Privacy(node, node_blobs(node.data_dir))
    )
    app.include_router(customer_router, prefix="/api/v1/customers", tags=["customers"])
    app.include_router(erasure_router, prefix="/api/v1", tags=["customers"])
    app.include_router(webchat_routes(services.webchat))
    app.include_router(hooks)
    app.include_router(channels_top, prefix="/api/v1", tags=["channels"])
    app.include_router(inbound_routes(services.mail.intake), prefix="/api/v1", tags=["inbound"])
    app.include_router(
        outbound_routes(Outbound(node.db), node.cases), prefix="/api/v1", tags=["channels"]
    )
    app.include_router(
        webhook_routes(services.webhooks), prefix="/api/v1/webhooks", tags=["webhooks"]
    )
    app.include_router(
        federation_router(
            services.federation,
            now=now,
            on_missing=services.pull_later,
            rate_limit=RateLimiter(push_rate),
            on_heard=services.pushers.heard_from,
        )
    )
    install_outcomes(app, services, now)
    install_pages(app, services)
    return app


def _member_actor(who: Principal) -> Actor:
    return Actor(member=who.member.display_name, via=who.via)


def _session_routes(services: Services) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/session",
        summary="Log in: sets the session cookie, returns the CSRF token",
        response_model=LoginOut,
    )
    def login(body: LoginIn, request: Request, response: Response) -> Any:
        wait = login_wait(request, body.username, way="api")  # the web /login's limiter
        if wait:
            return JSONResponse(
                {"detail": f"too many login attempts; try again in {wait} seconds"},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        member = services.members.authenticate(body.username, body.password)
        if member is None:
            return JSONResponse({"detail": "wrong username or password"}, status_code=401)
        token, csrf = services.sessions.create(member.id, SESSION_TTL)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(SESSION_TTL.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
        return {"member": _member_json(member), "csrf": csrf}

    @router.delete("/session", summary="Log out", status_code=204)
    def logout(request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            services.sessions.delete(token)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("/me", summary="The authenticated member and their scopes", response_model=MeOut)
    def me(who: Principal = Depends(require("cases:read"))) -> Any:
        return {**_member_json(who.member), "scopes": sorted(who.scopes), "via": who.via}

    return router


def _member_json(member: Any) -> dict[str, Any]:
    return {
        "id": member.id,
        "username": member.username,
        "display_name": member.display_name,
        "role": member.role,
    }


def _case_routes(services: Services, top_level: APIRouter, replied: APIRouter) -> APIRouter:
    router = APIRouter()
    reader, writer = require("cases:read"), require("cases:write")

    @router.get("", summary="List cases, most recently changed first", response_model=CaseList)
    def list_cases(
        _who: Principal = Depends(reader),
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0, le=10_000_000),
        resolved: bool | None = Query(None, description="Only resolved (or open) cases."),
    ) -> Any:
        rows = services.node.cases.list_cases(limit=limit, offset=offset, resolved=resolved)
        return {
            "cases": [
                {
                    "case": r.case_id,
                    "title": r.title,
                    "events": r.event_count,
                    "resolved": r.resolved,
                    "opened": r.opened_at,
                    "updated": r.updated_at.isoformat(),
                }
                for r in rows
            ],
            "limit": limit,
            "offset": offset,
        }

    @router.post(
        "",
        status_code=201,
        summary="Open a case",
        response_model=OpenedCase,
        responses={201: {"description": "The new case and its opening event."}},
    )
    def open_case(body: CaseIn, who: Principal = Depends(writer)) -> Any:
        # The case and its owner in one commit: a failure leaves neither, so a retry
        # never makes a second case, and no case is ever left without its owner.
        with services.node.db.write() as conn:
            outcome = services.negotiation.open_case(
                _member_actor(who),
                title=body.title,
                party_id=services.party_id,
                party_name=services.node.name,
                party_url=services.node.url,
                customer=body.customer.model_dump() if body.customer else None,
                topics=[t.model_dump() for t in body.topics],
                template=body.template,
                conn=conn,
            )
            if body.route:
                owner = services.ownership.route_in(conn, outcome.case_id)
                if owner is None:
                    raise Conflict(
                        "nobody is available to own this case (check availability, "
                        "teams and routing rules); nothing was opened"
                    )
            else:
                owner = services.ownership.take_in(conn, outcome.case_id, who.member)
        services.negotiation.announce(outcome.case_id, [*outcome.event_ids, *owner.event_ids])
        return {**changed(outcome), "owner": assignment_json(owner)}

    def member_context(scope: str) -> Callable[..., Awaitable[Context]]:
        # async: it does no I/O, so FastAPI runs it on the event loop, not the thread pool
        async def context(case_id: str, who: Principal = Depends(require(scope))) -> Context:
            return Context(_member_actor(who), case_id, services.negotiation)

        return context

    def reading_now(request: Request) -> Context:
        who = admit(request, "cases:read")
        return Context(_member_actor(who), request.path_params["case_id"], services.negotiation)

    async def case_params(case_id: str) -> None:
        """Declares the mount's ``{case_id}`` for endpoints that read it themselves."""

    case = APIRouter()
    add_negotiation_routes(
        case,
        Contexts(
            read=member_context("cases:read"),
            write=member_context("cases:write"),
            now=reading_now,
            params=case_params,
            db=services.node.db,
        ),
    )

    @case.get(
        "/notes",
        summary="Internal notes (node-private, never shared)",
        response_model=list[NoteOut],
    )
    def list_notes(case_id: str, _who: Principal = Depends(require("notes:read"))) -> Any:
        services.negotiation.state(case_id)  # 404 for an unknown case
        return [
            {"id": n.id, "member": n.member, "text": n.text, "created": n.created_at.isoformat()}
            for n in services.notes.list(case_id)
        ]

    @case.post("/notes", status_code=201, summary="Add an internal note", response_model=NoteOut)
    def add_note(
        case_id: str, body: NoteIn, who: Principal = Depends(require("notes:write"))
    ) -> Any:
        services.negotiation.state(case_id)
        note = services.notes.add(case_id, who.member.display_name, body.text)
        return {
            "id": note.id,
            "member": note.member,
            "text": note.text,
            "created": note.created_at.isoformat(),
        }

    @case.post(
        "/portal-links",
        status_code=201,
        summary="Make a case link for a customer this node hosts",
        response_model=PortalLinkOut,
    )
    def portal_link(case_id: str, body: PortalLinkIn, _who: Principal = Depends(writer)) -> Any:
        link = issue_case_link(
            services.links,
            services.negotiation.state(case_id),
            body.party,
            body.identity,
            host=services.node.key.public,
            ttl=None if body.hours is None else timedelta(hours=body.hours),
        )
        return {"token": link.token, "path": link.path, "expires": link.expires_at.isoformat()}

    @case.post(
        "/invites",
        status_code=201,
        summary="Invite another node into the case (a one-time link)",
        response_model=InviteOut,
    )
    def invite(case_id: str, body: InviteIn, who: Principal = Depends(writer)) -> Any:
        link = services.federation.invite(
            case_id, who.member.display_name, timedelta(hours=body.hours)
        )
        return {"link": str(link), "expires": link.expires.isoformat()}

    owned, top = ownership_routes(services.ownership)
    case.include_router(owned)
    mailed, mail_top = mail_routes(services.mail)
    case.include_router(mailed, tags=["email"])
    case.include_router(replied, tags=["channels"])
    router.include_router(case, prefix="/{case_id}")
    top_level.include_router(top)
    top_level.include_router(mail_top, tags=["email"])
    return router


def _portal_routes(services: Services) -> APIRouter:
    router = APIRouter()

    def context(grant: PortalGrant = Depends(portal_grant)) -> Context:
        return acting(grant)

    def acting(grant: PortalGrant) -> Context:
        # The shared log names the party and references the verified session; the
        # customer's email or phone stays on this node (DESIGN: hosted parties).
        state = services.negotiation.state(grant.case_id)
        party = state["parties"].get(grant.party_id)
        if party is None:
            raise Forbidden("this case link names a party that is not in the case")
        actor = Actor(
            member=party["name"], via="portal", party=grant.party_id, session=grant.session_ref
        )
        return Context(actor, grant.case_id, services.negotiation)

    async def no_params() -> None:
        """The case link names the case: the mount has no path parameters."""

    add_negotiation_routes(
        router,
        Contexts(
            read=context,
            write=context,
            now=lambda request: acting(portal_grant(request)),
            params=no_params,
            db=services.node.db,
        ),
    )
    return router


def app_from_env() -> FastAPI:
    """The application of the node named by ``$ACCORD_HOME`` and ``$ACCORD_DATABASE_URL``:
    what each process of ``accord serve --workers N`` (or a uvicorn or gunicorn command,
    ``--factory accord.api.app:app_from_env``) runs."""
    import os

    from accord.node import Node, default_data_dir
    from accord.ops import logs

    logs.configure(
        os.environ.get("ACCORD_LOG_FORMAT", "text"), os.environ.get("ACCORD_LOG_LEVEL", "info")
    )
    # The followers run in the process that runs the timers (``accord serve``'s worker
    # thread or ``accord worker``), which finds these processes' events in the log.
    return create_app(Node.open(default_data_dir()), inline_followers=False)
