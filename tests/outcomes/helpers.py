"""A node with a controllable clock, London business hours and three members, for
building case histories whose metrics are known."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from accord.auth.members import Member, MemberStore
from accord.node import Node
from accord.outcomes.figures import Outcomes
from accord.service import settings
from accord.service.negotiation import Actor, Negotiation
from accord.service.ownership import Ownership
from accord.templates.opening import CaseTemplates
from accord.templates.store import TemplateStore
from tests.clocks import cheap_passwords

TOM = Actor(member="Tom Baker", via="api")
PRIYA = Actor(member="Priya Shah", via="portal", party="priya", session="sess-priya")
CUSTOMER = {"id": "priya", "name": "Priya Shah"}


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def set(self, text: str) -> None:
        """``2026-11-02 16:00`` in UTC (London is on GMT in November)."""
        self.at = datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Desk:
    node: Node
    clock: Clock
    negotiation: Negotiation
    ownership: Ownership
    outcomes: Outcomes
    templates: CaseTemplates
    members: dict[str, Member]

    def open(self, title: str = "Broadband contract") -> str:
        return self.negotiation.open_case(
            TOM, title=title, party_id="northwind", party_name="Northwind", customer=CUSTOMER
        ).case_id


def make_desk(tmp_path: Path, database_url: str, start: str = "2026-11-02 08:00") -> Desk:
    node = Node.init(tmp_path / "northwind", name="Northwind", database=database_url)
    clock = Clock(datetime(2026, 1, 1, tzinfo=UTC))
    clock.set(start)
    settings.set_calendar(node.db, timezone="Europe/London", hours="mon-fri 09:00-17:00")
    store = MemberStore(node.db, passwords=cheap_passwords())
    people = {"tom": ("Tom Baker", "agent"), "sara": ("Sara Lind", "lead")}
    found = {
        u: store.create(u, "correct horse battery", role=r, display_name=n)
        for u, (n, r) in people.items()
    }
    negotiation = Negotiation(node.cases, node.key, now=clock)
    ownership = Ownership(node.cases, node.key, store, now=clock)
    ownership.add_team("Broadband", lead="sara")
    for username in people:
        ownership.set_profile(username, team="Broadband")
    return Desk(
        node,
        clock,
        negotiation,
        ownership,
        Outcomes(node.db, node.key.public, now=clock),
        CaseTemplates(TemplateStore(node.db, now=clock), negotiation, ownership),
        found,
    )
