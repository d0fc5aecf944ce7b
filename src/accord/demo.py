"""``accord demo``: a realistic organisation with a few hundred cases, so the dashboard
and the comparison mean something on first run.

Northwind Broadband (SCENARIOS.md): a front desk, a billing team and a broadband team,
London business hours with English holidays, three templates — **billing v1** (first-line
agent, transfer to billing, callback from billing), **billing v2** (the first agent owns
the case end to end) and **broadband** — and twelve weeks of cases across email, phone,
web chat and WhatsApp. Every event is really signed and folded; only the clock is
simulated. Billing v2 cuts transfers and repeated questions and keeps more callbacks,
while time to agreement stays the same (scenario 4), and recent cases are still open.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from accord.auth.members import Member, MemberStore
from accord.core.state import open_work
from accord.core.timefmt import format_time
from accord.jobs.follow import skip_history
from accord.node import Node, party_slug
from accord.outcomes.figures import Outcomes
from accord.outcomes.targets import Targets
from accord.service import settings
from accord.service.calendar import BusinessCalendar
from accord.service.negotiation import Actor, Negotiation
from accord.service.ownership import Ownership
from accord.templates.opening import CaseTemplates
from accord.templates.store import TemplateStore

BILLING_V1 = """
name: billing
title: Billing dispute
description: First-line agent takes the call, transfers to billing; billing calls back.
topics:
  - {topic: bill, title: The disputed bill}
data:
  - {key: account, label: Account number}
  - {key: amount, label: Disputed amount, type: money}
activities:
  - {activity: review, title: Billing reviews the bill, due: 2d}
callbacks:
  - {activity: billing-call, title: Billing calls the customer back, due: 1d}
sla: {first_response: 60, next_response: 240}
routing: {team: Front desk}
"""

BILLING_V2 = """
name: billing
title: Billing dispute
description: The first agent owns the case end to end; billing advises in a note.
topics:
  - {topic: bill, title: The disputed bill}
data:
  - {key: account, label: Account number}
  - {key: amount, label: Disputed amount, type: money}
