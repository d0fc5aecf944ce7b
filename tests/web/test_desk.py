"""The agent's desk (issue 20, items 1, 3, 4, 5): an inbox made for triage, a workspace
built around the conversation, human names, a readable swimlane.

Server-side on SQLite and PostgreSQL, then one member's triage in Chromium (needs-reply
view, a canned reply, a search from another view) with axe-core.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.channels.email.mailboxes import Mailbox
from accord.node import Node
from accord.service import settings
from accord.service.canned import CannedReplies
from accord.service.errors import Forbidden, Invalid
from accord.service.negotiation import Actor
from accord.store.tables import case_refs
from accord.web import swimlane
from tests.browser import ARGS, CHROMIUM
from tests.clocks import START, FakeClock, TickingClock, cheap_passwords
from tests.servers import free_port
from tests.web.conftest import PASSWORD, Desk
from tests.web.test_browser import check_page
from tests.web.test_pages import csrf_of, login


def make(root: Path, url: str | None, clock: Any) -> Desk:
    node = Node.init(root, name="Northwind Broadband", database=url)
    app = create_app(node, now=clock, passwords=cheap_passwords(), rate_limit=0)
    services = app.state.services
    services.members.create("tom", PASSWORD, role="agent", display_name="Tom Baker")
    services.members.create("ann", PASSWORD, role="admin", display_name="Ann Lee")
    services.members.create("lena", PASSWORD, role="lead", display_name="Lena Ortiz")
    services.ownership.add_team("Broadband")
    services.ownership.set_profile("tom", team="Broadband", availability="online")
    services.ownership.set_profile("ann", team="Broadband", availability="away")
    services.mail.mailboxes.add(
        Mailbox(
            id=0,
            address="support@northwind.example",
            display_name="Northwind",
            smtp=None,
            imap=None,
        )
    )
    return Desk(node, app, services)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def desk(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[Desk]:
    made = make(tmp_path / "northwind", database_url, clock)
    yield made
    made.services.close()
    made.node.close()


def number(desk: Desk, case_id: str) -> int:
    with desk.node.db.read() as conn:
        found = conn.execute(
            sa.select(case_refs.c.number).where(case_refs.c.case_id == case_id)
        ).scalar()
    assert found is not None
    return int(found)


def own(desk: Desk, case_id: str, username: str) -> None:
    """Make ``username`` the case's owner (routing may have chosen them already)."""
    owner = desk.services.ownership.owner(case_id)
    if owner is None or owner.member.username != username:
        ann = desk.services.members.by_username("ann")
        desk.services.ownership.assign(case_id, username, by=ann)


def row_of(html: str, title: str) -> str:
    """The inbox row of the case called ``title``."""
    rows = re.findall(r"<tr data-row.*?</tr>", html, re.S)
    found = [r for r in rows if title in r]
    assert found, f"no row for {title!r}"
    return found[0]


def flash_of(html: str) -> str:
    found = re.search(r'<p class="notice flash" role="status">([^<]*)</p>', html)
    assert found, "no message after the action"
    return found.group(1)


def test_the_inbox_shows_who_waits_for_a_reply_unread_and_a_preview(
    desk: Desk, clock: FakeClock
) -> None:
    settings.write(desk.node.db, "sla", {"default": {"first_response": 60, "next_response": 120}})
    case_id = desk.mail("Broadband down", "No sync light since Monday.\n\nDana")
    tom = desk.services.members.by_username("tom")
    owner = desk.services.ownership.owner(case_id)
    if owner is None or owner.member.id != tom.id:
        own(desk, case_id, "tom")
    client = TestClient(desk.app)
    login(client)
    page = client.get("/?view=needs").text
    row = row_of(page, "Broadband down")
    assert "needs reply" in row and 'class="badge unread"' in row
    assert "No sync light since Monday. Dana" in row  # one line of the last message
    assert "Dana Whitfield" in row and "<td>email</td>" in row
    assert "reply by" in row  # the response target is the nearest thing due

    # opening the case reads it; answering takes it out of needs-reply
    n = number(desk, case_id)
    case = client.get(f"/cases/{n}")
    assert case.status_code == 200
    assert 'class="badge unread"' not in row_of(client.get("/?view=mine").text, "Broadband down")
    sent = client.post(
        f"/cases/{n}/reply",
        data={"text": "An engineer is booked.", "channel": "email", "csrf": csrf_of(case.text)},
    )
    assert flash_of(sent.text) == "Sent to Dana Whitfield by email."
    assert "Broadband down" not in client.get("/?view=needs").text
    mine = row_of(client.get("/?view=mine").text, "Broadband down")
    assert "We:</span> An engineer is booked." in mine and "needs reply" not in mine

    # the customer writes again (in the same thread): waiting for us, unread again
    clock.advance(minutes=5)
    desk.mail(f"Re: Broadband down [Accord #{n}]", "Thanks, which day?")
    row = row_of(client.get("/?view=needs").text, "Broadband down")
    assert "Thanks, which day?" in row and 'class="badge unread"' in row
    # marking read and unread in bulk
    csrf = csrf_of(client.get("/").text)
    client.post("/inbox/bulk", data={"csrf": csrf, "action": "read", "case": str(n)})
    assert 'class="badge unread"' not in row_of(client.get("/?view=needs").text, "Broadband")
    client.post("/inbox/bulk", data={"csrf": csrf, "action": "unread", "case": str(n)})
    assert 'class="badge unread"' in row_of(client.get("/?view=needs").text, "Broadband")


