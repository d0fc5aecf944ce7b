"""The members' pages: login, the inbox and the case workspace.

Every page needs a session (``accord.web.session``); every form post carries its CSRF
token and answers with a redirect (post, redirect, get) and a short message of what was
done (a flash: "Sent to Ivan by email"), or with the page again and the problem named
when the service refused. The services do the work, exactly as for the REST API: a page
is another way to call them, never a second implementation.

Cases are addressed by their short number (``/cases/38``, the ``[Accord #38]`` of mail
subjects); the signed id is one click away on the page, and an old ``/cases/sha256:…``
address redirects to the number. Times are shown in the member's zone and clock
(``/settings``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo, available_timezones

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from accord.api.auth import SESSION_COOKIE
from accord.auth.scopes import CASES_READ, CASES_WRITE, NOTES_READ, NOTES_WRITE
from accord.channels.blobs import node_blobs
from accord.channels.outbound import Outbound
from accord.channels.refs import CaseRefs
from accord.core.activities import activity_open
from accord.core.state import State
from accord.service import settings
from accord.service.canned import CannedReplies, fill
from accord.service.errors import NotFound, ServiceError
from accord.service.inbox import SORTS, VIEWS, Inbox
from accord.service.links import DEFAULT_LINK_TTL, issue_case_link
from accord.service.negotiation import Actor
from accord.service.prefs import CLOCKS, MemberPrefs, Prefs
from accord.service.presence import Presence
from accord.service.replies import (
    channel_name,
    reply_channels,
    reply_on_channel,
)
from accord.service.views import agreement_diff, case_view
from accord.service.wording import change_words, party_name, when
from accord.store.tables import case_customers
from accord.web import swimlane
from accord.web.copies import signed_copy
from accord.web.files import download
from accord.web.forms import (
    FormError,
    edit_item,
    prefill,
    promise_from_form,
    submit_proposal,
    topic_id,
)
from accord.web.render import describe, render
from accord.web.session import (
    SESSION_TTL,
    Viewer,
    check_csrf,
    login_csrf,
    login_csrf_ok,
    login_wait,
    need,
    safe_next,
    secure_headers,
    set_login_csrf,
    viewer,
)

if TYPE_CHECKING:
    from accord.outcomes.figures import Outcomes
    from accord.wiring import Services

CHANNELS = (
    "email",
    "webchat",
    "portal",
    "whatsapp",
    "whatsapp-twilio",
    "messenger",
    "instagram",
    "telegram",
    "sms",
    "x",
)
FLASH_COOKIE = "accord_flash"
INBOX_KEYS = ("view", "q", "owner", "team", "channel", "sort")
BULK_ACTIONS = {"assign", "handoff", "close", "read", "unread"}
# What each kind of notification is, for people (accord.service.ownership.notify's kinds).
NOTICE_KINDS = {
    "handoff": "Handed to you",
    "routed": "Routed to you",
    "opened": "Your new case",
    "assigned": "Assigned to you",
    "sla": "Response target",
    "reminder": "Callback due",
    "missed": "Missed callback",
    "escalation": "Escalated to you",
    "case.activity": "New on your case",
    "mention": "Mentioned you",
    "message.held": "Message held",
    "mail.failed": "Not delivered",
    "send.failed": "Not delivered",
    "agreement.superseded": "Agreement did not stand",
    "digest": "Due today",
}


def zone_of(services: Services) -> ZoneInfo:
    """The zone the pages show times in: the business calendar's."""
    return settings.zone(services.node.db)


def acceptances(n: Any, case_id: str, state: State) -> list[dict[str, str]]:
    """Who accepted the current agreement, as whom, and when."""
    if not state["agreements"]:
        return []
    current = state["agreements"][-1]
    found = {e.id: e for e in n.cases.get(case_id, list(current["acceptances"].values()))}
    out = []
    for party, event_id in current["acceptances"].items():
        event = found.get(event_id)
        out.append(
            {
                "party": party_name(state["parties"], party),
                "member": event.author.member if event else "",
                "time": event.time if event else current["time"],
            }
        )
    return out


def topic_list(state: State) -> list[dict[str, Any]]:
    """The case's topics with their state, open ones first."""
    topics = [{"topic": t, **v} for t, v in state["topics"].items()]
    return sorted(topics, key=lambda t: (t["state"] != "open", t["title"]))


def proposal_topics(proposal: dict[str, Any], state: State) -> list[str]:
    """The titles of the topics a proposal's changes name."""
    named = {c["topic"] for c in proposal["changes"] if c.get("topic")}
    topics = state["topics"]
    return [str(topics[t]["title"] if t in topics else t) for t in sorted(named)]


