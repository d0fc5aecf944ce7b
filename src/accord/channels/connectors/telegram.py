"""Telegram Bot API (https://core.telegram.org/bots/api).

Webhooks carry ``X-Telegram-Bot-Api-Secret-Token``, the ``secret_token`` given to
``setWebhook``; a request without it or with another is refused (``401``). An Update's
``message`` has ``message_id``, ``from`` (``id``, names), ``chat.id``, ``date``, ``text``
or ``caption`` and ``photo``/``document``; we answer in the private chat with
``POST /bot<token>/sendMessage`` and fetch files with ``getFile`` then
``/file/bot<token>/<file_path>``. The chat id of a private chat is the user's id.
"""

from __future__ import annotations

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

API = "https://api.telegram.org"


class Telegram:
    name = "telegram"
    channel = "telegram"

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
        path = info["result"]["file_path"]
        base = str(settings.get("api_base") or API).rstrip("/")
        download = client.get(f"{base}/file/bot{secrets['bot_token']}/{path}")
        if download.status_code >= 400:
            raise SendFailed(f"Telegram refused the download ({download.status_code})", retry=True)
        return download.content
