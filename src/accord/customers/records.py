"""The single customer view, and the changes members make to customer records.

One customer, many identities (email, phone, WhatsApp, Telegram, …), all their cases and
messages on one timeline. Members link and unlink identities, merge two records of the
same person and split a record that mixed two people. Nothing is deleted by a merge: the
absorbed record points at the one it joined (``merged_into``) and keeps its identities
and cases, which the view gathers; ``unmerge`` undoes it. A split moves the chosen
identities and cases to a new record; merging them back undoes it. Every change is
written to ``customer_changes`` with who, when and what moved.

Suggestions: records whose identities share a phone number (the same digits as a phone,
WhatsApp or SMS identity) or an email address (ignoring ``+tags``, and dots at Gmail) are
probably one person; a member decides.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import phonenumbers
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.customers.directory import IDENTITY_KINDS, Customers, normalise
from accord.service.errors import Conflict, Invalid, NotFound
from accord.store.cases import CaseStore
from accord.store.tables import (
    case_customers,
    cases,
    customer_changes,
    customer_identities,
    customers,
)

Clock = Callable[[], datetime]
EMAIL = re.compile(r"[^@\s<>,;\"]{1,64}@[^@\s<>,;\"]+\.[^@\s<>,;\"]+")
PHONE_KINDS = ("phone", "whatsapp")
GMAIL = ("gmail.com", "googlemail.com")


@dataclass(frozen=True)
class Change:
    id: int
    at: datetime
    by: str
    action: str
    customer_id: int
    other_id: int | None
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "by": self.by,
            "action": self.action,
            "customer": self.customer_id,
            "other": self.other_id,
            "detail": self.detail,
        }


def identity_value(kind: str, value: str) -> str:
    """The stored form of an identity a member types, or ``Invalid`` saying why."""
    if kind not in IDENTITY_KINDS:
        raise Invalid(f"identity kind must be one of {', '.join(IDENTITY_KINDS)}", field="kind")
    value = value.strip()
    if kind in PHONE_KINDS:
        e164 = phone_e164(value)
        if e164 is None:
            raise Invalid("a phone number in international form, e.g. +447700900123", field="value")
        value = e164
    elif kind == "email" and not EMAIL.fullmatch(value):
        raise Invalid(f"not an email address: {value!r}", field="value")
    elif not value or len(value) > 320 or any(c.isspace() for c in value):
        raise Invalid("an identity is 1 to 320 characters without spaces", field="value")
    return normalise(kind, value)


def phone_e164(text: str) -> str | None:
    """``text`` as an E.164 phone number (``+447700900123``), or ``None`` when it is not a
    possible number in international form (``+`` or ``00`` and the country code).

    Parsed by ``phonenumbers`` (Google's libphonenumber metadata): separators and a
    ``(0)`` trunk prefix are understood, and a number is checked for the lengths its
    country allows rather than against one regex. Possible, not "valid":
    numbers reserved for drama and tests (``+44 7700 900…``) are accepted.
    """
    candidate = text.strip()
    if candidate.startswith("00"):
        candidate = "+" + candidate[2:]
    if not candidate.startswith("+") or len(candidate) > 40:
        return None
    try:
        number = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


class CustomerRecords:
    def __init__(self, store: CaseStore, *, now: Clock = lambda: datetime.now(UTC)) -> None:
        self.cases = store
        self.db = store.db
        self.now = now
        self.customers = Customers(store.db, now=now)

    # -- the view --------------------------------------------------------------------

    def view(self, customer_id: int) -> dict[str, Any]:
        """The customer (following merges) with every identity and case of its family."""
        with self.db.read() as conn:
            root = self._root(conn, customer_id)
            family = self._family(conn, root)
            row = conn.execute(sa.select(customers).where(customers.c.id == root)).one()
            identities = conn.execute(
                sa.select(customer_identities)
                .where(customer_identities.c.customer_id.in_(family))
                .order_by(customer_identities.c.id)
            ).all()
            linked = conn.execute(
                sa.select(
                    cases.c.case_id,
                    cases.c.title,
                    cases.c.resolved,
                    cases.c.opened_at,
                    cases.c.updated_at,
                    case_customers.c.customer_id,
                )
                .join(case_customers, case_customers.c.case_id == cases.c.case_id)
                .where(case_customers.c.customer_id.in_(family))
                .order_by(cases.c.updated_at.desc())
            ).all()
        return {
            "id": root,
            "name": row.name,
            "created_at": _aware(row.created_at).isoformat(),
            "merged": sorted(c for c in family if c != root),
            "identities": [
                {
                    "kind": i.kind,
                    "value": i.value,
                    "verified": bool(i.verified),
                    "record": int(i.customer_id),
                }
                for i in identities
            ],
            "cases": [
                {
                    "case": r.case_id,
                    "title": r.title,
                    "resolved": bool(r.resolved),
                    "opened": r.opened_at,
                    "updated": _aware(r.updated_at).isoformat(),
                    "record": int(r.customer_id),
                }
                for r in linked
            ],
        }

    def timeline(self, customer_id: int, *, limit: int = 200) -> list[dict[str, Any]]:
        """Every message of every case of the customer, across channels, oldest first
        (the latest ``limit``)."""
        found = self.view(customer_id)
        items: list[dict[str, Any]] = []
        for case in found["cases"]:
            for event in self.cases.timeline(case["case"], limit=limit):
                if event.type != "message.posted":
                    continue
                items.append(
                    {
                        "case": case["case"],
                        "title": case["title"],
                        "event": event.id,
                        "time": event.time,
                        "via": event.author.via,
                        "from": event.author.member,
                        "customer": event.author.for_party is not None,
                        "text": event.body.get("text", ""),
                    }
                )
        items.sort(key=lambda i: (i["time"], i["event"]))
        return items[-limit:]

    def search(self, query: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """Customers whose name or an identity contains ``query`` (case-insensitive)."""
        needle = f"%{query.strip().lower()}%"
        with self.db.read() as conn:
            ids = conn.execute(
                sa.select(customers.c.id)
                .where(
                    customers.c.merged_into.is_(None),
                    sa.or_(
                        sa.func.lower(customers.c.name).like(needle),
                        customers.c.id.in_(
                            sa.select(customer_identities.c.customer_id).where(
                                sa.func.lower(customer_identities.c.value).like(needle)
                            )
                        ),
                    ),
                )
                .order_by(customers.c.id)
                .limit(limit)
            ).scalars()
            roots = list(dict.fromkeys(self._root(conn, int(i)) for i in ids))
        return [self._summary(r) for r in roots]

    def _summary(self, customer_id: int) -> dict[str, Any]:
        found = self.view(customer_id)
        return {
            "id": found["id"],
            "name": found["name"],
            "identities": [f"{i['kind']}:{i['value']}" for i in found["identities"]],
            "cases": len(found["cases"]),
            "open_cases": sum(not c["resolved"] for c in found["cases"]),
        }

    # -- changes ---------------------------------------------------------------------

    def link(self, customer_id: int, kind: str, value: str, *, by: str) -> dict[str, Any]:
        """Add an identity; one that belongs to another customer is a merge, not a link."""
        value = identity_value(kind, value)
        with self.db.write() as conn:
            root = self._root(conn, customer_id)
            owner = self.customers.find(conn, kind, value)
            if owner is not None:
                if owner == root:
                    raise Conflict(f"{kind} {value} is already this customer's")
                raise Conflict(
                    f"{kind} {value} belongs to customer {owner}: merge the two records "
                    "instead (nothing is lost, and it can be undone)",
                    field="value",
                    details={"customer": owner},
                )
            self.customers.add_identity(conn, root, kind, value, verified=False)
            self._record(conn, by, "link", root, None, {"kind": kind, "value": value})
        return self.view(root)

    def unlink(self, customer_id: int, kind: str, value: str, *, by: str) -> dict[str, Any]:
        value = normalise(kind, value.strip())
        with self.db.write() as conn:
            root = self._root(conn, customer_id)
            row = conn.execute(
                sa.select(customer_identities).where(
                    customer_identities.c.kind == kind,
                    customer_identities.c.value == value,
                    customer_identities.c.customer_id.in_(self._family(conn, root)),
                )
            ).first()
            if row is None:
                raise NotFound(f"customer {root} has no {kind} identity {value}")
            conn.execute(customer_identities.delete().where(customer_identities.c.id == row.id))
            self._record(
                conn,
                by,
                "unlink",
                root,
                None,
                {
                    "kind": kind,
                    "value": value,
                    "record": int(row.customer_id),
                    "verified": bool(row.verified),
                },
            )
        return self.view(root)

    def merge(self, customer_id: int, other_id: int, *, by: str) -> dict[str, Any]:
        """``other_id`` (and everything merged into it) joins ``customer_id``."""
        with self.db.write() as conn:
            root, other = self._root(conn, customer_id), self._root(conn, other_id)
            if root == other:
                raise Conflict("these are already one customer")
            name = conn.execute(
                sa.select(customers.c.name).where(customers.c.id == other)
            ).scalar_one()
            conn.execute(customers.update().where(customers.c.id == other).values(merged_into=root))
            self._record(conn, by, "merge", root, other, {"name": name})
        return self.view(root)

    def unmerge(self, customer_id: int, *, by: str) -> dict[str, Any]:
        """Undo a merge: the record ``customer_id`` stands on its own again, with the
        identities and cases it had."""
        with self.db.write() as conn:
            into = conn.execute(
                sa.select(customers.c.merged_into).where(customers.c.id == customer_id)
            ).first()
            if into is None:
                raise NotFound(f"no customer {customer_id} on this node")
            if into.merged_into is None:
                raise Conflict(f"customer {customer_id} is not merged into another")
            conn.execute(
                customers.update().where(customers.c.id == customer_id).values(merged_into=None)
            )
            self._record(
                conn,
                by,
                "unmerge",
                int(into.merged_into),
                customer_id,
                {"was_merged_into": int(into.merged_into)},
            )
        return self.view(customer_id)

    def split(
        self,
        customer_id: int,
        *,
        name: str,
        identities: Sequence[tuple[str, str]] = (),
        case_ids: Sequence[str] = (),
        by: str,
    ) -> dict[str, Any]:
        """Move the chosen identities and cases to a new customer named ``name``."""
        if not name.strip():
            raise Invalid("the new customer needs a name", field="name")
        if not identities and not case_ids:
            raise Invalid("choose the identities or cases that belong to the other person")
        with self.db.write() as conn:
            root = self._root(conn, customer_id)
            family = self._family(conn, root)
            moved_identities = []
            for kind, value in identities:
                value = normalise(kind, value.strip())
                row = conn.execute(
                    sa.select(customer_identities.c.id, customer_identities.c.customer_id).where(
                        customer_identities.c.kind == kind,
                        customer_identities.c.value == value,
                        customer_identities.c.customer_id.in_(family),
                    )
                ).first()
                if row is None:
                    raise NotFound(
                        f"customer {root} has no {kind} identity {value}", field="identities"
                    )
                moved_identities.append((int(row.id), kind, value, int(row.customer_id)))
            moved_cases = []
            for case_id in case_ids:
                row = conn.execute(
                    sa.select(case_customers.c.party_id, case_customers.c.customer_id).where(
                        case_customers.c.case_id == case_id,
                        case_customers.c.customer_id.in_(family),
                    )
                ).first()
                if row is None:
                    raise NotFound(f"case {case_id} is not customer {root}'s", field="cases")
                moved_cases.append((case_id, str(row.party_id), int(row.customer_id)))
            new = self.customers.create(conn, " ".join(name.split())[:200])
            for row_id, *_ in moved_identities:
                conn.execute(
                    customer_identities.update()
                    .where(customer_identities.c.id == row_id)
                    .values(customer_id=new)
                )
            for case_id, party, _ in moved_cases:
                conn.execute(
                    case_customers.update()
                    .where(case_customers.c.case_id == case_id, case_customers.c.party_id == party)
                    .values(customer_id=new)
                )
            self._record(
                conn,
                by,
                "split",
                root,
                new,
                {
                    "identities": [
                        {"kind": k, "value": v, "record": r} for _, k, v, r in moved_identities
                    ],
                    "cases": [{"case": c, "record": r} for c, _, r in moved_cases],
                },
            )
        return self.view(new)

    def history(self, customer_id: int) -> list[Change]:
        with self.db.read() as conn:
            family = self._family(conn, self._root(conn, customer_id))
            rows = conn.execute(
                sa.select(customer_changes)
                .where(
                    sa.or_(
                        customer_changes.c.customer_id.in_(family),
                        customer_changes.c.other_id.in_(family),
                    )
                )
                .order_by(customer_changes.c.id)
            ).all()
        return [
            Change(
                int(r.id),
                _aware(r.at),
                r.by,
                r.action,
                int(r.customer_id),
                None if r.other_id is None else int(r.other_id),
                orjson.loads(r.detail),
            )
            for r in rows
        ]

    def suggestions(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Pairs of customers that are probably one person, and why."""
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(
                    customer_identities.c.customer_id,
                    customer_identities.c.kind,
                    customer_identities.c.value,
                )
            ).all()
            roots = {int(r.customer_id): self._root(conn, int(r.customer_id)) for r in rows}
        by_key: dict[str, set[int]] = defaultdict(set)
        for r in rows:
            key = _match_key(r.kind, r.value)
            if key is not None:
                by_key[key].add(roots[int(r.customer_id)])
        found: dict[tuple[int, int], str] = {}
        for key, owners in sorted(by_key.items()):
            ordered = sorted(owners)
            for i, a in enumerate(ordered):
                for b in ordered[i + 1 :]:
                    found.setdefault((a, b), key)
        return [
            {"customers": [a, b], "reason": _reason(key)}
            for (a, b), key in sorted(found.items())[:limit]
        ]

    # -- internals -------------------------------------------------------------------

    def _root(self, conn: Connection, customer_id: int) -> int:
        exists = conn.execute(
            sa.select(customers.c.id).where(customers.c.id == customer_id)
        ).first()
        if exists is None:
            raise NotFound(f"no customer {customer_id} on this node")
        return self.customers.current(conn, customer_id)

    def _family(self, conn: Connection, root: int) -> list[int]:
        return self.customers.family(conn, root)

    def _record(
        self,
        conn: Connection,
        by: str,
        action: str,
        customer_id: int,
        other_id: int | None,
        detail: dict[str, Any],
    ) -> None:
        conn.execute(
            customer_changes.insert(),
            {
                "at": self.now(),
                "by": by,
                "action": action,
                "customer_id": customer_id,
                "other_id": other_id,
                "detail": orjson.dumps(detail).decode(),
            },
        )


def _match_key(kind: str, value: str) -> str | None:
    if kind in PHONE_KINDS:
        # platforms give numbers with or without the "+" (WhatsApp's wa_id has none)
        e164 = phone_e164(value if value.startswith(("+", "00")) else f"+{value}")
        return None if e164 is None else f"phone:{e164}"
    if kind == "email" and "@" in value:
        local, _, domain = value.lower().rpartition("@")
        local = local.split("+", 1)[0]
        if domain in GMAIL:
            local, domain = local.replace(".", ""), "gmail.com"
        return f"email:{local}@{domain}"
    return None


def _reason(key: str) -> str:
    kind, _, value = key.partition(":")
    return f"same phone number {value}" if kind == "phone" else f"same email address {value}"


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)
