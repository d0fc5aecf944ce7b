"""The email channel: raw mail in, the shared pipeline, replies and notices out.

``receive`` is where both inbound paths (the SMTP listener and IMAP polling) meet:
the raw bytes are kept (a content-addressed blob), parsed, and either recorded and
ignored (auto-replies, lists, bounces — the last mark our outbound mail as bounced) or
handed to the shared ``Intake``. A new case is acknowledged in the same transaction
that opens it: the mail names the owner and gives the case's direct line, and when the
customer already has an open case it asks whether the new mail belongs there — a reply
of "yes" moves it — so nobody is asked to identify themselves again.

Outbound, a member's ``reply`` writes the message into the case and queues the mail in
one commit. Accord's own notices reach an email customer too: a proposal from our side
(with the customer's portal link to accept it), a handoff or any other word Accord
writes in the case, and the reminder before an agreed callback.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.auth.portal import PortalLinks
from accord.channels.blobs import BlobStore
from accord.channels.email import policy
from accord.channels.email.compose import Outgoing, reply_subject
from accord.channels.email.mailboxes import Mailbox, Mailboxes
from accord.channels.email.outbox import Outbox
from accord.channels.email.parse import (
    Forwarded,
    MailLimits,
    MailParseError,
    ParsedMail,
    parse_mail,
)
from accord.channels.email.policy import stable_id
from accord.channels.intake import CUSTOMER_PARTY, Inbound, Intake, Receipt, message_json
from accord.channels.refs import CaseRef, subject_number, tagged
from accord.core.errors import AccordError
from accord.core.events import Event
from accord.core.state import Activity, State
from accord.core.timefmt import parse_time
from accord.node import Node
from accord.service import settings
from accord.service.errors import Conflict, Invalid, NotFound
from accord.service.negotiation import Actor, Negotiation, Outcome, reopen_reason
from accord.service.ownership import SYSTEM_MEMBER
from accord.service.summary import format_value
from accord.store.tables import channel_messages

log = logging.getLogger("accord.channels.email")
TRANSIENT: tuple[type[Exception], ...] = (sa.exc.OperationalError, sa.exc.InterfaceError, OSError)
"""Failures that may pass (the database unreachable, locked or restarting, the disk): the
sender is asked to try again later. Any other error is the mail's own (poison)."""
PORTAL_TTL = timedelta(days=30)
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8640"
"""Where case links point when the node has no public URL (``accord init --url``)."""
YES = frozenset({"yes", "y", "yes please", "ja", "oui", "si", "sí", "sim", "correct", "same"})


class NoMailbox(Invalid):
    """No configured mailbox answers for the mail's recipients."""


class MessageTooLarge(Invalid):
    """The mail is larger than its mailbox takes (``max_message_bytes``): refused whole,
    before anything is stored (SMTP ``552``, ``accord mail receive`` exit status 69)."""

    status = 413
    code = "too-large"


# Local parts of addresses that send for a machine (contact forms, notifications): their
# display name ("Website", "Shop") is not the requester's name.
_ROBOT = re.compile(
    r"(?:no-?reply|do-?not-?reply|donotreply|mailer|forms?|webforms?|website|wordpress"
    r"|notifications?|notify|contact-?form)(?:[-+._].*)?",
    re.IGNORECASE,
)
# "FW: …", "Fwd: …" and their translations, after any "Re:": a forward, not a reply.
_FORWARD = re.compile(
    r"\s*(?:(?:re|aw|sv|antw|r)\s*:\s*)*(?:fwd?|wg|tr|rv|enc|vs|vb|doorst|pd|i)\s*:", re.I
)


def requester(parsed: ParsedMail, boxes: Sequence[Mailbox]) -> tuple[str, str]:
    """Who the mail is from, as the one to answer: (address, display name).

    **Reply-To, else From, else Sender** (``parse`` already fell back from From to Sender
    and Return-Path). A Reply-To is not used when it is one of our own mailboxes or their
    direct lines, or a mailing list: the List-Post address, or, in mail that came through
    a list, one of the addresses the mail was sent to (a list that sets Reply-To to
    itself). The name is the Reply-To's display name, else the From's — unless the From is
    a machine's address (``noreply@``, ``forms@``…), whose name is the machine's."""
    reply_to = parsed.reply_to
    ours = any(box.answers_for(reply_to) for box in boxes) if reply_to else False
    listed = bool(reply_to) and (
        reply_to == parsed.list_post or (parsed.listed and reply_to in (*parsed.to, *parsed.cc))
    )
    if not reply_to or reply_to == parsed.sender or ours or listed:
        return parsed.sender, parsed.sender_name
    robot = _ROBOT.fullmatch(parsed.sender.partition("@")[0]) is not None
    return reply_to, parsed.reply_to_name or ("" if robot else parsed.sender_name)


