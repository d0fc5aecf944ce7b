"""Web chat: visitors on any site talk to the case that serves them.

A visitor is known by a random token the widget keeps in the browser (identity kind
``web``): their messages go through the one inbound pipeline — the first opens a case,
the next ones thread onto it — and what they see is that case's conversation, read from
the case log, so a member's reply (from any page, the API or the CLI) reaches the chat
with nothing else to send. When a member has linked the visitor to a customer with other
open cases, the widget offers them, so the customer need not explain again.

A visitor who leaves an email or a phone number does not thereby become whoever owns that
address — anyone can type any address — so it becomes an internal note for the case's
members to act on (reply by email, link the identity after checking).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from accord.channels.intake import Inbound, Intake, Receipt
from accord.customers.records import identity_value
from accord.service.errors import Invalid, NotFound
from accord.service.notes import Notes
from accord.store.tables import case_refs, channel_messages

Clock = Callable[[], datetime]
CHANNEL = "webchat"
VISITOR = re.compile(r"[A-Za-z0-9_-]{24,64}")
MAX_CHAT_TEXT = 4000


@dataclass(frozen=True)
class Welcome:
    visitor: str
    case_id: str | None
    messages: list[dict[str, Any]]
    open_cases: list[dict[str, Any]]  # the customer's other open cases: {ref, number, title}


class WebChat:
    def __init__(self, intake: Intake, notes: Notes, *, now: Clock | None = None) -> None:
        self.intake = intake
        self.cases = intake.node.cases
        self.db = intake.db
        self.notes = notes
        self.now = now or (lambda: datetime.now(UTC))

    # -- the visitor's side ------------------------------------------------------------

    def hello(self, visitor: str | None) -> Welcome:
        """Greet a (re)connecting visitor: their token, their conversation so far, and
        their other open cases when a member has linked them to a known customer."""
        if visitor is None or not VISITOR.fullmatch(visitor):
            visitor = secrets.token_urlsafe(24)
        case_id = self.current_case(visitor)
        return Welcome(
            visitor,
            case_id,
            self.messages(case_id) if case_id else [],
            [] if case_id else self._open_cases(visitor),
        )

    def post(
        self, visitor: str, text: str, *, client_id: str, case_ref: str | None = None
    ) -> Receipt:
        """A visitor's message into the pipeline; ``client_id`` (the widget's id for it)
        makes a resend after a dropped connection a duplicate, not a second message."""
        self._check_visitor(visitor)
        text = text.strip()
        if not text:
            raise Invalid("an empty message", field="text")
        if len(text) > MAX_CHAT_TEXT:
            raise Invalid(f"a chat message is at most {MAX_CHAT_TEXT} characters", field="text")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", client_id):
            raise Invalid("a message id is 1 to 64 letters, digits, - or _", field="id")
        last = self._last(visitor)
        return self.intake.receive(
            Inbound(
                channel=CHANNEL,
                external_id=f"{visitor}:{client_id}",
                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                identity_kind="web",
                identity=visitor,
                sender_name="Web visitor",
                subject="",
                text=text,
                thread_ids=(last[0],) if last and not case_ref else (),
                direct_token=case_ref,
                size=len(text.encode()),
            )
        )

    def contact(self, visitor: str, kind: str, value: str) -> str:
        """The visitor leaves an email or phone number to be reached later: an internal
        note on their case (an address typed in a chat proves nothing)."""
        self._check_visitor(visitor)
        if kind not in ("email", "phone"):
            raise Invalid("leave an email address or a phone number", field="kind")
        value = identity_value(kind, value)
        case_id = self.current_case(visitor)
        if case_id is None:
            raise NotFound("write a message first: the contact goes with your conversation")
        with self.db.read() as conn:
            owner = self.intake.customers.find(conn, kind, value)
            mine = self.intake.customers.find(conn, "web", visitor)
        if owner is not None and owner != mine:
            advice = (
                f"that {kind} belongs to customer {owner}: if this is them, merge the "
                f"records (accord customer merge {owner} {mine})"
            )
        elif owner is None:
            advice = f"link it after checking (accord customer link {mine} {kind} {value})"
        else:
            advice = "already this customer's"
        self.notes.add(
            case_id,
            "Web chat",
            f"The chat visitor left their {kind} {value} to be reached later (not verified; "
            f"{advice}).",
        )
        return value

    # -- reading -----------------------------------------------------------------------

    def current_case(self, visitor: str) -> str | None:
        last = self._last(visitor)
        return last[1] if last else None

    def messages(self, case_id: str, *, limit: int = 200) -> list[dict[str, Any]]:
        """The case's conversation as the chat shows it: every message, oldest first."""
        return [
            {
                "id": e.id,
                "time": e.time,
                "mine": e.author.for_party is not None,
                "from": "You" if e.author.for_party is not None else e.author.member,
                "via": e.author.via,
                "text": e.body.get("text", ""),
            }
            for e in reversed(self.cases.timeline(case_id, limit=limit))
            if e.type == "message.posted"
        ]

    def version(self, case_id: str) -> str | None:
        """Changes whenever the case does (a cheap poll: one row)."""
        return self.cases.state_hash(case_id)

    # -- internals -----------------------------------------------------------------------

    def _check_visitor(self, visitor: str) -> None:
        if not VISITOR.fullmatch(visitor):
            raise Invalid("not a visitor token: say hello first", field="visitor")

    def _last(self, visitor: str) -> tuple[str, str] | None:
        """(external id, case) of the visitor's latest message on a case."""
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(channel_messages.c.external_id, channel_messages.c.case_id)
                .where(
                    channel_messages.c.channel == CHANNEL,
                    channel_messages.c.sender == visitor,
                    channel_messages.c.status == "stored",
                    channel_messages.c.case_id.is_not(None),
                )
                .order_by(channel_messages.c.id.desc())
                .limit(1)
            ).first()
        return (str(row.external_id), str(row.case_id)) if row else None

    def _open_cases(self, visitor: str) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            customer = self.intake.customers.find(conn, "web", visitor)
            if customer is None:
                return []
            found = self.intake.customers.open_cases(conn, customer)[:3]
            refs = {
                r.case_id: r
                for r in conn.execute(
                    sa.select(case_refs).where(case_refs.c.case_id.in_([c for c, _ in found]))
                )
            }
        return [
            {"ref": refs[c].token, "number": int(refs[c].number), "title": title}
            for c, title in found
            if c in refs
        ]