def crossed_list(
    view: dict[str, Any], state: State, party: str | None, zone: ZoneInfo
) -> list[dict[str, Any]]:
    """Crossed proposals, for the pages: who made them, the version that crossed them,
    and whether ``party`` (the viewer's) made them and so can propose them again."""
    return [
        {
            "id": pid,
            "by": party_name(state["parties"], p["by"]),
            "time": p["time"],
            "note": p.get("note"),
            "changes": [change_words(c, state["parties"], zone) for c in p["changes"]],
            "crossed_with": p["crossed_with"],
            "mine": p["by"] == party,
            "topics": proposal_topics(p, state),
        }
        for pid, p in view["crossed_proposals"].items()
    ]


def _see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _sign(who: Viewer, message: str) -> str:
    return hmac.new(who.csrf.encode(), message.encode(), hashlib.sha256).hexdigest()[:24]


def with_flash(response: Response, who: Viewer, message: str) -> Response:
    """``response`` carrying a short message for the next page (a cookie bound to the
    session: another site cannot plant one)."""
    text = base64.urlsafe_b64encode(message[:300].encode()).decode()
    response.set_cookie(
        FLASH_COOKIE,
        f"{text}.{_sign(who, message[:300])}",
        max_age=120,
        httponly=True,
        samesite="lax",
        path="/",
    )
    return response


