"""Store an ``Export``: customers, cases, their correspondence — once.

Every record is looked up in ``import_keys`` first: a customer, case or entry imported
before is left as it is, so a second import of the same export changes nothing and a
later export of the same system adds only the new correspondence. A person whose email
or phone already belongs to a customer here becomes that customer (no duplicate).

Each ticket is stored in its own transaction (savepoint, in a dry run): a ticket that
cannot be stored is reported with the reason and the rest go on. A dry run does the whole
import in one transaction and rolls it back, so its report is exactly what the import
would do.

What an imported case holds: its ``case.opened`` and the public correspondence in the
shared log, signed by this node at import but carrying the original times (the
customer's messages relayed ``via: "import"`` for the customer's party, the other
system's agents' replies as this node's party); internal comments as node-private notes;
a ticket closed in the other system gets the status ``closed`` and this node's party
marks itself satisfied — the customer's side stays theirs to confirm. Attachments are
not in the exports: a message names the files it had. Imports do not notify anyone:
no webhooks, acknowledgements or response timers fire for history.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.channels.intake import CUSTOMER_PARTY, MAX_TITLE, TRUNCATED
from accord.channels.refs import CaseRefs
from accord.core.bodies import MAX_TEXT
from accord.core.errors import AccordError
from accord.core.timefmt import format_time
from accord.customers.directory import Customers
from accord.importing.records import Entry, Export, Person, Ticket
from accord.node import Node, party_slug
from accord.service.errors import ServiceError
from accord.service.negotiation import Negotiation
from accord.service.ownership import SYSTEM_MEMBER
from accord.store.cases import Authoring
from accord.store.tables import import_keys, notes

Clock = Callable[[], datetime]
EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+")
PHONE_NOISE = re.compile(r"[\s().\-/]")

_KEY = sa.select(import_keys.c.local_id).where(
    import_keys.c.source == sa.bindparam("source"),
    import_keys.c.kind == sa.bindparam("kind"),
    import_keys.c.external_id == sa.bindparam("external_id"),
)
COUNTS = (
    "customers_created",
    "customers_matched",
    "customers_known",
    "cases_created",
    "cases_updated",
    "cases_unchanged",
    "messages_added",
    "notes_added",
    "cases_closed",
)


@dataclass
class Report:
    """What an import did (or, in a dry run, would do)."""

    source: str
    dry_run: bool
    counts: Counter[str] = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (record, why)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (record, error)
    cases: list[str] = field(default_factory=list)  # case ids created or updated

    @property
    def changed(self) -> bool:
        return any(
            self.counts[k]
            for k in (
                "customers_created",
                "customers_matched",
                "cases_created",
                "cases_updated",
                "messages_added",
                "notes_added",
                "cases_closed",
            )
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            **{k: self.counts[k] for k in COUNTS},
            "skipped": [{"record": r, "why": w} for r, w in self.skipped],
            "failed": [{"record": r, "error": e} for r, e in self.failed],
        }


class Importer:
    def __init__(self, node: Node, *, now: Clock = lambda: datetime.now(UTC)) -> None:
        self.node = node
        self.db = node.db
        self.now = now
        self.customers = Customers(node.db, now=now)
        self.refs = CaseRefs(node.db, now=now)
        self.negotiation = Negotiation(node.cases, node.key, now=now)

    def run(
        self,
        source: str,
        export: Export,
        *,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> Report:
        """Import ``export`` under ``source`` (e.g. ``zendesk:acme``); ``progress`` is
        called with 1 after each record."""
        if not source or len(source) > 200:
            raise ValueError("a source name is 1 to 200 characters")
        report = Report(source, dry_run, skipped=list(export.skipped))
        with self.db.writer.connect() as conn:
            outer = conn.begin() if dry_run else None
            try:
                for person in export.people:
                    self._one(conn, dry_run, f"customer {person.key}", report, self._person, person)
                    if progress:
                        progress(1)
                for ticket in export.tickets:
                    self._one(conn, dry_run, f"ticket {ticket.key}", report, self._ticket, ticket)
                    if progress:
                        progress(1)
            finally:
                if outer is not None:
                    outer.rollback()
        return report

    def _one(
        self,
        conn: Connection,
        dry_run: bool,
        label: str,
        report: Report,
        work: Callable[[Connection, str, Any, Counter[str], Report], None],
        record: Any,
    ) -> None:
        """One record in its own transaction; its counts join the report only if it
        is stored."""
        tally: Counter[str] = Counter()
        try:
            with conn.begin_nested() if dry_run else conn.begin():
                work(conn, report.source, record, tally, report)
        except (AccordError, ServiceError, ValueError) as exc:
            report.failed.append((label, str(exc)))
            return
        report.counts.update(tally)

    # -- customers -------------------------------------------------------------------

    def _person(
        self, conn: Connection, source: str, person: Person, tally: Counter[str], report: Report
    ) -> None:
        self._customer(conn, source, person, tally, report)

    def _customer(
        self, conn: Connection, source: str, person: Person, tally: Counter[str], report: Report
    ) -> int:
        known = self._key(conn, source, "customer", person.key)
        if known is not None:
            tally["customers_known"] += 1
            return self.customers.current(conn, int(known))
        identities = self._identities(person, report)
        found = next(
            (c for kind, value in identities if (c := self.customers.find(conn, kind, value))),
            None,
        )
        name = " ".join(person.name.split())[:200] or (identities[0][1] if identities else "")
        if found is None:
            customer_id = self.customers.create(conn, name or f"{source} {person.key}")
            tally["customers_created"] += 1
        else:
            customer_id = found
            tally["customers_matched"] += 1
        for kind, value in identities:
            if self.customers.find(conn, kind, value) is None:
                self.customers.add_identity(conn, customer_id, kind, value, verified=False)
        self._remember(conn, source, "customer", person.key, str(customer_id))
        return customer_id

    def _identities(self, person: Person, report: Report) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for email in person.emails:
            if EMAIL.fullmatch(email.strip()):
                found.append(("email", email.strip().lower()))
            elif email.strip():
                report.skipped.append((f"customer {person.key}", f"not an email: {email!r}"))
        for phone in person.phones:
            digits = PHONE_NOISE.sub("", phone)
            if re.fullmatch(r"\+?[0-9]{5,15}", digits):
                found.append(("phone", digits))
            elif phone.strip():
                report.skipped.append((f"customer {person.key}", f"not a phone number: {phone!r}"))
        return list(dict.fromkeys(found))

    # -- tickets ---------------------------------------------------------------------

    def _ticket(
        self, conn: Connection, source: str, ticket: Ticket, tally: Counter[str], report: Report
    ) -> None:
        customer_id = self._customer(conn, source, ticket.requester, tally, report)
        entries = sorted(ticket.entries, key=lambda e: e.at)
        fresh = [e for e in entries if self._key(conn, source, "entry", e.key) is None]
        public = [e for e in fresh if not e.private]
        items = [self._item(e, source) for e in public]
        case_id = self._key(conn, source, "case", ticket.key)
        if case_id is None:
            body = self.negotiation.opening(
                title=_title(ticket),
                party_id=party_slug(self.node.name),
                party_name=self.node.name,
                party_url=self.node.url,
                customer={
                    "id": CUSTOMER_PARTY,
                    "name": (" ".join(ticket.requester.name.split()) or "Customer")[:200],
                    "kind": "person",
                },
            )
            opened, *posted = self.node.cases.create_many(
                self.node.key,
                None,
                [("case.opened", body, {"time": format_time(ticket.created_at)}), *items],
                member=SYSTEM_MEMBER,
                via="import",
                session=None,
                conn=conn,
            )
            case_id = opened.case
            self.customers.link_case(conn, case_id, CUSTOMER_PARTY, customer_id)
            self.refs.ensure(conn, case_id)
            self._remember(conn, source, "case", ticket.key, case_id)
            tally["cases_created"] += 1
            report.cases.append(case_id)
        else:
            if self.node.cases.state_in(conn, case_id) is None:
                raise ValueError(f"case {case_id} of an earlier import is no longer on this node")
            posted = (
                self.node.cases.create_many(
                    self.node.key, case_id, items, member=SYSTEM_MEMBER, via="import", conn=conn
                )
                if items
                else []
            )
            tally["cases_updated" if fresh else "cases_unchanged"] += 1
            if fresh:
                report.cases.append(case_id)
        for entry, event in zip(public, posted, strict=True):
            self._remember(conn, source, "entry", entry.key, event.id)
        tally["messages_added"] += len(posted)
        for entry in fresh:
            if entry.private:
                note_id = conn.execute(
                    notes.insert().returning(notes.c.id),
                    {
                        "case_id": case_id,
                        "member": entry.name[:200] or source,
                        "text": _text(entry, source),
                        "created_at": entry.at,
                    },
                ).scalar_one()
                self._remember(conn, source, "entry", entry.key, f"note:{note_id}")
                tally["notes_added"] += 1
        if ticket.closed:
            self._close(conn, case_id, source, ticket, tally)

    def _item(self, entry: Entry, source: str) -> tuple[str, dict[str, Any], Authoring]:
        """The ``message.posted`` an entry becomes, written as it was, when it was."""
        who: Authoring = {
            "member": (entry.name or ("Customer" if entry.author == "customer" else source))[:200],
            "time": format_time(entry.at),
        }
        if entry.author == "customer":
            who["for_party"] = CUSTOMER_PARTY
            who["session"] = f"import:{entry.key}"[:200]
        return "message.posted", {"text": _text(entry, source)}, who

    def _close(
        self, conn: Connection, case_id: str, source: str, ticket: Ticket, tally: Counter[str]
    ) -> None:
        state = self.node.cases.state_in(conn, case_id)
        assert state is not None
        ours = party_slug(self.node.name)
        status: Mapping[str, Any] = state.get("status") or {}
        if status.get("label") == "closed" or ours in state["satisfied"]:
            return
        last = max([ticket.created_at, *(e.at for e in ticket.entries)])
        system = source.split(":", 1)[0]
        self.node.cases.create_many(
            self.node.key,
            case_id,
            [
                ("status.set", {"label": "closed"}),
                (
                    "party.satisfied",
                    {"version": state["terms"]["version"], "note": f"closed in {system}"},
                ),
            ],
            member=SYSTEM_MEMBER,
            via="import",
            time=last,
            conn=conn,
        )
        tally["cases_closed"] += 1

    # -- keys ------------------------------------------------------------------------

    def _key(self, conn: Connection, source: str, kind: str, external_id: str) -> str | None:
        found = conn.execute(
            _KEY, {"source": source, "kind": kind, "external_id": external_id[:200]}
        ).scalar_one_or_none()
        return None if found is None else str(found)

    def _remember(
        self, conn: Connection, source: str, kind: str, external_id: str, local_id: str
    ) -> None:
        conn.execute(
            import_keys.insert(),
            {
                "source": source,
                "kind": kind,
                "external_id": external_id[:200],
                "local_id": local_id,
                "imported_at": self.now(),
            },
        )


def _title(ticket: Ticket) -> str:
    title = " ".join(ticket.subject.split())
    if not title:
        first = next(
            (line.strip() for e in ticket.entries for line in e.text.splitlines() if line.strip()),
            "",
        )
        title = first or f"Imported ticket {ticket.key}"
    return title[:MAX_TITLE]


def _text(entry: Entry, source: str) -> str:
    text = entry.text.strip()
    if entry.attachments:
        names = ", ".join(entry.attachments[:50])
        system = source.split(":", 1)[0]
        text += f"\n\n[attachments not imported, still in {system}: {names}]"
    text = text.strip() or "(no text)"
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - len(TRUNCATED)] + TRUNCATED
    return text
