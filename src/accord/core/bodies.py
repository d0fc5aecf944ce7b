"""The shape of each event type's body: one checker per type in one registry.

Shape only — types, required and allowed fields, sizes. Whether the event is
*allowed* (author is a party, proposal still current, …) is ``rules``' business,
judged against the event's causal past.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from accord.core.crypto import is_event_id, is_public_key
from accord.core.errors import EventFormatError, UnknownEventType, ValueFormatError
from accord.core.timefmt import parse_time
from accord.core.values import check_value

SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
URL = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]{1,300}(/[\x21-\x7e]{0,1700})?")
PARTY_KINDS = ("organisation", "person")
PROGRESS_STATES = ("in_progress", "done")
ACTIVITY_KINDS = ("task", "callback")
MAX_TEXT = 100_000
MAX_CHANGES = 200


def _fields(
    body: Any, where: str, required: set[str], optional: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise EventFormatError(f"{where} must be an object")
    if missing := sorted(required - set(body)):
        raise EventFormatError(f"{where}.{missing[0]} is required")
    if extra := sorted(set(body) - required - set(optional)):
        raise EventFormatError(f"{where}.{extra[0]} is not allowed here")
    return body


def _text(value: Any, where: str, limit: int = 300, empty: bool = False) -> None:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise EventFormatError(f"{where} must be {'text' if empty else 'non-empty text'}")
    if len(value) > limit:
        raise EventFormatError(f"{where} must be at most {limit} characters")


def _slug(value: Any, where: str) -> None:
    if not isinstance(value, str) or not SLUG.fullmatch(value):
        raise EventFormatError(f"{where} must be a short id of a-z, 0-9, '.', '_' or '-'")


def _eid(value: Any, where: str) -> None:
    if not is_event_id(value):
        raise EventFormatError(f"{where} must be an event id (sha256:…)")


def _int(value: Any, where: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise EventFormatError(f"{where} must be an integer from {low} to {high}")


def _time(value: Any, where: str) -> None:
    try:
        parse_time(value)
    except ValueError as exc:
        raise EventFormatError(f"{where}: {exc}") from exc


def _value(value: Any, where: str) -> None:
    try:
        check_value(value, where)
    except ValueFormatError:
        raise
    except EventFormatError as exc:  # pragma: no cover - check_value raises ValueFormatError
        raise ValueFormatError(where, str(exc)) from exc


def check_party(party: Any, where: str) -> None:
    _fields(party, where, {"id", "name", "kind"}, {"node", "hosted_by", "url"})
    _slug(party["id"], f"{where}.id")
    _text(party["name"], f"{where}.name", 200)
    if party["kind"] not in PARTY_KINDS:
        raise EventFormatError(f"{where}.kind must be one of {', '.join(PARTY_KINDS)}")
    node, host = party.get("node"), party.get("hosted_by")
    if (node is None) == (host is None):
        raise EventFormatError(f"{where} needs exactly one of node (own key) or hosted_by")
    if not is_public_key(node if node is not None else host):
        raise EventFormatError(f"{where}.{'node' if node else 'hosted_by'} is not a public key")
    if "url" in party:
        url = party["url"]
        if node is None:
            raise EventFormatError(f"{where}.url: only a party with its own node has a URL")
        if not isinstance(url, str) or not URL.fullmatch(url):
            raise EventFormatError(f"{where}.url must be an http(s) URL of at most 2000 characters")


def _case_opened(b: Any) -> None:
    _fields(b, "body", {"title", "nonce", "parties"}, {"topics", "template"})
    _text(b["title"], "body.title")
    _text(b["nonce"], "body.nonce", 64)
    parties = b["parties"]
    if not isinstance(parties, list) or not 1 <= len(parties) <= 50:
        raise EventFormatError("body.parties must list 1 to 50 parties")
    for i, party in enumerate(parties):
        check_party(party, f"body.parties[{i}]")
    ids = [p["id"] for p in parties]
    if len(set(ids)) != len(ids):
        raise EventFormatError("body.parties: party ids must be distinct")
    nodes = [p["node"] for p in parties if p.get("node")]
    if len(set(nodes)) != len(nodes):
        raise EventFormatError("body.parties: a node key speaks for one party only")
    topics = b.get("topics", [])
    if not isinstance(topics, list) or len(topics) > 50:
        raise EventFormatError("body.topics must list at most 50 topics")
    for i, topic in enumerate(topics):
        _topic(topic, f"body.topics[{i}]")
    if "template" in b:
        _text(b["template"], "body.template", 100)


def _topic(t: Any, where: str) -> None:
    _fields(t, where, {"topic", "title"})
    _slug(t["topic"], f"{where}.topic")
    _text(t["title"], f"{where}.title")


def _message(b: Any) -> None:
    _fields(b, "body", {"text"}, {"topic", "attachments", "visibility"})
    _text(b["text"], "body.text", MAX_TEXT, empty="attachments" in b)
    if "topic" in b:
        _slug(b["topic"], "body.topic")
    if "visibility" in b and b["visibility"] not in ("public", "private"):
        raise EventFormatError("body.visibility must be public or private")
    attachments = b.get("attachments", [])
    if not isinstance(attachments, list) or len(attachments) > 100:
        raise EventFormatError("body.attachments must list at most 100 files")
    for i, item in enumerate(attachments):
        where = f"body.attachments[{i}]"
        if not isinstance(item, dict) or item.get("type") != "file":
            raise EventFormatError(f"{where} must be a file value")
        _value(item, where)


def _topic_closed(b: Any) -> None:
    _fields(b, "body", {"topic"})
    _slug(b["topic"], "body.topic")


def _data_set(b: Any) -> None:
    _fields(b, "body", {"key", "value"}, {"label"})
    _slug(b["key"], "body.key")
    _value(b["value"], "body.value")
    if "label" in b:
        _text(b["label"], "body.label", 200)


def _activity_updated(b: Any) -> None:
    _fields(b, "body", {"activity", "state"}, {"note"})
    _slug(b["activity"], "body.activity")
    if b["state"] not in PROGRESS_STATES:
        raise EventFormatError(f"body.state must be one of {', '.join(PROGRESS_STATES)}")
    if "note" in b:
        _text(b["note"], "body.note", 10_000)


def check_change(c: Any, where: str) -> None:
    if not isinstance(c, dict) or "op" not in c:
        raise EventFormatError(f"{where} must be an object with an 'op'")
    op = c["op"]
    if op == "data.put":
        _fields(c, where, {"op", "key", "value"}, {"label"})
        _slug(c["key"], f"{where}.key")
        _value(c["value"], f"{where}.value")
        if "label" in c:
            _text(c["label"], f"{where}.label", 200)
    elif op in ("data.remove", "activity.remove"):
        field = "key" if op == "data.remove" else "activity"
        _fields(c, where, {"op", field})
        _slug(c[field], f"{where}.{field}")
    elif op == "activity.put":
        _fields(
            c,
            where,
            {"op", "activity", "title", "owner", "kind"},
            {"member", "due", "channel", "topic"},
        )
        _slug(c["activity"], f"{where}.activity")
        _text(c["title"], f"{where}.title")
        _slug(c["owner"], f"{where}.owner")
        if c["kind"] not in ACTIVITY_KINDS:
            raise EventFormatError(f"{where}.kind must be one of {', '.join(ACTIVITY_KINDS)}")
        if "member" in c:
            _text(c["member"], f"{where}.member", 200)
        if "due" in c:
            _time(c["due"], f"{where}.due")
        if "channel" in c:
            _slug(c["channel"], f"{where}.channel")
        if "topic" in c:
            _slug(c["topic"], f"{where}.topic")
        if c["kind"] == "callback" and "due" not in c:
            raise EventFormatError(f"{where}.due is required for a callback")
    elif op == "party.add":
        _fields(c, where, {"op", "party"})
        check_party(c["party"], f"{where}.party")
    elif op == "party.key":
        _fields(c, where, {"op", "party", "node"})
        _slug(c["party"], f"{where}.party")
        if not is_public_key(c["node"]):
            raise EventFormatError(f"{where}.node is not a public key")
    else:
        raise EventFormatError(f"{where}.op {op!r} is not a known change")


def _proposal_made(b: Any) -> None:
    _fields(b, "body", {"base", "changes"}, {"note", "counter_of", "rebase_of"})
    _int(b["base"], "body.base", 0, 2**31)
    changes = b["changes"]
    if not isinstance(changes, list) or not 1 <= len(changes) <= MAX_CHANGES:
        raise EventFormatError(f"body.changes must list 1 to {MAX_CHANGES} changes")
    for i, change in enumerate(changes):
        check_change(change, f"body.changes[{i}]")
    if "note" in b:
        _text(b["note"], "body.note", 10_000)
    if "counter_of" in b:
        _eid(b["counter_of"], "body.counter_of")
    if "rebase_of" in b:
        _eid(b["rebase_of"], "body.rebase_of")


def _proposal_withdrawn(b: Any) -> None:
    _fields(b, "body", {"proposal"}, {"reason"})
    _eid(b["proposal"], "body.proposal")
    if "reason" in b:
        _text(b["reason"], "body.reason", 10_000)


def _activity_committed(b: Any) -> None:
    """An activity the author's own party promises at once (no acceptance needed): the
    fields of an ``activity.put`` change, plus an optional note."""
    optional = {"member", "due", "channel", "topic", "note"}
    _fields(b, "body", {"activity", "title", "owner", "kind"}, optional)
    change = {k: v for k, v in b.items() if k != "note"}
    check_change({"op": "activity.put", **change}, "body")
    if "note" in b:
        _text(b["note"], "body.note", 10_000)


def _proposal_accepted(b: Any) -> None:
    _fields(b, "body", {"proposal"})
    _eid(b["proposal"], "body.proposal")


def _proposal_rejected(b: Any) -> None:
    _fields(b, "body", {"proposal"}, {"reason"})
    _eid(b["proposal"], "body.proposal")
    if "reason" in b:
        _text(b["reason"], "body.reason", 10_000)


def _satisfied(b: Any) -> None:
    _fields(b, "body", {"version"}, {"rating", "note", "reason"})
    _int(b["version"], "body.version", 0, 2**31)
    if "rating" in b:
        _int(b["rating"], "body.rating", 1, 5)
    if "note" in b:
        _text(b["note"], "body.note", 10_000)
    if "reason" in b:  # "close anyway": satisfied although agreed work or topics are open
        _text(b["reason"], "body.reason", 10_000)


def _reopened(b: Any) -> None:
    _fields(b, "body", {"reason"})
    _text(b["reason"], "body.reason", 10_000)


def _owner_named(b: Any) -> None:
    _fields(b, "body", {"name"}, {"note"})
    _text(b["name"], "body.name", 200)
    if "note" in b:
        _text(b["note"], "body.note", 10_000)


def _status(b: Any) -> None:
    _fields(b, "body", {"label"})
    _text(b["label"], "body.label", 64)


BODY_CHECKS: dict[str, Callable[[Any], None]] = {
    "case.opened": _case_opened,
    "message.posted": _message,
    "topic.opened": lambda b: _topic(b, "body"),
    "topic.closed": _topic_closed,
    "data.set": _data_set,
    "activity.updated": _activity_updated,
    "proposal.made": _proposal_made,
    "proposal.accepted": _proposal_accepted,
    "proposal.rejected": _proposal_rejected,
    "proposal.withdrawn": _proposal_withdrawn,
    "activity.committed": _activity_committed,
    "party.satisfied": _satisfied,
    "case.reopened": _reopened,
    "status.set": _status,
    "owner.named": _owner_named,
}
EVENT_TYPES = tuple(BODY_CHECKS)


def check_body(event_type: str, body: Any) -> None:
    """Check a body's shape; ``UnknownEventType`` for a type not in the registry."""
    try:
        check = BODY_CHECKS[event_type]
    except KeyError:
        raise UnknownEventType(f"unknown event type {event_type!r}") from None
    check(body)
