"""The email channel end to end on both databases: a mail opens a case, is acknowledged
naming the owner and the direct line, replies thread back by direct line, references or
subject tag, strangers are held, duplicates and loops are stored once or ignored,
bounces mark our mail, members reply, and Accord's notices reach the customer.
Outbound mail goes through a real SMTP sink on loopback."""

from __future__ import annotations

import email
import io
import json
import zipfile
from email import policy
from pathlib import Path

import pytest

from accord.channels.email.compose import Outgoing, compose
from accord.service.negotiation import Actor
from tests.channels.email.conftest import MailDesk, Sink, mail


def _sent(sink: Sink, index: int = -1) -> email.message.EmailMessage:
    message = email.message_from_bytes(sink.received[index][2], policy=policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def _ack_text(message: email.message.EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_a_new_mail_opens_a_case_routed_and_acknowledged(desk: MailDesk, sink: Sink) -> None:
    raw = mail(message_id="<first@example.com>")
    receipt = desk.receive(raw)
    assert receipt.status == "stored" and receipt.new_case and receipt.new_customer
    state = desk.node.cases.state(receipt.case_id)
    assert state is not None
    assert state["title"] == "Internet keeps dropping"
    assert state["parties"]["customer"]["name"] == "Priya Shah"
    # the customer's address is node-private: not in the shared log
    assert "priya@example.com" not in str(desk.node.cases.events(receipt.case_id))
    texts = [e.body.get("text", "") for e in desk.node.cases.events(receipt.case_id)]
    assert "Since Monday my connection drops every evening." in texts
    assert receipt.owner in ("Tom Baker", "Ravi Kumar")

    assert desk.run_jobs() == 1
    assert len(sink.received) == 1
    envelope_from, rcpts, _ = sink.received[0]
    assert envelope_from == "support@northwind.example" and rcpts == ["priya@example.com"]
    ack = _sent(sink)
    assert ack["In-Reply-To"] == "<first@example.com>"
    assert "<first@example.com>" in ack["References"]
    assert ack["Auto-Submitted"] == "auto-replied"
    ref = receipt.ref
    assert ref is not None
    assert ack["Reply-To"].addresses[0].addr_spec == f"support+{ref.token}@northwind.example"
    # Nothing the sender chose is echoed (anyone can forge From:, docs/security.md)
    assert ack["Subject"] == f"We have your message [Accord #{ref.number}]"
    text = _ack_text(ack)
    assert receipt.owner in text and f"support+{ref.token}@northwind.example" in text
    [row] = desk.outbound()
    assert row.status == "sent" and row.kind == "acknowledgement" and row.attempts == 1


def test_replies_thread_by_direct_line_reference_and_subject_tag(desk: MailDesk) -> None:
    first = desk.receive(mail(message_id="<a1@example.com>"))
    ref = first.ref
    assert ref is not None
    by_line = desk.receive(
        mail(
            subject="new subject", body="Still down.", to=f"support+{ref.token}@northwind.example"
        ),
        f"support+{ref.token}@northwind.example",
    )
    by_reference = desk.receive(
        mail(subject="whatever", body="And now?", in_reply_to="<a1@example.com>")
    )
    by_tag = desk.receive(mail(subject=f"Re: thing [Accord #{ref.number}]", body="Tagged."))
    assert [r.threaded_by for r in (by_line, by_reference, by_tag)] == [
        "direct-line",
        "reference",
        "subject-tag",
    ]
    assert {r.case_id for r in (by_line, by_reference, by_tag)} == {first.case_id}
    assert not any(r.new_case for r in (by_line, by_reference, by_tag))


def test_a_reply_to_our_own_mail_threads_by_its_message_id(desk: MailDesk) -> None:
    first = desk.receive(mail())
    desk.run_jobs()
    [ack] = desk.outbound()
    reply = desk.receive(mail(subject="Re: your case", body="Thanks!", in_reply_to=ack.external_id))
    assert reply.case_id == first.case_id and reply.threaded_by == "reference"


def test_a_subject_tag_from_someone_else_opens_their_own_case(desk: MailDesk) -> None:
    first = desk.receive(mail())
    assert first.ref is not None
    other = desk.receive(
        mail(sender="Mallory <mallory@evil.example>", subject=f"[Accord #{first.ref.number}]")
    )
    assert other.new_case and other.case_id != first.case_id


def test_a_made_up_direct_line_is_just_unknown(desk: MailDesk) -> None:
    desk.receive(mail())
    guessed = "support+abcdefghjkmn@northwind.example"
    receipt = desk.receive(mail(sender="eve@evil.example", to=guessed, body="hello"), guessed)
    assert receipt.status == "stored" and receipt.new_case and receipt.threaded_by == "new-case"


def test_a_stranger_on_the_direct_line_is_held_until_released(desk: MailDesk) -> None:
    first = desk.receive(mail())
    assert first.ref is not None
    line = f"support+{first.ref.token}@northwind.example"
    held = desk.receive(
        mail(sender="Raj Shah <raj@example.org>", to=line, body="I'm her husband"), line
    )
    assert held.status == "held" and held.case_id == first.case_id
    assert "not the case's customer" in (held.reason or "")
    events_before = len(desk.node.cases.events(first.case_id))
    owner = desk.services.ownership.owner(first.case_id)
    assert owner is not None
    notes = desk.services.ownership.notifications_for(owner.member.id)
    assert any(n["kind"] == "message.held" for n in notes)

    released = desk.mail.intake.release(held.row_id or 0, link=True, by="Tom Baker")
    assert released.case_id == first.case_id
    assert len(desk.node.cases.events(first.case_id)) == events_before + 1
    # the address now belongs to the customer: the next mail goes straight in
    again = desk.receive(mail(sender="raj@example.org", to=line, body="any news?"), line)
    assert again.status == "stored" and again.case_id == first.case_id


def test_the_same_mail_twice_is_stored_once(desk: MailDesk) -> None:
    raw = mail(message_id="<dup@example.com>")
    first = desk.receive(raw)
    second = desk.receive(raw)
    assert second.status == "duplicate" and second.case_id == first.case_id
    # an IMAP retry of the same message with different transport headers: still one
    relayed = b"Received: from mx2.example.com by mx.northwind.example\r\n" + raw
    assert desk.receive(relayed).status == "duplicate"
    assert len(desk.messages(direction="in")) == 1
    desk.run_jobs()
    assert len(desk.outbound()) == 1  # one acknowledgement


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Precedence": "bulk"},
        {"X-Autoreply": "yes", "Auto-Submitted": "auto-generated"},
    ],
)
def test_automatic_mail_never_opens_a_case_or_gets_an_answer(
    desk: MailDesk, sink: Sink, headers: dict[str, str]
) -> None:
    receipt = desk.receive(mail(subject="Out of office", headers=headers))
    assert receipt.status == "ignored" and receipt.case_id is None
    assert desk.node.cases.list_cases() == []
    desk.run_jobs()
    assert sink.received == []


