"""Meta's platforms: the WhatsApp Business Cloud API, Messenger and Instagram messaging.

All three deliver webhooks signed the same way — ``X-Hub-Signature-256: sha256=<hex
HMAC-SHA256 of the raw body with the app secret>`` — and confirm a subscription with a GET
carrying ``hub.mode=subscribe``, ``hub.verify_token`` and ``hub.challenge``
(https://developers.facebook.com/docs/graph-api/webhooks/getting-started). A forged
signature is refused with ``401``, a wrong verify token with ``403``.

WhatsApp (https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples):
``entry[].changes[].value.messages[]`` (``from`` is the customer's number, E.164 without
``+``) and ``.statuses[]`` (sent, delivered, read, failed); send with
``POST /{version}/{phone-number-id}/messages``; media by ``GET /{version}/{media-id}``
then its ``url``. Free text only within 24 hours of the customer's last message; after
that, a template (https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-message-templates).

Messenger and Instagram (https://developers.facebook.com/docs/messenger-platform/webhooks):
``entry[].messaging[]`` with ``sender.id`` (the page-scoped id), ``message`` (``mid``,
``text``, ``attachments``), ``delivery`` and ``read``; send with
``POST /{version}/me/messages``.

Media are downloaded through the SSRF guard (``accord.channels.connectors.media``): a
WhatsApp media URL only from ``lookaside.fbsbx.com`` (with the access token) and a
Messenger or Instagram attachment only from Meta's content hosts (without it), or from
the account's own ``api_base`` an admin set; never a redirect elsewhere (issue 22).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson

from accord.channels.connectors.base import (
    Incoming,
    Media,
    Parsed,
    Receipt,
    Request,
    SendFailed,
    WebhookRefused,
    check_response,
    hmac_hex,
    same,
    when,
)
from accord.channels.connectors.media import fetch_media, https_origins, origin
from accord.integrations.ssrf import Resolver

GRAPH = "https://graph.facebook.com"
VERSION = "v21.0"
WHATSAPP_MEDIA = ("lookaside.fbsbx.com",)
"""Where the Graph API's media URLs point (the download needs the access token)."""
MESSENGER_MEDIA = ("fbcdn.net", "fbsbx.com", "cdninstagram.com")
"""Where Messenger and Instagram attachment URLs point (signed CDN URLs, no token)."""
MEDIA_ID = re.compile(r"[A-Za-z0-9_.-]{1,200}")


def _challenge(request: Request, secrets: dict[str, str]) -> tuple[int, str, str]:
    q = request.query
    if q.get("hub.mode") != "subscribe" or not same(
        q.get("hub.verify_token", ""), secrets.get("verify_token", "")
    ):
        return 403, "text/plain", "verify token mismatch"
    return 200, "text/plain", q.get("hub.challenge", "")


def _verify(request: Request, secrets: dict[str, str]) -> None:
    given = request.headers.get("x-hub-signature-256", "")
    expected = "sha256=" + hmac_hex(secrets.get("app_secret", ""), request.body)
    if not given or not same(given, expected):
        raise WebhookRefused(401, "forged: X-Hub-Signature-256 does not match the app secret")


