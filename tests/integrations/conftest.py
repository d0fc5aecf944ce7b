"""An Accord node in-process with a controllable clock, members with tokens, and a worker
that runs the webhook jobs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.integrations import webhooks as wh
from accord.integrations.webhooks import Webhooks
from accord.jobs.queue import JobQueue
from accord.jobs.worker import Worker
from accord.node import Node
from tests.clocks import cheap_passwords

CASEWORK = ["cases:read", "cases:write", "notes:read", "notes:write"]
START = datetime(2026, 10, 23, 11, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, by: timedelta) -> None:
        self.at += by


@dataclass
class Hub:
    node: Node
    client: TestClient
    clock: Clock
    webhooks: Webhooks
    worker: Worker
    tokens: dict[str, dict[str, str]]

    def as_(self, who: str) -> dict[str, str]:
        return self.tokens[who]

    def run_due(self) -> int:
        ran = 0
        while count := self.worker.run_once():
            ran += count
        return ran

    def run_until_idle(self, *, limit: timedelta = timedelta(days=3)) -> None:
        """Run due jobs, then jump the clock to the next pending job, until none is left
        (or the next one is more than ``limit`` away)."""
        end = self.clock.at + limit
        while True:
            self.run_due()
            pending = self.worker.queue.pending()
            if not pending or pending[0].run_at > end:
                return
            self.clock.at = max(self.clock.at, pending[0].run_at)

    def subscribe(self, url: str, events: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        response = self.client.post(
            "/api/v1/webhooks",
            headers=self.as_("admin"),
            json={"url": url, "events": events or list(wh.EVENT_TYPES), **extra},
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def deliveries(self, webhook_id: int) -> list[dict[str, Any]]:
        response = self.client.get(
            f"/api/v1/webhooks/{webhook_id}/deliveries?limit=500", headers=self.as_("admin")
        )
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["deliveries"]
        return found[::-1]  # oldest first

    def open_case(self, title: str = "Business broadband contract") -> str:
        response = self.client.post(
            "/api/v1/cases",
            headers=self.as_("tom"),
            json={"title": title, "customer": {"id": "priya", "name": "Priya Shah"}},
        )
        assert response.status_code == 201, response.text
        case_id: str = response.json()["case"]
        return case_id

    def portal(self, case_id: str) -> dict[str, str]:
        link = self.client.post(
            f"/api/v1/cases/{case_id}/portal-links",
            headers=self.as_("tom"),
            json={"party": "priya", "identity": "priya@example.com"},
        )
        assert link.status_code == 201, link.text
        return {"Authorization": f"Portal {link.json()['token']}"}


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[Hub]:
    node = Node.init(tmp_path / "northwind", name="Northwind Broadband", database=database_url)
    clock = Clock(START)
    app = create_app(node, now=clock, passwords=cheap_passwords())
    services = app.state.services
    tokens = {}
    for username, name, role in (
        ("tom", "Tom Baker", "agent"),
        ("admin", "Ada Admin", "admin"),
    ):
        member = services.members.create(
            username, "correct horse battery", role=role, display_name=name
        )
        scopes = [*CASEWORK, "members:admin"] if role == "admin" else CASEWORK
        token = services.tokens.create(member.id, "t", scopes).token
        tokens[username] = {"Authorization": f"Bearer {token}"}
    hooks: Webhooks = services.webhooks
    worker = Worker(
        node.db,
        JobQueue(node.db, now=clock),
        {wh.DELIVER: hooks.deliver, wh.TIMER: hooks.activity_timer},
        worker_id="test",
        now=clock,
    )
    with TestClient(app) as client:
        yield Hub(node, client, clock, hooks, worker, tokens)
    node.close()
