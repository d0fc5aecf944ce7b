"""Scenario 1 end to end, through HTTP, against real ``accord serve`` processes."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from ..servers import running_node


def cli(data: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "accord", *args, "--data", str(data)],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def node_with_agent(data: Path, name: str) -> str:
    """Initialise a node with the agent Tom and return his API token."""
    cli(data, "init", "--name", name)
    cli(
        data,
        "member",
        "add",
        "tom",
        "--role",
        "agent",
        "--name",
        "Tom Baker",
        "--password-stdin",
        stdin="correct horse battery staple\n",
    )
    return cli(
        data,
        "token",
        "create",
        "--member",
        "tom",
        "--name",
        "e2e",
        "--scope",
        "cases:read",
        "--scope",
        "cases:write",
        "--scope",
        "notes:read",
        "--scope",
        "notes:write",
    )


def future(days: int) -> str:
    moment = datetime.now(UTC) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:00:00Z")


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_the_broadband_case_from_opening_to_reopening(tmp_path: Path) -> None:
    northwind = tmp_path / "northwind"
    token = node_with_agent(northwind, "Northwind Broadband")
    other = tmp_path / "contoso"
    foreign_token = node_with_agent(other, "Contoso")
    tom = {"Authorization": f"Bearer {token}"}
    me = "northwind-broadband"

    with running_node(northwind) as base, httpx.Client(base_url=base, timeout=10) as http:
        case_id = ok(
            http.post(
                "/api/v1/cases",
                headers=tom,
                json={
                    "title": "Business broadband contract",
                    "customer": {"id": "priya", "name": "Priya Shah"},
                    "topics": [
                        {"topic": "price", "title": "New price"},
                        {"topic": "term", "title": "Contract term"},
                    ],
                },
            ),
            201,
        )["case"]
        url = f"/api/v1/cases/{case_id}"

        # an agent of another node is a stranger here
        stranger = http.get(url, headers={"Authorization": f"Bearer {foreign_token}"})
        assert stranger.status_code == 401

        ok(
            http.post(
                f"{url}/messages",
                headers=tom,
                json={"text": "Your case is owned by Tom Baker; reply any time.", "topic": "price"},
            ),
            201,
        )
        plan_changes = [
            {
                "op": "data.put",
                "key": "current-price",
                "value": {"type": "money", "amount": "40.00", "currency": "GBP", "per": "month"},
            },
            {
                "op": "data.put",
                "key": "new-price",
                "value": {"type": "money", "amount": "20.00", "currency": "GBP", "per": "month"},
            },
            {
                "op": "activity.put",
                "activity": "switch",
                "title": "Switch tariff",
                "owner": me,
                "kind": "task",
                "due": future(8),
                "topic": "price",
            },
            {
                "op": "activity.put",
                "activity": "address",
                "title": "Confirm the installation address",
                "owner": "priya",
                "kind": "task",
                "due": future(4),
            },
            {
                "op": "activity.put",
                "activity": "callback",
                "title": "Call Priya to confirm",
                "owner": me,
                "kind": "callback",
                "channel": "phone",
                "due": future(1),
            },
        ]
        plan = ok(
            http.post(
                f"{url}/proposals",
                headers=tom,
                json={"changes": plan_changes, "note": "Same line, half the price"},
            ),
            201,
        )["events"][0]

        link = ok(
            http.post(
                f"{url}/portal-links",
                headers=tom,
                json={"party": "priya", "identity": "priya@example.com"},
            ),
            201,
        )
        priya = {"Authorization": f"Portal {link['token']}"}
        seen = ok(http.get("/api/v1/portal", headers=priya))
        assert seen["case"] == case_id and plan in seen["open_proposals"]
        assert {a["activity"] for a in seen["activities"]["proposed"]} == {
            "switch",
            "address",
            "callback",
        }

        rolling = {
            "op": "data.put",
            "key": "term",
            "value": {
                "type": "choice",
                "value": "1-month rolling",
                "options": ["12 months", "1-month rolling"],
            },
        }
        counter = ok(
            http.post(
                f"/api/v1/portal/proposals/{plan}/counter",
                headers=priya,
                json={"changes": [*plan_changes, rolling], "note": "I'd like a rolling term"},
            ),
            201,
        )["events"][0]
        ok(http.post(f"{url}/proposals/{counter}/accept", headers=tom))

        case = ok(http.get(url, headers=tom))
        v1 = case["agreement"]
        assert v1["version"] == 1 and v1["proposal"] == counter
        assert set(v1["acceptances"]) == {me, "priya"}
        assert v1["data"]["term"]["value"]["value"] == "1-month rolling"
        assert case["open_proposals"] == {}
        assert {a["activity"] for a in case["activities"]["agreed"]} == {
            "switch",
            "address",
            "callback",
        }

        ok(
            http.post(
                "/api/v1/portal/activities/address/progress",
                headers=priya,
                json={"state": "done", "note": "12 High Street"},
            )
        )
        revision = ok(
            http.post(
                f"{url}/proposals",
                headers=tom,
                json={
                    "changes": [
                        {
                            "op": "activity.put",
                            "activity": "switch",
                            "title": "Switch tariff",
                            "owner": me,
                            "kind": "task",
                            "due": future(10),
                        },
                        {
                            "op": "data.put",
                            "key": "credit",
                            "value": {
                                "type": "money",
                                "amount": "10.00",
                                "currency": "GBP",
                                "per": "once",
                            },
                        },
                    ]
                },
            ),
            201,
        )["events"][0]
        ok(http.post(f"/api/v1/portal/proposals/{revision}/accept", headers=priya))
        ok(http.post(f"{url}/activities/switch/progress", headers=tom, json={"state": "done"}))

        case = ok(http.get(url, headers=tom))
        assert case["agreement"]["version"] == 2
        assert [a["version"] for a in case["agreements"]] == [1, 2]
        assert {a["activity"] for a in case["activities"]["done"]} == {"address", "switch"}

        # resolution means the work is done: the callback and both topics are open
        refused = http.post(f"{url}/satisfied", headers=tom, json={"rating": 5})
        assert refused.status_code == 409
        assert refused.json()["details"]["open"]["topics"] == [
            {"topic": "price", "title": "New price"},
            {"topic": "term", "title": "Contract term"},
        ]
        ok(http.post(f"{url}/activities/callback/progress", headers=tom, json={"state": "done"}))
        for topic in ("price", "term"):
            ok(http.post(f"{url}/topics/{topic}/close", headers=tom))
        ok(http.post(f"{url}/satisfied", headers=tom, json={"rating": 5}))
        ok(
            http.post(
                "/api/v1/portal/satisfied", headers=priya, json={"rating": 4, "note": "Thanks Tom"}
            )
        )
        assert ok(http.get(url, headers=tom))["resolved"] is True
        ok(
            http.post(
                "/api/v1/portal/reopen", headers=priya, json={"reason": "The engineer did not come"}
            )
        )
        case = ok(http.get(url, headers=tom))
        assert case["resolved"] is False and case["reopened"] == 1
        assert case["evidence"] == []

        bundle = http.get("/api/v1/portal/bundle", headers=priya)
        assert bundle.status_code == 200
    copy = tmp_path / "priya-copy.jsonl"
    copy.write_bytes(bundle.content)
    report = subprocess.run(
        [sys.executable, "-m", "accord", "verify", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert report.returncode == 0, report.stdout
    assert cli(northwind, "case", "hash", case_id) in report.stdout
