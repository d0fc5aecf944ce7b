"""The customer's portal: their case through the magic link (``/portal/{token}``).

The link's token is the credential (``accord.auth.portal``): it names one case and the
customer's party, expires, and is checked on every request. Because a forged form
cannot know the token in its own address, the token also protects the forms against
cross-site posts; pages send ``Referrer-Policy: no-referrer`` so it never leaks to
another site.

Built for a phone first. The first screen is who looks after the customer (the owner
and the direct line) and what waits for them (proposals to answer, things they promised
to do), each with its one action; then the conversation as a chat, in plain words
(``accord.web.plain``); then "Ask for a change" as one text box, with the full proposal
form under "More options"; then the agreement, subjects, files, satisfaction and the
signed copy. Every text is in the customer's language (``accord.web.i18n``). A party
joins only once the customer has confirmed that they understand it will see the whole
history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from accord import __version__
from accord.api.auth import spend
from accord.auth.errors import LinkExpired, LinkInvalid
from accord.auth.portal import PortalGrant
from accord.channels.blobs import StorageFull, node_blobs
from accord.core.activities import is_open
from accord.core.bundle import write_bundle
from accord.core.state import State
from accord.service.errors import Forbidden, ServiceError
from accord.service.negotiation import Actor
from accord.service.views import case_view
from accord.store.tables import case_refs
from accord.web.copies import signed_copy
from accord.web.files import download
from accord.web.forms import FormError, edit_item, prefill, slug, submit_proposal, topic_id
from accord.web.i18n import COOKIE, COOKIE_AGE, choose, environment, language_name, languages
from accord.web.pages import topic_list, zone_of
from accord.web.plain import (
    CHANGE_TOPIC,
    CHANGE_TOPIC_TITLE,
    Words,
    change_sentence,
    joining,
    quote,
    sentence,
)
from accord.web.session import secure_headers

if TYPE_CHECKING:
    from accord.wiring import Services

MAX_UPLOAD = 10 * 1024 * 1024


def language(request: Request) -> str:
    """The page's language (``accord.web.i18n.choose``)."""
    return choose(
        request.query_params.get("lang"),
        request.cookies.get(COOKIE),
        request.headers.get("accept-language"),
    )


def render_portal(
    request: Request, template: str, lang: str, *, status: int = 200, **context: Any
) -> Response:
    """A portal page in ``lang``, with the security headers every page carries; a
    ``?lang=`` switch is kept in a cookie."""
    context.setdefault("version", __version__)
    html = (
        environment(lang)
        .get_template(template)
        .render(
            lang=lang,
            languages=[(code, language_name(code)) for code in languages() if code != lang],
            **context,
        )
    )
    response = secure_headers(HTMLResponse(html, status_code=status), referrer="no-referrer")
    response.headers["Content-Language"] = lang
    response.headers["Vary"] = "Accept-Language, Cookie"
    if request.query_params.get("lang", "").lower() == lang:
        response.set_cookie(COOKIE, lang, max_age=COOKIE_AGE, samesite="lax", httponly=True)
    return response


