"""Zendesk's JSON export: ``users.json`` and ``tickets.json`` with their comments.

Zendesk Support exports tickets and users as JSON (Admin Center → Account → Tools →
Reports, "JSON export"; the same objects as the REST API's Tickets and Users, see
https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/ and
.../ticketing/users/users/). A file may hold one object per line (the export's
NDJSON), a JSON array, or an API page (``{"tickets": [...]}``, ``{"users": [...]}``).
A ticket's ``comments`` (Ticket Comments objects: ``id``, ``author_id``, ``body`` /
``plain_body``, ``public``, ``created_at``, ``attachments`` with ``file_name``) come
inside the ticket, or from ``comments/<ticket id>.json`` files holding the API's
``{"comments": [...]}`` page. A ticket with no comments imports its ``description``.

Who wrote a comment: an ``agent`` or ``admin`` user is a member of this node's side;
anyone else (the requester, a CC'd end user) writes for the customer. Private comments
(``public: false``) become internal notes. ``solved`` and ``closed`` tickets are closed;
``deleted`` ones are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from accord.importing.records import (
    Entry,
    Export,
    ImportFormatError,
    Person,
    Ticket,
    parse_time,
)

MEMBER_ROLES = {"agent", "admin"}
CLOSED = {"solved", "closed"}


def read_zendesk(folder: Path) -> Export:
    """Read ``users.json``, ``tickets.json`` and any ``comments/*.json`` in ``folder``."""
    if not folder.is_dir():
        raise ImportFormatError(f"{folder} is not a folder holding a Zendesk export")
    tickets_file = folder / "tickets.json"
    if not tickets_file.exists():
        raise ImportFormatError(f"{folder}: no tickets.json")
    users_file = folder / "users.json"
    users = {
        str(u["id"]): u
        for u in (_objects(users_file, "users") if users_file.exists() else [])
        if "id" in u
    }
    export = Export()
    for user in users.values():
        if user.get("role", "end-user") not in MEMBER_ROLES:
            export.people.append(_person(user))
    for number, ticket in enumerate(_objects(tickets_file, "tickets"), 1):
        where = f"tickets.json record {number}"
        try:
            made = _ticket(ticket, users, folder, where)
        except ImportFormatError as exc:
            export.skipped.append((f"ticket {ticket.get('id')}", str(exc)))
            continue
        except (KeyError, TypeError, ValueError) as exc:
            export.skipped.append((where, f"not a Zendesk ticket ({type(exc).__name__}: {exc})"))
            continue
        if made is None:
            export.skipped.append((f"ticket {ticket.get('id')}", "deleted in Zendesk"))
        else:
            export.tickets.append(made)
    return export


def _ticket(
    raw: dict[str, Any], users: dict[str, dict[str, Any]], folder: Path, where: str
) -> Ticket | None:
    key = str(raw["id"])
    if raw.get("status") == "deleted":
        return None
    requester_id = str(raw.get("requester_id") or "")
    requester = users.get(requester_id)
    person = (
        _person(requester)
        if requester is not None
        else Person(
            f"user:{requester_id}" if requester_id else f"ticket:{key}",
            str((raw.get("via") or {}).get("source", {}).get("from", {}).get("name") or ""),
            tuple(
                filter(
                    None, [(raw.get("via") or {}).get("source", {}).get("from", {}).get("address")]
                )
            ),
        )
    )
    created = parse_time(str(raw["created_at"]), where)
    comments = raw.get("comments")
    if comments is None:
        extra = folder / "comments" / f"{key}.json"
        comments = _objects(extra, "comments") if extra.exists() else []
    entries = [
        _entry(c, users, requester_id, f"{where} comment {i}") for i, c in enumerate(comments, 1)
    ]
    if not entries and str(raw.get("description") or "").strip():
        entries.append(
            Entry(f"{key}:description", "customer", person.name, str(raw["description"]), created)
        )
    return Ticket(
        key=key,
        subject=str(raw.get("subject") or raw.get("raw_subject") or ""),
        requester=person,
        created_at=created,
        closed=raw.get("status") in CLOSED,
        entries=tuple(entries),
    )


def _entry(
    raw: dict[str, Any], users: dict[str, dict[str, Any]], requester_id: str, where: str
) -> Entry:
    author_id = str(raw.get("author_id") or "")
    author = users.get(author_id, {})
    member = author.get("role") in MEMBER_ROLES and author_id != requester_id
    text = raw.get("plain_body") or raw.get("body") or ""
    return Entry(
        key=f"comment:{raw['id']}",
        author="member" if member else "customer",
        name=str(author.get("name") or ""),
        text=str(text),
        at=parse_time(str(raw["created_at"]), where),
        private=raw.get("public") is False,
        attachments=tuple(
            str(a.get("file_name") or "file")
            for a in raw.get("attachments") or []
            if isinstance(a, dict)
        ),
    )


def _person(user: dict[str, Any]) -> Person:
    emails = [user.get("email")] + [
        i.get("value")
        for i in user.get("identities") or []
        if isinstance(i, dict) and i.get("type") == "email"
    ]
    phones = [user.get("phone")] + [
        i.get("value")
        for i in user.get("identities") or []
        if isinstance(i, dict) and i.get("type") == "phone_number"
    ]
    return Person(
        key=f"user:{user['id']}",
        name=str(user.get("name") or ""),
        emails=tuple(dict.fromkeys(str(e) for e in emails if e)),
        phones=tuple(dict.fromkeys(str(p) for p in phones if p)),
    )


def _objects(path: Path, plural: str) -> list[dict[str, Any]]:
    """The objects of an NDJSON file, a JSON array or an API page ``{plural: [...]}``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFormatError(f"{path}: {exc.strerror}") from None
    try:
        whole = orjson.loads(data)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        items = whole
    elif isinstance(whole, dict):
        items = whole.get(plural, [whole]) if plural in whole else [whole]
    else:
        items = []
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise ImportFormatError(f"{path.name} line {number}: not JSON ({exc})") from None
    if not all(isinstance(i, dict) for i in items):
        raise ImportFormatError(f"{path.name}: expected JSON objects")
    return items
