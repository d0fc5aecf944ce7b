"""Messages from other systems: into the pipeline once, threaded by the system's ids, a
reused idempotency key refused, the scope enforced."""

from __future__ import annotations

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
