"""Signed events for store tests, built by hand so that branches can be concurrent."""

from __future__ import annotations

from typing import Any

from accord.core.crypto import NodeKey
from accord.core.events import Event, create_event

SUPPLIER = NodeKey(b"store-test-supplier".ljust(32, b"\0"))
CUSTOMER = NodeKey(b"store-test-customer".ljust(32, b"\0"))
T = "2026-11-23T09:00:00Z"


def opening(title: str = "Broadband contract") -> Event:
    return create_event(
        SUPPLIER,
        case=None,
        type="case.opened",
        member="Tom Baker",
        seq=1,
        prev=None,
        parents=[],
        depth=1,
        time=T,
        body={
            "title": title,
            "nonce": title,
            "parties": [
                {
                    "id": "northwind",
                    "name": "Northwind",
                    "kind": "organisation",
                    "node": SUPPLIER.public,
                },
                {
                    "id": "contoso",
                    "name": "Contoso",
                    "kind": "organisation",
                    "node": CUSTOMER.public,
                },
            ],
        },
    )


def after(
    key: NodeKey,
    parents: list[Event],
    prev: Event | None,
    type: str,
    body: dict[str, Any],
    *,
    seq: int | None = None,
) -> Event:
    return create_event(
        key,
        case=parents[0].case,
        type=type,
        member="member",
        time=T,
        seq=seq if seq is not None else (prev.seq + 1 if prev else 1),
        prev=prev.id if prev else None,
        parents=[p.id for p in parents],
        depth=1 + max(p.depth for p in parents),
        body=body,
    )


def message(key: NodeKey, parents: list[Event], prev: Event | None, text: str) -> Event:
    return after(key, parents, prev, "message.posted", {"text": text})


def negotiated_case() -> list[Event]:
    """Two parties talking on concurrent branches, a proposal and its acceptance."""
    g = opening()
    s1 = message(SUPPLIER, [g], g, "We can offer a new price.")
    c1 = message(CUSTOMER, [g], None, "My contract term is over.")  # concurrent with s1
    p = after(
        SUPPLIER,
        [c1, s1],
        s1,
        "proposal.made",
        {
            "base": 0,
            "changes": [
                {
                    "op": "data.put",
                    "key": "price",
                    "value": {
                        "type": "money",
                        "amount": "20.00",
                        "currency": "GBP",
                        "per": "month",
                    },
                },
                {
                    "op": "activity.put",
                    "activity": "switch",
                    "title": "Switch tariff",
                    "owner": "northwind",
                    "kind": "task",
                    "due": "2026-12-01T00:00:00Z",
                },
            ],
        },
    )
    c2 = message(CUSTOMER, [c1], c1, "Still waiting…")  # concurrent with p
    a = after(CUSTOMER, [c2, p], c2, "proposal.accepted", {"proposal": p.id})
    s2 = after(SUPPLIER, [a], p, "activity.updated", {"activity": "switch", "state": "done"})
    st = after(CUSTOMER, [s2], a, "status.set", {"label": "waiting"})
    return [g, s1, c1, p, c2, a, s2, st]
