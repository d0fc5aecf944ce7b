"""The members' pages, the portal and admin over HTTP: sessions, CSRF, the inbox's views
and search, the case workspace's forms, the portal's magic link, and escaping."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import PASSWORD, Desk


def login_form(client: TestClient, **form: str) -> dict[str, str]:
    """``form`` with the login form's CSRF token (fetched with the form, as a browser does)."""
    return {**form, "csrf": csrf_of(client.get("/login").text)}


def login(client: TestClient, username: str = "tom") -> str:
    """Log in through the form; returns the CSRF token the pages carry."""
    page = client.post(
        "/login", data=login_form(client, username=username, password=PASSWORD, next="/")
    )
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def test_pages_need_a_session_and_login_is_limited(desk: Desk) -> None:
    client = TestClient(desk.app)
    gone = client.get("/", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/login?next=%2F"
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    assert client.get(f"/cases/{case_id}", follow_redirects=False).status_code == 303
    # an open redirect is refused: next stays on this site
    page = client.post(
        "/login",
        data=login_form(client, username="tom", password=PASSWORD, next="//evil.example/"),
        follow_redirects=False,
    )
    assert page.status_code == 303 and page.headers["location"] == "/"
    assert "httponly" in page.headers["set-cookie"].lower()
    client.cookies.clear()
    wrong = client.post("/login", data=login_form(client, username="tom", password="nope"))
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    statuses = [
        client.post("/login", data=login_form(client, username="tom", password="nope")).status_code
        for _ in range(12)
    ]
    assert statuses[-1] == 429
    limited = client.post("/login", data=login_form(client, username="tom", password=PASSWORD))
    assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_a_form_without_the_csrf_token_changes_nothing(desk: Desk) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    client = TestClient(desk.app)
    login(client)
    before = desk.services.negotiation.state(case_id)["events"]
    refused = client.post(f"/cases/{case_id}/reply", data={"text": "hello", "csrf": "x"})
    assert refused.status_code == 403
    assert desk.services.negotiation.state(case_id)["events"] == before


def test_inbox_views_search_and_live_token(desk: Desk) -> None:
    first = desk.mail("Broadband down", "No sync light since Monday, router model HX-400.")
    second = desk.mail(
        "Refund for October", "I was billed twice.", sender="lee@example.org", name="Lee Park"
    )
    client = TestClient(desk.app)
    login(client)
    token = client.get("/web/changes").json()["token"]
    inbox = client.get("/?view=open")
    assert "Broadband down" in inbox.text and "Refund for October" in inbox.text
    found = client.get("/?view=open&q=router hx")
    assert "Broadband down" in found.text and "Refund for October" not in found.text
    assert "[HX]" in found.text or "[hx" in found.text.lower()  # the matching passage
    assert "Refund for October" in client.get("/?view=open&q=bille").text  # prefix
    assert "No case in" in client.get("/?view=open&q=zebra").text
    desk.services.notes.add(first, "Tom Baker", "Customer prefers mornings")
    assert "Broadband down" in client.get("/?view=open&q=mornings").text
    assert client.get("/web/changes").json()["token"] != token
    partial = client.get("/?view=open&partial=1")
    assert partial.text.lstrip().startswith('<nav class="tabs"') and "<html" not in partial.text
    assert "<table" in partial.text
    assert second


def test_case_workspace_journey_and_portal(desk: Desk) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    client = TestClient(desk.app)
    csrf = login(client)
    page = client.get(f"/cases/{case_id}")
    assert page.status_code == 200
    assert "Content-Security-Policy" in page.headers
    assert "Dana Whitfield" in page.text and "<svg" in page.text
    proposed = client.post(
        f"/cases/{case_id}/propose",
        data={
            "csrf": csrf,
            "act_title": "Engineer visit",
            "act_owner": desk.services.party_id,
            "act_kind": "task",
            "act_due": "2026-12-01T09:00",
            "data_label": "Credit",
            "data_type": "money",
            "data_value": "15.00",
            "data_currency": "gbp",
            "note": "We will send an engineer.",
        },
        follow_redirects=False,
    )
    assert proposed.status_code == 303, proposed.text
    state = desk.services.negotiation.state(case_id)
    ((pid, proposal),) = [(k, p) for k, p in state["proposals"].items()]
    assert proposal["changes"][1]["value"] == {
        "type": "money",
        "amount": "15.00",
        "currency": "GBP",
    }
    # a malformed proposal is refused with the field named and nothing written
    bad = client.post(
        f"/cases/{case_id}/propose",
        data={"csrf": csrf, "act_title": "Call back", "act_owner": "x", "act_kind": "callback"},
    )
    assert bad.status_code == 400 and "a callback needs a due time" in bad.text
    # the customer's portal link
    customer = next(p for p, v in state["parties"].items() if v.get("hosted_by"))
    made = client.post(f"/cases/{case_id}/portal-link", data={"csrf": csrf, "party": customer})
    link = re.search(r'href="(/portal/[^"]+)"', made.text)
    assert link, made.text
    customer_client = TestClient(desk.app)
    portal = customer_client.get(link.group(1))
    assert portal.status_code == 200 and portal.headers["Referrer-Policy"] == "no-referrer"
    assert "Tom Baker" in portal.text and "Engineer visit" in portal.text
    countered = customer_client.post(
        link.group(1) + "/propose",
        data={
            "counter_of": pid,
            "act_title": "Engineer visit",
            "act_owner": desk.services.party_id,
            "act_kind": "task",
            "act_due": "2026-12-02T14:00",
            "act_id": "engineer-visit",
        },
        follow_redirects=False,
    )
    assert countered.status_code == 303, countered.text
    state = desk.services.negotiation.state(case_id)
    counter_id = next(k for k, p in state["proposals"].items() if p["state"] == "pending")
    client = TestClient(desk.app)
    csrf = login(client)
    accepted = client.post(
        f"/cases/{case_id}/proposals/{counter_id}/accept",
        data={"csrf": csrf},
        follow_redirects=False,
    )
    assert accepted.status_code == 303
    page = client.get(f"/cases/{case_id}")
    assert "Version 1" in page.text and "accepted by" in page.text
    diff = client.get(f"/cases/{case_id}?from=0&to=1")
    assert "added" in diff.text
    assert desk.services.negotiation.state(case_id)["terms"]["version"] == 1


def test_expired_and_forged_links_get_a_clear_page(desk: Desk) -> None:
    client = TestClient(desk.app)
    page = client.get("/portal/not-a-token")
    assert page.status_code == 401 and "not valid" in page.text


@pytest.mark.parametrize("who,allowed", [("ann", True), ("tom", False)])
def test_admin_needs_admin_scopes(desk: Desk, who: str, allowed: bool) -> None:
    client = TestClient(desk.app)
    csrf = login(client, who)
    page = client.get("/admin")
    assert (page.status_code == 200) is allowed
    made = client.post(
        "/admin/members",
        data={
            "csrf": csrf,
            "username": "kim",
            "display_name": "Kim",
            "role": "agent",
            "password": PASSWORD,
        },
        follow_redirects=False,
    )
    assert (made.status_code == 303) is allowed
    assert (desk.services.members.by_username("kim") is not None) is allowed


PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_script_payloads_render_as_text_on_every_page(desk: Desk) -> None:
    from accord.service.negotiation import Actor

    n = desk.services.negotiation
    tom = Actor(member="Tom Baker", via="web")
    opened = n.open_case(
        tom,
        title=f"Title {PAYLOAD}",
        party_id=desk.services.party_id,
        party_name="Northwind Broadband",
        party_url=None,
        customer={"name": f"Dana {PAYLOAD}"},
    )
    case_id = opened.case_id
    customer = next(p for p, v in n.state(case_id)["parties"].items() if v.get("hosted_by"))
    dana = Actor(member=f"Dana {PAYLOAD}", via="portal", party=customer, session="s")
    n.post_message(dana, case_id, f"Message {PAYLOAD}")
    sha = "ab" * 32
    n.set_info(
        dana,
        case_id,
        "photo",
        {"type": "file", "sha256": sha, "name": f"{PAYLOAD}.png", "size": 3},
        label=f"Label {PAYLOAD}",
    )
    desk.services.notes.add(case_id, "Tom Baker", f"Note {PAYLOAD}")
    client = TestClient(desk.app)
    csrf = login(client, "ann")
    link = desk.services.links.issue(
        case_id, customer, "test", __import__("datetime").timedelta(hours=1)
    )
    pages = {
        "inbox": client.get("/?view=open").text,
        "search": client.get("/?view=open&q=message").text,
        "case": client.get(f"/cases/{case_id}").text,
        "admin": client.get("/admin").text,
        "portal": TestClient(desk.app).get(f"/portal/{link}").text,
    }
    for name, html in pages.items():
        assert "<script>alert" not in html, name
        assert "<img src=x" not in html, name
        assert "&lt;script&gt;" in html or name == "admin", name
    assert csrf


def test_a_case_link_is_rate_limited_like_the_portal_api(tmp_path: Path) -> None:
    from datetime import timedelta

    from tests.web.conftest import make_desk

    desk = make_desk(tmp_path / "limited", rate_limit=3)
    try:
        case_id = desk.mail("Broadband down", "No sync light since Monday.")
        state = desk.services.negotiation.state(case_id)
        customer = next(p for p, v in state["parties"].items() if v.get("hosted_by"))
        link = desk.services.links.issue(case_id, customer, "test", timedelta(hours=1))
        client = TestClient(desk.app)
        statuses = [client.get(f"/portal/{link}").status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and statuses[-1] == 429
    finally:
        desk.services.close()
        desk.node.close()


def test_admin_tokens_shown_once_revocable_and_bad_templates_named(desk: Desk) -> None:
    client = TestClient(desk.app)
    csrf = login(client, "ann")
    made = client.post(
        "/admin/tokens",
        data={"csrf": csrf, "name": "crm", "scopes": ["cases:read"], "days": "30"},
    )
    assert made.status_code == 200 and "not shown again" in made.text
    token = re.search(r'id="new-token" readonly value="([^"]+)"', made.text)
    assert token and desk.services.tokens.authenticate(token.group(1)) is not None
    assert token.group(1) not in client.get("/admin").text  # shown once only
    (info,) = desk.services.tokens.list()
    revoked = client.post(
        f"/admin/tokens/{info.id}/revoke", data={"csrf": csrf}, follow_redirects=False
    )
    assert revoked.status_code == 303
    assert desk.services.tokens.authenticate(token.group(1)) is None
    bad = client.post("/admin/templates", data={"csrf": csrf, "text": "name: [unclosed"})
    assert bad.status_code == 400 and 'class="error"' in bad.text


def test_files_download_only_through_their_case_as_attachments(desk: Desk) -> None:
    from accord.channels.blobs import node_blobs
    from accord.service.negotiation import Actor

    first = desk.mail("Broadband down", "No sync light since Monday.")
    other = desk.mail("Refund", "Billed twice.", sender="lee@example.org", name="Lee Park")
    blobs = node_blobs(desk.node.data_dir, durable=False)
    sha = blobs.put(b"<html><script>alert(1)</script></html>")
    tom = Actor(member="Tom Baker", via="web")
    desk.services.negotiation.set_info(
        tom, first, "page", {"type": "file", "sha256": sha, "name": "x.html", "size": 38}
    )
    client = TestClient(desk.app)
    login(client)
    got = client.get(f"/cases/{first}/files/{sha}")
    assert got.status_code == 200 and got.content.startswith(b"<html>")
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in got.headers["content-security-policy"]
    assert client.get(f"/cases/{other}/files/{sha}").status_code == 404
    assert client.get(f"/cases/{first}/files/../../node.key").status_code == 404
