"""The members' pages: login, the inbox and the case workspace.

Every page needs a session (``accord.web.session``); every form post carries its CSRF
token and answers with a redirect (post, redirect, get), or with the page again and the
problem named when the service refused. The services do the work, exactly as for the
REST API: a page is another way to call them, never a second implementation.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from accord.api.auth import SESSION_COOKIE
from accord.api.connectors import last_channel, reply_on_channel
from accord.auth.scopes import CASES_READ, CASES_WRITE, NOTES_READ, NOTES_WRITE
from accord.channels.blobs import node_blobs
from accord.service import settings
from accord.service.errors import NotFound, ServiceError
from accord.service.inbox import VIEWS, Inbox
from accord.service.negotiation import Actor
from accord.service.views import agreement_diff, case_view
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
from accord.web.render import change_words, describe, party_name, render, when
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
    from accord.metrics.service import Outcomes
    from accord.wiring import Services

CHANNELS = (
    "email",
    "webchat",
    "whatsapp",
    "whatsapp-twilio",
    "messenger",
    "instagram",
    "telegram",
    "sms",
    "x",
)


def zone_of(services: Services) -> ZoneInfo:
    """The zone the pages show times in: the business calendar's."""
    return settings.zone(services.node.db)


def acceptances(n: Any, case_id: str, state: dict[str, Any]) -> list[dict[str, str]]:
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


