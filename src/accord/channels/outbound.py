"""The fate of every outgoing message, whatever its channel.

Every message this node sends — mail (``accord.channels.email.outbox``) and the messaging
platforms (``accord.channels.connectors``) — is a ``channel_messages`` row with
``direction = 'out'``. Its ``status`` is its fate: ``queued`` (waiting for its first or
next attempt; ``attempts`` and the last ``error`` say how it went so far), ``sent`` (the
server or platform took it), ``delivered`` and ``read`` where the platform reports them
(WhatsApp, Messenger, Instagram, Twilio), ``failed`` with the reason (and the case's owner
notified), ``bounced`` (a bounce report named the mail) or ``cancelled`` (its customer's
data was erased before it went). This module reads them: the list behind
``GET /api/v1/outbound`` and ``accord outbound``, and each message's fate for the
conversation on the case page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from accord.service.errors import Invalid
from accord.store.database import Database
from accord.store.tables import channel_messages

STATUSES = ("queued", "sent", "delivered", "read", "failed", "bounced", "cancelled")
WORDS = {
    "queued": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "not delivered",
    "bounced": "bounced",
    "cancelled": "cancelled",
}
MAX_LIST = 1000


@dataclass(frozen=True)
class Fate:
    """What became of one outgoing message."""

    id: int
    channel: str
    status: str
    error: str | None
    attempts: int
    created_at: datetime
    done_at: datetime | None

    @property
    def words(self) -> str:
        """The fate for people: "sent", "queued (2 attempts: timeout)", "not delivered: …"."""
        word = WORDS.get(self.status, self.status)
        if self.status == "queued" and self.attempts:
            tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
            return f"{word} ({tries}; last: {self.error})" if self.error else f"{word} ({tries})"
        if self.status in ("failed", "bounced", "cancelled") and self.error:
            return f"{word}: {self.error}"
        return word

    @property
    def bad(self) -> bool:
        return self.status in ("failed", "bounced")


class Outbound:
    def __init__(self, db: Database) -> None:
        self.db = db

    def fates(self, case_id: str) -> dict[str, Fate]:
        """The fate of each message the case's events sent, by event id (a message sent
        on several channels or to several people: its latest row)."""
        c = channel_messages.c
        query = (
            sa.select(
                c.id, c.event_id, c.channel, c.status, c.error, c.attempts, c.created_at, c.done_at
            )
            .where(c.case_id == case_id, c.direction == "out", c.event_id.is_not(None))
            .order_by(c.id)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return {
            str(r.event_id): Fate(
                int(r.id),
                str(r.channel),
                str(r.status),
                r.error,
                int(r.attempts),
                _aware(r.created_at),
                _aware(r.done_at) if r.done_at else None,
            )
            for r in rows
        }

    def list(
        self,
        *,
        channel: str | None = None,
        status: str | None = None,
        case_id: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Outgoing messages, newest first, on every channel or one."""
        if status is not None and status not in STATUSES:
            raise Invalid(f"status is one of {', '.join(STATUSES)}", field="status")
        if not 1 <= limit <= MAX_LIST:
            raise Invalid(f"limit is 1 to {MAX_LIST}", field="limit")
        c = channel_messages.c
        query = sa.select(
            c.id,
            c.channel,
            c.kind,
            c.status,
            c.case_id,
            c.event_id,
            c.sender,
            c.recipients,
            c.subject,
            c.error,
            c.attempts,
            c.created_at,
            c.done_at,
        ).where(c.direction == "out")
        if channel:
            query = query.where(c.channel == channel)
        if status:
            query = query.where(c.status == status)
        if case_id:
            query = query.where(c.case_id == case_id)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(c.id.desc()).limit(limit)).all()
        return [
            {
                "id": int(r.id),
                "channel": r.channel,
                "kind": r.kind,
                "status": r.status,
                "case": r.case_id,
                "event": r.event_id,
                "from": r.sender,
                "to": [str(t) for t in orjson.loads(r.recipients or "[]")],
                "subject": r.subject,
                "error": r.error,
                "attempts": int(r.attempts),
                "created": _aware(r.created_at).isoformat(),
                "done": _aware(r.done_at).isoformat() if r.done_at else None,
            }
            for r in rows
        ]


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)
