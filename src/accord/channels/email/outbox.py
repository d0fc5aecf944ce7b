"""The outbox: mail Accord has decided to send, kept until an SMTP relay took it.

``queue`` writes the composed bytes (a blob) and a ``channel_messages`` row with status
``queued`` and schedules a ``mail.send`` job — in the caller's transaction, so "reply
written" and "mail queued" commit together. The job (run by ``accord worker``, or by
``accord serve`` on the embedded default) hands the bytes to the mailbox's SMTP relay
with no transaction open (a ``Deferred`` call: a relay that never answers holds no
lock, and on SQLite no other write waits for it), then records the outcome in a short
transaction that completes the job, if its lease is still the worker's:

* accepted (250) → ``sent``;
* a temporary refusal (4xx), a dropped connection or a timeout → retried from one
  minute, doubling to an hour, for about 24 hours (MAX_ATTEMPTS), then ``failed``;
* a permanent refusal (5xx) → ``failed`` at once; the case owner is notified.

A process killed after queueing sends the mail when it restarts; nothing is queued
twice because the row and its job commit together. The one window SMTP cannot close —
the relay accepted the mail and the process died before recording it — resends the
*same bytes with the same Message-ID*, which receiving systems recognise as one message.
Sending uses the stdlib's ``smtplib``: the worker is synchronous, so ``aiosmtplib``'s
event loop would buy nothing here.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord import faults
from accord.channels.blobs import BlobStore
from accord.channels.email.compose import Outgoing, compose, copied, new_message_id
from accord.channels.email.mailboxes import Mailbox, Mailboxes, Server
from accord.jobs.queue import Job, JobQueue
from accord.jobs.worker import Deferred
from accord.service.errors import Conflict, NotFound
from accord.service.ownership import Ownership
from accord.store.database import Database
from accord.store.tables import case_owners, channel_messages

log = logging.getLogger("accord.channels.email")
SEND = "mail.send"
_QUEUE = channel_messages.insert().returning(channel_messages.c.id)
MAX_ATTEMPTS = 30
SMTP_TIMEOUT = 30.0


def retry_delay(attempts: int) -> timedelta:
    """1 minute after the first failure, doubling, at most an hour (30 tries ≈ 25 h)."""
    return timedelta(seconds=min(3600, 60 * 2 ** max(0, attempts - 1)))


class TemporaryFailure(Exception):
    """The relay can't take the mail now; try again later."""


class PermanentFailure(Exception):
    """The relay refused the mail for good."""


