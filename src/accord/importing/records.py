"""The neutral shape every import source produces, and the errors it raises."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from accord.core.errors import AccordError


class ImportFormatError(AccordError):
    """The export is not in the format its source expects (says where and why)."""


@dataclass(frozen=True)
class Person:
    """A requester (customer) as the other system knew them."""

    key: str  # the other system's id for them
    name: str
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entry:
    """One piece of a ticket's correspondence."""

    key: str  # the other system's id for it (unique within the source)
    author: Literal["customer", "member"]
    name: str
    text: str
    at: datetime
    private: bool = False  # an internal comment: becomes a node-private note
    attachments: tuple[str, ...] = ()  # file names (the files are not in the export)


@dataclass(frozen=True)
class Ticket:
    key: str
    subject: str
    requester: Person
    created_at: datetime
    closed: bool = False
    entries: tuple[Entry, ...] = ()


@dataclass
class Export:
    """What one source read: the people and the tickets, plus records it had to skip."""

    people: list[Person] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (record, why)

    def all_people(self) -> Iterator[Person]:
        """Standalone people and every ticket's requester, each key once."""
        seen: set[str] = set()
        for person in [*self.people, *(t.requester for t in self.tickets)]:
            if person.key not in seen:
                seen.add(person.key)
                yield person


def parse_time(value: str, where: str) -> datetime:
    """An ISO 8601 / RFC 3339 time (``Z`` allowed); naive times are UTC."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ImportFormatError(f"{where}: {value!r} is not a date and time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