def take_flash(request: Request, who: Viewer) -> str | None:
    """The message the last action left for this page, if it is genuine."""
    raw = request.cookies.get(FLASH_COOKIE, "")
    text, _, sig = raw.partition(".")
    try:
        message = base64.urlsafe_b64decode(text.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return message if message and hmac.compare_digest(sig, _sign(who, message)) else None


def shown(response: Response, request: Request) -> Response:
    """``response`` after it showed the flash: the message is spent."""
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def inbox_query(pairs: list[tuple[str, str]]) -> str:
    """An inbox query string with only the inbox's own keys (for saved views and links)."""
    kept = [(k, v[:200]) for k, v in pairs if k in INBOX_KEYS and v]
    return urlencode(kept)


def timer(prefs: Prefs) -> Callable[..., str]:
    """``when`` in the member's clock (their zone is passed by the templates)."""

    def shown_when(value: Any, zone: ZoneInfo, fmt: str = "%a %d %b %Y, %H:%M") -> str:
        return when(value, zone, prefs.fmt(fmt))

    return shown_when


def describe_named(state: State) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    """``describe`` with activity titles instead of their slugs."""

    def words(event: dict[str, Any], parties: dict[str, Any]) -> str:
        body = event["body"]
        if event["type"] == "activity.updated" and body.get("activity"):
            aid = body["activity"]
            activity: Mapping[str, Any] = (
                state["terms"]["activities"].get(aid) or state["progress"].get(aid) or {}
            )
            title = activity.get("title") or aid
            line = f"marked “{title}” {str(body.get('state', '')).replace('_', ' ')}"
            return line + (f" — “{body['note']}”" if body.get("note") else "")
        return describe(event, parties)

    return words


def member_routes(services: Services, inbox: Inbox, outcomes: Outcomes) -> APIRouter:
    """The routes; ``outcomes`` (``accord.outcomes.figures.Outcomes``) records the marks."""
    router = APIRouter()

    # -- login ------------------------------------------------------------------------
    def login_form(request: Request, status: int = 200, **values: Any) -> Response:
        token = login_csrf(request)
        page = render("login.html", status=status, csrf=token, **values)
        return set_login_csrf(page, request, token)

    @router.get("/login")
    def login_page(request: Request, next: str = Query("/", max_length=2000)) -> Response:
        return login_form(request, next=safe_next(next), error=None, username="")

    @router.post("/login")
    def login(
        request: Request,
        username: str = Form("", max_length=64),
        password: str = Form("", max_length=1024),
        next: str = Form("/", max_length=2000),
        csrf: str = Form("", max_length=100),
    ) -> Response:
        if not login_csrf_ok(request, csrf):  # before the password is even looked at
            return login_form(
                request,
                status=403,
                next=safe_next(next),
                username=username,
                error="This form has expired or did not come from Accord. Please log in again.",
            )
        wait = login_wait(request, username, way="web")
        if wait:
            response = login_form(
                request,
                status=429,
                next=safe_next(next),
                username=username,
                error=f"Too many attempts. Try again in {wait} seconds.",
            )
            response.headers["Retry-After"] = str(wait)
            return response
        member = services.members.authenticate(username, password)
        if member is None:
            return login_form(
                request,
                status=401,
                next=safe_next(next),
                username=username,
                error="Wrong username or password.",
            )
        token, _csrf = services.sessions.create(member.id, SESSION_TTL)
        redirect = _see_other(safe_next(next))
        redirect.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(SESSION_TTL.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
        return redirect

    @router.post("/logout")
    def logout(request: Request, csrf: str = Form(""), who: Viewer = Depends(viewer)) -> Response:
        check_csrf(who, csrf)
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            services.sessions.delete(token)
        response = _see_other("/login")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- the member's own choices -------------------------------------------------------
    refs = CaseRefs(services.node.db, now=services.negotiation.now)
    canned = CannedReplies(services.node.db, now=services.negotiation.now)
    member_prefs = MemberPrefs(services.node.db)

    def times(who: Viewer) -> dict[str, Any]:
        """The template context that shows times: the member's zone and clock."""
        prefs = member_prefs.of(who.member.id)
        return {"zone": prefs.zone, "when": timer(prefs), "prefs": prefs}

    # -- case addresses -----------------------------------------------------------------
    def resolve(ref: str) -> str:
        """The case id behind an address: its number, its id, or a prefix of the id."""
        if ref.isdigit() and len(ref) <= 9:
            with services.node.db.read() as conn:
                found = refs.by_number(conn, int(ref))
            if found is None:
                raise NotFound(f"no case number {ref}")
            return found.case_id
        full = services.node.cases.find_case(ref) if not ref.startswith("sha256:") else ref
        if full is None:
            raise NotFound(f"no case {ref!r}")
        return full

    def number_of(case_id: str) -> int:
        """The case's short number, made on first use."""
        with services.node.db.read() as conn:
            found = refs.of_case(conn, case_id)
        if found is None:
            services.negotiation.state(case_id)  # a case that exists
            with services.node.db.write() as conn:
                found = refs.ensure(conn, case_id)
        return found.number

    def base_of(case_id: str) -> str:
        return f"/cases/{number_of(case_id)}"

    # -- inbox ------------------------------------------------------------------------
    @router.get("/")
    def inbox_page(
        request: Request,
        view: str = Query("", max_length=16),
        q: str = Query("", max_length=200),
        owner: str = Query("", max_length=64),
        team: str = Query("", max_length=100),
        channel: str = Query("", max_length=32),
        sort: str = Query("", max_length=16),
        partial: bool = Query(False),
        who: Viewer = Depends(viewer),
    ) -> Response:
        if view not in VIEWS:  # a search without a view looks in every case
            view = "all" if q.strip() else "mine"
        if sort.lstrip("-") not in SORTS:
            sort = ""
        rows = inbox.list(
            view,
            member_id=who.member.id,
            query=q,
            owner=owner,
            team=team,
            channel=channel,
            sort=sort,
        )
        here = {"view": view, "q": q, "owner": owner, "team": team, "channel": channel}
        context: dict[str, Any] = {
            "who": who,
            "page": "inbox",
            "views": VIEWS,
            "view": view,
            "counts": inbox.counts(who.member.id),
            "rows": rows,
            "q": q,
            "owner": owner,
            "team": team,
            "channel": channel,
            "sort": sort,
            "sorts": SORTS,
            "here": here,
            "query": inbox_query(list({**here, "sort": sort}.items())),
            "channels": CHANNELS,
            "channel_name": channel_name,
            "members": services.members.list(include_disabled=False),
            "teams": services.ownership.list_teams(),
            "saved": inbox.views_of(who.member.id),
            "flash": take_flash(request, who),
            "now": services.negotiation.now(),
            **times(who),
        }
        page = render("_inbox_rows.html" if partial else "inbox.html", **context)
        return page if partial else shown(page, request)

    @router.post("/inbox/bulk")
    async def bulk(request: Request, who: Viewer = Depends(viewer)) -> Response:
        """One action on the cases ticked in the inbox: assign (leads), hand off, close
        with a reason, mark read or unread. Each case is its own change; what was refused
        is named in the message."""
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        chosen = [v for v in form.getlist("case") if isinstance(v, str)][:200]
        return await run_in_threadpool(bulk_work, who, values, chosen)

    def bulk_work(who: Viewer, form: dict[str, str], chosen: list[str]) -> Response:
        check_csrf(who, form.get("csrf", ""))
        action = form.get("action", "")
        back = "/?" + inbox_query(parse_qsl(form.get("back", "")[:1000]))
        if action not in BULK_ACTIONS:
            return with_flash(_see_other(back), who, "Choose what to do with the cases.")
        if not chosen:
            return with_flash(_see_other(back), who, "Tick at least one case first.")
        username = form.get("username", "")[:64]
        note = form.get("note", "")[:10_000].strip()
        reason = form.get("reason", "")[:2000].strip()
        if action in ("assign", "handoff") and not username:
            return with_flash(_see_other(back), who, "Choose the member to give the cases to.")
        if action == "handoff" and not note:
            return with_flash(_see_other(back), who, "A hand-off needs a note for the next owner.")
        if action == "close" and not reason:
            return with_flash(_see_other(back), who, "Closing needs a reason (it is recorded).")
        if action != "read" and action != "unread":
            need(who, CASES_WRITE)
        done, refused = 0, []
        actor = Actor(member=who.member.display_name, via="web")
        ids: list[str] = []
        for ref in chosen:
            try:
                case_id = resolve(ref)
                ids.append(case_id)
                if action == "assign":
                    services.ownership.assign(case_id, username, by=who.member, note=note or None)
                elif action == "handoff":
                    services.ownership.handoff(case_id, username, note, by=who.member)
                elif action == "close":
                    services.negotiation.satisfied(actor, case_id, reason=reason)
                elif action == "read":
                    state = services.negotiation.state(case_id)
                    inbox.mark_read(who.member.id, case_id, int(state.get("messages") or 0))
                done += 1
            except ServiceError as exc:
                refused.append(f"#{ref}: {exc.message}")
        if action == "unread":
            inbox.mark_unread(who.member.id, ids)
        target = ""
        if action in ("assign", "handoff"):
            member = services.members.by_username(username)
            target = f" to {member.display_name}" if member else ""
        verb = {
            "assign": "Assigned",
            "handoff": "Handed off",
            "close": "Closed",
            "read": "Marked read:",
            "unread": "Marked unread:",
        }[action]
        message = f"{verb} {done} case{'s' if done != 1 else ''}{target}."
        if refused:
            message += " Not done: " + "; ".join(refused[:5]) + ("…" if len(refused) > 5 else "")
        return with_flash(_see_other(back), who, message)

    @router.post("/views")
    def save_view(
        name: str = Form(..., max_length=80),
        query: str = Form("", max_length=1000),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        """Save the inbox as it is shown (view, search, filters, order) under a name."""
        check_csrf(who, csrf)
        clean = inbox_query(parse_qsl(query))
        try:
            saved = inbox.save_view(who.member.id, name, clean)
        except ServiceError as exc:
            return with_flash(_see_other("/?" + clean), who, exc.message)
        return with_flash(_see_other("/?" + clean), who, f"Saved the view “{saved.name}”.")

    @router.post("/views/{view_id}/delete")
    def delete_view(view_id: int, csrf: str = Form(""), who: Viewer = Depends(viewer)) -> Response:
        check_csrf(who, csrf)
        inbox.delete_view(who.member.id, view_id)
        return with_flash(_see_other("/"), who, "Removed the saved view.")

    @router.get("/web/changes")
    def changes(who: Viewer = Depends(viewer)) -> Response:
        """A token that changes whenever a case or note changes: the pages poll it to
        update themselves (any process can answer; nothing is held in memory)."""
        found = {"token": inbox.changed_since(), "unread": who.unread}
        return secure_headers(JSONResponse(found))

    # -- notifications and presence -----------------------------------------------------
    presence = Presence(services.node.db, now=services.negotiation.now)
    outbound = Outbound(services.node.db)

    @router.get("/notifications")
    def notifications_page(
        request: Request, unread: bool = Query(False), who: Viewer = Depends(viewer)
    ) -> Response:
        found = services.ownership.notifications_for(who.member.id, unread=unread)
        numbers: dict[str, int | None] = {}
        for n in found:
            n["at"] = datetime.fromisoformat(n["created"])
            case_id = n["case"]
            if case_id and case_id not in numbers:
                try:
                    numbers[case_id] = number_of(case_id)
                except ServiceError:  # a case erased since
                    numbers[case_id] = None
        return shown(
            render(
                "notifications.html",
                who=who,
                page="notifications",
                items=found,
                numbers=numbers,
                kinds=NOTICE_KINDS,
                only_unread=unread,
                flash=take_flash(request, who),
                **times(who),
            ),
            request,
        )

    @router.post("/notifications/read")
    async def read_notifications(request: Request, who: Viewer = Depends(viewer)) -> Response:
        form = await request.form()
        check_csrf(who, str(form.get("csrf", "")))
        if form.get("all"):
            done = await run_in_threadpool(services.ownership.mark_all_read, who.member.id)
        else:
            given = [str(v) for v in form.getlist("id")]
            ids = [int(v) for v in given if v.isdigit() and len(v) < 12]
            done = await run_in_threadpool(services.ownership.mark_read, who.member.id, ids)
        back = "/notifications?unread=1" if form.get("unread") else "/notifications"
        return with_flash(
            _see_other(back), who, f"Marked {done} notification{'s' if done != 1 else ''} read."
        )

    @router.post("/cases/{case_id}/presence")
    def case_presence(
        case_id: str,
        typing: bool = Form(False),
        leave: bool = Form(False),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        """The case page's heartbeat: this member is here (typing or not); answers who
        else is (the collision notice)."""
        check_csrf(who, csrf)
        need(who, CASES_READ)
        full = resolve(case_id)
        if leave:
            presence.leave(full, who.member.id)
            return secure_headers(JSONResponse({"others": []}))
        others = [
            {"name": p.name, "typing": p.typing, "text": p.words()}
            for p in presence.beat(full, who.member.id, typing=typing)
        ]
        return secure_headers(JSONResponse({"others": others}))

    # -- the member's settings ----------------------------------------------------------
    def settings_page(who: Viewer, request: Request, error: str | None = None) -> Response:
        return shown(
            render(
                "settings.html",
                status=400 if error else 200,
                who=who,
                page="settings",
                zones=sorted(available_timezones()),
                clocks=CLOCKS,
                calendar_zone=zone_of(services).key,
                error=error,
                flash=take_flash(request, who),
                now=services.negotiation.now(),
                **times(who),
            ),
            request,
        )

    @router.get("/settings")
    def show_settings(request: Request, who: Viewer = Depends(viewer)) -> Response:
        return settings_page(who, request)

    @router.post("/settings")
    def save_settings(
        request: Request,
        zone: str = Form("", max_length=64),
        clock: str = Form("24h", max_length=3),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        check_csrf(who, csrf)
        try:
            prefs = member_prefs.set(who.member.id, zone=zone, clock=clock)
        except ServiceError as exc:
            return settings_page(who, request, exc.message)
        return with_flash(
            _see_other("/settings"),
            who,
            f"Times are now shown in {prefs.zone.key}, {CLOCKS[prefs.clock]}.",
        )

    # -- case workspace ---------------------------------------------------------------
    def case_page(
        case_id: str,
        who: Viewer,
        *,
        request: Request | None = None,
        error: str | None = None,
        field: str | None = None,
        form: dict[str, str] | None = None,
        counter: str = "",
        diff_from: int | None = None,
        diff_to: int | None = None,
        status: int = 200,
        link: dict[str, str] | None = None,
        edit: str = "",
        copy: str = "",
        reply: dict[str, str] | None = None,
        promise: dict[str, str] | None = None,
    ) -> Response:
        n = services.negotiation
        state = n.state(case_id)
        view = case_view(state, n.cases.timeline(case_id, limit=200))
        shown_times = times(who)
        zone = shown_times["zone"]
        now = n.now()
        ours = services.party_id
        number = number_of(case_id)
        present = presence.beat(case_id, who.member.id)  # and who else has the case open
        fates = outbound.fates(case_id)  # what became of each message we sent
        agreements = state["agreements"]
        accepted = acceptances(n, case_id, state)
        versions = [a["version"] for a in agreements]
        diff = None
        if versions:
            to_v: int = diff_to if diff_to is not None and diff_to in versions else versions[-1]
            from_v = diff_from if diff_from is not None and diff_from < to_v else to_v - 1
            by_version = {a["version"]: a["terms"] for a in agreements}
            diff = {
                "from": from_v,
                "to": to_v,
                "changes": agreement_diff(by_version.get(from_v), by_version[to_v]),
            }
        proposers = {
            e.id: e.author.member
            for e in n.cases.get(case_id, [*view["open_proposals"], *view["crossed_proposals"]])
        }
        proposals = []
        for pid, p in view["open_proposals"].items():
            proposals.append(
                {
                    "id": pid,
                    "by": party_name(state["parties"], p["by"]),
                    "member": proposers.get(pid, ""),
                    "time": p["time"],
                    "note": p.get("note"),
                    "changes": [change_words(c, state["parties"], zone) for c in p["changes"]],
                    "accepted_by": [party_name(state["parties"], x) for x in p["accepted_by"]],
                    "waiting_for": [
                        party_name(state["parties"], x)
                        for x in state["parties"]
                        if x not in p["accepted_by"]
                    ],
                    "mine_to_accept": ours not in p["accepted_by"],
                    "mine": p["by"] == ours,
                    "counter_of": p.get("counter_of"),
                    "topics": proposal_topics(p, state),
                }
            )
        crossed = crossed_list(view, state, ours, zone)
        for c in crossed:
            c["member"] = proposers.get(c["id"], "")
        owner = services.ownership.owner(case_id)
        with services.node.db.read() as conn:
            customer_ids = [
                r[0]
                for r in conn.execute(
                    sa.select(case_customers.c.customer_id).where(
                        case_customers.c.case_id == case_id
                    )
                )
            ]
        customers = [services.customers.view(c) for c in customer_ids]
        counter_of = view["open_proposals"].get(counter) if counter else None
        copied = view["crossed_proposals"].get(copy) if copy else None
        fields = form or (edit_item(state, edit) if edit else prefill(counter_of or copied, zone))
        timeline = list(reversed(view["timeline"]))
        inbox.mark_read(who.member.id, case_id, int(state.get("messages") or 0))
        customer = customer_of(state, customers)
        fill_values = placeholders(state, customer, owner, who, link, number, shown_times)
        flash = take_flash(request, who) if request is not None else None
        page = render(
            "case.html",
            status=status,
            who=who,
            page="case",
            case=view,
            state=state,
            case_id=case_id,
            number=number,
            ours=ours,
            now=now,
            describe=describe_named(state),
            party_name=party_name,
            change_words=change_words,
            channel_name=channel_name,
            swimlane=swimlane.render(state, now, zone, fmt=shown_times["prefs"].fmt),
            accepted=accepted,
            proposals=proposals,
            crossed=crossed,
            topics=topic_list(state),
            reply=reply or {},
            promise=promise or {},
            diff=diff,
            versions=versions,
            owner=owner,
            history=services.ownership.history(case_id),
            notes=services.notes.list(case_id) if who.may(NOTES_READ) else None,
            customers=customers,
            customer=customer,
            timeline=timeline,
            members=services.members.list(include_disabled=False),
            reply_channels=reply_channels(services.connectors, case_id),
            canned=[(c, fill(c.body, fill_values)) for c in canned.list()],
            error=error,
            field=field,
            link=link,
            flash=flash,
            base=f"/cases/{number}",
            form=fields,
            counter=counter if counter_of else "",
            activities=[(aid, a) for aid, a in state["terms"]["activities"].items()],
            present=present,
            fates=fates,
            **shown_times,
        )
        return shown(page, request) if request is not None and flash else page

    def customer_of(state: State, records: list[dict[str, Any]]) -> str:
        """The customer's name as people say it: their record, or the other party."""
        if records and records[0].get("name"):
            return str(records[0]["name"])
        others = [p["name"] for pid, p in state["parties"].items() if pid != services.party_id]
        return str(others[0]) if others else "the customer"

    def placeholders(
        state: State,
        customer: str,
        owner: Any,
        who: Viewer,
        link: dict[str, str] | None,
        number: int,
        shown_times: dict[str, Any],
    ) -> dict[str, str]:
        """The values a canned reply's placeholders take in this case."""
        show, zone = shown_times["when"], shown_times["zone"]
        open_ours = [
            a
            for aid, a in state["terms"]["activities"].items()
            if a.get("due") and a.get("owner") == services.party_id and activity_open(state, aid)
        ]
        due = sorted(open_ours, key=lambda a: a["due"])
        calls = [a for a in due if a.get("kind") == "callback"]
        return {
            "customer": customer,
            "owner": owner.member.display_name if owner else who.member.display_name,
            "me": who.member.display_name,
            "case_link": link["url"] if link else "",
            "case_number": str(number),
            "next_due": show(due[0]["due"], zone, "%A %d %B, %H:%M") if due else "",
            "callback_due": show(calls[0]["due"], zone, "%A %d %B, %H:%M") if calls else "",
        }

    @router.get("/cases/{case_id}")
    def show_case(
        request: Request,
        case_id: str,
        counter: str = Query("", max_length=71),
        diff_from: int | None = Query(None, alias="from", ge=0),
        diff_to: int | None = Query(None, alias="to", ge=1),
        edit: str = Query("", max_length=64),
        copy: str = Query("", max_length=71),
        who: Viewer = Depends(viewer),
    ) -> Response:
        full = resolve(case_id)
        if not case_id.isdigit():  # an old address: the case's number is its address now
            number = number_of(full)
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(f"/cases/{number}{query}", status_code=301)
        return case_page(
            full,
            who,
            request=request,
            counter=counter,
            diff_from=diff_from,
            diff_to=diff_to,
            edit=edit,
            copy=copy,
        )

    def act(
        case_id: str,
        who: Viewer,
        csrf: str,
        scope: str,
        anchor: str,
        work: Any,
        form: dict[str, str] | None = None,
        *,
        reply: dict[str, str] | None = None,
        promise: dict[str, str] | None = None,
        done: str | Callable[[Any], str] = "Done.",
    ) -> Response:
        """Check the form's CSRF token and the scope, do ``work`` as the member, and
        redirect with ``done`` as the page's message (or what ``done`` makes of the
        work's result); on a refusal, the page again with the problem, and what was typed
        kept: ``form`` refills the proposal form, ``reply`` and ``promise`` the others."""
        check_csrf(who, csrf)
        need(who, scope)
        try:
            result = work(Actor(member=who.member.display_name, via="web"))
        except (FormError, ServiceError) as exc:
            return case_page(
                case_id,
                who,
                error=exc.message,
                field=exc.field,
                form=form,
                counter=(form or {}).get("counter_of", ""),
                status=400 if isinstance(exc, FormError) else exc.status,
                reply=reply,
                promise=promise,
            )
        message = done(result) if callable(done) else done
        return with_flash(_see_other(f"{base_of(case_id)}#{anchor}"), who, message)

    @router.post("/cases/{case_id}/reply")
    def reply(
        case_id: str,
        text: str = Form(..., min_length=1, max_length=100_000),
        channel: str = Form("", max_length=32),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        case_id = resolve(case_id)
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "conversation",
            lambda actor: reply_on_channel(
                services.connectors,
                services.mail,
                services.negotiation,
                actor,
                case_id,
                text,
                channel=channel or None,
            ),
            reply={"text": text, "channel": channel},
            done=lambda sent: (
                f"Sent to {recipient(case_id)} by {channel_name(sent.get('channel'))}."
            ),
        )

    def recipient(case_id: str) -> str:
        with services.node.db.read() as conn:
            first = conn.execute(
                sa.select(case_customers.c.customer_id)
                .where(case_customers.c.case_id == case_id)
                .limit(1)
            ).scalar()
        records = [services.customers.view(first)] if first is not None else []
        return customer_of(services.negotiation.state(case_id), records)

    @router.post("/cases/{case_id}/notes")
    def add_note(
        case_id: str,
        text: str = Form(..., min_length=1, max_length=20_000),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        case_id = resolve(case_id)
        services.negotiation.state(case_id)
        return act(
            case_id,
            who,
            csrf,
            NOTES_WRITE,
            "notes",
            lambda _actor: services.notes.add(case_id, who.member.display_name, text),
            done="Note added (only members of this node see it).",
        )

    @router.post("/cases/{case_id}/handoff")
    def handoff(
        case_id: str,
        username: str = Form(..., max_length=64),
        note: str = Form(..., min_length=1, max_length=10_000),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        case_id = resolve(case_id)
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "owner",
            lambda _actor: services.ownership.handoff(case_id, username, note, by=who.member),
            done=lambda made: f"Handed off to {made.member.display_name}; the customer is told.",
        )

    @router.post("/cases/{case_id}/propose")
    async def propose(case_id: str, request: Request, who: Viewer = Depends(viewer)) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}

        def work() -> Response:
            full = resolve(case_id)
            zone = member_prefs.of(who.member.id).zone  # the form's times are in it
            return act(
                full,
                who,
                form.get("csrf", ""),
                CASES_WRITE,
                "proposals",
                lambda actor: submit_proposal(services.negotiation, actor, full, form, zone),
                form,
                done="Proposal sent: the other parties are asked to accept it.",
            )

        return await run_in_threadpool(work)

    @router.post("/cases/{case_id}/proposals/{proposal_id}/accept")
    def accept(
        case_id: str, proposal_id: str, csrf: str = Form(""), who: Viewer = Depends(viewer)
    ) -> Response:
        case_id = resolve(case_id)
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "agreement",
            lambda actor: services.negotiation.accept(actor, case_id, proposal_id),
            done="Accepted.",
        )

    @router.post("/cases/{case_id}/proposals/{proposal_id}/reject")
    def reject(
        case_id: str,
        proposal_id: str,
        reason: str = Form("", max_length=10_000),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        case_id = resolve(case_id)
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "proposals",
            lambda actor: services.negotiation.reject(
                actor, case_id, proposal_id, reason=reason.strip() or None
            ),
            done="Rejected; the proposer is told.",
        )

    @router.post("/cases/{case_id}/proposals/{proposal_id}/withdraw")
    def withdraw(
        case_id: str, proposal_id: str, csrf: str = Form(""), who: Viewer = Depends(viewer)
    ) -> Response:
        case_id = resolve(case_id)
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "proposals",
            lambda actor: services.negotiation.withdraw(actor, case_id, proposal_id),
            done="Proposal withdrawn.",
        )

    @router.post("/cases/{case_id}/proposals/{proposal_id}/repropose")
    def repropose(
        case_id: str, proposal_id: str, csrf: str = Form(""), who: Viewer = Depends(viewer)
    ) -> Response:
        case_id = resolve(case_id)
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "proposals",
            lambda actor: services.negotiation.repropose(actor, case_id, proposal_id),
            done="Proposed again on the current version.",
        )

    @router.post("/cases/{case_id}/promise")
    def promise(
        case_id: str,
        act_title: str = Form("", max_length=300),
        act_kind: str = Form("callback", max_length=16),
        act_due: str = Form("", max_length=40),
        act_topic: str = Form("", max_length=64),
        note: str = Form("", max_length=10_000),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        """Promise at once an activity our party does (a callback promised on the phone):
        no acceptance needed, its timers start now, the customer is told."""
        case_id = resolve(case_id)
        typed = {
            "act_title": act_title,
            "act_kind": act_kind,
            "act_due": act_due,
            "act_topic": act_topic,
            "note": note,
        }

        def work(actor: Actor) -> None:
            zone = member_prefs.of(who.member.id).zone
            activity = promise_from_form(typed, services.party_id, zone)
            services.negotiation.commit(actor, case_id, activity, note=note.strip() or None)

        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "activities",
            work,
            promise=typed,
            done=f"Promised: {act_title.strip() or 'the activity'}. The customer is told.",
        )

    @router.post("/cases/{case_id}/topics")
    def open_topic(
        case_id: str,
        title: str = Form(..., min_length=1, max_length=200),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        case_id = resolve(case_id)
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "topics",
            lambda actor: services.negotiation.open_topic(
                actor, case_id, topic_id(services.negotiation.state(case_id), title), title
            ),
            done=f"Topic “{title.strip()}” opened.",
        )

    @router.post("/cases/{case_id}/topics/{topic}/close")
    def close_topic(
        case_id: str, topic: str, csrf: str = Form(""), who: Viewer = Depends(viewer)
    ) -> Response:
        case_id = resolve(case_id)
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "topics",
            lambda actor: services.negotiation.close_topic(actor, case_id, topic),
            done="Topic closed.",
        )

    @router.post("/cases/{case_id}/topics/{topic}/reopen")
    def reopen_topic(
        case_id: str, topic: str, csrf: str = Form(""), who: Viewer = Depends(viewer)
    ) -> Response:
        case_id = resolve(case_id)

        def work(actor: Actor) -> None:
            state = services.negotiation.state(case_id)
            known = state["topics"].get(topic)
            title = known["title"] if known is not None else topic
            services.negotiation.open_topic(actor, case_id, topic, title)

        return act(case_id, who, csrf, CASES_WRITE, "topics", work, done="Topic reopened.")

    @router.post("/cases/{case_id}/activities/{activity}/progress")
    def progress(
        case_id: str,
        activity: str,
        state: str = Form(..., pattern="^(in_progress|done)$"),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        case_id = resolve(case_id)
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "activities",
            lambda actor: services.negotiation.report_progress(actor, case_id, activity, state),
            done="Marked done." if state == "done" else "Marked in progress.",
        )

    @router.post("/cases/{case_id}/satisfied")
    def satisfied(
        case_id: str,
        rating: int | None = Form(None, ge=1, le=5),
        reason: str = Form("", max_length=2000),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        """Our side is satisfied; refused with the open work listed unless a reason to
        close anyway is given (recorded in the log)."""
        case_id = resolve(case_id)
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "agreement",
            lambda actor: services.negotiation.satisfied(
                actor, case_id, rating=rating, reason=reason.strip() or None
            ),
            done="Our side is satisfied.",
        )

    @router.post("/cases/{case_id}/mark")
    def mark(
        case_id: str,
        kind: str = Form(..., pattern="^(identify|repeat)$"),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        case_id = resolve(case_id)
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "conversation",
            lambda _actor: outcomes.store.mark(case_id, kind, member_id=who.member.id),
            done="Noted, for the outcomes.",
        )

    def make_link(case_id: str, party: str, who: Viewer, request: Request) -> dict[str, str]:
        """A case link for a hosted party (valid ``DEFAULT_LINK_TTL``), as a full address."""
        state = services.negotiation.state(case_id)
        link = issue_case_link(
            services.links,
            state,
            party,
            f"link made by {who.member.username}",
            host=services.node.key.public,
        )
        return {
            "party": party_name(state["parties"], party),
            "party_id": party,
            "url": str(request.base_url).rstrip("/") + link.path,
            "path": link.path,
        }

    @router.post("/cases/{case_id}/portal-link")
    def portal_link(
        request: Request,
        case_id: str,
        party: str = Form(..., max_length=64),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        """Make a case link for a hosted party: shown with a copy button and a form that
        sends it to the customer on their channel."""
        case_id = resolve(case_id)
        check_csrf(who, csrf)
        need(who, CASES_WRITE)
        try:
            made = make_link(case_id, party, who, request)
        except ServiceError as exc:
            return case_page(case_id, who, error=exc.message, status=exc.status)
        return case_page(case_id, who, link=made)

    @router.post("/cases/{case_id}/portal-link/send")
    def send_link(
        request: Request,
        case_id: str,
        party: str = Form(..., max_length=64),
        channel: str = Form("", max_length=32),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        """Make a case link and send it to the customer on ``channel`` (their last one by
        default), as a message of ours in the case."""
        case_id = resolve(case_id)

        def work(actor: Actor) -> dict[str, Any]:
            made = make_link(case_id, party, who, request)
            text = (
                "Here is the link to your case: you can follow it and answer us there "
                f"(valid for {DEFAULT_LINK_TTL.days} days): {made['url']}"
            )
            return reply_on_channel(
                services.connectors,
                services.mail,
                services.negotiation,
                actor,
                case_id,
                text,
                channel=channel or None,
            )

        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "conversation",
            work,
            done=lambda sent: (
                f"Sent the case link to {recipient(case_id)} by "
                f"{channel_name(sent.get('channel'))}."
            ),
        )

    blobs = node_blobs(services.node.data_dir)

    @router.get("/cases/{case_id}/files/{sha}")
    def get_file(case_id: str, sha: str, who: Viewer = Depends(viewer)) -> Response:
        case_id = resolve(case_id)
        state = services.negotiation.state(case_id)
        return download(blobs, state, sha, case_id=case_id, db=services.node.db)

    @router.get("/cases/{case_id}/copy.{form}")
    def readable_copy(case_id: str, form: str, who: Viewer = Depends(viewer)) -> Response:
        """The signed copy as a page to read (``copy.html``) or a PDF (``copy.pdf``), as the
        signed file: for members who may read cases (``accord.web.copies``)."""
        case_id = resolve(case_id)
        need(who, CASES_READ)
        return signed_copy(services, case_id, form, referrer="same-origin")

    return router