class Outbox:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        mailboxes: Mailboxes,
        queue: JobQueue,
        ownership: Ownership,
        *,
        now: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.mailboxes = mailboxes
        self.queue = queue
        self.ownership = ownership
        self.now = now

    def queue_mail(
        self,
        conn: Connection,
        mailbox: Mailbox,
        mail: Outgoing,
        *,
        kind: str,
        case_id: str | None,
        customer_id: int | None,
        event_id: str | None = None,
        flags: tuple[str, ...] = (),
    ) -> int:
        """Compose ``mail`` and queue it in ``conn``'s transaction; returns the row id."""
        message_id = new_message_id(mailbox.domain)
        raw = compose_smtputf8(mail, message_id=message_id, date=self.now())
        digest = self.blobs.put(raw)
        thread = ([mail.in_reply_to] if mail.in_reply_to else []) + list(mail.references)
        now = self.now()
        values = {
            "channel": "email",
            "direction": "out",
            "mailbox_id": mailbox.id,
            "external_id": message_id,
            "dedupe_key": None,
            "case_id": case_id,
            "customer_id": customer_id,
            "event_id": event_id,
            "status": "queued",
            "kind": kind,
            "sender": mailbox.address,
            "recipients": orjson.dumps([mail.to, *copied(mail)]).decode(),
            "subject": mail.subject[:1000],
            "body": None,
            "thread": orjson.dumps(list(dict.fromkeys(thread))[-50:]).decode(),
            "raw_sha256": digest,
            "size": len(raw),
            "flags": orjson.dumps(list(flags)).decode(),
            "error": None,
            "attempts": 0,
            "created_at": now,
            "done_at": None,
        }
        row_id = int(conn.execute(_QUEUE, values).scalar_one())
        self.queue.schedule(SEND, now, {"message": row_id}, key=f"{SEND}:{row_id}", conn=conn)
        return row_id

    def send(self, job: Job, conn: Connection) -> Deferred[Exception | None] | None:
        """Handler of ``mail.send``: one attempt. In the job's transaction it only reads
        the queued mail; the worker hands it to the relay with no transaction open
        (``attempt``) and records the outcome with the job's completion (``record``)."""
        row_id = int(job.payload["message"])
        row = conn.execute(
            sa.select(channel_messages).where(channel_messages.c.id == row_id)
        ).first()
        if row is None or row.status != "queued":
            return None  # sent, failed or bounced meanwhile
        mailbox = self.mailboxes.get(int(row.mailbox_id))
        try:
            raw = self.blobs.get(row.raw_sha256)
        except FileNotFoundError as exc:
            failure: Exception = TemporaryFailure(str(exc))
            return Deferred(lambda: failure, lambda c, outcome: self.record(c, row_id, outcome))
        recipients = list(orjson.loads(row.recipients))
        return Deferred(
            lambda: self.attempt(mailbox, recipients, raw),
            lambda c, outcome: self.record(c, row_id, outcome),
        )

    def attempt(self, mailbox: Mailbox, recipients: list[str], raw: bytes) -> Exception | None:
        """Hand the mail to the mailbox's relay once, with no transaction open: None if it
        took it, else why not (a Temporary- or PermanentFailure)."""
        try:
            if mailbox.smtp is None:
                raise TemporaryFailure(
                    f"mailbox {mailbox.address} has no SMTP relay configured "
                    "(accord mailbox update --smtp-host …)"
                )
            faults.point("outbox.before-send")
            deliver(mailbox.smtp, mailbox.address, recipients, raw)
        except (PermanentFailure, TemporaryFailure) as exc:
            return exc
        return None

    def record(self, conn: Connection, row_id: int, outcome: Exception | None) -> None:
        """Record one attempt's outcome (None: the relay took it) in the job's completing
        transaction: sent, failed, or queued again for a later attempt."""
        query = sa.select(channel_messages).where(channel_messages.c.id == row_id)
        row = conn.execute(query if self.db.is_sqlite else query.with_for_update()).first()
        if row is None or row.status != "queued":
            return  # bounced or removed while the relay had it
        attempts = int(row.attempts) + 1
        now = self.now()
        values: dict[str, Any] = {"attempts": attempts}
        if isinstance(outcome, PermanentFailure):
            values |= {"status": "failed", "error": str(outcome)[:2000], "done_at": now}
        elif outcome is not None:
            error = str(outcome)[:2000]
            if attempts >= MAX_ATTEMPTS:
                values |= {"status": "failed", "error": f"gave up: {error}", "done_at": now}
            else:
                values["error"] = error
                self.queue.schedule(
                    SEND,
                    now + retry_delay(attempts),
                    {"message": row_id},
                    key=f"{SEND}:{row_id}",
                    conn=conn,
                )
        else:
            values |= {"status": "sent", "error": None, "done_at": now}
        conn.execute(
            channel_messages.update().where(channel_messages.c.id == row_id).values(**values)
        )
        status = values.get("status", "retry")
        log.log(
            logging.INFO if status == "sent" else logging.WARNING,
            "mail %d (%s) attempt %d: %s",
            row_id,
            row.kind,
            attempts,
            values.get("error") or status,
        )
        if values.get("status") == "failed":
            self._tell_owner(conn, row, str(values["error"]))

    def mark_bounced(self, conn: Connection, message_ids: tuple[str, ...], why: str) -> int:
        """Mark our outbound mail a bounce report names as bounced; returns how many."""
        if not message_ids:
            return 0
        rows = conn.execute(
            sa.select(channel_messages).where(
                channel_messages.c.direction == "out",
                channel_messages.c.channel == "email",
                channel_messages.c.external_id.in_(list(message_ids)[:50]),
            )
        ).all()
        for row in rows:
            conn.execute(
                channel_messages.update()
                .where(channel_messages.c.id == row.id)
                .values(status="bounced", error=why[:2000], done_at=self.now())
            )
            self._tell_owner(conn, row, f"bounced: {why}")
        return len(rows)

    def retry(self, row_id: int) -> None:
        """Send a failed or bounced message again (same bytes, same Message-ID)."""
        with self.db.write() as conn:
            row = conn.execute(
                sa.select(channel_messages.c.status, channel_messages.c.direction).where(
                    channel_messages.c.id == row_id
                )
            ).first()
            if row is None or row.direction != "out":
                raise NotFound(f"no outbound message {row_id}")
            if row.status not in ("failed", "bounced"):
                raise Conflict(
                    f"message {row_id} is {row.status}; only failed or bounced mail is retried"
                )
            conn.execute(
                channel_messages.update()
                .where(channel_messages.c.id == row_id)
                .values(status="queued", attempts=0, error=None, done_at=None)
            )
            self.queue.schedule(
                SEND, self.now(), {"message": row_id}, key=f"{SEND}:{row_id}", conn=conn
            )

    def _tell_owner(self, conn: Connection, row: Any, why: str) -> None:
        if row.case_id is None:
            return
        owner = conn.execute(
            sa.select(case_owners.c.member_id).where(case_owners.c.case_id == row.case_id)
        ).scalar()
        if owner is not None:
            self.ownership.notify(
                conn,
                int(owner),
                row.case_id,
                "mail.failed",
                f"Mail to {', '.join(orjson.loads(row.recipients))} ({row.subject[:80]}) was not "
                f"delivered: {why[:300]}",
            )