activities:
  - {activity: review, title: Review the bill with billing's advice, due: 2d}
callbacks:
  - {activity: owner-call, title: Your owner calls you back, due: 1d}
sla: {first_response: 30, next_response: 240}
routing: {team: Billing}
"""

BROADBAND = """
name: broadband
title: Broadband contract
topics:
  - {topic: price, title: New price}
  - {topic: term, title: Contract term}
data:
  - {key: line, label: Line number}
activities:
  - {activity: switch, title: Switch the tariff, due: 3d}
callbacks:
  - {activity: confirm-call, title: Call to confirm the switch, due: 1d}
sla: {first_response: 60, next_response: 240}
routing: {team: Broadband}
"""

PEOPLE = {
    "tom": ("Tom Baker", "agent", "Broadband"),
    "sara": ("Sara Lind", "lead", "Broadband"),
    "jo": ("Jo Park", "agent", "Front desk"),
    "leo": ("Leo Grant", "agent", "Front desk"),
    "fay": ("Fay Moss", "lead", "Front desk"),
    "ravi": ("Ravi Kumar", "agent", "Billing"),
    "ann": ("Ann Lee", "agent", "Billing"),
    "mia": ("Mia Stone", "admin", "Billing"),  # leads Billing; the admin who sees /admin
}
LEADS = {"Broadband": "sara", "Front desk": "fay", "Billing": "mia"}
CHANNELS = (("email", 0.45), ("phone", 0.25), ("webchat", 0.2), ("whatsapp", 0.1))
FIRST_NAMES = ("Priya", "Omar", "Chen", "Ada", "Luis", "Grace", "Ivan", "Nina", "Sam", "Zoe")
LAST_NAMES = ("Shah", "Haddad", "Wei", "Okafor", "Garcia", "Hughes", "Petrov", "Berg", "Cole")
WEEKS = 12


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Seeded:
    cases: int
    open: int
    members: int
    password: str


def occupied(node: Node) -> tuple[int, int]:
    """How many cases and members ``node`` already holds: the demo refuses such a node
    unless forced, so that fake cases and a published password never land in a real one
    (or twice in the same one)."""
    import sqlalchemy as sa

    from accord.store.tables import cases, members

    with node.db.read() as conn:
        n_cases = conn.execute(sa.select(sa.func.count()).select_from(cases)).scalar_one()
        n_members = conn.execute(sa.select(sa.func.count()).select_from(members)).scalar_one()
    return int(n_cases), int(n_members)


def seed(
    node: Node,
    *,
    cases: int = 300,
    seed_value: int = 7,
    now: datetime | None = None,
    password: str = "northwind demo password",
    progress: Callable[[int], None] | None = None,
) -> Seeded:
    """Fill ``node`` with the demo organisation; members' password is ``password``."""
    rng = random.Random(seed_value)
    end = now or datetime.now(UTC)
    clock = Clock(end - timedelta(weeks=WEEKS))
    settings.set_calendar(
        node.db,
        timezone="Europe/London",
        hours="mon-fri 09:00-17:30",
        country="GB",
        subdivision="ENG",
    )
    calendar = settings.calendar(node.db)
    store = MemberStore(node.db)
    negotiation = Negotiation(node.cases, node.key, now=clock)
    ownership = Ownership(node.cases, node.key, store, now=clock)
    templates = CaseTemplates(TemplateStore(node.db, now=clock), negotiation, ownership)
    members: dict[str, Member] = {}
    for username, (name, role, _team) in PEOPLE.items():
        found = store.by_username(username)
        members[username] = found or store.create(username, password, role=role, display_name=name)
    for team, lead in LEADS.items():
        if team not in {t["name"] for t in ownership.list_teams()}:
            ownership.add_team(team, lead=lead)
    for username, (_n, _r, team) in PEOPLE.items():
        ownership.set_profile(username, team=team, availability="online")
    templates.apply(BILLING_V1, by="demo")
    templates.apply(BROADBAND, by="demo")
    targets = Targets(node.db, now=clock)
    if not targets.list():
        targets.add(
            name="Agreement within 4 business hours",
            metric="agreement",
            stat="median",
            op="<=",
            threshold=4,
            owner="sara",
        )
        targets.add(
            name="At most one transfer per case",
            metric="transfers",
            stat="mean",
            op="<=",
            threshold=1,
            owner="mia",
        )
        targets.add(
            name="98% of callbacks on time",
            metric="callbacks_on_time",
            op=">=",
            threshold=98,
            owner="fay",
        )
        targets.add(
            name="First response within 1 business hour",
            metric="first_response",
            stat="p90",
            op="<=",
            threshold=1,
            owner="sara",
        )
    party = party_slug(node.name)
    sim = _Sim(
        rng,
        clock,
        calendar,
        negotiation,
        ownership,
        templates,
        members,
        party,
        node.name,
        Outcomes(node.db, node.key.public, now=clock),
    )
    starts = sorted(
        clock.at + timedelta(seconds=rng.uniform(0, WEEKS * 7 * 86400)) for _ in range(cases)
    )
    switched = False
    still_open = 0
    for i, start in enumerate(starts):
        if not switched and start >= end - timedelta(weeks=WEEKS / 2):
            clock.at = start
            templates.apply(BILLING_V2, by="demo")
            switched = True
        still_open += sim.case(start, end)
        if progress:
            progress(i + 1)
    clock.at = end
    Outcomes(node.db, node.key.public, now=lambda: end).store.refresh_stale()
    skip_history(node.db)  # six weeks of past: nobody is to be notified of it now
    return Seeded(cases, still_open, len(members), password)


class _Sim:
    def __init__(
        self,
        rng: random.Random,
        clock: Clock,
        calendar: BusinessCalendar,
        negotiation: Negotiation,
        ownership: Ownership,
        templates: CaseTemplates,
        members: dict[str, Member],
        party: str,
        party_name: str,
        outcomes: Outcomes,
    ) -> None:
        self.rng, self.clock, self.cal = rng, clock, calendar
        self.neg, self.own, self.flows = negotiation, ownership, templates
        self.members, self.party, self.party_name = members, party, party_name
        self.outcomes = outcomes

    def later(self, hours: float) -> None:
        """Move the clock on by ``hours`` of business time."""
        self.clock.at = self.cal.add(self.clock.at, timedelta(hours=max(0.02, hours)))

    def case(self, start: datetime, end: datetime) -> int:
        rng = self.rng
        self.clock.at = self.cal.next_open(start)
        if self.clock.at >= end:
            self.clock.at = start
        channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        customer = Actor(
            member=name, via="portal", party="customer", session=f"demo-{start.timestamp()}"
        )
        kind = rng.choices(["billing", "broadband", None], [0.45, 0.4, 0.15])[0]
        first = self.members[rng.choice(["jo", "leo"] if kind != "broadband" else ["tom"])]
        agent = Actor(member=first.display_name, via=channel)
        if kind is None:
            case_id = self.neg.open_case(
                agent,
                title="General enquiry",
                party_id=self.party,
                party_name=self.party_name,
                customer={"id": "customer", "name": name},
            ).case_id
            self.own.take(case_id, first)
            version = 0
        else:
            opened = self.flows.open_case(
                agent,
                kind,
                title=f"{kind.title()} case for {name}",
                party_id=self.party,
                party_name=self.party_name,
                customer={"id": "customer", "name": name},
                member=first,
            )
            case_id, version = opened.case_id, opened.version
            owner = self.own.owner(case_id)
            if owner is not None:
                first = owner.member
                agent = Actor(member=first.display_name, via=channel)
        v2 = kind == "billing" and version == 2
        v1 = kind == "billing" and version == 1
        horizon = end
        if self._past(horizon):
            return 1
        self.later(rng.expovariate(1 / 0.4))
        if self._past(horizon):
            return 1
        self.neg.post_message(agent, case_id, f"Hello {name.split()[0]}, I'm looking at it now.")
        self._data(agent, case_id, kind)
        # Repeated identification: v1 asks again after each transfer.
        asks = rng.choices([0, 1, 2], [0.35, 0.45, 0.2] if v1 else [0.85, 0.13, 0.02])[0]
        for _ in range(asks):
            self.outcomes.store.mark(
                case_id, rng.choice(["identify", "repeat"]), member_id=first.id
            )
        owner_name = first.username
        state = self.neg.state(case_id)
        pending = [p for p, v in state["proposals"].items() if v["state"] == "pending"]
        # Negotiation: the customer counters now and then; agreement time is the same
        # distribution in v1 and v2 (scenario 4).
        self.later(rng.lognormvariate(0.6, 0.7))
        if self._past(horizon):
            return 1
        if pending:
            plan = pending[0]
            if rng.random() < 0.35:
                changes = [self._still_ahead(c) for c in state["proposals"][plan]["changes"]]
                plan = self.neg.counter(
                    customer, case_id, plan, changes, note="Could we move the times?"
                ).event_ids[0]
                self.later(rng.uniform(0.1, 1.0))
                if self._past(horizon):
                    return 1
                self.neg.accept(agent, case_id, plan)
            else:
                self.neg.accept(customer, case_id, plan)
        else:
            plan = self.neg.propose(
                agent,
                case_id,
                [
                    {
                        "op": "activity.put",
                        "activity": "answer",
                        "title": "Answer the question",
                        "owner": self.party,
                        "kind": "task",
                        "due": format_time(self.cal.add(self.clock.at, timedelta(hours=8))),
                    }
                ],
            ).event_ids[0]
            self.later(rng.uniform(0.1, 2))
            if self._past(horizon):
                return 1
            self.neg.accept(customer, case_id, plan)
        # Transfers: v1 hands to billing (and often back); v2 rarely.
        if v1:
            hops = rng.choices([1, 2, 3, 4], [0.15, 0.4, 0.3, 0.15])[0]
        elif v2:
            hops = rng.choices([0, 1], [0.75, 0.25])[0]
        else:
            hops = rng.choices([0, 1, 2], [0.6, 0.3, 0.1])[0]
        for _ in range(hops):
            pool = [u for u in ("ravi", "ann", "jo", "leo", "tom") if u != owner_name]
            nxt = rng.choice(pool)
            self.later(rng.uniform(0.2, 1.5))
            if self._past(horizon):
                return 1
            self.own.handoff(
                case_id, nxt, "Over to you: see the summary.", by=self.members[owner_name]
            )
            owner_name = nxt
        agent = Actor(member=self.members[owner_name].display_name, via=channel)
        # Promises: kept on time with a probability per workflow.
        keep = 0.71 if v1 else 0.97 if v2 else 0.9
        state = self.neg.state(case_id)
        for aid, activity in sorted(
            state["terms"]["activities"].items(), key=lambda kv: kv[1].get("due", "")
        ):
            if activity["owner"] != self.party or "due" not in activity:
                continue
            due = datetime.fromisoformat(activity["due"].replace("Z", "+00:00"))
            if rng.random() < keep:
                at = max(self.clock.at, due - timedelta(minutes=rng.uniform(5, 90)))
            else:
                at = max(self.clock.at, due + timedelta(hours=rng.uniform(0.5, 6)))
            self.clock.at = at
            if self._past(horizon):
                return 1
            self.neg.report_progress(agent, case_id, aid, "done")
        self.later(rng.uniform(0.2, 3))
        if self._past(horizon):
            return 1
        self._finish_work(agent, customer, case_id)
        self.neg.satisfied(agent, case_id)
        rating = rng.choices(
            [5, 4, 3, 2], [0.5, 0.3, 0.15, 0.05] if not v1 else [0.3, 0.35, 0.25, 0.1]
        )[0]
        self.later(rng.uniform(0.1, 4))
        if self._past(horizon):
            return 1
        self.neg.satisfied(customer, case_id, rating=rating)
        if rng.random() < (0.08 if v1 else 0.04):
            self.later(rng.uniform(2, 16))
            if self._past(horizon):
                return 1
            self.neg.reopen(customer, case_id, "It happened again.")
            self.later(rng.uniform(1, 8))
            if self._past(horizon):
                return 1
            self.neg.satisfied(agent, case_id)
            self.neg.satisfied(customer, case_id, rating=max(1, rating - 1))
        return 0

    def _finish_work(self, agent: Actor, customer: Actor, case_id: str) -> None:
        """What satisfaction waits for (issue 19): every open activity reported done by
        its owner, every open topic closed."""
        state = self.neg.state(case_id)
        work = open_work(state)
        for aid in work["activities"]:
            owner = state["terms"]["activities"][aid]["owner"]
            self.neg.report_progress(
                agent if owner == self.party else customer, case_id, aid, "done"
            )
        for topic in work["topics"]:
            self.neg.close_topic(agent, case_id, topic)

    def _data(self, agent: Actor, case_id: str, kind: str | None) -> None:
        """The template's data items, now and then one left out or one more added."""
        rng = self.rng
        items: list[tuple[str, dict[str, Any], str]] = []
        if kind == "billing":
            items = [
                (
                    "account",
                    {"type": "text", "value": f"NW-{rng.randrange(10**6):06d}"},
                    "Account number",
                ),
                (
                    "amount",
                    {"type": "money", "amount": f"{rng.randrange(5, 300)}.00", "currency": "GBP"},
                    "Disputed amount",
                ),
            ]
        elif kind == "broadband":
            items = [
                (
                    "line",
                    {"type": "text", "value": f"01632 {rng.randrange(10**6):06d}"},
                    "Line number",
                )
            ]
        if items and rng.random() < 0.15:
            items.pop()
        if kind is not None and rng.random() < 0.1:
            items.append(("router", {"type": "text", "value": "Hub 4"}, "Router model"))
        for key, value, label in items:
            self.neg.set_info(agent, case_id, key, value, label=label)

    def _still_ahead(self, change: dict[str, Any]) -> dict[str, Any]:
        """A change whose due time has passed, moved to two business hours from now."""
        if "due" not in change:
            return change
        due = datetime.fromisoformat(change["due"].replace("Z", "+00:00"))
        if due > self.clock.at + timedelta(minutes=30):
            return change
        return {**change, "due": format_time(self.cal.add(self.clock.at, timedelta(hours=2)))}

    def _past(self, horizon: datetime) -> bool:
        """The simulated case has caught up with today: it stays open from here."""
        return self.clock.at >= horizon
