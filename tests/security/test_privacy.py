"""Privacy: erasure removes the customer's identifiers everywhere they were stored, the
platforms' message ids included, and cancels what was still queued for them
(docs/privacy.md, docs/security.md, issue 22 row 15)."""

from __future__ import annotations

import base64
import contextlib
import logging

import pytest
import sqlalchemy as sa

from accord.channels.blobs import node_blobs
from accord.privacy import Privacy
from accord.store.tables import channel_messages
from tests.channels.connectors.conftest import Desk, StandIn, fixture
from tests.channels.connectors.test_platforms import _account, _meta_post, _ts

TELEGRAM_USER = "901234567"
PHONE = "447700900123"
# WhatsApp's message ids are base64 of a small record that holds the sender's number
WAMID = (
    "wamid."
    + base64.b64encode(
        b"\x15\x02\x00\x18\x0c"
        + PHONE.encode()
        + b"\x15\x02\x00\x12\x18\x143A4A6599AEE03810144F\x00"
    ).decode()
)


def _rows(desk: Desk) -> list[dict[str, object]]:
    with desk.node.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(channel_messages)).all()]


def _leaks(desk: Desk, *secrets: str) -> list[str]:
    """Every stored value of channel_messages that still gives a secret away, decoded
    from base64 too."""
    found = []
    for row in _rows(desk):
        for column, value in row.items():
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            decoded = ""
            for part in text.replace(".", " ").replace(":", " ").split():
                with contextlib.suppress(ValueError):
                    decoded += base64.b64decode(part + "=" * (-len(part) % 4)).decode("latin-1")
            found += [f"{column}={text!r}" for s in secrets if s in text or s in decoded]
    return found


def test_erasure_leaves_no_identifier_in_message_ids_and_cancels_queued_replies(
    desk: Desk, stand_in: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    telegram = _account(desk, stand_in, "telegram")
    body = fixture("telegram-text.json", ts=_ts(desk))
    good = {"X-Telegram-Bot-Api-Secret-Token": "tg-secret"}
    assert desk.client.post(f"/hooks/{telegram}", content=body, headers=good).status_code == 200
    whatsapp = _account(desk, stand_in, "whatsapp")
    text = fixture("whatsapp-text.json", ts=_ts(desk)).decode()
    text = text.replace("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", WAMID)
    assert WAMID in text
    assert _meta_post(desk, whatsapp, text.encode()).status_code == 200
    visitor = desk.services.webchat.hello(None).visitor
    desk.services.webchat.post(visitor, "Is there an outage?", client_id="m1")
    rows = _rows(desk)
    assert len(rows) == 3
    # a reply to the Telegram customer is queued, not yet sent
    telegram_row = next(r for r in rows if r["channel"] == "telegram")
    replied = desk.client.post(
        f"/api/v1/cases/{telegram_row['case_id']}/reply", json={"text": "Hi."}, headers=desk.tom
    )
    assert replied.status_code < 300, replied.text
    assert _leaks(desk, TELEGRAM_USER, PHONE, visitor)  # the replay: they are all there

    privacy = Privacy(desk.node, node_blobs(desk.node.data_dir))
    for customer in {r["customer_id"] for r in _rows(desk) if r["customer_id"]}:
        privacy.erase(int(customer), by="test")  # type: ignore[call-overload]
    assert _leaks(desk, TELEGRAM_USER, PHONE, visitor) == []

    # the queued reply is cancelled cleanly, never sent, never retried
    with caplog.at_level(logging.ERROR):
        desk.run_jobs()
        desk.run_jobs()
    assert not any("JSONDecodeError" in r.getMessage() for r in caplog.records)
    (out,) = [r for r in _rows(desk) if r["direction"] == "out"]
    assert out["status"] == "cancelled" and "erased" in str(out["error"])
    assert not any(s.path.endswith("/sendMessage") for s in stand_in.seen)
