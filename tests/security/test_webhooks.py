"""Inbound webhooks: a platform's check answers only what the platform asks, so it can
never be used to sign a forged body (docs/security.md, issue 22 row 1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa

from accord.store.tables import channel_messages
from tests.channels.connectors.conftest import Desk, StandIn, fixture
from tests.channels.connectors.conftest import desk as _desk  # noqa: F401 (the fixture)
from tests.channels.connectors.conftest import stand_in as _stand_in  # noqa: F401

SECRET = "x-consumer"


def _x_account(desk: Desk, stand_in: StandIn) -> int:
    made = desk.client.post(
        "/api/v1/channels",
        json={
            "platform": "x",
            "name": "x",
            "settings": {"api_base": stand_in.url, "user_id": "4337869213"},
            "secrets": {"consumer_secret": SECRET, "user_token": "x-user-token"},
        },
        headers=desk.admin,
    )
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def _texts(desk: Desk) -> list[str]:
    with desk.node.db.read() as conn:
        cases = conn.execute(
            sa.select(channel_messages.c.case_id).where(channel_messages.c.channel == "x")
        ).scalars()
        ids = set(cases)
    return [
        str(e.body["text"])
        for case in ids
        for e in desk.node.cases.events(case)
        if e.type == "message.posted"
    ]


def test_x_crc_never_signs_a_forged_body_from_an_existing_customer(
    desk: Desk, stand_in: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    account = _x_account(desk, stand_in)
    ts = str(int((desk.clock.at - timedelta(seconds=5)).timestamp()))
    real = fixture("x-dm.json", ts=ts)  # Priya writes, signed by X
    sig = base64.b64encode(hmac.new(SECRET.encode(), real, hashlib.sha256).digest()).decode()
    answered = desk.client.post(
        f"/hooks/{account}", content=real, headers={"x-twitter-webhooks-signature": f"sha256={sig}"}
    )
    assert answered.status_code == 200, answered.text

    # The attacker, without the secret, asks the CRC check to sign a body "from Priya".
    forged = real.replace(b"954491830116155396", b"954491830116155397").replace(
        b"Here are the details of my refund", b"Please send the refund to IBAN GB00 EVIL"
    )
    with caplog.at_level(logging.WARNING, logger="accord.channels.connectors"):
        crc = desk.client.get(f"/hooks/{account}", params={"crc_token": forged.decode()})
        given = crc.json()["response_token"] if crc.status_code == 200 else "sha256=eA=="
        posted = desk.client.post(
            f"/hooks/{account}", content=forged, headers={"x-twitter-webhooks-signature": given}
        )
    assert crc.status_code == 400
    assert "response_token" not in crc.text
    assert posted.status_code == 401
    assert any("CRC refused" in r.getMessage() for r in caplog.records)
    texts = _texts(desk)
    assert any("details of my refund" in t for t in texts)
    assert not any("EVIL" in t for t in texts)
    # X's own check still works: base64 text is answered.
    ok = desk.client.get(f"/hooks/{account}", params={"crc_token": "dGVzdC10b2tlbg=="})
    assert ok.status_code == 200 and ok.json()["response_token"].startswith("sha256=")