def topic_list(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The case's topics with their state, open ones first."""
    topics = [{"topic": t, **v} for t, v in state["topics"].items()]
    return sorted(topics, key=lambda t: (t["state"] != "open", t["title"]))


def proposal_topics(proposal: dict[str, Any], state: dict[str, Any]) -> list[str]:
    """The titles of the topics a proposal's changes name."""
    named = {c["topic"] for c in proposal["changes"] if c.get("topic")}
    return [str(state["topics"].get(t, {}).get("title", t)) for t in sorted(named)]


def crossed_list(
    view: dict[str, Any], state: dict[str, Any], party: str | None, zone: ZoneInfo
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


def member_routes(services: Services, inbox: Inbox, outcomes: Outcomes) -> APIRouter:
    """The routes; ``outcomes`` (``accord.metrics.service.Outcomes``) records the marks."""
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

    # -- inbox ------------------------------------------------------------------------
    @router.get("/")
    def inbox_page(
        view: str = Query("mine", max_length=16),
        q: str = Query("", max_length=200),
        owner: str = Query("", max_length=64),
        team: str = Query("", max_length=100),
        channel: str = Query("", max_length=32),
        partial: bool = Query(False),
        who: Viewer = Depends(viewer),
    ) -> Response:
        if view not in VIEWS:
            view = "mine"
        rows = inbox.list(
            view, member_id=who.member.id, query=q, owner=owner, team=team, channel=channel
        )
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
            "channels": CHANNELS,
            "members": services.members.list(include_disabled=False),
            "teams": services.ownership.list_teams(),
            "zone": zone_of(services),
            "when": when,
            "now": services.negotiation.now(),
        }
        return render("_inbox_rows.html" if partial else "inbox.html", **context)

    @router.get("/web/changes")
    def changes(who: Viewer = Depends(viewer)) -> Response:
        """A token that changes whenever a case or note changes: the pages poll it to
        update themselves (any process can answer; nothing is held in memory)."""
        return secure_headers(JSONResponse({"token": inbox.changed_since()}))

    # -- case workspace ---------------------------------------------------------------
    def case_page(
        case_id: str,
        who: Viewer,
        *,
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
        zone = zone_of(services)
        now = n.now()
        ours = services.party_id
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
        proposals = []
        for pid, p in view["open_proposals"].items():
            proposals.append(
                {
                    "id": pid,
                    "by": party_name(state["parties"], p["by"]),
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
        return render(
            "case.html",
            status=status,
            who=who,
            page="case",
            case=view,
            state=state,
            case_id=case_id,
            ours=ours,
            zone=zone,
            now=now,
            when=when,
            describe=describe,
            party_name=party_name,
            change_words=change_words,
            swimlane=swimlane.render(state, now, zone),
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
            timeline=timeline,
            members=services.members.list(include_disabled=False),
            channels=CHANNELS,
            last_channel=last_channel(services.connectors, case_id),
            error=error,
            field=field,
            link=link,
            base=f"/cases/{case_id}",
            form=fields,
            counter=counter if counter_of else "",
            activities=[(aid, a) for aid, a in state["terms"]["activities"].items()],
        )

    @router.get("/cases/{case_id}")
    def show_case(
        case_id: str,
        counter: str = Query("", max_length=71),
        diff_from: int | None = Query(None, alias="from", ge=0),
        diff_to: int | None = Query(None, alias="to", ge=1),
        edit: str = Query("", max_length=64),
        copy: str = Query("", max_length=71),
        who: Viewer = Depends(viewer),
    ) -> Response:
        full = (
            services.node.cases.find_case(case_id) if not case_id.startswith("sha256:") else case_id
        )
        if full is None:
            raise NotFound(f"no case {case_id!r}")
        return case_page(
            full,
            who,
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
    ) -> Response:
        """Check the form's CSRF token and the scope, do ``work`` as the member, and
        redirect; on a refusal, the page again with the problem, and what was typed kept:
        ``form`` refills the proposal form, ``reply`` and ``promise`` the others."""
        check_csrf(who, csrf)
        need(who, scope)
        try:
            work(Actor(member=who.member.display_name, via="web"))
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
        return _see_other(f"/cases/{case_id}#{anchor}")

    @router.post("/cases/{case_id}/reply")
    def reply(
        case_id: str,
        text: str = Form(..., min_length=1, max_length=100_000),
        channel: str = Form("", max_length=32),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
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
        )

    @router.post("/cases/{case_id}/notes")
    def add_note(
        case_id: str,
        text: str = Form(..., min_length=1, max_length=20_000),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        services.negotiation.state(case_id)
        return act(
            case_id,
            who,
            csrf,
            NOTES_WRITE,
            "notes",
            lambda _actor: services.notes.add(case_id, who.member.display_name, text),
        )

    @router.post("/cases/{case_id}/handoff")
    def handoff(
        case_id: str,
        username: str = Form(..., max_length=64),
        note: str = Form(..., min_length=1, max_length=10_000),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "owner",
            lambda _actor: services.ownership.handoff(case_id, username, note, by=who.member),
        )

    @router.post("/cases/{case_id}/propose")
    async def propose(case_id: str, request: Request, who: Viewer = Depends(viewer)) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        zone = zone_of(services)
        return await run_in_threadpool(
            act,
            case_id,
            who,
            form.get("csrf", ""),
            CASES_WRITE,
            "proposals",
            lambda actor: submit_proposal(services.negotiation, actor, case_id, form, zone),
            form,
        )

    @router.post("/cases/{case_id}/proposals/{proposal_id}/accept")
    def accept(
        case_id: str, proposal_id: str, csrf: str = Form(""), who: Viewer = Depends(viewer)
    ) -> Response:
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "agreement",
            lambda actor: services.negotiation.accept(actor, case_id, proposal_id),
        )

    @router.post("/cases/{case_id}/proposals/{proposal_id}/reject")
    def reject(
        case_id: str,
        proposal_id: str,
        reason: str = Form("", max_length=10_000),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "proposals",
            lambda actor: services.negotiation.reject(
                actor, case_id, proposal_id, reason=reason.strip() or None
            ),
        )

    @router.post("/cases/{case_id}/proposals/{proposal_id}/withdraw")
    def withdraw(
        case_id: str, proposal_id: str, csrf: str = Form(""), who: Viewer = Depends(viewer)
    ) -> Response:
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "proposals",
            lambda actor: services.negotiation.withdraw(actor, case_id, proposal_id),
        )

    @router.post("/cases/{case_id}/proposals/{proposal_id}/repropose")
    def repropose(
        case_id: str, proposal_id: str, csrf: str = Form(""), who: Viewer = Depends(viewer)
    ) -> Response:
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "proposals",
            lambda actor: services.negotiation.repropose(actor, case_id, proposal_id),
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
        typed = {
            "act_title": act_title,
            "act_kind": act_kind,
            "act_due": act_due,
            "act_topic": act_topic,
            "note": note,
        }

        def work(actor: Actor) -> None:
            activity = promise_from_form(typed, services.party_id, zone_of(services))
            services.negotiation.commit(actor, case_id, activity, note=note.strip() or None)

        return act(case_id, who, csrf, CASES_WRITE, "activities", work, promise=typed)

    @router.post("/cases/{case_id}/topics")
    def open_topic(
        case_id: str,
        title: str = Form(..., min_length=1, max_length=200),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "topics",
            lambda actor: services.negotiation.open_topic(
                actor, case_id, topic_id(services.negotiation.state(case_id), title), title
            ),
        )

    @router.post("/cases/{case_id}/topics/{topic}/close")
    def close_topic(
        case_id: str, topic: str, csrf: str = Form(""), who: Viewer = Depends(viewer)
    ) -> Response:
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "topics",
            lambda actor: services.negotiation.close_topic(actor, case_id, topic),
        )

    @router.post("/cases/{case_id}/topics/{topic}/reopen")
    def reopen_topic(
        case_id: str, topic: str, csrf: str = Form(""), who: Viewer = Depends(viewer)
    ) -> Response:
        def work(actor: Actor) -> None:
            state = services.negotiation.state(case_id)
            title = state["topics"].get(topic, {}).get("title", topic)
            services.negotiation.open_topic(actor, case_id, topic, title)

        return act(case_id, who, csrf, CASES_WRITE, "topics", work)

    @router.post("/cases/{case_id}/activities/{activity}/progress")
    def progress(
        case_id: str,
        activity: str,
        state: str = Form(..., pattern="^(in_progress|done)$"),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "activities",
            lambda actor: services.negotiation.report_progress(actor, case_id, activity, state),
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
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "agreement",
            lambda actor: services.negotiation.satisfied(
                actor, case_id, rating=rating, reason=reason.strip() or None
            ),
        )

    @router.post("/cases/{case_id}/mark")
    def mark(
        case_id: str,
        kind: str = Form(..., pattern="^(identify|repeat)$"),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        return act(
            case_id,
            who,
            csrf,
            CASES_WRITE,
            "conversation",
            lambda _actor: outcomes.store.mark(case_id, kind, member_id=who.member.id),
        )

    @router.post("/cases/{case_id}/portal-link")
    def portal_link(
        case_id: str,
        party: str = Form(..., max_length=64),
        csrf: str = Form(""),
        who: Viewer = Depends(viewer),
    ) -> Response:
        check_csrf(who, csrf)
        need(who, CASES_WRITE)
        state = services.negotiation.state(case_id)
        hosted = state["parties"].get(party)
        if hosted is None or hosted.get("hosted_by") != services.node.key.public:
            return case_page(case_id, who, error="This node does not host that party.", status=403)
        token = services.links.issue(
            case_id, party, f"link made by {who.member.username}", timedelta(days=7)
        )
        made = {"party": party_name(state["parties"], party), "path": f"/portal/{token}"}
        return case_page(case_id, who, link=made)

    blobs = node_blobs(services.node.data_dir)

    @router.get("/cases/{case_id}/files/{sha}")
    def get_file(case_id: str, sha: str, who: Viewer = Depends(viewer)) -> Response:
        state = services.negotiation.state(case_id)
        return download(blobs, state, sha, case_id=case_id, db=services.node.db)

    @router.get("/cases/{case_id}/copy.{form}")
    def readable_copy(case_id: str, form: str, who: Viewer = Depends(viewer)) -> Response:
        """The signed copy as a page to read (``copy.html``) or a PDF (``copy.pdf``), as the
        signed file: for members who may read cases (``accord.web.copies``)."""
        need(who, CASES_READ)
        return signed_copy(services, case_id, form, referrer="same-origin")

    return router
