"""The main journeys in real headless Chromium (Debian's, driven by Playwright).

A member logs in; a case that arrived by email appears in the open inbox without a
reload; the member opens it and proposes a plan; the customer, in another browser
context with the portal link, counters; the member accepts; both mark themselves
satisfied; a handoff; a search. Every page is photographed (``test-artifacts/web/``),
checked with axe-core for serious accessibility violations, and shown inert against
script payloads in the customer's message, name and file name.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.browser import ARGS, CHROMIUM
from tests.servers import free_port
from tests.web.conftest import PASSWORD, Desk, make_desk

AXE = Path(__file__).with_name("axe.min.js")
ARTEFACTS = Path("test-artifacts") / "web"
XSS_NAME = '<img src=x onerror="window.__pwned=1">Dana'
XSS_TEXT = "<script>window.__pwned=1</script>Still no sync light. <b onmouseover=alert(1)>x</b>"
XSS_FILE = '"><svg onload="window.__pwned=1">.png'
pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("chromium"),
]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Desk]]:
    desk = make_desk(tmp_path / "northwind")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(desk.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        threading.Event().wait(0.01)
    yield f"http://127.0.0.1:{port}", desk
    server.should_exit = True
    thread.join(timeout=10)
    desk.services.close()
    desk.node.close()


def check_page(page: Any, name: str, shots: Path) -> None:
    """Photograph the page, run axe-core on it, and check no payload ran."""
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    page.add_script_tag(content=AXE.read_text())
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length,"
        " target: v.nodes[0].target.join(' ')}))"
    )
    serious = [v for v in found if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{name}: {serious}"
    assert page.evaluate("window.__pwned") is None, f"{name}: a script payload ran"


def test_member_and_customer_journey(served: tuple[str, Desk], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, desk = served
    shots = tmp_path / "screenshots"
    shots.mkdir()
    due = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT10:00")
    later = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT15:30")
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            # axe is injected as a script: the pages' CSP would refuse it otherwise
            member = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
            member.on("page", lambda pg: pg.on("dialog", lambda d: dialogs.append(d.message)))
            page = member.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{base}/")
            expect(page).to_have_url(re.compile(r"/login"))
            check_page(page, "login", shots)
            page.get_by_label("Username").fill("tom")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.goto(f"{base}/?view=open")
            expect(page.get_by_text("Nothing here.")).to_be_visible()

            # a customer writes by email while the inbox is open: it appears by itself
            case_id = desk.mail("Broadband down since Monday", XSS_TEXT, name=XSS_NAME)
            desk.mail(
                "Refund for October",
                "I was billed twice.",
                sender="lee@example.org",
                name="Lee Park",
            )
            row = page.get_by_role("link", name="Broadband down since Monday")
            expect(row).to_be_visible(timeout=15_000)
            check_page(page, "inbox", shots)

            # keyboard: j selects the first row, o opens it
            page.locator("body").press("j")
            page.keyboard.press("o")
            expect(page.get_by_role("heading", name="Broadband down since Monday")).to_be_visible()
            expect(page.locator(".timeline .text").first).to_contain_text(
                "<script>window.__pwned=1</script>Still no sync light."
            )

            # the member proposes a plan
            page.get_by_label("What", exact=True).fill("Engineer visit")
            page.get_by_label("Who does it").select_option(label="Northwind Broadband")
            page.locator("#act_due").fill(due)
            page.get_by_label("Name", exact=True).fill("Credit")
            page.get_by_label("Type", exact=True).select_option("money")
            page.get_by_label("Value", exact=True).fill("15.00")
            page.get_by_label("Currency (money)").fill("GBP")
            page.get_by_label("Note to the other parties").fill("An engineer will fix the line.")
            page.get_by_role("button", name="Propose").click()
            proposal = page.get_by_role("article", name=re.compile("Proposal by Northwind"))
            expect(proposal).to_contain_text("Engineer visit")
            expect(proposal).to_contain_text("Credit: 15.00 GBP")

            # a case link for the customer
            page.get_by_role("button", name=re.compile("Make a case link")).click()
            link = page.get_by_role("status").get_by_role("link").get_attribute("href")
            assert link and link.startswith("/portal/")
            check_page(page, "case", shots)

            # the customer, elsewhere, on a phone-sized screen: counters with a later time
            customer = browser.new_context(
                bypass_csp=True, viewport={"width": 390, "height": 844}, is_mobile=True
            )
            them = customer.new_page()
            them.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            them.goto(base + link)
            expect(them.locator(".contact")).to_contain_text("Tom Baker owns your case")
            them.set_input_files(
                "#upload",
                files=[{"name": XSS_FILE, "mimeType": "image/png", "buffer": b"\x89PNG fake"}],
            )
            them.get_by_label("What is it?").fill("Photo of the router")
            them.get_by_role("button", name="Add the file").click()
            expect(them.get_by_role("link", name=re.compile("svg onload"))).to_be_visible()
            them.get_by_role("link", name="Suggest a change").click()
            expect(them.get_by_label("What", exact=True)).to_have_value("Engineer visit")
            them.locator("#act_due").fill(later)
            them.get_by_label("Note to the other parties").fill("I am at work until 3 pm.")
            them.get_by_role("button", name="Send counter-proposal").click()
            expect(them.get_by_role("article", name=re.compile("Proposal by"))).to_contain_text(
                "Engineer visit"
            )
            check_page(them, "portal", shots)

            # the member's open case page shows the counter by itself (it reloads on a
            # change; a reload of our own here would race it), and accepts: version 1
            counter = page.get_by_role("article", name=re.compile("Proposal by"))
            expect(counter).to_contain_text("Counter-proposal", timeout=15_000)
            counter.get_by_role("button", name="Accept").click()
            expect(page.locator("#agreement")).to_contain_text("Version 1")
            expect(page.locator("#agreement")).to_contain_text("Credit")
            # resolving with the visit still open is refused, with the open work named
            page.get_by_role("button", name="Mark our side satisfied").click()
            expect(page.get_by_role("alert")).to_contain_text("work is still open")
            page.locator("#activities").get_by_role("button", name="Done").click()
            page.get_by_role("button", name="Mark our side satisfied").click()
            expect(page.get_by_role("button", name="We are satisfied")).to_be_visible()

            # the customer sees the agreement and is satisfied: the case is resolved
            them.reload()
            expect(them.locator("#agreement")).to_contain_text("Version 1")
            them.get_by_label("How did we do?").select_option("5")
            them.get_by_role("button", name="I am satisfied").click()
            expect(them.locator("#agreement")).to_contain_text("Resolved")
            check_page(them, "portal-resolved", shots)

            # the version history and its difference
            page.goto(f"{base}/cases/{case_id}?from=0&to=1#versions")
            expect(page.locator("table.diff")).to_contain_text("Engineer visit")
            check_page(page, "case-resolved", shots)

            # a handoff on the other case, and a search
            other = desk.mail(
                "Line noise", "Crackling on the line at night.", sender="sam@x.org", name="Sam Roe"
            )
            page.goto(f"{base}/cases/{other}")
            page.get_by_label("Hand off to").select_option(label="Ann Lee")
            page.get_by_label(re.compile("Note for them")).fill("Ann knows the exchange.")
            page.get_by_role("button", name="Hand off").click()
            expect(page.locator("#owner")).to_contain_text("Ann Lee")
            page.goto(f"{base}/?view=open")
            page.keyboard.press("/")
            page.keyboard.type("crackl")
            page.keyboard.press("Enter")
            expect(page.get_by_role("link", name="Line noise")).to_be_visible()
            expect(page.get_by_role("link", name="Refund for October")).to_have_count(0)
            check_page(page, "search", shots)

            # admin, as the admin
            admin = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
            boss = admin.new_page()
            boss.goto(f"{base}/login")
            boss.get_by_label("Username").fill("ann")
            boss.get_by_label("Password").fill(PASSWORD)
            boss.get_by_role("button", name="Log in").click()
            boss.goto(f"{base}/admin")
            expect(boss.get_by_role("heading", name="Members and roles")).to_be_visible()
            check_page(boss, "admin", shots)
        finally:
            browser.close()
    assert dialogs == [], f"a payload opened a dialog: {dialogs}"
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for shot in shots.iterdir():
        shutil.copy(shot, ARTEFACTS / shot.name)
