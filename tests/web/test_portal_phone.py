"""Issue 19, item 7: the portal on a phone, in plain words, in the customer's language.

The first screen is who looks after the customer and what waits for them; the
conversation reads like a chat with every event in a customer's sentence (one for each
event type of the core); "Ask for a change" is one text box with the full form under
"More options"; a new party joins only after the customer confirms they understand it
will see everything; every text goes through the gettext catalogues (German as the
second language), and the catalogue leaves nothing untranslated. One Chromium test at
390 by 844 checks the order of the first screen, that nothing scrolls sideways, axe-core,
and the German page.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient

from accord.core.bodies import EVENT_TYPES, check_body, check_change
from accord.core.crypto import NodeKey
from accord.core.state import empty_state
from accord.service.negotiation import Actor
from accord.web.i18n import LOCALE_DIR, accepted, choose, languages
from accord.web.plain import SENTENCES, Words, change_sentence, quote, sentence
from tests.browser import ARGS, CHROMIUM
from tests.clocks import START
from tests.servers import free_port
from tests.web.conftest import Desk, make_desk
from tests.web.test_negotiation_pages import OFFER, pending, portal_of
from tests.web.test_pages import login

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).with_name("axe.min.js")
ARTEFACTS = Path("test-artifacts") / "web"  # docs/screenshots/web-portal*.png come from here
ZONE = ZoneInfo("Europe/London")
SECOND = "de"
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
KEY = NodeKey.generate().public
SHA = "sha256:" + "ab" * 32
WHEN = START.isoformat().replace("+00:00", "Z")
DUE = "2026-11-26T15:00:00Z"

# A case between a supplier and a hosted customer, with ids that must never be shown.
STATE: dict[str, Any] = empty_state(SHA)
STATE["title"] = "Broadband down"
STATE["parties"] = {
    "nw-supplier-x": {"name": "Northwind Broadband", "kind": "organisation", "node": KEY},
    "dana-party-x": {"name": "Dana Whitfield", "kind": "person", "hosted_by": KEY},
}
STATE["topics"] = {"billing-x": {"title": "Billing", "state": "open"}}
STATE["terms"]["activities"] = {
    "visit-slug-x": {"title": "Engineer visit", "owner": "nw-supplier-x", "kind": "task"}
}
STATE["terms"]["data"] = {"credit-slug-x": {"label": "Credit", "value": {"type": "text"}}}
STATE["progress"] = {"visit-slug-x": {"state": "agreed"}}
SLUGS = ("nw-supplier-x", "dana-party-x", "billing-x", "visit-slug-x", "credit-slug-x")
CHANGE = {"op": "activity.put", "activity": "visit-slug-x", "title": "Engineer visit"}

# One body of every event type of the core (each checked by the core's own shape check).
SAMPLES: dict[str, dict[str, Any]] = {
    "case.opened": {
        "title": "Broadband down",
        "nonce": "n1",
        "parties": [
            {
                "id": "nw-supplier-x",
                "name": "Northwind Broadband",
                "kind": "organisation",
                "node": KEY,
            },
        ],
    },
    "message.posted": {
        "text": "No sync light.",
        "attachments": [{"type": "file", "sha256": "cd" * 32, "name": "router.png", "size": 3}],
    },
    "topic.opened": {"topic": "billing-x", "title": "Billing"},
    "topic.closed": {"topic": "billing-x"},
    "data.set": {
        "key": "credit-slug-x",
        "label": "Credit",
        "value": {"type": "money", "amount": "40.00", "currency": "GBP"},
    },
    "activity.updated": {"activity": "visit-slug-x", "state": "done", "note": "All fixed."},
    "proposal.made": {
        "base": 0,
        "changes": [
            {**CHANGE, "owner": "nw-supplier-x", "kind": "task", "due": DUE},
            {
                "op": "data.put",
                "key": "credit-slug-x",
                "label": "Credit",
                "value": {"type": "money", "amount": "25.00", "currency": "GBP"},
            },
        ],
        "note": "Wednesday, with a credit.",
    },
    "proposal.accepted": {"proposal": SHA},
    "proposal.rejected": {"proposal": SHA, "reason": "Too late in the day."},
    "proposal.withdrawn": {"proposal": SHA},
    "activity.committed": {
        "activity": "call-slug-x",
        "title": "Call back",
        "owner": "nw-supplier-x",
        "kind": "callback",
        "due": DUE,
    },
    "party.satisfied": {"version": 1, "rating": 5},
    "case.reopened": {"reason": "Dana Whitfield wrote by email"},
    "status.set": {"label": "Waiting for parts"},
    "owner.named": {"name": "Sara Lind"},
}


def event(kind: str, party: str, member: str = "Tom Baker") -> dict[str, Any]:
    return {
        "id": SHA,
        "type": kind,
        "time": WHEN,
        "author": {"member": member, "party": party, "via": "api"},
        "body": SAMPLES[kind],
    }


def shown(html: str) -> str:
    """The text a person sees: no tags, no attributes, no script."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_every_event_type_of_the_core_has_a_customer_sentence() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES) == set(SENTENCES)
    for kind, body in SAMPLES.items():
        check_body(kind, body)


