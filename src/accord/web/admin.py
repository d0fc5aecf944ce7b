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

from fastapi import APIRouter, Depends, Form, Path, Request
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
from accord.channels.connectors.fields import FIELDS, OPTIONAL
from accord.channels.email.mailboxes import Mailbox, Server
from accord.integrations.webhooks import EVENT_TYPES
from accord.outcomes.measures import METRICS
from accord.service import settings
from accord.service.canned import MANAGERS, PLACEHOLDERS, CannedReplies
from accord.service.errors import ServiceError
from accord.service.wording import when
from accord.templates.spec import TemplateError
from accord.web.pages import zone_of
from accord.web.render import render
from accord.web.session import Viewer, check_csrf, need, viewer

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
SECURITIES = ("starttls", "tls", "none")
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
        preview: dict[str, Any] | None = None,
        template_text: str = "",
        new_secret: str | None = None,
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
            data["rules"] = services.ownership.list_rules()
            data["calendar"] = settings.read(services.node.db, settings.CALENDAR) or {}
            data["templates"] = app_state.templates.store.list()
        if "channels" in allowed:
            data["mailboxes"] = services.mail.mailboxes.all()
            data["accounts"] = services.connectors.accounts.all()
            data["peers"] = services.federation.peers()
        if "templates" in allowed:
            data["templates"] = app_state.templates.store.list()
            data["owners"] = services.members.list(include_disabled=False)
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
            new_secret=new_secret,
            preview=preview,
            template_text=template_text,
            zone=zone_of(services),
            when=when,
            roles=ROLES,
            scopes=SCOPES,
            metrics=METRICS,
            placeholders=PLACEHOLDERS,
            platforms=FIELDS,
            optional_settings=OPTIONAL,
            events=EVENT_TYPES,
            securities=SECURITIES,
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
            lambda: app_state.templates.apply(text, by=who.member.username),
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

    # -- channels: mailboxes and messaging accounts, as POST /api/v1/mailboxes and
    # /api/v1/channels do it (the same service calls, so the same checks) ----------------
    @router.post("/admin/mailboxes")
    async def add_mailbox(request: Request, who: Viewer = Depends(viewer)) -> Response:
        form = await request.form()
        check_csrf(who, str(form.get("csrf", "")))
        need(who, CHANNELS_ADMIN)

        def work() -> None:
            field = _fields(form)
            services.mail.mailboxes.add(
                Mailbox(
                    id=0,
                    address=field("address", 320),
                    display_name=field("display_name", 200),
                    smtp=_server(field, "smtp"),
                    imap=_server(field, "imap"),
                    imap_folder=field("imap_folder", 200) or "INBOX",
                    reply_all=bool(form.get("reply_all")),
                )
            )

        return await run_in_threadpool(
            act, who, str(form.get("csrf", "")), CHANNELS_ADMIN, "channels", work
        )

    @router.post("/admin/channels")
    async def add_account(request: Request, who: Viewer = Depends(viewer)) -> Response:
        form = await request.form()
        check_csrf(who, str(form.get("csrf", "")))
        need(who, CHANNELS_ADMIN)

        def work() -> None:
            field = _fields(form)
            platform = field("platform", 20)
            needs, secret_names = FIELDS.get(platform, ((), ()))
            given = {k: field(f"setting_{k}", 500) for k in (*needs, *OPTIONAL)}
            secrets = {k: field(f"secret_{k}", 2000) for k in secret_names}
            values = {k: v for k, v in given.items() if v}
            secrets = {k: v for k, v in secrets.items() if v}
            services.connectors.accounts.add(platform, field("name", 100), values, secrets)

        return await run_in_threadpool(
            act, who, str(form.get("csrf", "")), CHANNELS_ADMIN, "channels", work
        )

    # -- webhooks, as POST /api/v1/webhooks: the secret is shown once ---------------------
    @router.post("/admin/webhooks")
    async def add_webhook(request: Request, who: Viewer = Depends(viewer)) -> Response:
        form = await request.form()
        check_csrf(who, str(form.get("csrf", "")))
        need(who, MEMBERS_ADMIN)
        url = str(form.get("url", ""))[:2000]
        events = [str(e)[:64] for e in form.getlist("events")][:50]
        allow_private = bool(form.get("allow_private"))

        def work() -> Response:
            if allow_private and who.member.role != "admin":
                return page(
                    who, error="only an admin may let a webhook reach private addresses", status=403
                )
            try:
                hook, secret = services.webhooks.create(
                    url, events, created_by=who.member.username, allow_private=allow_private
                )
            except ServiceError as exc:
                return page(who, error=exc.message, status=exc.status)
            return page(
                who,
                notice=f"Webhook to {hook.url} added. Copy its signing secret now: it is not "
                "shown again.",
                new_secret=secret,
            )

        return await run_in_threadpool(work)

    # -- routing rules and the business calendar, as /api/v1/routing and /settings -------
    @router.post("/admin/rules")
    def add_rule(
        priority: int = Form(100, ge=0, le=1_000_000),
        team: str = Form("", max_length=64),
        skill: str = Form("", max_length=64),
        template: str = Form("", max_length=100),
        topic: str = Form("", max_length=64),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return act(
            who,
            csrf,
            MEMBERS_ADMIN,
            "routing",
            lambda: services.ownership.add_rule(
                priority=priority,
                team=team or None,
                skill=skill.strip() or None,
                template=template or None,
                topic=topic.strip() or None,
            ),
        )

    @router.post("/admin/rules/{rule_id}/delete")
    def remove_rule(
        rule_id: int = Path(ge=1, le=2**31 - 1), csrf: str = Form(""), who: Viewer = Depends(viewer)
    ) -> Response:
        return act(
            who, csrf, MEMBERS_ADMIN, "routing", lambda: services.ownership.remove_rule(rule_id)
        )

    @router.post("/admin/calendar")
    def set_calendar(
        timezone: str = Form(..., max_length=64),
        hours: str = Form(..., max_length=500),
        country: str = Form("", max_length=2),
        subdivision: str = Form("", max_length=10),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return act(
            who,
            csrf,
            MEMBERS_ADMIN,
            "routing",
            lambda: settings.set_calendar(
                services.node.db,
                timezone=timezone,
                hours=hours,
                country=country.upper() or None,
                subdivision=subdivision.upper() or None,
            ),
        )

    # -- a template's preview: checked as applying it would be, nothing stored -----------
    @router.post("/admin/templates/preview")
    def preview_template(
        text: str = Form(..., max_length=200_000),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        check_csrf(who, csrf)
        need(who, WORKFLOWS_ADMIN)
        try:
            spec, version, changes = app_state.templates.preview(text)
        except ServiceError as exc:
            return page(who, error=exc.message, status=exc.status, template_text=text)
        shown = {
            "name": spec.name,
            "data": spec.data,
            "version": version,
            "changes": changes,
            "yaml": spec.to_yaml(version),
        }
        return page(who, preview=shown, template_text=text)

    return router


def _fields(form: Any) -> Callable[[str, int], str]:
    """A form's text fields, trimmed and cut at a length (a form may send anything)."""

    def field(name: str, limit: int) -> str:
        value = form.get(name, "")
        return value.strip()[:limit] if isinstance(value, str) else ""

    return field


def _server(field: Callable[[str, int], str], kind: str) -> Server | None:
    """The SMTP or IMAP server of a mailbox form, or None when its host is empty."""
    host = field(f"{kind}_host", 255)
    if not host:
        return None
    port = field(f"{kind}_port", 5)
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{kind.upper()} port: a number from 1 to 65535")
    security = field(f"{kind}_security", 10) or "starttls"
    if security not in SECURITIES:
        raise ValueError(f"{kind.upper()} security: one of {', '.join(SECURITIES)}")
    return Server(
        host=host,
        port=int(port),
        security=security,  # type: ignore[arg-type]
        username=field(f"{kind}_username", 320),
        password=field(f"{kind}_password", 1024),
        allow_plaintext=bool(field(f"{kind}_allow_plaintext", 5)),
    )


def _profile(services: Services, username: str) -> dict[str, Any]:
    try:
        return dict(services.ownership.profile(username))
    except ServiceError:
        return {}
