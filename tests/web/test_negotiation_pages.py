"""Issue 19 in the pages: crossed proposals proposed again, withdrawals, promises made on
the phone, topics, and forms that keep what was typed when the service refuses."""

from __future__ import annotations

import re

import sqlalchemy as sa
from fastapi.testclient import TestClient

from accord.jobs.queue import JobQueue
from accord.store.tables import case_refs
from tests.web.conftest import Desk
from tests.web.test_pages import login

OFFER = {
    "act_title": "Engineer visit",
    "act_kind": "task",
    "act_due": "2026-12-02T10:00",
    "data_label": "Credit",
    "data_type": "money",
    "data_value": "25.00",
    "data_currency": "GBP",
    "note": "Wednesday, with a credit.",
}


def portal_of(desk: Desk, client: TestClient, csrf: str, case_id: str) -> str:
    state = desk.services.negotiation.state(case_id)
    customer = next(p for p, v in state["parties"].items() if v.get("hosted_by"))
    made = client.post(f"/cases/{case_id}/portal-link", data={"csrf": csrf, "party": customer})
    link = re.search(r'href="(/portal/[^"]+)"', made.text)
    assert link, made.text
    return link.group(1)


def pending(desk: Desk, case_id: str) -> dict[str, dict[str, object]]:
    proposals = desk.services.negotiation.state(case_id)["proposals"]
    return {k: p for k, p in proposals.items() if p["state"] == "pending"}


def test_a_crossed_counter_is_proposed_again_and_accepted(desk: Desk) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    agent = TestClient(desk.app)
    csrf = login(agent)
    ours = desk.services.party_id
    offer = {**OFFER, "csrf": csrf, "act_owner": ours}
    assert agent.post(f"/cases/{case_id}/propose", data=offer).status_code == 200
    (visit,) = pending(desk, case_id)
    callback = {
        "csrf": csrf,
        "act_title": "Call back",
        "act_owner": ours,
        "act_kind": "callback",
        "act_due": "2026-11-30T10:00",
    }
    assert agent.post(f"/cases/{case_id}/propose", data=callback).status_code == 200
    (call,) = set(pending(desk, case_id)) - {visit}
    link = portal_of(desk, agent, csrf, case_id)
    customer = TestClient(desk.app)
    counter = {**OFFER, "act_owner": ours, "counter_of": visit, "act_id": "engineer-visit"}
    counter.update(act_due="2026-12-03T10:00", data_value="40.00", note="Thursday, £40")
    assert customer.post(link + "/propose", data=counter).status_code == 200
    (countered,) = set(pending(desk, case_id)) - {visit, call}
    assert customer.post(f"{link}/proposals/{call}/accept").status_code == 200
    state = desk.services.negotiation.state(case_id)
    assert state["terms"]["version"] == 1
    # both sides see the crossed counter, with its one action on the author's side
    page = agent.get(f"/cases/{case_id}").text
    assert "crossed with version 1" in page and "Thursday, £40" in page
    assert f"/proposals/{countered}/repropose" not in page
    assert "Propose it ourselves on version 1" in page
    theirs = customer.get(link).text
    assert "crossed with version 1" in theirs and "Propose again on version 1" in theirs
    again = customer.post(f"{link}/proposals/{countered}/repropose", follow_redirects=False)
    assert again.status_code == 303, again.text
    state = desk.services.negotiation.state(case_id)
    (made,) = [k for k, p in state["proposals"].items() if p.get("rebase_of") == countered]
    assert state["proposals"][made]["by"] == "customer"
    assert state["proposals"][made]["note"] == "Thursday, £40"
    assert "crossed with version" not in agent.get(f"/cases/{case_id}").text
    accepted = agent.post(
        f"/cases/{case_id}/proposals/{made}/accept",
        data={"csrf": csrf},
        follow_redirects=False,
    )
    assert accepted.status_code == 303
    state = desk.services.negotiation.state(case_id)
    assert state["terms"]["version"] == 2
    assert state["terms"]["data"]["credit"]["value"]["amount"] == "40.00"


