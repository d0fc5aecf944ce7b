"""Proposals from HTML forms: the fields of the proposal form into the log's changes.

One form serves members and customers, for a new proposal and for a counter: an activity
(add or change: title, owner party, kind, due time in the business calendar's zone), a
data item (text, number, money or date), and an activity to cancel. ``prefill`` turns a
proposal back into the form's fields, so a counter starts from what it answers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from accord.core.bodies import SLUG
from accord.core.timefmt import format_time, parse_time

VALUE_TYPES = ("text", "number", "money", "date")
KINDS = ("task", "callback")


class FormError(ValueError):
    """A field the person must correct; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def slug(text: str, fallback: str = "item") -> str:
    """A short id from a title: ``"Engineer visit"`` → ``engineer-visit``."""
    flat = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    made = re.sub(r"[^a-z0-9]+", "-", flat).strip("-")[:48]
    return made if made and SLUG.fullmatch(made) else fallback


def _get(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def local_time(value: str, zone: ZoneInfo) -> str:
    """An ``<input type=datetime-local>`` value in ``zone`` as the log's UTC time."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise FormError("act_due", "give the due time as a date and a time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return format_time(moment.replace(microsecond=0))


def changes_from_form(form: Mapping[str, Any], zone: ZoneInfo) -> list[dict[str, Any]]:
    """The changes the form asks for; ``FormError`` when it asks for nothing or for
    something malformed."""
    changes: list[dict[str, Any]] = []
    title = _get(form, "act_title")
    if title:
        owner = _get(form, "act_owner")
        if not owner:
            raise FormError("act_owner", "say which party does it")
        kind = _get(form, "act_kind") or "task"
        if kind not in KINDS:
            raise FormError("act_kind", "an activity is a task or a callback")
        change: dict[str, Any] = {
            "op": "activity.put",
            "activity": _get(form, "act_id") or slug(title, "activity"),
            "title": title,
            "owner": owner,
            "kind": kind,
        }
        due = _get(form, "act_due")
        if due:
            change["due"] = local_time(due, zone)
        elif kind == "callback":
            raise FormError("act_due", "a callback needs a due time")
        topic = _get(form, "act_topic")
        if topic:
            change["topic"] = topic
        changes.append(change)
    label = _get(form, "data_label")
    raw = _get(form, "data_value")
    if label or raw:
        if not (label and raw):
            raise FormError("data_value", "a data item needs a name and a value")
        kind = _get(form, "data_type") or "text"
        value: dict[str, Any]
        if kind == "text":
            value = {"type": "text", "value": raw}
        elif kind == "number":
            value = {"type": "number", "value": raw}
        elif kind == "money":
            currency = _get(form, "data_currency").upper() or "EUR"
            value = {"type": "money", "amount": raw, "currency": currency}
        elif kind == "date":
            value = {"type": "date", "value": raw}
        else:
            raise FormError("data_type", f"a data item is one of {', '.join(VALUE_TYPES)}")
        changes.append(
            {
                "op": "data.put",
                "key": _get(form, "data_key") or slug(label, "item"),
                "label": label,
                "value": value,
            }
        )
    removed = _get(form, "remove_activity")
    if removed:
        changes.append({"op": "activity.remove", "activity": removed})
    if not changes:
        raise FormError("act_title", "the proposal changes nothing: add an activity or a data item")
    return changes


def promise_from_form(form: Mapping[str, Any], party: str, zone: ZoneInfo) -> dict[str, Any]:
    """The activity a "promise now" form commits: what, kind, due time and topic, owned
    by ``party`` (this node's own)."""
    if not _get(form, "act_title"):
        raise FormError("act_title", "say what you promise")
    (change,) = changes_from_form(
        {
            "act_title": _get(form, "act_title"),
            "act_owner": party,
            "act_kind": _get(form, "act_kind") or "callback",
            "act_due": _get(form, "act_due"),
            "act_topic": _get(form, "act_topic"),
        },
        zone,
    )
    change.pop("op")
    return change


def topic_id(state: Mapping[str, Any], title: str) -> str:
    """A new topic's id from its title, distinct from the case's existing topics."""
    base = slug(title, "topic")[:40]
    made, n = base, 1
    while made in state["topics"]:
        n += 1
        made = f"{base}-{n}"
    return made


def prefill(proposal: Mapping[str, Any] | None, zone: ZoneInfo) -> dict[str, str]:
    """The form's fields for a counter to ``proposal`` (its first activity and item)."""
    fields: dict[str, str] = {}
    if not proposal:
        return fields
    for change in proposal["changes"]:
        if change["op"] == "activity.put" and "act_title" not in fields:
            fields.update(
                act_id=change["activity"],
                act_title=change["title"],
                act_owner=change["owner"],
                act_kind=change["kind"],
            )
            if change.get("topic"):
                fields["act_topic"] = change["topic"]
            if change.get("due"):
                local = parse_time(change["due"]).astimezone(zone)
                fields["act_due"] = local.strftime("%Y-%m-%dT%H:%M")
        elif change["op"] == "data.put" and "data_label" not in fields:
            value = change["value"]
            fields.update(
                data_key=change["key"],
                data_label=change.get("label") or change["key"],
                data_type=value["type"] if value["type"] in VALUE_TYPES else "text",
                data_value=str(value.get("amount", value.get("value", ""))),
                data_currency=str(value.get("currency", "")),
            )
        elif change["op"] == "activity.remove":
            fields["remove_activity"] = change["activity"]
    return fields


def edit_item(state: Mapping[str, Any], key: str) -> dict[str, str]:
    """The form's fields to change the agreed data item ``key`` (a proposal, like any
    change to the terms)."""
    item = state["terms"]["data"].get(key)
    if item is None:
        return {}
    return prefill({"changes": [{"op": "data.put", "key": key, **item}]}, ZoneInfo("UTC"))


def submit_proposal(
    negotiation: Any, actor: Any, case_id: str, form: Mapping[str, str], zone: ZoneInfo
) -> None:
    """Propose what the form asks for, or counter ``counter_of`` with it (members' page
    and portal alike)."""
    changes = changes_from_form(form, zone)
    note = form.get("note", "").strip() or None
    if form.get("counter_of"):
        negotiation.counter(actor, case_id, form["counter_of"], changes, note=note)
    else:
        negotiation.propose(actor, case_id, changes, note=note)
