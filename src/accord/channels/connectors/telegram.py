"""Telegram Bot API (https://core.telegram.org/bots/api).

Webhooks carry ``X-Telegram-Bot-Api-Secret-Token``, the ``secret_token`` given to
``setWebhook``; a request without it or with another is refused (``401``). An Update's
``message`` has ``message_id``, ``from`` (``id``, names), ``chat.id``, ``date``, ``text``
or ``caption`` and ``photo``/``document``; we answer in the private chat with
``POST /bot<token>/sendMessage`` and fetch files with ``getFile`` then
``/file/bot<token>/<file_path>``. The chat id of a private chat is the user's id.

A file is downloaded through the SSRF guard (``accord.channels.connectors.media``): only
from the Bot API's host (or the ``api_base`` an admin set), a ``file_path`` that is a plain
relative path, no redirect followed elsewhere, read with a limit (issue 22).
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
    Request,
    SendFailed,
    WebhookRefused,
    check_response,
    same,
    when,
)
from accord.channels.connectors.media import fetch_media
from accord.integrations.ssrf import Resolver

API = "https://api.telegram.org"
FILE_PATH = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_./-]{0,250}")
"""A ``getFile`` answer's ``file_path``: relative, no query, no host (checked before use)."""


class Telegram:
    name = "telegram"
    channel = "telegram"
    resolver: Resolver | None = None  # the SSRF guard's; tests may inject one

    def challenge(
        self, request: Request, settings: dict[str, Any], secrets: dict[str, str]
    ) -> tuple[int, str, str]:
        return 405, "text/plain", "Telegram does not confirm webhooks with a GET"

    def verify(self, request: Request, settings: dict[str, Any], secrets: dict[str, str]) -> None:
        given = request.headers.get("x-telegram-bot-api-secret-token", "")
        if not given or not same(given, secrets.get("secret_token", "")):
            raise WebhookRefused(401, "forged: X-Telegram-Bot-Api-Secret-Token does not match")

    def parse(self, request: Request, settings: dict[str, Any]) -> Parsed:
        try:
            update = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise WebhookRefused(400, "malformed: the body is not JSON") from None
        if not isinstance(update, dict) or "update_id" not in update:
            raise WebhookRefused(400, "malformed: not a Telegram Update")
        message = update.get("message")
        parsed = Parsed()
        if not isinstance(message, dict) or message.get("chat", {}).get("type") != "private":
            return parsed  # edits, channel posts, group chatter: not a customer writing to us
        try:
            sender = message["from"]
            media: list[Media] = []
            if message.get("photo"):
                largest = message["photo"][-1]
                media.append(
                    Media(largest["file_id"], "image/jpeg", f"photo-{message['message_id']}.jpg")
                )
            if message.get("document"):
                doc = message["document"]
                media.append(
                    Media(
                        doc["file_id"],
                        doc.get("mime_type", "application/octet-stream"),
                        doc.get("file_name", "document"),
                    )
                )
            name = " ".join(filter(None, [sender.get("first_name"), sender.get("last_name")]))
            reply = (message.get("reply_to_message") or {}).get("message_id")
            chat = message["chat"]["id"]
            parsed.messages.append(
                Incoming(
                    external_id=f"{chat}:{message['message_id']}",
                    identity_kind="telegram",
                    identity=str(sender["id"]),
                    name=name,
                    text=message.get("text") or message.get("caption") or "",
                    at=when(message["date"]),
                    media=tuple(media),
                    thread=(f"{chat}:{reply}",) if reply else (),
                )
            )
        except (KeyError, TypeError, IndexError) as exc:
            raise WebhookRefused(400, f"malformed: {type(exc).__name__} {exc}") from None
        return parsed

    def _api(self, settings: dict[str, Any], secrets: dict[str, str]) -> str:
        return f"{str(settings.get('api_base') or API).rstrip('/')}/bot{secrets['bot_token']}"

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
            f"{self._api(settings, secrets)}/sendMessage", json={"chat_id": int(to), "text": text}
        )
        answer = check_response(response, "Telegram")
        if not answer.get("ok"):
            raise SendFailed(f"Telegram: {answer.get('description', 'not ok')}", retry=False)
        return f"{to}:{answer['result']['message_id']}"

    def fetch(
        self, client: httpx.Client, settings: dict[str, Any], secrets: dict[str, str], media: Media
    ) -> bytes:
        info = check_response(
            client.post(f"{self._api(settings, secrets)}/getFile", json={"file_id": media.ref}),
            "Telegram",
        )
        path = (info.get("result") or {}).get("file_path") if isinstance(info, dict) else None
        if not isinstance(path, str) or not FILE_PATH.fullmatch(path) or ".." in path:
            raise SendFailed(
                f"media URL refused: Telegram's file path {str(path)[:80]!r} is not a plain "
                "relative path",
                retry=False,
            )
        base = str(settings.get("api_base") or API).rstrip("/")
        return fetch_media(
            client,
            f"{base}/file/bot{secrets['bot_token']}/{path}",
            platform="Telegram",
            hosts=(httpx.URL(API).host,),
            api=base,
            admin_api=bool(settings.get("api_base")),
            resolver=self.resolver,
        )
