"""The web chat widget's two endpoints: the script (``GET /chat/widget.js``) and its
WebSocket (``/chat/ws``).

Visitors are anonymous, so the socket is public; what a visitor can do is bounded by
their token (they see only their own conversation), a size limit per message, a rate
limit per connection, and — when the node sets them (``ACCORD_CHAT_ORIGINS``, a comma-
separated list) — the sites allowed to embed the widget. New messages reach the visitor
by polling the case's state hash once a second: it works whichever process wrote the
reply (no in-process fan-out to keep in step), at the cost of one indexed row read per
open chat per second.

Anonymous visitors could open case after case, so new conversations — a first message
from a visitor with no case — are limited per client address
(``ACCORD_CHAT_NEW_PER_ADDRESS``, 5 an hour) and per embedding site, the ``Origin``
(``ACCORD_CHAT_NEW_PER_ORIGIN``, 100 an hour); over a limit the visitor is told to wait,
nothing is stored, and the refusal is logged. A visitor's messages on their own case are
not counted (only the per-connection rate applies).

Frames, JSON both ways — from the widget: ``hello {visitor}``, ``message {id, text,
case?}``, ``contact {kind, value}``; to it: ``welcome {visitor, messages, open_cases}``,
``message {message}``, ``ack {id, status}``, ``contact {value}``, ``error {message}``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from accord.channels.webchat import WebChat
from accord.service.errors import ServiceError

log = logging.getLogger("accord.webchat")
WIDGET = files("accord.channels").joinpath("static/chat-widget.js")
PER_MINUTE = 20
POLL_SECONDS = 1.0
HELLO_SECONDS = 30.0


class NewChats:
    """New conversations per client address and per origin, over a sliding hour."""

    def __init__(
        self,
        per_address: int = 5,
        per_origin: int = 100,
        *,
        window: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = {"address": per_address, "origin": per_origin}
        self.window = window
        self.clock = clock
        self._seen: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> NewChats:
        def number(name: str, default: int) -> int:
            raw = environ.get(name, "").strip()
            if not raw:
                return default
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"${name} must be a whole number of conversations, not {raw!r}")
            return int(raw)

        return cls(
            number("ACCORD_CHAT_NEW_PER_ADDRESS", 5), number("ACCORD_CHAT_NEW_PER_ORIGIN", 100)
        )

    def admit(self, address: str, origin: str) -> str | None:
        """Count a new conversation; None if admitted, else which limit refused it."""
        now = self.clock()
        keys = [("address", address), ("origin", origin)]
        with self._lock:
            for key in keys:
                seen = self._seen.setdefault(key, deque())
                while seen and seen[0] <= now - self.window:
                    seen.popleft()
                if len(seen) >= self.limits[key[0]]:
                    return key[0]
            for key in keys:
                self._seen[key].append(now)
            if len(self._seen) > 10_000:  # forget the quiet ones
                for key in [
                    k for k, v in self._seen.items() if not v or v[-1] <= now - self.window
                ]:
                    del self._seen[key]
        return None


def webchat_routes(chat: WebChat, new_chats: NewChats | None = None) -> APIRouter:
    router = APIRouter()
    script = WIDGET.read_bytes()
    limits = new_chats or NewChats.from_env()

    @router.get("/chat/widget.js", include_in_schema=False)  # a static asset, not an API
    def widget() -> Response:
        return Response(
            script,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300"},
        )

    @router.websocket("/chat/ws")
    async def socket(ws: WebSocket) -> None:
        allowed = _origins()
        origin = ws.headers.get("origin")
        if allowed and origin not in allowed:
            await ws.close(code=1008, reason="this site may not embed the chat")
            return
        await ws.accept()
        address = ws.client.host if ws.client else "?"
        try:
            await _converse(ws, chat, lambda: limits.admit(address, origin or "(none)"))
        except WebSocketDisconnect:
            return

    return router


async def _converse(ws: WebSocket, chat: WebChat, admit: Callable[[], str | None]) -> None:
    try:
        hello = await asyncio.wait_for(ws.receive_json(), HELLO_SECONDS)
    except (TimeoutError, ValueError):
        await ws.close(code=1008, reason="say hello first")
        return
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        await ws.close(code=1008, reason="say hello first")
        return
    given = hello.get("visitor")
    welcome = await run_in_threadpool(chat.hello, given if isinstance(given, str) else None)
    visitor, case_id = welcome.visitor, welcome.case_id
    shown = {m["id"] for m in welcome.messages}
    await ws.send_json(
        {
            "type": "welcome",
            "visitor": visitor,
            "messages": welcome.messages,
            "open_cases": welcome.open_cases,
        }
    )
    version = await run_in_threadpool(chat.version, case_id) if case_id else None
    recent: deque[float] = deque()
    while True:
        try:
            frame = await asyncio.wait_for(ws.receive_json(), POLL_SECONDS)
        except TimeoutError:
            frame = None
        except ValueError:
            await ws.send_json({"type": "error", "message": "not a JSON frame"})
            continue
        if frame is not None and case_id is None and _starts_a_case(frame):
            refused = admit()
            if refused:
                where = ws.client.host if ws.client else "?"
                log.warning(
                    "refused: a new web chat from %s (origin %s): over the per-%s limit",
                    where,
                    ws.headers.get("origin"),
                    refused,
                )
                await ws.send_json(
                    {
                        "type": "error",
                        "message": "Too many new conversations from here: please try again later.",
                    }
                )
                continue
        if frame is not None:
            case_id = await _handle(ws, chat, visitor, frame, recent) or case_id
        if case_id is None:
            continue
        now_version = await run_in_threadpool(chat.version, case_id)
        if now_version == version:
            continue
        version = now_version
        for message in await run_in_threadpool(chat.messages, case_id):
            if message["id"] not in shown:
                shown.add(message["id"])
                await ws.send_json({"type": "message", "message": message})


async def _handle(
    ws: WebSocket, chat: WebChat, visitor: str, frame: Any, recent: deque[float]
) -> str | None:
    """One frame from the widget; returns the case it went to, if it went to one."""
    kind = frame.get("type") if isinstance(frame, dict) else None
    try:
        if kind == "message":
            now = time.monotonic()
            while recent and recent[0] < now - 60:
                recent.popleft()
            if len(recent) >= PER_MINUTE:
                await ws.send_json(
                    {"type": "error", "message": "Too many messages: wait a minute, please."}
                )
                return None
            recent.append(now)
            receipt = await run_in_threadpool(
                lambda: chat.post(
                    visitor,
                    str(frame.get("text", "")),
                    client_id=str(frame.get("id", "")),
                    case_ref=frame.get("case") if isinstance(frame.get("case"), str) else None,
                )
            )
            await ws.send_json({"type": "ack", "id": frame.get("id"), "status": receipt.status})
            return receipt.case_id if receipt.status in ("stored", "duplicate") else None
        if kind == "contact":
            value = await run_in_threadpool(
                chat.contact, visitor, str(frame.get("kind", "")), str(frame.get("value", ""))
            )
            await ws.send_json({"type": "contact", "value": value})
            return None
        await ws.send_json({"type": "error", "message": f"unknown frame type {kind!r}"})
    except ServiceError as exc:
        await ws.send_json({"type": "error", "message": exc.message})
    return None


def _starts_a_case(frame: Any) -> bool:
    """A message from a visitor with no case yet (one naming a case link goes to that case)."""
    return (
        isinstance(frame, dict)
        and frame.get("type") == "message"
        and not isinstance(frame.get("case"), str)
    )


def _origins() -> set[str]:
    raw = os.environ.get("ACCORD_CHAT_ORIGINS", "")
    return {o.strip().rstrip("/") for o in raw.split(",") if o.strip()}
