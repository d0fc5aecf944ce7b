"""Issue 20, "What it must show": a member's day with a colleague, in two real browsers.

Ann (admin) and Tom (agent) are logged in at once. Ann hands a case to Tom from its page:
Tom's header count of unread notifications goes up by one by itself on his open inbox (the pages'
poll), and his notifications page names the hand-off. Then Ann sets up a mailbox and a
webhook from the admin page, without the command line. (The triage itself — needs-reply,
a canned reply, search from any view — is ``test_desk.py``'s browser test; the collision
notice is ``test_desk_admin.py``'s.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import ARGS, CHROMIUM
from tests.web.conftest import PASSWORD, Desk
from tests.web.test_browser import check_page
from tests.web.test_desk import number, own
from tests.web.test_desk_admin import served

__all__ = ["served"]  # the fixture: a desk served by uvicorn on loopback
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("chromium")]


def test_a_hand_off_reaches_a_colleague_live_and_admin_needs_no_command_line(
    served: tuple[str, Desk], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    base, desk = served
    case_id = desk.mail("Router lights", "All red since the storm.")
    own(desk, case_id, "ann")  # Ann has it (routing may have given it to Tom)
    shots = tmp_path / "shots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            pages = {}
            for username in ("ann", "tom"):
                context = browser.new_context(
                    bypass_csp=True, viewport={"width": 1280, "height": 900}
                )
                page = context.new_page()
                page.goto(f"{base}/login")
                page.get_by_label("Username").fill(username)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Log in").click()
                page.wait_for_url(f"{base}/")
                pages[username] = page
            ann, tom = pages["ann"], pages["tom"]
            tom.goto(f"{base}/?view=open")
            count = tom.locator("[data-unread]")
            before = int(count.inner_text().split()[0]) if count.is_visible() else 0

            # Ann hands the case to Tom: his open inbox shows it without a reload
            ann.goto(f"{base}/cases/{number(desk, case_id)}")
            ann.get_by_label("Hand off to").select_option(label="Tom Baker")
            ann.get_by_label(re.compile("Note for them")).fill("The storm took the cabinet.")
            ann.get_by_role("button", name="Hand off").click()
            expect(ann.locator("p.flash[role=status]")).to_be_visible()
            expect(count).to_have_text(re.compile(rf"^{before + 1}\b"), timeout=20_000)
            tom.locator("a.notices").click()
            expect(tom.locator("main")).to_contain_text("Router lights")
            check_page(tom, "day-notifications", shots)

            # Ann adds a mailbox and a webhook from the admin page
            ann.goto(f"{base}/admin")
            ann.get_by_text("Add a mailbox").click()
            ann.locator("#mb-address").fill("billing@northwind.example")
            ann.locator("#mb-name").fill("Northwind Billing")
            ann.get_by_role("button", name="Add mailbox").click()
            expect(ann.locator("main")).to_contain_text("billing@northwind.example")
            assert desk.services.mail.mailboxes.for_recipient("billing@northwind.example")
            ann.locator("#wh-url").fill("http://127.0.0.1:9/accord")
            ann.locator("input[name=events][value='message.received']").check()
            ann.locator("input[name=allow_private]").check()
            ann.get_by_role("button", name="Add webhook").click()
            expect(ann.locator("#new-secret")).to_be_visible()
            [hook] = desk.services.webhooks.all()
            assert hook.url == "http://127.0.0.1:9/accord"
            check_page(ann, "day-admin", shots)
        finally:
            browser.close()
