"""Each platform: documented webhooks in (signed, or refused when forged, stale or
malformed; a duplicate stored once), replies out through a loopback stand-in of the
platform's API that checks method, path, headers, auth and body."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qsl

import orjson
import sqlalchemy as sa

from accord.channels.connectors.twilio import signature
from accord.store.tables import channel_messages

from .conftest import Desk, StandIn, fixture

APP_SECRET = "meta-app-secret"


def _ts(desk: Desk, **ago: float) -> str:
    from datetime import timedelta

    return str(int((desk.clock.at - timedelta(**ago)).timestamp()))


def _account(desk: Desk, stand_in: StandIn, platform: str, **extra: Any) -> int:
    settings: dict[str, str] = {"api_base": stand_in.url}
    secrets: dict[str, str] = {}
    if platform in ("whatsapp", "messenger"):
        settings |= (
            {"phone_number_id": "106540352242922"}
            if platform == "whatsapp"
            else {"page_id": "110000000000001"}
        )
        secrets = {"app_secret": APP_SECRET, "verify_token": "vt-1", "access_token": "EAAG-token"}
    elif platform == "telegram":
        secrets = {"bot_token": "123:ABC", "secret_token": "tg-secret"}
    elif platform == "sms":
        settings |= {
            "account_sid": "AC0123456789abcdef0123456789abcdef",
            "from_number": "+447700900999",
        }
        secrets = {"auth_token": "twilio-auth"}
    elif platform == "x":
        settings |= {"user_id": "4337869213"}
        secrets = {"consumer_secret": "x-consumer", "user_token": "x-user-token"}
    made = desk.client.post(
        "/api/v1/channels",
        json={
            "platform": platform,
            "name": f"{platform} {len(extra)}",
            "settings": settings,
            "secrets": secrets,
        },
        headers=desk.admin,
    )
    assert made.status_code == 201, made.text
    assert "EAAG-token" not in made.text and "twilio-auth" not in made.text  # write-only
    return int(made.json()["id"])


def _meta_post(desk: Desk, account: int, body: bytes, secret: str = APP_SECRET) -> Any:
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return desk.client.post(
        f"/hooks/{account}",
        content=body,
        headers={"X-Hub-Signature-256": sig, "Content-Type": "application/json"},
    )


def _stored(desk: Desk, channel: str) -> list[Any]:
    with desk.node.db.read() as conn:
        return conn.execute(
            sa.select(channel_messages).where(
                channel_messages.c.channel == channel, channel_messages.c.direction == "in"
            )
        ).all()


def test_whatsapp_in_and_out(desk: Desk, stand_in: StandIn) -> None:
    account = _account(desk, stand_in, "whatsapp")
    # Meta's subscription check.
    ok = desk.client.get(
        f"/hooks/{account}",
        params={"hub.mode": "subscribe", "hub.verify_token": "vt-1", "hub.challenge": "1158201444"},
    )
    assert ok.status_code == 200 and ok.text == "1158201444"
    wrong = desk.client.get(
        f"/hooks/{account}",
        params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
    )
    assert wrong.status_code == 403
    body = fixture("whatsapp-text.json", ts=_ts(desk, minutes=1))
    assert _meta_post(desk, account, body).status_code == 200
    assert _meta_post(desk, account, body).status_code == 200  # Meta retried: stored once
    (row,) = _stored(desk, "whatsapp")
    assert row.sender == "+447700900123" and row.status == "stored"
    assert _meta_post(desk, account, body, secret="forged").status_code == 401
    assert _meta_post(desk, account, b'{"object":"whatsapp_business_account"}').status_code == 400
    stale = fixture("whatsapp-text.json", ts=_ts(desk, days=8)).replace(b"wamid.HB", b"wamid.OLD")
    assert _meta_post(desk, account, stale).status_code == 400
    assert len(_stored(desk, "whatsapp")) == 1

    # The reply goes back on WhatsApp, exactly as the Cloud API documents.
    stand_in.answer(
        "/v21.0/106540352242922/messages",
        200,
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": "447700900123", "wa_id": "447700900123"}],
            "messages": [{"id": "wamid.OUT1"}],
        },
    )
    replied = desk.client.post(
        f"/api/v1/cases/{row.case_id}/reply", json={"text": "Rebooked for 5 Dec."}, headers=desk.tom
    )
    assert replied.status_code == 200, replied.text
    assert replied.json()["channel"] == "whatsapp"
    desk.run_jobs()
    sent = stand_in.seen[-1]
    assert (sent.method, sent.path) == ("POST", "/v21.0/106540352242922/messages")
    assert sent.headers["authorization"] == "Bearer EAAG-token"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "447700900123",
        "type": "text",
        "text": {"preview_url": False, "body": "Rebooked for 5 Dec."},
    }
    # A delivery receipt marks our message.
    status = fixture("whatsapp-status.json", ts=_ts(desk), wamid="wamid.OUT1")
    assert _meta_post(desk, account, status).status_code == 200
    with desk.node.db.read() as conn:
        out = conn.execute(
            sa.select(channel_messages.c.status).where(channel_messages.c.direction == "out")
        ).scalar_one()
    assert out == "delivered"
    # After 24 hours, free text is refused with the way forward; a template goes.
    desk.clock.advance(hours=25)
    late = desk.client.post(
        f"/api/v1/cases/{row.case_id}/reply", json={"text": "Still there?"}, headers=desk.tom
    )
    assert late.status_code == 409 and "template" in late.json()["message"]
    templated = desk.client.post(
        f"/api/v1/cases/{row.case_id}/reply",
        json={"template": "case_update"},
        headers=desk.tom,
    )
    assert templated.status_code == 200
    desk.run_jobs()
    assert stand_in.seen[-1].json()["template"] == {
        "name": "case_update",
        "language": {"code": "en_US"},
    }


def test_whatsapp_media_is_stored_like_an_attachment(desk: Desk, stand_in: StandIn) -> None:
    account = _account(desk, stand_in, "whatsapp")
    picture = b"\xff\xd8\xff\xe0 a jpeg"
    stand_in.answer(
        "/v21.0/1003383421387256",
        200,
        {
            "url": f"{stand_in.url}/media/1003383421387256",
            "mime_type": "image/jpeg",
            "file_size": len(picture),
            "id": "1003383421387256",
        },
    )
    stand_in.answer("/media/1003383421387256", 200, picture, {"Content-Type": "image/jpeg"})
    assert (
        _meta_post(desk, account, fixture("whatsapp-image.json", ts=_ts(desk))).status_code == 200
    )
    (row,) = _stored(desk, "whatsapp")
    events = [e for e in desk.node.cases.events(row.case_id) if e.type == "message.posted"]
    attachment = events[0].body["attachments"][0]
    assert attachment["sha256"] == hashlib.sha256(picture).hexdigest()
    assert events[0].body["text"] == "The router lights"
    assert all(s.headers.get("authorization") == "Bearer EAAG-token" for s in stand_in.seen)


def test_messenger(desk: Desk, stand_in: StandIn) -> None:
    account = _account(desk, stand_in, "messenger")
    body = fixture("messenger-text.json", ts=_ts(desk))
    assert _meta_post(desk, account, body, secret="forged").status_code == 401
    assert _meta_post(desk, account, body).status_code == 200
    (row,) = _stored(desk, "messenger")
    stand_in.answer(
        "/v21.0/me/messages", 200, {"recipient_id": "7654321098765432", "message_id": "m_out"}
    )
    desk.client.post(
        f"/api/v1/cases/{row.case_id}/reply", json={"text": "On its way."}, headers=desk.tom
    )
    desk.run_jobs()
    sent = stand_in.seen[-1]
    assert (sent.method, sent.path) == ("POST", "/v21.0/me/messages")
    assert sent.headers["authorization"] == "Bearer EAAG-token"
    assert sent.json() == {
        "recipient": {"id": "7654321098765432"},
        "messaging_type": "RESPONSE",
        "message": {"text": "On its way."},
    }


def test_telegram(desk: Desk, stand_in: StandIn) -> None:
    account = _account(desk, stand_in, "telegram")
    body = fixture("telegram-text.json", ts=_ts(desk))
    forged = desk.client.post(
        f"/hooks/{account}", content=body, headers={"X-Telegram-Bot-Api-Secret-Token": "guess"}
    )
    assert forged.status_code == 401
    missing = desk.client.post(f"/hooks/{account}", content=body)
    assert missing.status_code == 401
    good = {"X-Telegram-Bot-Api-Secret-Token": "tg-secret"}
    assert desk.client.post(f"/hooks/{account}", content=body, headers=good).status_code == 200
    assert desk.client.post(f"/hooks/{account}", content=b"{}", headers=good).status_code == 400
    (row,) = _stored(desk, "telegram")
    assert row.sender == "901234567"
    stand_in.answer("/bot123:ABC/sendMessage", 200, {"ok": True, "result": {"message_id": 53}})
    desk.client.post(
        f"/api/v1/cases/{row.case_id}/reply", json={"text": "No outage."}, headers=desk.tom
    )
    desk.run_jobs()
    sent = stand_in.seen[-1]
    assert (sent.method, sent.path) == ("POST", "/bot123:ABC/sendMessage")
    assert sent.json() == {"chat_id": 901234567, "text": "No outage."}


def test_twilio_sms(desk: Desk, stand_in: StandIn) -> None:
    account = _account(desk, stand_in, "sms")
    body = fixture("twilio-sms.txt")
    url = f"https://support.northwind.example/hooks/{account}"
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    good = signature("twilio-auth", url, params)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    forged = desk.client.post(
        f"/hooks/{account}", content=body, headers={**headers, "X-Twilio-Signature": "bm9wZQ=="}
    )
    assert forged.status_code == 403
    answered = desk.client.post(
        f"/hooks/{account}", content=body, headers={**headers, "X-Twilio-Signature": good}
    )
    assert answered.status_code == 200 and answered.text == "<Response/>"
    (row,) = _stored(desk, "sms")
    assert row.sender == "+447700900123"
    stand_in.answer(
        "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
        201,
        {"sid": "SMout1", "status": "queued"},
    )
    desk.client.post(
        f"/api/v1/cases/{row.case_id}/reply", json={"text": "Calling at 3."}, headers=desk.tom
    )
    desk.run_jobs()
    sent = stand_in.seen[-1]
    assert (sent.method, sent.path) == (
        "POST",
        "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
    )
    expected_auth = base64.b64encode(b"AC0123456789abcdef0123456789abcdef:twilio-auth").decode()
    assert sent.headers["authorization"] == f"Basic {expected_auth}"
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(sent.body.decode())) == {
        "To": "+447700900123",
        "From": "+447700900999",
        "Body": "Calling at 3.",
    }
    status = fixture("twilio-status.txt")
    sig = signature("twilio-auth", url, dict(parse_qsl(status.decode(), keep_blank_values=True)))
    assert (
        desk.client.post(
            f"/hooks/{account}", content=status, headers={**headers, "X-Twilio-Signature": sig}
        ).status_code
        == 200
    )
    with desk.node.db.read() as conn:
        out = conn.execute(
            sa.select(channel_messages.c.status).where(channel_messages.c.direction == "out")
        ).scalar_one()
    assert out == "delivered"


def test_x_crc_dm_and_a_public_mention(desk: Desk, stand_in: StandIn) -> None:
    account = _account(desk, stand_in, "x")
    crc = desk.client.get(f"/hooks/{account}", params={"crc_token": "challenge-123"})
    expected = base64.b64encode(
        hmac.new(b"x-consumer", b"challenge-123", hashlib.sha256).digest()
    ).decode()
    assert crc.json() == {"response_token": f"sha256={expected}"}

    def post(body: bytes, secret: str = "x-consumer") -> Any:
        sig = (
            "sha256="
            + base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        )
        return desk.client.post(
            f"/hooks/{account}", content=body, headers={"x-twitter-webhooks-signature": sig}
        )

    mention = fixture("x-mention.json", ts=_ts(desk))
    assert post(mention, secret="forged").status_code == 401
    assert post(mention).status_code == 200
    (public,) = _stored(desk, "x")
    assert public.kind == "public"
    # Answered in public, then moved to a private conversation on the same case.
    stand_in.answer("/2/tweets", 201, {"data": {"id": "1995000000000000002", "text": "…"}})
    stand_in.answer(
        "/2/dm_conversations/with/3001969357/messages",
        201,
        {"data": {"dm_conversation_id": "c1", "dm_event_id": "dm1"}},
    )
    desk.client.post(
        f"/api/v1/cases/{public.case_id}/reply",
        json={"text": "We're on it: Tom will message you."},
        headers=desk.tom,
    )
    desk.run_jobs()
    tweet = stand_in.seen[-1]
    assert (tweet.method, tweet.path) == ("POST", "/2/tweets")
    assert tweet.headers["authorization"] == "Bearer x-user-token"
    assert tweet.json() == {
        "text": "We're on it: Tom will message you.",
        "reply": {"in_reply_to_tweet_id": "1995000000000000001"},
    }
    desk.client.post(
        f"/api/v1/cases/{public.case_id}/reply",
        json={"text": "Hi Priya, your refund is on its way.", "private": True},
        headers=desk.tom,
    )
    desk.run_jobs()
    dm = stand_in.seen[-1]
    assert (dm.method, dm.path) == ("POST", "/2/dm_conversations/with/3001969357/messages")
    assert dm.json() == {"text": "Hi Priya, your refund is on its way."}
    # Her DM joins the same case: one conversation, public and private.
    assert post(fixture("x-dm.json", ts=_ts(desk))).status_code == 200
    cases = {r.case_id for r in _stored(desk, "x")}
    assert cases == {public.case_id}


def test_a_platform_that_fails_is_retried_then_the_refusal_is_kept(
    desk: Desk, stand_in: StandIn
) -> None:
    account = _account(desk, stand_in, "telegram")
    good = {"X-Telegram-Bot-Api-Secret-Token": "tg-secret"}
    desk.client.post(
        f"/hooks/{account}", content=fixture("telegram-text.json", ts=_ts(desk)), headers=good
    )
    (row,) = _stored(desk, "telegram")
    stand_in.answer("/bot123:ABC/sendMessage", 429, {"ok": False}, {"Retry-After": "7"})
    desk.client.post(f"/api/v1/cases/{row.case_id}/reply", json={"text": "x"}, headers=desk.tom)
    desk.run_jobs()
    with desk.node.db.read() as conn:
        out = conn.execute(
            sa.select(channel_messages).where(channel_messages.c.direction == "out")
        ).one()
    assert out.status == "queued" and "429" in out.error
    desk.clock.advance(seconds=8)
    stand_in.answer(
        "/bot123:ABC/sendMessage", 400, {"ok": False, "description": "Bad Request: chat not found"}
    )
    desk.run_jobs()
    with desk.node.db.read() as conn:
        out = conn.execute(
            sa.select(channel_messages).where(channel_messages.c.direction == "out")
        ).one()
    assert out.status == "failed" and "chat not found" in out.error
    assert orjson.loads(out.recipients) == ["901234567"]