@pytest.mark.parametrize("kind", EVENT_TYPES)
@pytest.mark.parametrize("party", ["dana-party-x", "nw-supplier-x"])
def test_each_sentence_is_plain_and_translated(kind: str, party: str) -> None:
    english = Words("en", ZONE, STATE, "dana-party-x")
    german = Words(SECOND, ZONE, STATE, "dana-party-x")
    said = sentence(event(kind, party), english)
    gesagt = sentence(event(kind, party), german)
    for text in (said, gesagt):
        assert text.strip() and text[-1] in ".:”“)", text
        assert "via" not in text and "api" not in text and "sha256" not in text, text
        assert not ISO_TIME.search(text) and "owner" not in text.lower(), text
        assert not any(slug in text for slug in SLUGS), text
    assert said != gesagt
    if party == "dana-party-x":
        assert said.startswith("You") or kind in ("case.reopened", "status.set"), said


def test_sentences_say_what_happened_in_the_customers_words() -> None:
    w = Words("en", ZONE, STATE, "dana-party-x")
    supplier = "nw-supplier-x"
    assert sentence(event("owner.named", supplier, "Accord"), w) == (
        "Sara Lind at Northwind Broadband now looks after your case."
    )
    assert sentence(event("activity.updated", supplier), w) == (
        "Tom Baker finished “Engineer visit”."
    )
    assert sentence(event("activity.committed", supplier), w) == (
        "Tom Baker promised to call you by Thu 26 Nov, 15:00."
    )
    assert sentence(event("proposal.made", supplier), w) == "Tom Baker suggested 2 changes."
    assert sentence(event("message.posted", "dana-party-x"), w) == "You wrote: (with 1 file)"
    assert quote(event("proposal.rejected", "dana-party-x")) == "Too late in the day."
    de = Words(SECOND, ZONE, STATE, "dana-party-x")
    assert sentence(event("activity.committed", supplier), de) == (
        "Tom Baker hat zugesagt, Sie bis Do., 26. Nov., 15:00 Uhr anzurufen."
    )
    assert sentence({**event("status.set", supplier), "type": "from.the.future"}, w) == (
        "The case was updated."
    )


def test_every_kind_of_change_reads_plainly() -> None:
    changes = [
        {**CHANGE, "owner": "nw-supplier-x", "kind": "callback", "due": DUE},
        {**CHANGE, "owner": "dana-party-x", "kind": "task"},
        {"op": "activity.remove", "activity": "visit-slug-x"},
        {
            "op": "data.put",
            "key": "credit-slug-x",
            "value": {"type": "money", "amount": "40.00", "currency": "GBP", "per": "month"},
        },
        {"op": "data.remove", "key": "credit-slug-x"},
        {
            "op": "party.add",
            "party": {
                "id": "fibrefix-x",
                "name": "FibreFix Ltd",
                "kind": "organisation",
                "hosted_by": KEY,
            },
        },
        {"op": "party.key", "party": "dana-party-x", "node": KEY},
    ]
    w = Words("en", ZONE, STATE, "dana-party-x")
    said = []
    for i, change in enumerate(changes):
        check_change(change, f"changes[{i}]")
        said.append(change_sentence(change, w))
    assert said == [
        "Northwind Broadband calls you back by Thu 26 Nov, 15:00.",
        "You do “Engineer visit”.",
        "“Engineer visit” is cancelled.",
        "Credit: £40.00 a month.",
        "“Credit” is taken out of the agreement.",
        "FibreFix Ltd joins your case.",
        "You keep your own copy of the case from now on.",
    ]
    german = [change_sentence(c, Words(SECOND, ZONE, STATE, "dana-party-x")) for c in changes]
    assert german[3] == "Credit: 40,00\u00a0£ pro Monat."
    assert all(a != b for a, b in zip(said, german, strict=True))


