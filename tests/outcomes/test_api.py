"""Templates, marks, metrics, targets and comparisons through the REST API and the
members' pages: scopes, versions, escaping, CSV."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.api.auth import SESSION_COOKIE
from accord.node import Node
from accord.service import settings
from tests.clocks import cheap_passwords

CASEWORK = ["cases:read", "cases:write", "notes:read", "notes:write"]
V1 = """
name: billing
title: Billing dispute
topics: [{topic: bill, title: The disputed bill}]
data:
  - {key: account, label: Account number, value: {type: text, value: NW-1}}
activities: [{activity: review, title: Review the bill, due: 2d}]
callbacks: [{activity: billing-call, title: Billing calls back, due: 4h, owner: us}]
sla: {first_response: 60, next_response: 240}
routing: {team: Billing}
"""
V2 = V1.replace("billing-call, title: Billing calls back", "owner-call, title: Owner calls back")


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)  # Monday morning

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Desk:
    client: TestClient
    tokens: dict[str, dict[str, str]]
    clock: Clock

    def as_(self, who: str) -> dict[str, str]:
        return self.tokens[who]


@pytest.fixture
def desk(tmp_path: Path, database_url: str) -> Iterator[Desk]:
    node = Node.init(tmp_path / "northwind", name="Northwind Broadband", database=database_url)
    clock = Clock()
    app = create_app(node, now=clock, rate_limit=0, passwords=cheap_passwords())
    services = app.state.services
    settings.set_calendar(node.db, timezone="Europe/London", hours="mon-fri 09:00-17:00")
    tokens = {}
    for username, name, role in (
        ("tom", "Tom Baker", "agent"),
        ("mia", "Mia Stone", "lead"),
        ("ada", "Ada Admin", "admin"),
    ):
        member = services.members.create(
            username, "correct horse battery", role=role, display_name=name
        )
        scopes = [*CASEWORK, "workflows:admin"] if role == "admin" else CASEWORK
        token = services.tokens.create(member.id, "t", scopes).token
        tokens[username] = {"Authorization": f"Bearer {token}"}
    services.ownership.add_team("Billing", lead="mia")
    services.ownership.set_profile("tom", team="Billing")
    with TestClient(app) as client:
        yield Desk(client, tokens, clock)
    node.close()


def page_client(desk: Desk, username: str) -> TestClient:
    """A browser with ``username``'s session (the pages take no API token)."""
    services = desk.client.app.state.services  # type: ignore[attr-defined]
    member = services.members.by_username(username)
    browser = TestClient(desk.client.app)
    browser.cookies.set(SESSION_COOKIE, services.sessions.create(member.id).token)
    return browser


def apply(desk: Desk, text: str, who: str = "ada") -> dict[str, Any]:
    response = desk.client.post("/api/v1/templates", json={"text": text}, headers=desk.as_(who))
    return {"status": response.status_code, **response.json()}


def test_templates_are_versioned_and_cases_record_their_version(desk: Desk) -> None:
    assert apply(desk, V1, who="tom")["status"] == 403  # agents do not define templates
    first = apply(desk, V1)
    assert first["status"] == 201, first
    assert (first["status"], first["version"], first["created"]) == (201, 1, True)
    assert apply(desk, V1)["created"] is False  # unchanged: no new version
    assert apply(desk, V2)["version"] == 2
    bad = apply(desk, "name: billing\nactivities: [{activity: x}]\n")
    assert bad["status"] == 422 and "activities[0].title" in bad["message"]

    opened = desk.client.post(
        "/api/v1/templates/billing@v1/cases",
        headers=desk.as_("tom"),
        json={"title": "Bill too high", "customer": {"id": "priya", "name": "Priya Shah"}},
    )
    assert opened.status_code == 201, opened.text
    body = opened.json()
    assert (body["template"], body["version"], body["owner"]) == ("billing", 1, "Tom Baker")
    for version in (0, 2**63):  # refused as the request's mistake, never a 500 (schemathesis)
        beyond = desk.client.post(
            "/api/v1/templates/billing/cases",
            headers=desk.as_("tom"),
            json={"title": "Bill too high", "version": version},
        )
        assert beyond.status_code == 422, beyond.text
    case = body["case"]
    outcomes = desk.client.app.state.outcomes  # type: ignore[attr-defined]
    # the outcome-facts follower recomputed them when the case opened; later changes
    # leave them stale until the next milestone, and every read refreshes stale cases
    assert outcomes.store.stale() == [case]
    outcomes.store.refresh_stale()
    assert outcomes.store.stale() == []
    shown = desk.client.get(f"/api/v1/cases/{case}", headers=desk.as_("tom")).json()
    assert shown["template"] == "billing"  # the log names the template
    listed = desk.client.get("/api/v1/templates", headers=desk.as_("tom")).json()
    assert [v["cases"] for v in listed[0]["versions"]] == [1, 0]
    diff = desk.client.get("/api/v1/templates/billing/diff?a=1&b=2", headers=desk.as_("tom"))
    assert "- activities.billing-call" in "\n".join(diff.json()["changes"])
    exported = desk.client.get("/api/v1/templates/billing@v2/yaml", headers=desk.as_("tom"))
    assert exported.text.startswith("name: billing\nversion: 2\n")

    facts = desk.client.get(f"/api/v1/metrics/cases/{case}", headers=desk.as_("tom")).json()
    assert (facts["template"], facts["template_version"], facts["deviations"]) == ("billing", 1, 0)
    marked = desk.client.post(
        f"/api/v1/cases/{case}/marks", headers=desk.as_("tom"), json={"kind": "repeat"}
    )
    assert marked.status_code == 201
    facts = desk.client.get(f"/api/v1/metrics/cases/{case}", headers=desk.as_("tom")).json()
    assert facts["repeats"] == 1 and facts["marks"][0]["kind"] == "repeat"


