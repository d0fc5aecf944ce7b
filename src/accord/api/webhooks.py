"""Endpoints for outbound webhooks: subscribe, list, pause, remove, the delivery log,
and redelivery. All need ``members:admin``; letting a webhook reach private addresses
needs the admin role itself."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field

from accord.api.auth import Principal, require
from accord.api.models import Body
from accord.api.responses import Deliveries, DeliveryOut, NewWebhook, WebhookList, WebhookOut
from accord.integrations.webhooks import EVENT_TYPES, Webhooks, standard_secret
from accord.service.errors import Forbidden

MAX_ID = 2**31 - 1
MAX_BIG_ID = 2**53 - 1
EventType = Annotated[str, Field(max_length=32, examples=["message.received"])]
WebhookId = Annotated[int, Path(ge=1, le=MAX_ID)]


class WebhookIn(Body):
    url: str = Field(
        min_length=1, max_length=2048, examples=["https://crm.example.com/hooks/accord"]
    )
    events: list[EventType] = Field(
        min_length=1, max_length=len(EVENT_TYPES), description="The event types to send."
    )
    allow_private: bool = Field(
        False,
        description="Allow private, loopback and link-local addresses (admin role only).",
    )


class WebhookChange(Body):
    active: bool | None = Field(None, description="false pauses it: no new deliveries.")
    events: list[EventType] | None = Field(None, min_length=1, max_length=len(EVENT_TYPES))


def webhook_routes(webhooks: Webhooks) -> APIRouter:
    """The routes under ``/api/v1/webhooks``."""
    router = APIRouter()
    admin = require("members:admin")

    @router.post(
        "",
        status_code=201,
        summary="Subscribe a URL to case events; the answer holds its secret, shown once",
        response_model=NewWebhook,
    )
    def create(body: WebhookIn, who: Principal = Depends(admin)) -> Any:
        if body.allow_private and who.member.role != "admin":
            raise Forbidden("only an admin may let a webhook reach private addresses")
        hook, secret = webhooks.create(
            body.url,
            body.events,
            created_by=who.member.username,
            allow_private=body.allow_private,
        )
        return {**hook.to_json(), "secret": secret, "standard_secret": standard_secret(secret)}

    @router.get(
        "",
        summary="The webhooks and the event types they can subscribe to",
        response_model=WebhookList,
    )
    def list_webhooks(_who: Principal = Depends(admin)) -> Any:
        return {
            "webhooks": [h.to_json() for h in webhooks.all()],
            "event_types": EVENT_TYPES,
        }

    @router.get(
        "/{webhook_id}", summary="One webhook (never its secret)", response_model=WebhookOut
    )
    def get(webhook_id: WebhookId, _who: Principal = Depends(admin)) -> Any:
        return webhooks.get(webhook_id).to_json()

    @router.patch(
        "/{webhook_id}",
        summary="Pause or resume a webhook, or change its events",
        response_model=WebhookOut,
    )
    def change(webhook_id: WebhookId, body: WebhookChange, _who: Principal = Depends(admin)) -> Any:
        return webhooks.update(webhook_id, active=body.active, events=body.events).to_json()

    @router.delete(
        "/{webhook_id}", status_code=204, summary="Remove a webhook and its delivery log"
    )
    def delete(webhook_id: WebhookId, _who: Principal = Depends(admin)) -> None:
        webhooks.delete(webhook_id)

    @router.get(
        "/{webhook_id}/deliveries",
        summary="The delivery log, newest first: each delivery with every attempt's outcome",
        response_model=Deliveries,
    )
    def deliveries(
        webhook_id: WebhookId,
        _who: Principal = Depends(admin),
        status: str | None = Query(None, pattern="^(pending|delivered|failed)$"),
        limit: int = Query(50, ge=1, le=500),
        before: int | None = Query(None, ge=1, le=MAX_BIG_ID, description="Older than this id."),
    ) -> Any:
        found = webhooks.deliveries(webhook_id, status=status, limit=limit, before=before)
        return {"deliveries": [d.to_json() for d in found], "limit": limit}

    @router.post(
        "/deliveries/{delivery_id}/redeliver",
        summary="Send a delivery again now, with the same id and body and a fresh retry schedule",
        response_model=DeliveryOut,
    )
    def redeliver(
        delivery_id: int = Path(ge=1, le=MAX_BIG_ID), _who: Principal = Depends(admin)
    ) -> Any:
        return webhooks.redeliver(delivery_id).to_json()

    return router
