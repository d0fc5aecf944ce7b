"""Read models of a case for people and programs: the contract at a glance.

Built from the materialised state and the latest events; nothing is re-folded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accord.core.events import Event
from accord.core.state import State, open_work

ACTIVITY_STATES = ("proposed", "agreed", "in_progress", "done", "cancelled")


def author_party(state: State, event: Event) -> str | None:
    """The party an event speaks for, as the case's parties now stand."""
    if event.author.for_party is not None:
        return event.author.for_party
    for pid, party in state["parties"].items():
        if party["node"] == event.author.node:
            return pid
    return None


def event_summary(state: State, event: Event) -> dict[str, Any]:
    author: dict[str, Any] = {"member": event.author.member, "party": author_party(state, event)}
    if event.author.via:
        author["via"] = event.author.via
    return {
        "id": event.id,
        "type": event.type,
        "time": event.time,
        "depth": event.depth,
        "author": author,
        "body": event.body,
    }


def activities_by_state(state: State) -> dict[str, list[dict[str, Any]]]:
    """Every activity grouped by state; ``proposed`` ones come from pending proposals."""
    groups: dict[str, list[dict[str, Any]]] = {name: [] for name in ACTIVITY_STATES}
    for aid, progress in state["progress"].items():
        agreed = state["terms"]["activities"].get(aid)
        item = {
            "activity": aid,
            **(agreed or {}),
            "state": progress["state"],
            "note": progress.get("note"),
            "updated": progress.get("time"),
        }
        if agreed is None:
            item.update(title=progress.get("title"), owner=progress.get("owner"))
        groups[progress["state"]].append(item)
    for pid, proposal in state["proposals"].items():
        if proposal["state"] != "pending":
            continue
        for change in proposal["changes"]:
            if change["op"] == "activity.put":
                fields = {k: v for k, v in change.items() if k not in ("op", "activity")}
                groups["proposed"].append(
                    {"activity": change["activity"], **fields, "state": "proposed", "proposal": pid}
                )
    for items in groups.values():
        items.sort(key=lambda a: (a.get("due") or "9999", a["activity"]))
    return groups


def case_view(state: State, timeline: list[Event]) -> dict[str, Any]:
    """The case as the API and pages show it."""
    agreements = state["agreements"]
    current = agreements[-1] if agreements else None
    return {
        "case": state["case"],
        "title": state["title"],
        "opened": state["opened"],
        "template": state["template"],
        "parties": state["parties"],
        "topics": state["topics"],
        "status": state["status"]["label"] if state["status"] else None,
        "resolved": state["resolved"],
        "reopened": state["reopened"],
        "satisfied": state["satisfied"],
        "agreement": {
            "version": state["terms"]["version"],
            "data": state["terms"]["data"],
            "activities": state["terms"]["activities"],
            "proposal": current["proposal"] if current else None,
            "acceptances": current["acceptances"] if current else {},
            "time": current["time"] if current else None,
        },
        "agreements": [{k: v for k, v in a.items() if k != "terms"} for a in agreements],
        "open_proposals": {
            pid: p
            for pid, p in state["proposals"].items()
            if p["state"] == "pending" and p["base"] == state["terms"]["version"]
        },
        "crossed_proposals": crossed_proposals(state),
        "open_work": open_work(state),
        "superseded": state.get("superseded", []),
        "activities": activities_by_state(state),
        "info": state["info"],
        "messages": state["messages"],
        "events": state["events"],
        "evidence": state["evidence"],
        "equivocations": state["equivocations"],
        "timeline": [event_summary(state, e) for e in timeline],
    }


def crossed_proposals(state: State) -> dict[str, dict[str, Any]]:
    """Proposals another agreement crossed, not yet proposed again or withdrawn: each
    with ``crossed_with`` (the version agreed on its base) and its author, who can
    propose it again on the current version in one step."""
    version = state["terms"]["version"]
    out: dict[str, dict[str, Any]] = {}
    for pid, p in state["proposals"].items():
        stale = p["state"] == "stale" or (p["state"] == "pending" and p["base"] != version)
        if stale and p["base"] < version and not p.get("reproposed_as"):
            out[pid] = {**p, "crossed_with": p.get("crossed_with") or p["base"] + 1}
    return out


def agreement_diff(
    before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """What changed between two versions of the terms (``{"data", "activities"}``): one
    entry per data item or activity added, removed or changed, with both sides."""
    old = before or {"data": {}, "activities": {}}
    changes: list[dict[str, Any]] = []
    for section in ("data", "activities"):
        was, now = old.get(section, {}), after.get(section, {})
        for key in sorted(set(was) | set(now)):
            if key not in was:
                kind = "added"
            elif key not in now:
                kind = "removed"
            elif was[key] != now[key]:
                kind = "changed"
            else:
                continue
            changes.append(
                {
                    "section": "data" if section == "data" else "activity",
                    "key": key,
                    "change": kind,
                    "before": was.get(key),
                    "after": now.get(key),
                    "fields": sorted(
                        f
                        for f in set(was.get(key) or {}) | set(now.get(key) or {})
                        if (was.get(key) or {}).get(f) != (now.get(key) or {}).get(f)
                    ),
                }
            )
    return changes
