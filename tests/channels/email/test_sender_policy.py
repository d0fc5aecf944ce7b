"""Nothing a sender does makes Accord drop, spam or loop (issue 21, part B).

Every item goes in through the real SMTP listener (``smtplib`` on loopback) and through
``accord mail receive`` (the CLI an MTA's pipe transport runs), on SQLite and PostgreSQL
(``database_url``). The mails are fixtures in ``fixtures/``, one per shape.
"""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from typer.testing import CliRunner

from accord.channels.email import policy
from accord.channels.email.smtp_server import SmtpListener
from accord.channels.intake import LOOP_LIMIT
from accord.cli import app
from accord.cli import mail as cli_mail
from accord.service import settings
from accord.store.tables import notifications
from tests.channels.email.conftest import MailDesk, free_port, mail, make_desk

FIXTURES = Path(__file__).parent / "fixtures"
SUPPORT = "support@northwind.example"
runner = CliRunner()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class Utf8Sink:
    """An SMTP relay on loopback that takes SMTPUTF8 (RFC 6531) and keeps what it gets."""

    port: int
    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def utf8_sink() -> Iterator[Utf8Sink]:
    found = Utf8Sink(free_port())
    controller = Controller(
        found, hostname="127.0.0.1", port=found.port, enable_SMTPUTF8=True, decode_data=False
    )
    controller.start()
    yield found
    controller.stop()


@pytest.fixture
def desk(tmp_path: Path, database_url: str, utf8_sink: Utf8Sink) -> Iterator[MailDesk]:
    made = make_desk(tmp_path, database_url, utf8_sink.port)
    yield made
    made.services.close()
    made.node.close()


Deliver = Callable[..., str]
"""deliver(raw, sender=..., recipients=...) -> how the path answered: "250", "451", …
for SMTP, the exit status for ``accord mail receive``."""


@pytest.fixture(params=["smtp", "cli"])
def deliver(
    request: pytest.FixtureRequest, desk: MailDesk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deliver]:
    if request.param == "smtp":
        listener = SmtpListener(desk.mail, port=free_port())
        listener.start()

        def by_smtp(
            raw: bytes, *, sender: str = "someone@example.com", recipients: tuple[str, ...] = ()
        ) -> str:
            options = [] if (sender + "".join(recipients)).isascii() else ["SMTPUTF8"]
            with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
                try:
                    client.sendmail(
                        sender, list(recipients) or [SUPPORT], raw, mail_options=options
                    )
                except smtplib.SMTPResponseException as exc:
                    return str(exc.smtp_code)
                except smtplib.SMTPRecipientsRefused as exc:
                    return str(next(iter(exc.recipients.values()))[0])
            return "250"

        yield by_smtp
        listener.stop()
        return

    # The CLI on the desk's clock: its channel is the desk's (the same node and database).
    monkeypatch.setattr(cli_mail, "_channel", lambda _node: desk.mail)
    count = iter(range(10**6))

    def by_cli(
        raw: bytes, *, sender: str | None = "someone@example.com", recipients: tuple[str, ...] = ()
    ) -> str:
        path = tmp_path / f"mail-{next(count)}.eml"
        path.write_bytes(raw)
        args = ["mail", "receive", str(path), "--data", str(desk.node.data_dir)]
        args += ["--database", desk.node.db.url]
        for recipient in recipients or (SUPPORT,):
            args += ["--recipient", recipient]
        if sender is not None:
            args += ["--sender", sender]
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        return str(result.exit_code)

    yield by_cli


OK = ("250", "0")


def inbound(desk: MailDesk, **where: Any) -> list[Any]:
    return desk.messages(direction="in", **where)


def acknowledgements(desk: MailDesk) -> list[Any]:
    return desk.messages(direction="out", kind="acknowledgement")


def held_notices(desk: MailDesk) -> list[Any]:
    with desk.node.db.read() as conn:
        return list(
            conn.execute(
                sa.select(notifications).where(notifications.c.kind.in_(["message.held"]))
            ).all()
        )


def new_mail(i: int, sender: str = "bot@robot.example", **extra: Any) -> bytes:
    return mail(
        sender=f"Bot <{sender}>",
        subject=f"Ticket {i}",
        body=f"Automatic message number {i}.",
        message_id=f"<flood.{i}@robot.example>",
        **extra,
    )


# -- 4: per-sender limits; the flood ------------------------------------------------------


