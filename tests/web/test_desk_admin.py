"""Admin without the command line (issue 20, item 7), and the header's links (item 6):
mailboxes, messaging accounts, webhooks, teams with a lead chosen from the members,
routing rules, the business calendar, templates with a preview beside the YAML, targets
with an owner chosen from the members — each form through the same service call as the
API (so the same refusals, word for word), each with the session's CSRF token and the
section's scope. On SQLite and PostgreSQL; then the new pages in Chromium with axe-core.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from accord.store.tables import routing_rules
from tests.browser import ARGS, CHROMIUM
from tests.clocks import START, FakeClock, TickingClock
from tests.servers import free_port
from tests.web.conftest import PASSWORD, Desk
from tests.web.test_browser import check_page
from tests.web.test_desk import make
from tests.web.test_pages import login

TEMPLATE = """
name: broadband
title: Broadband contract
topics:
  - {topic: price, title: New price}
activities:
  - {activity: switch, title: Switch the tariff, due: 3d}
sla: {first_response: 60, next_response: 240}
routing: {team: Broadband}
"""


@pytest.fixture
def desk(tmp_path: Path, database_url: str) -> Iterator[Desk]:
    made = make(tmp_path / "northwind", database_url, FakeClock(START))
    yield made
    made.services.close()
    made.node.close()


def error_of(html: str) -> str:
    found = re.search(r'<p class="error" role="alert">([^<]*)</p>', html)
    assert found, "no error on the page"
    return unescape(found.group(1))


def test_an_agent_sees_no_admin_link_and_cannot_post(desk: Desk) -> None:
    tom = TestClient(desk.app)
    csrf = login(tom, "tom")
    assert 'href="/admin"' not in tom.get("/").text
    assert tom.get("/admin").status_code == 403
    refused = tom.post("/admin/mailboxes", data={"csrf": csrf, "address": "x@northwind.example"})
    assert refused.status_code == 403
    lena = TestClient(desk.app)
    login(lena, "lena")  # a lead keeps the canned replies: the link is there
    assert 'href="/admin"' in lena.get("/").text


def test_mailboxes_accounts_and_webhooks_from_the_admin_page(desk: Desk) -> None:
    ann = TestClient(desk.app)
    csrf = login(ann, "ann")
    page = ann.get("/admin").text
    assert "Add a mailbox" in page and "Add a messaging account" in page
    assert "Add a webhook" in page

    mailbox = {
        "address": "billing@northwind.example",
        "display_name": "Northwind Billing",
        "smtp_host": "smtp.northwind.example",
        "smtp_port": "587",
        "smtp_security": "starttls",
        "smtp_username": "billing",
        "smtp_password": "s3cret-smtp",
        "imap_host": "",
        "reply_all": "1",
    }
    assert ann.post("/admin/mailboxes", data=mailbox).status_code == 403  # no token
    made = ann.post("/admin/mailboxes", data={**mailbox, "csrf": csrf})
    assert made.status_code == 200, made.text
    assert "Northwind Billing &lt;billing@northwind.example&gt;" in made.text
    assert "s3cret-smtp" not in made.text and "password set" in made.text
    added = desk.services.mail.mailboxes.for_recipient("billing@northwind.example")
    assert added is not None and added.smtp is not None and added.smtp.password == "s3cret-smtp"
    # the same refusal as the API's, for the same mailbox again
    again = ann.post("/admin/mailboxes", data={**mailbox, "csrf": csrf})
    api = ann.post(
        "/api/v1/mailboxes",
        json={"address": "billing@northwind.example", "display_name": "Again"},
        headers={"X-CSRF-Token": csrf},
    )
    assert again.status_code == 400 and api.status_code == 409
    assert error_of(again.text) == api.json()["message"]
    bad_port = ann.post("/admin/mailboxes", data={**mailbox, "smtp_port": "99999", "csrf": csrf})
    assert error_of(bad_port.text) == "SMTP port: a number from 1 to 65535"

    account = {"platform": "telegram", "name": "Northwind bot", "csrf": csrf}
    missing = ann.post("/admin/channels", data={**account, "secret_bot_token": "123:ABC"})
    api = ann.post(
        "/api/v1/channels",
        json={"platform": "telegram", "name": "x", "settings": {}, "secrets": {"bot_token": "1"}},
        headers={"X-CSRF-Token": csrf},
    )
    assert missing.status_code == 400 and error_of(missing.text) == api.json()["message"]
    done = ann.post(
        "/admin/channels",
        data={**account, "secret_bot_token": "123:ABC", "secret_secret_token": "tg-secret"},
    )
    assert done.status_code == 200 and "Northwind bot" in done.text
    assert "tg-secret" not in done.text and "123:ABC" not in done.text
    (telegram,) = desk.services.connectors.accounts.all()
    assert telegram.secrets == {"bot_token": "123:ABC", "secret_token": "tg-secret"}

    hook = ann.post(
        "/admin/webhooks",
        data={
            "url": "http://127.0.0.1:9/accord",
            "events": ["case.opened", "message.received"],
            "allow_private": "1",
            "csrf": csrf,
        },
    )
    assert hook.status_code == 200, hook.text
    secret = re.search(r'id="new-secret" readonly value="([^"]+)"', hook.text)
    assert secret and "it is not shown again" in hook.text
    (made_hook,) = desk.services.webhooks.all()
    assert made_hook.events == ("case.opened", "message.received") or list(made_hook.events) == [
        "case.opened",
        "message.received",
    ]
    assert secret.group(1) not in ann.get("/admin").text  # shown once
    private = ann.post(
        "/admin/webhooks",
        data={"url": "http://127.0.0.1:9/x", "events": ["case.opened"], "csrf": csrf},
    )
    assert private.status_code == 422 and "webhooks go to public" in error_of(private.text)


def test_teams_rules_calendar_templates_and_targets(desk: Desk) -> None:
    ann = TestClient(desk.app)
    csrf = login(ann, "ann")
    page = ann.get("/admin").text
    # members are chosen, not typed
    assert '<select id="team-lead" name="lead">' in page
    assert '<option value="lena">Lena Ortiz</option>' in page
    ann.post("/admin/teams", data={"name": "Billing", "lead": "lena", "csrf": csrf})
    billing = next(t for t in desk.services.ownership.list_teams() if t["name"] == "Billing")
    assert billing["lead"] == "Lena Ortiz"

    rule = ann.post(
        "/admin/rules", data={"priority": "10", "team": "Billing", "topic": "bill", "csrf": csrf}
    )
    assert rule.status_code == 200 and "<td>Billing</td>" in rule.text
    (made,) = desk.services.ownership.list_rules()
    assert (made["team"], made["topic"], made["priority"]) == ("Billing", "bill", 10)
    nobody = ann.post("/admin/rules", data={"team": "Nowhere", "csrf": csrf})
    api = ann.post(
        "/api/v1/routing/rules", json={"team": "Nowhere"}, headers={"X-CSRF-Token": csrf}
    )
    assert error_of(nobody.text) == api.json()["message"]
    ann.post(f"/admin/rules/{made['id']}/delete", data={"csrf": csrf})
    with desk.node.db.read() as conn:
        assert conn.execute(routing_rules.select()).first() is None

    calendar = ann.post(
        "/admin/calendar",
        data={
            "timezone": "Europe/London",
            "hours": "mon-fri 09:00-17:30",
            "country": "gb",
            "subdivision": "eng",
            "csrf": csrf,
        },
    )
    assert calendar.status_code == 200 and 'value="mon-fri 09:00-17:30"' in calendar.text
    bad = ann.post(
        "/admin/calendar",
        data={"timezone": "Mars/Olympus", "hours": "mon-fri 09:00-17:00", "csrf": csrf},
    )
    assert bad.status_code == 400 and "Mars/Olympus" in error_of(bad.text)

    # a template: previewed beside its YAML (nothing stored), then applied
    preview = ann.post("/admin/templates/preview", data={"text": TEMPLATE, "csrf": csrf})
    assert preview.status_code == 200
    assert "Preview: Broadband contract" in preview.text
    assert "Applying it makes <strong>version 1</strong>" in preview.text
    assert "Switch the tariff (due 3d)" in preview.text and "routing.team" not in preview.text
    assert "name: broadband" in preview.text  # the YAML stays in the box
    assert desk.app.state.templates.store.list() == []
    applied = ann.post("/admin/templates", data={"text": TEMPLATE, "csrf": csrf})
    assert applied.status_code == 200 and "v1" in applied.text
    same = ann.post("/admin/templates/preview", data={"text": TEMPLATE, "csrf": csrf})
    assert "applying it changes nothing" in same.text
    changed = TEMPLATE.replace("due: 3d", "due: 2d")
    second = ann.post("/admin/templates/preview", data={"text": changed, "csrf": csrf})
    assert "version 2" in second.text and "Changes from the latest version" in second.text
    broken = ann.post(
        "/admin/templates/preview",
        data={"text": TEMPLATE.replace("Broadband}", "Nowhere}"), "csrf": csrf},
    )
    assert broken.status_code == 422 and error_of(broken.text) == "routing.team: no team 'Nowhere'"
    assert "Nowhere}" in broken.text  # what was typed is kept
    assert ann.post("/admin/templates/preview", data={"text": TEMPLATE}).status_code == 403

    assert '<select id="t-owner" name="owner">' in ann.get("/admin").text
    target = ann.post(
        "/admin/targets",
        data={
            "name": "Few transfers",
            "metric": "transfers",
            "op": "<=",
            "threshold": "1",
            "owner": "lena",
            "csrf": csrf,
        },
    )
    assert target.status_code == 200 and "owner lena" in target.text


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Desk]]:
    made = make(tmp_path / "northwind", None, TickingClock())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(made.app, host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.05)
    yield f"http://127.0.0.1:{port}", made
    server.should_exit = True
    thread.join(timeout=10)
    made.services.close()
    made.node.close()


def test_the_new_pages_in_a_browser(served: tuple[str, Desk], tmp_path: Path) -> None:
    """Admin's forms, the template preview, notifications, Outcomes, Compare and a case
    with a collision notice and a message's fate: no serious axe violations."""
    from playwright.sync_api import sync_playwright

    base, desk = served
    case_id = desk.mail("Router lights", "All red since the storm.")
    shots = tmp_path / "shots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            pages = []
            for username in ("ann", "tom"):
                context = browser.new_context(
                    bypass_csp=True, viewport={"width": 1280, "height": 900}
                )
                page = context.new_page()
                page.goto(f"{base}/login")
                page.fill("#username", username)
                page.fill("#password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/")
                pages.append(page)
            ann, tom = pages
            ann.goto(f"{base}/admin")
            ann.fill("#template-text", TEMPLATE)
            ann.click("text=Preview")
            ann.wait_for_selector("#preview-h")
            check_page(ann, "admin-preview", shots)
            tom.goto(f"{base}/cases/{case_id}")
            ann.goto(tom.url)
            tom.fill("#reply-text", "Looking into it")
            tom.wait_for_timeout(200)
            ann.wait_for_selector("text=Tom Baker is typing a reply", timeout=15_000)
            check_page(ann, "case-collision", shots)
            for path in ("/notifications", "/dashboard", "/compare"):
                tom.goto(base + path)
                check_page(tom, path.strip("/"), shots)
        finally:
            browser.close()