def test_the_language_comes_from_the_switch_the_cookie_or_the_browser() -> None:
    assert SECOND in languages() and languages()[0] == "en"
    assert accepted("fr-CH, fr;q=0.9, de;q=0.8, en;q=0.7, *;q=0.5") == ["fr", "fr", "de", "en"]
    assert accepted("en;q=0.2, de-AT") == ["de", "en"]
    assert accepted("de;q=0, x;q=oops") == []
    assert choose(None, None, "fr-CH, de;q=0.8, en;q=0.7") == "de"
    assert choose(None, None, None) == "en"
    assert choose(None, "de", "en") == "de"
    assert choose("EN", "de", "de") == "en"
    assert choose("xx", None, "de") == "de"


def case_with_offer(desk: Desk) -> tuple[str, TestClient, str, str]:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    agent = TestClient(desk.app)
    csrf = login(agent)
    offer = {**OFFER, "csrf": csrf, "act_owner": desk.services.party_id}
    assert agent.post(f"/cases/{case_id}/propose", data=offer).status_code == 200
    return case_id, agent, csrf, portal_of(desk, agent, csrf, case_id)


def test_the_first_screen_is_who_looks_after_me_and_what_waits_for_me(desk: Desk) -> None:
    case_id, _agent, _csrf, link = case_with_offer(desk)
    page = TestClient(desk.app).get(link)
    assert page.status_code == 200 and page.headers["Content-Language"] == "en"
    html = page.text
    order = [html.index(f'id="{part}"') for part in ("contact", "waiting", "conversation")]
    assert order == sorted(order)
    assert order[-1] < html.index('id="ask"') < html.index('id="agreement"')
    text = shown(html)
    assert "Tom Baker owns your case" in text and "Your direct line:" in text
    waiting = shown(html[order[1] : order[2]])
    assert "Northwind Broadband does “Engineer visit” by Wed 2 Dec, 10:00." in waiting
    assert "Credit: £25.00." in waiting and "Accept" in waiting
    # the conversation: plain sentences, the customer's own words on the right
    assert re.search(r'<li class="bubble mine">\s*<p class="who">You ', html)
    assert "Tom Baker at Northwind Broadband now looks after your case." in text
    assert "Tom Baker suggested 2 changes." in text
    state = desk.services.negotiation.state(case_id)
    for internal in ("via api", "via email", "as owner", "sha256", *state["parties"]):
        assert internal not in text, internal
    assert not ISO_TIME.search(text)
    # no keyboard-shortcut help for members on the customer's page
    assert 'id="shortcuts"' not in html


def test_ask_for_a_change_is_one_box_and_the_form_is_under_more_options(desk: Desk) -> None:
    case_id, agent, _csrf, link = case_with_offer(desk)
    customer = TestClient(desk.app)
    html = customer.get(link).text
    more = re.search(r'<details id="propose" class="more"( open)?>', html)
    assert more and more.group(1) is None  # closed until asked for
    assert html.index('id="change-text"') < more.start() < html.index('id="propose-form"')
    (offer,) = pending(desk, case_id)
    countering = customer.get(f"{link}?counter={offer}").text
    assert '<details id="propose" class="more" open>' in countering
    assert 'value="Engineer visit"' in countering
    asked = customer.post(
        link + "/change",
        data={"text": "Could the engineer come after 3 pm?"},
        follow_redirects=False,
    )
    assert asked.status_code == 303
    state = desk.services.negotiation.state(case_id)
    assert state["topics"]["change-request"]["state"] == "open"
    (posted,) = [
        e
        for e in desk.services.negotiation.cases.timeline(case_id, limit=20)
        if e.type == "message.posted" and e.body.get("topic") == "change-request"
    ]
    assert posted.author.for_party and posted.author.via == "portal"
    assert posted.body["text"] == "Could the engineer come after 3 pm?"
    # the members see an open change request; the customer sees it in plain words
    workspace = agent.get(f"/cases/{case_id}").text
    assert "Change request" in workspace and "Could the engineer come after 3 pm?" in workspace
    theirs = shown(customer.get(link).text)
    assert "You asked for a change." in theirs and "Change requests" in theirs
    # a second request goes into the same open topic
    customer.post(link + "/change", data={"text": "And a credit, please."})
    assert desk.services.negotiation.state(case_id)["topics"]["change-request"]["state"] == "open"
    # an empty request is refused with the text box kept
    refused = customer.post(link + "/change", data={"text": "   "})
    assert refused.status_code == 400 and "Write what you would like us to change." in refused.text


