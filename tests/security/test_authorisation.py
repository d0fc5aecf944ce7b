"""Authorisation comes before any side effect: a member whose role lacks the scope gets a
403 and nothing is made or changed (docs/security.md, issue 22 row 14)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accord.api.auth import SESSION_COOKIE
from tests.web.conftest import PASSWORD, make_desk

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