def test_targets_dashboard_compare_and_csv(desk: Desk) -> None:
    apply(desk, V1)
    for title in ("One", "Two"):
        desk.client.post(
            "/api/v1/templates/billing/cases", headers=desk.as_("tom"), json={"title": title}
        )
    made = desk.client.post(
        "/api/v1/targets",
        headers=desk.as_("ada"),
        json={
            "name": "<script>alert(1)</script>",
            "metric": "transfers",
            "op": "<=",
            "threshold": 1,
            "owner": "mia",
        },
    )
    assert made.status_code == 201, made.text
    assert (
        desk.client.post(
            "/api/v1/targets",
            headers=desk.as_("tom"),
            json={"name": "x", "metric": "transfers", "op": "<=", "threshold": 1},
        ).status_code
        == 403
    )
    bad = desk.client.post(
        "/api/v1/targets",
        headers=desk.as_("ada"),
        json={
            "name": "x",
            "metric": "callbacks_on_time",
            "stat": "median",
            "op": ">=",
            "threshold": 98,
        },
    )
    assert bad.status_code == 422
    scoped = desk.client.post(
        "/api/v1/targets",
        headers=desk.as_("ada"),
        json={
            "name": "Broadband rounds",
            "metric": "rounds",
            "op": "<=",
            "threshold": 3,
            "template": "broadband",
        },
    )
    assert scoped.status_code == 201, scoped.text
    billing_only = desk.client.post(
        "/api/v1/targets",
        headers=desk.as_("ada"),
        json={
            "name": "Billing rounds",
            "metric": "rounds",
            "stat": "max",
            "op": "<=",
            "threshold": 0.5,
            "template": "billing",
            "owner": "mia",
        },
    )
    assert billing_only.status_code == 201, billing_only.text
    everything = desk.client.get("/api/v1/targets", headers=desk.as_("tom")).json()
    by_name = {t["name"]: t for t in everything}
    assert by_name["Broadband rounds"]["current"]["cases"] == 0  # no broadband cases
    assert (
        by_name["Broadband rounds"]["met"] is None and by_name["Broadband rounds"]["owner"] is None
    )
    assert by_name["<script>alert(1)</script>"]["current"]["cases"] == 2
    billing = by_name["Billing rounds"]
    assert (billing["current"]["cases"], billing["current"]["value"], billing["met"]) == (
        2,
        1.0,
        False,  # each case has the template's opening proposal: one round
    )
    desk.client.delete(f"/api/v1/targets/{billing_only.json()['id']}", headers=desk.as_("ada"))
    desk.client.delete(f"/api/v1/targets/{scoped.json()['id']}", headers=desk.as_("ada"))
    metrics = desk.client.get("/api/v1/metrics?template=billing", headers=desk.as_("tom")).json()
    assert metrics["cases"] == 2 and metrics["open"] == 2
    assert metrics["metrics"]["transfers"]["cases"] == 2
    assert metrics["targets"][0]["met"] is True and metrics["targets"][0]["owner"] == "mia"

    # the pages are the web app's: a member's session, else the login page
    gone = desk.client.get("/dashboard", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/login?next=%2Fdashboard"
    assert (
        desk.client.get("/dashboard", headers=desk.as_("tom"), follow_redirects=False).status_code
        == 303
    )
    pages = page_client(desk, "tom")
    page = pages.get("/dashboard")
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<svg" in page.text and "Mia Stone" in page.text
    assert (
        "Log out" in page.text and 'href="/admin"' not in page.text
    )  # nothing an agent cannot use

    compared = desk.client.get(
        "/api/v1/compare?a=template:billing@v1&b=channel:api", headers=desk.as_("tom")
    ).json()
    transfers = next(m for m in compared["metrics"] if m["metric"] == "transfers")
    assert transfers["a"]["cases"] == 2 and transfers["verdict"] == "no clear difference"
    html = pages.get("/compare?a=template:billing@v1&b=channel:api")
    assert html.status_code == 200 and "Mann-Whitney U" in html.text
    # the groups are picked from lists: every version of each template, teams, members
    assert '<option value="template:billing@v1" selected>Billing dispute v1<' in html.text
    assert '<option value="team:Billing"' in html.text and ">Tom Baker</option>" in html.text
    unknown = pages.get("/compare?a=team:Nobody&b=channel:api")
    assert unknown.status_code == 404 and "no team" in unknown.text
    # an unknown template is an error, not "not enough data" (pages and API alike)
    nope = pages.get("/compare?a=template:nothing@v1&b=channel:api")
    assert nope.status_code == 404 and "no template &#39;nothing&#39;" in nope.text
    missing = desk.client.get(
        "/api/v1/compare?a=template:billing@v9&b=channel:api", headers=desk.as_("tom")
    )
    assert missing.status_code == 404 and "has no version 9 (v1)" in missing.text
    period = pages.get("/compare?a=channel:api&b_from=2026-11-01&b_to=2026-11-09")
    assert period.status_code == 200 and "period:2026-11-01..2026-11-09" in period.text
    assert pages.get("/compare?a=channel:api").status_code == 400
    assert 'href="/admin"' in page_client(desk, "ada").get("/compare").text

    csv = desk.client.get("/api/v1/metrics/export.csv", headers=desk.as_("tom"))
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0].startswith("case_id,template,template_version,channel")
    assert len(lines) == 3
    series = desk.client.get("/api/v1/metrics/series.csv?bucket=day", headers=desk.as_("tom"))
    assert "2026-11-02,transfers,mean,0.0000,2" in series.text

    target = made.json()["id"]
    assert (
        desk.client.delete(f"/api/v1/targets/{target}", headers=desk.as_("ada")).status_code == 204
    )
