"""Outbound webhooks end to end: cases driven through the API, a real receiver on loopback
that fails the first attempts, a worker on a controllable clock."""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from accord.auth import scopes
from accord.integrations import webhooks as wh
from tests.servers import SilentServer, free_port

from .conftest import START, Hub
from .receiver import Received, receiving

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SUPPLIER = "northwind-broadband"


def doc_verifier() -> Any:
    """The verification example of docs/webhooks.md, run as written."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/webhooks.md should hold one Python example"
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], str(DOCS), "exec"), namespace)
    return namespace["verify_accord_webhook"]


def when(received: Received) -> int:
    return int(received.headers["Accord-Webhook-Timestamp"])


def body_of(received: Received) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(received.body)
    return found


def drive_case(hub: Hub) -> str:
    """Open a case, exchange messages, agree a task due in two hours."""
    case_id = hub.open_case()
    priya = hub.portal(case_id)
    for response in (
        hub.client.post(
            "/api/v1/portal/messages", headers=priya, json={"text": "My line drops hourly."}
        ),
        hub.client.post(  # our own member: not a "received" message
            f"/api/v1/cases/{case_id}/messages",
            headers=hub.as_("tom"),
            json={"text": "Sorry to hear it; an engineer will visit."},
        ),
    ):
        assert response.status_code == 201, response.text
    due = (START + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    proposal = hub.client.post(
        f"/api/v1/cases/{case_id}/proposals",
        headers=hub.as_("tom"),
        json={
            "changes": [
                {
                    "op": "activity.put",
                    "activity": "visit",
                    "title": "Engineer visit",
                    "owner": SUPPLIER,
                    "kind": "task",
                    "due": due,
                }
            ]
        },
    )
    assert proposal.status_code == 201, proposal.text
    accepted = hub.client.post(
        f"/api/v1/portal/proposals/{proposal.json()['events'][0]}/accept", headers=priya
    )
    assert accepted.status_code == 200, accepted.text
    return case_id


def resolve(hub: Hub, case_id: str) -> None:
    priya = hub.portal(case_id)
    for response in (
        hub.client.post(
            f"/api/v1/cases/{case_id}/activities/visit/progress",
            headers=hub.as_("tom"),
            json={"state": "done"},
        ),
        hub.client.post(f"/api/v1/cases/{case_id}/satisfied", headers=hub.as_("tom"), json={}),
        hub.client.post("/api/v1/portal/satisfied", headers=priya, json={"rating": 5}),
    ):
        assert response.status_code == 200, response.text


def test_every_event_arrives_in_order_per_case_through_failures(hub: Hub) -> None:
    script = ["500", "500", "drop", "drop", "500", "drop", "500"]
    with receiving(script) as receiver:
        created = hub.subscribe(receiver.url, allow_private=True)
        secret = created["secret"]
        first = drive_case(hub)
        second = hub.open_case("Moving house")
        hub.client.post(
            "/api/v1/portal/messages", headers=hub.portal(second), json={"text": "New address?"}
        )
        hub.run_until_idle()  # through the retries and past the visit's due time
        resolve(hub, first)
        hub.run_until_idle()

        expected = {
            first: [
                "case.opened",
                "message.received",
                "proposal.made",
                "proposal.accepted",
                "agreement.reached",
                "activity.due",
                "activity.missed",
                "activity.done",
                "case.resolved",
            ],
            second: ["case.opened", "message.received"],
        }
        requests = list(receiver.requests)

    assert [r.answer for r in requests[: len(script)]] == script  # it did fail first
    deliveries = hub.deliveries(created["id"])
    assert all(d["status"] == "delivered" for d in deliveries)
    by_id = {d["idempotency_key"]: d for d in deliveries}
    for case_id, types in expected.items():
        ours = [r for r in requests if body_of(r)["case"] == case_id]
        delivered = [r for r in ours if r.answer == "200"]
        # every event arrived, once, in the order it happened
        assert [body_of(r)["type"] for r in delivered] == types
        order = [body_of(r)["id"] for r in delivered]
        # no attempt of a later delivery before an earlier one was delivered
        assert [body_of(r)["id"] for r in ours] == sorted(
            (body_of(r)["id"] for r in ours), key=order.index
        )
    # none lost: every delivery recorded is one the receiver accepted, and nothing else
    assert {body_of(r)["id"] for r in requests if r.answer == "200"} == set(by_id)
    assert len(deliveries) == sum(len(types) for types in expected.values())

    verify_doc = doc_verifier()
    for received in requests:
        payload = body_of(received)
        delivery = by_id[payload["id"]]
        # a retry is the same delivery: same id, same bytes
        assert received.headers["Accord-Webhook-Id"] == payload["id"]
        assert received.body == delivery_body(hub, delivery["id"])
        verify_doc(secret, received.headers, received.body, now=when(received))
        assert wh.verify(
            secret,
            received.headers["Accord-Webhook-Timestamp"],
            received.headers["Accord-Webhook-Signature"],
            received.body,
            now=when(received),
        )
    # the delivery log holds every attempt with the receiver's answer
    answers: dict[str, list[int | None]] = {}
    for received in requests:
        code = None if received.answer == "drop" else int(received.answer)
        answers.setdefault(body_of(received)["id"], []).append(code)
    assert {k: [a["status_code"] for a in d["log"]] for k, d in by_id.items()} == answers
    assert sum(d["attempts"] for d in deliveries) == len(requests)
    dropped = next(a for d in deliveries for a in d["log"] if a["status_code"] is None)
    assert "disconnected" in dropped["error"].lower()


def delivery_body(hub: Hub, delivery_id: int) -> bytes:
    return hub.webhooks.delivery(delivery_id).payload


def test_the_payload_of_each_type(hub: Hub) -> None:
    with receiving() as receiver:
        hub.subscribe(receiver.url, allow_private=True)
        case_id = drive_case(hub)
        hub.run_until_idle()
        resolve(hub, case_id)
        hub.run_until_idle()
        got = {body_of(r)["type"]: body_of(r) for r in receiver.delivered()}
    assert set(got) == set(wh.EVENT_TYPES) - wh.RESERVED
    opened = got["case.opened"]
    assert opened["case"] == case_id and opened["data"]["title"] == "Business broadband contract"
    assert {p["id"] for p in opened["data"]["parties"]} == {SUPPLIER, "priya"}
    message = got["message.received"]["data"]
    assert message["text"] == "My line drops hourly."
    assert message["by"] == {"party": "priya", "member": "Priya Shah", "via": "portal"}
    made = got["proposal.made"]["data"]
    assert made["proposal"] == made["event"] and made["changes"][0]["activity"] == "visit"
    assert got["proposal.accepted"]["data"]["proposal"] == made["proposal"]
    agreement = got["agreement.reached"]["data"]
    assert agreement["version"] == 1 and "visit" in agreement["terms"]["activities"]
    due = got["activity.due"]
    assert due["data"]["activity"] == "visit" and due["data"]["state"] == "agreed"
    assert due["created"] == "2026-10-23T13:00:00Z"  # sent at the due time
    assert got["activity.missed"]["created"] == "2026-10-23T13:05:00Z"
    assert got["case.resolved"]["data"]["ratings"] == {SUPPLIER: None, "priya": 5}
    for payload in got.values():
        assert set(payload) == {"id", "type", "created", "case", "data"}


def test_an_activity_done_in_time_is_neither_due_nor_missed(hub: Hub) -> None:
    with receiving() as receiver:
        hub.subscribe(receiver.url, events=["activity.due", "activity.missed"], allow_private=True)
        case_id = drive_case(hub)
        done = hub.client.post(
            f"/api/v1/cases/{case_id}/activities/visit/progress",
            headers=hub.as_("tom"),
            json={"state": "done"},
        )
        assert done.status_code == 200
        hub.run_until_idle()
        assert receiver.requests == []
    assert hub.worker.queue.pending() == []


def test_ten_cases_with_the_same_activity_due_at_once_each_get_their_timers(hub: Hub) -> None:
    """Activity ids repeat across cases: each case's due and missed timer is its own."""
    with receiving() as receiver:
        created = hub.subscribe(
            receiver.url, events=["activity.due", "activity.missed"], allow_private=True
        )
        cases = [drive_case(hub) for _ in range(10)]  # each with "visit" due at START + 2 h
        hub.run_until_idle()
        got = sorted((body_of(r)["type"], body_of(r)["case"]) for r in receiver.delivered())
    assert got == sorted((t, c) for c in cases for t in ("activity.due", "activity.missed"))
    deliveries = hub.deliveries(created["id"])
    assert len(deliveries) == 20 and all(d["status"] == "delivered" for d in deliveries)
    assert len({d["idempotency_key"] for d in deliveries}) == 20


