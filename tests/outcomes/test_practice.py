"""A practice run from start to finish: the simulated customer plays along, the case
stays out of the metrics, and readiness stops asking."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from accord.outcomes.readiness import readiness
from accord.outcomes.store import Filter
from accord.service.negotiation import Actor
from accord.templates.practice import Practice
from tests.outcomes.helpers import Desk, make_desk


@pytest.fixture
def desk(tmp_path: Path, database_url: str) -> Iterator[Desk]:
    made = make_desk(tmp_path, database_url)
    yield made
    made.node.close()


def pending(desk: Desk, who: str) -> list[str]:
    found = [f.text for f in readiness(desk.node.db, now=datetime.now(UTC))]
    return [t for t in found if "practice run" in t and who in t]


def test_a_practice_run(desk: Desk) -> None:
    tom = desk.members["tom"]
    practice = Practice(
        desk.negotiation, party_id="northwind", party_name="Northwind", now=desk.clock
    )
    assert pending(desk, "tom")
    run = practice.start(tom)
    assert not any(run.done.values()) and not run.finished
    actor = Actor(member="Tom Baker", via="web")
    case = run.case_id
    desk.negotiation.post_message(actor, case, "Hello Pat, I'm Tom; I'll call you at 11.")
    desk.negotiation.propose(
        actor,
        case,
        [
            {
                "op": "activity.put",
                "activity": "call",
                "title": "Call Pat",
                "owner": "northwind",
                "kind": "callback",
                "due": "2026-11-02T11:00:00Z",
            }
        ],
    )
    run = practice.check(tom)  # Pat accepts the plan
    assert run.done == {
        "reply": True,
        "plan": True,
        "agreed": True,
        "called": False,
        "satisfied": False,
    }
    desk.negotiation.report_progress(actor, case, "call", "done")
    desk.negotiation.satisfied(actor, case)
    run = practice.check(tom)  # Pat is satisfied too
    assert all(run.done.values()) and run.finished
    assert desk.negotiation.state(case)["resolved"]
    assert not pending(desk, "tom") and pending(desk, "sara")
    # Never measured: neither refreshed nor in any figure.
    assert desk.outcomes.store.refresh_stale() == 0
    assert desk.outcomes.dashboard(Filter()).cases == 0
