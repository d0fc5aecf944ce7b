"""``accord serve``'s process orchestration: the HTTP server, the background work, and the
order they start in.

**Bind first.** Importing the web stack and building a node's services takes a couple of
seconds; a process manager, a load balancer or a test waiting for the port should not
wait that long to learn the process is alive. So the listening socket is opened and
served at once by a ``Switchboard``, a small ASGI app that needs nothing but the standard
library, while the node, its services and the FastAPI app are built in a thread. Until
they are ready the switchboard answers ``GET /health`` (liveness) with 200 and
``"status": "starting"``, ``/ready`` with 503 and ``Retry-After: 1``, and holds every
other request until the app is there (at most ``HOLD`` seconds, then 503 with
``Retry-After``), so an early client is served late rather than refused. Then the
requests go straight to the app, whose lifespan the switchboard runs. ``/ready``
answers 200 only when everything has started: the app, the timers, the followers and
the mail listeners.

With ``--workers N`` this process keeps the background work and a uvicorn supervisor
starts N processes that only serve requests, each from ``worker_app``: a switchboard too,
building ``accord.api.app.app_from_env``.

The settings come from ``accord.ops.settings.ServeSettings``; the command line only
parses options (``accord.cli.serve``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord import __version__

if TYPE_CHECKING:
    from accord.channels.email.mailchannel import MailChannel
    from accord.ops.settings import ServeSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HOLD = 30.0
"""Seconds a request that arrives while the app is being built waits for it."""


class StartFailed(RuntimeError):
    """The node, its services or its listeners could not be started (says why)."""


STARTUP_FAILURE = 3
"""A worker process's exit status when its app cannot be built (uvicorn's: the
supervisor then stops instead of starting it again and again)."""

log = logging.getLogger("accord.serve")


class Switchboard:
    """An ASGI app that answers at once and hands over to the real app once ``build``
    (run in a thread) has made it. ``on_failure`` hears when building failed.

    The build begins at the lifespan's startup, or, with ``begin_at_startup`` off, when
    ``begin`` is called: ``serve`` calls it once the socket listens, because the build's
    imports would otherwise compete for the interpreter with uvicorn's own start."""

    def __init__(
        self,
        build: Callable[[], ASGIApp],
        *,
        hold: float = HOLD,
        on_failure: Callable[[BaseException], None] | None = None,
        begin_at_startup: bool = True,
    ) -> None:
        self._build = build
        self._hold = hold
        self._on_failure = on_failure
        self._begin_at_startup = begin_at_startup
        self.app: ASGIApp | None = None
        self.failed: BaseException | None = None
        self._ready: asyncio.Event | None = None
        self._starting: asyncio.Task[None] | None = None
        self._lifespan: _Lifespan | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._run_lifespan(receive, send)
            return
        if self.app is None:
            path = scope.get("path", "")
            if scope["type"] == "http" and path == "/health":
                await _answer(send, 200, {"status": "starting", "version": __version__})
                return
            if scope["type"] == "http" and path == "/ready":
                await _answer(send, 503, {"status": "starting"}, retry_after=1)
                return
            await self._wait()
        if self.app is None:  # not built in time, or not at all
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1013})  # try again later
            else:
                body = {"detail": "the server is starting" if self.failed is None else "down"}
                await _answer(send, 503, body, retry_after=5)
            return
        await self.app(scope, receive, send)

    async def _wait(self) -> None:
        if self._starting is None:  # not begun yet (or served without a lifespan)
            self.begin()
        assert self._ready is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), self._hold)

    def begin(self) -> None:
        """Start building the app (in the event loop's thread; once)."""
        if self._starting is None:
            self._ready = asyncio.Event()
            self._starting = asyncio.create_task(self._start())

    async def _start(self) -> None:
        assert self._ready is not None
        try:
            app = await asyncio.to_thread(self._build)
            lifespan = _Lifespan(app)
            await lifespan.startup()
            self._lifespan = lifespan
            self.app = app
        except BaseException as exc:  # said once, here; the requests get 503
            self.failed = exc
            if self._on_failure is not None:
                self._on_failure(exc)
        finally:
            self._ready.set()

    async def _run_lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        if self._begin_at_startup:
            self.begin()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        if self._starting is not None:
            await self._starting  # a build under way finishes, so that all it started stops
        if self._lifespan is not None:
            await self._lifespan.shutdown()
        await send({"type": "lifespan.shutdown.complete"})


