"""The single customer view over HTTP: reading needs cases:read, changing cases:write, a
portal link reaches none of it; errors say what to do."""

from __future__ import annotations

from accord.channels.intake import Inbound

from .conftest import Api


def _write(api: Api, channel: str, kind: str, identity: str, n: int) -> int:
    receipt = api.client.app.state.services.mail.intake.receive(  # type: ignore[attr-defined]
        Inbound(
            channel=channel,
            external_id=f"m{n}",
            content_hash=f"h{n}",
            identity_kind=kind,
            identity=identity,
            sender_name="Priya Shah",
            subject="Price",
            text=f"message {n}",
        )
    )
    assert receipt.customer_id is not None
    return int(receipt.customer_id)


def test_customers_over_http(api: Api) -> None:
    a = _write(api, "email", "email", "priya@example.com", 1)
    b = _write(api, "whatsapp", "phone", "+447700900123", 2)
    http = api.client
    assert http.get("/api/v1/customers", params={"q": "priya"}, headers=api.reader).json()[0][
        "id"
    ] in (a, b)
    refused = http.post(
        f"/api/v1/customers/{a}/identities",
        json={"kind": "phone", "value": "+44 7700 900123"},
        headers=api.tom,
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["details"] == {"customer": b}
    assert (
        http.post(f"/api/v1/customers/{a}/merge", json={"other": b}, headers=api.reader).status_code
        == 403
    )
    merged = http.post(f"/api/v1/customers/{a}/merge", json={"other": b}, headers=api.tom)
    assert merged.status_code == 200 and merged.json()["merged"] == [b]
    timeline = http.get(f"/api/v1/customers/{b}/timeline", headers=api.reader).json()
    assert {t["via"] for t in timeline if t["customer"]} == {"email", "whatsapp"}
    history = http.get(f"/api/v1/customers/{a}/history", headers=api.reader).json()
    assert [h["action"] for h in history] == ["merge"]
    split = http.post(
        f"/api/v1/customers/{a}/split",
        json={"name": "Anil", "identities": [{"kind": "phone", "value": "+447700900123"}]},
        headers=api.tom,
    )
    assert split.status_code == 201 and split.json()["name"] == "Anil"
    bad = http.post(
        f"/api/v1/customers/{a}/identities",
        json={"kind": "phone", "value": "0770"},
        headers=api.tom,
    )
    assert bad.status_code == 422
    assert http.get(f"/api/v1/customers/{a}").status_code == 401
    assert http.get("/api/v1/customers/999", headers=api.reader).status_code == 404
