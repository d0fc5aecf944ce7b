"""Email against real servers on loopback: Accord's SMTP listener fed by ``smtplib``,
the outbox sending to an SMTP sink that refuses on demand, IMAP polling of a real
Dovecot, and processes killed between receipt and storage and between queueing and
sending — after a restart nothing is lost and nothing is doubled."""

from __future__ import annotations

import contextlib
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from imapclient import IMAPClient

from accord.channels.email.imap import ImapPoller
from accord.channels.email.mailboxes import Server
from accord.channels.email.outbox import MAX_ATTEMPTS
from accord.channels.email.smtp_server import SmtpListener
from accord.node import Node
from accord.service.negotiation import Actor
from tests.channels.email.conftest import MailDesk, Sink, free_port, mail, make_desk
from tests.servers import SilentServer

# -- the SMTP listener -------------------------------------------------------------------


@pytest.fixture
def listener(desk: MailDesk) -> Iterator[SmtpListener]:
    server = SmtpListener(desk.mail, port=free_port(), max_message_bytes=2 * 1024 * 1024)
    server.start()
    yield server
    server.stop()


def test_the_listener_stores_before_it_answers_250(desk: MailDesk, listener: SmtpListener) -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        refused = client.sendmail(
            "priya@example.com", ["support@northwind.example"], mail(message_id="<s1@example.com>")
        )
        assert refused == {}
        # stored by the time the 250 came back
        [row] = desk.messages(direction="in")
        assert row.status == "stored" and row.external_id == "<s1@example.com>"


def test_the_listener_is_nobodys_relay(desk: MailDesk, listener: SmtpListener) -> None:
    with (
        smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
    ):
        client.sendmail("spam@example.com", ["someone@gmail.example"], mail())
    [(code, _text)] = refused.value.recipients.values()
    assert code == 550
    assert desk.messages() == []


def test_mail_over_the_size_limit_is_refused_in_the_protocol(
    desk: MailDesk, listener: SmtpListener
) -> None:
    big = mail(attachments=[("big.bin", "application/octet-stream", b"x" * 3 * 1024 * 1024)])
    with (
        smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPResponseException) as refused,
    ):
        client.sendmail("priya@example.com", ["support@northwind.example"], big)
    assert refused.value.smtp_code == 552
    assert desk.messages() == []


