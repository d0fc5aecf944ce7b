"""The inbound pipeline every channel shares (DESIGN.md "Channels").

    parsed message ─► dedupe ─► identify customer ─► thread to a case ─► append event
                   ─► notify owner / apply timers

A connector turns its raw input into an ``Inbound`` and calls ``Intake.receive``. One
database transaction records the message, the customer (if new), the case (if new) and
the customer's ``message.posted`` event, so a process killed half-way leaves nothing
behind and the channel's retry (an SMTP client without its 250, an IMAP message not yet
marked read, a webhook without its 200) delivers it again; the dedupe key then makes a
second delivery of the same message a no-op, even when two arrive at once.

Threading, in order: the case's direct-line token, then the ids of earlier messages the
new one refers to (Message-ID / In-Reply-To / References for email), then a case number
tagged in the subject — the last only when the sender is the case's own customer, since
anyone can type a number. A direct line or a reference from someone who is not the
case's customer is *held* for a member to release, never appended in the customer's
name; so is a message its connector marks ``hold`` (mail whose sender failed
authentication). Machine-generated messages are recorded by the connector with
``record`` and never open a case.

Nothing a sender does makes a message vanish (docs/email.md, "What a sender cannot do"):
beyond ``new_cases_per_hour`` new cases from one sender in an hour, the next one is
stored and held (its owner, or the desk, told once), and a member's release opens its
case. Automatic answers (a connector's acknowledgement) are what the limits brake:
``Receipt.answer`` is false past ``acknowledgements_per_hour`` to one sender, when the
sender wrote more than ``loop_limit(channel)`` messages in a minute (an auto-responder
ping-pong, which stops by itself), or when the message asked for none (``quiet``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord import faults
from accord.channels.refs import CaseRef, CaseRefs
from accord.core.bodies import MAX_TEXT
from accord.core.timefmt import parse_time
from accord.customers.directory import Customers
from accord.node import Node
from accord.service import settings
from accord.service.errors import Conflict
from accord.service.negotiation import Negotiation
from accord.service.ownership import SYSTEM_MEMBER, Ownership
from accord.store.cases import Authoring
from accord.store.tables import (
    case_customers,
    case_owners,
    case_refs,
    channel_messages,
    members,
)

log = logging.getLogger("accord.channels")
Clock = Callable[[], datetime]

CUSTOMER_PARTY = "customer"
LOOP_LIMIT = 5
"""More messages than this from one sender within LOOP_WINDOW is a loop: they are all
filed, and no automatic answer goes to that sender until the minute has passed."""
LOOP_LIMITS: Mapping[str, int] = {"webchat": 30}
"""Channels whose people write faster than LOOP_LIMIT: in a web chat people type several
short lines, and no auto-responder sits behind a chat window."""
LOOP_WINDOW = timedelta(minutes=1)
LIMIT_WINDOW = timedelta(hours=1)
"""The window of the per-sender limits on new cases and acknowledgements."""
NEW_CASE = "new-case"
"""The flag of an inbound message that opened its case (what the new-case limit counts)."""
ANSWERED = "answered"
"""The flag of an inbound message its connector was allowed to answer automatically."""
MAX_TITLE = 200
TRUNCATED = "\n\n[truncated: the whole message is kept on this node]"


@dataclass(frozen=True)
class Inbound:
    """One message as a connector hands it to the pipeline."""

    channel: str
    external_id: str  # the platform's id of the message (email: its Message-ID)
    content_hash: str  # of what the sender wrote, so a re-sent copy with new headers dedupes
    identity_kind: str  # "email", "phone", …
    identity: str
    sender_name: str
    subject: str
    text: str
    attachments: tuple[dict[str, Any], ...] = ()  # file values, their bytes already stored
    thread_ids: tuple[str, ...] = ()
    direct_token: str | None = None
    subject_number: int | None = None
    recipients: tuple[str, ...] = ()
    raw_sha256: str | None = None
    size: int = 0
    flags: tuple[str, ...] = ()
    mailbox_id: int | None = None
    kind: str = "message"
    join_open: bool = False
    """A messaging platform's conversation: a known customer's message with nothing to
    thread by joins their one open case (mail asks instead: subjects start new topics)."""
    hold: str | None = None
    """Why a member must look at it before it is written in anyone's name (e.g. the
    sender failed authentication): it is held, wherever it threads."""
    quiet: str | None = None
    """Why no automatic answer may go to it (a list, ``X-Auto-Response-Suppress``); the
    message itself is filed as any other."""
    idempotency_key: str | None = None
    """A key the sender promises names this message and no other (the inbound API's
    Idempotency-Key): the same key with another content is ``KeyReused``, decided in the
    intake's transaction and by a unique index, so two deliveries at once make one case."""

    @property
    def dedupe_key(self) -> str:
        material = f"{self.channel}\0{self.external_id}\0{self.content_hash}".encode()
        return hashlib.sha256(material).hexdigest()


