"""Issue 21, part A: who the requester is, and every attachment reachable.

Each shape is a raw mail in ``fixtures/``, delivered both through the real SMTP listener
(``smtplib`` to ``SmtpListener`` on loopback) and through ``accord mail receive``, on SQLite
and PostgreSQL: Reply-To as the requester (items 2), attachments in the conversation and
behind ``/cases/{id}/files/{sha}`` and the portal (3), ``MIME-Version`` on every mail (10),
the per-mailbox size limit, the kept tag, truncation noted, reply-all and a colleague's
tagged forward (15), and a mailed reply reopening a resolved case (1)."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from accord.api.app import create_app
from accord.channels.email.compose import MAX_SUBJECT, Outgoing, compose
from accord.channels.email.mailboxes import Mailbox, Server
from accord.channels.email.mailchannel import MailChannel, requester
from accord.channels.email.parse import parse_mail
from accord.channels.email.smtp_server import SmtpListener
from accord.channels.intake import CUSTOMER_PARTY
from accord.cli import app as cli_app
from accord.jobs.queue import JobQueue
from accord.jobs.worker import Worker
from accord.node import Node
from accord.service.negotiation import Actor
from accord.store.tables import case_refs, channel_messages
from accord.wiring import Services
from tests.channels.email.conftest import Sink, free_port, mail
from tests.clocks import START, FakeClock, cheap_passwords

FIXTURES = Path(__file__).parent / "fixtures"
PASSWORD = "correct horse battery"
TOM = Actor(member="Tom Baker", via="web")


@dataclass
class Desk:
    node: Node
    app: FastAPI
    services: Services
    clock: FakeClock
    worker: Worker
    mailbox: Mailbox
    deliver: Callable[[bytes], str]  # the transport under test; returns what it answered

    @property
    def mail(self) -> MailChannel:
        return self.services.mail

    def rows(self, **where: Any) -> list[Any]:
        query = sa.select(channel_messages).order_by(channel_messages.c.id)
        for name, value in where.items():
            query = query.where(channel_messages.c[name] == value)
        with self.node.db.read() as conn:
            return list(conn.execute(query).all())

    def number(self, case_id: str) -> int:
        with self.node.db.read() as conn:
            return int(
                conn.execute(
                    sa.select(case_refs.c.number).where(case_refs.c.case_id == case_id)
                ).scalar_one()
            )

    def text(self, case_id: str) -> str:
        events = self.node.cases.timeline(case_id, limit=50)
        return "\n".join(str(e.body.get("text", "")) for e in events)

    def send_all(self) -> None:
        while self.worker.run_once():
            pass

    def set_limits(self, **limits: Any) -> None:
        self.mailbox = self.mail.mailboxes.update(self.mailbox.id, **limits)


@pytest.fixture(params=["smtp", "cli"])
def desk(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str, sink: Sink
) -> Iterator[Desk]:
    node = Node.init(tmp_path / "northwind", name="Northwind Broadband", database=database_url)
    node.set_url("https://support.northwind.example")
    clock = FakeClock(START)
    app = create_app(node, now=clock, passwords=cheap_passwords())
    services: Services = app.state.services
    services.members.create("tom", PASSWORD, role="agent", display_name="Tom Baker")
    services.ownership.set_profile("tom", availability="online")
    mailbox = services.mail.mailboxes.add(
        Mailbox(
            id=0,
            address="support@northwind.example",
            display_name="Northwind Support",
            smtp=Server("127.0.0.1", sink.port, security="none"),
            imap=None,
        )
    )
    handlers = {"mail.send": services.mail.outbox.send}
    worker = Worker(node.db, JobQueue(node.db, now=clock), handlers, worker_id="t", now=clock)
    listener: SmtpListener | None = None
    if request.param == "smtp":
        # the protocol's own limit is the largest mailbox's: 64 MB here, whatever a
        # mailbox's own (smaller) limit is
        listener = SmtpListener(services.mail, port=free_port(), max_message_bytes=64 * 1024 * 1024)
        listener.start()
        port = listener.port

        def deliver(raw: bytes) -> str:
            raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # as on the wire
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.ehlo()
                client.mail("sender@example.com")
                client.rcpt("support@northwind.example")
                code, answer = client.data(raw)
            return f"{code} {answer.decode()}"
    else:
        runner = CliRunner()

        def deliver(raw: bytes) -> str:
            path = tmp_path / "incoming.eml"
            path.write_bytes(raw)
            args = ["mail", "receive", str(path), "--recipient", "support@northwind.example"]
            args += ["--data", str(node.data_dir), "--database", database_url]
            # the command runs on the process clock: moved to the test's moment
            with time_machine.travel(clock(), tick=False):
                result = runner.invoke(cli_app, args, env={"COLUMNS": "200"})
            return f"exit {result.exit_code}: {result.output}"

    made = Desk(node, app, services, clock, worker, mailbox, deliver)
    yield made
    if listener is not None:
        listener.stop()
    services.close()
    node.close()


def fixture(name: str, **replace: str) -> bytes:
    raw = (FIXTURES / name).read_bytes()
    for old, new in replace.items():
        raw = raw.replace(old.encode(), new.encode())
    return raw


def stored(answer: str) -> bool:
    return answer.startswith(("250 ", "exit 0: stored"))


def login(app: FastAPI) -> TestClient:
    client = TestClient(app)
    form = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf
    page = client.post(
        "/login",
        data={"username": "tom", "password": PASSWORD, "next": "/", "csrf": csrf.group(1)},
    )
    assert page.status_code == 200, page.text
    return client


def links(page: str) -> dict[str, str]:
    """The file links of a case page by what they say."""
    found = re.findall(r'<a href="([^"]*/files/[0-9a-f]{64})"[^>]*>([^<]+)</a>', page)
    return {text.strip(): href for href, text in found}


def subject_of(raw: bytes) -> str:
    header = message_from_bytes(raw, policy=compat32)["Subject"]
    return str(make_header(decode_header(str(header)))).replace("\r\n", "").replace("\n", "")


# -- item 2: the requester --------------------------------------------------------------


def test_two_contact_form_mails_are_two_customers_each_answered(desk: Desk) -> None:
    for name in ("contact-form-ann.eml", "contact-form-ben.eml"):
        assert stored(desk.deliver(fixture(name))), name
    ann, ben = desk.rows(direction="in")
    assert (ann.sender, ben.sender) == ("ann.lee@example.org", "ben@example.net")
    assert ann.customer_id != ben.customer_id and ann.case_id != ben.case_id
    acks = {r.case_id: r for r in desk.rows(kind="acknowledgement")}
    for row in (ann, ben):
        ack = acks[row.case_id]
        raw = desk.mail.blobs.get(ack.raw_sha256)
        assert ack.recipients == f'["{row.sender}"]'
        assert f"To: {row.sender}" in raw.decode()
        number = desk.number(row.case_id)
        assert f"[Accord #{number}]" in subject_of(raw) and f"case #{number}" in raw.decode()
        assert "noreply@" not in raw.decode()
    names = [desk.services.negotiation.state(r.case_id)["parties"] for r in (ann, ben)]
    assert [p[CUSTOMER_PARTY]["name"] for p in names] == ["Ann Lee", "Ben Okafor"]


def test_a_reply_to_our_own_mailbox_or_a_list_is_not_the_requester(desk: Desk) -> None:
    assert stored(desk.deliver(fixture("reply-to-our-mailbox.eml")))
    (row,) = desk.rows(direction="in")
    assert row.sender == "priya@example.com"
    boxes = desk.mail.mailboxes.all()
    listed = parse_mail(fixture("reply-to-list.eml"))
    assert requester(listed, boxes) == ("dana@customer.example", "Dana Fox")
    form = parse_mail(fixture("contact-form-ann.eml"))
    assert requester(form, boxes) == ("ann.lee@example.org", "Ann Lee")


# -- item 3: attachments ----------------------------------------------------------------


def test_attachments_are_listed_and_open_in_the_workspace_and_the_portal(desk: Desk) -> None:
    assert stored(desk.deliver(fixture("pdf-and-inline-image.eml")))
    (row,) = desk.rows(direction="in")
    client = login(desk.app)
    page = client.get(f"/cases/{row.case_id}")
    assert page.status_code == 200
    found = links(page.text)
    assert {"invoice-2026-11.pdf", "router.png"} <= set(found)
    assert "application/pdf · 77 bytes" in page.text
    assert re.search(r'<img src="[^"]*/files/[0-9a-f]{64}" alt="router.png"', page.text)
    parsed = parse_mail(fixture("pdf-and-inline-image.eml"))
    data = {a.filename: a.data for a in parsed.attachments}
    pdf = client.get(found["invoice-2026-11.pdf"])
    assert pdf.status_code == 200 and pdf.content == data["invoice-2026-11.pdf"]
    assert pdf.headers["content-disposition"].startswith("attachment")
    image = client.get(found["router.png"])
    assert image.content == data["router.png"] and image.headers["content-type"] == "image/png"
    original = client.get(found["Original mail (.eml)"])
    assert original.content == fixture("pdf-and-inline-image.eml")

    # the portal: the customer's own case, the same files
    token = desk.services.links.issue(
        row.case_id, CUSTOMER_PARTY, "priya@example.com", timedelta(days=1)
    )
    sha = found["invoice-2026-11.pdf"].rsplit("/", 1)[1]
    portal = TestClient(desk.app).get(f"/portal/{token}/files/{sha}")
    assert portal.status_code == 200 and portal.content == data["invoice-2026-11.pdf"]

    # another case cannot reach them: files go only through their own case's messages
    desk.clock.advance(minutes=5)
    other = mail("Lee Chan <lee@example.net>", "Hello", "Another customer.")
    assert stored(desk.deliver(other))
    lee = desk.rows(direction="in")[-1]
    assert client.get(f"/cases/{lee.case_id}/files/{sha}").status_code == 404
    lee_token = desk.services.links.issue(
        lee.case_id, CUSTOMER_PARTY, "lee@example.net", timedelta(days=1)
    )
    assert TestClient(desk.app).get(f"/portal/{lee_token}/files/{sha}").status_code == 404


def test_winmail_dat_forwards_and_encrypted_mail_read_as_such(desk: Desk) -> None:
    names = [
        "outlook-winmail-dat.eml",
        "forward-as-attachment.eml",
        "smime-encrypted.eml",
        "pgp-encrypted.eml",
        "smime-signed.eml",
    ]
    cases = {}
    for name in names:
        desk.clock.advance(minutes=2)
        assert stored(desk.deliver(fixture(name))), name
        cases[name] = desk.rows(direction="in")[-1].case_id
    client = login(desk.app)

    def page(name: str) -> str:
        shown = client.get(f"/cases/{cases[name]}")
        assert shown.status_code == 200
        return shown.text

    tnef = page("outlook-winmail-dat.eml")
    assert "Please find the signed contract and my notes attached." in tnef
    found = links(tnef)
    assert "winmail.dat" not in found
    assert client.get(found["notes.txt"]).content == b"Call me after 5 pm.\r\n"
    assert client.get(found["contract-signed.pdf"]).content.startswith(b"%PDF-1.4")

    forward = page("forward-as-attachment.eml")
    text = desk.text(cases["forward-as-attachment.eml"])
    assert "---------- Forwarded message ----------" in text
    assert "From: Field Team &lt;visits@contractor.example&gt;" in forward
    assert "Subject: Your engineer visit" in text and "Date: Mon 23 Nov 2026 16:30 UTC" in text
    assert "Our engineer will visit on Thursday between 8 and 12." in text
    found = links(forward)
    assert client.get(found["visit-slip.pdf"]).content.startswith(b"%PDF-1.4")
    assert client.get(found["Your engineer visit.eml"]).status_code == 200

    for name in ("smime-encrypted.eml", "pgp-encrypted.eml"):
        shown = page(name)
        assert "encrypted mail" in shown and "Accord cannot read it" in shown
        original = client.get(links(shown)["Original mail (.eml)"])
        assert original.status_code == 200 and original.content == fixture(name)
    signed = page("smime-signed.eml")
    assert "signed mail" in signed and "Please cancel my old landline" in signed
    assert "smime.p7s" in links(signed)


def test_an_oversized_attachment_opens_with_the_original(desk: Desk) -> None:
    desk.set_limits(max_attachment_bytes=2048)
    assert stored(desk.deliver(fixture("oversized-attachment.eml")))
    (row,) = desk.rows(direction="in")
    text = desk.text(row.case_id)
    assert "'contract-scan.pdf' (4 KB) is over the 2 KB limit" in text
    client = login(desk.app)
    found = links(client.get(f"/cases/{row.case_id}").text)
    assert "contract-scan.pdf" not in found
    original = client.get(found["Original mail (.eml)"])
    assert original.content == fixture("oversized-attachment.eml")
    kept = {a.filename: a for a in parse_mail(original.content).attachments}
    assert kept["contract-scan.pdf"].size == 4173


# -- item 15 ----------------------------------------------------------------------------


def test_mail_over_its_mailboxs_limit_is_refused_and_not_stored(desk: Desk) -> None:
    desk.set_limits(max_attachment_bytes=1024 * 1024, max_message_bytes=2 * 1024 * 1024)
    big = mail(attachments=[("scan.tif", "image/tiff", bytes(3_200_000))])
    assert 4_200_000 < len(big) < 4_500_000  # 4.3 MB on the wire
    answer = desk.deliver(big)
    if answer.startswith("exit"):
        assert answer.startswith("exit 69: ") and "takes at most 2.0 MB" in answer
    else:
        assert answer.startswith("552 5.3.4") and "takes at most 2.0 MB" in answer
    assert desk.rows() == []


def test_parts_cut_by_the_limits_are_noted_on_the_case(desk: Desk) -> None:
    assert stored(desk.deliver(fixture("too-deep.eml")))
    (row,) = desk.rows(direction="in")
    assert "nested more than 20 levels deep" in desk.text(row.case_id)
    assert "too-deep" in row.flags


def test_replies_keep_the_people_in_cc_unless_the_mailbox_says_not(desk: Desk, sink: Sink) -> None:
    assert stored(desk.deliver(fixture("cc-colleagues.eml")))
    (row,) = desk.rows(direction="in")
    desk.send_all()
    sink.received.clear()
    desk.mail.reply(TOM, row.case_id, "We will move the line on the 15th.")
    desk.send_all()
    (sent,) = sink.received
    assert sorted(sent[1]) == ["leo@example.com", "office@example.com", "priya@example.com"]
    headers = message_from_bytes(sent[2], policy=compat32)
    assert headers["To"].endswith("<priya@example.com>") or headers["To"] == "priya@example.com"
    assert headers["Cc"] == "leo@example.com, office@example.com"
    assert headers["MIME-Version"] == "1.0"
    desk.set_limits(reply_all=False)
    sink.received.clear()
    desk.mail.reply(TOM, row.case_id, "Done.")
    desk.send_all()
    (alone,) = sink.received
    assert alone[1] == ["priya@example.com"]
    assert "Cc" not in message_from_bytes(alone[2], policy=compat32)


def test_a_long_subject_keeps_its_tag_and_every_mail_says_mime_version(
    desk: Desk, sink: Sink
) -> None:
    long_subject = "Broadband " + "very slow again " * 60
    assert stored(desk.deliver(mail(subject=long_subject)))
    (row,) = desk.rows(direction="in")
    desk.mail.reply(TOM, row.case_id, "Looking into it.")
    desk.send_all()
    number = desk.number(row.case_id)
    for _from, _to, raw in sink.received:  # the acknowledgement and the reply
        subject = subject_of(raw)
        assert subject.endswith(f"[Accord #{number}]") and len(subject) <= MAX_SUBJECT
        assert message_from_bytes(raw, policy=compat32)["MIME-Version"] == "1.0"
    assert len(sink.received) == 2
    subject = "Hi " + "x" * 600 + " [Accord #7]"
    text_only = compose(
        Outgoing("a@example.com", "A", "b@example.com", "", subject, "text only"),
        message_id="<m@example.com>",
        date=START,
    )
    assert b"\r\nMIME-Version: 1.0\r\n" in text_only
    assert subject_of(text_only).endswith("… [Accord #7]")


def test_a_colleagues_tagged_forward_is_held_on_its_case(desk: Desk) -> None:
    assert stored(desk.deliver(mail()))
    (first,) = desk.rows(direction="in")
    number = desk.number(first.case_id)
    desk.clock.advance(minutes=10)
    answer = desk.deliver(fixture("colleague-forward-tagged.eml", **{"#1]": f"#{number}]"}))
    assert answer.startswith(("250 ", "exit 0: held"))
    forward = desk.rows(direction="in")[-1]
    assert forward.status == "held" and forward.case_id == first.case_id
    assert forward.sender == "sam@example.com"
    assert len({r.case_id for r in desk.rows(direction="in")}) == 1


# -- item 1, with mail ------------------------------------------------------------------


def test_a_mailed_reply_to_a_resolved_case_reopens_it(desk: Desk) -> None:
    assert stored(desk.deliver(mail()))
    (first,) = desk.rows(direction="in")
    n = desk.services.negotiation
    n.satisfied(TOM, first.case_id)
    n.satisfied(Actor("Priya Shah", "portal", CUSTOMER_PARTY, "s"), first.case_id)
    assert n.state(first.case_id)["resolved"]
    desk.clock.advance(days=2)
    reply = mail(
        subject="Re: Internet keeps dropping",
        body="It started again tonight.",
        in_reply_to=first.external_id,
        references=first.external_id,
    )
    assert stored(desk.deliver(reply))
    again = desk.rows(direction="in")[-1]
    assert again.case_id == first.case_id and again.status == "stored"
    state = n.state(first.case_id)
    assert not state["resolved"] and state["reopened"]
    assert "It started again tonight." in desk.text(first.case_id)