def test_a_full_disk_answers_452_so_the_sender_tries_again(
    desk: MailDesk, listener: SmtpListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    real_open = os.open

    def full(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & os.O_WRONLY and ".tmp-" in str(path):  # a blob being written (0600)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("os.open", full)
    with (
        smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPDataError) as refused,
    ):
        client.sendmail("priya@example.com", ["support@northwind.example"], mail())
    assert refused.value.smtp_code == 452
    assert desk.messages() == []
    monkeypatch.undo()
    leftovers = list((desk.node.data_dir / "blobs").glob("*/*/.tmp-*"))
    assert leftovers == []  # nothing half-written


# -- the outbox against a refusing relay -------------------------------------------------


def test_temporary_refusals_are_retried_with_backoff(desk: MailDesk, sink: Sink) -> None:
    sink.refuse = ["451 4.3.0 try later", "421 4.7.0 busy"]
    desk.receive(mail())
    desk.run_jobs()
    [row] = desk.outbound()
    assert row.status == "queued" and row.attempts == 1 and "451" in row.error
    desk.run_jobs()  # not due yet
    assert desk.outbound()[0].attempts == 1
    desk.clock.advance(minutes=1, seconds=1)
    desk.run_jobs()
    assert desk.outbound()[0].attempts == 2
    desk.clock.advance(minutes=2, seconds=1)
    desk.run_jobs()
    [row] = desk.outbound()
    assert row.status == "sent" and row.attempts == 3
    assert len(sink.received) == 1


def test_a_permanent_refusal_fails_at_once_and_tells_the_owner(desk: MailDesk, sink: Sink) -> None:
    sink.refuse = ["550 5.7.1 rejected by policy"]
    receipt = desk.receive(mail())
    desk.run_jobs()
    [row] = desk.outbound()
    assert row.status == "failed" and "550" in row.error
    owner = desk.services.ownership.owner(receipt.case_id or "")
    assert owner is not None
    assert any(
        n["kind"] == "mail.failed"
        for n in desk.services.ownership.notifications_for(owner.member.id)
    )
    desk.mail.outbox.retry(row.id)  # a member fixes the cause and sends it again
    desk.run_jobs()
    assert desk.outbound()[0].status == "sent" and len(sink.received) == 1


def test_an_unreachable_relay_gives_up_after_about_a_day(desk: MailDesk) -> None:
    desk.mail.mailboxes.update(desk.mailbox.id, smtp=Server("127.0.0.1", free_port(), "none"))
    desk.receive(mail())
    for _ in range(MAX_ATTEMPTS):
        desk.run_jobs()
        desk.clock.advance(hours=1, seconds=1)
    [row] = desk.outbound()
    assert row.status == "failed" and row.attempts == MAX_ATTEMPTS
    assert row.error.startswith("gave up: could not reach")


def test_a_relay_that_never_answers_delays_no_other_write(
    tmp_path: Path, database_url: str
) -> None:
    """The worker hands a mail to a relay that accepts the connection and never answers;
    meanwhile an agent's message is written at once (it waited 29 s when the send ran
    inside the job's write transaction)."""
    with SilentServer() as relay:
        desk = make_desk(tmp_path, database_url, relay.port)
        try:
            receipt = desk.receive(mail())  # a new case, and its acknowledgement queued
            assert receipt.case_id is not None
            sending = threading.Thread(target=desk.run_jobs)
            sending.start()
            assert relay.connected.wait(20), "the worker never reached the relay"
            started = time.perf_counter()
            posted = desk.services.negotiation.post_message(
                Actor(member="Tom Baker", via="api"), receipt.case_id, "Looking into it now."
            )
            took = time.perf_counter() - started
            assert sending.is_alive()  # the relay still holds the worker's attempt
            relay.hang_up()
            sending.join(timeout=60)
            assert not sending.is_alive()
        finally:
            desk.services.close()
            desk.node.close()
    assert posted.event_ids and took < 3.0, f"the write took {took:.1f} s behind the relay"
    [row] = desk.outbound()
    assert row.status == "queued" and row.attempts == 1  # tried again later
    assert "could not reach 127.0.0.1" in row.error


# -- IMAP polling against a real Dovecot -------------------------------------------------


@pytest.fixture(scope="module")
def dovecot() -> Iterator[tuple[int, str, str]]:
    """A Dovecot IMAP server on loopback with one user, in its own directory."""
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(binary).exists():
        pytest.fail(
            "Dovecot is not installed: `apt-get install dovecot-imapd` (.ci/run does)",
            pytrace=False,
        )
    home = Path(tempfile.mkdtemp(prefix="accord-dovecot-"))
    home.chmod(0o755)
    (home / "run").mkdir()
    (home / "state").mkdir()
    (home / "mail").mkdir()
    shutil.chown(home / "mail", "dovecot", "dovecot")
    port = free_port()
    user, password = "support@northwind.example", "imap-secret"
    (home / "users").write_text(f"{user}:{{PLAIN}}{password}\n")
    (home / "dovecot.conf").write_text(
        f"""base_dir = {home}/run
state_dir = {home}/state
log_path = {home}/dovecot.log
instance_name = accord-test-{port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
default_internal_group = dovecot
first_valid_uid = 1
mail_location = maildir:{home}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {home}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={home}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""
    )
    process = subprocess.Popen([binary, "-F", "-c", str(home / "dovecot.conf")])
    try:
        for _ in range(100):
            try:
                with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=2) as probe:
                    probe.login(user, password)
                break
            except Exception:
                time.sleep(0.1)
        else:
            log = (home / "dovecot.log").read_text() if (home / "dovecot.log").exists() else ""
            pytest.fail(f"Dovecot did not start on port {port}: {log[-2000:]}", pytrace=False)
        yield port, user, password
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def _append(port: int, user: str, password: str, *messages: bytes) -> None:
    with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10) as client:
        client.login(user, password)
        client.select_folder("INBOX")
        for message in messages:
            client.append("INBOX", message)


def _clear(port: int, user: str, password: str) -> None:
    with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10) as client:
        client.login(user, password)
        client.select_folder("INBOX")
        found = client.search(["ALL"])
        if found:
            client.delete_messages(found)
            client.expunge()


def test_imap_polling_stores_each_message_once(
    desk: MailDesk, dovecot: tuple[int, str, str]
) -> None:
    port, user, password = dovecot
    _clear(port, user, password)
    desk.mail.mailboxes.update(
        desk.mailbox.id, imap=Server("127.0.0.1", port, "none", user, password)
    )
    box = desk.mail.mailboxes.get(desk.mailbox.id)
    first = mail(message_id="<i1@example.com>")
    reply = mail(subject="Re: Internet", body="more", in_reply_to="<i1@example.com>")
    other = mail(sender="Jo <jo@example.net>", subject="Billing", body="Bill?")
    _append(port, user, password, first, reply, other)
    poller = ImapPoller(desk.mail)
    assert poller.poll(box) == 3
    stored = desk.messages(direction="in")
    assert [r.status for r in stored] == ["stored"] * 3
    assert stored[0].case_id == stored[1].case_id != stored[2].case_id
    assert poller.poll(box) == 0  # nothing new
    # a poller killed before it recorded how far it read reads again: stored once
    desk.mail.mailboxes.set_imap_position(box.id, 1, 0)
    with desk.node.db.write() as conn:
        conn.exec_driver_sql("UPDATE mailboxes SET imap_uidvalidity = NULL")
    assert poller.poll(box) == 3
    assert len(desk.messages(direction="in")) == 3
    _append(port, user, password, mail(subject="Re: Billing", body="?", sender="jo@example.net"))
    assert poller.poll_all() == {"support@northwind.example": 1}


def test_a_wrong_imap_password_is_reported_not_printed(
    desk: MailDesk, dovecot: tuple[int, str, str]
) -> None:
    port, user, _ = dovecot
    desk.mail.mailboxes.update(
        desk.mailbox.id, imap=Server("127.0.0.1", port, "none", user, "wrong-secret-xyz")
    )
    outcome = ImapPoller(desk.mail).poll_all()
    [error] = outcome.values()
    assert isinstance(error, str) and "IMAP 127.0.0.1" in error
    assert "wrong-secret-xyz" not in error


# -- crash tests: real `accord serve` processes killed at the worst moments ---------------


def _node_with_mailbox(tmp_path: Path, relay_port: int) -> Path:
    data = tmp_path / "node"
    env = {**os.environ, "ACCORD_HOME": str(data)}
    subprocess.run(
        [sys.executable, "-m", "accord", "init", "--name", "Northwind"],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "accord",
            "mailbox",
            "add",
            "support@northwind.example",
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            str(relay_port),
            "--smtp-security",
            "none",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    return data


def _send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.sendmail("priya@example.com", ["support@northwind.example"], raw)


@contextlib.contextmanager
def _serve(data: Path, smtp: int, fault: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``accord serve`` with the SMTP listener, optionally set to die at a fault point."""
    env = {**os.environ, "ACCORD_HOME": str(data)}
    if fault:
        env["ACCORD_FAULT"] = fault
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "accord", "serve", "--port", str(port), "--smtp-port", str(smtp)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: _answers(port), timeout=60.0)  # a cold start on a loaded machine
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=20)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=0.5).status_code == 200
    except httpx.TransportError:
        return False


