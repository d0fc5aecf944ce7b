"""Server-side request forgery: every outbound URL goes through the one guard
(``accord.integrations.ssrf``), with redirects off and credentials only for the address
that was checked (docs/security.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
import sqlalchemy as sa

from accord.channels.connectors.accounts import PLATFORMS
from accord.channels.connectors.twilio import signature
from accord.store.tables import channel_messages
from tests.channels.connectors.conftest import Desk, StandIn
from tests.servers import free_port

SID = "AC0123456789abcdef0123456789abcdef"


@pytest.fixture
def internal() -> Iterator[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """A service on loopback that must never be reached: records every request."""
    seen: list[tuple[str, dict[str, str]]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"secret")

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _twilio(desk: Desk, api_base: str | None) -> int:
    settings = {"account_sid": SID, "from_number": "+447700900999"}
    if api_base:
        settings["api_base"] = api_base
    made = desk.client.post(
        "/api/v1/channels",
        json={
            "platform": "sms",
            "name": "sms",
            "settings": settings,
            "secrets": {"auth_token": "twilio-auth"},
        },
        headers=desk.admin,
    )
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def _mms(desk: Desk, account: int, media_url: str, sid: str = "MM1") -> str:
    """Post a validly signed Twilio MMS naming ``media_url``; the stored message text."""
    params = {
        "MessageSid": sid,
        "AccountSid": SID,
        "From": "+447700900123",
        "To": "+447700900999",
        "Body": "see picture",
        "NumMedia": "1",
        "MediaUrl0": media_url,
        "MediaContentType0": "image/jpeg",
    }
    url = f"https://support.northwind.example/hooks/{account}"
    answered = desk.client.post(
        f"/hooks/{account}",
        content=urlencode(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature("twilio-auth", url, params),
        },
    )
    assert answered.status_code == 200, answered.text
    with desk.node.db.read() as conn:
        row = conn.execute(
            sa.select(channel_messages.c.case_id).where(
                channel_messages.c.external_id == f"sms:{sid}"
            )
        ).one()
    (event,) = [
        e
        for e in desk.node.cases.events(row.case_id)
        if e.type == "message.posted" and e.body["text"].startswith("see picture")
    ][-1:]
    return str(event.body["text"]) + str(event.body.get("attachments", ""))


def test_twilio_media_url_on_loopback_is_refused_and_logged(
    desk: Desk, internal: tuple[str, list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    url, seen = internal
    account = _twilio(desk, None)  # the real api.twilio.com
    with caplog.at_level(logging.WARNING, logger="accord.channels.connectors"):
        text = _mms(desk, account, f"{url}/internal-api/keys")
    assert seen == []  # never connected: no credentials, no request
    assert "media URL refused" in text and "not Twilio's API host" in text
    assert any("media URL refused" in r.getMessage() for r in caplog.records)


def test_twilio_media_redirect_is_checked_again_and_never_sent_credentials(
    desk: Desk,
    stand_in: StandIn,
    internal: tuple[str, list[Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, seen = internal
    account = _twilio(desk, stand_in.url)  # an admin's stand-in for Twilio's API
    media = f"/2010-04-01/Accounts/{SID}/Messages/MM1/Media/ME1"
    stand_in.answer(media, 307, b"", {"Location": f"{url}/latest/meta-data/"})
    with caplog.at_level(logging.WARNING, logger="accord.channels.connectors"):
        text = _mms(desk, account, stand_in.url + media)
    assert seen == []  # the redirect to another loopback service was not followed
    assert "loopback" in text
    assert any("media URL refused" in r.getMessage() for r in caplog.records)
    (first,) = stand_in.seen
    assert first.headers["authorization"].startswith("Basic ")  # to the checked API host

    # Twilio's own redirect (to its media store) is followed, without the credentials
    stand_in.seen.clear()
    other = f"/2010-04-01/Accounts/{SID}/Messages/MM2/Media/ME2"
    stand_in.answer(other, 307, b"", {"Location": "/media-store/ME2?signed=1"})
    stand_in.answer("/media-store/", 200, b"\xff\xd8picture", {"Content-Type": "image/jpeg"})
    text = _mms(desk, account, stand_in.url + other, sid="MM2")
    assert "not fetched" not in text and "sha256" in text
    assert [s.path for s in stand_in.seen] == [other, "/media-store/ME2?signed=1"]
    assert "authorization" in stand_in.seen[0].headers
    assert "authorization" not in stand_in.seen[1].headers


# -- Meta, Telegram and X media go through the same guard (issue 22, row 9's sequel) -------

APP_SECRET = "meta-app-secret"


def _account(desk: Desk, platform: str, settings: dict[str, str], secrets: dict[str, str]) -> int:
    made = desk.client.post(
        "/api/v1/channels",
        json={"platform": platform, "name": platform, "settings": settings, "secrets": secrets},
        headers=desk.admin,
    )
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def _meta(desk: Desk, stand_in: StandIn, platform: str) -> int:
    ids = (
        {"phone_number_id": "106540352242922"}
        if platform == "whatsapp"
        else {"page_id": "110000000000001"}
    )
    return _account(
        desk,
        platform,
        {"api_base": stand_in.url, **ids},
        {"app_secret": APP_SECRET, "verify_token": "vt-1", "access_token": "EAAG-token"},
    )


def _meta_post(desk: Desk, account: int, body: dict[str, Any]) -> None:
    raw = orjson.dumps(body)
    sig = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    answered = desk.client.post(
        f"/hooks/{account}",
        content=raw,
        headers={"X-Hub-Signature-256": sig, "Content-Type": "application/json"},
    )
    assert answered.status_code == 200, answered.text


def _filed(desk: Desk, channel: str, external_id: str) -> str:
    """The texts of the messages filed, with a note in place of the media, in the case of
    the message ``external_id``: it was never lost."""
    with desk.node.db.read() as conn:
        row = conn.execute(
            sa.select(channel_messages.c.case_id, channel_messages.c.status).where(
                channel_messages.c.channel == channel,
                channel_messages.c.external_id.like(f"%{external_id}"),
            )
        ).one()
    assert row.status == "stored" and row.case_id
    posted = [
        e
        for e in desk.node.cases.events(row.case_id)
        if e.type == "message.posted" and "not fetched" in e.body["text"]
    ]
    assert posted and not any(e.body.get("attachments") for e in posted)
    return "\n".join(str(e.body["text"]) for e in posted)


def _ts(desk: Desk) -> int:
    return int(desk.clock.at.timestamp())


def _refusal_logged(caplog: pytest.LogCaptureFixture, platform: str) -> str:
    (line,) = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith(f"{platform} media") and "media URL refused" in r.getMessage()
    ]
    return line


def test_whatsapp_media_url_pointing_inside_is_refused_and_the_message_filed(
    desk: Desk,
    stand_in: StandIn,
    internal: tuple[str, list[Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, seen = internal
    account = _meta(desk, stand_in, "whatsapp")
    # The Graph API (an admin's stand-in) names a media URL on another loopback service.
    stand_in.answer("/v21.0/1003383421387256", 200, {"url": f"{url}/latest/meta-data/"})
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": "106540352242922"},
                            "contacts": [{"profile": {"name": "Priya"}, "wa_id": "447700900123"}],
                            "messages": [
                                {
                                    "from": "447700900123",
                                    "id": "wamid.SSRF1",
                                    "timestamp": str(_ts(desk)),
                                    "type": "image",
                                    "image": {
                                        "caption": "The router lights",
                                        "mime_type": "image/jpeg",
                                        "id": "1003383421387256",
                                    },
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    with caplog.at_level(logging.WARNING, logger="accord.channels.connectors"):
        _meta_post(desk, account, body)
    assert seen == []  # never connected: the access token went nowhere near it
    text = _filed(desk, "whatsapp", "wamid.SSRF1")
    assert text.startswith("The router lights") and "media URL refused" in text
    assert "not a WhatsApp media host" in _refusal_logged(caplog, "whatsapp")


def test_messenger_attachment_url_pointing_inside_is_refused_and_the_message_filed(
    desk: Desk,
    stand_in: StandIn,
    internal: tuple[str, list[Any]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, seen = internal
    account = _meta(desk, stand_in, "messenger")
    # A Meta-looking host that resolves to a private address is refused by the guard too.
    monkeypatch.setattr(PLATFORMS["messenger"], "resolver", lambda host, port: ["10.0.0.7"])

    def message(mid: str, attachment: str) -> dict[str, Any]:
        return {
            "object": "page",
            "entry": [
                {
                    "id": "110000000000001",
                    "time": _ts(desk) * 1000,
                    "messaging": [
                        {
                            "sender": {"id": "7654321098765432"},
                            "recipient": {"id": "110000000000001"},
                            "timestamp": _ts(desk) * 1000,
                            "message": {
                                "mid": mid,
                                "text": "my receipt",
                                "attachments": [{"type": "image", "payload": {"url": attachment}}],
                            },
                        }
                    ],
                }
            ],
        }

    with caplog.at_level(logging.WARNING, logger="accord.channels.connectors"):
        _meta_post(desk, account, message("m_ssrf_1", f"{url}/internal-api/keys"))
        _meta_post(
            desk, account, message("m_ssrf_2", "https://scontent.xx.fbcdn.net/v/t1/receipt.jpg")
        )
    assert seen == []
    first = _filed(desk, "messenger", "m_ssrf_1")
    assert "media URL refused" in first and "not a Messenger media host" in first
    second = _filed(desk, "messenger", "m_ssrf_2")
    assert "media URL refused" in second and "10.0.0.7" in second
    assert sum("media URL refused" in r.getMessage() for r in caplog.records) == 2


def test_telegram_file_redirected_or_pathed_inside_is_refused_and_the_message_filed(
    desk: Desk,
    stand_in: StandIn,
    internal: tuple[str, list[Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, seen = internal
    account = _account(
        desk,
        "telegram",
        {"api_base": stand_in.url},
        {"bot_token": "123:ABC", "secret_token": "tg-secret"},
    )
    stand_in.answer(
        "/bot123:ABC/getFile",
        200,
        {"ok": True, "result": {"file_id": "F1", "file_path": "photos/file_1.jpg"}},
    )
    # The file's download answers with a redirect to another loopback service.
    stand_in.answer("/file/bot123:ABC/photos/", 302, b"", {"Location": f"{url}/admin/"})

    def update(message_id: int, file_id: str) -> bytes:
        return orjson.dumps(
            {
                "update_id": 745000 + message_id,
                "message": {
                    "message_id": message_id,
                    "from": {"id": 901234567, "is_bot": False, "first_name": "Priya"},
                    "chat": {"id": 901234567, "type": "private"},
                    "date": _ts(desk),
                    "caption": "the bill",
                    "photo": [{"file_id": file_id, "width": 90, "height": 90}],
                },
            }
        )

    good = {"X-Telegram-Bot-Api-Secret-Token": "tg-secret"}
    with caplog.at_level(logging.WARNING, logger="accord.channels.connectors"):
        answered = desk.client.post(f"/hooks/{account}", content=update(61, "F1"), headers=good)
        assert answered.status_code == 200, answered.text
        # and a file path that climbs out of the bot's files
        stand_in.answer(
            "/bot123:ABC/getFile",
            200,
            {"ok": True, "result": {"file_id": "F2", "file_path": "../../getMe"}},
        )
        answered = desk.client.post(f"/hooks/{account}", content=update(62, "F2"), headers=good)
        assert answered.status_code == 200, answered.text
    assert seen == []
    redirected = _filed(desk, "telegram", ":61")
    assert "media URL refused" in redirected and "not a Telegram media host" in redirected
    climbing = _filed(desk, "telegram", ":62")
    assert "media URL refused" in climbing and "plain relative path" in climbing
    assert sum("media URL refused" in r.getMessage() for r in caplog.records) == 2


def test_x_dm_media_pointing_inside_is_refused_and_the_message_filed(
    desk: Desk,
    stand_in: StandIn,
    internal: tuple[str, list[Any]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, seen = internal
    account = _account(
        desk,
        "x",
        {"api_base": stand_in.url, "user_id": "4337869213"},
        {"consumer_secret": "x-consumer", "user_token": "x-user-token"},
    )
    # ton.twitter.com, as a poisoned resolver answers it: loopback.
    monkeypatch.setattr(PLATFORMS["x"], "resolver", lambda host, port: ["127.0.0.1"])

    def dm(event_id: str, media_url: str) -> bytes:
        return orjson.dumps(
            {
                "for_user_id": "4337869213",
                "direct_message_events": [
                    {
                        "type": "message_create",
                        "id": event_id,
                        "created_timestamp": str(_ts(desk) * 1000),
                        "message_create": {
                            "target": {"recipient_id": "4337869213"},
                            "sender_id": "3001969357",
                            "message_data": {
                                "text": "photo of the box",
                                "attachment": {
                                    "type": "media",
                                    "media": {"type": "photo", "media_url_https": media_url},
                                },
                            },
                        },
                    }
                ],
                "users": {"3001969357": {"id": "3001969357", "name": "Priya Shah"}},
            }
        )

    def post(body: bytes) -> None:
        sig = (
            "sha256="
            + base64.b64encode(hmac.new(b"x-consumer", body, hashlib.sha256).digest()).decode()
        )
        answered = desk.client.post(
            f"/hooks/{account}", content=body, headers={"x-twitter-webhooks-signature": sig}
        )
        assert answered.status_code == 200, answered.text

    with caplog.at_level(logging.WARNING, logger="accord.channels.connectors"):
        post(dm("9544918301161553001", f"{url}/1.1/ton/data/dm/1/2/box.jpg"))
        post(dm("9544918301161553002", "https://ton.twitter.com/1.1/ton/data/dm/1/2/box.jpg"))
    assert seen == []
    other = _filed(desk, "x", "9544918301161553001")
    assert other.startswith("photo of the box") and "not a X media host" in other
    poisoned = _filed(desk, "x", "9544918301161553002")
    assert "media URL refused" in poisoned and "loopback" in poisoned
    assert sum("media URL refused" in r.getMessage() for r in caplog.records) == 2


def test_media_is_read_with_a_limit_while_streaming(stand_in: StandIn) -> None:
    from accord.channels.connectors.base import SendFailed
    from accord.channels.connectors.media import fetch_media

    # a declared length over the limit: refused before a byte of the body is read
    stand_in.answer("/big", 200, b"x" * 5000)
    with httpx.Client() as client, pytest.raises(SendFailed, match="over the 1000-byte limit"):
        fetch_media(
            client,
            stand_in.url + "/big",
            platform="Test",
            api=stand_in.url,
            admin_api=True,
            limit=1000,
        )
    # no length (chunked): the read stops just past the limit, the rest never produced
    produced = []

    def endless() -> Iterator[bytes]:
        for _ in range(10_000):
            produced.append(1)
            yield b"y" * 1024

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=endless()))
    with httpx.Client(transport=transport) as client:
        got = fetch_media(
            client,
            "http://127.0.0.1:9/media",
            platform="Test",
            api="http://127.0.0.1:9",
            admin_api=True,
            limit=10_000,
        )
    assert 10_000 < len(got) <= 11_024 and len(produced) <= 11