def test_a_receiver_that_never_answers_delays_no_other_write(hub: Hub) -> None:
    with SilentServer() as silent:
        hub.subscribe(
            f"http://127.0.0.1:{silent.port}/hooks", events=["case.opened"], allow_private=True
        )
        case_id = hub.open_case()
        sending = threading.Thread(target=hub.run_due)
        sending.start()
        assert silent.connected.wait(20), "the worker never reached the receiver"
        started = time.perf_counter()
        posted = hub.client.post(
            f"/api/v1/cases/{case_id}/messages", headers=hub.as_("tom"), json={"text": "On it."}
        )
        took = time.perf_counter() - started
        assert sending.is_alive()  # the POST is still waiting for an answer
        silent.hang_up()
        sending.join(timeout=60)
        assert not sending.is_alive()
    assert posted.status_code == 201 and took < 3.0, f"the write took {took:.1f} s"
    [delivery] = hub.webhooks.deliveries(hub.webhooks.all()[0].id)
    assert delivery.status == "pending" and delivery.attempts == 1  # tried again later


def test_only_subscribed_types_and_active_webhooks_get_deliveries(hub: Hub) -> None:
    with receiving() as receiver:
        messages = hub.subscribe(receiver.url, events=["message.received"], allow_private=True)
        paused = hub.subscribe(receiver.url, events=["case.opened"], allow_private=True)
        response = hub.client.patch(
            f"/api/v1/webhooks/{paused['id']}", headers=hub.as_("admin"), json={"active": False}
        )
        assert response.status_code == 200 and response.json()["active"] is False
        drive_case(hub)
        hub.run_until_idle()
        assert [body_of(r)["type"] for r in receiver.requests] == ["message.received"]
    assert len(hub.deliveries(messages["id"])) == 1
    assert hub.deliveries(paused["id"]) == []