class _Lifespan:
    """The real app's lifespan, driven by the switchboard (its startup and shutdown
    handlers run as they would under uvicorn)."""

    def __init__(self, app: ASGIApp) -> None:
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        state: dict[str, Any] = {}

        async def run() -> None:
            await app({**scope, "state": state}, self._to_app.get, self._put)

        self._task = asyncio.create_task(run())

    async def _put(self, message: Message) -> None:
        await self._from_app.put(message)

    async def _reply(self) -> Message:
        got = asyncio.create_task(self._from_app.get())
        await asyncio.wait({got, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if got.done():
            return got.result()
        got.cancel()
        self._task.result()  # raises what the app raised
        raise RuntimeError("the app's lifespan ended without an answer")

    async def startup(self) -> None:
        await self._to_app.put({"type": "lifespan.startup"})
        reply = await self._reply()
        if reply["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"the app did not start: {reply.get('message', '')}")

    async def shutdown(self) -> None:
        await self._to_app.put({"type": "lifespan.shutdown"})
        await self._reply()
        await self._task


async def _answer(
    send: Send, status: int, body: dict[str, str], *, retry_after: int | None = None
) -> None:
    import json

    content = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    headers.append((b"content-length", str(len(content)).encode()))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


@dataclass
class Serving:
    """What ``accord serve`` started besides the HTTP server, and how to stop it."""

    settings: ServeSettings
    data_dir: Path
    inline_worker: bool | None = None
    imap: bool = True
    say: Callable[[str], None] = print
    stops: list[Callable[[], None]] = field(default_factory=list)

    def start(self) -> ASGIApp:
        """Open the node, build its services and app, start the pulls from peers, the
        timers and followers (inline), the mail listeners; the app to serve."""
        from accord.api.app import create_app
        from accord.federation.schedule import PeriodicSync
        from accord.jobs.inline import InlineWorker
        from accord.node import Node

        s = self.settings
        node = Node.open(self.data_dir, database=s.database_url, read_database=s.database_read_url)
        self.stops.append(node.close)
        from accord.wiring import Services

        # one set of services for the app, its worker, the followers and the listeners
        services = Services.build(node, inline_followers=False)
        self.stops.append(services.close)
        app = create_app(node, services=services)
        workers = f" ({s.workers} processes)" if s.workers > 1 else ""
        self.say(
            f"Accord node {node.name} ({node.fingerprint}) on http://{s.host}:{s.port}{workers}"
        )
        pulls = PeriodicSync(services.federation, s.sync_interval)
        pulls.start()
        self.stops.append(pulls.stop)
        services.background.submit(_warm_indexes, app)
        inline = node.db.is_sqlite if self.inline_worker is None else self.inline_worker
        if inline:
            timers = InlineWorker(
                lambda: services.worker(worker_id=f"serve-{os.getpid()}"), services.prepare
            )
            timers.start()
            self.stops.append(timers.stop)
            following = threading.Event()
            self.stops.append(following.set)
            for name, run in (
                ("accord-followers", services.followers.run),
                ("accord-pushers", services.pushers.run),  # pushes to peers follow the log too
            ):
                threading.Thread(target=run, args=(following,), name=name, daemon=True).start()
            self.say(
                "timers, outbox and followers run in this process (accord worker is not needed)"
            )
        self.stops.append(_start_mail(services.mail, s.smtp_host, s.smtp_port, self.imap, self.say))
        return app

    def stop(self) -> None:
        """Stop what ``start`` started, the last first."""
        while self.stops:
            try:
                self.stops.pop()()
            except Exception:  # stopping the rest matters more
                log.warning("stopping failed", exc_info=True)


def serve(
    settings: ServeSettings,
    data_dir: Path,
    *,
    inline_worker: bool | None = None,
    imap: bool = True,
    say: Callable[[str], None] = print,
) -> None:
    """Run ``accord serve`` until it is stopped (SIGINT, SIGTERM). Raises ``StartFailed``
    when what it serves could not be started (the port, though, is already open)."""
    import uvicorn

    from accord.ops import logs

    logs.configure(settings.log_format, settings.log_level)
    serving = Serving(settings, data_dir, inline_worker=inline_worker, imap=imap, say=say)
    failed: list[BaseException] = []
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "log_level": settings.log_level,
        "access_log": False,  # Accord writes its own access line, without paths
    }
    try:
        if settings.workers == 1:
            server: uvicorn.Server | None = None

            def give_up(exc: BaseException) -> None:
                failed.append(exc)
                if server is not None:
                    server.should_exit = True

            switchboard = Switchboard(serving.start, on_failure=give_up, begin_at_startup=False)
            config = uvicorn.Config(switchboard, lifespan="on", **common)
            server = _server_class()(config, switchboard)
            server.run()
        else:
            _serve_workers(settings, data_dir, serving, failed, common)
    finally:
        serving.stop()
    if failed:
        raise StartFailed(_reason(failed[0])) from failed[0]


def _server_class() -> type[Any]:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, beginning the switchboard's build once it listens."""

        def __init__(self, config: uvicorn.Config, switchboard: Switchboard) -> None:
            super().__init__(config)
            self.switchboard = switchboard

        async def startup(self, sockets: list[Any] | None = None) -> None:
            await super().startup(sockets)
            self.switchboard.begin()

    return Server


def _serve_workers(
    settings: ServeSettings,
    data_dir: Path,
    serving: Serving,
    failed: list[BaseException],
    common: dict[str, Any],
) -> None:
    """Bind, start the worker processes, and build this process's background work beside
    them; each worker builds its own app from the environment (no state is shared in
    memory: sessions, rate limits per process, metrics through files)."""
    import tempfile

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    os.environ.update(
        ACCORD_HOME=str(data_dir.resolve()),
        ACCORD_LOG_FORMAT=settings.log_format,
        ACCORD_LOG_LEVEL=settings.log_level,
        PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(prefix="accord-metrics-"),
    )
    if settings.database_url:
        os.environ["ACCORD_DATABASE_URL"] = settings.database_url
    if settings.database_read_url:
        os.environ["ACCORD_DATABASE_READ_URL"] = settings.database_read_url
    config = uvicorn.Config(
        "accord.ops.serve:worker_app", factory=True, workers=settings.workers, **common
    )
    sock = config.bind_socket()
    supervisor = Multiprocess(config, sockets=[sock])

    def background() -> None:
        try:
            serving.start()
        except BaseException as exc:
            failed.append(exc)
            supervisor.should_exit.set()

    threading.Thread(target=background, name="accord-start", daemon=True).start()
    try:
        supervisor.run()
    finally:
        sock.close()


def worker_app() -> ASGIApp:
    """The app of one process of ``accord serve --workers N``: a switchboard building
    ``accord.api.app.app_from_env`` (uvicorn ``--factory``)."""

    def build() -> ASGIApp:
        from accord.api.app import app_from_env

        return app_from_env()

    def give_up(exc: BaseException) -> None:
        log.error("the app could not be built: %s", _reason(exc), exc_info=exc)
        os._exit(STARTUP_FAILURE)

    return Switchboard(build, on_failure=give_up)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _warm_indexes(served: Any) -> None:
    """Bring the inbox rows and the search index up to date in the background at start,
    so the first search after an upgrade does not wait for a whole index build."""
    try:
        served.state.inbox.refresh()
        served.state.inbox.search_index.catch_up()
    except Exception:  # the pages catch up on their own; this only saves them the wait
        logging.getLogger("accord.web").warning("warming the indexes failed", exc_info=True)


def _start_mail(
    channel: MailChannel, host: str, port: int, imap: bool, say: Callable[[str], None]
) -> Callable[[], None]:
    """Start the SMTP listener and the IMAP poller as asked; returns what stops them."""
    from accord.channels.email.imap import ImapPoller
    from accord.channels.email.smtp_server import SmtpListener

    stops: list[Callable[[], None]] = []
    if port:
        listener = SmtpListener(channel, host=host, port=port)
        listener.start()
        stops.append(listener.stop)
        say(f"receiving mail by SMTP on {host}:{port}")
    if imap and any(m.imap for m in channel.mailboxes.all(active_only=True)):
        stop = threading.Event()
        poller = threading.Thread(
            target=ImapPoller(channel).run, args=(stop,), name="accord-imap", daemon=True
        )
        poller.start()
        stops.append(stop.set)
        say("polling IMAP mailboxes")

    def stop_all() -> None:
        for stop_one in stops:
            stop_one()

    return stop_all
