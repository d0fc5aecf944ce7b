"""Issue 19, "What it must show": the broadband story of ../shared/SCENARIOS.md played in
real headless Chromium from both sides at once — Tom Baker at Northwind on a desktop, Priya
Shah in her portal on a phone (390x844).

On the way: two topics; two proposals on one version, Priya's counter of the first crossed
by her acceptance of the second, proposed again from her phone and accepted by Tom (no work
lost); a callback Tom promises on the phone, whose reminder job exists at once; resolving
with open work refused, then resolved once the work is done and the topics are closed; a
reply from Priya after resolution that reopens the case and tells Tom; and Priya's signed
copy read as a page and as a PDF whose text is extracted and checked (pypdf).

Every page is photographed into ``test-artifacts/web/story-*.png`` and checked with
axe-core (no serious or critical violation) as in ``test_browser.py``."""

from __future__ import annotations

import io
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from accord.store.tables import jobs
from tests.browser import ARGS, CHROMIUM, reload_live
from tests.web.conftest import PASSWORD, Desk
from tests.web.test_browser import ARTEFACTS, check_page, served

__all__ = ["served"]  # the fixture: a desk served by uvicorn on loopback
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("chromium")]


def test_the_broadband_story_from_both_sides(served: tuple[str, Desk], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, desk = served
    shots = tmp_path / "story"
    shots.mkdir()
    now = desk.services.now()
    switch_by = (now + timedelta(days=7)).strftime("%Y-%m-%dT10:00")
    call_at = (now + timedelta(days=1)).strftime("%Y-%m-%dT15:00")
    case_id = desk.mail(
        "My contract is over",
        "My 12-month term has ended and you sell the same line for half. Can we talk?",
        sender="priya@example.com",
        name="Priya Shah",
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            desktop = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
            tom = desktop.new_page()
            tom.goto(f"{base}/login")
            tom.get_by_label("Username").fill("tom")
            tom.get_by_label("Password").fill(PASSWORD)
            tom.get_by_role("button", name="Log in").click()
            tom.goto(f"{base}/cases/{case_id}")
            expect(tom.get_by_role("heading", name="My contract is over")).to_be_visible()

            # two topics, then two proposals on version 0
            for title in ("New price", "Contract term"):
                tom.get_by_label("Open a topic").fill(title)
                tom.get_by_role("button", name="Open topic").click()
                expect(tom.locator("#topics")).to_contain_text(title)
            form = tom.locator("#propose-form")
            form.get_by_label("What", exact=True).fill("Switch the tariff")
            form.get_by_label("Who does it").select_option(label="Northwind Broadband")
            form.locator("#act_due").fill(switch_by)
            form.get_by_label("Name", exact=True).fill("New price")
            form.get_by_label("Type", exact=True).select_option("money")
            form.get_by_label("Value", exact=True).fill("20.00")
            form.get_by_label("Currency (money)").fill("GBP")
            form.get_by_role("button", name="Propose").click()
            expect(tom.get_by_role("article", name=re.compile("Proposal by"))).to_have_count(1)
            form = tom.locator("#propose-form")
            form.get_by_label("Name", exact=True).fill("Contract term")
            form.get_by_label("Value", exact=True).fill("12 months")
            form.get_by_role("button", name="Propose").click()
            expect(tom.get_by_role("article", name=re.compile("Proposal by"))).to_have_count(2)
            tom.get_by_role("button", name=re.compile("Make a case link")).click()
            link = tom.get_by_role("status").get_by_role("link").get_attribute("href")
            assert link and link.startswith("/portal/")
            check_page(tom, "story-case", shots)

            # Priya, on her phone: counters the price, accepts the term — her counter is
            # crossed by the agreement she just made, and stays, with one action
            phone = browser.new_context(
                bypass_csp=True, viewport={"width": 390, "height": 844}, is_mobile=True
            )
            priya = phone.new_page()
            priya.goto(base + link)
            expect(priya.locator("#contact")).to_contain_text("Tom Baker")
            price = priya.get_by_role("article", name=re.compile("Proposal by")).filter(
                has_text="20.00"
            )
            price.get_by_role("link", name="Suggest a change").click()
            priya.get_by_label("Value", exact=True).fill("15.00")
            priya.get_by_label("Note to the other parties").fill("Half of what I pay, please.")
            priya.get_by_role("button", name="Send counter-proposal").click()
            term = priya.get_by_role("article", name=re.compile("Proposal by")).filter(
                has_text="12 months"
            )
            term.get_by_role("button", name="Accept").click()
            crossed = priya.get_by_role("article", name="Your earlier suggestion")
            expect(crossed).to_contain_text("crossed with version 1")
            expect(crossed).to_contain_text("15.00")
            assert priya.evaluate("document.documentElement.scrollWidth") <= 390
            check_page(priya, "story-portal-crossed", shots)
            crossed.get_by_role("button", name="Propose again on version 1").click()
            expect(priya.get_by_role("article", name="Your earlier suggestion")).to_have_count(0)

            # Tom sees it again, on version 1, and accepts: version 2 holds £15.00
            reload_live(tom)  # his case page also reloads itself on her change
            again = tom.get_by_role("article", name=re.compile("Proposal by Priya")).filter(
                has_text="15.00"
            )
            again.get_by_role("button", name="Accept").click()
            expect(tom.locator("#agreement")).to_contain_text("Version 2")
            expect(tom.locator("#agreement")).to_contain_text("15.00")

            # on the phone, Tom promises a call back: the reminder exists at once
            tom.locator("#promise summary").click()
            tom.get_by_label("What we promise").fill("Call Priya to confirm the switch")
            tom.locator("#promise-due").fill(call_at)
            tom.get_by_role("button", name="Promise now").click()
            expect(tom.locator("#activities")).to_contain_text("Call Priya to confirm the switch")
            with desk.node.db.read() as conn:
                reminders = conn.execute(
                    sa.select(sa.func.count()).where(
                        jobs.c.kind == "callback.remind",
                        jobs.c.status == "pending",
                        jobs.c.key.contains(case_id),
                    )
                ).scalar_one()
            assert reminders == 1

            # resolving with the work open is refused, with the work named
            tom.get_by_role("button", name="Mark our side satisfied").click()
            expect(tom.get_by_role("alert")).to_contain_text("work is still open")
            check_page(tom, "story-refused", shots)
            activities = tom.locator("#activities")
            while activities.get_by_role("button", name="Done").count():
                activities.get_by_role("button", name="Done").first.click()
                tom.wait_for_load_state()
            for title in ("New price", "Contract term"):
                tom.get_by_role("button", name=f"Close the topic {title}").click()
            tom.get_by_role("button", name="Mark our side satisfied").click()
            expect(tom.get_by_role("button", name="We are satisfied")).to_be_visible()

            priya.reload()
            priya.get_by_label("How did we do?").select_option("5")
            priya.get_by_role("button", name="I am satisfied").click()
            expect(priya.locator("#agreement")).to_contain_text("Resolved")

            # Priya writes again: the case reopens, and Tom is told
            priya.get_by_label("Write to us").fill("The line dropped again tonight.")
            priya.get_by_role("button", name="Send").click()
            expect(priya.locator("#conversation")).to_contain_text("dropped again")
            expect(priya.locator("#agreement")).not_to_contain_text("Resolved")
            tom_id = desk.services.members.by_username("tom").id
            told = [n["text"] for n in desk.services.ownership.notifications_for(tom_id)]
            assert any("open again" in text for text in told), told
            reload_live(tom)  # his case page also reloads itself on her change
            expect(tom.locator("#agreement")).not_to_contain_text("Resolved")

            # her signed copy: a readable page, and a PDF whose text says what was agreed
            priya.get_by_role("link", name="read it").click()
            expect(priya.locator("body")).to_contain_text("✓")
            expect(priya.locator("body")).to_contain_text("15.00")
            check_page(priya, "story-signed-copy", shots)
            priya.go_back()
            pdf_url = priya.get_by_role("link", name="PDF").get_attribute("href")
            assert pdf_url
            answer = priya.request.get(base + pdf_url)
            assert answer.ok and answer.headers["content-type"] == "application/pdf"
            text = "\n".join(
                page.extract_text() for page in PdfReader(io.BytesIO(answer.body())).pages
            )
            for needle in ("My contract is over", "Northwind Broadband", "Priya", "15.00"):
                assert needle in text, (needle, text[:2000])
        finally:
            browser.close()
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for shot in shots.iterdir():
        shutil.copy(shot, ARTEFACTS / shot.name)