def test_withdraw_an_own_proposal_from_the_workspace_and_the_portal(desk: Desk) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    agent = TestClient(desk.app)
    csrf = login(agent)
    offer = {**OFFER, "csrf": csrf, "act_owner": desk.services.party_id}
    agent.post(f"/cases/{case_id}/propose", data=offer)
    (mine,) = pending(desk, case_id)
    link = portal_of(desk, agent, csrf, case_id)
    customer = TestClient(desk.app)
    assert f"/proposals/{mine}/withdraw" not in customer.get(link).text  # not theirs
    assert f"/proposals/{mine}/withdraw" in agent.get(f"/cases/{case_id}").text
    gone = agent.post(
        f"/cases/{case_id}/proposals/{mine}/withdraw",
        data={"csrf": csrf},
        follow_redirects=False,
    )
    assert gone.status_code == 303
    assert desk.services.negotiation.state(case_id)["proposals"][mine]["state"] == "withdrawn"
    customer.post(link + "/propose", data={**OFFER, "act_owner": desk.services.party_id})
    (theirs,) = pending(desk, case_id)
    assert "Withdraw my proposal" in customer.get(link).text
    customer.post(f"{link}/proposals/{theirs}/withdraw")
    assert desk.services.negotiation.state(case_id)["proposals"][theirs]["state"] == "withdrawn"


def test_a_callback_promised_on_the_phone_is_timed_at_once(desk: Desk) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    agent = TestClient(desk.app)
    csrf = login(agent)
    promised = agent.post(
        f"/cases/{case_id}/promise",
        data={
            "csrf": csrf,
            "act_title": "Call back about the visit",
            "act_kind": "callback",
            "act_due": "2026-11-26T15:00",
            "note": "As promised on the phone.",
        },
        follow_redirects=False,
    )
    assert promised.status_code == 303, promised.text
    state = desk.services.negotiation.state(case_id)
    ((aid, activity),) = state["terms"]["activities"].items()
    assert activity["committed"]["by"] == desk.services.party_id
    assert state["progress"][aid]["state"] == "agreed"
    queue = JobQueue(desk.node.db, now=desk.services.negotiation.now)
    (remind,) = queue.pending(kind="callback.remind")
    assert remind.payload == {"case": case_id, "activity": aid, "due": activity["due"]}
    assert "Call back about the visit" in agent.get(f"/cases/{case_id}").text
    # a refused promise keeps what was typed
    refused = agent.post(
        f"/cases/{case_id}/promise",
        data={"csrf": csrf, "act_title": "Ring again", "act_kind": "callback", "note": "soon"},
    )
    assert refused.status_code == 400 and "a callback needs a due time" in refused.text
    assert 'value="Ring again"' in refused.text and 'value="soon"' in refused.text


def test_topics_are_opened_closed_and_named_in_proposals(desk: Desk) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    agent = TestClient(desk.app)
    csrf = login(agent)
    opened = agent.post(
        f"/cases/{case_id}/topics", data={"csrf": csrf, "title": "Billing"}, follow_redirects=False
    )
    assert opened.status_code == 303
    topics = desk.services.negotiation.state(case_id)["topics"]
    assert topics["billing"]["state"] == "open"
    page = agent.get(f"/cases/{case_id}").text
    assert "Billing" in page and 'name="act_topic"' in page
    offer = {**OFFER, "csrf": csrf, "act_owner": desk.services.party_id, "act_topic": "billing"}
    agent.post(f"/cases/{case_id}/propose", data=offer)
    (made,) = pending(desk, case_id).values()
    assert made["changes"][0]["topic"] == "billing"  # type: ignore[index]
    assert "Topic: Billing" in agent.get(f"/cases/{case_id}").text
    link = portal_of(desk, agent, csrf, case_id)
    customer = TestClient(desk.app)
    theirs = customer.get(link).text
    assert "Topic: Billing" in theirs and "/topics/billing/close" in theirs
    customer.post(link + "/topics", data={"title": "Router"})
    assert desk.services.negotiation.state(case_id)["topics"]["router"]["state"] == "open"
    customer.post(link + "/topics/router/close")
    closed = agent.post(f"/cases/{case_id}/topics/billing/close", data={"csrf": csrf})
    assert closed.status_code == 200
    topics = desk.services.negotiation.state(case_id)["topics"]
    assert topics["billing"]["state"] == topics["router"]["state"] == "closed"
    agent.post(f"/cases/{case_id}/topics/billing/reopen", data={"csrf": csrf})
    assert desk.services.negotiation.state(case_id)["topics"]["billing"]["state"] == "open"


