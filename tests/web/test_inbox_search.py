"""The inbox's views and the full-text index, on SQLite and on PostgreSQL: what is due
today, breached or waiting; search by any word of a title, message or note, prefixes,
other processes' writes, erasure of notes; and the read models the pages draw."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from accord.api.app import create_app
from accord.node import Node
from accord.service.negotiation import Actor, Negotiation
from accord.service.views import agreement_diff
from accord.store.search import Search, words
from accord.web import swimlane
from accord.web.forms import FormError, changes_from_form, prefill
from tests.clocks import cheap_passwords

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
TOM = Actor(member="Tom Baker", via="web")


@pytest.fixture
def app_node(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    node = Node.init(tmp_path / "n", name="Northwind", database=database_url)
    clock = [NOW]
    app = create_app(node, rate_limit=0, now=lambda: clock[0], passwords=cheap_passwords())
    app.state.clock = clock
    services = app.state.services
    services.members.create("tom", "correct horse battery", role="agent", display_name="Tom Baker")
    yield node, app, services
    services.close()
    node.close()


def open_case(services, title: str, text: str) -> str:  # type: ignore[no-untyped-def]
    opened = services.negotiation.open_case(
        TOM,
        title=title,
        party_id=services.party_id,
        party_name="Northwind",
        party_url=None,
        customer={"name": "Dana Whitfield"},
    )
    services.negotiation.post_message(TOM, opened.case_id, text)
    tom = services.members.by_username("tom")
    services.ownership.take(opened.case_id, tom)
    return str(opened.case_id)


def test_search_finds_titles_messages_notes_and_forgets_erased_notes(app_node) -> None:  # type: ignore[no-untyped-def]
    node, _app, services = app_node
    first = open_case(services, "Broadband down", "Router HX-400 shows a red light")
    second = open_case(services, "Refund for October", "I was billed twice for Ünïcode")
    search = Search(node.db)
    assert [h.case_id for h in search.search("router red")] == [first]
    assert [h.case_id for h in search.search("refund")] == [second]
    assert [h.case_id for h in search.search("bille")] == [second]  # the last word: a prefix
    assert [h.case_id for h in search.search("unicode")] == [second]  # diacritics folded
    assert search.search("router refund") == []  # every word is needed
    assert search.search("   ") == [] and search.search("'\"*:&|!") == []
    # a second process (another Negotiation on the same database) writes: found too
    other = Negotiation(node.cases, node.key, now=lambda: NOW)
    other.post_message(TOM, first, "Engineer booked for Thursday")
    assert [h.case_id for h in search.search("thursday")] == [first]
    note = services.notes.add(second, "Tom Baker", "Customer prefers mornings")
    assert [h.case_id for h in search.search("mornings")] == [second]
    assert "[mornings]" in search.search("mornings")[0].snippet.lower()
    with node.db.write() as conn:
        search.forget_notes(conn, [second])
        conn.execute(
            __import__("sqlalchemy").text("DELETE FROM notes WHERE id = :i"), {"i": note.id}
        )
    assert search.search("mornings") == []
    assert search.catch_up() == 0  # nothing left to index, nothing indexed twice
    assert len(search.search("router")) == 1


def test_inbox_views_due_breached_waiting(app_node) -> None:  # type: ignore[no-untyped-def]
    _node, app, services = app_node
    inbox = app.state.inbox
    tom = services.members.by_username("tom")
    due_today = open_case(services, "Callback today", "Call me after lunch")
    overdue = open_case(services, "Promised yesterday", "Where is my engineer?")
    quiet = open_case(services, "Just a question", "How do I change my plan?")
    n = services.negotiation
    later = NOW + timedelta(days=1)
    for case_id, due in (
        (due_today, later + timedelta(hours=5)),
        (overdue, NOW + timedelta(hours=2)),
    ):
        made = n.propose(
            TOM,
            case_id,
            [
                {
                    "op": "activity.put",
                    "activity": "call",
                    "title": "Call back",
                    "owner": services.party_id,
                    "kind": "callback",
                    "due": due.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ],
        )
        customer = next(p for p, v in n.state(case_id)["parties"].items() if v.get("hosted_by"))
        n.accept(
            Actor(member="Dana", via="portal", party=customer, session="s"),
            case_id,
            made.event_ids[0],
        )
    app.state.clock[0] = later  # a day on: one callback is due today, the other overdue
    listed = {
        v: {r.case_id for r in inbox.list(v, member_id=tom.id)}
        for v in ("mine", "open", "due", "breached", "waiting", "resolved")
    }
    assert listed["mine"] == listed["open"] == {due_today, overdue, quiet}
    assert listed["due"] == {due_today, overdue}
    assert listed["breached"] == {overdue}
    assert listed["waiting"] == {due_today, overdue, quiet}  # our message was the last
    assert listed["resolved"] == set()
    customer = next(p for p, v in n.state(quiet)["parties"].items() if v.get("hosted_by"))
    n.post_message(Actor(member="Dana", via="portal", party=customer, session="s"), quiet, "Hello?")
    assert quiet not in {r.case_id for r in inbox.list("waiting", member_id=tom.id)}
    hits = inbox.list("open", member_id=tom.id, query="engineer")
    assert [r.case_id for r in hits] == [overdue] and hits[0].snippet
    assert inbox.counts(tom.id)["breached"] == 1
    with pytest.raises(ValueError):
        inbox.list("everything", member_id=tom.id)


def test_swimlane_draws_every_party_and_activity_by_state() -> None:
    state = {
        "parties": {
            "northwind": {"name": "Northwind"},
            "dana": {"name": "Dana <b>W</b>"},
        },
        "terms": {
            "activities": {
                "visit": {
                    "title": "Engineer visit",
                    "owner": "northwind",
                    "kind": "task",
                    "due": "2026-11-25T10:00:00Z",
                },
                "call": {
                    "title": "Call back",
                    "owner": "northwind",
                    "kind": "callback",
                    "due": "2026-11-23T10:00:00Z",
                },
                "photo": {"title": "Send a photo", "owner": "dana", "kind": "task"},
            }
        },
        "progress": {
            "visit": {"state": "agreed"},
            "call": {"state": "agreed"},
            "photo": {"state": "done"},
        },
        "proposals": {
            "p1": {
                "state": "pending",
                "changes": [
                    {
                        "op": "activity.put",
                        "activity": "refund",
                        "title": "Refund <script>",
                        "owner": "northwind",
                        "kind": "task",
                        "due": "2026-11-26T10:00:00Z",
                    }
                ],
            }
        },
    }
    svg = str(swimlane.render(state, NOW, ZoneInfo("Europe/London")))
    assert svg.count('class="mark ') == 4
    assert 'class="mark overdue"' in svg and 'class="mark proposed"' in svg
    assert 'class="mark done"' in svg and "no due time" in svg
    assert "<script>" not in svg and "Refund &lt;script&gt;" in svg
    assert "Dana &lt;b&gt;W&lt;/b&gt;" in svg
    assert "Northwind: Call back (callback), Mon 23 Nov 10:00, overdue" in svg


def test_agreement_diff_and_proposal_forms() -> None:
    v1 = {"data": {"credit": {"value": {"type": "text", "value": "a"}}}, "activities": {}}
    v2 = {
        "data": {"credit": {"value": {"type": "text", "value": "b"}}},
        "activities": {"visit": {"title": "Visit", "owner": "n", "kind": "task"}},
    }
    diff = agreement_diff(v1, v2)
    assert [(d["key"], d["change"]) for d in diff] == [("credit", "changed"), ("visit", "added")]
    assert diff[0]["fields"] == ["value"]
    assert agreement_diff(v2, v2) == []
    zone = ZoneInfo("Europe/Berlin")
    changes = changes_from_form(
        {
            "act_title": "Engineer visit",
            "act_owner": "northwind",
            "act_kind": "callback",
            "act_due": "2026-12-01T09:00",
            "data_label": "Credit",
            "data_type": "money",
            "data_value": "15.00",
            "data_currency": "eur",
        },
        zone,
    )
    assert changes[0]["due"] == "2026-12-01T08:00:00Z"  # Berlin is UTC+1 in December
    assert changes[0]["activity"] == "engineer-visit"
    assert changes[1]["value"] == {"type": "money", "amount": "15.00", "currency": "EUR"}
    back = prefill({"changes": changes}, zone)
    assert back["act_due"] == "2026-12-01T09:00" and back["data_value"] == "15.00"
    for bad, field in (
        ({}, "act_title"),
        ({"act_title": "x"}, "act_owner"),
        ({"data_label": "x"}, "data_value"),
        ({"act_title": "x", "act_owner": "n", "act_due": "soon"}, "act_due"),
    ):
        with pytest.raises(FormError) as err:
            changes_from_form(bad, zone)
        assert err.value.field == field
    assert words("Ref-12 ünï") == ["ref", "12", "uni"]