def test_a_new_party_joins_only_when_the_customer_knows_what_it_will_see(desk: Desk) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    agent = TestClient(desk.app)
    csrf = login(agent)
    link = portal_of(desk, agent, csrf, case_id)
    n = desk.services.negotiation
    fibrefix = {
        "id": "fibrefix",
        "name": "FibreFix Ltd",
        "kind": "organisation",
        "node": NodeKey.generate().public,
    }
    n.propose(
        Actor(member="Tom Baker", via="web"),
        case_id,
        [{"op": "party.add", "party": fibrefix}],
        note="FibreFix do our line repairs.",
    )
    (pid,) = pending(desk, case_id)
    customer = TestClient(desk.app)
    html = customer.get(link).text
    text = shown(html)
    assert "FibreFix Ltd would join your case." in text
    assert "sees its whole history" in text and "including phone numbers" in text
    assert "FibreFix Ltd keeps its own copy of the case on its own system." in text
    assert re.search(r'<input type="checkbox" name="understood" value="yes" required>', html)
    assert "Accept and let FibreFix Ltd join" in text
    # accepting without the confirmation is refused, and nothing is accepted
    blind = customer.post(f"{link}/proposals/{pid}/accept")
    assert blind.status_code == 400
    assert "confirm that you understand they will see everything" in blind.text
    customer_party = next(p for p, v in n.state(case_id)["parties"].items() if v.get("hosted_by"))
    assert customer_party not in n.state(case_id)["proposals"][pid]["accepted_by"]
    knowing = customer.post(
        f"{link}/proposals/{pid}/accept", data={"understood": "yes"}, follow_redirects=False
    )
    assert knowing.status_code == 303
    assert customer_party in n.state(case_id)["proposals"][pid]["accepted_by"]


def test_what_the_customer_promised_is_waiting_with_its_one_action(desk: Desk) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    agent = TestClient(desk.app)
    csrf = login(agent)
    link = portal_of(desk, agent, csrf, case_id)
    n = desk.services.negotiation
    customer_party = next(p for p, v in n.state(case_id)["parties"].items() if v.get("hosted_by"))
    photo = {**OFFER, "csrf": csrf, "act_owner": customer_party, "act_title": "Send a photo"}
    photo.update(data_label="", data_value="", data_currency="")
    agent.post(f"/cases/{case_id}/propose", data=photo)
    (pid,) = pending(desk, case_id)
    customer = TestClient(desk.app)
    customer.post(f"{link}/proposals/{pid}/accept")
    assert n.state(case_id)["terms"]["version"] == 1
    html = customer.get(link).text
    waiting = html[html.index('id="waiting"') : html.index('id="conversation"')]
    assert "Send a photo" in waiting and "You said you would" in waiting
    (aid,) = n.state(case_id)["terms"]["activities"]
    assert f"/activities/{aid}/done" in waiting
    done = customer.post(f"{link}/activities/{aid}/done", follow_redirects=False)
    assert done.status_code == 303
    assert n.state(case_id)["progress"][aid]["state"] == "done"
    after = shown(customer.get(link).text)
    assert "You finished “Send a photo”." in after and "Nothing is waiting for you." in after