def test_a_portal_case_has_its_customer_and_channel(desk: Desk) -> None:
    """A case opened as the demo opens them (a hosted customer writing in the portal, no
    customer record, no channel message) still names its customer and channel."""
    n = desk.services.negotiation
    opened = n.open_case(
        Actor(member="Tom Baker", via="web"),
        title="Router swap",
        party_id=desk.services.party_id,
        party_name="Northwind Broadband",
        party_url=None,
        customer={"name": "Ivan Petrov"},
    )
    state = n.state(opened.case_id)
    customer = next(p for p, v in state["parties"].items() if v.get("hosted_by"))
    n.post_message(
        Actor(member="Ivan Petrov", via="portal", party=customer, session="s1"),
        opened.case_id,
        "The new router has no light.",
    )
    client = TestClient(desk.app)
    login(client)
    row = row_of(client.get("/?view=open").text, "Router swap")
    assert "<td>Ivan Petrov</td>" in row and "<td>the portal</td>" in row
    assert "needs reply" in row


def test_search_looks_in_every_case_and_the_views_filter_it(desk: Desk) -> None:
    first = desk.mail("Billing question", "Ivan Petrov here, about my invoice.")
    desk.mail("Router", "Nothing about invoices.", sender="lee@example.org", name="Lee Park")
    own(desk, first, "ann")
    client = TestClient(desk.app)
    login(client)
    found = client.get("/?q=Petrov").text  # from any view: every case
    assert "Billing question" in found and "Router" not in row_of(found, "Billing")
    assert 'value="all" selected' in found
    mine = client.get("/?view=mine&q=Petrov").text  # a view is a filter
    assert "Billing question" not in mine and "Search all cases" in mine
    assert "Billing question" in client.get("/?view=all&q=petr").text  # a prefix
    assert "Billing question" in client.get("/?view=open&q=invoice").text
    snippet = row_of(client.get("/?view=open&q=invoice").text, "Billing question")
    assert "[invoice]" in snippet


def test_sortable_columns_and_saved_views(desk: Desk) -> None:
    desk.mail("Zebra crossing", "z", sender="zoe@example.org", name="Zoe Adams")
    desk.mail("Apple pie", "a", sender="bob@example.org", name="Bob Young")
    client = TestClient(desk.app)
    login(client)
    by_title = client.get("/?view=open&sort=title").text
    assert by_title.index("Apple pie") < by_title.index("Zebra crossing")
    backwards = client.get("/?view=open&sort=-title").text
    assert backwards.index("Zebra crossing") < backwards.index("Apple pie")
    assert 'aria-sort="descending"' in backwards
    by_customer = client.get("/?view=open&sort=customer").text
    assert by_customer.index("Bob Young") < by_customer.index("Zoe Adams")

    csrf = csrf_of(by_title)
    saved = client.post(
        "/views",
        data={"csrf": csrf, "name": "Alphabetical", "query": "view=open&sort=title&evil=1"},
    )
    assert flash_of(saved.text) == "Saved the view “Alphabetical”."
    assert '<a href="/?view=open&amp;sort=title" class="saved">Alphabetical</a>' in saved.text
    other = TestClient(desk.app)
    login(other, "ann")
    assert "Alphabetical" not in other.get("/").text  # per member
    view_id = re.search(r'action="/views/(\d+)/delete"', saved.text)
    assert view_id
    assert client.post(f"/views/{view_id.group(1)}/delete", data={"csrf": "x"}).status_code == 403
    client.post(f"/views/{view_id.group(1)}/delete", data={"csrf": csrf})
    assert "Alphabetical" not in client.get("/").text


