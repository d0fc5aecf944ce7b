"""The inbox and the case bundle read from a real PostgreSQL streaming replica
(``ACCORD_DATABASE_READ_URL``), through the pages and the API as members use them.

The replica's replay is paused (``pg_wal_replay_pause()``) right before a member writes:
her own inbox and export show her write at once (the primary serves her until the replica
holds it), while a colleague's may show the replica as it was, within the bound, and
shows the write once the replica has replayed it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.core.bundle import BundleReport, verify_bundle
from accord.node import Node
from accord.service.negotiation import Actor
from tests.clocks import FakeClock, cheap_passwords
from tests.replica import Replicated
from tests.web.conftest import PASSWORD
from tests.web.test_pages import login

pytestmark = pytest.mark.postgres
HOUR = 3600.0  # the bound here: no test run comes near it
TOM = Actor(member="Tom Baker", via="web")


@dataclass
class Desk:
    node: Node
    app: object
    services: object
    case_id: str


@pytest.fixture
def desk(tmp_path: Path, replicated: Replicated) -> Iterator[Desk]:
    root = tmp_path / "northwind"
    Node.init(root, name="Northwind Broadband", database=replicated.url).close()
    node = Node.open(root, database=replicated.url, read_database=replicated.read_url)
    assert node.db.replica is not None
    node.db.read_max_lag = HOUR
    app = create_app(node, now=FakeClock(), passwords=cheap_passwords(), rate_limit=0)
    services = app.state.services
    services.members.create("tom", PASSWORD, role="agent", display_name="Tom Baker")
    services.members.create("ann", PASSWORD, role="agent", display_name="Ann Lee")
    opened = services.negotiation.open_case(
        TOM,
        title="Broadband down",
        party_id=services.party_id,
        party_name="Northwind",
        party_url=None,
        customer={"name": "Dana Whitfield"},
    )
    services.negotiation.post_message(TOM, opened.case_id, "Router shows a red light")
    services.ownership.take(opened.case_id, services.members.by_username("ann"))
    yield Desk(node, app, services, str(opened.case_id))
    services.close()
    node.close()


def test_a_member_sees_her_own_write_at_once_and_a_colleague_within_the_bound(
    desk: Desk, replicated: Replicated
) -> None:
    ann, tom = TestClient(desk.app), TestClient(desk.app)  # type: ignore[arg-type]
    csrf = login(ann, "ann")
    login(tom, "tom")
    assert "Router shows a red light" in ann.get("/?view=all").text  # the inbox rows made
    replicated.replica.catch_up()
    replicated.replica.pause()

    reply = "Engineer booked for Thursday"
    posted = ann.post(
        f"/api/v1/cases/{desk.case_id}/messages",
        json={"text": reply},
        headers={"X-CSRF-Token": csrf},
    )
    assert posted.status_code == 201, posted.text
    assert reply in ann.get("/?view=all").text  # her inbox: her reply, at once
    theirs = tom.get("/?view=all").text
    assert "Broadband down" in theirs and "Router shows a red light" in theirs
    assert reply not in theirs  # his: the replica as it was, behind within the bound

    bundle = f"/api/v1/cases/{desk.case_id}/bundle"
    hers, his = _export(ann, bundle), _export(tom, bundle)
    assert hers.events == his.events + 1  # her export holds her message; his not yet

    replicated.replica.resume()
    replicated.replica.catch_up()
    assert reply in tom.get("/?view=all").text
    assert _export(tom, bundle).events == hers.events


def _export(client: TestClient, path: str) -> BundleReport:
    """The case's bundle as ``client`` downloads it, verified: each one is whole (its
    state is the fold of its events), wherever it was read."""
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    report = verify_bundle(answer.content)
    assert report.ok, report.problems
    return report