def test_a_delivery_fails_after_a_day_of_retries_and_can_be_redelivered(hub: Hub) -> None:
    port = free_port()  # nothing listens there yet: every attempt is refused
    url = f"http://127.0.0.1:{port}/hooks/accord"
    created = hub.subscribe(url, events=["case.opened", "message.received"], allow_private=True)
    case_id = hub.open_case()
    hub.client.post("/api/v1/portal/messages", headers=hub.portal(case_id), json={"text": "Hi?"})
    hub.run_until_idle()
    opened, message = hub.deliveries(created["id"])
    assert opened["status"] == "failed" and opened["attempts"] == wh.MAX_ATTEMPTS
    times = [datetime.fromisoformat(a["at"]) for a in opened["log"]]
    assert len(times) == wh.MAX_ATTEMPTS and times[-1] - times[0] >= timedelta(hours=24)
    assert all(a["status_code"] is None for a in opened["log"])
    assert "could not connect" in opened["last_error"]
    # a delivery that failed for good no longer holds the case's next one back
    assert message["status"] == "failed"
    assert datetime.fromisoformat(message["log"][0]["at"]) >= times[-1]

    with receiving(port=port) as receiver:  # the receiver is back: redeliver by hand
        again = hub.client.post(
            f"/api/v1/webhooks/deliveries/{opened['id']}/redeliver", headers=hub.as_("admin")
        )
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "pending" and again.json()["attempts"] == 0
        hub.run_due()
        assert [body_of(r)["id"] for r in receiver.requests] == [opened["idempotency_key"]]
    after = hub.deliveries(created["id"])[0]
    assert after["status"] == "delivered" and len(after["log"]) == wh.MAX_ATTEMPTS + 1
    assert after["log"][-1]["status_code"] == 200


def test_retry_schedule_covers_a_day() -> None:
    delays = [wh.retry_delay(n) for n in range(1, wh.MAX_ATTEMPTS)]
    assert delays[:3] == [timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=2)]
    assert max(delays) == timedelta(hours=1)
    assert sum(delays, timedelta()) >= timedelta(hours=24)


def test_signatures_and_the_doc_example() -> None:
    verify_doc = doc_verifier()
    secret = wh.new_secret()
    assert len(secret) == 43
    body = b'{"id":"whd_1","type":"case.opened"}'
    stamp = 1_792_753_200
    headers = {
        "Accord-Webhook-Timestamp": str(stamp),
        "Accord-Webhook-Signature": wh.sign(secret, stamp, body),
    }
    verify_doc(secret, headers, body, now=stamp + 10)
    for bad_secret, bad_body, at in (
        (wh.new_secret(), body, stamp),  # another secret
        (secret, body + b" ", stamp),  # a changed body
        (secret, body, stamp + 301),  # too old: a replay
        (secret, body, stamp - 301),  # from the future
    ):
        with pytest.raises(ValueError):
            verify_doc(bad_secret, headers, bad_body, now=at)
        assert not wh.verify(
            bad_secret,
            headers["Accord-Webhook-Timestamp"],
            headers["Accord-Webhook-Signature"],
            bad_body,
            now=at,
        )
    with pytest.raises(ValueError):
        verify_doc(secret, {**headers, "Accord-Webhook-Timestamp": "soon"}, body, now=stamp)


