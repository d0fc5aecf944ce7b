"""Endpoints of the messaging platforms: their webhooks (``/hooks/{account_id}``, public
but checked as each platform documents), the accounts (``channels:admin``; secrets are
write-only), and one reply endpoint that answers on the channel the customer last used
(the choice is ``accord.service.replies``, which the case workspace uses too)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import Field

from accord.api.auth import Principal, require
from accord.api.models import Body
from accord.api.responses import AccountOut, AddedAccount, Replied
from accord.channels.connectors import base
from accord.channels.connectors.accounts import Connectors
from accord.channels.email.mailchannel import MailChannel
from accord.service.negotiation import Actor, Negotiation
from accord.service.replies import reply_on_channel

AccountId = Annotated[int, Path(ge=1, le=2**31 - 1)]
MAX_WEBHOOK = 1024 * 1024


class AccountIn(Body):
    platform: Literal[
        "whatsapp", "messenger", "instagram", "telegram", "sms", "whatsapp-twilio", "x"
    ]
    name: str = Field(min_length=1, max_length=100)
    settings: dict[str, str] = Field(default_factory=dict, description="phone_number_id, …")
    secrets: dict[str, str] = Field(description="Write-only: app_secret, access_token, …")


class ReplyIn(Body):
    text: str = Field("", max_length=100_000)
    channel: str | None = Field(
        None, max_length=32, description="email, webchat, whatsapp, sms, … (default: the last used)"
    )
    template: str | None = Field(None, max_length=200, description="A WhatsApp template name.")
    private: bool = Field(False, description="Answer a public post by private message.")


def connector_routes(
    connectors: Connectors, mail: MailChannel, negotiation: Negotiation
) -> tuple[APIRouter, APIRouter, APIRouter]:
    """(webhooks at the root, routes under /api/v1, routes under /api/v1/cases/{case_id})."""
    hooks, top, case = APIRouter(), APIRouter(), APIRouter()
    admin, writer = require("channels:admin"), require("cases:write")

    @hooks.api_route("/hooks/{account_id}", methods=["GET", "POST"], include_in_schema=False)
    async def webhook(account_id: AccountId, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_WEBHOOK:
            return Response("too large", status_code=413)
        incoming = base.Request(
            method=request.method,
            url=str(request.url),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            query=dict(request.query_params),
        )
        from starlette.concurrency import run_in_threadpool

        status, kind, text = await run_in_threadpool(connectors.webhook, account_id, incoming)
        return Response(text, status_code=status, media_type=kind)

    @top.get(
        "/channels",
        summary="Messaging-platform accounts (secrets only as names)",
        response_model=list[AccountOut],
    )
    def accounts(_who: Principal = Depends(admin)) -> Any:
        return [a.to_json() for a in connectors.accounts.all()]

    @top.post(
        "/channels",
        status_code=201,
        summary="Add a messaging-platform account",
        response_model=AddedAccount,
    )
    def add(body: AccountIn, _who: Principal = Depends(admin)) -> Any:
        made = connectors.accounts.add(body.platform, body.name, body.settings, body.secrets)
        return made.to_json() | {"webhook": f"/hooks/{made.id}"}

    @top.delete("/channels/{account_id}", status_code=204, summary="Stop using an account")
    def remove(account_id: AccountId, _who: Principal = Depends(admin)) -> None:
        connectors.accounts.remove(account_id)

    @case.post(
        "/reply",
        summary="Reply to the customer on the channel they last used",
        response_model=Replied,
    )
    def reply(case_id: str, body: ReplyIn, who: Principal = Depends(writer)) -> Any:
        actor = Actor(member=who.member.display_name, via=who.via)
        return reply_on_channel(
            connectors,
            mail,
            negotiation,
            actor,
            case_id,
            body.text,
            channel=body.channel,
            template=body.template,
            private=body.private,
        )

    return hooks, top, case
