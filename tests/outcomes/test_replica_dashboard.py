"""The outcome dashboard and its CSV export read from a real PostgreSQL streaming replica
(``ACCORD_DATABASE_READ_URL``): with the replica's replay paused, the member who opened a
case sees it counted at once, a colleague sees the replica as it was (within the bound)
until it has replayed the change."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.node import Node
from tests.clocks import FakeClock, cheap_passwords
from tests.replica import Replicated

pytestmark = pytest.mark.postgres
HOUR = 3600.0  # the bound here: no test run comes near it


@dataclass
class Desk:
    client: TestClient
    tokens: dict[str, dict[str, str]]

    def open_case(self, who: str, title: str) -> None:
        made = self.client.post(
            "/api/v1/cases",
            headers=self.tokens[who],
            json={"title": title, "customer": {"name": "Priya Shah"}},
        )
        assert made.status_code == 201, made.text

    def cases_counted(self, who: str) -> int:
        board = self.client.get("/api/v1/metrics", headers=self.tokens[who])
        assert board.status_code == 200, board.text
        return int(board.json()["cases"])

    def exported_rows(self, who: str) -> int:
        csv = self.client.get("/api/v1/metrics/export.csv", headers=self.tokens[who])
        assert csv.status_code == 200, csv.text
        return len(csv.text.splitlines()) - 1  # the header


@pytest.fixture
def desk(tmp_path: Path, replicated: Replicated) -> Iterator[Desk]:
    root = tmp_path / "northwind"
    Node.init(root, name="Northwind Broadband", database=replicated.url).close()
    node = Node.open(root, database=replicated.url, read_database=replicated.read_url)
    node.db.read_max_lag = HOUR
    app = create_app(node, now=FakeClock(), rate_limit=0, passwords=cheap_passwords())
    services = app.state.services
    tokens = {}
    for username, name in (("tom", "Tom Baker"), ("mia", "Mia Stone")):
        member = services.members.create(
            username, "correct horse battery", role="agent", display_name=name
        )
        token = services.tokens.create(member.id, "t", ["cases:read", "cases:write"]).token
        tokens[username] = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        yield Desk(client, tokens)
    node.close()


def test_the_dashboard_counts_a_members_own_case_at_once_and_a_colleagues_within_the_bound(
    desk: Desk, replicated: Replicated
) -> None:
    desk.open_case("tom", "Bill too high")
    assert desk.cases_counted("tom") == 1 and desk.cases_counted("mia") == 1
    replicated.replica.catch_up()
    replicated.replica.pause()

    desk.open_case("tom", "Router keeps dropping")
    assert desk.cases_counted("tom") == 2  # his own case, at once
    assert desk.exported_rows("tom") == 2
    assert desk.cases_counted("mia") == 1  # the replica as it was, behind within the bound
    assert desk.exported_rows("mia") == 1

    replicated.replica.resume()
    replicated.replica.catch_up()
    assert desk.cases_counted("mia") == 2
    assert desk.exported_rows("mia") == 2
