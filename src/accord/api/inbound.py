"""``POST /api/v1/inbound/{channel}``: messages from any other system, into the same
inbound pipeline as mail and chat — customer found or made by identity, threaded onto the
open case, held when a stranger writes on someone's case.

Retries are safe: the ``Idempotency-Key`` header (or ``external_id``) names the message;
the same key with the same body returns the first receipt (``duplicate``), the same key
with a different body is a ``409`` — a key is never reused for another message. The intake
decides it in the transaction that stores the message, and a unique index on the key
(``channel_messages.idempotency_key``) settles two requests that carry it at once. Needs the
``inbound:write`` scope (a token for the integration, and nothing else).
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path
from pydantic import Field

from accord.api.auth import Principal, require
from accord.api.models import Body
from accord.api.responses import ReceiptOut
from accord.channels.intake import Inbound, Intake, KeyReused
from accord.channels.refs import subject_number
from accord.customers.records import identity_value
from accord.service.errors import Conflict, Invalid

PLATFORMS = {"whatsapp", "messenger", "instagram", "telegram", "sms", "x", "phone"}
"""Channels whose name the case log knows; any other system's messages are ``via: api``."""
KEY = re.compile(r"[\x21-\x7e]{1,200}")


class SenderIn(Body):
    kind: str = Field(max_length=20, examples=["email"], description="Identity kind.")
    value: str = Field(min_length=1, max_length=320, examples=["priya@example.com"])
    name: str = Field("", max_length=200)


class InboundIn(Body):
    sender: SenderIn = Field(description="Who wrote it: an identity and a name.")
    text: str = Field(min_length=1, max_length=100_000)
    subject: str = Field("", max_length=1000)
    external_id: str | None = Field(
        None, max_length=200, description="The system's id (default: the Idempotency-Key)."
    )
    thread: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list,
        max_length=50,
        description="Ids of earlier messages this one answers (threads onto their case).",
    )
    case_ref: str | None = Field(
        None, max_length=40, description="A case's direct-line token, to write to that case."
    )


def inbound_routes(intake: Intake) -> APIRouter:
    router = APIRouter()
    writer = require("inbound:write")

    @router.post(
        "/inbound/{channel}",
        summary="Hand in a message from another system",
        response_model=ReceiptOut,
    )
    def receive(
        body: InboundIn,
        channel: Annotated[str, Path(pattern=r"^[a-z][a-z0-9-]{1,30}$")],
        _who: Principal = Depends(writer),
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Any:
        if channel == "email":
            raise Invalid("mail goes to /api/v1/mail/inbound (raw RFC 5322)", field="channel")
        key = idempotency_key or body.external_id
        if not key or not KEY.fullmatch(key):
            raise Invalid(
                "give an Idempotency-Key header (or external_id): printable, 1 to 200 characters",
                field="Idempotency-Key",
            )
        value = identity_value(body.sender.kind, body.sender.value)
        via = channel if channel in PLATFORMS else "api"
        content = hashlib.sha256(orjson.dumps(body.model_dump())).hexdigest()
        message = Inbound(
            channel=via,
            external_id=f"{channel}:{key}",
            content_hash=content,
            identity_kind=body.sender.kind,
            identity=value,
            sender_name=" ".join(body.sender.name.split()),
            subject=" ".join(body.subject.split()),
            text=body.text,
            thread_ids=tuple(f"{channel}:{t}" for t in body.thread),
            direct_token=body.case_ref,
            subject_number=subject_number(body.subject),
            size=len(body.text.encode()),
            flags=(f"system:{channel}",),
            idempotency_key=f"{channel}:{key}",
        )
        try:
            receipt = intake.receive(message)
        except KeyReused as exc:
            raise Conflict(
                f"Idempotency-Key {key!r} was used for a different message", field="Idempotency-Key"
            ) from exc
        return {
            "status": receipt.status,
            "message": receipt.row_id,
            "case": receipt.case_id,
            "customer": receipt.customer_id,
            "new_case": receipt.new_case,
            "threaded_by": receipt.threaded_by,
            "reason": receipt.reason,
        }

    return router
