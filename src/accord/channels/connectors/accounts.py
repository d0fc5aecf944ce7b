"""Accounts on messaging platforms, their webhooks, and replies on the customer's channel.

A webhook is checked as its platform documents before anything is read, then each
message goes through the one inbound pipeline (dedupe by the platform's message id, the
customer found by identity, threaded onto their open case) with its media fetched into
the blob store, and each delivery receipt updates the message we sent.

A member's reply goes back on the channel the customer last wrote on (or the one the
member picks): written in the case and queued in one commit, then sent by the
``channel.send`` job (the platform call made with no transaction open, a ``Deferred``;
its outcome recorded in a short one) with retries — a platform's ``429`` or ``5xx`` is
tried again later, a refusal fails at once and tells the case owner. WhatsApp's rule is
kept: free text only within 24 hours of the customer's last message, a template after
that. A public post (an X mention) is answered publicly or, with ``private``, by direct
message on the same case.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.channels.blobs import BlobStore
from accord.channels.connectors.base import (
    Incoming,
    Platform,
    Request,
    SendFailed,
    WebhookRefused,
    fresh,
)
from accord.channels.connectors.fields import FIELDS, OPTIONAL
from accord.channels.connectors.meta import Messenger, WhatsApp
from accord.channels.connectors.telegram import Telegram
from accord.channels.connectors.twilio import Twilio
from accord.channels.connectors.x import X
from accord.channels.intake import Inbound, Intake
from accord.core.crypto import NodeKey
from accord.core.errors import AccordError
from accord.core.timefmt import format_time, parse_time
from accord.jobs.queue import Job, JobQueue
from accord.jobs.worker import Deferred
from accord.service.errors import Conflict, Invalid, NotFound
from accord.service.negotiation import Actor, Negotiation
from accord.store import secrets as sealed
from accord.store.database import Database
from accord.store.tables import case_owners, channel_accounts, channel_messages

log = logging.getLogger("accord.channels.connectors")
SEND = "channel.send"
MAX_ATTEMPTS = 12
MAX_MEDIA = 25 * 1024 * 1024
WHATSAPP_WINDOW = timedelta(hours=24)
SENT_AT = "sent-at:"
"""The flag an inbound platform message carries with the platform's own time of it (its
``timestamp``), which the WhatsApp window counts from: not when Accord received it."""
RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}
"""A receipt never moves a message back (WhatsApp may report ``delivered`` after
``read``)."""
Clock = Callable[[], datetime]

PLATFORMS: dict[str, Platform] = {
    "whatsapp": WhatsApp(),
    "messenger": Messenger(),
    "instagram": Messenger("instagram"),
    "telegram": Telegram(),
    "sms": Twilio("sms"),
    "whatsapp-twilio": Twilio("whatsapp-twilio"),
    "x": X(),
}
STATUS = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
}


@dataclass(frozen=True)
class Account:
    id: int
    platform: str
    name: str
    settings: dict[str, Any]
    secrets: dict[str, str]
    active: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "platform": self.platform,
            "name": self.name,
            "settings": self.settings,
            "secrets_set": sorted(k for k, v in self.secrets.items() if v),
            "active": self.active,
        }


class Accounts:
    def __init__(self, db: Database, key: NodeKey, *, now: Clock) -> None:
        self.db = db
        self.box = sealed.of(db)
        self.now = now

    def add(
        self, platform: str, name: str, settings: dict[str, Any], secrets: dict[str, str]
    ) -> Account:
        if platform not in PLATFORMS:
            raise Invalid(f"platform must be one of {', '.join(PLATFORMS)}", field="platform")
        needs, keys = FIELDS[platform]
        missing = [f for f in needs if not settings.get(f)] + [
            k for k in keys if not secrets.get(k)
        ]
        if missing:
            raise Invalid(f"{platform} needs {', '.join(missing)}", field=missing[0])
        extra = set(settings) - set(needs) - set(OPTIONAL)
        if extra:
            raise Invalid(f"unknown settings: {', '.join(sorted(extra))}", field="settings")
        if not name.strip() or len(name) > 100:
            raise Invalid("an account needs a name of 1 to 100 characters", field="name")
        with self.db.write() as conn:
            if conn.execute(
                sa.select(channel_accounts.c.id).where(channel_accounts.c.name == name)
            ).first():
                raise Conflict(f"an account named {name!r} exists", field="name")
            new_id = conn.execute(
                channel_accounts.insert().returning(channel_accounts.c.id),
                {
                    "platform": platform,
                    "name": name,
                    "settings": orjson.dumps(settings).decode(),
                    "secrets": self.box.seal(orjson.dumps(secrets)),
                    "active": True,
                    "created_at": self.now(),
                },
            ).scalar_one()
        return self.get(int(new_id))

    def get(self, account_id: int) -> Account:
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(channel_accounts).where(channel_accounts.c.id == account_id)
            ).first()
        if row is None:
            raise NotFound(f"no channel account {account_id}")
        return Account(
            int(row.id),
            row.platform,
            row.name,
            orjson.loads(row.settings),
            orjson.loads(self.box.open(bytes(row.secrets))),
            bool(row.active),
        )

    def all(self) -> list[Account]:
        with self.db.read() as conn:
            ids = conn.execute(
                sa.select(channel_accounts.c.id).order_by(channel_accounts.c.id)
            ).scalars()
            found = list(ids)
        return [self.get(int(i)) for i in found]

    def remove(self, account_id: int) -> None:
        """Stop answering on the account (kept, inactive, for its messages' history)."""
        self.get(account_id)
        with self.db.write() as conn:
            conn.execute(
                channel_accounts.update()
                .where(channel_accounts.c.id == account_id)
                .values(active=False)
            )


class Connectors:
    def __init__(
        self,
        intake: Intake,
        negotiation: Negotiation,
        blobs: BlobStore,
        queue: JobQueue,
        *,
        now: Clock,
        client: Callable[[], httpx.Client] | None = None,
    ) -> None:
        self.intake = intake
        self.db = intake.db
        self.cases = intake.node.cases
        self.negotiation = negotiation
        self.blobs = blobs
        self.queue = queue
        self.now = now
        self.accounts = Accounts(intake.db, intake.node.key, now=now)
        self.client = client or (lambda: httpx.Client(timeout=30))

    # -- webhooks --------------------------------------------------------------------

    def webhook(self, account_id: int, request: Request) -> tuple[int, str, str]:
        """(status, content type, body) to answer the platform with."""
        try:
            account = self.accounts.get(account_id)
        except NotFound:
            return 404, "text/plain", "no such account"
        if not account.active:
            return 404, "text/plain", "this account is no longer in use"
        platform = PLATFORMS[account.platform]
        if request.method == "GET":
            return platform.challenge(request, account.settings, account.secrets)
        try:
            platform.verify(request, account.settings, account.secrets)
            parsed = platform.parse(request, account.settings)
            for message in parsed.messages:
                fresh(message.at, self.now())
        except WebhookRefused as exc:
            log.warning("%s webhook for account %d refused: %s", platform.name, account.id, exc)
            return exc.status, "application/json", orjson.dumps({"error": exc.message}).decode()
        for message in parsed.messages:
            self._receive(account, platform, message)
        for receipt in parsed.receipts:
            self._receipt(platform, receipt.external_id, receipt.status, receipt.error)
        if account.platform in ("sms", "whatsapp-twilio"):
            return 200, "text/xml", "<Response/>"  # TwiML: no automatic answer
        return 200, "application/json", '{"ok":true}'

    def _receive(self, account: Account, platform: Platform, message: Incoming) -> None:
        attachments = []
        notes = []
        for media in message.media:
            try:
                with self.client() as client:
                    data = platform.fetch(client, account.settings, account.secrets, media)
            except (SendFailed, httpx.HTTPError) as exc:
                log.warning(
                    "%s media %s for account %d not fetched: %s",
                    platform.name,
                    media.name,
                    account.id,
                    exc,
                )
                notes.append(f"[{media.name}: not fetched ({exc})]")
                continue
            if len(data) > MAX_MEDIA:
                notes.append(f"[{media.name}: {len(data)} bytes, over the limit, not kept]")
                continue
            digest = self.blobs.put(data)
            attachments.append(
                {
                    "type": "file",
                    "sha256": digest,
                    "name": media.name[:200],
                    "size": len(data),
                    "media_type": media.media_type[:100],
                }
            )
        text = "\n".join(filter(None, [message.text, *notes]))
        self.intake.receive(
            Inbound(
                channel=platform.channel,
                external_id=f"{platform.name}:{message.external_id}",
                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                identity_kind=message.identity_kind,
                identity=message.identity,
                sender_name=message.name,
                subject="",
                text=text or "(no text)",
                attachments=tuple(attachments),
                thread_ids=tuple(f"{platform.name}:{t}" for t in message.thread),
                size=len(text.encode()),
                flags=(
                    f"account:{account.id}",
                    f"{SENT_AT}{format_time(message.at)}",  # the platform's own time
                    *(("public",) if message.public else ()),
                ),
                kind="public" if message.public else "message",
                join_open=not message.public,
            )
        )

    def _receipt(
        self, platform: Platform, external_id: str, status: str, error: str | None
    ) -> None:
        mapped = STATUS.get(status)
        if mapped is None:
            return
        c = channel_messages.c
        mine = (
            c.direction == "out",
            c.channel == platform.channel,
            c.external_id == f"{platform.name}:{external_id}",
            c.status != "failed",
        )
        with self.db.write() as conn:
            row = conn.execute(sa.select(channel_messages).where(*mine)).first()
            if row is None:
                return
            if RANK.get(mapped, 0) < RANK.get(str(row.status), 0):
                return  # a late "delivered" after "read" says nothing new
            conn.execute(
                channel_messages.update()
                .where(c.id == row.id)
                .values(status=mapped, error=error, done_at=self.now())
            )
            if mapped == "failed":
                why = error or f"{platform.channel} reported it undelivered"
                self._tell_owner(conn, row, platform.channel, why)

    def _tell_owner(self, conn: Connection, row: Any, channel: str, why: str) -> None:
        """A message that will not arrive reaches the case's owner as a notification."""
        from accord.service.replies import channel_name  # it imports this module

        if row.case_id is None:
            return
        owner = conn.execute(
            sa.select(case_owners.c.member_id).where(case_owners.c.case_id == row.case_id)
        ).scalar()
        if owner is None:
            return
        to = ", ".join(orjson.loads(row.recipients or "[]")) or "the customer"
        self.intake.ownership.notify(
            conn,
            int(owner),
            row.case_id,
            "send.failed",
            f"Your {channel_name(channel)} message to {to} was not delivered: {why[:300]}",
        )

    # -- replies ---------------------------------------------------------------------

    def last_inbound(self, conn: Connection, case_id: str) -> Any:
        """The customer's latest message on the case, on any channel."""
        return conn.execute(
            sa.select(channel_messages)
            .where(
                channel_messages.c.case_id == case_id,
                channel_messages.c.direction == "in",
                channel_messages.c.status == "stored",
            )
            .order_by(channel_messages.c.id.desc())
            .limit(1)
        ).first()

    def reply(
        self,
        actor: Actor,
        case_id: str,
        text: str,
        *,
        channel: str | None = None,
        template: str | None = None,
        private: bool = False,
    ) -> dict[str, Any]:
        """Write the reply in the case and queue it on a platform, in one commit. Email
        and web chat replies are the mail channel's and the chat's; this is the rest."""
        if not text.strip() and not template:
            raise Invalid("the reply is empty", field="text")
        state = self.negotiation.state(case_id)
        self.negotiation.party_of(state, actor)
        with self.db.write() as conn:
            last = self._last_on(conn, case_id, channel)
            account = self._account_of(last)
            platform = PLATFORMS[account.platform]
            if platform.channel == "whatsapp" and not template:
                since = self.now() - platform_time(last)
                if since > WHATSAPP_WINDOW:
                    raise Conflict(
                        "WhatsApp allows free text only within 24 hours of the customer's "
                        f"last message ({int(since.total_seconds() // 3600)} hours ago): "
                        "send an approved template (template=…)",
                        field="template",
                    )
            public = "public" in orjson.loads(last.flags) and not private
            try:
                event = self.cases.create(
                    self.intake.node.key,
                    case_id,
                    "message.posted",
                    {"text": text or f"[template {template}]"},
                    member=actor.member,
                    time=self.now(),
                    via=platform.channel,
                    conn=conn,
                )
            except AccordError as exc:
                raise Conflict(str(exc)) from exc
            now = self.now()
            row_id = conn.execute(
                channel_messages.insert().returning(channel_messages.c.id),
                {
                    "channel": platform.channel,
                    "direction": "out",
                    "mailbox_id": None,
                    "external_id": f"pending:{event.id}",
                    "dedupe_key": None,
                    "case_id": case_id,
                    "customer_id": last.customer_id,
                    "event_id": event.id,
                    "status": "queued",
                    "kind": "public" if public else "reply",
                    "sender": account.name,
                    "recipients": orjson.dumps([last.sender]).decode(),
                    "subject": "",
                    "body": orjson.dumps(
                        {
                            "text": text,
                            "template": template,
                            "account": account.id,
                            "in_reply_to": last.external_id.split(":", 1)[-1],
                        }
                    ),
                    "thread": "[]",
                    "raw_sha256": None,
                    "size": len(text.encode()),
                    "flags": orjson.dumps([f"account:{account.id}"]).decode(),
                    "error": None,
                    "attempts": 0,
                    "created_at": now,
                    "done_at": None,
                },
            ).scalar_one()
            self.queue.schedule(
                SEND, now, {"message": int(row_id)}, key=f"{SEND}:{row_id}", conn=conn
            )
        self.negotiation.announce(case_id, [event.id])
        return {
            "case": case_id,
            "event": event.id,
            "message": int(row_id),
            "channel": platform.channel,
            "account": account.name,
            "public": public,
        }

    def _last_on(self, conn: Connection, case_id: str, channel: str | None) -> Any:
        query = (
            sa.select(channel_messages)
            .where(
                channel_messages.c.case_id == case_id,
                channel_messages.c.direction == "in",
                channel_messages.c.status == "stored",
                channel_messages.c.channel.not_in(["email", "webchat"]),
            )
            .order_by(channel_messages.c.id.desc())
            .limit(1)
        )
        if channel:
            query = query.where(channel_messages.c.channel == channel)
        last = conn.execute(query).first()
        if last is None:
            raise Conflict(
                f"the customer has not written on {channel or 'a messaging platform'} in this "
                "case, so there is nobody to answer there",
                field="channel",
            )
        return last

    def _account_of(self, row: Any) -> Account:
        for flag in orjson.loads(row.flags):
            if flag.startswith("account:"):
                return self.accounts.get(int(flag.split(":", 1)[1]))
        raise Conflict("the message did not come through a channel account")

    # -- the send job ----------------------------------------------------------------

    def send(self, job: Job, conn: Connection) -> Deferred[Any] | None:
        """Handler of ``channel.send``: one attempt. In the job's transaction it only
        reads the queued message; the worker makes the platform call with no transaction
        open (``attempt``) and records the outcome with the job's completion (``record``)."""
        row_id = int(job.payload["message"])
        row = conn.execute(
            sa.select(channel_messages).where(channel_messages.c.id == row_id)
        ).first()
        if row is None or row.status != "queued":
            return None
        if row.body is None or row.recipients in ("", "[]"):  # erased since it was queued
            log.warning("channel message %d has nothing left to send: cancelled", row_id)
            conn.execute(
                channel_messages.update()
                .where(channel_messages.c.id == row_id)
                .values(
                    status="cancelled",
                    error="cancelled: nothing left to send (the customer's data was erased)",
                    done_at=self.now(),
                )
            )
            return None
        body = orjson.loads(row.body)
        account = self.accounts.get(int(body["account"]))
        to = orjson.loads(row.recipients)[0]
        public = row.kind == "public"
        return Deferred(
            lambda: self.attempt(account, to, body, public=public),
            lambda c, outcome: self.record(c, row_id, account, outcome),
        )

    def attempt(
        self, account: Account, to: str, body: dict[str, Any], *, public: bool
    ) -> str | Exception:
        """Send once, with no transaction open: the platform's message id, or the error."""
        platform = PLATFORMS[account.platform]
        try:
            with self.client() as client:
                if public and isinstance(platform, X):
                    return platform.reply_public(
                        client, account.settings, account.secrets, body["in_reply_to"], body["text"]
                    )
                return platform.send(
                    client,
                    account.settings,
                    account.secrets,
                    to,
                    body["text"],
                    template=body.get("template"),
                )
        except (SendFailed, httpx.HTTPError) as exc:
            return exc

    def record(self, conn: Connection, row_id: int, account: Account, outcome: Any) -> None:
        """Record one attempt in the job's completing transaction: sent, failed, or
        queued again for later."""
        query = sa.select(channel_messages).where(channel_messages.c.id == row_id)
        row = conn.execute(query if self.db.is_sqlite else query.with_for_update()).first()
        if row is None or row.status != "queued":
            return
        platform = PLATFORMS[account.platform]
        attempts = int(row.attempts) + 1
        values: dict[str, Any] = {"attempts": attempts}
        if isinstance(outcome, Exception):
            retry = isinstance(outcome, httpx.HTTPError) or getattr(outcome, "retry", False)
            error = str(outcome)[:2000]
            if retry and attempts < MAX_ATTEMPTS:
                wait = getattr(outcome, "after", None) or min(3600.0, 30.0 * 2 ** (attempts - 1))
                values["error"] = error
                self.queue.schedule(
                    SEND,
                    self.now() + timedelta(seconds=wait),
                    {"message": row_id},
                    key=f"{SEND}:{row_id}",
                    conn=conn,
                )
            else:
                values |= {"status": "failed", "error": error, "done_at": self.now()}
        else:
            values |= {
                "status": "sent",
                "external_id": f"{platform.name}:{outcome}",
                "error": None,
                "done_at": self.now(),
            }
        conn.execute(
            channel_messages.update().where(channel_messages.c.id == row_id).values(**values)
        )
        if values.get("status") == "failed":
            self._tell_owner(conn, row, platform.channel, str(values["error"]))
        log.info(
            "%s message %d attempt %d: %s",
            platform.name,
            row_id,
            attempts,
            values.get("error") or values.get("status", "retry"),
        )


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def platform_time(row: Any) -> datetime:
    """When the platform says an inbound message was sent (its ``sent-at:`` flag), else
    when it reached this node (messages stored before the flag existed)."""
    for flag in orjson.loads(row.flags or "[]"):
        if isinstance(flag, str) and flag.startswith(SENT_AT):
            try:
                return parse_time(flag[len(SENT_AT) :])
            except ValueError:
                break
    return _aware(row.created_at)