def test_a_failed_send_or_proposal_keeps_what_was_typed(desk: Desk) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    agent = TestClient(desk.app)
    csrf = login(agent)
    text = "Dear Dana, the engineer comes on Thursday <b>morning</b>."
    failed = agent.post(
        f"/cases/{case_id}/reply", data={"csrf": csrf, "text": text, "channel": "whatsapp"}
    )
    assert failed.status_code >= 400
    assert 'role="alert"' in failed.text
    kept = re.search(r'<textarea id="reply-text"[^>]*>([^<]*)</textarea>', failed.text)
    assert kept and kept.group(1) == text.replace("<", "&lt;").replace(">", "&gt;")
    assert '<option value="whatsapp" selected>' in failed.text
    bad = agent.post(
        f"/cases/{case_id}/propose",
        data={**OFFER, "csrf": csrf, "act_owner": "nobody", "note": "Keep this note"},
    )
    assert bad.status_code >= 400
    assert 'value="Engineer visit"' in bad.text and "Keep this note" in bad.text
    assert 'value="25.00"' in bad.text


def test_a_customer_reply_after_resolution_reopens_the_case_and_tells_the_owner(
    desk: Desk,
) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    agent = TestClient(desk.app)
    csrf = login(agent)
    link = portal_of(desk, agent, csrf, case_id)
    customer = TestClient(desk.app)
    n = desk.services.negotiation

    def resolve() -> None:
        agent.post(f"/cases/{case_id}/satisfied", data={"csrf": csrf})
        customer.post(link + "/satisfied", data={"rating": "5"})
        assert n.state(case_id)["resolved"]

    def mail_again(text: str) -> str:
        with desk.node.db.read() as conn:
            number = conn.execute(
                sa.select(case_refs.c.number).where(case_refs.c.case_id == case_id)
            ).scalar_one()
        return desk.mail(f"Re: Broadband down [Accord #{number}]", text)

    resolve()
    assert "Broadband down" not in agent.get("/?view=open").text
    tom = desk.services.members.by_username("tom")
    before = len(desk.services.ownership.notifications_for(tom.id))
    assert mail_again("It dropped again tonight.") == case_id
    state = n.state(case_id)
    assert not state["resolved"] and state["reopened"] == 1
    (reopened,) = [e for e in n.cases.timeline(case_id, limit=50) if e.type == "case.reopened"]
    assert reopened.author.node == n.key.public and reopened.author.for_party is None
    assert reopened.author.via == "email" and "Dana Whitfield wrote" in reopened.body["reason"]
    notices = desk.services.ownership.notifications_for(tom.id)
    assert len(notices) == before + 1
    assert notices[0]["kind"] == "case.activity" and "open again" in notices[0]["text"]
    assert "It dropped again tonight." in notices[0]["text"]
    assert "Broadband down" in agent.get("/?view=open").text
    assert "reopened the case" in agent.get(f"/cases/{case_id}").text
    # a message in the portal reopens it too, as the customer's own act
    resolve()
    assert customer.post(link + "/message", data={"text": "Still flaky."}).status_code == 200
    state = n.state(case_id)
    assert not state["resolved"] and state["reopened"] == 2
    last = n.cases.timeline(case_id, limit=50)
    latest = [e for e in last if e.type == "case.reopened"]
    assert any(e.author.for_party == "customer" and e.author.via == "portal" for e in latest)
    # past the grace period, a message opens a new case that names the old one
    resolve()
    n.now.advance(days=31)  # type: ignore[attr-defined]
    later = mail_again("A new problem with the same line.")
    assert later != case_id and n.state(case_id)["resolved"]
    follows = n.state(later)["info"]["follows-case"]
    assert case_id in follows["value"]["value"]
