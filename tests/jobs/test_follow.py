"""Followers of the case log (``accord.jobs.follow``): each event's effects once, in log
order, whatever the number of threads running them; a failing follower holds back only
itself and says why."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.core.crypto import NodeKey
from accord.core.events import Event
from accord.jobs.follow import FollowerRunner, marks
from accord.node import Node
from accord.store.tables import follower_marks, notes
from tests.clocks import FakeClock

KEY = NodeKey(b"follow-test-node".ljust(32, b"\0"))


class Recorder:
    """Writes one ``notes`` row per event it is handed, in the follower's transaction."""

    def __init__(self, name: str, fail_on: str | None = None) -> None:
        self.name = name
        self.fail_on = fail_on
        self.calls = 0

    def handle(self, conn: Connection, case_id: str, batch: Sequence[Event], state: object) -> None:
        self.calls += 1
        for event in batch:
            conn.execute(
                notes.insert().values(
                    case_id=case_id, member=self.name, text=event.id, created_at=FakeClock()()
                )
            )
            if self.fail_on is not None and event.body.get("text") == self.fail_on:
                raise RuntimeError(f"{self.name} cannot take {self.fail_on!r}")


@pytest.fixture
def node(tmp_path: object, database_url: str) -> Iterator[Node]:
    from pathlib import Path

    made = Node.init(Path(str(tmp_path)) / "node", name="Northwind", database=database_url)
    yield made
    made.close()


def written(node: Node, name: str) -> list[str]:
    with node.db.read() as conn:
        return list(
            conn.execute(
                sa.select(notes.c.text).where(notes.c.member == name).order_by(notes.c.id)
            ).scalars()
        )


def post(node: Node, case_id: str | None, *texts: str) -> list[Event]:
    if case_id is None:
        body = {
            "title": "Line down",
            "nonce": "n1",
            "parties": [
                {
                    "id": "northwind",
                    "name": "Northwind",
                    "kind": "organisation",
                    "node": node.key.public,
                }
            ],
        }
        return [node.cases.create(node.key, None, "case.opened", body, member="tom")]
    return node.cases.create_many(
        node.key, case_id, [("message.posted", {"text": t}) for t in texts], member="tom"
    )


def test_each_event_once_in_log_order_across_cases(node: Node) -> None:
    clock = FakeClock()
    first = post(node, None)[0]
    second = post(node, None)[0]
    made = [first, second]
    made += post(node, first.case, "one", "two")
    made += post(node, second.case, "three")
    made += post(node, first.case, "four")
    follower = Recorder("log")
    runner = FollowerRunner(node.db, [follower], now=clock, batch=2)
    assert runner.catch_up() == len(made)
    assert runner.catch_up() == 0  # nothing new: nothing twice
    assert written(node, "log") == [e.id for e in made]
    (lag,) = [m for m in runner.lag() if m.name == "log"]
    assert lag.behind == 0 and lag.failures == 0


def test_two_threads_never_take_the_same_batch(node: Node) -> None:
    case_id = post(node, None)[0].case
    for i in range(10):
        post(node, case_id, *(f"m{i}-{j}" for j in range(10)))
    follower = Recorder("busy")
    runners = [FollowerRunner(node.db, [follower], now=FakeClock(), batch=7) for _ in range(2)]
    threads = [threading.Thread(target=r.catch_up) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    FollowerRunner(node.db, [follower], now=FakeClock()).catch_up()  # whatever was skipped
    seen = written(node, "busy")
    assert len(seen) == 101 and len(set(seen)) == 101


def test_a_failing_follower_keeps_nothing_retries_later_and_holds_back_only_itself(
    node: Node,
) -> None:
    clock = FakeClock()
    case_id = post(node, None)[0].case
    post(node, case_id, "fine", "poison", "after")
    broken, healthy = Recorder("broken", fail_on="poison"), Recorder("healthy")
    runner = FollowerRunner(node.db, [broken, healthy], now=clock)
    runner.catch_up()
    assert written(node, "broken") == []  # the whole batch rolled back with its mark
    assert len(written(node, "healthy")) == 4
    failing = next(m for m in runner.lag() if m.name == "broken")
    assert failing.failures == 1 and failing.behind == 4
    assert failing.last_error == "RuntimeError: broken cannot take 'poison'"
    assert failing.retry_at == clock() + timedelta(seconds=5)

    assert runner.run_once(broken) == 0  # waits for its retry time
    clock.advance(seconds=5)
    runner.run_once(broken)
    again = next(m for m in runner.lag() if m.name == "broken")
    assert again.failures == 2 and again.retry_at == clock() + timedelta(seconds=10)

    broken.fail_on = None  # fixed (a redeploy, a peer back)
    clock.advance(seconds=10)
    assert runner.catch_up() == 4
    assert len(written(node, "broken")) == 4  # each event once
    fixed = next(m for m in runner.lag() if m.name == "broken")
    assert (fixed.failures, fixed.last_error, fixed.retry_at, fixed.behind) == (0, None, None, 0)


def test_evidence_is_skipped_and_a_new_follower_starts_at_the_beginning(node: Node) -> None:
    case_id = post(node, None)[0].case
    post(node, case_id, "hello")
    with node.db.write() as conn:  # as a rule-breaking event from a peer is kept
        conn.execute(sa.text("UPDATE events SET verdict = 'test' WHERE type = 'message.posted'"))
    late = Recorder("late")
    assert FollowerRunner(node.db, [late], now=FakeClock()).catch_up() == 2
    assert len(written(node, "late")) == 1  # the opening only
    with node.db.read() as conn:
        assert {m.name for m in marks(conn)} >= {"late", "webhooks", "member-notices"}


def test_an_upgrade_starts_the_known_followers_at_the_end_of_the_log(node: Node) -> None:
    """Migration 0023's rows: a node upgraded with history replays none of it."""
    with node.db.read() as conn:
        rows = conn.execute(sa.select(follower_marks.c.name, follower_marks.c.position)).all()
    names = {name for name, _ in rows}
    from accord.service.followers import NAMES

    assert set(NAMES) <= names
    assert all(position == 0 for _, position in rows)  # a new node: its log is empty


def test_two_followers_may_not_share_a_name(node: Node) -> None:
    with pytest.raises(ValueError, match="share a name"):
        FollowerRunner(node.db, [Recorder("x"), Recorder("x")], now=FakeClock())