def test_mail_from_the_mailer_daemon_marks_our_mail_bounced(desk: MailDesk) -> None:
    first = desk.receive(mail())
    desk.run_jobs()
    [ack] = desk.outbound()
    bounce = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        "To: support@northwind.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce1@mx.example.com>\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "MIME-Version: 1.0\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\n"
        "<priya@example.com>: host mx.example.com said: 550 5.1.1 no such user\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; priya@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {ack.external_id}\r\nSubject: {ack.subject}\r\n"
        "--B--\r\n"
    ).encode()
    receipt = desk.receive(bounce)
    assert receipt.status == "bounce" and receipt.case_id is None
    [ack] = desk.outbound()
    assert ack.status == "bounced"
    owner = desk.services.ownership.owner(first.case_id or "")
    assert owner is not None
    notes = desk.services.ownership.notifications_for(owner.member.id)
    assert any(n["kind"] == "mail.failed" for n in notes)


def test_a_fast_writer_is_filed_not_cut_after_five_a_minute(desk: MailDesk) -> None:
    # A person's sixth message in a minute is filed on the case (issue 21, item 5): the
    # loop brake stops only our automatic answers (tests/channels/email/test_sender_policy).
    first = desk.receive(mail(message_id="<loop0@example.com>"))
    statuses = [
        desk.receive(
            mail(subject="Re: x", body=f"auto {i}", in_reply_to="<loop0@example.com>")
        ).status
        for i in range(6)
    ]
    assert statuses == ["stored"] * 6
    desk.clock.advance(minutes=2)
    later = desk.receive(mail(subject="Re: x", body="later", in_reply_to="<loop0@example.com>"))
    assert later.status == "stored" and later.case_id == first.case_id


