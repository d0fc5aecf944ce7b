"""Endpoints of the email channel: mailboxes, replies by email, the message log (inbound,
held, outbox), releasing held mail, retrying failed mail, and raw mail handed in by an
MTA. Mailboxes need ``channels:admin``; a member's reply ``cases:write``; handing in raw
mail ``inbound:write`` (a token for the MTA that pipes mail to Accord, and nothing else).
Passwords are accepted, never returned."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import Field

from accord.api.auth import Principal, require
from accord.api.models import Body
from accord.api.responses import (
    RFC822,
    ChannelMessage,
    ChannelMessages,
    Mailboxes,
    MailboxOut,
    MailReplyOut,
    ReceiptOut,
)
from accord.channels.email.mailboxes import (
    DEFAULT_MAX_ATTACHMENT,
    DEFAULT_MAX_MESSAGE,
    Mailbox,
    Server,
)
from accord.channels.email.mailchannel import MailChannel
from accord.channels.intake import Receipt, message_json
from accord.service.errors import Invalid, NotFound
from accord.service.negotiation import Actor
from accord.store.tables import channel_messages

MessageId = Annotated[int, Path(ge=1, le=2**53 - 1)]
MailboxId = Annotated[int, Path(ge=1, le=2**31 - 1)]
MAX_RAW = 96 * 1024 * 1024  # base64 of the largest mail a mailbox may accept


class ServerIn(Body):
    host: str = Field(min_length=1, max_length=255, examples=["smtp.example.com"])
    port: int = Field(ge=1, le=65535, examples=[587])
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str = Field("", max_length=320)
    password: str = Field("", max_length=1024, description="Write-only: never returned.")
    allow_plaintext: bool = Field(
        False,
        description="Allow a password with security none to a host other than this machine "
        "(it then crosses the network in clear); refused otherwise.",
    )


class MailboxIn(Body):
    address: str = Field(min_length=3, max_length=254, examples=["support@example.com"])
    display_name: str = Field(min_length=1, max_length=200, examples=["Northwind Support"])
    smtp: ServerIn | None = Field(None, description="The relay Accord sends through.")
    imap: ServerIn | None = Field(None, description="An account to poll for inbound mail.")
    imap_folder: str = Field("INBOX", min_length=1, max_length=200)
    poll_seconds: int = Field(60, ge=5, le=86_400)
    max_attachment_bytes: int = Field(DEFAULT_MAX_ATTACHMENT, ge=1024, le=1024**3)
    max_message_bytes: int = Field(DEFAULT_MAX_MESSAGE, ge=1024, le=1024**3)
    reply_all: bool = Field(
        True, description="Replies copy (Cc) the others the customer's last mail went to."
    )


class MailboxChange(Body):
    display_name: str | None = Field(None, min_length=1, max_length=200)
    smtp: ServerIn | None = None
    imap: ServerIn | None = None
    imap_folder: str | None = Field(None, min_length=1, max_length=200)
    poll_seconds: int | None = Field(None, ge=5, le=86_400)
    max_attachment_bytes: int | None = Field(None, ge=1024, le=1024**3)
    max_message_bytes: int | None = Field(None, ge=1024, le=1024**3)
    active: bool | None = None
    reply_all: bool | None = None


class ReplyIn(Body):
    text: str = Field(min_length=1, max_length=100_000)
    html: str | None = Field(None, max_length=1_000_000, description="An HTML alternative.")


class ReleaseIn(Body):
    link: bool = Field(
        True,
        description="Also add the sender's address to the case's customer, so their next "
        "mail goes straight in.",
    )


class InboundMailIn(Body):
    raw: str = Field(
        min_length=1, max_length=MAX_RAW, description="The whole message (RFC 5322), base64."
    )
    recipients: list[Annotated[str, Field(max_length=320)]] = Field(
        default_factory=list, max_length=100, description="The envelope recipients (RCPT TO)."
    )


def _server(given: ServerIn | None) -> Server | None:
    return None if given is None else Server(**given.model_dump())


def _receipt_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "status": receipt.status,
        "message": receipt.row_id,
        "case": receipt.case_id,
        "customer": receipt.customer_id,
        "new_case": receipt.new_case,
        "threaded_by": receipt.threaded_by,
        "reason": receipt.reason,
    }


def mail_routes(mail: MailChannel) -> tuple[APIRouter, APIRouter]:
    """(routes under /api/v1/cases/{case_id}, routes under /api/v1)."""
    case = APIRouter()
    top = APIRouter()
    reader, writer = require("cases:read"), require("cases:write")
    admin, inbound = require("channels:admin"), require("inbound:write")

    @case.get(
        "/mail",
        summary="The case's email messages in and out, with their status",
        response_model=ChannelMessages,
    )
    def case_mail(case_id: str, _who: Principal = Depends(reader)) -> Any:
        mail.negotiation.state(case_id)  # 404 for an unknown case
        return {"messages": mail.log(case_id=case_id, limit=None, oldest_first=True)}

    @case.post(
        "/mail",
        status_code=201,
        summary="Reply to the customer by email: written in the case and queued, in one commit",
        response_model=MailReplyOut,
    )
    def reply(case_id: str, body: ReplyIn, who: Principal = Depends(writer)) -> Any:
        actor = Actor(member=who.member.display_name, via="email")
        done = mail.reply(actor, case_id, body.text, html=body.html)
        return {"case": case_id, "events": done.outcome.event_ids, "message": done.message_id}

    @top.get(
        "/mailboxes",
        summary="The mailboxes Accord answers for (never their passwords)",
        response_model=Mailboxes,
    )
    def mailboxes(_who: Principal = Depends(admin)) -> Any:
        return {"mailboxes": [m.to_json() for m in mail.mailboxes.all()]}

    @top.post("/mailboxes", status_code=201, summary="Add a mailbox", response_model=MailboxOut)
    def add_mailbox(body: MailboxIn, _who: Principal = Depends(admin)) -> Any:
        made = mail.mailboxes.add(
            Mailbox(
                id=0,
                address=body.address,
                display_name=body.display_name,
                smtp=_server(body.smtp),
                imap=_server(body.imap),
                imap_folder=body.imap_folder,
                poll_seconds=body.poll_seconds,
                max_attachment_bytes=body.max_attachment_bytes,
                max_message_bytes=body.max_message_bytes,
                reply_all=body.reply_all,
            )
        )
        return made.to_json()

    @top.get("/mailboxes/{mailbox_id}", summary="One mailbox", response_model=MailboxOut)
    def mailbox(mailbox_id: MailboxId, _who: Principal = Depends(admin)) -> Any:
        return mail.mailboxes.get(mailbox_id).to_json()

    @top.patch(
        "/mailboxes/{mailbox_id}",
        summary="Change a mailbox's servers, limits or state",
        response_model=MailboxOut,
    )
    def change_mailbox(
        mailbox_id: MailboxId, body: MailboxChange, _who: Principal = Depends(admin)
    ) -> Any:
        changes = body.model_dump(exclude_unset=True)
        for name in ("smtp", "imap"):
            if name in changes:
                changes[name] = _server(getattr(body, name))
        return mail.mailboxes.update(mailbox_id, **changes).to_json()

    @top.delete(
        "/mailboxes/{mailbox_id}",
        status_code=204,
        summary="Stop using a mailbox (kept, inactive, for its messages' history)",
    )
    def remove_mailbox(mailbox_id: MailboxId, _who: Principal = Depends(admin)) -> None:
        mail.mailboxes.remove(mailbox_id)

    @top.post(
        "/mail/inbound",
        summary="Hand in one raw mail (an MTA pipe): stored, threaded, acknowledged",
        response_model=ReceiptOut,
    )
    def inbound_mail(body: InboundMailIn, _who: Principal = Depends(inbound)) -> Any:
        try:
            raw = base64.b64decode(body.raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Invalid("raw must be the message in base64", field="raw") from exc
        return _receipt_json(mail.receive(raw, recipients=body.recipients))

    @top.get(
        "/mail/messages",
        summary="Email messages, newest first: the outbox, held, failed",
        response_model=ChannelMessages,
    )
    def messages(
        _who: Principal = Depends(reader),
        status: Literal[
            "stored", "held", "ignored", "bounce", "queued", "sent", "failed", "bounced"
        ]
        | None = Query(None),
        direction: Literal["in", "out"] | None = Query(None),
        limit: int = Query(50, ge=1, le=500),
        before: int | None = Query(None, ge=1, le=2**53 - 1),
    ) -> Any:
        return {
            "messages": mail.log(status=status, direction=direction, before=before, limit=limit)
        }

    @top.get(
        "/mail/messages/{message_id}", summary="One email message", response_model=ChannelMessage
    )
    def message(message_id: MessageId, _who: Principal = Depends(reader)) -> Any:
        return message_json(_row(mail, message_id))

    @top.get(
        "/mail/messages/{message_id}/raw",
        summary="The message exactly as received or sent (message/rfc822)",
        response_class=Response,
        responses={200: {"content": {"message/rfc822": {"schema": RFC822}}}},
    )
    def raw(message_id: MessageId, _who: Principal = Depends(reader)) -> Response:
        row = _row(mail, message_id)
        if row.raw_sha256 is None:
            raise NotFound(f"message {message_id} has no stored original")
        # a download, never shown inline: a browser must not render a customer's mail
        # (HTML, scripts) as a page of this site
        return Response(
            mail.blobs.get(row.raw_sha256),
            media_type="message/rfc822",
            headers={
                "Content-Disposition": f'attachment; filename="message-{message_id}.eml"',
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "sandbox; default-src 'none'",
            },
        )

    @top.post(
        "/mail/messages/{message_id}/release",
        summary="Append a held message to its case as the case's customer",
        response_model=ReceiptOut,
    )
    def release(message_id: MessageId, body: ReleaseIn, who: Principal = Depends(writer)) -> Any:
        receipt = mail.intake.release(message_id, link=body.link, by=who.member.display_name)
        return _receipt_json(receipt)

    @top.post(
        "/mail/messages/{message_id}/retry",
        summary="Send a failed or bounced message again (same bytes and Message-ID)",
        response_model=ChannelMessage,
    )
    def retry(message_id: MessageId, _who: Principal = Depends(writer)) -> Any:
        mail.outbox.retry(message_id)
        return message_json(_row(mail, message_id))

    return case, top


def _row(mail: MailChannel, message_id: int) -> Any:
    with mail.db.read() as conn:
        row = conn.execute(
            sa.select(channel_messages).where(
                channel_messages.c.id == message_id, channel_messages.c.channel == "email"
            )
        ).first()
    if row is None:
        raise NotFound(f"no email message {message_id}")
    return row
