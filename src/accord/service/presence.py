"""Who else has a case open, and who is typing a reply (the collision notice).

The case page tells the node its member is there when it is shown and every few seconds
while it stays open (``Presence.beat``), saying whether the member is typing a reply.
Presence lives in the database (``case_presence``), not in a process's memory: with
``accord serve --workers N`` the page and its heartbeats may reach different processes,
and every one of them must see every member. A member counts as present for
``PRESENCE_TTL`` after their last heartbeat and as typing for ``TYPING_TTL`` after the
last one that said so; older rows are pruned as heartbeats come in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from accord.store.database import Database
from accord.store.tables import case_presence, members

PRESENCE_TTL = timedelta(seconds=30)
TYPING_TTL = timedelta(seconds=12)
PRUNE_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class Present:
    """Another member on the same case."""

    member_id: int
    name: str
    typing: bool

    def words(self) -> str:
        return (
            f"{self.name} is typing a reply"
            if self.typing
            else f"{self.name} also has this case open"
        )


class Presence:
    def __init__(self, db: Database, *, now: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self.now = now or (lambda: datetime.now(UTC))

    def beat(self, case_id: str, member_id: int, *, typing: bool = False) -> list[Present]:
        """Record that ``member_id`` has ``case_id`` open (and is typing, if so); the
        other members present on it."""
        at = self.now()
        with self.db.write() as conn:
            held = conn.execute(
                sa.select(case_presence.c.typing_at).where(
                    case_presence.c.case_id == case_id, case_presence.c.member_id == member_id
                )
            ).first()
            typing_at = at if typing else (held.typing_at if held is not None else None)
            if held is None:
                conn.execute(
                    case_presence.insert().values(
                        case_id=case_id, member_id=member_id, seen_at=at, typing_at=typing_at
                    )
                )
            else:
                conn.execute(
                    case_presence.update()
                    .where(
                        case_presence.c.case_id == case_id,
                        case_presence.c.member_id == member_id,
                    )
                    .values(seen_at=at, typing_at=typing_at)
                )
            conn.execute(case_presence.delete().where(case_presence.c.seen_at < at - PRUNE_AFTER))
        return self.others(case_id, member_id)

    def leave(self, case_id: str, member_id: int) -> None:
        """The member closed the case page."""
        with self.db.write() as conn:
            conn.execute(
                case_presence.delete().where(
                    case_presence.c.case_id == case_id, case_presence.c.member_id == member_id
                )
            )

    def others(self, case_id: str, member_id: int) -> list[Present]:
        """The members other than ``member_id`` present on ``case_id``, typists first."""
        at = self.now()
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(members.c.id, members.c.display_name, case_presence.c.typing_at)
                .join(members, members.c.id == case_presence.c.member_id)
                .where(
                    case_presence.c.case_id == case_id,
                    case_presence.c.member_id != member_id,
                    case_presence.c.seen_at >= at - PRESENCE_TTL,
                )
                .order_by(members.c.display_name)
            ).all()
        found = [
            Present(int(i), str(name), typed is not None and _aware(typed) >= at - TYPING_TTL)
            for i, name, typed in rows
        ]
        return sorted(found, key=lambda p: not p.typing)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
