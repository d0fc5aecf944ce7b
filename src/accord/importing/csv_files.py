"""Accord's own CSV layout, for systems that can export a spreadsheet and little else.

``customers.csv``: ``id,name,email,phone`` (several emails or phones separated by ``;``).
``cases.csv``: ``id,customer_id,customer_name,customer_email,subject,status,created_at,text``
— ``customer_id`` refers to ``customers.csv`` (or leave it empty and give the email);
``status`` is ``open`` or ``closed``; ``text`` is the customer's first message.
``messages.csv`` (optional): ``case_id,id,author,author_name,created_at,text,private`` —
``author`` is ``customer`` or ``member``; ``private`` is ``yes`` for an internal note.
Files are UTF-8 (a byte-order mark is fine); times are ISO 8601, UTC unless they say.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from accord.importing.records import (
    Entry,
    Export,
    ImportFormatError,
    Person,
    Ticket,
    parse_time,
)

CUSTOMER_COLUMNS = ("id", "name", "email", "phone")
CASE_COLUMNS = ("id", "subject", "created_at")
MESSAGE_COLUMNS = ("case_id", "id", "author", "created_at", "text")
TRUE = {"yes", "true", "1", "y"}


def read_csv(
    customers: Path | None = None, cases: Path | None = None, messages: Path | None = None
) -> Export:
    if customers is None and cases is None:
        raise ImportFormatError("give a customers file, a cases file or both")
    export = Export()
    people: dict[str, Person] = {}
    if customers is not None:
        for line, row in _rows(customers, CUSTOMER_COLUMNS):
            key = row["id"].strip()
            if not key:
                export.skipped.append((f"{customers.name} line {line}", "no id"))
                continue
            people[key] = Person(
                key=key,
                name=row.get("name", "").strip(),
                emails=_several(row.get("email", "")),
                phones=_several(row.get("phone", "")),
            )
        export.people = list(people.values())
    if cases is None:
        return export
    entries: dict[str, list[Entry]] = defaultdict(list)
    if messages is not None:
        for line, row in _rows(messages, MESSAGE_COLUMNS):
            where = f"{messages.name} line {line}"
            author = row["author"].strip().lower()
            if author not in ("customer", "member"):
                export.skipped.append((where, f"author must be customer or member, not {author!r}"))
                continue
            who: Literal["customer", "member"] = "customer" if author == "customer" else "member"
            entries[row["case_id"].strip()].append(
                Entry(
                    key=f"message:{row['id'].strip() or line}",
                    author=who,
                    name=row.get("author_name", "").strip(),
                    text=row["text"],
                    at=parse_time(row["created_at"], where),
                    private=row.get("private", "").strip().lower() in TRUE,
                )
            )
    for line, row in _rows(cases, CASE_COLUMNS):
        where = f"{cases.name} line {line}"
        key = row["id"].strip()
        if not key:
            export.skipped.append((where, "no id"))
            continue
        person = _requester(row, people)
        if person is None:
            export.skipped.append((where, "no customer: give customer_id or customer_email"))
            continue
        created = parse_time(row["created_at"], where)
        first = (
            [Entry(f"case:{key}", "customer", person.name, row["text"], created)]
            if row.get("text", "").strip()
            else []
        )
        status = row.get("status", "open").strip().lower() or "open"
        if status not in ("open", "closed"):
            export.skipped.append((where, f"status must be open or closed, not {status!r}"))
            continue
        export.tickets.append(
            Ticket(
                key=key,
                subject=row.get("subject", ""),
                requester=person,
                created_at=created,
                closed=status == "closed",
                entries=(*first, *entries.pop(key, [])),
            )
        )
    for orphan in sorted(entries):
        export.skipped.append((f"messages of case {orphan}", "no such case in the cases file"))
    return export


def _requester(row: dict[str, str], people: dict[str, Person]) -> Person | None:
    customer = row.get("customer_id", "").strip()
    if customer:
        return people.get(customer) or Person(
            customer, row.get("customer_name", "").strip(), _several(row.get("customer_email", ""))
        )
    emails = _several(row.get("customer_email", ""))
    if not emails:
        return None
    return Person(f"email:{emails[0].lower()}", row.get("customer_name", "").strip(), emails)


def _several(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(";") if v.strip())


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ImportFormatError(f"{path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in required if c not in header]
        if missing:
            raise ImportFormatError(f"{path.name}: missing column(s) {', '.join(missing)}")
        reader.fieldnames = header
        try:
            for row in reader:
                yield reader.line_num, {k: (v or "") for k, v in row.items() if k is not None}
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ImportFormatError(f"{path.name} line {reader.line_num}: {exc}") from None