def compose_smtputf8(mail: Outgoing, *, message_id: str, date: datetime) -> bytes:
    """``compose``, and for an internationalised address (RFC 6531: a non-ASCII local part
    or domain) the address written as UTF-8 in its header (RFC 6532), which ``deliver``
    sends with ``SMTPUTF8``; an ASCII stand-in goes through ``compose`` and is swapped."""
    addresses = (mail.sender, mail.to, mail.reply_to or "")
    if all(address.isascii() for address in addresses):
        return compose(mail, message_id=message_id, date=date)
    stand_ins: dict[str, str] = {}

    def swap(address: str) -> str:
        if address.isascii():
            return address
        token = f"accord-smtputf8-{len(stand_ins)}-{secrets.token_hex(8)}@stand-in.invalid"
        stand_ins[token] = address
        return token

    plain = replace(
        mail,
        sender=swap(mail.sender),
        to=swap(mail.to),
        reply_to=swap(mail.reply_to) if mail.reply_to else None,
    )
    raw = compose(plain, message_id=message_id, date=date)
    for token, address in stand_ins.items():
        raw = raw.replace(token.encode(), address.encode("utf-8"))
    return raw


def deliver(server: Server, envelope_from: str, recipients: list[str], raw: bytes) -> None:
    """Hand ``raw`` to ``server`` once; raises Temporary- or PermanentFailure."""
    try:
        client: smtplib.SMTP
        if server.security == "tls":
            client = smtplib.SMTP_SSL(
                server.host, server.port, timeout=SMTP_TIMEOUT, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=SMTP_TIMEOUT)
        with client:
            if server.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if server.username:
                client.login(server.username, server.password)
            international = not "".join([envelope_from, *recipients]).isascii()
            options = ["SMTPUTF8"] if international else []
            refused = client.sendmail(envelope_from, recipients, raw, mail_options=options)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(
            f"{r}: {c} {m.decode(errors='replace')}" for r, (c, m) in exc.recipients.items()
        )
        if all(code >= 500 for code in codes):
            raise PermanentFailure(f"recipient refused: {detail}") from exc
        raise TemporaryFailure(f"recipient deferred: {detail}") from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise PermanentFailure(
            f"the relay does not take internationalised addresses (SMTPUTF8): {exc}"
        ) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise TemporaryFailure(f"the relay refused our login ({exc.smtp_code})") from exc
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        message = f"relay answered {exc.smtp_code} {text}"
        if 500 <= exc.smtp_code < 600:
            raise PermanentFailure(message) from exc
        raise TemporaryFailure(message) from exc
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        raise TemporaryFailure(f"could not reach {server.host}:{server.port}: {exc}") from exc
    if refused:
        detail = "; ".join(f"{r}: {c}" for r, (c, _) in refused.items())
        log.warning("relay refused some recipients: %s", detail)