def test_a_flood_of_200_mails_in_a_minute_is_all_stored_with_bounded_acknowledgements(
    desk: MailDesk, deliver: Deliver
) -> None:
    limits = settings.mail_policy(desk.node.db)
    for i in range(200):
        assert deliver(new_mail(i), sender="bot@robot.example") in OK
        if i % 20 == 19:
            desk.clock.advance(seconds=5)
    rows = inbound(desk)
    assert len(rows) == 200  # every mail is kept
    assert {r.status for r in rows} == {"stored", "held"}  # none dropped as ignored
    stored = [r for r in rows if r.status == "stored"]
    assert len(stored) == limits.new_cases_per_hour  # 10 cases, the rest held
    assert len(acknowledgements(desk)) <= limits.acknowledgements_per_hour
    assert len(held_notices(desk)) == 1  # the owner is told once, not 190 times
    # a member releases one: it opens its case
    held = desk.mail.intake.held(limit=1)[0]
    receipt = desk.mail.intake.release(held["id"], link=False, by="tom")
    assert receipt.status == "stored" and receipt.case_id is not None
    assert len(acknowledgements(desk)) <= limits.acknowledgements_per_hour


def test_an_auto_responder_ping_pong_that_ignores_auto_submitted_stops_by_itself(
    desk: MailDesk, deliver: Deliver
) -> None:
    # The responder answers every mail it gets with a fresh one: no References, no
    # Auto-Submitted, a subject of its own. Each answer would open a case and be
    # acknowledged again, for ever.
    rounds = 0
    pending = 1
    while pending and rounds < 15:
        rounds += 1
        raw = mail(
            sender="Helpdesk <helpdesk@vendor.example>",
            subject="Thank you for contacting the vendor helpdesk",
            body=f"Your request has been logged (round {rounds}).",
            message_id=f"<pingpong.{rounds}@vendor.example>",
        )
        before = len(acknowledgements(desk))
        assert deliver(raw, sender="helpdesk@vendor.example") in OK
        pending = len(acknowledgements(desk)) - before
        desk.clock.advance(seconds=20)
    assert pending == 0 and rounds < 15  # it stopped by itself
    assert (
        len(acknowledgements(desk)) <= settings.mail_policy(desk.node.db).acknowledgements_per_hour
    )
    assert all(r.status in ("stored", "held") for r in inbound(desk))


