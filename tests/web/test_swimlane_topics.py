"""Issue 19, item 3: topics are named in the swimlane — an agreed or proposed activity
shows the title of the topic it belongs to, in the drawing, its description and the list
shown on a phone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from accord.web import swimlane
from tests.clocks import START


def test_an_activity_names_its_topic_in_the_swimlane() -> None:
    due = (START + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    state: dict[str, Any] = {
        "parties": {"n": {"name": "Northwind Broadband"}, "p": {"name": "Priya Shah"}},
        "topics": {
            "new-price": {"title": "New price", "state": "open"},
            "term": {"title": "Contract term", "state": "closed"},
        },
        "terms": {
            "activities": {
                "switch": {"title": "Switch the tariff", "owner": "n", "kind": "task",
                           "due": due, "topic": "new-price"},
                "plain": {"title": "Send the router", "owner": "n", "kind": "task", "due": due},
            }
        },
        "progress": {"switch": {"state": "agreed"}, "plain": {"state": "agreed"}},
        "proposals": {
            "p1": {"state": "pending", "changes": [
                {"op": "activity.put", "activity": "confirm", "title": "Confirm the address",
                 "owner": "p", "kind": "task", "due": due, "topic": "term"},
            ]},
        },
    }  # fmt: skip
    svg = str(swimlane.render(state, START, ZoneInfo("Europe/London")))
    assert "Switch the tariff · New price" in svg  # the label in the drawing
    assert "Confirm the address · Contract term" in svg  # a proposed one too
    assert "(task, topic New price)" in svg  # the description a screen reader reads
    assert "· New price</span>" in svg  # the list shown on a phone
    assert "Send the router · " not in svg  # no topic, nothing added
