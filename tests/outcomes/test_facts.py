"""Every metric on hand-built case histories with known answers: business hours
(mon-fri 09:00-17:00, Europe/London), a reopened case and cases still open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.outcomes.facts import GRACE
from accord.outcomes.measures import figure
from accord.outcomes.store import Filter
from tests.outcomes.helpers import PRIYA, TOM, Desk, make_desk

HOUR = 3600


@pytest.fixture
def desk(tmp_path: Path, database_url: str) -> Iterator[Desk]:
    made = make_desk(tmp_path, database_url)
    yield made
    made.node.close()


def plan(desk: Desk, case: str, *, callback_due: str, task_due: str) -> str:
    changes = [
        {
            "op": "activity.put",
            "activity": "call",
            "title": "Call Priya",
            "owner": "northwind",
            "kind": "callback",
            "due": callback_due,
        },
        {
            "op": "activity.put",
            "activity": "switch",
            "title": "Switch tariff",
            "owner": "northwind",
            "kind": "task",
            "due": task_due,
        },
    ]
    return desk.negotiation.propose(TOM, case, changes).event_ids[0]


def test_a_resolved_reopened_case(desk: Desk) -> None:
    c = desk.clock
    c.set("2026-11-02 16:00")  # Monday, one business hour before closing
    case = desk.open()
    desk.ownership.take(case, desk.members["tom"])  # Accord's introduction: not a response
    c.set("2026-11-02 16:30")
    desk.negotiation.post_message(TOM, case, "Hello Priya, I'm on it.")
    c.set("2026-11-03 10:00")
    first = plan(desk, case, callback_due="2026-11-03T15:00:00Z", task_due="2026-11-04T12:00:00Z")
    c.set("2026-11-03 10:30")
    counter = desk.negotiation.counter(
        PRIYA,
        case,
        first,
        [
            {
                "op": "activity.put",
                "activity": "call",
                "title": "Call Priya",
                "owner": "northwind",
                "kind": "callback",
                "due": "2026-11-03T15:00:00Z",
            },
            {
                "op": "activity.put",
                "activity": "switch",
                "title": "Switch tariff",
                "owner": "northwind",
                "kind": "task",
                "due": "2026-11-04T12:00:00Z",
            },
        ],
    ).event_ids[0]
    c.set("2026-11-03 11:00")
    desk.negotiation.accept(TOM, case, counter)  # agreement v1: 1 h Monday + 2 h Tuesday
    c.set("2026-11-03 12:00")
    desk.ownership.handoff(case, "sara", "Tom is off tomorrow", by=desk.members["tom"])
    c.set("2026-11-03 15:03")  # within the grace after 15:00: kept
    desk.negotiation.report_progress(TOM, case, "call", "done")
    c.set("2026-11-04 13:00")  # an hour after 12:00: missed
    desk.negotiation.report_progress(TOM, case, "switch", "done")
    desk.outcomes.store.mark(case, "repeat", member_id=desk.members["sara"].id, note="account no.")
    c.set("2026-11-04 14:00")
    desk.negotiation.satisfied(TOM, case)
    c.set("2026-11-04 15:00")
    desk.negotiation.satisfied(PRIYA, case, rating=4)  # resolved after 1 + 8 + 6 hours
    c.set("2026-11-04 16:00")
    desk.negotiation.reopen(PRIYA, case, "The speed is still low")
    c.set("2026-11-05 09:30")
    desk.negotiation.satisfied(TOM, case)
    c.set("2026-11-05 10:00")
    desk.negotiation.satisfied(PRIYA, case, rating=2)

    f = desk.outcomes.store.facts(case)
    assert f.first_response_s == 30 * 60
    assert f.agreement_s == 3 * HOUR
    assert f.resolution_s == (1 + 8 + 8 + 1) * HOUR  # the resolution after the reopening
    assert f.reopenings == 1
    assert f.transfers == 1
    assert f.repeats == 1
    assert (f.callbacks_promised, f.callbacks_kept) == (1, 1)
    assert (f.activities_promised, f.activities_kept) == (1, 0)
    assert f.rounds == 2
    assert f.rating == 2  # Priya's latest rating, with the terms she is satisfied with
    assert f.member_id == desk.members["sara"].id
    assert f.channel == "api"
    assert f.deviations is None  # not opened from a template


def test_open_cases_have_no_durations_and_count_in_the_backlog(desk: Desk) -> None:
    c = desk.clock
    c.set("2026-11-06 16:30")  # Friday
    quiet = desk.open("Nobody answered yet")
    c.set("2026-11-06 16:40")
    busy = desk.open("Promised a call")
    desk.negotiation.post_message(TOM, busy, "We will call you on Monday.")
    proposal = plan(
        desk, busy, callback_due="2026-11-09T09:30:00Z", task_due="2026-11-09T11:00:00Z"
    )
    desk.negotiation.accept(PRIYA, busy, proposal)
    c.set("2026-11-09 10:00")  # Monday: the 09:30 call was not made, 11:00 not yet due
    desk.outcomes.store.refresh_stale()
    rows = {r.case_id: r for r in desk.outcomes.store.rows(Filter())}
    q, b = rows[quiet], rows[busy]
    assert (q.first_response_s, q.agreement_s, q.resolution_s, q.resolved_at) == (
        None,
        None,
        None,
        None,
    )
    assert b.first_response_s == 0  # 16:40 Friday to 16:40: no business time passed
    assert b.agreement_s == 0
    assert (b.callbacks_promised, b.callbacks_kept) == (1, 0)  # missed
    assert (b.activities_promised, b.activities_kept) == (0, 0)  # still pending
    board = desk.outcomes.dashboard(Filter())
    assert board.cases == 2 and board.open == 2 and board.backlog == 2
    assert board.ageing["1-3 days"] == 2
    assert board.summary["first_response"].n == 1
    assert board.summary["resolution"].n == 0 and board.summary["resolution"].value is None
    assert board.summary["callbacks_on_time"].value == 0.0


def test_a_promise_moved_before_it_was_due_is_neither_kept_nor_missed(desk: Desk) -> None:
    c = desk.clock
    c.set("2026-11-02 10:00")
    case = desk.open()
    desk.negotiation.accept(
        PRIYA,
        case,
        plan(desk, case, callback_due="2026-11-02T15:00:00Z", task_due="2026-11-03T12:00:00Z"),
    )
    c.set("2026-11-02 14:00")  # moved to 16:00 an hour before it was due
    moved = desk.negotiation.propose(
        TOM,
        case,
        [
            {
                "op": "activity.put",
                "activity": "call",
                "title": "Call Priya",
                "owner": "northwind",
                "kind": "callback",
                "due": "2026-11-02T16:00:00Z",
            }
        ],
    ).event_ids[0]
    desk.negotiation.accept(PRIYA, case, moved)
    c.set("2026-11-02 16:00")
    desk.negotiation.report_progress(TOM, case, "call", "done")
    c.set("2026-11-03 12:00")
    c.at += GRACE  # done exactly at the deadline: still on time
    desk.negotiation.report_progress(TOM, case, "switch", "done")
    f = desk.outcomes.store.facts(case)
    assert (f.callbacks_promised, f.callbacks_kept) == (1, 1)
    assert (f.activities_promised, f.activities_kept) == (1, 1)
    assert f.rounds == 2


def test_repeat_and_identify_marks_and_private_rating(desk: Desk) -> None:
    case = desk.open()
    tom = desk.members["tom"].id
    desk.outcomes.store.mark(case, "identify", member_id=tom)
    desk.outcomes.store.mark(case, "repeat", member_id=tom)
    desk.outcomes.store.mark(case, "rating", member_id=tom, value=5, party="priya")
    f = desk.outcomes.store.facts(case)
    assert (f.repeats, f.rating, f.marks) == (2, 5.0, 3)
    rows = desk.outcomes.store.rows(Filter())
    assert figure("repeats", rows).value == 2.0
