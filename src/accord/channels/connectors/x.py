"""X (Twitter) direct messages and mentions through the Account Activity API
(https://docs.x.com/x-api/enterprise-gnip-2.0/fundamentals/account-activity).

X checks a webhook with a CRC: ``GET ?crc_token=…`` answered with
``{"response_token": "sha256=" + base64(HMAC-SHA256(consumer secret, crc_token))}``; every
event POST carries ``x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256 of the
body>`` (refused with ``401`` when it does not match). ``direct_message_events`` of type
``message_create`` are private messages (``message_create.sender_id``,
``message_data.text``); ``tweet_create_events`` that mention the account are public posts.
We send with ``POST /2/dm_conversations/with/{participant_id}/messages`` (a user-context
bearer token). A direct message's attachment (``message_data.attachment.media``) is
fetched through the SSRF guard, only from X's media hosts (issue 22).

The CRC answer is an HMAC under the same secret that signs event bodies, so it is given
only for tokens of the shape X sends (``CRC_TOKEN``: base64 or base64url text, at most 256
characters). A JSON body always holds ``{`` or ``"``, so it can never be one: a caller
cannot have a forged body signed by asking for its "CRC" (issue 22, row 1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from typing import Any

import httpx
import orjson

from accord.channels.connectors.base import (
    Incoming,
    Media,
    Parsed,
    Request,
    SendFailed,
    WebhookRefused,
    check_response,
    same,
    when,
)
from accord.channels.connectors.media import fetch_media, https_origins, origin
from accord.integrations.ssrf import Resolver

API = "https://api.x.com"
MEDIA_HOSTS = ("ton.twitter.com", "pbs.twimg.com", "video.twimg.com")
"""Where X serves direct-message media (``ton``, with the user token) and public media."""
CRC_TOKEN = re.compile(r"[A-Za-z0-9+/_=-]{1,256}")
"""What X sends as ``crc_token``: base64 text. Never JSON, never a request body."""

log = logging.getLogger("accord.channels.connectors")


def _attachment(attachment: Any, event_id: str) -> tuple[Media, ...]:
    """A DM's attachment (``message_data.attachment.media``) as media to fetch."""
    if not isinstance(attachment, dict) or attachment.get("type") != "media":
        return ()
    media = attachment.get("media")
    if not isinstance(media, dict):
        return ()
    url = media.get("media_url_https")
    if not isinstance(url, str) or not url:
        return ()
    kind = str(media.get("type", "photo"))
    media_type = "image/jpeg" if kind == "photo" else "video/mp4"
    suffix = "jpg" if kind == "photo" else "mp4"
    return (Media(url, media_type, f"{kind}-{event_id}.{suffix}"),)


def sign(secret: str, data: bytes) -> str:
    return (
        "sha256="
        + base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()
    )


class X:
    name = "x"
    channel = "x"
    resolver: Resolver | None = None  # the SSRF guard's; tests may inject one

    def challenge(
        self, request: Request, settings: dict[str, Any], secrets: dict[str, str]
    ) -> tuple[int, str, str]:
        token = request.query.get("crc_token", "")
        if not token:
            return 400, "text/plain", "no crc_token"
        if not CRC_TOKEN.fullmatch(token):
            log.warning(
                "x webhook CRC refused: the crc_token (%d characters) is not of the shape X "
                "sends; a CRC is never computed over other text",
                len(token),
            )
            return 400, "text/plain", "refused: crc_token is not of the shape X sends"
        body = orjson.dumps(
            {"response_token": sign(secrets.get("consumer_secret", ""), token.encode())}
        )
        return 200, "application/json", body.decode()

    def verify(self, request: Request, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        given = request.headers.get("x-twitter-webhooks-signature", "")
        if not given or not same(given, sign(secrets.get("consumer_secret", ""), request.body)):
            raise WebhookRefused(401, "forged: x-twitter-webhooks-signature does not match")

    def parse(self, request: Request, settings: dict[str, Any]) -> Parsed:
        try:
            data = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise WebhookRefused(400, "malformed: the body is not JSON") from None
        if not isinstance(data, dict):
            raise WebhookRefused(400, "malformed: not an object")
        me = str(data.get("for_user_id", settings.get("user_id", "")))
        users = data.get("users", {}) if isinstance(data.get("users"), dict) else {}
        parsed = Parsed()
        try:
            for event in data.get("direct_message_events", []):
                if event.get("type") != "message_create":
                    continue
                created = event["message_create"]
                sender = str(created["sender_id"])
                if sender == me:
                    continue  # what we sent, echoed
                user = users.get(sender, {})
                data_ = created.get("message_data", {})
                parsed.messages.append(
                    Incoming(
                        external_id=str(event["id"]),
                        identity_kind="x",
                        identity=sender,
                        name=user.get("name", ""),
                        text=data_.get("text", ""),
                        at=when(event["created_timestamp"]),
                        media=_attachment(data_.get("attachment"), str(event["id"])),
                    )
                )
            for tweet in data.get("tweet_create_events", []):
                author = tweet.get("user", {})
                if str(author.get("id_str", author.get("id"))) == me:
                    continue
                reply_to = tweet.get("in_reply_to_status_id_str")
                parsed.messages.append(
                    Incoming(
                        external_id=str(tweet["id_str"]),
                        identity_kind="x",
                        identity=str(author["id_str"]),
                        name=author.get("name", ""),
                        text=tweet.get("text", ""),
                        at=when(tweet["timestamp_ms"]),
                        public=True,
                        thread=(reply_to,) if reply_to else (),
                    )
                )
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
        base = str(settings.get("api_base") or API).rstrip("/")
        response = client.post(
            f"{base}/2/dm_conversations/with/{to}/messages",
            json={"text": text},
            headers={"Authorization": f"Bearer {secrets['user_token']}"},
        )
        answer = check_response(response, "X")
        try:
            return str(answer["data"]["dm_event_id"])
        except (KeyError, TypeError):
            raise SendFailed("X answered without a dm_event_id", retry=False) from None

    def reply_public(
        self,
        client: httpx.Client,
        settings: dict[str, Any],
        secrets: dict[str, str],
        in_reply_to: str,
        text: str,
    ) -> str:
        """Answer a public post in public: ``POST /2/tweets`` replying to it."""
        base = str(settings.get("api_base") or API).rstrip("/")
        response = client.post(
            f"{base}/2/tweets",
            json={"text": text, "reply": {"in_reply_to_tweet_id": in_reply_to}},
            headers={"Authorization": f"Bearer {secrets['user_token']}"},
        )
        answer = check_response(response, "X")
        try:
            return str(answer["data"]["id"])
        except (KeyError, TypeError):
            raise SendFailed("X answered without a post id", retry=False) from None

    def fetch(
        self, client: httpx.Client, settings: dict[str, Any], secrets: dict[str, str], media: Media
    ) -> bytes:
        """A direct message's photo, video or GIF, through the SSRF guard
        (``accord.channels.connectors.media``): only from X's media hosts or the API's own
        origin, the user token sent only to ``ton.twitter.com`` (where DM media lives) and
        the API, redirects checked again, read with a limit."""
        base = str(settings.get("api_base") or API).rstrip("/")
        return fetch_media(
            client,
            media.ref,
            platform="X",
            hosts=MEDIA_HOSTS,
            api=base,
            admin_api=bool(settings.get("api_base")),
            headers={"Authorization": f"Bearer {secrets['user_token']}"},
            credentials_for={origin(base), *https_origins(("ton.twitter.com",))},
            resolver=self.resolver,
        )
