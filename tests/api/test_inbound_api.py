"""Messages from other systems: into the pipeline once, threaded by the system's ids, a
reused idempotency key refused, the scope enforced."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from accord.channels.intake import Intake

from .conftest import Api


def test_inbound_from_another_system(api: Api) -> None:
    services = api.client.app.state.services  # type: ignore[attr-defined]
    ada = services.members.create("ada", "correct horse battery", role="admin", display_name="A")
    token = services.tokens.create(ada.id, "crm", ["inbound:write"]).token
    crm = {"Authorization": f"Bearer {token}"}
    body = {
        "sender": {"kind": "phone", "value": "+44 7700 900123", "name": "Priya Shah"},
        "text": "Called the shop: my router is dead.",
        "subject": "Router",
    }
    first = api.client.post(
        "/api/v1/inbound/shop-till", json=body, headers={**crm, "Idempotency-Key": "call-1"}
    )
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "stored" and first.json()["new_case"] is True
    again = api.client.post(
        "/api/v1/inbound/shop-till", json=body, headers={**crm, "Idempotency-Key": "call-1"}
    )
    assert again.json()["status"] == "duplicate" and again.json()["case"] == first.json()["case"]
    reused = api.client.post(
        "/api/v1/inbound/shop-till",
        json={**body, "text": "another"},
        headers={**crm, "Idempotency-Key": "call-1"},
    )
    assert reused.status_code == 409
    follow = api.client.post(
        "/api/v1/inbound/shop-till",
        json={**body, "text": "Any news?", "thread": ["call-1"]},
        headers={**crm, "Idempotency-Key": "call-2"},
    )
    assert follow.json()["case"] == first.json()["case"]
    assert follow.json()["threaded_by"] == "reference"
    case = api.client.get(f"/api/v1/cases/{first.json()['case']}", headers=api.tom).json()
    assert "Any news?" in str(case)
    missing = api.client.post("/api/v1/inbound/shop-till", json=body, headers=crm)
    assert missing.status_code == 422 and "Idempotency-Key" in missing.text
    assert (
        api.client.post(
            "/api/v1/inbound/shop-till", json=body, headers={**api.tom, "Idempotency-Key": "x"}
        ).status_code
        == 403
    )
    assert (
        api.client.post(
            "/api/v1/inbound/email", json=body, headers={**crm, "Idempotency-Key": "y"}
        ).status_code
        == 422
    )


def _crm(api: Api) -> dict[str, str]:
    services = api.client.app.state.services  # type: ignore[attr-defined]
    ada = services.members.create("ada", "correct horse battery", role="admin", display_name="A")
    return {
        "Authorization": f"Bearer {services.tokens.create(ada.id, 'crm', ['inbound:write']).token}"
    }


def _at_once(
    api: Api, monkeypatch: pytest.MonkeyPatch, bodies: list[dict[str, Any]], key: str
) -> list[Any]:
    """Post ``bodies`` from two threads under one Idempotency-Key, both inside the intake's
    transaction past its checks before either writes (a barrier in the sender look-up;
    where the database lets only one writer in, the barrier gives up and they queue)."""
    barrier = threading.Barrier(2, timeout=2)
    original = Intake._recent

    def meet(self: Intake, conn: Any, message: Any) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return original(self, conn, message)

    monkeypatch.setattr(Intake, "_recent", meet)
    crm = _crm(api)
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(
                api.client.post,
                "/api/v1/inbound/shop-till",
                json=body,
                headers={**crm, "Idempotency-Key": key},
            )
            for body in bodies
        ]
        return [f.result() for f in futures]


BODY = {
    "sender": {"kind": "phone", "value": "+44 7700 900123", "name": "Priya Shah"},
    "text": "Called the shop: my router is dead.",
}


def test_one_key_at_once_makes_one_case(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = _at_once(api, monkeypatch, [BODY, BODY], "call-7")
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    statuses = sorted(a.json()["status"] for a in answers)
    assert statuses == ["duplicate", "stored"]
    assert len({a.json()["case"] for a in answers}) == 1
    listed = api.client.get("/api/v1/cases", headers=api.tom).json()
    cases = listed["cases"] if isinstance(listed, dict) else listed
    assert len(cases) == 1


def test_one_key_for_two_messages_at_once_is_refused_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = _at_once(api, monkeypatch, [BODY, {**BODY, "text": "Another thing"}], "call-8")
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert "call-8" in refused.json()["message"]
