"""Server-side request forgery: every outbound URL goes through the one guard
(``accord.integrations.ssrf``), with redirects off and credentials only for the address
that was checked (docs/security.md)."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

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