def test_a_known_customer_is_asked_whether_a_new_mail_belongs_to_their_open_case(
    desk: MailDesk, sink: Sink
) -> None:
    first = desk.receive(mail(subject="Internet keeps dropping"))
    second = desk.receive(mail(subject="Speed", body="Also, my speed is low."))
    assert second.new_case and not second.new_customer
    assert second.open_cases[0][0] == first.case_id
    desk.run_jobs()
    ack = _sent(sink)  # the second acknowledgement asks
    assert first.ref is not None
    assert f"#{first.ref.number}" in _ack_text(ack) and "reply YES" in _ack_text(ack)

    moved = desk.receive(mail(subject="Re: Speed", body="Yes", in_reply_to=ack["Message-ID"]))
    assert moved.case_id == first.case_id and moved.threaded_by == "moved"
    texts = [e.body.get("text", "") for e in desk.node.cases.events(first.case_id or "")]
    assert "Also, my speed is low." in texts
    state = desk.node.cases.state(second.case_id or "")
    assert state is not None and state["status"]["label"] == "moved"


def test_a_members_reply_is_written_and_queued_in_one_commit(desk: MailDesk, sink: Sink) -> None:
    first = desk.receive(mail(message_id="<q1@example.com>"))
    desk.run_jobs()
    reply = desk.mail.reply(
        Actor(member="Tom Baker", via="email"), first.case_id or "", "We reset your line."
    )
    event = desk.node.cases.get(first.case_id or "", reply.outcome.event_ids)[0]
    assert event.body["text"] == "We reset your line." and event.author.member == "Tom Baker"
    desk.run_jobs()
    sent = _sent(sink)
    assert sent["In-Reply-To"] == "<q1@example.com>"
    assert "We reset your line." in _ack_text(sent)
    assert first.ref is not None
    assert sent["Reply-To"].addresses[0].addr_spec.endswith(f"+{first.ref.token}@northwind.example")


def test_a_proposal_and_a_handoff_reach_the_customer_by_mail(desk: MailDesk, sink: Sink) -> None:
    first = desk.receive(mail())
    case_id = first.case_id or ""
    desk.run_jobs()
    tom = Actor(member="Tom Baker", via="api")
    desk.services.negotiation.propose(
        tom,
        case_id,
        [
            {
                "op": "activity.put",
                "activity": "engineer",
                "title": "Engineer visit",
                "owner": "northwind-broadband",
                "kind": "task",
                "due": "2026-11-25T10:00:00Z",
            }
        ],
        note="We send an engineer.",
    )
    desk.run_jobs()
    proposal = _ack_text(_sent(sink))
    assert "Engineer visit" in proposal and "/portal/" in proposal
    assert "https://support.northwind.example/portal/" in proposal
    owner = desk.services.ownership.owner(case_id)
    assert owner is not None
    other = "ravi" if owner.member.username == "tom" else "tom"
    desk.services.ownership.handoff(case_id, other, "over to you", by=owner.member)
    desk.run_jobs()
    assert "now owned by" in _ack_text(_sent(sink))