def test_the_limits_are_settable_per_node(desk: MailDesk, deliver: Deliver) -> None:
    result = runner.invoke(
        app,
        [
            "mail",
            "policy",
            "--new-cases-per-hour",
            "2",
            "--acknowledgements-per-hour",
            "1",
            "--data",
            str(desk.node.data_dir),
            "--database",
            desk.node.db.url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "new cases per sender per hour: 2" in result.output
    for i in range(4):
        assert deliver(new_mail(i, sender="ann@example.com"), sender="ann@example.com") in OK
    assert [r.status for r in inbound(desk)] == ["stored", "stored", "held", "held"]
    assert len(acknowledgements(desk)) == 1


# -- 5: the sixth message in a minute is filed; the brake stops only our answers -----------


def test_a_persons_sixth_message_in_a_minute_is_filed_and_only_acknowledgements_stop(
    desk: MailDesk, deliver: Deliver
) -> None:
    first = mail(sender="Priya <priya@example.com>", message_id="<first@example.com>")
    assert deliver(first, sender="priya@example.com") in OK
    for i in range(LOOP_LIMIT + 2):
        reply = mail(
            sender="Priya <priya@example.com>",
            subject="Re: Internet keeps dropping",
            body=f"and another thing ({i})",
            in_reply_to="<first@example.com>",
        )
        assert deliver(reply, sender="priya@example.com") in OK
    rows = inbound(desk)
    assert [r.status for r in rows] == ["stored"] * (LOOP_LIMIT + 3)
    assert len({r.case_id for r in rows}) == 1
    # a brand-new question in the same minute is a case too, filed without an answer
    question = mail(sender="Priya <priya@example.com>", subject="Also: my bill")
    assert deliver(question, sender="priya@example.com") in OK
    last = inbound(desk)[-1]
    assert last.status == "stored" and last.case_id != rows[0].case_id
    assert len(acknowledgements(desk)) == 1  # only the first case's


# -- 6: sender authentication ---------------------------------------------------------------


@pytest.fixture
def trusted(desk: MailDesk) -> None:
    settings.set_mail_policy(desk.node.db, authserv_ids=["mx.northwind.example"])


@pytest.mark.usefixtures("trusted")
def test_a_dmarc_failure_is_held_for_a_member_never_written_as_the_customer(
    desk: MailDesk, deliver: Deliver
) -> None:
    assert deliver(fixture("dmarc-fail.eml"), sender="priya@bank.example") in OK
    [row] = inbound(desk)
    assert row.status == "held" and row.case_id is None and "DMARC failed" in row.error
    assert acknowledgements(desk) == []
    with desk.node.db.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cases")).scalar_one() == 0
    assert {n.member_id for n in held_notices(desk)}  # the desk is told (no case owner yet)


@pytest.mark.usefixtures("trusted")
def test_results_from_an_untrusted_server_count_for_nothing(
    desk: MailDesk, deliver: Deliver
) -> None:
    assert deliver(fixture("untrusted-results.eml"), sender="priya@bank.example") in OK
    [row] = inbound(desk)
    assert row.status == "held" and "no Authentication-Results from a trusted server" in row.error


@pytest.mark.usefixtures("trusted")
def test_an_authenticated_sender_is_filed_and_a_forged_reply_on_their_case_is_held(
    desk: MailDesk, deliver: Deliver
) -> None:
    assert deliver(fixture("dmarc-pass.eml"), sender="priya@bank.example") in OK
    [genuine] = inbound(desk)
    assert genuine.status == "stored" and '"auth:pass"' in genuine.flags
    with desk.node.db.read() as conn:
        ref = desk.mail.intake.refs.ensure(conn, genuine.case_id)
    # a forged From with the case's (guessable) number and no passing check
    forged = fixture("dmarc-fail.eml").replace(
        b"Subject: Please change my bank details",
        f"Subject: Re: Question about my invoice [Accord #{ref.number}]".encode(),
    )
    assert deliver(forged, sender="priya@bank.example") in OK
    last = inbound(desk)[-1]
    assert last.status == "held" and last.case_id == genuine.case_id
    assert last.event_id is None  # nothing written in the customer's name


# -- 7: SMTPUTF8 end to end; poison mail; the CLI's exit status -----------------------------


def test_an_internationalised_address_gets_its_acknowledgement(
    desk: MailDesk, deliver: Deliver, utf8_sink: Utf8Sink
) -> None:
    assert deliver(fixture("smtputf8-sender.eml"), sender="jürgen@bücher.example") in OK
    [row] = inbound(desk)
    assert row.status == "stored" and row.sender == "jürgen@bücher.example"
    assert len(acknowledgements(desk)) == 1
    desk.run_jobs()
    [(_from, rcpts, raw)] = utf8_sink.received
    assert rcpts == ["jürgen@bücher.example"]
    assert "jürgen@bücher.example".encode() in raw


def test_poison_mail_is_kept_as_failed_answered_ok_and_the_desk_told(
    desk: MailDesk, deliver: Deliver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_parsed: Any) -> str | None:
        raise UnicodeEncodeError("ascii", "ü", 0, 1, "a bug that repeats on every attempt")

    monkeypatch.setattr(policy, "quiet", broken)
    raw = mail(message_id="<poison@example.com>")
    assert deliver(raw) in OK
    assert deliver(raw) in OK  # the retry is the same failed message, not a second one
    [row] = inbound(desk)
    assert row.status == "failed" and "UnicodeEncodeError" in row.error
    assert b"<poison@example.com>" in desk.raw(row)  # the original is kept
    with desk.node.db.read() as conn:
        told = conn.execute(
            sa.select(notifications).where(notifications.c.kind == "mail.failed")
        ).all()
    assert told


def test_a_transient_failure_asks_the_sender_to_try_again(
    desk: MailDesk, deliver: Deliver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(_parsed: Any) -> str | None:
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("the database restarts"))

    monkeypatch.setattr(policy, "quiet", down)
    assert deliver(mail()) in ("451", "75")
    assert inbound(desk) == []


# -- 8: a moved mail's thread follows it ----------------------------------------------------


def test_after_a_move_later_replies_in_the_thread_follow_the_mail(
    desk: MailDesk, deliver: Deliver
) -> None:
    sender = "Priya Shah <priya@example.com>"
    assert (
        deliver(mail(sender=sender, message_id="<one@example.com>"), sender="priya@example.com")
        in OK
    )
    desk.clock.advance(minutes=5)
    second = mail(sender=sender, subject="Also the bill", message_id="<two@example.com>")
    assert deliver(second, sender="priya@example.com") in OK
    first_row, second_row = inbound(desk)
    ack = [a for a in acknowledgements(desk) if a.case_id == second_row.case_id][-1]
    desk.mail.move(second_row.id, first_row.case_id, by="tom")
    desk.clock.advance(minutes=5)
    reply = mail(
        sender=sender,
        subject="Re: We have your message",
        body="One more detail about the bill.",
        in_reply_to=ack.external_id,
        references=f"<two@example.com> {ack.external_id}",
    )
    assert deliver(reply, sender="priya@example.com") in OK
    last = inbound(desk)[-1]
    assert last.status == "stored" and last.case_id == first_row.case_id


# -- 9: List-Id and X-Auto-Response-Suppress suppress only our acknowledgement --------------


@pytest.mark.parametrize("name", ["list-id-question.eml", "auto-response-suppress-question.eml"])
def test_list_and_suppress_headers_file_the_question_without_an_answer(
    desk: MailDesk, deliver: Deliver, name: str
) -> None:
    assert deliver(fixture(name)) in OK
    [row] = inbound(desk)
    assert row.status == "stored" and row.case_id is not None
    assert acknowledgements(desk) == []


# -- 11: the null envelope sender is a bounce -----------------------------------------------


def test_a_null_envelope_sender_is_a_bounce_never_a_case(desk: MailDesk, deliver: Deliver) -> None:
    assert deliver(fixture("null-sender-bounce.eml"), sender="") in OK
    [row] = inbound(desk)
    assert row.status == "bounce" and row.case_id is None
    assert acknowledgements(desk) == []


# -- 12: a stable substitute id ------------------------------------------------------------


def test_a_mail_without_message_id_by_two_relay_paths_is_one_case(
    desk: MailDesk, deliver: Deliver
) -> None:
    assert deliver(fixture("no-message-id-relay-a.eml"), sender="ana@example.com") in OK
    assert deliver(fixture("no-message-id-relay-b.eml"), sender="ana@example.com") in OK
    rows = inbound(desk)
    assert len(rows) == 1 and rows[0].status == "stored"
    assert rows[0].external_id.endswith("@accord.invalid>")
    assert len(acknowledgements(desk)) == 1


# -- 13: long lines and bare LF --------------------------------------------------------------


def test_long_lines_and_bare_lf_line_ends_are_accepted(desk: MailDesk, deliver: Deliver) -> None:
    raw = fixture("long-line-bare-lf.eml")
    assert b"\r\n" not in raw and max(len(line) for line in raw.split(b"\n")) > 1000
    assert deliver(raw, sender="ken@example.com") in OK
    [row] = inbound(desk)
    assert row.status == "stored"


def test_the_listener_takes_bare_lf_as_sent_on_the_wire(desk: MailDesk) -> None:
    listener = SmtpListener(desk.mail, port=free_port())
    listener.start()
    try:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            for command in (b"EHLO relay.example", b"MAIL FROM:<ken@example.com>"):
                sock.sendall(command + b"\r\n")
                while reader.readline()[3:4] != b" ":
                    pass
            sock.sendall(f"RCPT TO:<{SUPPORT}>\r\n".encode())
            assert reader.readline().startswith(b"250")
            sock.sendall(b"DATA\r\n")
            assert reader.readline().startswith(b"354")
            sock.sendall(fixture("long-line-bare-lf.eml") + b"\r\n.\r\n")
            answer = reader.readline()
            sock.sendall(b"QUIT\r\n")
    finally:
        listener.stop()
    assert answer.startswith(b"250"), answer
    assert [r.status for r in inbound(desk)] == ["stored"]


# -- 14: the whole References chain -----------------------------------------------------------


def test_a_long_thread_whose_only_known_id_is_the_first_is_matched(
    desk: MailDesk, deliver: Deliver
) -> None:
    assert deliver(mail(message_id="<root@example.com>"), sender="priya@example.com") in OK
    chain = " ".join(["<root@example.com>", *(f"<hop{i}@elsewhere.example>" for i in range(120))])
    reply = mail(
        subject="Re: Internet keeps dropping",
        body="Still broken after all this time.",
        in_reply_to="<hop119@elsewhere.example>",
        references=chain,
    )
    assert deliver(reply, sender="priya@example.com") in OK
    first, last = inbound(desk)
    assert last.status == "stored" and last.case_id == first.case_id