def _json(request: Request) -> dict[str, Any]:
    try:
        data = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise WebhookRefused(400, "malformed: the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("entry"), list):
        raise WebhookRefused(400, "malformed: no entry list")
    return data


def _base(settings: dict[str, Any]) -> str:
    return str(settings.get("api_base") or GRAPH).rstrip("/")


class WhatsApp:
    name = "whatsapp"
    channel = "whatsapp"
    resolver: Resolver | None = None  # the SSRF guard's; tests may inject one

    def challenge(
        self, request: Request, settings: dict[str, Any], secrets: dict[str, str]
    ) -> tuple[int, str, str]:
        return _challenge(request, secrets)

    def verify(self, request: Request, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        _verify(request, secrets)

    def parse(self, request: Request, settings: dict[str, Any]) -> Parsed:
        data = _json(request)
        if data.get("object") != "whatsapp_business_account":
            raise WebhookRefused(400, "malformed: not a WhatsApp Business Account webhook")
        parsed = Parsed()
        try:
            for entry in data["entry"]:
                for change in entry.get("changes", []):
                    value = change.get("value", {})
                    names = {
                        c.get("wa_id"): c.get("profile", {}).get("name", "")
                        for c in value.get("contacts", [])
                    }
                    for m in value.get("messages", []):
                        parsed.messages.append(self._message(m, names))
                    for s in value.get("statuses", []):
                        errors = s.get("errors") or []
                        parsed.receipts.append(
                            Receipt(
                                str(s["id"]),
                                str(s["status"]),
                                errors[0].get("title") if errors else None,
                            )
                        )
        except (KeyError, TypeError, AttributeError) as exc:
            raise WebhookRefused(400, f"malformed: {type(exc).__name__} {exc}") from None
        return parsed

    def _message(self, m: dict[str, Any], names: dict[str, str]) -> Incoming:
        kind = m.get("type", "text")
        text = ""
        media: list[Media] = []
        if kind == "text":
            text = m["text"]["body"]
        elif kind in ("image", "document", "audio", "video", "sticker"):
            item = m[kind]
            text = item.get("caption", "")
            media.append(
                Media(
                    item["id"],
                    item.get("mime_type", "application/octet-stream"),
                    item.get("filename") or f"{kind}-{item['id']}",
                )
            )
        elif kind == "button":
            text = m["button"].get("text", "")
        elif kind == "interactive":
            reply = m["interactive"].get("button_reply") or m["interactive"].get("list_reply") or {}
            text = reply.get("title", "")
        else:
            text = f"({kind} message)"
        context = m.get("context", {}).get("id")
        return Incoming(
            external_id=str(m["id"]),
            identity_kind="phone",
            identity="+" + str(m["from"]).lstrip("+"),
            name=names.get(m["from"], ""),
            text=text,
            at=when(m["timestamp"]),
            media=tuple(media),
            thread=(context,) if context else (),
        )

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
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.lstrip("+"),
        }
        if template:
            body |= {
                "type": "template",
                "template": {
                    "name": template,
                    "language": {"code": settings.get("language", "en_US")},
                },
            }
        else:
            body |= {"type": "text", "text": {"preview_url": False, "body": text}}
        response = client.post(
            f"{_base(settings)}/{VERSION}/{settings['phone_number_id']}/messages",
            json=body,
            headers={"Authorization": f"Bearer {secrets['access_token']}"},
        )
        answer = check_response(response, "WhatsApp")
        try:
            return str(answer["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise SendFailed("WhatsApp answered without a message id", retry=False) from None

    def fetch(
        self, client: httpx.Client, settings: dict[str, Any], secrets: dict[str, str], media: Media
    ) -> bytes:
        """The media's URL from the Graph API, then its bytes through the SSRF guard
        (``accord.channels.connectors.media``): only on WhatsApp's media hosts or the API's
        own origin, the token sent only there, redirects checked again, read with a limit."""
        if not MEDIA_ID.fullmatch(media.ref):
            raise SendFailed(f"media id refused: {media.ref[:80]!r} is not a media id", retry=False)
        auth = {"Authorization": f"Bearer {secrets['access_token']}"}
        info = check_response(
            client.get(f"{_base(settings)}/{VERSION}/{media.ref}", headers=auth), "WhatsApp"
        )
        url = info.get("url") if isinstance(info, dict) else None
        if not isinstance(url, str):
            raise SendFailed("WhatsApp answered without a media URL", retry=False)
        return fetch_media(
            client,
            url,
            platform="WhatsApp",
            hosts=WHATSAPP_MEDIA,
            api=_base(settings),
            admin_api=bool(settings.get("api_base")),
            headers=auth,
            credentials_for={origin(_base(settings)), *https_origins(WHATSAPP_MEDIA)},
            resolver=self.resolver,
        )


class Messenger:
    """Messenger, and Instagram when ``settings["object"]`` is ``instagram``."""

    def __init__(self, name: str = "messenger") -> None:
        self.name = name
        self.channel = name
        self.object = "instagram" if name == "instagram" else "page"
        self.resolver: Resolver | None = None  # the SSRF guard's; tests may inject one

    def challenge(
        self, request: Request, settings: dict[str, Any], secrets: dict[str, str]
    ) -> tuple[int, str, str]:
        return _challenge(request, secrets)

    def verify(self, request: Request, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        _verify(request, secrets)

    def parse(self, request: Request, settings: dict[str, Any]) -> Parsed:
        data = _json(request)
        if data.get("object") != self.object:
            raise WebhookRefused(400, f"malformed: not a {self.object} webhook")
        parsed = Parsed()
        try:
            for entry in data["entry"]:
                for event in entry.get("messaging", []):
                    sender = str(event["sender"]["id"])
                    if sender == str(entry.get("id")):
                        continue  # an echo of what the page itself sent
                    if "message" in event:
                        message = event["message"]
                        if message.get("is_echo"):
                            continue
                        media = tuple(
                            Media(
                                a["payload"]["url"],
                                _media_type(a.get("type", "file")),
                                f"{a.get('type', 'file')}-{i}",
                            )
                            for i, a in enumerate(message.get("attachments", []))
                            if isinstance(a.get("payload"), dict) and a["payload"].get("url")
                        )
                        reply = (message.get("reply_to") or {}).get("mid")
                        parsed.messages.append(
                            Incoming(
                                external_id=str(message["mid"]),
                                identity_kind=self.name,
                                identity=sender,
                                name="",
                                text=message.get("text", ""),
                                at=when(event["timestamp"]),
                                media=media,
                                thread=(reply,) if reply else (),
                            )
                        )
                    for mid in event.get("delivery", {}).get("mids", []):
                        parsed.receipts.append(Receipt(str(mid), "delivered"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise WebhookRefused(400, f"malformed: {type(exc).__name__} {exc}") from None
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
        response = client.post(
            f"{_base(settings)}/{VERSION}/me/messages",
            json={"recipient": {"id": to}, "messaging_type": "RESPONSE", "message": {"text": text}},
            headers={"Authorization": f"Bearer {secrets['access_token']}"},
        )
        answer = check_response(response, self.name.title())
        try:
            return str(answer["message_id"])
        except (KeyError, TypeError):
            raise SendFailed(f"{self.name} answered without a message id", retry=False) from None

    def fetch(
        self, client: httpx.Client, settings: dict[str, Any], secrets: dict[str, str], media: Media
    ) -> bytes:
        """The attachment at the URL the (signed) webhook named, through the SSRF guard:
        only on Meta's content hosts or the API's own origin, no credentials sent."""
        return fetch_media(
            client,
            media.ref,
            platform=self.name.title(),
            hosts=MESSENGER_MEDIA,
            api=_base(settings),
            admin_api=bool(settings.get("api_base")),
            resolver=self.resolver,
        )


def _media_type(kind: str) -> str:
    return {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/mpeg"}.get(
        kind, "application/octet-stream"
    )
