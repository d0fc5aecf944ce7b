"""The admin pages: members and roles, teams and skills, channels and mailboxes,
templates, targets, peers, API tokens and webhooks.

Each section shows to members whose role grants its scope (``members:admin``,
``channels:admin``, ``workflows:admin``, ``tokens:admin``), and each form checks the scope
again, with the session's CSRF token. Secrets are never shown: a mailbox or platform
says only whether its password is set, and a new API token is shown once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from accord.auth.errors import AuthError
from accord.auth.scopes import (
    CHANNELS_ADMIN,
    MEMBERS_ADMIN,
    ROLES,
    SCOPES,
    TOKENS_ADMIN,
    WORKFLOWS_ADMIN,
)
from accord.metrics.outcomes import METRICS
from accord.service.canned import MANAGERS, PLACEHOLDERS, CannedReplies
from accord.service.errors import ServiceError
from accord.web.pages import zone_of
from accord.web.render import render, when
from accord.web.session import Viewer, check_csrf, need, viewer
from accord.workflows.spec import TemplateError

if TYPE_CHECKING:
    from accord.wiring import Services

SECTIONS = {
    "members": ("Members and roles", MEMBERS_ADMIN),
    "teams": ("Teams and skills", MEMBERS_ADMIN),
    "channels": ("Channels and mailboxes", CHANNELS_ADMIN),
    "templates": ("Templates", WORKFLOWS_ADMIN),
    "targets": ("Targets", WORKFLOWS_ADMIN),
    "peers": ("Peers", CHANNELS_ADMIN),
    "tokens": ("API tokens", TOKENS_ADMIN),
    "webhooks": ("Webhooks", MEMBERS_ADMIN),
}
CANNED = ("Canned replies", "")  # for leads and admins (a role, not a scope)


def admin_routes(services: Services, app_state: Any) -> APIRouter:
    router = APIRouter()
    canned = CannedReplies(services.node.db, now=services.negotiation.now)

    def page(
        who: Viewer,
        *,
        error: str | None = None,
        notice: str | None = None,
        new_token: str | None = None,
        status: int = 200,
    ) -> Response:
        allowed = {k: v for k, v in SECTIONS.items() if who.may(v[1])}
        if who.member.role in MANAGERS:
            allowed["canned"] = CANNED
        if not allowed:
            return render(
                "admin.html",
                status=403,
                who=who,
                page="admin",
                allowed={},
                error=None,
                notice=None,
                new_token=None,
                data={},
                zone=zone_of(services),
                when=when,
                roles=ROLES,
                scopes=SCOPES,
                metrics=METRICS,
                placeholders=PLACEHOLDERS,
            )
        now = services.negotiation.now()
        data: dict[str, Any] = {}
        if "members" in allowed:
            data["members"] = [
                {"member": m, "profile": _profile(services, m.username)}
                for m in services.members.list()
            ]
            data["teams"] = services.ownership.list_teams()
        if "channels" in allowed:
            data["mailboxes"] = services.mail.mailboxes.all()
            data["accounts"] = services.connectors.accounts.all()
            data["peers"] = services.federation.peers()
        if "templates" in allowed:
            data["templates"] = app_state.workflows.store.list()
            data["targets"] = app_state.outcomes.targets.list()
        if "tokens" in allowed:
            data["tokens"] = [(t, t.status(now)) for t in services.tokens.list()]
        if "webhooks" in allowed:
            hooks = services.webhooks.all()
            data["webhooks"] = [(h, services.webhooks.deliveries(h.id, limit=10)) for h in hooks]
        if "canned" in allowed:
            data["canned"] = canned.list()
        return render(
            "admin.html",
            status=status,
            who=who,
            page="admin",
            allowed=allowed,
            data=data,
            error=error,
            notice=notice,
            new_token=new_token,
            zone=zone_of(services),
            when=when,
            roles=ROLES,
            scopes=SCOPES,
            metrics=METRICS,
            placeholders=PLACEHOLDERS,
        )

    def act(who: Viewer, csrf: str, scope: str, anchor: str, work: Callable[[], Any]) -> Response:
        check_csrf(who, csrf)
        need(who, scope)
        try:
            work()
        except (ServiceError, AuthError, TemplateError, ValueError) as exc:
            message = exc.message if isinstance(exc, ServiceError) else str(exc)
            return page(who, error=message, status=400)
        return RedirectResponse(f"/admin#{anchor}", status_code=303)

    @router.get("/admin")
    def show(who: Viewer = Depends(viewer)) -> Response:
        return page(who)

    def canned_act(who: Viewer, csrf: str, work: Callable[[], Any]) -> Response:
        """Leads and admins keep the canned replies (``CannedReplies`` checks the role)."""
        check_csrf(who, csrf)
        try:
            work()
        except ServiceError as exc:
            return page(who, error=exc.message, status=exc.status)
        return RedirectResponse("/admin#canned", status_code=303)

    @router.post("/admin/canned")
    def add_canned(
        title: str = Form(..., max_length=120),
        body: str = Form(..., max_length=20_000),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return canned_act(who, csrf, lambda: canned.save(title, body, by=who.member))

    @router.post("/admin/canned/{reply_id}")
    def edit_canned(
        reply_id: int,
        title: str = Form(..., max_length=120),
        body: str = Form(..., max_length=20_000),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return canned_act(
            who, csrf, lambda: canned.save(title, body, by=who.member, reply_id=reply_id)
        )

    @router.post("/admin/canned/{reply_id}/delete")
    def delete_canned(
        reply_id: int, csrf: str = Form(""), who: Viewer = Depends(viewer)
    ) -> Response:
        return canned_act(who, csrf, lambda: canned.remove(reply_id, by=who.member))

    @router.post("/admin/members")
    def add_member(
        username: str = Form(..., max_length=64),
        display_name: str = Form(..., max_length=200),
        role: str = Form(..., max_length=16),
        password: str = Form(..., max_length=1024),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return act(
            who,
            csrf,
            MEMBERS_ADMIN,
            "members",
            lambda: services.members.create(
                username, password, role=role, display_name=display_name
            ),
        )

    @router.post("/admin/members/{member_id}/role")
    def set_role(
        member_id: int,
        role: str = Form(..., max_length=16),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return act(
            who, csrf, MEMBERS_ADMIN, "members", lambda: services.members.set_role(member_id, role)
        )

    @router.post("/admin/members/{member_id}/disable")
    def disable(member_id: int, csrf: str = Form(""), who: Viewer = Depends(viewer)) -> Response:
        def work() -> None:
            if member_id == who.member.id:
                raise ValueError("you cannot disable yourself")
            services.members.disable(member_id)

        return act(who, csrf, MEMBERS_ADMIN, "members", work)

    @router.post("/admin/teams")
    def add_team(
        name: str = Form(..., max_length=100),
        lead: str = Form("", max_length=64),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return act(
            who,
            csrf,
            MEMBERS_ADMIN,
            "teams",
            lambda: services.ownership.add_team(name.strip(), lead or None),
        )

    @router.post("/admin/profiles")
    def set_profile(
        username: str = Form(..., max_length=64),
        team: str = Form("", max_length=100),
        skills: str = Form("", max_length=1000),
        availability: str = Form("", max_length=16),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return act(
            who,
            csrf,
            MEMBERS_ADMIN,
            "teams",
            lambda: services.ownership.set_profile(
                username,
                team=team or None,
                skills=[s.strip() for s in skills.split(",") if s.strip()],
                availability=availability or None,
            ),
        )

    @router.post("/admin/templates")
    def apply_template(
        text: str = Form(..., max_length=200_000),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return act(
            who,
            csrf,
            WORKFLOWS_ADMIN,
            "templates",
            lambda: app_state.workflows.apply(text, by=who.member.username),
        )

    @router.post("/admin/targets")
    def add_target(
        name: str = Form(..., max_length=200),
        metric: str = Form(..., max_length=32),
        op: str = Form(..., pattern="^(<=|>=)$"),
        threshold: float = Form(..., ge=0, le=1e9),
        owner: str = Form("", max_length=64),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return act(
            who,
            csrf,
            WORKFLOWS_ADMIN,
            "targets",
            lambda: app_state.outcomes.targets.add(
                name=name, metric=metric, op=op, threshold=threshold, owner=owner or None
            ),
        )

    @router.post("/admin/tokens")
    async def add_token(request: Request, who: Viewer = Depends(viewer)) -> Response:
        form = await request.form()
        check_csrf(who, str(form.get("csrf", "")))
        need(who, TOKENS_ADMIN)  # before anything is made (issue 22, row 14)
        scopes = [str(s) for s in form.getlist("scopes")]
        days = str(form.get("days", "") or "")
        name = str(form.get("name", ""))

        def work() -> Response:
            try:
                expires = None
                if days:
                    if not days.isdigit() or not 1 <= int(days) <= 3650:
                        raise ValueError("a token lasts 1 to 3650 days")
                    expires = services.negotiation.now() + timedelta(days=int(days))
                made = services.tokens.create(who.member.id, name, scopes, expires)
            except (AuthError, ValueError) as exc:
                return page(who, error=str(exc), status=400)
            return page(
                who,
                notice=f"Token “{name}” made. Copy it now: it is not shown again.",
                new_token=made.token,
            )

        return await run_in_threadpool(work)

    @router.post("/admin/tokens/{token_id}/revoke")
    def revoke(token_id: int, csrf: str = Form(""), who: Viewer = Depends(viewer)) -> Response:
        return act(who, csrf, TOKENS_ADMIN, "tokens", lambda: services.tokens.revoke(token_id))

    @router.post("/admin/webhooks/deliveries/{delivery_id}/redeliver")
    def redeliver(
        delivery_id: int, csrf: str = Form(""), who: Viewer = Depends(viewer)
    ) -> Response:
        return act(
            who,
            csrf,
            MEMBERS_ADMIN,
            "webhooks",
            lambda: services.webhooks.redeliver(delivery_id),
        )

    return router


def _profile(services: Services, username: str) -> dict[str, Any]:
    try:
        return dict(services.ownership.profile(username))
    except ServiceError:
        return {}