class KeyReused(Conflict):
    """The message's ``idempotency_key`` already names a different message."""


@dataclass(frozen=True)
class Receipt:
    """What the pipeline did with a message."""

    status: str  # stored | held | ignored | bounce | duplicate
    row_id: int | None
    case_id: str | None = None
    customer_id: int | None = None
    new_case: bool = False
    new_customer: bool = False
    event_ids: tuple[str, ...] = ()
    threaded_by: str | None = None  # direct-line | reference | subject-tag | open-case | new-case
    reason: str | None = None
    ref: CaseRef | None = None
    owner: str | None = None  # display name of the new case's owner, if routing found one
    open_cases: tuple[tuple[str, str], ...] = field(default=())
    """For a new case of a known customer: their other open cases (id, title)."""
    answer: bool = False
    """Whether the connector may answer automatically (acknowledge a new case): false
    past the per-sender limits, in a loop, or for a ``quiet`` message."""


# The statements of the inbound path, built once: building a statement costs several
# times what running it does (docs/email.md, "Where the time goes").
_M = channel_messages.c
_INSERT = channel_messages.insert().returning(_M.id)
_EARLIER = sa.select(_M.id, _M.case_id, _M.customer_id, _M.status).where(
    _M.dedupe_key == sa.bindparam("key")
)
_KEYED = sa.select(_M.id).where(
    _M.channel == sa.bindparam("channel"), _M.idempotency_key == sa.bindparam("key")
)