def test_bulk_hand_off_and_close_with_a_reason(desk: Desk) -> None:
    first = desk.mail("Line noise", "Crackles.")
    second = desk.mail("Slow speeds", "2 Mbit only.", sender="lee@example.org", name="Lee Park")
    for case_id in (first, second):
        own(desk, case_id, "tom")
    client = TestClient(desk.app)
    login(client)
    page = client.get("/?view=mine").text
    cases = [str(number(desk, first)), str(number(desk, second))]
    refused = client.post(
        "/inbox/bulk",
        data={"csrf": "forged", "action": "handoff", "username": "ann", "note": "x", "case": cases},
    )
    assert refused.status_code == 403
    missing = client.post(
        "/inbox/bulk",
        data={"csrf": csrf_of(page), "action": "handoff", "username": "ann", "case": cases},
    )
    assert flash_of(missing.text) == "A hand-off needs a note for the next owner."
    done = client.post(
        "/inbox/bulk",
        data={
            "csrf": csrf_of(page),
            "action": "handoff",
            "username": "ann",
            "note": "Ann knows these lines.",
            "case": cases,
            "back": "view=mine",
        },
    )
    assert flash_of(done.text) == "Handed off 2 cases to Ann Lee."
    assert all(desk.services.ownership.owner(c).member.username == "ann" for c in (first, second))
    # an agent may not assign (a lead's override): each refusal is named
    assign = client.post(
        "/inbox/bulk",
        data={"csrf": csrf_of(page), "action": "assign", "username": "tom", "case": cases[:1]},
    )
    assert "Not done: #" in flash_of(assign.text) and "lead" in flash_of(assign.text)
    admin = TestClient(desk.app)
    csrf = login(admin, "ann")
    closed = admin.post(
        "/inbox/bulk",
        data={"csrf": csrf, "action": "close", "case": cases, "reason": ""},
    )
    assert flash_of(closed.text) == "Closing needs a reason (it is recorded)."
    closed = admin.post(
        "/inbox/bulk",
        data={"csrf": csrf, "action": "close", "case": cases, "reason": "Fixed by the exchange"},
    )
    assert flash_of(closed.text) == "Closed 2 cases."
    state = desk.services.negotiation.state(first)
    assert desk.services.party_id in state["satisfied"]


