"""Canned replies: texts members insert with one choice, kept by leads.

A canned reply's body may name placeholders in braces, filled for the case when a member
picks it: ``{customer}`` (the customer's name), ``{owner}`` (the case owner's name),
``{me}`` (the member replying), ``{case_link}`` (the customer's case link, when one was
made on the page), ``{case_number}``, ``{next_due}`` (the nearest due time of an open
activity), ``{callback_due}`` (the next promised callback). An unknown placeholder is
refused when the reply is saved, so a typo never reaches a customer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from accord.auth.members import Member
from accord.service.errors import Conflict, Forbidden, Invalid, NotFound
from accord.store.database import Database
from accord.store.tables import canned_replies

PLACEHOLDERS = {
    "customer": "the customer's name",
    "owner": "the case owner's name",
    "me": "your name",
    "case_link": "the customer's case link",
    "case_number": "the case number",
    "next_due": "the nearest due time of an open activity",
    "callback_due": "when the next promised callback is due",
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
MANAGERS = ("lead", "admin")


@dataclass(frozen=True)
class CannedReply:
    id: int
    title: str
    body: str
    updated_by: str
    updated_at: datetime


def fill(body: str, values: Mapping[str, str]) -> str:
    """``body`` with each placeholder replaced by its value (empty when unknown here)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), body)


def check(title: str, body: str) -> tuple[str, str]:
    title, body = " ".join(title.split()), body.strip()
    if not title:
        raise Invalid("a canned reply needs a title", field="title")
    if len(title) > 120:
        raise Invalid("the title is longer than 120 characters", field="title")
    if not body:
        raise Invalid("a canned reply needs a text", field="body")
    if len(body) > 20_000:
        raise Invalid("the text is longer than 20,000 characters", field="body")
    unknown = sorted({m for m in _PLACEHOLDER.findall(body) if m not in PLACEHOLDERS})
    if unknown:
        known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        raise Invalid(
            f"unknown placeholder {', '.join('{' + u + '}' for u in unknown)}; use {known}",
            field="body",
        )
    return title, body


class CannedReplies:
    """The node's canned replies; leads and admins add, change and remove them."""

    def __init__(self, db: Database, *, now: Callable[[], datetime]) -> None:
        self.db, self.now = db, now

    def list(self) -> list[CannedReply]:
        with self.db.read() as conn:
            rows = conn.execute(sa.select(canned_replies).order_by(canned_replies.c.title))
            return [
                CannedReply(int(r.id), r.title, r.body, r.updated_by, r.updated_at) for r in rows
            ]

    def get(self, reply_id: int) -> CannedReply:
        with self.db.read() as conn:
            r = conn.execute(
                sa.select(canned_replies).where(canned_replies.c.id == reply_id)
            ).first()
        if r is None:
            raise NotFound(f"no canned reply {reply_id}")
        return CannedReply(int(r.id), r.title, r.body, r.updated_by, r.updated_at)

    def save(self, title: str, body: str, *, by: Member, reply_id: int | None = None) -> int:
        """Add a canned reply (or change ``reply_id``); only a lead or an admin may."""
        _manager(by)
        title, body = check(title, body)
        values = {
            "title": title,
            "body": body,
            "updated_by": by.display_name,
            "updated_at": self.now(),
        }
        with self.db.write() as conn:
            clash = conn.execute(
                sa.select(canned_replies.c.id).where(canned_replies.c.title == title)
            ).scalar()
            if clash is not None and clash != reply_id:
                raise Conflict(f"a canned reply is already called {title!r}")
            if reply_id is None:
                made = conn.execute(canned_replies.insert(), values).inserted_primary_key
                assert made is not None
                return int(made[0])
            done = conn.execute(
                canned_replies.update().where(canned_replies.c.id == reply_id).values(**values)
            )
            if not done.rowcount:
                raise NotFound(f"no canned reply {reply_id}")
            return reply_id

    def remove(self, reply_id: int, *, by: Member) -> None:
        _manager(by)
        with self.db.write() as conn:
            done = conn.execute(canned_replies.delete().where(canned_replies.c.id == reply_id))
        if not done.rowcount:
            raise NotFound(f"no canned reply {reply_id}")


def _manager(member: Member) -> None:
    if member.role not in MANAGERS:
        raise Forbidden("only a lead or an admin manages canned replies")