# -- the API ---------------------------------------------------------------------------


def test_only_admins_manage_webhooks_and_the_secret_is_shown_once(hub: Hub) -> None:
    url = "http://127.0.0.1:9/hook"
    refused = hub.client.post(
        "/api/v1/webhooks", headers=hub.as_("tom"), json={"url": url, "events": ["case.opened"]}
    )
    assert refused.status_code == 403
    assert hub.client.get("/api/v1/webhooks", headers=hub.as_("tom")).status_code == 403
    created = hub.subscribe(url, events=["case.opened"], allow_private=True)
    assert len(created["secret"]) == 43 and created["created_by"] == "admin"
    listed = hub.client.get("/api/v1/webhooks", headers=hub.as_("admin")).json()
    assert [h["id"] for h in listed["webhooks"]] == [created["id"]]
    assert "secret" not in listed["webhooks"][0] and "customer.merged" in listed["event_types"]
    one = hub.client.get(f"/api/v1/webhooks/{created['id']}", headers=hub.as_("admin"))
    assert one.status_code == 200 and "secret" not in one.json()
    bad = hub.client.post(
        "/api/v1/webhooks",
        headers=hub.as_("admin"),
        json={"url": url, "events": ["case.exploded"], "allow_private": True},
    )
    assert bad.status_code == 422 and bad.json()["field"] == "events"
    gone = hub.client.delete(f"/api/v1/webhooks/{created['id']}", headers=hub.as_("admin"))
    assert gone.status_code == 204
    again = hub.client.delete(f"/api/v1/webhooks/{created['id']}", headers=hub.as_("admin"))
    assert again.status_code == 404
    missing = hub.client.post(
        "/api/v1/webhooks/deliveries/12345/redeliver", headers=hub.as_("admin")
    )
    assert missing.status_code == 404


def test_allow_private_needs_the_admin_role(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    # a lead whose role were given members:admin still may not open private addresses
    monkeypatch.setitem(
        scopes.ROLE_SCOPES, "lead", scopes.ROLE_SCOPES["lead"] | {scopes.MEMBERS_ADMIN}
    )
    services = hub.client.app.state.services  # type: ignore[attr-defined]
    lead = services.members.create(
        "sara", "correct horse battery", role="lead", display_name="Sara Lind"
    )
    token = services.tokens.create(lead.id, "t", [scopes.MEMBERS_ADMIN]).token
    headers = {"Authorization": f"Bearer {token}"}
    body = {"url": "http://127.0.0.1:9/hook", "events": ["case.opened"]}
    private = hub.client.post(
        "/api/v1/webhooks", headers=headers, json={**body, "allow_private": True}
    )
    assert private.status_code == 403
    public = hub.client.post("/api/v1/webhooks", headers=headers, json=body)
    assert public.status_code == 422 and public.json()["field"] == "url"  # loopback


def test_deleting_a_webhook_drops_its_pending_deliveries(hub: Hub) -> None:
    created = hub.subscribe("http://127.0.0.1:9/hook", events=["case.opened"], allow_private=True)
    hub.open_case()
    assert len(hub.deliveries(created["id"])) == 1
    hub.client.delete(f"/api/v1/webhooks/{created['id']}", headers=hub.as_("admin"))
    hub.run_until_idle()  # the delivery's job finds nothing to send
    assert hub.worker.queue.pending() == []
    assert hub.worker.queue.find(status="failed") == []


def test_recording_is_idempotent_and_emit_serves_other_callers(hub: Hub) -> None:
    created = hub.subscribe(
        "http://127.0.0.1:9/hook", events=["case.opened", "customer.merged"], allow_private=True
    )
    case_id = hub.open_case()
    [opened] = hub.deliveries(created["id"])
    event = orjson.loads(hub.webhooks.delivery(opened["id"]).payload)["data"]["event"]
    assert hub.webhooks.record(case_id, [event]) == 0  # told again: nothing new
    merged = {"into": "cust-1", "from": "cust-2"}
    assert hub.webhooks.emit("customer.merged", None, "merge-7", merged) == 1
    assert hub.webhooks.emit("customer.merged", None, "merge-7", merged) == 0
    with pytest.raises(ValueError):
        hub.webhooks.emit("case.exploded", None, "x", {})
    assert [d["type"] for d in hub.deliveries(created["id"])] == ["case.opened", "customer.merged"]
