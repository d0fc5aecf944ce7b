"""The agent's desk (issue 20, item 2): notifications in the pages — handoffs to me, a
party's new message on my case, mentions in internal notes — with the unread count in the
header and on ``/web/changes``, marked read with CSRF; and the collision notice: who else
has the case open or is typing a reply, kept in the database with a short TTL.

On SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accord.service.notes import mentioned
from accord.service.presence import PRESENCE_TTL, TYPING_TTL
from tests.clocks import START, FakeClock
from tests.web.conftest import Desk
from tests.web.test_desk import make, number, own
from tests.web.test_pages import csrf_of, login


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def desk(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[Desk]:
    made = make(tmp_path / "northwind", database_url, clock)
    yield made
    made.services.close()
    made.node.close()


def unread_in_header(html: str) -> int:
    found = re.search(r'<span class="count" data-unread( hidden)?>(\d+)<', html)
    assert found, "no unread count in the header"
    return int(found.group(2))


def test_mentions_are_usernames_not_addresses() -> None:
    assert mentioned("@tom can you call? cc @Lena. Mail ann@example.com") == ["tom", "lena"]
    assert mentioned("no one here, just @ and @x") == []


def test_handoffs_messages_and_mentions_reach_the_member_live_and_are_marked_read(
    desk: Desk, clock: FakeClock
) -> None:
    case_id = desk.mail("Broadband down", "No sync light since Monday.\n\nDana")
    own(desk, case_id, "ann")
    n = number(desk, case_id)
    for username in ("tom", "ann"):  # routing told them of the new case; start afresh
        desk.services.ownership.mark_all_read(desk.services.members.by_username(username).id)
    tom, ann = TestClient(desk.app), TestClient(desk.app)
    login(tom, "tom")
    ann_csrf = login(ann, "ann")
    page = tom.get("/").text
    assert unread_in_header(page) == 0 and '<a href="/notifications"' in page
    assert tom.get("/web/changes").json()["unread"] == 0

    # Ann hands the case to Tom from its page: Tom's count goes up on the next poll
    handed = ann.post(
        f"/cases/{n}/handoff",
        data={"username": "tom", "note": "Engineer booked Tuesday", "csrf": ann_csrf},
    )
    assert handed.status_code == 200, handed.text
    assert tom.get("/web/changes").json()["unread"] == 1
    listed = tom.get("/notifications").text
    assert unread_in_header(listed) == 1
    assert "Handed to you" in listed and f'href="/cases/{n}"' in listed
    assert "Engineer booked Tuesday" in listed

    # the customer writes again on Tom's case; Ann mentions @tom in a note
    clock.advance(minutes=3)
    desk.mail(f"Re: Broadband down [Accord #{n}]", "Which day exactly?")
    noted = ann.post(
        f"/cases/{n}/notes", data={"text": "@tom she prefers mornings", "csrf": ann_csrf}
    )
    assert noted.status_code == 200, noted.text
    unread = tom.get("/notifications?unread=1").text
    assert unread_in_header(unread) == 3
    assert "New on your case" in unread and "Which day exactly?" in unread
    assert "Mentioned you" in unread
    assert "Ann Lee mentioned you in a note on “Broadband down”: @tom she prefers mornings" in (
        unread
    )
    # nobody is told of their own mention, nor a member who does not exist
    ann.post(f"/cases/{n}/notes", data={"text": "@ann @nobody note to self", "csrf": ann_csrf})
    assert ann.get("/web/changes").json()["unread"] == 0

    # marking read needs the form's token; one, then all
    tom_csrf = csrf_of(unread)
    ids = re.findall(r'name="id" value="(\d+)"', unread)
    assert len(ids) == 3
    refused = tom.post("/notifications/read", data={"id": ids[0], "csrf": "forged"})
    assert refused.status_code == 403
    one = tom.post("/notifications/read", data={"id": ids[0], "csrf": tom_csrf})
    assert "Marked 1 notification read." in one.text
    assert unread_in_header(one.text) == 2
    # another member's notification is not theirs to mark
    ann.post("/notifications/read", data={"id": ids[1], "csrf": ann_csrf})
    assert tom.get("/web/changes").json()["unread"] == 2
    everything = tom.post("/notifications/read", data={"all": "1", "csrf": tom_csrf})
    assert "Marked 2 notifications read." in everything.text
    assert tom.get("/web/changes").json()["unread"] == 0
    assert "No unread notifications." in tom.get("/notifications?unread=1").text


def test_the_collision_notice_says_who_else_has_the_case_open_or_is_typing(
    desk: Desk, clock: FakeClock
) -> None:
    case_id = desk.mail("Router lights", "All red.")
    n = number(desk, case_id)
    tom, ann = TestClient(desk.app), TestClient(desk.app)
    tom_csrf, ann_csrf = login(tom, "tom"), login(ann, "ann")
    first = tom.get(f"/cases/{n}").text
    assert 'id="presence"' in first and "also has this case open" not in first
    seen = ann.get(f"/cases/{n}").text
    assert "Tom Baker also has this case open" in seen

    # Tom types a reply: Ann's next heartbeat says so; Tom's names Ann
    beat = tom.post(f"/cases/{n}/presence", data={"typing": "true", "csrf": tom_csrf})
    assert beat.json()["others"] == [
        {"name": "Ann Lee", "typing": False, "text": "Ann Lee also has this case open"}
    ]
    assert beat.headers["content-security-policy"].startswith("default-src 'self'")
    typing = ann.post(f"/cases/{n}/presence", data={"csrf": ann_csrf}).json()["others"]
    assert typing == [{"name": "Tom Baker", "typing": True, "text": "Tom Baker is typing a reply"}]

    # typing fades first, then presence; a member who leaves is gone at once
    clock.advance(seconds=TYPING_TTL.total_seconds() + 1)
    tom.post(f"/cases/{n}/presence", data={"csrf": tom_csrf})
    assert (
        ann.post(f"/cases/{n}/presence", data={"csrf": ann_csrf}).json()["others"][0]["typing"]
        is False
    )
    clock.advance(seconds=PRESENCE_TTL.total_seconds() + 1)
    assert ann.post(f"/cases/{n}/presence", data={"csrf": ann_csrf}).json()["others"] == []
    tom.post(f"/cases/{n}/presence", data={"csrf": tom_csrf})
    tom.post(f"/cases/{n}/presence", data={"leave": "true", "csrf": tom_csrf})
    assert ann.post(f"/cases/{n}/presence", data={"csrf": ann_csrf}).json()["others"] == []

    # the heartbeat needs the session and its token
    assert tom.post(f"/cases/{n}/presence", data={"csrf": "forged"}).status_code == 403
    anonymous = TestClient(desk.app).post(
        f"/cases/{n}/presence", data={"csrf": tom_csrf}, follow_redirects=False
    )
    assert anonymous.status_code in (303, 401)
