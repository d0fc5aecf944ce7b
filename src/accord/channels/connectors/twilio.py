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
from accord.integrations.ssrf import Resolver, UnsafeURL, check_url, parse_url

API = "https://api.twilio.com"
MAX_HOPS = 3  # Twilio's media URL redirects once, to its media store
MAX_MEDIA = 25 * 1024 * 1024


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    data = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class Twilio:
    def __init__(self, name: str = "sms") -> None:
        self.name = name  # sms, or whatsapp-twilio
        self.channel = "whatsapp" if name == "whatsapp-twilio" else "sms"
        self.resolver: Resolver | None = None  # the SSRF guard's; tests inject one

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
        """The media at ``media.ref``, fetched only from Twilio's API host and through the
        SSRF guard (``accord.integrations.ssrf``): the connection goes to the address that
        was checked, and the account's credentials go to that address only. The client
        never follows a redirect itself; Twilio answers a media URL with a redirect to its
        media store, which is followed here at most ``MAX_HOPS`` times, each new URL
        checked again and sent no credentials. At most ``MAX_MEDIA`` + 1 bytes are read."""
        api = _origin(httpx.URL(str(settings.get("api_base") or API)))
        # an api_base an admin set (a stand-in on the node's own network) may be private
        private_api = api != _origin(httpx.URL(API))
        try:
            first = parse_url(media.ref)
        except UnsafeURL as exc:
            raise SendFailed(f"media URL refused: {exc}", retry=False) from None
        if _origin(first) != api:
            raise SendFailed(
                f"media URL refused: {first.host!r} is not Twilio's API host ({api[1]!r})",
                retry=False,
            )
        url = str(first)
        token = f"{settings['account_sid']}:{secrets['auth_token']}".encode()
        credentials: str | None = "Basic " + base64.b64encode(token).decode()
        for _hop in range(MAX_HOPS + 1):
            try:
                target = check_url(
                    url,
                    allow_private=private_api and _origin(httpx.URL(url)) == api,
                    resolver=self.resolver,
                )
            except UnsafeURL as exc:
                raise SendFailed(f"media URL refused: {exc}", retry=False) from None
            headers = {"Host": target.host_header}
            if credentials:
                headers["Authorization"] = credentials
            request = client.build_request(
                "GET",
                target.pinned_url(),
                headers=headers,
                extensions={"sni_hostname": target.host} if target.url.scheme == "https" else {},
            )
            response = client.send(request, follow_redirects=False, stream=True)
            try:
                if response.is_redirect:
                    url = str(target.url.join(response.headers.get("location", "")))
                    credentials = None  # the credentials never go to another address
                    continue
                if response.status_code >= 400:
                    raise SendFailed(
                        f"Twilio refused the download ({response.status_code})", retry=True
                    )
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > MAX_MEDIA:
                        break  # enough to know it is over the limit
                return bytes(data)
            finally:
                response.close()
        raise SendFailed(f"media URL refused: more than {MAX_HOPS} redirects", retry=False)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    port = url.port or (443 if url.scheme == "https" else 80)
    return (url.scheme, url.host.lower(), port)
