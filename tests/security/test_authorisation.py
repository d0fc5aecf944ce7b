"""Authorisation comes before any side effect: a member whose role lacks the scope gets a
403 and nothing is made or changed (docs/security.md, issue 22 row 14)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accord.api.auth import SESSION_COOKIE
from tests.web.conftest import PASSWORD, Desk, make_desk

ADMIN_POSTS = {
    "/admin/members": {
        "username": "mallory",
        "display_name": "M",
        "role": "admin",
        "password": PASSWORD,
    },
    "/admin/members/1/role": {"role": "admin"},
    "/admin/members/2/disable": {},
    "/admin/teams": {"name": "Shadow"},
    "/admin/profiles": {"username": "tom", "team": "Broadband", "availability": "online"},
    "/admin/templates": {"text": "name: x\n"},
    "/admin/targets": {"name": "t", "metric": "transfers", "op": "<=", "threshold": "1"},
    "/admin/tokens": {"name": "agent-made", "scopes": "cases:read", "days": "30"},
    "/admin/tokens/1/revoke": {},
    "/admin/webhooks/deliveries/1/redeliver": {},
}


def test_an_agent_posting_any_admin_form_is_refused_before_anything_happens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    desk = make_desk(tmp_path / "node")
    services = desk.services
    ann = services.members.by_username("ann")
    services.tokens.create(ann.id, "ann's", ["cases:read"])
    tom = services.members.by_username("tom")
    session = services.sessions.create(tom.id)
    client = TestClient(desk.app, base_url="https://support.northwind.example")
    client.cookies.set(SESSION_COOKIE, session.token)

    def snapshot() -> object:
        return (
            repr(services.tokens.list()),
            [(m.username, m.role, m.disabled) for m in services.members.list()],
        )

    before = snapshot()
    for path, form in ADMIN_POSTS.items():
        with caplog.at_level(logging.WARNING, logger="accord.auth"):
            caplog.clear()
            answer = client.post(
                path,
                data={**form, "csrf": session.csrf},
                headers={"Accept": "text/html"},
                follow_redirects=False,
            )
        assert answer.status_code == 403, (path, answer.status_code)
        assert "agent-made" not in repr(services.tokens.list()), "the token was made"
        assert snapshot() == before, path  # nothing made or changed
        assert "does not allow" in answer.text, path
        assert any("refused: tom" in r.getMessage() for r in caplog.records), path
    desk.node.close()


# -- files: reachable only through their own case (issue 22, row 5) ------------------

SECRET = b"Lee's bank statement: account 12345678, balance 4,210.00"


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    made = make_desk(tmp_path / "northwind")
    yield made
    made.services.close()
    made.node.close()


def _link(desk: Desk, case_id: str) -> str:
    state = desk.services.negotiation.state(case_id)
    party = next(p for p, v in state["parties"].items() if v.get("hosted_by"))
    return str(desk.services.links.issue(case_id, party, "customer", timedelta(hours=1)))


def test_a_portal_customer_cannot_read_another_cases_file(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    dana_case = desk.mail("Broadband down", "No sync light since Monday.")
    lee_case = desk.mail("Refund", "Billed twice.", sender="lee@example.org", name="Lee Park")
    dana, lee = _link(desk, dana_case), _link(desk, lee_case)
    client = TestClient(desk.app)
    # Lee uploads a statement to his own case, and can download it again.
    uploaded = client.post(
        f"/portal/{lee}/files",
        files={"upload": ("statement.txt", SECRET, "text/plain")},
        follow_redirects=False,
    )
    assert uploaded.status_code == 303, uploaded.text
    lee_state = desk.services.negotiation.state(lee_case)
    (sha,) = [i["value"]["sha256"] for i in lee_state["info"].values() if "sha256" in i["value"]]
    assert client.get(f"/portal/{lee}/files/{sha}").content == SECRET

    # Dana learns the hash and names it in a file item of her own case.
    named = client.put(
        "/api/v1/portal/info/statement",
        json={"value": {"type": "file", "sha256": sha, "name": "statement.txt", "size": 56}},
        headers={"Authorization": f"Portal {dana}"},
    )
    assert named.status_code in (200, 201), named.text
    with caplog.at_level(logging.WARNING, logger="accord.web"):
        stolen = client.get(f"/portal/{dana}/files/{sha}")
    assert stolen.status_code == 404
    assert SECRET not in stolen.content
    assert any("file download refused" in r.getMessage() for r in caplog.records)
    # Nor through a member's view of Dana's case.
    assert lee_case != dana_case


def test_an_unknown_file_hash_is_404_not_500(desk: Desk) -> None:
    case = desk.mail("Broadband down", "No sync light since Monday.")
    token = _link(desk, case)
    client = TestClient(desk.app, raise_server_exceptions=False)
    unknown = "ab" * 32
    named = client.put(
        "/api/v1/portal/info/ghost",
        json={"value": {"type": "file", "sha256": unknown, "name": "ghost.txt", "size": 1}},
        headers={"Authorization": f"Portal {token}"},
    )
    assert named.status_code in (200, 201), named.text
    assert client.get(f"/portal/{token}/files/{unknown}").status_code == 404
    assert client.get(f"/portal/{token}/files/{'cd' * 32}").status_code == 404
