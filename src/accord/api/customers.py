"""Endpoints of the single customer view: find a customer, see every identity, case and
message across channels, and link, unlink, merge, unmerge and split records — every
change audited (``/history``) and undoable. Reading needs ``cases:read``, changing
``cases:write``: the members who serve customers keep their records straight."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import Field

from accord.api.auth import Principal, require
from accord.api.models import Body
from accord.api.responses import (
    ZIP,
    CustomerChange,
    CustomerOut,
    CustomerSummary,
    ErasureOut,
    Suggestion,
    TimelineItem,
)
from accord.customers.records import CustomerRecords
from accord.privacy import Privacy

CustomerId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class IdentityIn(Body):
    kind: str = Field(max_length=20, examples=["whatsapp"])
    value: str = Field(min_length=1, max_length=320, examples=["+447700900123"])


class MergeIn(Body):
    other: int = Field(ge=1, le=2**31 - 1, description="The record that joins this one.")


class SplitIn(Body):
    name: str = Field(min_length=1, max_length=200, description="Name of the new customer.")
    identities: list[IdentityIn] = Field(default_factory=list, max_length=100)
    cases: list[str] = Field(default_factory=list, max_length=1000)


def customer_routes(records: CustomerRecords, privacy: Privacy) -> tuple[APIRouter, APIRouter]:
    """(routes under /api/v1/customers, routes under /api/v1)."""
    router, top = APIRouter(), APIRouter()
    reader, writer = require("cases:read"), require("cases:write")
    admin = require("customers:admin")

    @router.get(
        "", summary="Find customers by name or identity", response_model=list[CustomerSummary]
    )
    def search(
        _who: Principal = Depends(reader),
        q: str = Query("", max_length=320, description="Part of a name, address or number."),
        limit: int = Query(50, ge=1, le=500),
    ) -> Any:
        return records.search(q, limit=limit)

    @router.get(
        "/suggestions",
        summary="Records that are probably one person, and why",
        response_model=list[Suggestion],
    )
    def suggestions(
        _who: Principal = Depends(reader), limit: int = Query(100, ge=1, le=1000)
    ) -> Any:
        return records.suggestions(limit=limit)

    @router.get(
        "/{customer_id}",
        summary="A customer: identities and cases, merges followed",
        response_model=CustomerOut,
    )
    def show(customer_id: CustomerId, _who: Principal = Depends(reader)) -> Any:
        return records.view(customer_id)

    @router.get(
        "/{customer_id}/timeline",
        summary="Every message of every case, all channels",
        response_model=list[TimelineItem],
    )
    def timeline(
        customer_id: CustomerId,
        _who: Principal = Depends(reader),
        limit: int = Query(200, ge=1, le=2000),
    ) -> Any:
        return records.timeline(customer_id, limit=limit)

    @router.get(
        "/{customer_id}/history",
        summary="Links, merges and splits of this customer",
        response_model=list[CustomerChange],
    )
    def history(customer_id: CustomerId, _who: Principal = Depends(reader)) -> Any:
        return [c.to_json() for c in records.history(customer_id)]

    @router.post(
        "/{customer_id}/identities",
        summary="Link an identity to the customer",
        response_model=CustomerOut,
    )
    def link(customer_id: CustomerId, body: IdentityIn, who: Principal = Depends(writer)) -> Any:
        return records.link(customer_id, body.kind, body.value, by=who.member.username)

    @router.post(
        "/{customer_id}/identities/remove", summary="Unlink an identity", response_model=CustomerOut
    )
    def unlink(customer_id: CustomerId, body: IdentityIn, who: Principal = Depends(writer)) -> Any:
        return records.unlink(customer_id, body.kind, body.value, by=who.member.username)

    @router.post(
        "/{customer_id}/merge",
        summary="Merge another record into this customer",
        response_model=CustomerOut,
    )
    def merge(customer_id: CustomerId, body: MergeIn, who: Principal = Depends(writer)) -> Any:
        return records.merge(customer_id, body.other, by=who.member.username)

    @router.post(
        "/{customer_id}/unmerge",
        summary="Undo a merge: the record stands alone",
        response_model=CustomerOut,
    )
    def unmerge(customer_id: CustomerId, who: Principal = Depends(writer)) -> Any:
        return records.unmerge(customer_id, by=who.member.username)

    @router.post(
        "/{customer_id}/split",
        status_code=201,
        summary="Move identities and cases to a new record",
        response_model=CustomerOut,
    )
    def split(customer_id: CustomerId, body: SplitIn, who: Principal = Depends(writer)) -> Any:
        return records.split(
            customer_id,
            name=body.name,
            identities=[(i.kind, i.value) for i in body.identities],
            case_ids=body.cases,
            by=who.member.username,
        )

    @router.get(
        "/{customer_id}/export",
        summary="All of the customer's data as a ZIP (a GDPR access request)",
        response_class=Response,
        responses={200: {"content": {"application/zip": {"schema": ZIP}}}},
    )
    def export(customer_id: CustomerId, _who: Principal = Depends(admin)) -> Response:
        data = privacy.export(customer_id)
        return Response(
            data,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="customer-{customer_id}.zip"'},
        )

    @router.post(
        "/{customer_id}/erase",
        summary="Erase the customer's node-private data",
        response_model=ErasureOut,
    )
    def erase(customer_id: CustomerId, who: Principal = Depends(admin)) -> Any:
        return privacy.erase(customer_id, by=who.member.username)

    @top.get(
        "/erasures",
        summary="The record of every erasure (no personal data)",
        response_model=list[ErasureOut],
    )
    def erased(_who: Principal = Depends(admin)) -> Any:
        return privacy.erasures()

    return router, top
