"""Request Tracker: tickets and their history as RT's REST 1.0 interface writes them.

For each ticket N the export folder holds ``ticket-N.txt``, the answer to
``GET /REST/1.0/ticket/N/show``, and ``ticket-N-history.txt``, the answer to
``GET /REST/1.0/ticket/N/history?format=l`` (https://rt-wiki.bestpractical.com/wiki/REST;
docs/import.md has a shell loop that fetches them with curl). Both begin with the status
line (``RT/4.4.7 200 Ok``) and hold ``Field: value`` lines, a multi-line value continuing
on lines indented under it; the history's transactions are separated by ``--`` lines,
each starting ``# k/n (id/<transaction>/total)``.

Transactions ``Create`` and ``Correspond`` are messages — the customer's when their
creator is one of the ticket's requestors, else a member's reply — and ``Comment`` is an
internal note; the others (status, owner, custom field changes) are not correspondence.
``resolved`` and ``rejected`` tickets are closed, ``deleted`` ones skipped.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from accord.importing.records import Entry, Export, ImportFormatError, Person, Ticket

STATUS_LINE = re.compile(r"RT/[\w.]+ (\d{3}) (.*)")
FIELD = re.compile(r"([A-Za-z][\w.{}\- ]*):(?: (.*))?$")
ATTACHMENT = re.compile(r"\s*(\d+): (.*) \(([\d.]+[bkmg]?)\)\s*$", re.IGNORECASE)
TICKET_FILE = re.compile(r"ticket-(\d+)\.txt")
CLOSED = {"resolved", "rejected"}
MESSAGES = {"Create", "Correspond"}


def read_rt(folder: Path) -> Export:
    if not folder.is_dir():
        raise ImportFormatError(f"{folder} is not a folder holding an RT export")
    numbers = sorted(
        int(m.group(1)) for p in folder.iterdir() if (m := TICKET_FILE.fullmatch(p.name))
    )
    if not numbers:
        raise ImportFormatError(f"{folder}: no ticket-<N>.txt files")
    export = Export()
    for number in numbers:
        try:
            _read_ticket(folder, number, export)
        except ImportFormatError as exc:
            export.skipped.append((f"ticket {number}", str(exc)))
    return export


def _read_ticket(folder: Path, number: int, export: Export) -> None:
    """Add ticket ``number`` to ``export`` (or to its skipped records, saying why)."""
    ticket_file = folder / f"ticket-{number}.txt"
    history_file = folder / f"ticket-{number}-history.txt"
    fields = parse_fields(_body(ticket_file))[0]
    status = fields.get("Status", "").strip().lower()
    if status == "deleted":
        export.skipped.append((f"ticket {number}", "deleted in RT"))
        return
    requestors = [r.strip().lower() for r in fields.get("Requestors", "").split(",") if r.strip()]
    if not requestors:
        export.skipped.append((f"ticket {number}", "no requestor"))
        return
    entries: list[Entry] = []
    if history_file.exists():
        for tx in parse_fields(_body(history_file)):
            entry = _entry(tx, requestors, f"{history_file.name}")
            if entry is not None:
                entries.append(entry)
    else:
        export.skipped.append((f"ticket {number}", "no history file: the ticket has no messages"))
    created = _ticket_time(fields.get("Created", ""), f"{ticket_file.name} Created")
    export.tickets.append(
        Ticket(
            key=str(number),
            subject=fields.get("Subject", ""),
            requester=Person(f"email:{requestors[0]}", "", tuple(requestors[:1])),
            created_at=created,
            closed=status in CLOSED,
            entries=tuple(entries),
        )
    )


def _entry(tx: dict[str, str], requestors: list[str], where: str) -> Entry | None:
    kind = tx.get("Type", "")
    if kind not in MESSAGES and kind != "Comment":
        return None
    creator = tx.get("Creator", "").strip()
    files = [
        m.group(2)
        for line in tx.get("Attachments", "").splitlines()
        if (m := ATTACHMENT.match(line)) and m.group(2) != "untitled"
    ]
    return Entry(
        key=f"transaction:{tx.get('id', '').strip()}",
        author="customer" if creator.lower() in requestors else "member",
        name=creator,
        text=tx.get("Content", ""),
        at=_history_time(tx.get("Created", ""), f"{where} transaction {tx.get('id')}"),
        private=kind == "Comment",
        attachments=tuple(files),
    )


def parse_fields(text: str) -> list[dict[str, str]]:
    """The records of a REST 1.0 answer (one for ``show``, one per transaction for
    ``history?format=l``): ``Field: value`` with indented continuation lines."""
    records: list[dict[str, str]] = []
    for chunk in re.split(r"(?m)^--\s*$", text):
        record: dict[str, str] = {}
        key: str | None = None
        indent = 0
        for line in chunk.splitlines():
            if line.startswith("#") and key is None:
                continue
            if key is not None and (line.startswith(" ") or not line.strip()):
                stripped = line[indent:] if line[:indent].strip() == "" else line.lstrip()
                record[key] += "\n" + stripped
                continue
            found = FIELD.match(line)
            if found is None:
                continue
            key, indent = found.group(1), len(found.group(1)) + 2
            record[key] = found.group(2) or ""
        if record:
            records.append({k: v.rstrip() for k, v in record.items()})
    return records


def _body(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ImportFormatError(f"{path}: {exc.strerror}") from None
    first, _, rest = text.partition("\n")
    status = STATUS_LINE.match(first.strip())
    if status is None:
        raise ImportFormatError(f"{path.name}: not an RT REST 1.0 answer (no 'RT/… 200 Ok' line)")
    if status.group(1) != "200":
        raise ImportFormatError(f"{path.name}: RT answered {status.group(1)} {status.group(2)}")
    return rest


def _ticket_time(value: str, where: str) -> datetime:
    """``show`` writes ``Fri Nov 20 10:00:00 2026`` (UTC)."""
    return _time(value, ("%a %b %d %H:%M:%S %Y", "%Y-%m-%d %H:%M:%S"), where)


def _history_time(value: str, where: str) -> datetime:
    """``history`` writes ``2026-11-20 10:00:00`` (UTC)."""
    return _time(value, ("%Y-%m-%d %H:%M:%S", "%a %b %d %H:%M:%S %Y"), where)


def _time(value: str, formats: tuple[str, ...], where: str) -> datetime:
    for fmt in formats:
        try:
            return datetime.strptime(" ".join(value.split()), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ImportFormatError(f"{where}: {value!r} is not an RT date")
