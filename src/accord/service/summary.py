"""A deterministic summary of a case for whoever takes it over.

Built from the case state and its latest events only — no model to download, the same
words for the same case on every node: who is involved, what is open, what is agreed,
what each side still has to do, and what was said last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from accord.core.activities import activity_open
from accord.core.events import Event
from accord.core.state import State
from accord.core.timefmt import parse_time

LAST_MESSAGES = 3


def summarize(state: State, latest: Sequence[Event]) -> str:
    """Plain text, a line per fact; ``latest`` is the newest events first (any count)."""
    opened = _when(state["opened"]["time"]) if state["opened"] else "?"
    lines = [f"Case: {state['title']} (opened {opened})"]
    parties = []
    for pid, party in state["parties"].items():
        owner = state.get("owners", {}).get(pid)
        how = "own node" if party["node"] else "through our portal"
        parties.append(f"{party['name']} ({how}" + (f", owner {owner['name']})" if owner else ")"))
    lines.append("Parties: " + "; ".join(parties))
    open_topics = [t["title"] for t in state["topics"].values() if t["state"] == "open"]
    lines.append("Open topics: " + ("; ".join(open_topics) if open_topics else "none"))
    terms = state["terms"]
    if terms["version"]:
        agreed = state["agreements"][-1]
        lines.append(
            f"Agreement: v{terms['version']}, accepted by "
            f"{', '.join(sorted(_name(state, p) for p in agreed['acceptances']))} "
            f"({_when(agreed['time'])})"
        )
        for key, item in sorted(terms["data"].items()):
            lines.append(f"  {item.get('label') or key}: {format_value(item['value'])}")
    else:
        lines.append("Agreement: none yet")
    pending = [p for p in state["proposals"].values() if p["state"] == "pending"]
    if pending:
        lines.append(
            f"Open proposals: {len(pending)} ("
            + "; ".join(
                f"by {_name(state, p['by'])}, {len(p['changes'])} change(s)" for p in pending
            )
            + ")"
        )
    todo = [
        (a.get("due") or "", a["title"], a["owner"], state["progress"][aid]["state"], a["kind"])
        for aid, a in terms["activities"].items()
        if activity_open(state, aid)
    ]
    if todo:
        lines.append("Still to do:")
        for due, title, owed_by, progress, kind in sorted(todo):
            label = "CALLBACK " if kind == "callback" else ""
            when = _when(due) if due else "no date"
            lines.append(f"  {label}{title} — {_name(state, owed_by)}, due {when} ({progress})")
    else:
        lines.append("Still to do: nothing agreed is open")
    if state["resolved"]:
        lines.append("Resolved: every party is satisfied")
    elif state["satisfied"]:
        lines.append(
            "Satisfied so far: " + ", ".join(sorted(_name(state, p) for p in state["satisfied"]))
        )
    messages = [e for e in latest if e.type == "message.posted"][:LAST_MESSAGES]
    if messages:
        lines.append("Last messages:")
        for event in reversed(messages):
            text = " ".join(event.body["text"].split())
            lines.append(
                f"  {_when(event.time)} {event.author.member}: "
                f"{text[:200]}{'…' if len(text) > 200 else ''}"
            )
    return "\n".join(lines)


def _when(moment: str) -> str:
    """A time of the log (UTC) as people read it: ``Tue 03 Dec 2026 10:42 UTC``. UTC on
    every node, so the summary's words stay the same wherever it is made."""
    try:
        return parse_time(moment).strftime("%a %d %b %Y %H:%M UTC")
    except ValueError:
        return moment


def _name(state: State, party: str) -> str:
    """A party's name rather than its slug."""
    found = state["parties"].get(party)
    return found["name"] if found else party


def format_value(value: dict[str, Any]) -> str:
    """A typed value as one line of text."""
    if value["type"] == "money":
        return f"{value['amount']} {value['currency']}" + (
            f"/{value['per']}" if value.get("per") and value["per"] != "once" else ""
        )
    if value["type"] == "file":
        return f"{value['name']} ({value['size']} bytes)"
    return str(value["value"])
