"""Customer records and their identities: node-private, never replicated.

In the shared case log a customer is only a hosted party with a display name; who that
party is — their email addresses and, later, phone numbers and chat ids — lives here,
on the supplier's node. One identity (a kind and a normalised value) belongs to exactly
one customer, so a message from a known address finds its customer at once and the
customer is never asked who they are again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.service.errors import NotFound
from accord.store.database import Database
from accord.store.tables import case_customers, cases, customer_identities, customers

Clock = Callable[[], datetime]
IDENTITY_KINDS = ("email", "phone", "whatsapp", "telegram", "messenger", "instagram", "x", "web")


@dataclass(frozen=True)
class Identity:
    kind: str
    value: str
    verified: bool


@dataclass(frozen=True)
class Customer:
    id: int
    name: str
    created_at: datetime
    identities: tuple[Identity, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "identities": [
                {"kind": i.kind, "value": i.value, "verified": i.verified} for i in self.identities
            ],
        }


def normalise(kind: str, value: str) -> str:
    """The stored form of an identity: email addresses compare case-insensitively."""
    value = value.strip()
    return value.lower() if kind == "email" else value


# Statements built once: building a statement costs several times what running it does
# on the inbound path (``docs/email.md``, "Where the time goes").
_FIND = sa.select(customer_identities.c.customer_id).where(
    customer_identities.c.kind == sa.bindparam("kind"),
    customer_identities.c.value == sa.bindparam("value"),
)
_INSERT_CUSTOMER = customers.insert().returning(customers.c.id)
_MERGED_INTO = sa.select(customers.c.merged_into).where(customers.c.id == sa.bindparam("id"))
_OF_CASE = (
    sa.select(case_customers.c.customer_id, case_customers.c.party_id)
    .where(case_customers.c.case_id == sa.bindparam("case_id"))
    .order_by(case_customers.c.party_id)
    .limit(1)
)


class Customers:
    def __init__(self, db: Database, *, now: Clock) -> None:
        self.db = db
        self.now = now

    def find(self, conn: Connection, kind: str, value: str) -> int | None:
        """The customer holding this identity, following merges; None if unknown."""
        row = conn.execute(_FIND, {"kind": kind, "value": normalise(kind, value)}).first()
        return None if row is None else self.current(conn, int(row.customer_id))

    def identify(
        self, conn: Connection, kind: str, value: str, name: str, *, verified: bool = False
    ) -> tuple[int, bool]:
        """The customer of this identity, made (with the identity) if new: (id, created)."""
        found = self.find(conn, kind, value)
        if found is not None:
            return found, False
        customer_id = self.create(conn, name)
        self.add_identity(conn, customer_id, kind, value, verified=verified)
        return customer_id, True

    def create(self, conn: Connection, name: str) -> int:
        """A new customer with no identities yet (an import adds them one by one)."""
        return int(
            conn.execute(_INSERT_CUSTOMER, {"name": name, "created_at": self.now()}).scalar_one()
        )

    def add_identity(
        self, conn: Connection, customer_id: int, kind: str, value: str, *, verified: bool
    ) -> None:
        conn.execute(
            customer_identities.insert(),
            {
                "customer_id": customer_id,
                "kind": kind,
                "value": normalise(kind, value),
                "verified": verified,
                "created_at": self.now(),
            },
        )

    def get(self, customer_id: int) -> Customer:
        with self.db.read() as conn:
            row = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).first()
            if row is None:
                raise NotFound(f"no customer {customer_id} on this node")
            found = conn.execute(
                sa.select(customer_identities)
                .where(customer_identities.c.customer_id == customer_id)
                .order_by(customer_identities.c.id)
            ).all()
        return Customer(
            id=int(row.id),
            name=row.name,
            created_at=row.created_at,
            identities=tuple(Identity(i.kind, i.value, bool(i.verified)) for i in found),
        )

    def addresses(self, conn: Connection, customer_id: int, kind: str = "email") -> list[str]:
        """The identities of ``kind`` of the customer and the records merged into it,
        oldest first (the first is where we write)."""
        return list(
            conn.execute(
                sa.select(customer_identities.c.value)
                .where(
                    customer_identities.c.customer_id.in_(self.family(conn, customer_id)),
                    customer_identities.c.kind == kind,
                )
                .order_by(customer_identities.c.id)
            ).scalars()
        )

    def family(self, conn: Connection, root: int) -> list[int]:
        """``root`` and every record merged into it, directly or not (a merge keeps the
        absorbed record, pointing at the one it joined)."""
        family = [root]
        frontier = [root]
        while frontier:
            children = [
                int(c)
                for c in conn.execute(
                    sa.select(customers.c.id).where(customers.c.merged_into.in_(frontier))
                ).scalars()
                if int(c) not in family
            ]
            family += children
            frontier = children
        return family

    def link_case(self, conn: Connection, case_id: str, party_id: str, customer_id: int) -> None:
        conn.execute(
            case_customers.insert(),
            {"case_id": case_id, "party_id": party_id, "customer_id": customer_id},
        )

    def of_case(self, conn: Connection, case_id: str) -> tuple[int, str] | None:
        """(customer id, party id) of the case's hosted customer, if it has one here."""
        row = conn.execute(_OF_CASE, {"case_id": case_id}).first()
        if row is None:
            return None
        return self.current(conn, int(row.customer_id)), str(row.party_id)

    def open_cases(self, conn: Connection, customer_id: int) -> list[tuple[str, str]]:
        """(case id, title) of the customer's unresolved cases, most recent first; a case
        whose status is ``closed`` (closed in a help desk it was imported from, say)
        waits only for the customer's word and is not offered as open."""
        rows = conn.execute(
            sa.select(cases.c.case_id, cases.c.title, cases.c.state)
            .join(case_customers, case_customers.c.case_id == cases.c.case_id)
            .where(
                case_customers.c.customer_id.in_(self.family(conn, customer_id)),
                cases.c.resolved.is_(False),
            )
            .order_by(cases.c.updated_at.desc())
        ).all()
        return [
            (str(r.case_id), str(r.title))
            for r in rows
            if (orjson.loads(r.state).get("status") or {}).get("label") != "closed"
        ]

    def current(self, conn: Connection, customer_id: int) -> int:
        """Follow ``merged_into`` to the customer that absorbed this one."""
        seen = {customer_id}
        while True:
            merged = conn.execute(_MERGED_INTO, {"id": customer_id}).scalar()
            if merged is None or merged in seen:
                return customer_id
            customer_id = int(merged)
            seen.add(customer_id)