@dataclass(frozen=True)
class Arrival:
    """One mail of a burst that arrived together (``MailChannel.receive_many``)."""

    raw: bytes
    recipients: Sequence[str] = ()
    mailbox: Mailbox | None = None
    envelope_sender: str | None = None


@dataclass(frozen=True)
class Reply:
    outcome: Outcome
    message_id: int  # the outbox row


class MailChannel:
    def __init__(
        self,
        node: Node,
        intake: Intake,
        outbox: Outbox,
        mailboxes: Mailboxes,
        blobs: BlobStore,
        links: PortalLinks,
        negotiation: Negotiation,
        *,
        now: Callable[[], datetime],
        public_url: Callable[[], str],
    ) -> None:
        self.node = node
        self.db = node.db
        self.intake = intake
        self.outbox = outbox
        self.mailboxes = mailboxes
        self.blobs = blobs
        self.links = links
        self.negotiation = negotiation
        self.now = now
        self.public_url = public_url

    # -- inbound ---------------------------------------------------------------------

    def receive(
        self,
        raw: bytes,
        *,
        recipients: Sequence[str] = (),
        mailbox: Mailbox | None = None,
        envelope_sender: str | None = None,
    ) -> Receipt:
        """Take one raw mail (RFC 5322 bytes) from SMTP, IMAP or an upload.

        ``envelope_sender`` is SMTP's ``MAIL FROM`` (None when unknown): the null sender
        ``<>`` marks a bounce or an automatic answer (RFC 5321 4.5.5, RFC 3834), recorded
        and never a case or an acknowledgement. A mail whose handling raises on every
        attempt (poison) is kept as ``failed`` and the desk told, so the sender gets its
        250 instead of a 451 forever; only what may pass (the database unreachable or
        locked, the disk) raises for a try later, and the sender's own mistake (not a
        mail, too large, no mailbox for it) raises to be answered as such (554, 55x).

        A burst of one (``receive_many``): one path, one transaction, for every mail."""
        [result] = self.receive_many([Arrival(raw, recipients, mailbox, envelope_sender)])
        if isinstance(result, Exception):
            raise result
        return result

    def receive_many(self, arrivals: Sequence[Arrival]) -> list[Receipt | Exception]:
        """A burst of mails stored in one transaction (``Database.batch``): one commit,
        one fsync of the log, for all of them. Nothing is durable, so nothing may be
        acknowledged, before this returns.

        Each mail is a savepoint of its own: its own refusal (too large, not a mail, no
        mailbox for it) is its result and changes nothing; a poison mail is undone and kept
        as failed, as ``receive`` keeps it; the others stand. What may pass (the database,
        the disk) raises for the whole burst, of which then nothing is kept: every sender
        is asked to try again."""
        results: list[Receipt | Exception] = []
        with self.db.batch():
            # read once for the burst: the same in the one transaction
            boxes, trusted = self.mailboxes.all(), settings.mail_policy(self.db).authserv_ids
            for a in arrivals:
                try:
                    with self.db.write():  # a savepoint: this mail's writes stand or go together
                        receipt = self._receive(
                            a.raw, a.recipients, a.mailbox, a.envelope_sender, boxes, trusted
                        )
                except TRANSIENT:
                    raise
                except (MailParseError, Invalid) as exc:
                    results.append(exc)
                    continue
                except Exception as exc:
                    receipt = self._poison(a.raw, a.recipients, exc)
                results.append(receipt)
        return results

    def log(
        self,
        *,
        status: str | None = None,
        direction: str | None = None,
        case_id: str | None = None,
        before: int | None = None,
        limit: int | None = 50,
        oldest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """The mail log: email messages in and out with their status, newest first (a
        case's conversation oldest first); the one query behind the API and the CLI.
        ``before`` pages back by message id."""
        query = sa.select(channel_messages).where(channel_messages.c.channel == "email")
        if status:
            query = query.where(channel_messages.c.status == status)
        if direction:
            query = query.where(channel_messages.c.direction == direction)
        if case_id:
            query = query.where(channel_messages.c.case_id == case_id)
        if before:
            query = query.where(channel_messages.c.id < before)
        order = channel_messages.c.id if oldest_first else channel_messages.c.id.desc()
        query = query.order_by(order)
        if limit is not None:
            query = query.limit(limit)
        with self.db.read() as conn:
            return [message_json(r) for r in conn.execute(query)]

    def _poison(self, raw: bytes, recipients: Sequence[str], exc: Exception) -> Receipt:
        log.exception("a mail could not be handled; kept as failed for a member")
        why = f"{type(exc).__name__}: {str(exc)[:300]}"
        try:
            raw_sha: str | None = self.blobs.put(raw)
        except OSError:
            raw_sha = None
        digest = hashlib.sha256(raw).hexdigest()
        message = Inbound(
            channel="email",
            external_id=f"<{digest}@failed.accord.invalid>",
            content_hash=digest,
            identity_kind="email",
            identity="",
            sender_name="",
            subject="",
            text="",
            recipients=tuple(recipients)[:100],
            raw_sha256=raw_sha,
            size=len(raw),
        )
        receipt = self.intake.record(message, "failed", f"could not be handled: {why}")
        if receipt.status == "failed" and receipt.row_id is not None:
            with self.db.write() as conn:
                for member_id in self.intake.desk(conn):
                    self.intake.ownership.notify(
                        conn,
                        member_id,
                        None,
                        "mail.failed",
                        f"An incoming mail (message {receipt.row_id}, {len(raw)} bytes) could "
                        f"not be handled and is kept as failed, its original on this node: "
                        f"{why}",
                    )
        return receipt

    def _receive(
        self,
        raw: bytes,
        recipients: Sequence[str],
        mailbox: Mailbox | None,
        envelope_sender: str | None,
        boxes: Sequence[Mailbox],
        trusted: tuple[str, ...],
    ) -> Receipt:
        """One mail of a burst: ``boxes`` (our mailboxes) and ``trusted`` (the authserv-ids
        whose verdicts count) are read once for the burst."""
        mailbox = mailbox or self._mailbox_for(recipients, boxes)
        if len(raw) > mailbox.max_message_bytes:
            log.info(
                "refused a %d-byte mail for %s (limit %d)",
                len(raw),
                mailbox.address,
                mailbox.max_message_bytes,
            )
            raise MessageTooLarge(
                f"the message is {_size(len(raw))}; {mailbox.address} takes at most "
                f"{_size(mailbox.max_message_bytes)}",
                field="size",
            )
        parsed = parse_mail(
            raw,
            limits=MailLimits(
                max_attachment_bytes=mailbox.max_attachment_bytes,
                max_total_bytes=mailbox.max_message_bytes,
            ),
        )
        if "no-message-id" in parsed.flags:
            parsed = replace(parsed, message_id=stable_id(parsed))
        raw_sha = self.blobs.put(raw)
        address, name = requester(parsed, boxes)
        message = self._inbound(parsed, raw_sha, recipients, mailbox, address, name)
        if parsed.auto in ("bounce", "mailer-daemon"):
            return self._bounce(message, parsed)
        if envelope_sender is not None and not envelope_sender.strip("<> "):
            return self._bounce(message, parsed, why="null envelope sender (MAIL FROM:<>)")
        if parsed.auto is not None:
            return self.intake.record(message, "ignored", f"automatic mail ({parsed.auto})")
        if not address:
            return self.intake.record(message, "ignored", "no sender address to answer")
        if any(box.answers_for(address) for box in boxes):
            return self.intake.record(message, "ignored", "sent from one of our own mailboxes")
        moved = self._confirmed_move(message, parsed)
        if moved is not None:
            return moved
        message = self._forward_of_case(message, parsed)
        message = self._screened(message, parsed, raw, trusted)
        return self.intake.receive(
            message, then=lambda conn, r: self._acknowledge(conn, r, parsed, mailbox, address)
        )

    def _screened(
        self, message: Inbound, parsed: ParsedMail, raw: bytes, trusted: tuple[str, ...]
    ) -> Inbound:
        """The sender's authentication and what asks for no automatic answer."""
        quiet = policy.quiet(parsed)
        hold = None
        if trusted:
            verdict = policy.authenticate(raw, trusted)
            message = replace(message, flags=(*message.flags, f"auth:{verdict.result}"))
            if verdict.failed:
                hold = f"the sender is not authenticated: {verdict.detail}"
        if quiet is None and hold is None:
            return message
        return replace(message, quiet=quiet, hold=hold)

    def _mailbox_for(self, recipients: Sequence[str], boxes: Sequence[Mailbox]) -> Mailbox:
        active = [box for box in boxes if box.active]
        for recipient in recipients:
            found = next((box for box in active if box.answers_for(recipient)), None)
            if found is not None:
                return found
        default = active[0] if active else None
        if default is None:
            raise NoMailbox(
                "no mailbox is configured: add one with `accord mailbox add`", field="mailbox"
            )
        return default

    def _inbound(
        self,
        parsed: ParsedMail,
        raw_sha: str,
        recipients: Sequence[str],
        mailbox: Mailbox,
        address: str,
        name: str,
    ) -> Inbound:
        stored: list[dict[str, Any]] = []
        notes: list[str] = []
        if "encrypted" in parsed.flags:
            notes.append(
                "[encrypted mail (S/MIME or PGP): Accord cannot read it. The original "
                "message is kept on this node and can be downloaded from the case]"
            )
        for attachment in parsed.attachments:
            if attachment.data is None:
                notes.append(
                    f"[attachment {attachment.filename!r} ({_size(attachment.size)}) is over "
                    f"the {_size(mailbox.max_attachment_bytes)} limit: it is kept with the "
                    "original message on this node]"
                )
                continue
            digest = self.blobs.put(attachment.data)
            stored.append(
                {
                    "type": "file",
                    "sha256": digest,
                    "name": attachment.filename,
                    "size": attachment.size,
                    "media_type": attachment.media_type,
                }
            )
        limits = MailLimits()
        if "too-many-parts" in parsed.flags:
            notes.append(
                f"[this mail has more than {limits.max_parts} parts: the rest was not read "
                "and is kept with the original message on this node]"
            )
        if "too-deep" in parsed.flags:
            notes.append(
                f"[this mail is nested more than {limits.max_depth} levels deep: the deeper "
                "parts were not read and are kept with the original message on this node]"
            )
        text = parsed.new_text.strip() or parsed.text.strip()
        for forwarded in parsed.forwarded:
            text = (text + "\n\n" + _forwarded_text(forwarded)).strip()
        if notes:
            text = (text + "\n\n" + "\n".join(notes)).strip()
        everyone = [*recipients, *parsed.to, *parsed.cc]
        token = next((t for t in (mailbox.token_of(r) for r in everyone) if t), None)
        content = hashlib.sha256(
            orjson.dumps(
                [parsed.sender, parsed.subject, parsed.text, [a.sha256 for a in parsed.attachments]]
            )
        ).hexdigest()
        return Inbound(
            channel="email",
            external_id=parsed.message_id,
            content_hash=content,
            identity_kind="email",
            identity=address,
            sender_name=name,
            subject=parsed.subject,
            text=text,
            attachments=tuple(stored),
            thread_ids=(*parsed.references, *parsed.in_reply_to),
            direct_token=token,
            subject_number=subject_number(parsed.subject),
            recipients=tuple(dict.fromkeys(everyone))[:100],
            raw_sha256=raw_sha,
            size=parsed.size,
            flags=parsed.flags,
            mailbox_id=mailbox.id,
            kind="auto" if parsed.auto else "message",
        )

    def _bounce(
        self, message: Inbound, parsed: ParsedMail, *, why: str = "delivery failure report"
    ) -> Receipt:
        receipt = self.intake.record(message, "bounce", why)
        if receipt.status == "duplicate":
            return receipt
        why = " ".join(parsed.text.split())[:300] or "the recipient's server refused the mail"
        with self.db.write() as conn:
            count = self.outbox.mark_bounced(conn, parsed.bounced_ids, why)
        log.info("bounce for %d outbound message(s)", count)
        return receipt

    # -- acknowledgement and "does this belong to your open case?" ----------------------

    def _acknowledge(
        self,
        conn: Connection,
        receipt: Receipt,
        parsed: ParsedMail,
        mailbox: Mailbox,
        address: str,
    ) -> None:
        """The acknowledgement of a new case, to the requester (``requester``)."""
        if not receipt.new_case or receipt.ref is None or receipt.case_id is None:
            return
        if not receipt.answer:  # past the sender's limits, a loop, or asked for none
            return
        ref = receipt.ref
        owner = receipt.owner or "our team"
        # The sender is not verified: anyone can forge From:. So an acknowledgement echoes
        # nothing the incoming mail chose — no subject, no display name, no case title —
        # and cannot carry a spammer's text to the forged address (issue 22, row 7).
        lines = [
            "Hello,",
            "",
            f"Thank you for your message. It is case #{ref.number}, and {owner} "
            "owns it: they are accountable for it until it is resolved.",
            "",
            "Reply to this email any time — your replies go straight to your case "
            f"(its direct line is {mailbox.direct_line(ref.token)}).",
        ]
        flags: tuple[str, ...] = ()
        if receipt.open_cases:
            other_id, _title = receipt.open_cases[0]  # its title came from a mail: not echoed
            other = self.intake.refs.ensure(conn, other_id)
            lines += [
                "",
                f"You also have an open case with us: #{other.number}. "
                "If this message is about that one, just reply YES and we will add it "
                "there — you will not need to explain anything again.",
            ]
            flags = (f"asks:{other_id}",)
        lines += ["", f"— {mailbox.display_name}"]
        self.outbox.queue_mail(
            conn,
            mailbox,
            Outgoing(
                sender=mailbox.address,
                sender_name=mailbox.display_name,
                to=address,
                to_name="",
                subject=tagged("We have your message", ref.number),
                text="\n".join(lines),
                reply_to=mailbox.direct_line(ref.token),
                in_reply_to=parsed.message_id,
                references=(*parsed.references, parsed.message_id),
                auto="auto-replied",
                case_number=ref.number,
            ),
            kind="acknowledgement",
            case_id=receipt.case_id,
            customer_id=receipt.customer_id,
            flags=flags,
        )

    def _forward_of_case(self, message: Inbound, parsed: ParsedMail) -> Inbound:
        """A forward ("FW: … [Accord #38]") that nothing else threads belongs to case 38:
        it goes in by that case's direct line, so it is stored there when the case's
        customer forwarded it and held for the owner when a colleague did (a tag anyone
        can type never writes in the customer's name)."""
        number = message.subject_number
        if number is None or message.direct_token or not _FORWARD.match(parsed.subject):
            return message
        with self.db.read() as conn:
            if message.thread_ids:
                known = conn.execute(
                    sa.select(channel_messages.c.id)
                    .where(
                        channel_messages.c.channel == "email",
                        channel_messages.c.external_id.in_(list(message.thread_ids)),
                        channel_messages.c.case_id.is_not(None),
                    )
                    .limit(1)
                ).first()
                if known is not None:
                    return message  # threaded by its references
            ref = self.intake.refs.by_number(conn, number)
        if ref is None:
            return message
        return replace(message, direct_token=ref.token)

    def _confirmed_move(self, message: Inbound, parsed: ParsedMail) -> Receipt | None:
        """A "yes" to "is this about your open case?": move the first message there."""
        if parsed.new_text.strip().strip(".!").lower() not in YES or not message.thread_ids:
            return None
        with self.db.read() as conn:
            ack = conn.execute(
                sa.select(channel_messages)
                .where(
                    channel_messages.c.channel == "email",
                    channel_messages.c.direction == "out",
                    channel_messages.c.kind == "acknowledgement",
                    channel_messages.c.external_id.in_(list(message.thread_ids)),
                )
                .limit(1)
            ).first()
            if ack is None:
                return None
            asks = next((f[5:] for f in orjson.loads(ack.flags) if f.startswith("asks:")), None)
            customer = self.intake.customers.find(conn, "email", message.identity)
            first = conn.execute(
                sa.select(channel_messages)
                .where(
                    channel_messages.c.case_id == ack.case_id,
                    channel_messages.c.direction == "in",
                    channel_messages.c.status == "stored",
                )
                .order_by(channel_messages.c.id)
                .limit(1)
            ).first()
        if asks is None or customer is None or first is None or ack.customer_id != customer:
            return None
        answer = self.intake.record(message, "ignored", f"answered YES: moved to case {asks}")
        if answer.status == "duplicate":
            return answer
        return self.move(first.id, asks, by="the customer, answering YES by email")

    def move(self, row_id: int, to_case: str, *, by: str) -> Receipt:
        """Move a stored inbound message to another case of the same customer: the text
        is posted there in the customer's name, and the first case says where it went."""
        with self.db.write() as conn:
            row = conn.execute(
                sa.select(channel_messages).where(channel_messages.c.id == row_id)
            ).first()
            if row is None or row.direction != "in" or row.status != "stored":
                raise NotFound(f"no stored inbound message {row_id}")
            target = self.intake.customers.of_case(conn, to_case)
            if target is None or target[0] != row.customer_id:
                raise Conflict("a message moves only between cases of the same customer")
            posted = self.node.cases.get(row.case_id, [row.event_id])
            if not posted:
                raise NotFound(f"the case event of message {row_id} is not on this node")
            body = dict(posted[0].body)
            body.pop("topic", None)
            moved = self.node.cases.create(
                self.node.key,
                to_case,
                "message.posted",
                body,
                member=posted[0].author.member,
                time=self.now(),
                via="email",
                for_party=target[1],
                session=posted[0].author.session,
                conn=conn,
            )
            to_ref = self.intake.refs.ensure(conn, to_case)
            note = self.node.cases.create_many(
                self.node.key,
                row.case_id,
                [
                    (
                        "message.posted",
                        {"text": f"This message was moved to case #{to_ref.number} ({by})."},
                    ),
                    ("status.set", {"label": "moved"}),
                ],
                member=SYSTEM_MEMBER,
                time=self.now(),
                via="email",
                conn=conn,
            )
            conn.execute(
                channel_messages.update()
                .where(channel_messages.c.id == row_id)
                .values(
                    case_id=to_case, event_id=moved.id, error=f"moved from {row.case_id} by {by}"
                )
            )
            # Our answers to the moved mail (its acknowledgement) move with it, so the
            # customer's later replies in the same thread follow it to the new case.
            conn.execute(
                channel_messages.update()
                .where(
                    channel_messages.c.case_id == row.case_id,
                    channel_messages.c.channel == "email",
                    channel_messages.c.direction == "out",
                    channel_messages.c.thread.contains(
                        orjson.dumps(row.external_id).decode(), autoescape=True
                    ),
                )
                .values(case_id=to_case)
            )
        self.negotiation.announce(to_case, [moved.id])
        self.negotiation.announce(row.case_id, [e.id for e in note])
        return Receipt(
            "stored", row_id, to_case, row.customer_id, event_ids=(moved.id,), threaded_by="moved"
        )

    # -- outbound ------------------------------------------------------------------------

    def reply(self, actor: Actor, case_id: str, text: str, *, html: str | None = None) -> Reply:
        """A member's reply: written in the case and queued to the customer in one commit."""
        if not text.strip():
            raise Invalid("the reply is empty", field="text")
        state = self.negotiation.state(case_id)
        self.negotiation.party_of(state, actor)
        with self.db.write() as conn:
            target = self._recipient(conn, case_id)
            assert target is not None  # required: it raised otherwise
            items: list[tuple[str, dict[str, Any]]] = [("message.posted", {"text": text})]
            if state["resolved"]:  # a reply to a resolved case reopens it, in this commit
                reason = reopen_reason(actor, "email")
                items.append(("case.reopened", {"reason": reason}))
            try:
                event, *reopened = self.node.cases.create_many(
                    self.node.key,
                    case_id,
                    items,
                    member=actor.member,
                    time=self.now(),
                    via="email",
                    conn=conn,
                )
            except AccordError as exc:
                raise Conflict(str(exc)) from exc
            row_id = self._queue_to_customer(
                conn, case_id, target, text, html=html, kind="reply", event_id=event.id
            )
        ids = [event.id, *(e.id for e in reopened)]
        self.negotiation.announce(case_id, ids)
        return Reply(Outcome(case_id, ids), row_id)

    def notify_customer(
        self, conn: Connection, case_id: str, events: Sequence[Event], state: State
    ) -> int:
        """The follower's step (``customer-notices``): mail the case's email customer what
        they must hear of and would otherwise miss, in the follower's transaction.

        - our proposals (with the case link to answer them) and Accord's own notices;
        - what another party says or does from its own node — a message, a proposal,
          progress on its activity: a hosted customer has no node to see it arrive.

        A new case is left alone (its acknowledgement says it all), and so is what the
        customer did themselves and what our members wrote (a reply is sent as it is
        written, on the channel chosen). Returns how many mails were queued."""
        if any(e.type == "case.opened" for e in events):
            return 0
        mine = self.node.key.public
        notices: list[tuple[Event, str, str]] = []
        for e in events:
            ours = e.author.node == mine
            if ours and e.author.for_party is not None:
                continue  # the hosted customer's own act
            if ours and e.type == "proposal.made":
                notices.append((e, "proposal", ""))
            elif ours and e.type == "message.posted" and e.author.member == SYSTEM_MEMBER:
                notices.append((e, "notice", str(e.body.get("text", ""))))
            elif e.type == "activity.committed":  # a promise made at once, e.g. by phone
                parties = state["parties"].values()
                named = [p["name"] for p in parties if p.get("node") == e.author.node]
                who = "we" if ours or not named else str(named[0])
                notices.append((e, "notice", _promise_notice(e.body, who)))
            elif not ours and e.type in ("message.posted", "proposal.made", "activity.updated"):
                notices.append((e, *_foreign_notice(state, e)))
        if not notices:
            return 0
        target = self._recipient(conn, case_id, required=False)
        if target is None:
            return 0
        for event, kind, text in notices:
            if event.type == "proposal.made":
                text = (f"{text}\n\n" if text else "") + self._proposal_text(
                    case_id, target, event.body
                )
                kind = "proposal"
            self._queue_to_customer(
                conn, case_id, target, text, kind=kind, event_id=event.id, auto="auto-generated"
            )
        return len(notices)

    def notify_superseded(self, conn: Connection, case_id: str, state: State) -> int:
        """Tell the case's email customer, once each, of every agreement listed under the
        state's ``superseded``: one they may have been shown as reached that did not stand
        (docs/case-log.md, "No silent reversal"). Each mail is recorded against the
        proposal (``kind="superseded"``), which is how a later pass knows it was sent.
        Returns how many mails were queued."""
        entries = state.get("superseded") or []
        if not entries:
            return 0
        told = set(
            conn.execute(
                sa.select(channel_messages.c.event_id).where(
                    channel_messages.c.case_id == case_id,
                    channel_messages.c.kind == "superseded",
                )
            ).scalars()
        )
        fresh = [e for e in entries if e["proposal"] not in told]
        if not fresh:
            return 0
        target = self._recipient(conn, case_id, required=False)
        if target is None:
            return 0
        for entry in fresh:
            token = self.links.issue(case_id, target.party, target.address, PORTAL_TTL)
            text = (
                f"A correction about your case “{state['title']}”: an agreement you may "
                f"have been shown as reached (version {entry['version']}) did not stand, "
                "because another change was agreed on the same terms at the same time. "
                "Nothing was changed behind your back: the case keeps a record of it.\n\n"
                "See what is agreed now, and answer if it does not suit you:\n"
                f"{self.public_url().rstrip('/')}/portal/{token}"
            )
            self._queue_to_customer(
                conn,
                case_id,
                target,
                text,
                kind="superseded",
                event_id=entry["proposal"],
                auto="auto-generated",
            )
        return len(fresh)

    def remind_callback(self, conn: Connection, state: State, activity: Activity) -> None:
        """Before an agreed callback: tell an email customer when we will call."""
        target = self._recipient(conn, state["case"], required=False)
        if target is None:
            return
        due = parse_time(activity["due"]).strftime("%H:%M UTC on %d %B %Y")
        text = (
            f"A reminder: as agreed, we will call you at {due} about “{state['title']}” "
            f"({activity['title']}). If that time no longer suits you, reply to this email."
        )
        self._queue_to_customer(
            conn, state["case"], target, text, kind="reminder", auto="auto-generated"
        )

    def _proposal_text(self, case_id: str, target: _Target, body: dict[str, Any]) -> str:
        token = self.links.issue(case_id, target.party, target.address, PORTAL_TTL)
        changes = body.get("changes", [])
        lines = ["We propose the following for your case:", ""]
        for change in changes:
            op = change.get("op")
            if op == "activity.put":
                due = f", by {change['due']}" if change.get("due") else ""
                lines.append(
                    f"• {change.get('title', change['activity'])} ({change['owner']}{due})"
                )
            elif op == "data.put":
                lines.append(
                    f"• {change.get('label', change['key'])}: {format_value(change['value'])}"
                )
            else:
                lines.append(f"• {op}")
        if body.get("note"):
            lines += ["", str(body["note"])]
        lines += [
            "",
            "Accept, reject or suggest changes here (the link is yours; don't forward it):",
            f"{self.public_url().rstrip('/')}/portal/{token}",
            "",
            "Or simply reply to this email.",
        ]
        return "\n".join(lines)

    def _recipient(
        self, conn: Connection, case_id: str, *, required: bool = True
    ) -> _Target | None:
        customer = self.intake.customers.of_case(conn, case_id)
        addresses = self.intake.customers.addresses(conn, customer[0]) if customer else []
        if customer is None or not addresses:
            if required:
                raise Conflict("the case has no customer with an email address on this node")
            return None
        last = conn.execute(
            sa.select(
                channel_messages.c.sender,
                channel_messages.c.external_id,
                channel_messages.c.mailbox_id,
                channel_messages.c.subject,
                channel_messages.c.recipients,
            )
            .where(
                channel_messages.c.case_id == case_id,
                channel_messages.c.channel == "email",
                channel_messages.c.direction == "in",
                channel_messages.c.status == "stored",
            )
            .order_by(channel_messages.c.id.desc())
            .limit(1)
        ).first()
        address = last.sender if last is not None and last.sender in addresses else addresses[0]
        references = [
            r
            for (r,) in conn.execute(
                sa.select(channel_messages.c.external_id)
                .where(channel_messages.c.case_id == case_id, channel_messages.c.channel == "email")
                .order_by(channel_messages.c.id.desc())
                .limit(10)
            )
        ][::-1]
        mailbox = None
        if last is not None and last.mailbox_id is not None:
            mailbox = self.mailboxes.get(int(last.mailbox_id))
        mailbox = mailbox or self.mailboxes.default()
        if mailbox is None:
            if required:
                raise Conflict("no mailbox is configured to send from (accord mailbox add)")
            return None
        state = self.node.cases.state_in(conn, case_id)
        name = ""
        if state is not None:
            parties = state["parties"]
            name = parties[customer[1]]["name"] if customer[1] in parties else ""
        cc: tuple[str, ...] = ()
        if mailbox.reply_all and last is not None and last.recipients:
            # reply-all: the others the customer's last mail went to, never our own
            # mailboxes, their direct lines or the customer
            boxes = self.mailboxes.all()
            cc = tuple(
                r
                for r in dict.fromkeys(orjson.loads(last.recipients))
                if isinstance(r, str)
                and r.lower() not in (address.lower(), str(last.sender).lower())
                and not any(box.answers_for(r) for box in boxes)
            )
        return _Target(
            customer_id=customer[0],
            party=customer[1],
            address=address,
            name=name,
            mailbox=mailbox,
            subject=last.subject if last is not None else (state["title"] if state else ""),
            last_id=last.external_id if last is not None else None,
            references=tuple(references),
            ref=self.intake.refs.ensure(conn, case_id),
            cc=cc,
        )

    def _queue_to_customer(
        self,
        conn: Connection,
        case_id: str,
        target: _Target,
        text: str,
        *,
        kind: str,
        html: str | None = None,
        event_id: str | None = None,
        auto: str | None = None,
    ) -> int:
        mailbox = target.mailbox
        return self.outbox.queue_mail(
            conn,
            mailbox,
            Outgoing(
                sender=mailbox.address,
                sender_name=mailbox.display_name,
                to=target.address,
                to_name=target.name,
                subject=tagged(reply_subject(target.subject), target.ref.number),
                text=text,
                html=html,
                reply_to=mailbox.direct_line(target.ref.token),
                in_reply_to=target.last_id,
                references=target.references,
                auto=auto,
                case_number=target.ref.number,
                cc=target.cc if kind == "reply" else (),  # notices carry personal links
            ),
            kind=kind,
            case_id=case_id,
            customer_id=target.customer_id,
            event_id=event_id,
        )


@dataclass(frozen=True)
class _Target:
    """Where mail about a case goes: the customer's address and the thread so far."""

    customer_id: int
    party: str
    address: str
    name: str
    mailbox: Mailbox
    subject: str
    last_id: str | None
    references: tuple[str, ...]
    ref: CaseRef
    cc: tuple[str, ...] = ()  # reply-all (a mailbox setting): a member's reply copies them


def _forwarded_text(forwarded: Forwarded) -> str:
    """An attached message as it reads in the case: its header lines, then its text."""
    lines = ["---------- Forwarded message ----------"]
    if forwarded.sender:
        lines.append(f"From: {forwarded.sender}")
    if forwarded.date is not None:
        lines.append(f"Date: {forwarded.date.strftime('%a %d %b %Y %H:%M UTC')}")
    if forwarded.subject:
        lines.append(f"Subject: {forwarded.subject}")
    return "\n".join(lines) + "\n\n" + (forwarded.text.strip() or "(no text)")


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


__all__ = ["CUSTOMER_PARTY", "MailChannel", "MessageTooLarge", "NoMailbox", "Reply", "requester"]


def _promise_notice(body: dict[str, Any], who: str) -> str:
    """What a customer reads when a party promises an activity without waiting for them."""
    due = body.get("due")
    when = f", by {parse_time(due).strftime('%H:%M UTC on %d %B %Y')}" if due else ""
    note = f"\n\n{body['note']}" if body.get("note") else ""
    return f"Promised: “{body['title']}”{when} — {who} will do it.{note}"


def _foreign_notice(state: State, event: Event) -> tuple[str, str]:
    """(kind, text) telling a hosted customer what another party's node did."""
    party = next((p for p in state["parties"].values() if p.get("node") == event.author.node), None)
    who = party["name"] if party else "Another party"
    if event.type == "message.posted":
        return "notice", f"{who} wrote on your case:\n\n{event.body.get('text', '')}"
    if event.type == "activity.updated":
        aid = event.body["activity"]
        activities = state["terms"]["activities"]
        title = activities[aid]["title"] if aid in activities else aid
        words = {"in_progress": "started", "done": "has done", "cancelled": "cancelled"}
        said = words.get(event.body["state"], f"marked {event.body['state']}")
        note = f"\n\n{event.body['note']}" if event.body.get("note") else ""
        return "notice", f"{who} {said} “{title}”.{note}"
    return "proposal", f"{who} proposes a change to what was agreed."
