"""Practice runs: a member rehearses a whole case with a simulated customer.

``start`` opens a practice case on this node — a real, signed case whose customer,
*Pat Practice*, this node hosts — and records it node-privately, so it is left out of
every metric. The customer writes first. The member then works it as a real case (web
pages, API): answer, propose a plan with a promised callback, make the call and report it
done, mark our party satisfied. ``check`` plays the customer — accepting the member's
pending proposal and, once our party is satisfied, marking the customer satisfied — and
says which steps are done; the run is finished when every step is. ``accord readiness``
names the members who have not finished one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from accord.auth.members import Member
from accord.core.state import State
from accord.service.errors import NotFound
from accord.service.negotiation import Actor, Negotiation
from accord.store.tables import practice_runs

CUSTOMER_ID = "pat"
CUSTOMER = Actor(member="Pat Practice", via="portal", party=CUSTOMER_ID, session="practice")
OPENING = (
    "Hello, my broadband bill doubled this month and nobody told me why. Can someone call "
    "me back about it?"
)
STEPS = (
    ("reply", "answer Pat's message"),
    ("plan", "propose a plan with a promised callback (an activity of kind callback)"),
    ("agreed", "Pat accepts your plan (done for you by `accord practice check`)"),
    ("called", "make the call and report the callback done"),
    ("satisfied", "mark our party satisfied; Pat then marks the case satisfied too"),
)


@dataclass(frozen=True)
class Run:
    case_id: str
    member: str
    started_at: datetime
    finished_at: datetime | None
    done: dict[str, bool]

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


class Practice:
    def __init__(
        self,
        negotiation: Negotiation,
        *,
        party_id: str,
        party_name: str,
        now: Callable[[], datetime],
    ) -> None:
        self.negotiation = negotiation
        self.db = negotiation.cases.db
        self.party_id = party_id
        self.party_name = party_name
        self.now = now

    def start(self, member: Member) -> Run:
        actor = Actor(member=member.display_name, via="cli")
        opened = self.negotiation.open_case(
            actor,
            title="[Practice] Broadband bill doubled",
            party_id=self.party_id,
            party_name=self.party_name,
            customer={"id": CUSTOMER_ID, "name": "Pat Practice"},
        )
        self.negotiation.post_message(CUSTOMER, opened.case_id, OPENING)
        with self.db.write() as conn:
            conn.execute(
                practice_runs.insert().values(
                    case_id=opened.case_id, member_id=member.id, started_at=self.now()
                )
            )
        return self.check(member, opened.case_id)

    def check(self, member: Member, case_id: str | None = None) -> Run:
        """Play the customer's part, then say which steps the member has done."""
        row = self._run(member, case_id)
        case_id = row.case_id
        state = self.negotiation.state(case_id)
        done = self._done(member, state, case_id)
        if done["plan"] and not done["agreed"]:
            for pid, proposal in state["proposals"].items():
                if proposal["state"] == "pending" and CUSTOMER_ID not in proposal["accepted_by"]:
                    self.negotiation.accept(CUSTOMER, case_id, pid)
        if done["called"] and self.party_id in state["satisfied"] and not state["resolved"]:
            self.negotiation.satisfied(CUSTOMER, case_id, rating=5, note="Thank you!")
        state = self.negotiation.state(case_id)
        done = self._done(member, state, case_id)
        finished = row.finished_at
        if all(done.values()) and finished is None:
            finished = self.now()
            with self.db.write() as conn:
                conn.execute(
                    practice_runs.update()
                    .where(practice_runs.c.case_id == case_id)
                    .values(finished_at=finished)
                )
        return Run(case_id, member.username, row.started_at, finished, done)

    def _done(self, member: Member, state: State, case_id: str) -> dict[str, bool]:
        mine = [
            e
            for e in self.negotiation.cases.events(case_id)
            if e.author.member == member.display_name and e.author.for_party is None
        ]
        plans = [
            e
            for e in mine
            if e.type == "proposal.made"
            and any(c.get("kind") == "callback" for c in e.body["changes"])
        ]
        callbacks = [
            aid for aid, a in state["terms"]["activities"].items() if a["kind"] == "callback"
        ]
        return {
            "reply": any(e.type == "message.posted" for e in mine),
            "plan": bool(plans),
            "agreed": bool(callbacks),
            "called": any(
                aid in state["progress"] and state["progress"][aid]["state"] == "done"
                for aid in callbacks
            ),
            "satisfied": bool(state["resolved"]),
        }

    def _run(self, member: Member, case_id: str | None) -> Any:
        query = sa.select(practice_runs).where(practice_runs.c.member_id == member.id)
        if case_id is not None:
            query = query.where(practice_runs.c.case_id == case_id)
        with self.db.read() as conn:
            row = conn.execute(query.order_by(practice_runs.c.started_at.desc())).first()
        if row is None:
            raise NotFound(f"{member.username} has no practice run; start one first")
        return row
