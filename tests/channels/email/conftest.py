"""A node with a mailbox, members to route to, a controllable clock and a worker; a
mail builder; a real SMTP sink on loopback (aiosmtpd) that can refuse on demand."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from accord.api.app import create_app
from accord.channels.email.mailboxes import Mailbox, Server
from accord.channels.email.mailchannel import MailChannel
from accord.jobs.queue import JobQueue
from accord.jobs.worker import Worker
from accord.node import Node
from accord.store.tables import channel_messages
from accord.wiring import Services
from tests.clocks import cheap_passwords

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Sink:
    """A real SMTP server on loopback that keeps what it accepts."""

    port: int
    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    refuse: list[str] = field(default_factory=list)  # answers to give DATA before accepting
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        with self.lock:
            if self.refuse:
                return self.refuse.pop(0)
            self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def sink() -> Iterator[Sink]:
    found = Sink(free_port())
    controller = Controller(found, hostname="127.0.0.1", port=found.port)
    controller.start()
    yield found
    controller.stop()


@dataclass
class MailDesk:
    node: Node
    services: Services
    clock: Clock
    worker: Worker
    mailbox: Mailbox

    @property
    def mail(self) -> MailChannel:
        return self.services.mail

    def receive(self, raw: bytes, *recipients: str) -> Any:
        return self.mail.receive(raw, recipients=list(recipients) or [self.mailbox.address])

    def run_jobs(self) -> int:
        ran = 0
        while count := self.worker.run_once():
            ran += count
        return ran

    def messages(self, **where: Any) -> list[Any]:
        query = sa.select(channel_messages).order_by(channel_messages.c.id)
        for name, value in where.items():
            query = query.where(channel_messages.c[name] == value)
        with self.node.db.read() as conn:
            return list(conn.execute(query).all())

    def outbound(self) -> list[Any]:
        return self.messages(direction="out")

    def raw(self, row: Any) -> bytes:
        return self.mail.blobs.get(row.raw_sha256)


def make_desk(tmp_path: Path, database_url: str, smtp_port: int | None = None) -> MailDesk:
    node = Node.init(tmp_path / "northwind", name="Northwind Broadband", database=database_url)
    node.set_url("https://support.northwind.example")
    clock = Clock(START)
    app = create_app(node, now=clock, passwords=cheap_passwords())
    services: Services = app.state.services
    for username, name in (("tom", "Tom Baker"), ("ravi", "Ravi Kumar")):
        services.members.create(username, "correct horse battery", role="agent", display_name=name)
        services.ownership.set_profile(username, availability="online")
    mailbox = services.mail.mailboxes.add(
        Mailbox(
            id=0,
            address="support@northwind.example",
            display_name="Northwind Support",
            smtp=Server("127.0.0.1", smtp_port, security="none") if smtp_port else None,
            imap=None,
            max_attachment_bytes=5 * 1024 * 1024,
            max_message_bytes=40 * 1024 * 1024,
        )
    )
    handlers = {"mail.send": services.mail.outbox.send}
    worker = Worker(node.db, JobQueue(node.db, now=clock), handlers, worker_id="test", now=clock)
    return MailDesk(node, services, clock, worker, mailbox)


@pytest.fixture
def desk(tmp_path: Path, database_url: str, sink: Sink) -> Iterator[MailDesk]:
    made = make_desk(tmp_path, database_url, sink.port)
    yield made
    made.services.close()
    made.node.close()


def mail(
    sender: str = "Priya Shah <priya@example.com>",
    subject: str = "Internet keeps dropping",
    body: str = "Since Monday my connection drops every evening.",
    *,
    to: str = "support@northwind.example",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
) -> bytes:
    """A plain mail as a mail program would send it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(START)
    message["Message-ID"] = message_id or make_msgid(domain="example.com")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    for filename, media, data in attachments:
        maintype, subtype = media.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


@pytest.fixture
def sqlite_desk(tmp_path: Path, sink: Sink) -> Iterator[MailDesk]:
    """The desk on SQLite only: for heavy inputs whose handling does not depend on the
    database (parsing a 30 MB mail twice proves nothing more)."""
    made = make_desk(tmp_path, f"sqlite:///{tmp_path / 'accord.db'}", sink.port)
    yield made
    made.services.close()
    made.node.close()