def _counted(condition: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


# One look at a sender's last hour (the index on channel, sender, created_at): messages in
# the last minute, new cases and automatic answers in the hour, messages held in the hour.
_RECENT = (
    sa.select(
        _counted(_M.created_at >= sa.bindparam("minute")).label("minute"),
        _counted(_M.flags.contains(f'"{NEW_CASE}"', autoescape=True)).label("new_cases"),
        _counted(_M.flags.contains(f'"{ANSWERED}"', autoescape=True)).label("answered"),
        _counted(_M.status == "held").label("held"),
    )
    .select_from(channel_messages)
    .where(
        _M.channel == sa.bindparam("channel"),
        _M.sender == sa.bindparam("sender"),
        _M.created_at >= sa.bindparam("hour"),
        _M.direction == "in",
    )
)
_THREADED = (
    sa.select(_M.case_id)
    .where(
        _M.channel == sa.bindparam("channel"),
        _M.external_id.in_(sa.bindparam("ids", expanding=True)),
        _M.case_id.is_not(None),
    )
    .order_by(_M.id.desc())
    .limit(1)
)


class Intake:
    def __init__(
        self,
        node: Node,
        negotiation: Negotiation,
        ownership: Ownership,
        *,
        party_id: str,
        now: Clock,
        loop_limits: Mapping[str, int] = LOOP_LIMITS,
    ) -> None:
        self.node = node
        self.db = node.db
        self.negotiation = negotiation
        self.ownership = ownership
        self.party_id = party_id
        self.now = now
        self.loop_limits = loop_limits
        self.customers = Customers(node.db, now=now)
        self.refs = CaseRefs(node.db, now=now)

    # -- receiving ------------------------------------------------------------------

    def receive(
        self, message: Inbound, then: Callable[[Connection, Receipt], None] | None = None
    ) -> Receipt:
        """Store ``message`` on its case (or hold or ignore it); idempotent. ``then`` runs
        in the same transaction for a message just stored (a connector's acknowledgement
        goes to the outbox in the same commit)."""
        try:
            with self.db.write() as conn:
                receipt = self._receive(conn, message, answerable=then is not None)
                if then is not None and receipt.status == "stored":
                    then(conn, receipt)
                faults.point("intake.before-commit")
        except sa.exc.IntegrityError:
            # The same message, delivered twice at once: the other copy won the race (or
            # another message under the same idempotency key did).
            with self.db.read() as conn:
                earlier = self._earlier(conn, message.dedupe_key)
                if earlier is None:
                    self._check_key(conn, message)
            if earlier is None:
                raise
            return earlier
        self.db.after_commit(lambda: self._after(receipt))
        return receipt

    def record(self, message: Inbound, status: str, reason: str) -> Receipt:
        """Keep a message that must not reach a case (auto-reply, bounce, list mail)."""
        with self.db.write() as conn:
            earlier = self._earlier(conn, message.dedupe_key)
            if earlier is not None:
                return earlier
            row_id = self._insert(conn, message, status, None, None, None, reason=reason)
        log.info("%s message %d %s: %s", message.channel, row_id, status, reason)
        return Receipt(status, row_id, reason=reason)

    def _receive(self, conn: Connection, message: Inbound, *, answerable: bool) -> Receipt:
        earlier = self._earlier(conn, message.dedupe_key)
        if earlier is not None:
            return earlier
        self._check_key(conn, message)
        customer_id = self.customers.find(conn, message.identity_kind, message.identity)
        ref, how = self._thread(conn, message, customer_id)
        if ref is None and message.join_open and customer_id is not None:
            open_cases = self.customers.open_cases(conn, customer_id)
            if len(open_cases) == 1:
                ref, how = self.refs.ensure(conn, open_cases[0][0]), "open-case"
        recent = self._recent(conn, message)
        if message.hold is not None:
            if ref is not None:
                return self._hold(conn, message, ref, customer_id, message.hold)
            return self._hold_new(conn, message, customer_id, message.hold, recent)
        if ref is not None:
            owner = self.customers.of_case(conn, ref.case_id)
            if owner is None or owner[0] != customer_id:
                why = (
                    "the case has no customer on this node"
                    if owner is None
                    else f"the sender is not the case's customer (came by {how})"
                )
                return self._hold(conn, message, ref, customer_id, why)
            if self._past_reopening(conn, ref.case_id):
                return self._opening(conn, message, customer_id, recent, answerable, follows=ref)
            event_ids = self._post(conn, message, ref.case_id, owner[1])
            event_id = event_ids[0]
            row_id = self._insert(conn, message, "stored", ref.case_id, customer_id, event_id)
            return Receipt(
                "stored",
                row_id,
                ref.case_id,
                customer_id,
                event_ids=event_ids,
                threaded_by=how,
                ref=ref,
            )
        return self._opening(conn, message, customer_id, recent, answerable)

    def _recent(self, conn: Connection, message: Inbound) -> Any:
        now = self.now()
        return conn.execute(
            _RECENT,
            {
                "channel": message.channel,
                "sender": message.identity,
                "minute": now - LOOP_WINDOW,
                "hour": now - LIMIT_WINDOW,
            },
        ).one()

    def _opening(
        self,
        conn: Connection,
        message: Inbound,
        customer_id: int | None,
        recent: Any,
        answerable: bool,
        *,
        follows: CaseRef | None = None,
    ) -> Receipt:
        """A new case, within the sender's limits; beyond them the message is held."""
        policy = settings.mail_policy_in(conn)
        if int(recent.new_cases) >= policy.new_cases_per_hour:
            why = (
                f"more than {policy.new_cases_per_hour} new cases in an hour from this sender: "
                "release it to open its case"
            )
            return self._hold_new(conn, message, customer_id, why, recent)
        answer = (
            answerable
            and message.quiet is None
            and int(recent.minute) < self.loop_limit(message.channel)
            and int(recent.answered) < policy.acknowledgements_per_hour
        )
        return self._new_case(conn, message, customer_id, follows=follows, answer=answer)

    def _past_reopening(self, conn: Connection, case_id: str) -> bool:
        """Whether the case was resolved longer ago than ``reopen_within_days``: then a
        message opens a new case that names it instead of reopening it."""
        state = self.node.cases.state_in(conn, case_id)
        if state is None or not state["resolved"] or not state["satisfied"]:
            return False
        resolved_at = max(parse_time(s["time"]) for s in state["satisfied"].values())
        days = settings.reopen_within_days(self.db)
        return bool(self.now() - resolved_at > timedelta(days=days))

    def _new_case(
        self,
        conn: Connection,
        message: Inbound,
        customer_id: int | None,
        *,
        follows: CaseRef | None = None,
        answer: bool = False,
        released: int | None = None,
    ) -> Receipt:
        """Open a case for ``message``; ``released`` is the row of a held message a member
        released (it is updated by the caller, not inserted again)."""
        new_customer = customer_id is None
        name = message.sender_name or "Customer"
        if customer_id is None:
            customer_id, _ = self.customers.identify(
                conn, message.identity_kind, message.identity, name
            )
            open_cases: list[tuple[str, str]] = []
        else:
            open_cases = self.customers.open_cases(conn, customer_id)
        body = self.negotiation.opening(
            title=_title(message),
            party_id=self.party_id,
            party_name=self.node.name,
            party_url=self.node.url,
            customer={"id": CUSTOMER_PARTY, "name": name[:200], "kind": "person"},
        )
        items: list[Any] = [("case.opened", body), self._message_event(message, CUSTOMER_PARTY)]
        if follows is not None:  # the old case was resolved too long ago to reopen
            items.append(
                (
                    "data.set",
                    {
                        "key": "follows-case",
                        "value": {"type": "text", "value": f"#{follows.number} {follows.case_id}"},
                        "label": f"Follows case #{follows.number}, resolved earlier",
                    },
                )
            )
        opened, posted, *linked = self.node.cases.create_many(
            self.node.key,
            None,
            items,
            member=SYSTEM_MEMBER,
            time=self.now(),
            via=message.channel,
            conn=conn,
        )
        case_id, event_id = opened.case, posted.id
        self.customers.link_case(conn, case_id, CUSTOMER_PARTY, customer_id)
        ref = self.refs.ensure(conn, case_id)
        marks = (NEW_CASE, ANSWERED) if answer else (NEW_CASE,)
        row_id = released or self._insert(
            conn, message, "stored", case_id, customer_id, event_id, marks=marks
        )
        owner = self.ownership.route_in(conn, case_id)
        if owner is None:
            log.warning("case %s has no owner yet: nobody is available to route it to", case_id)
        return Receipt(
            "stored",
            row_id,
            case_id,
            customer_id,
            new_case=True,
            new_customer=new_customer,
            event_ids=(
                opened.id,
                event_id,
                *(e.id for e in linked),
                *(owner.event_ids if owner else ()),
            ),
            threaded_by="new-case",
            ref=ref,
            owner=owner.member.display_name if owner else None,
            open_cases=tuple(open_cases[:3]),
            answer=answer,
        )

    def _thread(
        self, conn: Connection, message: Inbound, customer_id: int | None
    ) -> tuple[CaseRef | None, str | None]:
        if message.direct_token:
            ref = self.refs.by_token(conn, message.direct_token)
            if ref is not None:
                return ref, "direct-line"
        if message.thread_ids:
            case_id = conn.execute(
                _THREADED,
                {"channel": message.channel, "ids": list(message.thread_ids)},
            ).scalar()
            if case_id is not None:
                return self.refs.ensure(conn, case_id), "reference"
        if message.subject_number is not None and customer_id is not None:
            ref = self.refs.by_number(conn, message.subject_number)
            if ref is not None:
                owner = self.customers.of_case(conn, ref.case_id)
                if owner is not None and owner[0] == customer_id:
                    return ref, "subject-tag"
        return None, None

    def loop_limit(self, channel: str) -> int:
        """How many messages a minute one sender may write on ``channel`` before the loop
        brake stops automatic answers to them (their messages are all filed)."""
        return self.loop_limits.get(channel, LOOP_LIMIT)

    def _hold(
        self,
        conn: Connection,
        message: Inbound,
        ref: CaseRef,
        customer_id: int | None,
        why: str,
    ) -> Receipt:
        row_id = self._insert(conn, message, "held", ref.case_id, customer_id, None, reason=why)
        owner = conn.execute(
            sa.select(case_owners.c.member_id).where(case_owners.c.case_id == ref.case_id)
        ).scalar()
        if owner is not None:
            self.ownership.notify(
                conn,
                int(owner),
                ref.case_id,
                "message.held",
                f"A {message.channel} message from {message.identity} for case #{ref.number} "
                f"is held for you: {why}. Release it to the case or open a new one.",
            )
        return Receipt("held", row_id, ref.case_id, customer_id, reason=why, ref=ref)

    def _hold_new(
        self,
        conn: Connection,
        message: Inbound,
        customer_id: int | None,
        why: str,
        recent: Any,
    ) -> Receipt:
        """Hold a message that belongs to no case yet; releasing it opens its case. The
        owner of the sender's latest case (else the desk: admins and team leads) hears of
        the first one held from a sender in an hour, not of every one in a flood."""
        row_id = self._insert(conn, message, "held", None, customer_id, None, reason=why)
        if int(recent.held) == 0:
            text = (
                f"A {message.channel} message from {message.identity} is held for you: {why}. "
                f"Release it (message {row_id}) to open its case."
            )
            latest = self._latest_case(conn, customer_id)
            owner = None
            if latest is not None:
                owner = conn.execute(
                    sa.select(case_owners.c.member_id).where(case_owners.c.case_id == latest)
                ).scalar()
            for member_id in [int(owner)] if owner is not None else self.desk(conn):
                self.ownership.notify(conn, member_id, latest, "message.held", text)
        return Receipt("held", row_id, None, customer_id, reason=why)

    def _latest_case(self, conn: Connection, customer_id: int | None) -> str | None:
        if customer_id is None:
            return None
        found = conn.execute(
            sa.select(case_customers.c.case_id)
            .join(case_refs, case_refs.c.case_id == case_customers.c.case_id)
            .where(case_customers.c.customer_id == customer_id)
            .order_by(case_refs.c.number.desc())
            .limit(1)
        ).scalar()
        return None if found is None else str(found)

    def desk(self, conn: Connection) -> list[int]:
        """Who hears of what belongs to no case: the active admins and team leads (every
        active member when there are none)."""
        active = sa.select(members.c.id, members.c.role).where(members.c.disabled_at.is_(None))
        rows = conn.execute(active.order_by(members.c.id)).all()
        chosen = [int(r.id) for r in rows if r.role in ("admin", "lead")]
        return chosen or [int(r.id) for r in rows]

    def _post(
        self, conn: Connection, message: Inbound, case_id: str, party: str
    ) -> tuple[str, ...]:
        """Post the message; on a resolved case, this node reopens it in the same
        transaction (a relayed message is all a channel may write for the customer).
        Returns the message's event id first."""
        items: list[Any] = [self._message_event(message, party)]
        state = self.node.cases.state_in(conn, case_id)
        if state is not None and state["resolved"]:
            name = (message.sender_name or "The customer")[:200]
            reason = f"{name} wrote on the resolved case (via {message.channel})"
            items.append(("case.reopened", {"reason": reason}, {"via": message.channel}))
        events = self.node.cases.create_many(
            self.node.key,
            case_id,
            items,
            member=SYSTEM_MEMBER,
            time=self.now(),
            conn=conn,
        )
        return tuple(e.id for e in events)

    def _message_event(self, message: Inbound, party: str) -> tuple[str, dict[str, Any], Authoring]:
        """The ``message.posted`` a hosted party's message becomes, written by this node
        on the party's behalf (``for_party``), its session naming the channel message."""
        body: dict[str, Any] = {"text": _case_text(message)}
        if message.attachments:
            body["attachments"] = list(message.attachments[:100])
        digest = hashlib.sha256(message.external_id.encode()).hexdigest()[:24]
        return (
            "message.posted",
            body,
            {
                "member": (message.sender_name or "Customer")[:200],
                "via": message.channel,
                "for_party": party,
                "session": f"{message.channel}:{digest}",
            },
        )

    def _insert(
        self,
        conn: Connection,
        message: Inbound,
        status: str,
        case_id: str | None,
        customer_id: int | None,
        event_id: str | None,
        *,
        reason: str | None = None,
        marks: tuple[str, ...] = (),
    ) -> int:
        held = status == "held"
        body = (
            orjson.dumps(
                {
                    "text": message.text,
                    "attachments": list(message.attachments),
                    "sender_name": message.sender_name,
                }
            )
            if held
            else None
        )
        now = self.now()
        values = {
            "channel": message.channel,
            "direction": "in",
            "mailbox_id": message.mailbox_id,
            "external_id": message.external_id,
            "dedupe_key": message.dedupe_key,
            "idempotency_key": message.idempotency_key,
            "case_id": case_id,
            "customer_id": customer_id,
            "event_id": event_id,
            "status": status,
            "kind": message.kind,
            "sender": message.identity,
            "recipients": orjson.dumps(list(message.recipients[:100])).decode(),
            "subject": message.subject[:1000],
            "body": body,
            "thread": orjson.dumps(list(message.thread_ids)).decode(),
            "raw_sha256": message.raw_sha256,
            "size": message.size,
            "flags": orjson.dumps([*message.flags, *marks]).decode(),
            "error": reason,
            "attempts": 0,
            "created_at": now,
            "done_at": now,
        }
        return int(conn.execute(_INSERT, values).scalar_one())

    def _check_key(self, conn: Connection, message: Inbound) -> None:
        """``KeyReused`` when the message's idempotency key already names a message
        (which is then another one: the same one was found by its dedupe key)."""
        if message.idempotency_key is None:
            return
        taken = conn.execute(
            _KEYED, {"channel": message.channel, "key": message.idempotency_key}
        ).scalar()
        if taken is not None:
            raise KeyReused(
                f"the key {message.idempotency_key!r} names message {taken}, another message",
                field="Idempotency-Key",
            )

    def _earlier(self, conn: Connection, key: str) -> Receipt | None:
        row = conn.execute(_EARLIER, {"key": key}).first()
        if row is None:
            return None
        return Receipt(
            "duplicate",
            int(row.id),
            row.case_id,
            row.customer_id,
            reason=f"already received (message {row.id}, {row.status})",
        )

    def _after(self, receipt: Receipt) -> None:
        """After the commit: the listeners (peers, timers, webhooks) hear of the events."""
        if receipt.case_id is None or not receipt.event_ids:
            return
        self.negotiation.announce(receipt.case_id, list(receipt.event_ids))

    # -- held messages ----------------------------------------------------------------

    def held(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(channel_messages)
                .where(channel_messages.c.status == "held")
                .order_by(channel_messages.c.id)
                .limit(limit)
            ).all()
        return [message_json(r) for r in rows]

    def release(self, row_id: int, *, link: bool, by: str) -> Receipt:
        """Append a held message to its case as the case's customer; with ``link`` the
        sender's identity joins that customer, so their next message goes straight in.
        A held message that belongs to no case yet (past the sender's new-case limit, or
        failed authentication with nothing to thread to) opens its case."""
        with self.db.write() as conn:
            row = conn.execute(
                self._lock(sa.select(channel_messages).where(channel_messages.c.id == row_id))
            ).first()
            if row is None or row.status != "held":
                raise Conflict(
                    f"message {row_id} is not held (it is {row.status if row else 'unknown'})"
                )
            held = orjson.loads(row.body or b"{}")
            message = Inbound(
                channel=row.channel,
                external_id=row.external_id,
                content_hash="",
                identity_kind=row.channel if row.channel != "email" else "email",
                identity=row.sender,
                sender_name=held.get("sender_name", ""),
                subject=row.subject,
                text=held.get("text", ""),
                attachments=tuple(held.get("attachments", [])),
            )
            if row.case_id is None:
                receipt = self._release_new(conn, row, message, by)
            else:
                receipt = self._release_to_case(conn, row, message, link=link, by=by)
        self._after(receipt)
        return receipt

    def _release_to_case(
        self, conn: Connection, row: Any, message: Inbound, *, link: bool, by: str
    ) -> Receipt:
        owner = self.customers.of_case(conn, row.case_id)
        if owner is None:
            raise Conflict("the case has no customer on this node to release the message to")
        if link:
            kind = "email" if row.channel == "email" else row.channel
            if self.customers.find(conn, kind, row.sender) is None:
                self.customers.add_identity(conn, owner[0], kind, row.sender, verified=True)
        event_ids = self._post(conn, message, row.case_id, owner[1])
        conn.execute(
            channel_messages.update()
            .where(channel_messages.c.id == row.id)
            .values(
                status="stored",
                event_id=event_ids[0],
                customer_id=owner[0],
                body=None,
                error=f"released by {by}" + (" (identity linked)" if link else ""),
                done_at=self.now(),
            )
        )
        return Receipt(
            "stored",
            int(row.id),
            row.case_id,
            owner[0],
            event_ids=event_ids,
            threaded_by="released",
        )

    def _release_new(self, conn: Connection, row: Any, message: Inbound, by: str) -> Receipt:
        customer_id = self.customers.find(conn, message.identity_kind, message.identity)
        opened = self._new_case(conn, message, customer_id, released=int(row.id))
        conn.execute(
            channel_messages.update()
            .where(channel_messages.c.id == row.id)
            .values(
                status="stored",
                case_id=opened.case_id,
                event_id=opened.event_ids[1],
                customer_id=opened.customer_id,
                body=None,
                flags=orjson.dumps([*orjson.loads(row.flags), NEW_CASE]).decode(),
                error=f"released by {by}: opened its case",
                done_at=self.now(),
            )
        )
        return replace(opened, threaded_by="released")

    def _lock(self, query: sa.Select[Any]) -> sa.Select[Any]:
        return query if self.db.is_sqlite else query.with_for_update()


def message_json(row: Any) -> dict[str, Any]:
    """A channel message as the API and CLI show it (never its raw bytes)."""
    return {
        "id": int(row.id),
        "channel": row.channel,
        "direction": row.direction,
        "kind": row.kind,
        "status": row.status,
        "case": row.case_id,
        "customer": row.customer_id,
        "event": row.event_id,
        "sender": row.sender,
        "recipients": orjson.loads(row.recipients),
        "subject": row.subject,
        "external_id": row.external_id,
        "flags": orjson.loads(row.flags),
        "error": row.error,
        "attempts": int(row.attempts),
        "size": int(row.size),
        "created_at": row.created_at.isoformat(),
        "done_at": row.done_at.isoformat() if row.done_at else None,
    }


def _title(message: Inbound) -> str:
    title = " ".join(message.subject.split())
    if not title:
        first = next((line.strip() for line in message.text.splitlines() if line.strip()), "")
        title = first or f"{message.channel} message from {message.sender_name or 'a customer'}"
    return title[:MAX_TITLE]


def _case_text(message: Inbound) -> str:
    text = message.text.strip()
    if not text:
        text = "(no text)" if not message.attachments else ""
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - len(TRUNCATED)] + TRUNCATED
    return text