def test_cases_by_number_human_names_and_the_workspace(desk: Desk, clock: FakeClock) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    client = TestClient(desk.app)
    login(client)
    n = number(desk, case_id)
    old = client.get(f"/cases/{case_id}?from=0", follow_redirects=False)
    assert old.status_code == 301 and old.headers["location"] == f"/cases/{n}?from=0"
    prefix = client.get(f"/cases/{case_id[7:19]}", follow_redirects=False)
    assert prefix.headers["location"] == f"/cases/{n}"
    assert client.get("/cases/999999").status_code == 404
    page = client.get(f"/cases/{n}").text
    assert f'<h1><span class="num">#{n}</span> Broadband down</h1>' in page
    assert f"<code>{case_id}</code>" in page  # the signed id, one click away
    # the conversation comes before the agreement; the reply box before the propose form
    assert page.index('id="conversation"') < page.index('id="agreement"')
    assert page.index('id="reply"') < page.index('id="propose"')
    # only the channels this customer used, by name; the hand-off has no default member
    channels = re.search(r'<select id="reply-channel".*?</select>', page, re.S)
    assert channels
    assert re.findall(r">([^<]+)</option>", channels.group(0)) == [
        "email (last used)",
        "the case (web chat and portal)",
    ]
    assert "whatsapp" not in channels.group(0).lower()
    assert '<option value="" selected disabled>Choose a member…</option>' in page
    assert "· by email ·" in page  # the message's channel by its name

    # a plan with an activity, proposed by Tom: his name on the proposal; its title
    # (not its slug) in the timeline once done
    csrf = csrf_of(page)
    due = (START + timedelta(days=1)).astimezone(ZoneInfo("Europe/London"))
    proposed = client.post(
        f"/cases/{n}/promise",
        data={
            "csrf": csrf,
            "act_title": "Call Dana back",
            "act_kind": "callback",
            "act_due": due.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert flash_of(proposed.text) == "Promised: Call Dana back. The customer is told."
    state = desk.services.negotiation.state(case_id)
    activity = next(iter(state["terms"]["activities"]))
    done = client.post(
        f"/cases/{n}/activities/{activity}/progress", data={"csrf": csrf, "state": "done"}
    )
    assert flash_of(done.text) == "Marked done."
    assert "marked “Call Dana back” done" in done.text
    desk.services.negotiation.propose(
        Actor(member="Tom Baker", via="web"),
        case_id,
        [{"op": "data.put", "key": "credit", "value": {"type": "text", "value": "£5"}}],
    )
    page = client.get(f"/cases/{n}").text
    assert re.search(r"Proposal by <strong>Tom Baker</strong> \(Northwind Broadband\)", page)

    # times in the member's zone and clock
    saved = client.post(
        "/settings", data={"csrf": csrf, "zone": "America/New_York", "clock": "12h"}
    )
    assert flash_of(saved.text) == "Times are now shown in America/New_York, 12-hour (2:30 PM)."
    page = client.get(f"/cases/{n}").text
    assert re.search(r"\d\d:\d\d [AP]M", page)
    wrong = client.post("/settings", data={"csrf": csrf, "zone": "Mars/Olympus", "clock": "12h"})
    assert wrong.status_code == 400 and "unknown time zone" in wrong.text


def test_canned_replies_are_kept_by_leads_and_filled_for_the_case(desk: Desk) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    own(desk, case_id, "tom")
    canned = CannedReplies(desk.node.db, now=desk.services.negotiation.now)
    with pytest.raises(Forbidden):
        canned.save("Hi", "Hello", by=desk.services.members.by_username("tom"))
    with pytest.raises(Invalid, match=r"unknown placeholder \{custmer\}"):
        canned.save("Hi", "Hello {custmer}", by=desk.services.members.by_username("lena"))

    agent = TestClient(desk.app)
    csrf = login(agent)
    assert agent.get("/admin").status_code == 403  # an agent keeps none
    assert (
        agent.post("/admin/canned", data={"csrf": csrf, "title": "x", "body": "y"}).status_code
        == 403
    )

    lead = TestClient(desk.app)
    csrf = login(lead, "lena")
    admin = lead.get("/admin").text
    assert 'id="canned"' in admin and 'id="members"' not in admin
    made = lead.post(
        "/admin/canned",
        data={
            "csrf": csrf,
            "title": "Engineer booked",
            "body": "Hello {customer}, {owner} here: your case is #{case_number}.",
        },
    )
    assert made.status_code == 200 and "Engineer booked" in made.text
    assert (
        lead.post("/admin/canned", data={"csrf": "forged", "title": "x", "body": "y"}).status_code
        == 403
    )

    page = agent.get(f"/cases/{number(desk, case_id)}").text
    n = number(desk, case_id)
    assert f'data-text="Hello Dana Whitfield, Tom Baker here: your case is #{n}."' in page


def test_the_case_link_is_copied_or_sent_to_the_customer(desk: Desk) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.")
    client = TestClient(desk.app)
    csrf = login(client)
    n = number(desk, case_id)
    state = desk.services.negotiation.state(case_id)
    party = next(p for p, v in state["parties"].items() if v.get("hosted_by"))
    made = client.post(f"/cases/{n}/portal-link", data={"csrf": csrf, "party": party})
    url = re.search(r'id="case-link-url" readonly value="([^"]+)"', made.text)
    assert url and url.group(1).startswith("http://testserver/portal/")
    assert 'data-copy-from="case-link-url"' in made.text
    sent = client.post(f"/cases/{n}/portal-link/send", data={"csrf": csrf, "party": party})
    assert flash_of(sent.text) == "Sent the case link to Dana Whitfield by email."
    last = desk.services.negotiation.cases.timeline(case_id, limit=1)[0]
    assert "http://testserver/portal/" in last.body["text"]
    forged = client.post(f"/cases/{n}/portal-link/send", data={"csrf": "x", "party": party})
    assert forged.status_code == 403


def test_the_swimlane_keeps_labels_whole_apart_and_dated() -> None:
    now = START
    titles = [
        "Engineer visit to replace the line card",
        "Call back about the visit",
        "Send the router",
    ]
    state: dict[str, Any] = {
        "parties": {"n": {"name": "Northwind Broadband"}, "d": {"name": "Dana Whitfield"}},
        "terms": {
            "activities": {
                f"a{i}": {
                    "title": t,
                    "owner": "n",
                    "kind": "task",
                    "due": (now + timedelta(hours=20 + i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
                for i, t in enumerate(titles)
            }
        },
        "progress": {f"a{i}": {"state": "agreed"} for i in range(3)},
        "proposals": {},
    }
    svg = str(swimlane.render(state, now, ZoneInfo("Europe/London")))
    for t in titles:  # room enough: no label is cut
        assert f">{t}</text>" in svg
    # close together, yet no two labels (nor a label and another mark) overlap
    spans = []
    for x, y, end, text in re.findall(
        r'<g class="mark agreed">.*?<text x="([\d.]+)" y="([\d.]+)" font-size="12" '
        r'fill="[^"]+"( text-anchor="end")?>([^<]+)</text>',
        svg,
    ):
        width = len(text) * swimlane.CHAR_W
        left = float(x) - width if end else float(x)
        spans.append((float(y), left, left + width))
    assert len(spans) == 3
    for i, (y1, a1, b1) in enumerate(spans):
        for y2, a2, b2 in spans[i + 1 :]:
            assert y1 != y2 or b1 <= a2 or b2 <= a1, spans
    # each due time on the axis
    for i in range(3):
        due = (now + timedelta(hours=20 + i)).astimezone(ZoneInfo("Europe/London"))
        assert f">{due:%d %b %H:%M}</text>" in svg
    # and the same as a list for a phone
    assert '<ul class="swim-list"' in svg and "Engineer visit to replace the line card" in svg
    twelve = str(
        swimlane.render(
            state, now, ZoneInfo("Europe/London"), fmt=lambda p: p.replace("%H:%M", "%I:%M %p")
        )
    )
    assert re.search(r"\d\d:00 [AP]M</text>", twelve)


# -- one member's triage in Chromium ------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[str, Desk]]:
    desk = make(tmp_path / "northwind", database_url, TickingClock())
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
def test_a_members_triage_in_the_browser(served: tuple[str, Desk], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, desk = served
    shots = tmp_path / "shots"
    shots.mkdir()
    waiting = desk.mail("Broadband down since Monday", "Still no sync light.")
    desk.mail(
        "Invoice copy",
        "Ivan Petrov: please send my invoice.",
        name="Ivan Petrov",
        sender="ivan@example.org",
    )
    own(desk, waiting, "tom")
    CannedReplies(desk.node.db, now=desk.services.negotiation.now).save(
        "Engineer booked",
        "Hello {customer}, an engineer is booked. {owner}",
        by=desk.services.members.by_username("lena"),
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(f"{base}/login")
            page.get_by_label("Username").fill("tom")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.get_by_role("link", name=re.compile("^Needs reply")).click()
            row = page.locator("tr[data-row]", has_text="Broadband down since Monday")
            expect(row).to_contain_text("needs reply")
            expect(row).to_contain_text("Still no sync light.")
            check_page(page, "desk-needs-reply", shots)

            row.get_by_role("link", name=re.compile("Broadband down since Monday")).click()
            expect(page).to_have_url(re.compile(r"/cases/\d+$"))
            page.get_by_label("Canned reply").select_option(label="Engineer booked")
            expect(page.get_by_label("Reply to Dana Whitfield")).to_have_value(
                "Hello Dana Whitfield, an engineer is booked. Tom Baker"
            )
            check_page(page, "desk-case", shots)
            page.get_by_role("button", name="Send reply").click()
            expect(page.locator("p.flash[role=status]")).to_have_text(
                "Sent to Dana Whitfield by email."
            )

            # from My cases, a search looks in every case
            page.goto(f"{base}/?view=mine")
            page.get_by_label("Search cases and messages").fill("Petrov")
            page.get_by_role("button", name="Search").click()
            expect(page.locator("tr[data-row]", has_text="Invoice copy")).to_be_visible()
            check_page(page, "desk-search", shots)
            page.goto(f"{base}/?view=needs")
            expect(page.locator("tr[data-row]", has_text="Broadband down")).to_have_count(0)

            # on a phone: the swimlane is a list, nothing scrolls sideways
            phone = browser.new_context(
                bypass_csp=True, viewport={"width": 390, "height": 844}, is_mobile=True
            )
            small = phone.new_page()
            small.goto(f"{base}/login")
            small.get_by_label("Username").fill("tom")
            small.get_by_label("Password").fill(PASSWORD)
            small.get_by_role("button", name="Log in").click()
            small.goto(f"{base}/cases/{number(desk, waiting)}")
            width = small.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, width
            expect(small.locator(".swim-wide")).to_be_hidden()
            check_page(small, "desk-case-phone", shots)
            small.goto(f"{base}/?view=open")
            width = small.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, width
            check_page(small, "desk-inbox-phone", shots)
        finally:
            browser.close()