def test_an_oversized_attachment_is_kept_and_flagged_not_dropped(sqlite_desk: MailDesk) -> None:
    big = bytes(range(256)) * (28 * 1024 * 1024 // 256)  # 28 MB: 38 MB as base64, under 40
    raw = mail(attachments=[("backup.bin", "application/octet-stream", big)])
    receipt = sqlite_desk.receive(raw)
    assert receipt.status == "stored"
    [row] = sqlite_desk.messages(direction="in")
    assert "oversized-attachment" in row.flags
    assert sqlite_desk.raw(row) == raw  # the whole mail is kept on this node
    [message] = [
        e
        for e in sqlite_desk.node.cases.events(receipt.case_id or "")
        if e.type == "message.posted" and e.author.for_party
    ]
    assert "backup.bin" in message.body["text"] and "limit" in message.body["text"]
    assert "attachments" not in message.body


def test_a_zip_bomb_is_stored_as_the_bytes_it_is(sqlite_desk: MailDesk) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", b"\0" * (50 * 1024 * 1024))  # 50 MB of zeros
    bomb = buffer.getvalue()
    assert len(bomb) < 100_000
    receipt = sqlite_desk.receive(mail(attachments=[("invoice.zip", "application/zip", bomb)]))
    [message] = [
        e
        for e in sqlite_desk.node.cases.events(receipt.case_id or "")
        if e.type == "message.posted" and e.author.for_party
    ]
    [attachment] = message.body["attachments"]
    assert attachment["size"] == len(bomb) and attachment["name"] == "invoice.zip"
    assert sqlite_desk.mail.blobs.get(attachment["sha256"]) == bomb


def test_ten_thousand_recipients_are_capped_not_choking(sqlite_desk: MailDesk) -> None:
    crowd = ", ".join(f"user{i}@example.net" for i in range(10_000))
    raw = mail(headers={"Cc": crowd})
    receipt = sqlite_desk.receive(raw)
    assert receipt.status == "stored"
    [row] = sqlite_desk.messages(direction="in")
    assert "too-many-recipients" in row.flags
    assert row.recipients.count("@") <= 100


def test_header_injection_in_names_and_subjects_stays_in_one_header(
    desk: MailDesk, sink: Sink
) -> None:
    raw = (
        b"From: =?utf-8?q?Eve=0D=0ABcc:_victim@example.org?= <eve@example.com>\r\n"
        b"To: support@northwind.example\r\n"
        b"Subject: =?utf-8?q?Help=0D=0ABcc:_victim@example.org?=\r\n"
        b"Message-ID: <inject@example.com>\r\n\r\nhello\r\n"
    )
    receipt = desk.receive(raw)
    assert receipt.status == "stored"
    desk.run_jobs()
    _, rcpts, content = sink.received[-1]
    assert rcpts == ["eve@example.com"]
    ack = email.message_from_bytes(content, policy=policy.default)
    assert ack.get_all("Bcc") is None
    assert "\n" not in str(ack["Subject"]) and "\n" not in str(ack["To"])


def test_compose_refuses_no_header_and_writes_a_plain_alternative() -> None:
    from datetime import UTC, datetime

    raw = compose(
        Outgoing(
            sender="support@northwind.example",
            sender_name="Northwind\r\nBcc: x@y.z",
            to="priya@example.com",
            to_name="Priya",
            subject="Hi\nthere",
            text="plain",
            html="<p>html</p>",
        ),
        message_id="<m@northwind.example>",
        date=datetime(2026, 11, 23, tzinfo=UTC),
    )
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_all("Bcc") is None
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


CORPUS = Path(__file__).parent / "corpus"


def test_the_corpus_lands_on_the_expected_cases_and_customers(desk: MailDesk) -> None:
    """Every corpus mail, in arrival order: the same conversation lands on one case, a
    different one on its own, each person is one customer, machine mail opens nothing,
    and a second person writing into someone else's thread is held, not appended."""
    expected = json.loads((CORPUS / "expected.json").read_text())
    case_of: dict[str, str] = {}
    first_customer: dict[str, str] = {}
    customer_of: dict[str, int] = {}
    for name in sorted(expected):
        want = expected[name]
        receipt = desk.receive((CORPUS / name).read_bytes())
        label = want["case"]
        if label is None:
            kind = "bounce" if want["auto"] in ("bounce", "mailer-daemon") else "ignored"
            assert receipt.status == kind and receipt.case_id is None, name
            continue
        first_customer.setdefault(label, want["customer"])
        if want["customer"] != first_customer[label]:
            assert receipt.status == "held", f"{name}: {receipt}"
        else:
            assert receipt.status == "stored", f"{name}: {receipt}"
            if want["customer"] in customer_of:
                assert receipt.customer_id == customer_of[want["customer"]], name
            customer_of[want["customer"]] = receipt.customer_id or 0
        assert receipt.case_id == case_of.setdefault(label, receipt.case_id or ""), name
    assert len(set(case_of.values())) == len(case_of)  # one case per conversation
    assert len(set(customer_of.values())) == len(customer_of)  # one customer per person
    assert len(desk.node.cases.list_cases()) == len(case_of)
