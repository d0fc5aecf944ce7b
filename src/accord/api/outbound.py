"""``GET /api/v1/outbound``: every outgoing message on every channel and its fate —
queued (with its attempts and last error), sent, delivered or read where the platform
reports it, failed with the reason, bounced or cancelled (``accord.channels.outbound``).
Needs ``cases:read``; ``accord outbound`` is the same list on the command line."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from accord.api.auth import Principal, require
from accord.api.responses import Out
from accord.channels.outbound import MAX_LIST, STATUSES, Outbound
from accord.service.errors import NotFound
from accord.store.cases import CaseStore


class OutboundOut(Out):
    """One outgoing message and its fate."""

    id: int
    channel: str = Field(examples=["whatsapp"])
    kind: str = Field(description="reply, public, notice, link, …")
    status: str = Field(examples=list(STATUSES))
    case: str | None
    event: str | None = Field(description="The message.posted event it sends, if any.")
    from_: str = Field(alias="from", description="The mailbox or account it goes from.")
    to: list[str]
    subject: str
    error: str | None = Field(description="Why it failed, or the last attempt's error.")
    attempts: int
    created: str
    done: str | None = Field(description="When it was sent, failed or last reported on.")


def outbound_routes(outbound: Outbound, cases: CaseStore) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/outbound",
        summary="Outgoing messages on every channel, newest first, with their fate",
        response_model=list[OutboundOut],
        response_model_by_alias=True,
    )
    def list_outbound(
        channel: str | None = Query(None, max_length=20, examples=["whatsapp"]),
        status: str | None = Query(None, max_length=16, examples=list(STATUSES)),
        case: str | None = Query(None, max_length=71, description="A case id or its prefix."),
        limit: int = Query(100, ge=1, le=MAX_LIST),
        _who: Principal = Depends(require("cases:read")),
    ) -> Any:
        case_id = cases.find_case(case) if case else None
        if case and case_id is None:
            raise NotFound(f"no case {case!r} (or the prefix names several)", field="case")
        return outbound.list(channel=channel, status=status, case_id=case_id, limit=limit)

    return router
