"""Twilio Programmable Messaging: SMS, and WhatsApp through Twilio
(https://www.twilio.com/docs/messaging/guides/webhook-request,
https://www.twilio.com/docs/usage/webhooks/webhooks-security).

Webhooks are form posts signed with ``X-Twilio-Signature``: base64 of the HMAC-SHA1, keyed
by the account's auth token, of the full URL Twilio called followed by every POST
parameter name and value, sorted by name. A mismatch is refused with ``403``. Incoming
messages carry ``MessageSid``, ``From``, ``To``, ``Body``, ``NumMedia`` and
``MediaUrl0…``; status callbacks carry ``MessageSid`` and ``MessageStatus``. We send
with ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (basic auth: account SID and
auth token). WhatsApp numbers are written ``whatsapp:+4477…``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import httpx

from accord.channels.connectors.base import (
    Incoming,
    Media,
    Parsed,
    Receipt,
    Request,
    SendFailed,
    WebhookRefused,
    check_response,
    same,
)

API = "https://api.twilio.com"


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    data = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class Twilio:
    def __init__(self, name: str = "sms") -> None:
        self.name = name  # sms, or whatsapp-twilio
        self.channel = "whatsapp" if name == "whatsapp-twilio" else "sms"

    def challenge(
        self, request: Request, settings: dict[str, Any], secrets: dict[str, str]
    ) -> tuple[int, str, str]:
        return 405, "text/plain", "Twilio posts its webhooks"

    def verify(self, request: Request, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        given = request.headers.get("x-twilio-signature", "")
        url = str(settings.get("webhook_url") or request.url)
        expected = signature(secrets.get("auth_token", ""), url, request.form())
        if not given or not same(given, expected):
            raise WebhookRefused(403, "forged: X-Twilio-Signature does not match")

    def parse(self, request: Request, settings: dict[str, Any]) -> Parsed:
        form = request.form()
        parsed = Parsed()
        if "MessageSid" not in form:
            raise WebhookRefused(400, "malformed: no MessageSid")
        if "MessageStatus" in form and "Body" not in form:
            parsed.receipts.append(
                Receipt(
                    form["MessageSid"],
                    form["MessageStatus"],
                    form.get("ErrorMessage") or form.get("ErrorCode"),
                )
            )
            return parsed
        sender = form.get("From", "")
        if not sender:
            raise WebhookRefused(400, "malformed: no From")
        try:
            count = int(form.get("NumMedia", "0") or 0)
        except ValueError:
            raise WebhookRefused(400, "malformed: NumMedia is not a number") from None
        media = tuple(
            Media(
                form[f"MediaUrl{i}"],
                form.get(f"MediaContentType{i}", "application/octet-stream"),
                f"media-{i}",
            )
            for i in range(min(count, 10))
            if form.get(f"MediaUrl{i}")
        )
        parsed.messages.append(
            Incoming(
                external_id=form["MessageSid"],
                identity_kind="phone",
                identity=sender.removeprefix("whatsapp:"),
                name=form.get("ProfileName", ""),
                text=form.get("Body", ""),
                at=datetime.now(UTC),  # Twilio's webhook carries no time: it is sent at once
                media=media,
            )
        )
        return parsed

    def send(
        self,
        client: httpx.Client,
        settings: dict[str, Any],
        secrets: dict[str, str],
        to: str,
        text: str,
        *,
        template: str | None = None,
    ) -> str:
        sid = settings["account_sid"]
        prefix = "whatsapp:" if self.channel == "whatsapp" else ""
        form = {"To": f"{prefix}{to}", "From": f"{prefix}{settings['from_number']}", "Body": text}
        if settings.get("status_callback"):
            form["StatusCallback"] = settings["status_callback"]
        base = str(settings.get("api_base") or API).rstrip("/")
        response = client.post(
            f"{base}/2010-04-01/Accounts/{sid}/Messages.json",
            data=form,
            auth=(sid, secrets["auth_token"]),
        )
        answer = check_response(response, "Twilio")
        if not answer.get("sid"):
            raise SendFailed("Twilio answered without a message SID", retry=False)
        return str(answer["sid"])

    def fetch(
        self, client: httpx.Client, settings: dict[str, Any], secrets: dict[str, str], media: Media
    ) -> bytes:
        download = client.get(
            media.ref, auth=(settings["account_sid"], secrets["auth_token"]), follow_redirects=True
        )
        if download.status_code >= 400:
            raise SendFailed(f"Twilio refused the download ({download.status_code})", retry=True)
        return download.content
