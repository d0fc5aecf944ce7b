"""The customer's portal: their case through the magic link (``/portal/{token}``).

The link's token is the credential (``accord.auth.portal``): it names one case and the
customer's party, expires, and is checked on every request. Because a forged form
cannot know the token in its own address, the token also protects the forms against
cross-site posts; pages send ``Referrer-Policy: no-referrer`` so it never leaks to
another site. The customer sees what was agreed, who owns the case and how to reach
them, what each side still has to do, and can accept, reject or counter, write, add
files, mark themselves satisfied and download their signed copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from accord.api.auth import spend
from accord.auth.errors import LinkExpired, LinkInvalid
from accord.auth.portal import PortalGrant
from accord.channels.blobs import StorageFull, node_blobs
from accord.core.bundle import write_bundle
from accord.service.errors import Forbidden, ServiceError
from accord.service.negotiation import Actor
from accord.service.views import case_view
from accord.store.tables import case_refs
from accord.web import swimlane
from accord.web.copies import signed_copy
from accord.web.files import download
from accord.web.forms import FormError, edit_item, prefill, slug, submit_proposal, topic_id
from accord.web.pages import acceptances, crossed_list, proposal_topics, topic_list, zone_of
from accord.web.render import change_words, describe, party_name, render, when
from accord.web.session import secure_headers

MAX_UPLOAD = 10 * 1024 * 1024


def portal_routes(services: Any) -> APIRouter:
    router = APIRouter()
    blobs = node_blobs(services.node.data_dir)

    def grant_of(token: str, request: Request) -> PortalGrant | Response:
        """The link's grant, or the page that says why not; spends one request of the
        link's rate limit (as the portal API does)."""
        try:
            grant: PortalGrant = services.links.verify(token)
        except LinkExpired:
            return render(
                "portal_gone.html",
                status=401,
                referrer="no-referrer",
                reason="This case link has expired. Ask us for a new one — your case and "
                "everything in it is kept.",
            )
        except LinkInvalid:
            return render(
                "portal_gone.html",
                status=401,
                referrer="no-referrer",
                reason="This case link is not valid. Check that you copied all of it.",
            )
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
        token: str,
        grant: PortalGrant,
        *,
        error: str | None = None,
        form: dict[str, str] | None = None,
        counter: str = "",
        edit: str = "",
        copy: str = "",
        message: str = "",
        status: int = 200,
    ) -> Response:
        n = services.negotiation
        state = n.state(grant.case_id)
        view = case_view(state, n.cases.timeline(grant.case_id, limit=200))
        zone = zone_of(services)
        now = n.now()
        owner = services.ownership.owner(grant.case_id)
        direct_line = None
        with services.node.db.read() as conn:
            ref = conn.execute(
                case_refs.select().where(case_refs.c.case_id == grant.case_id)
            ).first()
        mailbox = services.mail.mailboxes.default() if ref else None
        if ref is not None and mailbox is not None:
            direct_line = mailbox.direct_line(ref.token)
        todo: dict[str, list[dict[str, Any]]] = {}
        for aid, activity in state["terms"]["activities"].items():
            progress = state["progress"].get(aid, {}).get("state")
            if progress in ("agreed", "in_progress"):
                todo.setdefault(activity["owner"], []).append({"id": aid, **activity})
        proposals = [
            {
                "id": pid,
                "by": party_name(state["parties"], p["by"]),
                "time": p["time"],
                "note": p.get("note"),
                "changes": [change_words(c, state["parties"], zone) for c in p["changes"]],
                "mine_to_accept": grant.party_id not in p["accepted_by"],
                "mine": p["by"] == grant.party_id,
                "topics": proposal_topics(p, state),
            }
            for pid, p in view["open_proposals"].items()
        ]
        countered = view["open_proposals"].get(counter) if counter else None
        copied = view["crossed_proposals"].get(copy) if copy else None
        return render(
            "portal.html",
            status=status,
            referrer="no-referrer",
            token=token,
            case=view,
            state=state,
            me=grant.party_id,
            ours_party=services.party_id if services.party_id in state["parties"] else None,
            accepted=acceptances(n, grant.case_id, state),
            zone=zone,
            now=now,
            when=when,
            describe=describe,
            party_name=party_name,
            change_words=change_words,
            swimlane=swimlane.render(state, now, zone),
            owner=owner,
            direct_line=direct_line,
            todo=todo,
            proposals=proposals,
            crossed=crossed_list(view, state, grant.party_id, zone),
            topics=topic_list(state),
            message=message,
            timeline=list(reversed(view["timeline"])),
            error=error,
            form=form or (edit_item(state, edit) if edit else prefill(countered or copied, zone)),
            base=f"/portal/{token}",
            counter=counter if countered else "",
            activities=list(state["terms"]["activities"].items()),
            satisfied=grant.party_id in state["satisfied"],
        )

    def act(
        request: Request,
        token: str,
        anchor: str,
        work: Callable[[Actor, PortalGrant], Any],
        form: dict[str, str] | None = None,
        message: str = "",
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
                token,
                grant,
                error=exc.message,
                form=form,
                counter=(form or {}).get("counter_of", ""),
                message=message,
                status=400 if isinstance(exc, FormError) else exc.status,
            )
        return RedirectResponse(f"/portal/{token}#{anchor}", status_code=303)

    @router.get("/portal/{token}")
    def show(
        request: Request, token: str, counter: str = "", edit: str = "", copy: str = ""
    ) -> Response:
        grant = grant_of(token, request)
        if isinstance(grant, Response):
            return grant
        return page(token, grant, counter=counter[:71], edit=edit[:64], copy=copy[:71])

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

    @router.post("/portal/{token}/files")
    async def add_file(
        request: Request,
        token: str,
        upload: UploadFile = File(...),
        label: str = Form("", max_length=200),
    ) -> Response:
        data = await upload.read(MAX_UPLOAD + 1)
        name = (upload.filename or "file").replace("\\", "/").rsplit("/", 1)[-1][:200] or "file"

        def work(actor: Actor, grant: PortalGrant) -> None:
            if not data:
                raise FormError("upload", "the file is empty")
            if len(data) > MAX_UPLOAD:
                raise FormError(
                    "upload", f"the file is larger than {MAX_UPLOAD // (1024 * 1024)} MB"
                )
            try:
                sha = blobs.put(data)
            except StorageFull as exc:
                raise FormError("upload", "we cannot store files right now; try later") from exc
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
    def accept(request: Request, token: str, proposal_id: str) -> Response:
        return act(
            request,
            token,
            "agreement",
            lambda actor, g: services.negotiation.accept(actor, g.case_id, proposal_id),
        )

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