def portal_routes(services: Services) -> APIRouter:
    router = APIRouter()
    blobs = node_blobs(services.node.data_dir)

    def grant_of(token: str, request: Request) -> PortalGrant | Response:
        """The link's grant, or the page that says why not; spends one request of the
        link's rate limit (as the portal API does)."""
        lang = language(request)
        words = Words(lang, zone_of(services), {"parties": {}}, "")
        _ = words._
        try:
            grant: PortalGrant = services.links.verify(token)
        except LinkExpired:
            reason = _(
                "This case link has expired. Ask us for a new one — your case and "
                "everything in it is kept."
            )
            return render_portal(request, "portal_gone.html", lang, status=401, reason=reason)
        except LinkInvalid:
            reason = _("This case link is not valid. Check that you copied all of it.")
            return render_portal(request, "portal_gone.html", lang, status=401, reason=reason)
        spend(request, f"portal:{grant.session_ref}")
        return grant

    def actor_of(grant: PortalGrant) -> Actor:
        state = services.negotiation.state(grant.case_id)
        party = state["parties"].get(grant.party_id)
        if party is None:
            raise Forbidden("this case link names a party that is not in the case")
        return Actor(
            member=party["name"], via="portal", party=grant.party_id, session=grant.session_ref
        )

    def page(
        request: Request,
        token: str,
        grant: PortalGrant,
        *,
        error: str | None = None,
        form: dict[str, str] | None = None,
        counter: str = "",
        edit: str = "",
        copy: str = "",
        message: str = "",
        change: str = "",
        status: int = 200,
    ) -> Response:
        n = services.negotiation
        lang = language(request)
        state = n.state(grant.case_id)
        me = grant.party_id
        view = case_view(state, n.cases.timeline(grant.case_id, limit=200))
        zone = zone_of(services)
        words = Words(lang, zone, state, me)
        _ = words._
        owner = services.ownership.owner(grant.case_id)
        direct_line = None
        with services.node.db.read() as conn:
            ref = conn.execute(
                case_refs.select().where(case_refs.c.case_id == grant.case_id)
            ).first()
        mailbox = services.mail.mailboxes.default() if ref else None
        if ref is not None and mailbox is not None:
            direct_line = mailbox.direct_line(ref.token)

        def who_does(party: str) -> str:
            return _("You") if party == me else words.party(party)

        activities = []
        owed = []
        for aid, activity in state["terms"]["activities"].items():
            known = state["progress"].get(aid)
            progress = known["state"] if known is not None else "agreed"
            item = {
                "id": aid,
                "title": activity["title"],
                "who": who_does(activity["owner"]),
                "callback": activity["kind"] == "callback",
                "due": words.moment(activity.get("due")),
                "state": progress,
            }
            activities.append(item)
            if activity["owner"] == me and is_open(progress):
                owed.append(item)

        def proposal(pid: str, p: dict[str, Any]) -> dict[str, Any]:
            return {
                "id": pid,
                "by": words.party(p["by"]),
                "time": words.moment(p["time"]),
                "note": p.get("note"),
                "changes": [change_sentence(c, words) for c in p["changes"]],
                "mine_to_accept": me not in p["accepted_by"],
                "mine": p["by"] == me,
                "topics": [
                    words.topic_title(t)
                    for t in sorted({c["topic"] for c in p["changes"] if c.get("topic")})
                ],
                "joining": [{**party, "own_node": bool(party.get("node"))} for party in joining(p)],
                "crossed_with": p.get("crossed_with"),
            }

        proposals = [proposal(pid, p) for pid, p in view["open_proposals"].items()]
        crossed = [proposal(pid, p) for pid, p in view["crossed_proposals"].items()]
        chat = []
        for e in reversed(view["timeline"]):
            author = e["author"]
            chat.append(
                {
                    "message": e["type"] == "message.posted",
                    "mine": author.get("party") == me,
                    "who": words.person(e),
                    "party": words.party(author.get("party")) if author.get("party") != me else "",
                    "time": words.moment(e["time"]),
                    "sentence": sentence(e, words),
                    "quote": quote(e),
                    "text": e["body"].get("text", ""),
                    "attachments": e["body"].get("attachments", []),
                    "change": e["body"].get("topic") == CHANGE_TOPIC,
                }
            )
        topics = [{**t, "title": words.topic_title(t["topic"])} for t in topic_list(state)]
        accepted = [
            {
                "party": who_does(party),
                "time": words.moment(event_time),
            }
            for party, event_time in _acceptance_times(n, grant.case_id, state)
        ]
        terms = [
            {"key": key, "label": item.get("label") or key, "value": words.value(item["value"])}
            for key, item in state["terms"]["data"].items()
        ]
        information = [
            {
                "label": item.get("label") or item["value"].get("name") or key,
                "value": item["value"],
                "shown": words.value(item["value"]),
            }
            for key, item in state["info"].items()
        ]
        countered = view["open_proposals"].get(counter) if counter else None
        copied = view["crossed_proposals"].get(copy) if copy else None
        form = form or (edit_item(state, edit) if edit else prefill(countered or copied, zone))
        ours = services.party_id if services.party_id in state["parties"] else None
        return render_portal(
            request,
            "portal.html",
            lang,
            status=status,
            token=token,
            base=f"/portal/{token}",
            title=state["title"],
            supplier=state["parties"][ours]["name"] if ours else None,
            owner=owner.member.display_name if owner else None,
            direct_line=direct_line,
            error=error,
            waiting=[p for p in proposals if p["mine_to_accept"]],
            theirs=[p for p in proposals if not p["mine_to_accept"]],
            crossed=crossed,
            owed=owed,
            chat=chat,
            message=message,
            change=change,
            form=form,
            more_open=bool(form),
            counter=counter if countered else "",
            zone=zone,
            parties=state["parties"],
            topics=topics,
            activities=list(state["terms"]["activities"].items()),
            plan=activities,
            version=state["terms"]["version"],
            agreed=words.moment(state["agreements"][-1]["time"]) if state["agreements"] else "",
            accepted=accepted,
            terms=terms,
            information=information,
            resolved=state["resolved"],
            satisfied=me in state["satisfied"],
            superseded=[entry["version"] for entry in state.get("superseded") or []],
        )

    def act(
        request: Request,
        token: str,
        anchor: str,
        work: Callable[[Actor, PortalGrant], Any],
        form: dict[str, str] | None = None,
        message: str = "",
        change: str = "",
    ) -> Response:
        """Do ``work`` as the link's party and redirect; on a refusal, the page again with
        the problem (and ``form`` refilled)."""
        grant = grant_of(token, request)
        if isinstance(grant, Response):
            return grant
        try:
            work(actor_of(grant), grant)
        except (FormError, ServiceError) as exc:
            return page(
                request,
                token,
                grant,
                error=exc.message,
                form=form,
                counter=(form or {}).get("counter_of", ""),
                message=message,
                change=change,
                status=400 if isinstance(exc, FormError) else exc.status,
            )
        return RedirectResponse(f"/portal/{token}#{anchor}", status_code=303)

    def gettext(request: Request) -> Callable[[str], str]:
        return Words(language(request), zone_of(services), {"parties": {}}, "")._

    @router.get("/portal/{token}")
    def show(
        request: Request, token: str, counter: str = "", edit: str = "", copy: str = ""
    ) -> Response:
        grant = grant_of(token, request)
        if isinstance(grant, Response):
            return grant
        return page(request, token, grant, counter=counter[:71], edit=edit[:64], copy=copy[:71])

    @router.post("/portal/{token}/message")
    def message(
        request: Request, token: str, text: str = Form(..., min_length=1, max_length=100_000)
    ) -> Response:
        return act(
            request,
            token,
            "conversation",
            lambda actor, g: services.negotiation.post_message(actor, g.case_id, text),
            message=text,
        )

    @router.post("/portal/{token}/change")
    def ask_for_change(
        request: Request, token: str, text: str = Form(..., min_length=1, max_length=10_000)
    ) -> Response:
        """ "Ask for a change" in the customer's own words: a message in the case's
        change-request topic, opened (or opened again) for it, so the members see an open
        request to answer."""
        _ = gettext(request)

        def work(actor: Actor, grant: PortalGrant) -> None:
            if not text.strip():
                raise FormError("change", _("Write what you would like us to change."))
            n = services.negotiation
            topic = n.state(grant.case_id)["topics"].get(CHANGE_TOPIC)
            if topic is None or topic["state"] != "open":
                n.open_topic(actor, grant.case_id, CHANGE_TOPIC, CHANGE_TOPIC_TITLE)
            n.post_message(actor, grant.case_id, text.strip(), topic=CHANGE_TOPIC)

        return act(request, token, "conversation", work, change=text)

    @router.post("/portal/{token}/activities/{activity}/done")
    def activity_done(request: Request, token: str, activity: str) -> Response:
        return act(
            request,
            token,
            "waiting",
            lambda actor, g: services.negotiation.report_progress(
                actor, g.case_id, activity, "done"
            ),
        )

    @router.post("/portal/{token}/files")
    async def add_file(
        request: Request,
        token: str,
        upload: UploadFile = File(...),
        label: str = Form("", max_length=200),
    ) -> Response:
        data = await upload.read(MAX_UPLOAD + 1)
        name = (upload.filename or "file").replace("\\", "/").rsplit("/", 1)[-1][:200] or "file"
        _ = gettext(request)

        def work(actor: Actor, grant: PortalGrant) -> None:
            if not data:
                raise FormError("upload", _("The file is empty."))
            if len(data) > MAX_UPLOAD:
                raise FormError(
                    "upload",
                    _("The file is larger than %(size)s MB.")
                    % {"size": MAX_UPLOAD // (1024 * 1024)},
                )
            try:
                sha = blobs.put(data)
            except StorageFull as exc:
                raise FormError("upload", _("We cannot store files right now; try later.")) from exc
            value = {
                "type": "file",
                "sha256": sha,
                "name": name,
                "size": len(data),
                "media_type": (upload.content_type or "application/octet-stream")[:100],
            }
            key = "file-" + slug(name, "upload")[:40] + "-" + sha[:8]
            services.negotiation.set_info(
                actor, grant.case_id, key, value, label=label.strip() or name
            )

        return await run_in_threadpool(act, request, token, "information", work)

    @router.get("/portal/{token}/files/{sha}")
    def get_file(request: Request, token: str, sha: str) -> Response:
        grant = grant_of(token, request)
        if isinstance(grant, Response):
            return grant
        state = services.negotiation.state(grant.case_id)
        return download(blobs, state, sha, case_id=grant.case_id, db=services.node.db)

    @router.post("/portal/{token}/propose")
    async def propose(token: str, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        zone = zone_of(services)
        return await run_in_threadpool(
            act,
            request,
            token,
            "proposals",
            lambda actor, g: submit_proposal(services.negotiation, actor, g.case_id, form, zone),
            form,
        )

    @router.post("/portal/{token}/proposals/{proposal_id}/accept")
    def accept(
        request: Request, token: str, proposal_id: str, understood: str = Form("", max_length=10)
    ) -> Response:
        """Accept a proposal; one that adds a party needs the customer's confirmation that
        they understand the newcomer will see the whole case."""
        _ = gettext(request)

        def work(actor: Actor, grant: PortalGrant) -> None:
            n = services.negotiation
            found = n.state(grant.case_id)["proposals"].get(proposal_id)
            newcomers = joining(found) if found else []
            if newcomers and understood != "yes":
                raise FormError(
                    "understood",
                    _(
                        "Before %(names)s can join, confirm that you understand they will "
                        "see everything in this case."
                    )
                    % {"names": ", ".join(p["name"] for p in newcomers)},
                )
            n.accept(actor, grant.case_id, proposal_id)

        return act(request, token, "agreement", work)

    @router.post("/portal/{token}/proposals/{proposal_id}/reject")
    def reject(
        request: Request, token: str, proposal_id: str, reason: str = Form("", max_length=10_000)
    ) -> Response:
        return act(
            request,
            token,
            "proposals",
            lambda actor, g: services.negotiation.reject(
                actor, g.case_id, proposal_id, reason=reason.strip() or None
            ),
        )

    @router.post("/portal/{token}/proposals/{proposal_id}/withdraw")
    def withdraw(request: Request, token: str, proposal_id: str) -> Response:
        return act(
            request,
            token,
            "proposals",
            lambda actor, g: services.negotiation.withdraw(actor, g.case_id, proposal_id),
        )

    @router.post("/portal/{token}/proposals/{proposal_id}/repropose")
    def repropose(request: Request, token: str, proposal_id: str) -> Response:
        return act(
            request,
            token,
            "proposals",
            lambda actor, g: services.negotiation.repropose(actor, g.case_id, proposal_id),
        )

    @router.post("/portal/{token}/topics")
    def open_topic(
        request: Request, token: str, title: str = Form(..., min_length=1, max_length=200)
    ) -> Response:
        def work(actor: Actor, grant: PortalGrant) -> None:
            state = services.negotiation.state(grant.case_id)
            services.negotiation.open_topic(actor, grant.case_id, topic_id(state, title), title)

        return act(request, token, "topics", work)

    @router.post("/portal/{token}/topics/{topic}/close")
    def close_topic(request: Request, token: str, topic: str) -> Response:
        return act(
            request,
            token,
            "topics",
            lambda actor, g: services.negotiation.close_topic(actor, g.case_id, topic),
        )

    @router.post("/portal/{token}/satisfied")
    def satisfied(
        request: Request, token: str, rating: int | None = Form(None, ge=1, le=5)
    ) -> Response:
        return act(
            request,
            token,
            "agreement",
            lambda actor, g: services.negotiation.satisfied(actor, g.case_id, rating=rating),
        )

    @router.get("/portal/{token}/copy")
    def copy(request: Request, token: str) -> Response:
        """The customer's signed copy of the case: verify it with ``accord verify``."""
        grant = grant_of(token, request)
        if isinstance(grant, Response):
            return grant
        n = services.negotiation
        state = n.state(grant.case_id)
        data = write_bundle(
            grant.case_id, n.cases.events(grant.case_id), state, exported_by=n.key.public
        )
        response = Response(data, media_type="application/jsonl")
        response.headers["Content-Disposition"] = (
            f'attachment; filename="accord-case-{grant.case_id[7:19]}.jsonl"'
        )
        return secure_headers(response, referrer="no-referrer")

    @router.get("/portal/{token}/copy.{form}")
    def readable_copy(request: Request, token: str, form: str) -> Response:
        """The signed copy as a page to read (``copy.html``) or a PDF (``copy.pdf``): what
        was agreed, by whom and when, and every signature's check (``accord.web.copies``)."""
        grant = grant_of(token, request)
        if isinstance(grant, Response):
            return grant
        return signed_copy(services, grant.case_id, form, referrer="no-referrer")

    return router


def _acceptance_times(n: Any, case_id: str, state: State) -> list[tuple[str, str]]:
    """Who accepted the current agreement, and when."""
    if not state["agreements"]:
        return []
    current = state["agreements"][-1]
    found = {e.id: e for e in n.cases.get(case_id, list(current["acceptances"].values()))}
    return [
        (party, found[event_id].time if event_id in found else current["time"])
        for party, event_id in current["acceptances"].items()
    ]