def test_the_portal_in_german(desk: Desk) -> None:
    case_id, agent, _csrf, link = case_with_offer(desk)
    customer = TestClient(desk.app)
    page = customer.get(link, headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert page.headers["Content-Language"] == "de" and '<html lang="de">' in page.text
    text = shown(page.text)
    for german in (
        "Wer sich um Ihren Fall kümmert",
        "Tom Baker ist für Ihren Fall zuständig",
        "Wartet auf Sie",
        "Northwind Broadband erledigt „Engineer visit“ bis Mi., 2. Dez., 10:00 Uhr.",
        "Credit: 25,00 £.",
        "Unterhaltung",
        "Tom Baker hat 2 Änderungen vorgeschlagen.",
        "Um eine Änderung bitten",
        "Weitere Möglichkeiten",
        "Vorschlagen",
        "Zum Inhalt springen",
    ):
        assert german in text, german
    for english in ("Waiting for you", "Conversation", "Ask for a change", "Skip to content"):
        assert english not in text, english
    # the switch wins over the browser and is kept in a cookie
    switched = customer.get(f"{link}?lang=en", headers={"Accept-Language": "de"})
    assert switched.headers["Content-Language"] == "en"
    assert "accord_lang=en" in switched.headers["set-cookie"]
    kept = customer.get(link, headers={"Accept-Language": "de"})
    assert kept.headers["Content-Language"] == "en" and "Waiting for you" in kept.text
    assert customer.get(f"{link}?lang=de").headers["Content-Language"] == "de"
    # a refusal the portal words itself is in the customer's language too
    refused = customer.post(link + "/change", data={"text": " "})
    assert "Schreiben Sie, was wir ändern sollen." in refused.text
    gone = TestClient(desk.app).get("/portal/not-a-token", headers={"Accept-Language": "de"})
    assert gone.status_code == 401 and "Dieser Link zu Ihrem Fall ist ungültig." in gone.text
    # the members' pages stay in English
    assert '<html lang="en">' in agent.get(f"/cases/{case_id}").text


def test_the_catalogue_is_current_and_has_no_untranslated_customer_text(tmp_path: Path) -> None:
    extracted = tmp_path / "messages.pot"
    CommandLineInterface().run(
        [
            "pybabel",
            "-q",
            "extract",
            "-F",
            str(ROOT / "pyproject.toml"),
            "--no-location",
            "-o",
            str(extracted),
            str(ROOT / "src" / "accord" / "web"),
        ]
    )
    with extracted.open("rb") as fresh, (LOCALE_DIR / "messages.pot").open("rb") as kept:
        ids = {m.id for m in read_po(fresh) if m.id}
        assert ids == {m.id for m in read_po(kept) if m.id}, "run `make messages`"
    assert len(ids) > 150
    for lang in languages()[1:]:
        with (LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
            catalog = read_po(po, locale=lang)
        assert {m.id for m in catalog if m.id} == ids, lang
        for message in catalog:
            if not message.id:
                continue
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            assert all(strings) and not message.fuzzy, (lang, message.id)
            assert not list(message.check(catalog)), (lang, message.id)


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


@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_on_a_phone_first_screen_no_sideways_scroll_axe_and_german(
    served: tuple[str, Desk],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, desk = served
    case_id, agent, csrf, link = case_with_offer(desk)
    n = desk.services.negotiation
    fibrefix = {
        "id": "fibrefix",
        "name": "FibreFix Ltd",
        "kind": "organisation",
        "hosted_by": n.key.public,
    }
    n.propose(
        Actor(member="Tom Baker", via="web"), case_id, [{"op": "party.add", "party": fibrefix}]
    )
    long_word = "https://example.net/" + "very-long-path-" * 12
    agent.post(f"/cases/{case_id}/reply", data={"csrf": csrf, "text": f"See {long_word}"})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            phone = browser.new_context(
                bypass_csp=True,
                viewport={"width": 390, "height": 844},
                is_mobile=True,
                locale="en-GB",
            )
            page = phone.new_page()
            page.goto(base + link)

            def check(name: str) -> None:
                ARTEFACTS.mkdir(parents=True, exist_ok=True)
                shot = ARTEFACTS / f"portal-phone-{name.replace(' ', '-')}.png"
                page.screenshot(path=str(shot), full_page=False)
                tops = page.evaluate(
                    "['contact', 'waiting', 'conversation'].map("
                    "id => document.getElementById(id).getBoundingClientRect().top)"
                )
                assert tops == sorted(tops) and tops[1] < 844, (name, tops)
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, (name, width)
                page.add_script_tag(content=AXE.read_text())
                found = page.evaluate(
                    "async () => (await axe.run(document, {resultTypes: ['violations']}))"
                    ".violations.map(v => ({id: v.id, impact: v.impact,"
                    " target: v.nodes[0].target.join(' ')}))"
                )
                assert found == [], (name, found)

            expect(page.locator("#contact")).to_contain_text("Tom Baker owns your case")
            expect(page.locator("#waiting")).to_contain_text("FibreFix Ltd would join your case")
            check("first screen")
            page.get_by_text("More options").click()
            expect(page.locator("#propose-form")).to_be_visible()
            check("more options open")
            page.get_by_role("link", name="Deutsch").click()
            expect(page.locator("html")).to_have_attribute("lang", "de")
            expect(page.locator("#waiting h2")).to_have_text("Wartet auf Sie")
            expect(page.locator("#contact")).to_contain_text("Tom Baker ist für Ihren Fall")
            check("German")
            page.reload()
            expect(page.locator("#conversation h2")).to_have_text("Unterhaltung")
        finally:
            browser.close()