def test_killed_between_receipt_and_storage_the_retry_stores_it_once(
    tmp_path: Path, sink: Sink
) -> None:
    data = _node_with_mailbox(tmp_path, sink.port)
    raw = mail(message_id="<crash1@example.com>")
    smtp = free_port()
    with _serve(data, smtp, fault="intake.before-commit") as process:
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
            _send(smtp, raw)  # the process dies before its 250
        assert process.wait(timeout=20) == -9
    node = Node.open(data)
    assert node.cases.list_cases() == []  # nothing half-written
    node.close()
    with _serve(data, smtp):
        _send(smtp, raw)  # the sending server's retry
        _send(smtp, raw)  # and a duplicate for good measure
        _wait_for(lambda: len(sink.received) == 1 and _queued(data, "queued") == 0)
    node = Node.open(data)
    assert len(node.cases.list_cases()) == 1
    node.close()
    assert len(sink.received) == 1  # one acknowledgement


def test_killed_between_queueing_and_sending_the_mail_goes_once(tmp_path: Path, sink: Sink) -> None:
    data = _node_with_mailbox(tmp_path, sink.port)
    smtp = free_port()
    with _serve(data, smtp, fault="outbox.before-send") as process:
        _send(smtp, mail(message_id="<crash2@example.com>"))  # stored and acknowledged …
        assert process.wait(timeout=30) == -9  # … and the worker dies about to send
    assert sink.received == []
    assert _queued(data) == 1  # the acknowledgement survived in the outbox
    with _serve(data, smtp):
        _wait_for(lambda: len(sink.received) == 1 and _queued(data, "queued") == 0)
    assert len(sink.received) == 1
    node = Node.open(data)
    with node.db.read() as conn:
        status = conn.exec_driver_sql(
            "SELECT status FROM channel_messages WHERE direction = 'out'"
        ).scalar_one()
    node.close()
    assert status == "sent"


def _queued(data: Path, status: str | None = None) -> int:
    """Outgoing mail in the outbox: all of it, or only that with ``status``. Both SMTP
    answers come after the intake has queued what it sends, so once nothing is left
    ``queued`` a second acknowledgement would already be in the sink."""
    node = Node.open(data)
    query = "SELECT count(*) FROM channel_messages WHERE direction = 'out'"
    try:
        with node.db.read() as conn:
            if status is None:
                return int(conn.exec_driver_sql(query).scalar_one())
            return int(conn.exec_driver_sql(query + " AND status = ?", (status,)).scalar_one())
    finally:
        node.close()


def _wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")
