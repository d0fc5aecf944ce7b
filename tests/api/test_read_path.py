"""The case read path made fast (issue 23), and exactly as strict as before.

``GET /api/v1/cases/{id}`` reads the state and the timeline in one statement and answers
with orjson; an API token's grant is kept by the process for a few seconds, and used only
while the grants' version is unchanged and before the token expires — so revoking a
token, disabling a member or changing their role takes effect on the next request even
when another process (here: another TokenStore on the same database) made the change.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from accord.api.auth import grant_cache
from accord.auth.members import MemberStore
from accord.auth.tokens import TokenStore
from accord.service.views import case_view
from tests.clocks import cheap_passwords

from .conftest import Api
from .test_api import PRICE, open_case, propose


def lookups(api: Api, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the token lookups the application makes from now on."""
    tokens = api.client.app.state.services.tokens  # type: ignore[attr-defined]
    seen: list[str] = []
    real = tokens.authenticate

    def counted(token: str) -> Any:
        seen.append(token)
        return real(token)

    monkeypatch.setattr(tokens, "authenticate", counted)
    return seen


def test_the_case_reads_as_the_state_and_timeline_say(api: Api) -> None:
    case_id = open_case(api)
    assert propose(api, case_id, [PRICE]).status_code == 201
    for text in ("Line drops every evening", "Since Monday — £20 a month is fine"):
        posted = api.client.post(
            f"/api/v1/cases/{case_id}/messages", headers=api.tom, json={"text": text}
        )
        assert posted.status_code == 201, posted.text
    for limit in (1, 3, 50):
        response = api.client.get(f"/api/v1/cases/{case_id}?limit={limit}", headers=api.reader)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        cases = api.node.cases
        state = cases.state(case_id)
        assert state is not None
        assert response.json() == case_view(state, cases.timeline(case_id, limit=limit))
        assert len(response.json()["timeline"]) == min(limit, state["events"])
    view = api.node.cases.view(case_id, limit=2)
    assert view is not None
    assert [e.id for e in view[1]] == [e.id for e in api.node.cases.timeline(case_id, limit=2)]


def test_unknown_and_malformed_cases_are_404(api: Api) -> None:
    open_case(api)
    unknown = "sha256:" + "0" * 64
    assert api.node.cases.view(unknown) is None
    for case_id in (unknown, "sha256:nope", "nope"):
        response = api.client.get(f"/api/v1/cases/{case_id}", headers=api.reader)
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "not_found"


def test_a_kept_grant_spares_the_lookup(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    case_id = open_case(api)
    seen = lookups(api, monkeypatch)
    for _ in range(3):
        assert api.client.get(f"/api/v1/cases/{case_id}", headers=api.reader).status_code == 200
    assert len(seen) == 1
    cache = grant_cache(api.client.app)  # type: ignore[arg-type]
    monkeypatch.setattr(cache, "seconds", 0.0)  # past its time: looked up again
    assert api.client.get(f"/api/v1/cases/{case_id}", headers=api.reader).status_code == 200
    assert len(seen) == 2


def test_revoking_elsewhere_takes_effect_on_the_next_request(api: Api) -> None:
    case_id = open_case(api)
    services = api.client.app.state.services  # type: ignore[attr-defined]
    tom = services.members.require("tom")
    made = services.tokens.create(tom.id, "to revoke", ["cases:read"])
    headers = {"Authorization": f"Bearer {made.token}"}
    assert api.client.get(f"/api/v1/cases/{case_id}", headers=headers).status_code == 200
    TokenStore(api.node.db, now=api.clock).revoke(made.id)  # as `accord token revoke`
    refused = api.client.get(f"/api/v1/cases/{case_id}", headers=headers)
    assert refused.status_code == 401
    assert api.client.get(f"/api/v1/cases/{case_id}", headers=api.reader).status_code == 200


def test_a_narrower_role_or_a_disabled_member_counts_at_once(api: Api) -> None:
    case_id = open_case(api)
    services = api.client.app.state.services  # type: ignore[attr-defined]
    admin = services.members.create(
        "ann", "correct horse battery", role="admin", display_name="Ann Lee"
    )
    made = services.tokens.create(admin.id, "ann", ["cases:read", "members:admin"])
    headers = {"Authorization": f"Bearer {made.token}"}
    assert api.client.get("/api/v1/webhooks", headers=headers).status_code == 200
    elsewhere = MemberStore(api.node.db, now=api.clock, passwords=cheap_passwords())
    elsewhere.set_role(admin.id, "agent")  # an agent's role grants no members:admin
    assert api.client.get("/api/v1/webhooks", headers=headers).status_code == 403
    assert api.client.get(f"/api/v1/cases/{case_id}", headers=headers).status_code == 200
    elsewhere.disable(admin.id)
    assert api.client.get(f"/api/v1/cases/{case_id}", headers=headers).status_code == 401


def test_a_kept_grant_expires_with_its_token(api: Api) -> None:
    case_id = open_case(api)
    services = api.client.app.state.services  # type: ignore[attr-defined]
    tom = services.members.require("tom")
    made = services.tokens.create(
        tom.id, "short", ["cases:read"], expires_at=api.clock() + timedelta(minutes=5)
    )
    headers = {"Authorization": f"Bearer {made.token}"}
    assert api.client.get(f"/api/v1/cases/{case_id}", headers=headers).status_code == 200
    api.clock.at += timedelta(minutes=5)
    assert api.client.get(f"/api/v1/cases/{case_id}", headers=headers).status_code == 401


def test_the_case_read_admits_as_strictly_in_one_hop(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Authentication and the read share one hop to the thread pool (a sync dependency
    would add one: a third of a worker's time under wrk), and it refuses as before."""
    import starlette.concurrency

    import accord.api.negotiation as negotiation

    case_id = open_case(api)
    services = api.client.app.state.services  # type: ignore[attr-defined]
    tom = services.members.by_username("tom")
    notes_only = services.tokens.create(tom.id, "notes", ["notes:read"]).token
    hops: list[str] = []
    real = starlette.concurrency.run_in_threadpool

    async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", "?"))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(negotiation, "run_in_threadpool", counted)
    monkeypatch.setattr("fastapi.routing.run_in_threadpool", counted)
    monkeypatch.setattr("fastapi.dependencies.utils.run_in_threadpool", counted)
    assert api.client.get(f"/api/v1/cases/{case_id}", headers=api.reader).status_code == 200
    assert hops == ["answer"]
    refused = api.client.get(
        f"/api/v1/cases/{case_id}", headers={"Authorization": f"Bearer {notes_only}"}
    )
    assert refused.status_code == 403
    assert "cases:read" in refused.text
    anonymous = api.client.get(f"/api/v1/cases/{case_id}")
    assert anonymous.status_code == 401
    assert "case" not in anonymous.json()
