"""Accountable service through the API, with a controllable clock and a real worker:
owners and routing, handoffs, promised callbacks and response targets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.jobs.queue import JobQueue
from accord.jobs.worker import Worker
from accord.node import Node
from accord.service import settings
from accord.service.sla import ResponseTargets
from accord.store.tables import case_owners, jobs
from tests.clocks import cheap_passwords

CASEWORK = ["cases:read", "cases:write", "notes:read", "notes:write"]
FRIDAY_NOON = datetime(2026, 10, 23, 11, 0, tzinfo=UTC)  # 12:00 BST in London


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Desk:
    node: Node
    client: TestClient
    clock: Clock
    worker: Worker
    tokens: dict[str, dict[str, str]]

    def as_(self, who: str) -> dict[str, str]:
        return self.tokens[who]

    def run_due(self) -> None:
        while self.worker.run_once():
            pass

    def notes_for(self, who: str) -> list[dict[str, Any]]:
        response = self.client.get("/api/v1/notifications", headers=self.as_(who))
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result

    def portal(self, case_id: str) -> dict[str, str]:
        link = self.client.post(
            f"/api/v1/cases/{case_id}/portal-links",
            headers=self.as_("tom"),
            json={"party": "priya", "identity": "priya@example.com"},
        )
        assert link.status_code == 201, link.text
        return {"Authorization": f"Portal {link.json()['token']}"}


@pytest.fixture
def desk(tmp_path: Path, database_url: str) -> Iterator[Desk]:
    node = Node.init(tmp_path / "northwind", name="Northwind Broadband", database=database_url)
    clock = Clock(FRIDAY_NOON)
    app = create_app(node, now=clock, passwords=cheap_passwords())
    services = app.state.services
    people = {
        "tom": ("Tom Baker", "agent"),
        "sara": ("Sara Lind", "lead"),
        "ravi": ("Ravi Kumar", "agent"),
        "ann": ("Ann Lee", "agent"),
        "admin": ("Ada Admin", "admin"),
    }
    tokens = {}
    for username, (name, role) in people.items():
        member = services.members.create(
            username, "correct horse battery", role=role, display_name=name
        )
        scopes = [*CASEWORK, "members:admin"] if role == "admin" else CASEWORK
        tokens[username] = {
            "Authorization": f"Bearer {services.tokens.create(member.id, 't', scopes).token}"
        }
    own = services.ownership
    own.add_team("Broadband", lead="sara")
    for username in ("tom", "sara", "ravi", "ann"):
        own.set_profile(username, team="Broadband", skills=["broadband"])
    settings.set_calendar(
        node.db,
        timezone="Europe/London",
        hours="mon-fri 09:00-17:30",
        country="GB",
        subdivision="ENG",
    )
    handlers = {
        "callback.remind": services.callbacks.remind,
        "callback.missed": services.callbacks.missed,
        "sla.breach": ResponseTargets(
            node.cases, node.key, own, JobQueue(node.db, now=clock), now=clock
        ).breach,
    }
    worker = Worker(node.db, JobQueue(node.db, now=clock), handlers, worker_id="test", now=clock)
    with TestClient(app) as client:
        yield Desk(node, client, clock, worker, tokens)
    node.close()


def open_case(desk: Desk, who: str = "tom", **extra: Any) -> str:
    response = desk.client.post(
        "/api/v1/cases",
        headers=desk.as_(who),
        json={
            "title": "Business broadband contract",
            "customer": {"id": "priya", "name": "Priya Shah"},
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    case_id: str = response.json()["case"]
    return case_id


def agree_callback(desk: Desk, case_id: str, due: datetime) -> None:
    """Tom promises a callback; Priya accepts it through the portal."""
    proposal = desk.client.post(
        f"/api/v1/cases/{case_id}/proposals",
        headers=desk.as_("tom"),
        json={
            "changes": [
                {
                    "op": "activity.put",
                    "activity": "callback",
                    "title": "Call Priya to confirm the switch",
                    "owner": "northwind-broadband",
                    "member": "Tom Baker",
                    "kind": "callback",
                    "channel": "phone",
                    "due": due.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ]
        },
    )
    assert proposal.status_code == 201, proposal.text
    pid = proposal.json()["events"][0]
    accepted = desk.client.post(
        f"/api/v1/portal/proposals/{pid}/accept", headers=desk.portal(case_id)
    )
    assert accepted.status_code == 200, accepted.text


def test_the_opener_owns_the_case_and_the_customer_is_told(desk: Desk) -> None:
    case_id = open_case(desk)
    view = desk.client.get("/api/v1/portal", headers=desk.portal(case_id)).json()
    assert view["timeline"][0]["body"]["text"].startswith("Your case is owned by Tom Baker")
    assert view["timeline"][0]["author"]["member"] == "Accord"
    state = desk.node.cases.state(case_id)
    assert state is not None and state["owners"]["northwind-broadband"]["name"] == "Tom Baker"


def test_routing_by_team_skill_availability_load_and_round_robin(desk: Desk) -> None:
    own = desk.client.app.state.services.ownership  # type: ignore[attr-defined]
    own.add_team("Billing", lead="sara")
    own.set_profile("ravi", team="Billing", skills=["billing", "refunds"])
    own.set_profile("ann", team="Billing", skills=["billing"])
    rule = desk.client.post(
        "/api/v1/routing/rules",
        headers=desk.as_("admin"),
        json={"priority": 10, "team": "Billing", "skill": "billing", "topic": "refund"},
    )
    assert rule.status_code == 201
    refused = desk.client.post(
        "/api/v1/routing/rules", headers=desk.as_("tom"), json={"team": "Billing"}
    )
    assert refused.status_code == 403

    def routed() -> str:
        owner = desk.client.post(
            "/api/v1/cases",
            headers=desk.as_("tom"),
            json={
                "title": "Refund",
                "route": True,
                "topics": [{"topic": "refund", "title": "Refund"}],
            },
        ).json()["owner"]
        return str(owner["owner"]["member"])

    assert [routed(), routed()] == ["ravi", "ann"]  # equal load: round robin
    desk.client.put(
        "/api/v1/me/availability", headers=desk.as_("ravi"), json={"availability": "off"}
    )
    assert routed() == "ann"  # Ravi is off shift
    desk.client.put(
        "/api/v1/me/availability", headers=desk.as_("ravi"), json={"availability": "online"}
    )
    assert routed() == "ravi"  # fewest open cases
    own.set_profile("ravi", availability="off")
    own.set_profile("ann", availability="off")
    nobody = desk.client.post(
        "/api/v1/cases",
        headers=desk.as_("tom"),
        json={"title": "Refund", "route": True, "topics": [{"topic": "refund", "title": "Refund"}]},
    )
    assert nobody.status_code == 409 and "nobody is available" in nobody.text

    case_id = open_case(desk)
    override = desk.client.post(
        f"/api/v1/cases/{case_id}/assign", headers=desk.as_("tom"), json={"member": "ann"}
    )
    assert override.status_code == 403  # only a lead overrides routing
    lead = desk.client.post(
        f"/api/v1/cases/{case_id}/assign",
        headers=desk.as_("sara"),
        json={"member": "ann", "note": "Ann knows this customer"},
    )
    assert lead.status_code == 200 and lead.json()["owner"]["member"] == "ann"


def test_three_handoffs_keep_the_customer_whole(desk: Desk) -> None:
    case_id = open_case(desk)
    priya = desk.portal(case_id)
    said = desk.client.post(
        "/api/v1/portal/messages",
        headers=priya,
        json={"text": "My 12-month term ended; I pay £40 for a £20 line."},
    )
    assert said.status_code == 201
    no_note = desk.client.post(
        f"/api/v1/cases/{case_id}/handoff", headers=desk.as_("tom"), json={"to": "sara", "note": ""}
    )
    assert no_note.status_code == 422
    chain = [
        ("tom", "sara", "Tom is off sick; the price question is open"),
        ("sara", "ravi", "Ravi handles the tariff switch"),
        ("ravi", "ann", "Ann confirms the installation address"),
    ]
    for who, to, note in chain:
        response = desk.client.post(
            f"/api/v1/cases/{case_id}/handoff", headers=desk.as_(who), json={"to": to, "note": note}
        )
        assert response.status_code == 200, response.text
        assert desk.client.get("/api/v1/portal", headers=priya).status_code == 200  # same link
    owner = desk.client.get(f"/api/v1/cases/{case_id}/owner", headers=desk.as_("ann")).json()
    assert owner["owner"]["owner"]["name"] == "Ann Lee" and owner["owner"]["transfers"] == 3
    handoffs = [h for h in owner["history"] if h["reason"] == "handoff"]
    assert [h["note"] for h in handoffs] == [note for _, _, note in chain]
    assert all("Last messages:" in h["summary"] and "£40" in h["summary"] for h in handoffs)
    # people read it: times as "Tue 24 Nov 2026 09:00 UTC", parties by name, not slugs
    assert not any(re.search(r"\d{4}-\d\d-\d\dT\d\d:", h["summary"]) for h in handoffs)
    assert "northwind-broadband" not in handoffs[-1]["summary"]
    assert re.search(r"\(opened \w{3} \d\d \w{3} \d{4} \d\d:\d\d UTC\)", handoffs[-1]["summary"])
    latest = desk.notes_for("ann")[0]
    assert latest["kind"] == "handoff" and chain[-1][2] in latest["text"]
    assert "Parties: Northwind Broadband" in latest["text"]
    state = desk.node.cases.state(case_id)
    assert state is not None and state["owners"]["northwind-broadband"]["changes"] == 3
    with desk.node.db.read() as conn:
        transfers = conn.execute(
            sa.select(case_owners.c.transfers).where(case_owners.c.case_id == case_id)
        ).scalar_one()
    assert transfers == 3
    customer_view = desk.client.get("/api/v1/portal", headers=priya).json()
    from_us = [
        e["body"]["text"]
        for e in customer_view["timeline"]
        if e["type"] == "message.posted" and e["author"]["party"] != "priya"
    ]
    assert len(from_us) == 4 and from_us[0].startswith("Your case is now owned by Ann Lee")
    for text in from_us:  # nobody asks Priya who she is or to start again
        assert not any(
            w in text.lower()
            for w in ("identify", "verify", "account number", "explain again", "start again")
        )


def test_a_kept_callback_is_reminded_and_never_escalated(desk: Desk) -> None:
    case_id = open_case(desk)
    due = datetime(2026, 10, 23, 14, 0, tzinfo=UTC)  # Friday 15:00 BST
    agree_callback(desk, case_id, due)
    desk.clock.at = due - timedelta(minutes=15, seconds=1)
    desk.run_due()
    assert not [n for n in desk.notes_for("tom") if n["kind"] == "reminder"]
    desk.clock.at = due - timedelta(minutes=15)
    desk.run_due()
    reminders = [n for n in desk.notes_for("tom") if n["kind"] == "reminder"]
    assert len(reminders) == 1 and "Fri 23 Oct 15:00 BST" in reminders[0]["text"]
    desk.clock.at = due - timedelta(minutes=2)
    done = desk.client.post(
        f"/api/v1/cases/{case_id}/activities/callback/progress",
        headers=desk.as_("tom"),
        json={"state": "done"},
    )
    assert done.status_code == 200
    desk.clock.at = due + timedelta(hours=3)
    desk.run_due()
    assert not [n for n in desk.notes_for("sara") if n["kind"] == "escalation"]


def test_a_missed_callback_outside_hours_escalates_at_monday_opening_across_dst(
    desk: Desk,
) -> None:
    case_id = open_case(desk)
    due = datetime(2026, 10, 23, 16, 28, tzinfo=UTC)  # Friday 17:28 BST, closing at 17:30
    agree_callback(desk, case_id, due)
    desk.clock.at = due + timedelta(minutes=5)  # Friday 17:33 BST: closed
    desk.run_due()
    assert not [n for n in desk.notes_for("sara") if n["kind"] == "escalation"]
    # Clocks go back on Sunday 25 October: Monday's 09:00 opening is 09:00 UTC, not 08:00
    desk.clock.at = datetime(2026, 10, 26, 8, 59, tzinfo=UTC)
    desk.run_due()
    assert not [n for n in desk.notes_for("sara") if n["kind"] == "escalation"]
    desk.clock.at = datetime(2026, 10, 26, 9, 0, tzinfo=UTC)
    desk.run_due()
    escalations = [n for n in desk.notes_for("sara") if n["kind"] == "escalation"]
    assert len(escalations) == 1 and "Tom Baker promised" in escalations[0]["text"]
    assert "Mon 26 Oct 10:00 GMT" in escalations[0]["text"]
    view = desk.client.get("/api/v1/portal", headers=desk.portal(case_id)).json()
    apology = next(e for e in view["timeline"] if e["type"] == "message.posted")
    assert "did not call you back by Fri 23 Oct 17:28 BST" in apology["body"]["text"]
    assert "Sara Lind will call you by Mon 26 Oct 10:00 GMT" in apology["body"]["text"]
    (proposed,) = view["activities"]["proposed"]
    assert proposed["member"] == "Sara Lind" and proposed["due"] == "2026-10-26T10:00:00Z"
    desk.run_due()  # fires once
    assert len([n for n in desk.notes_for("sara") if n["kind"] == "escalation"]) == 1


def test_a_missed_callback_escalates_once_through_restarts_and_later_changes(
    desk: Desk,
) -> None:
    services = desk.client.app.state.services  # type: ignore[attr-defined]
    case_id = open_case(desk)
    due = datetime(2026, 10, 23, 14, 0, tzinfo=UTC)  # Friday 15:00 BST
    agree_callback(desk, case_id, due)
    desk.clock.at = due + timedelta(minutes=5)
    desk.run_due()

    def escalations() -> int:
        return len([n for n in desk.notes_for("sara") if n["kind"] == "escalation"])

    def apologies() -> int:
        view = desk.client.get("/api/v1/portal", headers=desk.portal(case_id)).json()
        return len(
            [e for e in view["timeline"] if "did not call you back" in e["body"].get("text", "")]
        )

    assert (escalations(), apologies()) == (1, 1)
    for minutes in (10, 20, 30):  # the worker restarts, the case moves on, twice over
        desk.clock.at = due + timedelta(minutes=minutes)
        assert services.callbacks.reconcile_all() == 1  # rebuilt at start ...
        desk.run_due()
        posted = desk.client.post(
            f"/api/v1/cases/{case_id}/messages",
            headers=desk.as_("tom"),
            json={"text": "Sorry Priya, calling you shortly."},
        )
        assert posted.status_code == 201, posted.text  # ... and after a change
        desk.run_due()
    assert (escalations(), apologies()) == (1, 1)
    proposals = desk.node.cases.state(case_id)["proposals"]  # type: ignore[index]
    assert len([p for p in proposals.values() if p["state"] == "pending"]) == 1
    # the customer accepts the new time: a new promise, whose timers arm again
    (pid,) = [pid for pid, p in proposals.items() if p["state"] == "pending"]
    accepted = desk.client.post(
        f"/api/v1/portal/proposals/{pid}/accept", headers=desk.portal(case_id)
    )
    assert accepted.status_code == 200, accepted.text
    missed = JobQueue(desk.node.db, now=desk.clock).unfinished(
        f"callback.missed:{case_id}:callback"
    )
    assert missed is not None and missed.payload["due"] == "2026-10-23T15:05:00Z"
    assert "fired" not in missed.payload and missed.run_at < datetime(2027, 1, 1, tzinfo=UTC)


def test_ten_cases_with_the_same_callback_due_at_once_each_get_their_reminder(
    desk: Desk,
) -> None:
    due = datetime(2026, 10, 23, 14, 0, tzinfo=UTC)
    cases = [open_case(desk) for _ in range(10)]
    for case_id in cases:
        agree_callback(desk, case_id, due)  # every one's activity is called "callback"
    queue = JobQueue(desk.node.db, now=desk.clock)
    assert len(queue.pending(kind="callback.remind")) == 10
    assert len(queue.pending(kind="callback.missed")) == 10
    desk.clock.at = due - timedelta(minutes=15)
    desk.run_due()
    reminders = [n for n in desk.notes_for("tom") if n["kind"] == "reminder"]
    assert sorted(n["case"] for n in reminders) == sorted(cases)


def test_response_target_pauses_while_waiting_on_the_customer(desk: Desk) -> None:
    settings.write(desk.node.db, "sla", {"default": {"first_response": 60, "next_response": 120}})
    case_id = open_case(desk)
    priya = desk.portal(case_id)
    desk.clock.at = datetime(2026, 10, 23, 14, 0, tzinfo=UTC)  # Fri 15:00 BST
    desk.client.post("/api/v1/portal/messages", headers=priya, json={"text": "Any news?"})
    desk.clock.at += timedelta(minutes=20)
    desk.client.put(
        f"/api/v1/cases/{case_id}/status",
        headers=desk.as_("tom"),
        json={"label": "waiting_on_customer"},
    )  # paused after 20 minutes
    desk.clock.at = datetime(2026, 10, 23, 16, 0, tzinfo=UTC)  # 2 h later: still paused
    desk.run_due()
    assert not [n for n in desk.notes_for("tom") if n["kind"] == "sla"]
    desk.client.post(
        "/api/v1/portal/messages", headers=priya, json={"text": "Here is the address: 12 High St."}
    )  # resumes at 17:00 BST
    desk.clock.at += timedelta(minutes=30)  # 17:30 BST: closing; 50 business minutes so far
    desk.run_due()
    assert not [n for n in desk.notes_for("tom") if n["kind"] == "sla"]
    desk.clock.at = datetime(2026, 10, 26, 9, 9, tzinfo=UTC)  # Monday 09:09 GMT: 59 min
    desk.run_due()
    assert not [n for n in desk.notes_for("tom") if n["kind"] == "sla"]
    desk.clock.at = datetime(2026, 10, 26, 9, 10, tzinfo=UTC)  # the 60th business minute
    desk.run_due()
    breaches = [n for n in desk.notes_for("tom") if n["kind"] == "sla"]
    assert len(breaches) == 1 and "first response" in breaches[0]["text"]
    assert [n for n in desk.notes_for("sara") if n["kind"] == "sla"]
    desk.client.post("/api/v1/portal/messages", headers=priya, json={"text": "Hello?"})
    desk.clock.at += timedelta(hours=3)
    desk.run_due()  # one alarm per breach, however long it lasts
    assert len([n for n in desk.notes_for("tom") if n["kind"] == "sla"]) == 1
    # a member's reply stops the clock; the next customer message gets the next target
    desk.client.post(
        f"/api/v1/cases/{case_id}/messages",
        headers=desk.as_("tom"),
        json={"text": "Thanks, Priya — switching now."},
    )
    desk.clock.at = datetime(2026, 10, 27, 9, 0, tzinfo=UTC)  # Tuesday 09:00 GMT
    priya = desk.portal(case_id)  # Friday's link has expired (72 hours)
    asked = desk.client.post("/api/v1/portal/messages", headers=priya, json={"text": "Done?"})
    assert asked.status_code == 201, asked.text
    desk.clock.at += timedelta(minutes=119)
    desk.run_due()
    assert len([n for n in desk.notes_for("tom") if n["kind"] == "sla"]) == 1
    desk.clock.at += timedelta(minutes=1)  # 120 business minutes: the next-response target
    desk.run_due()
    breaches = [n for n in desk.notes_for("tom") if n["kind"] == "sla"]
    assert len(breaches) == 2 and "next response" in breaches[0]["text"]


def test_a_lost_response_clock_is_rebuilt_at_start_and_sounds_once(desk: Desk) -> None:
    settings.write(desk.node.db, "sla", {"default": {"first_response": 60, "next_response": 120}})
    targets = ResponseTargets(
        desk.node.cases,
        desk.node.key,
        desk.client.app.state.services.ownership,  # type: ignore[attr-defined]
        JobQueue(desk.node.db, now=desk.clock),
        now=desk.clock,
    )
    case_id = open_case(desk)
    asked_at = datetime(2026, 10, 23, 13, 0, tzinfo=UTC)  # Fri 14:00 BST
    desk.clock.at = asked_at
    asked = desk.client.post(
        "/api/v1/portal/messages", headers=desk.portal(case_id), json={"text": "Any news?"}
    )
    assert asked.status_code == 201, asked.text
    assert targets.reconcile_all() == 0  # the clock agrees with the log: left alone
    with desk.node.db.write() as conn:  # the step that started the clock was lost
        conn.execute(jobs.delete().where(jobs.c.key == f"sla:{case_id}"))
    desk.clock.at = asked_at + timedelta(hours=2)
    desk.run_due()
    assert not [n for n in desk.notes_for("tom") if n["kind"] == "sla"]  # lost for good ...

    assert targets.reconcile_all() == 1  # ... until the worker starts: rebuilt from the log
    rebuilt = JobQueue(desk.node.db, now=desk.clock).unfinished(f"sla:{case_id}")
    assert rebuilt is not None and rebuilt.run_at == asked_at + timedelta(minutes=60)
    desk.run_due()
    breaches = [n for n in desk.notes_for("tom") if n["kind"] == "sla"]
    assert len(breaches) == 1 and "first response" in breaches[0]["text"]
    for _ in range(2):  # restarted again: the breach was reported, and is not again
        assert targets.reconcile_all() == 0
        desk.clock.at += timedelta(hours=1)
        desk.run_due()
    assert len([n for n in desk.notes_for("tom") if n["kind"] == "sla"]) == 1


def test_the_daily_digest_lists_what_is_due_today_and_schedules_tomorrow(desk: Desk) -> None:
    from accord.service.digest import Digest

    services = desk.client.app.state.services  # type: ignore[attr-defined]
    digest = Digest(
        desk.node.cases, services.ownership, JobQueue(desk.node.db, now=desk.clock), now=desk.clock
    )
    desk.worker.handlers["digest.daily"] = digest.run
    case_id = open_case(desk)
    agree_callback(desk, case_id, datetime(2026, 10, 26, 14, 0, tzinfo=UTC))  # Monday 14:00
    desk.clock.at = datetime(2026, 10, 24, 10, 0, tzinfo=UTC)  # Saturday: closed
    first = digest.ensure_scheduled()
    assert first == datetime(2026, 10, 26, 9, 0, tzinfo=UTC)  # Monday opening, GMT after DST
    desk.clock.at = first
    desk.run_due()
    (note,) = [n for n in desk.notes_for("tom") if n["kind"] == "digest"]
    assert "Due today (Mon 26 Oct)" in note["text"]
    assert "14:00: call back 'Call Priya to confirm the switch'" in note["text"]
    (tomorrow,) = JobQueue(desk.node.db, now=desk.clock).pending(kind="digest.daily")
    assert tomorrow.run_at == datetime(2026, 10, 27, 9, 0, tzinfo=UTC)
