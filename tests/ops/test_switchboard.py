"""``accord serve`` binds first (accord.ops.serve.Switchboard): while the app is being
built, ``/health`` answers, ``/ready`` says 503 with ``Retry-After``, other requests wait
for the app and are then served by it; a build that fails answers 503 and is reported."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from accord.ops.serve import Message, Scope, Switchboard


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """The real app: records its lifespan, answers every request 200 ``real``."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            EVENTS.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"real " + scope["path"].encode()})


EVENTS: list[str] = []


async def call(board: Switchboard, path: str) -> tuple[int, dict[str, str], bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await board({"type": "http", "path": path, "method": "GET", "headers": []}, receive, send)
    headers = {k.decode(): v.decode() for k, v in sent[0].get("headers", [])}
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


class Lifespan:
    """Runs the switchboard's lifespan as uvicorn does."""

    def __init__(self, board: Switchboard) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()

        async def run() -> None:
            await board({"type": "lifespan"}, self.inbox.get, self.outbox.put)

        self.task = asyncio.create_task(run())

    async def say(self, kind: str) -> str:
        await self.inbox.put({"type": kind})
        return str((await self.outbox.get())["type"])


def test_health_at_once_ready_later_and_requests_wait_for_the_app() -> None:
    release = threading.Event()
    EVENTS.clear()

    def build() -> Any:
        release.wait(10)
        return app

    async def scenario() -> None:
        board = Switchboard(build)
        lifespan = Lifespan(board)
        assert await lifespan.say("lifespan.startup") == "lifespan.startup.complete"
        status, _, body = await call(board, "/health")
        assert status == 200 and b'"starting"' in body
        status, headers, _ = await call(board, "/ready")
        assert status == 503 and headers["retry-after"] == "1"
        early = asyncio.create_task(call(board, "/api/v1/cases"))
        await asyncio.sleep(0.05)
        assert not early.done()  # held, not refused
        release.set()
        assert await early == (200, {}, b"real /api/v1/cases")
        assert (await call(board, "/ready"))[2] == b"real /ready"
        assert EVENTS == ["lifespan.startup"]  # the app's own lifespan ran
        assert await lifespan.say("lifespan.shutdown") == "lifespan.shutdown.complete"
        assert EVENTS == ["lifespan.startup", "lifespan.shutdown"]
        await lifespan.task

    asyncio.run(scenario())


def test_a_failed_build_answers_503_and_is_reported() -> None:
    failures: list[BaseException] = []

    def build() -> Any:
        raise RuntimeError("no node in /nowhere")

    async def scenario() -> None:
        board = Switchboard(build, on_failure=failures.append, begin_at_startup=False)
        status, headers, _ = await call(board, "/api/v1/cases")  # begins the build
        assert status == 503 and headers["retry-after"] == "5"
        assert str(failures[0]) == "no node in /nowhere"
        assert (await call(board, "/health"))[0] == 200  # alive, if not useful

    asyncio.run(scenario())


def test_a_request_held_too_long_gets_503() -> None:
    release = threading.Event()

    def build() -> Any:
        release.wait(10)
        return app

    async def scenario() -> None:
        board = Switchboard(build, hold=0.05)
        status, headers, _ = await call(board, "/web/inbox")
        assert status == 503 and headers["retry-after"] == "5"
        release.set()
        assert board._starting is not None
        await board._starting
        assert (await call(board, "/web/inbox"))[2] == b"real /web/inbox"

    asyncio.run(scenario())
