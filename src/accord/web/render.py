"""The pages' templates and the helpers they share (members' pages, portal, admin).

Jinja2 with autoescaping on for every template: whatever a customer wrote — a message,
a name, a file name — reaches the page as text. Times are shown in the business
calendar's zone.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from accord import __version__
from accord.core.activities import is_open
from accord.core.timefmt import parse_time
from accord.service.summary import format_value
from accord.web.session import secure_headers

PAGES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    # Shared templates mark the customer's texts with _() (accord.web.i18n translates
    # them for the portal); the members' pages show the English msgids as they are.
    extensions=["jinja2.ext.i18n"],
)
PAGES.install_null_translations(newstyle=True)  # type: ignore[attr-defined]

EVENT_WORDS = {
    "case.opened": "opened the case",
    "message.posted": "wrote",
    "topic.opened": "opened a topic",
    "topic.closed": "closed a topic",
    "data.set": "shared information",
    "proposal.made": "proposed",
    "proposal.accepted": "accepted a proposal",
    "proposal.rejected": "rejected a proposal",
    "activity.updated": "reported progress",
    "party.satisfied": "is satisfied",
    "case.reopened": "reopened the case",
    "status.set": "set the status",
    "owner.named": "named the owner",
}


def when(value: str | datetime | None, zone: ZoneInfo, fmt: str = "%a %d %b %Y, %H:%M") -> str:
    """A log time (or datetime) in ``zone``, for people."""
    if not value:
        return ""
    moment = parse_time(value) if isinstance(value, str) else value
    if moment.tzinfo is None:  # SQLite hands back stored UTC times without their zone
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    return moment.astimezone(zone).strftime(fmt)


def render(
    template: str, *, status: int = 200, referrer: str = "same-origin", **context: Any
) -> HTMLResponse:
    """A page with the security headers every page carries."""
    context.setdefault("version", __version__)
    html = PAGES.get_template(template).render(**context)
    return secure_headers(HTMLResponse(html, status_code=status), referrer=referrer)  # type: ignore[return-value]


def describe(event: dict[str, Any], parties: dict[str, Any]) -> str:
    """One line for a timeline entry that is not a message."""
    body = event["body"]
    kind = event["type"]
    words = EVENT_WORDS.get(kind, kind)
    if kind == "proposal.made":
        n = len(body.get("changes", []))
        words = ("countered with" if body.get("counter_of") else "proposed") + (
            f" {n} change" + ("s" if n != 1 else "")
        )
    elif kind == "proposal.rejected" and body.get("reason"):
        words += f": {body['reason']}"
    elif kind == "activity.updated":
        words = f"marked {body.get('activity')} {str(body.get('state', '')).replace('_', ' ')}"
    elif kind == "owner.named":
        words = f"named {body.get('name')} as owner"
    elif kind == "data.set":
        value = body.get("value")
        shown = format_value(value) if isinstance(value, dict) and "type" in value else ""
        words = f"shared {body.get('label') or body.get('key')}: {shown}"
    elif kind == "status.set":
        words = f"set the status to {body.get('label')}"
    elif kind == "topic.opened":
        words = f"opened the topic {body.get('title')}"
    if body.get("note"):
        words += f" — “{body['note']}”"
    return str(words)


def party_name(parties: dict[str, Any], party: str | None) -> str:
    if party is None:
        return ""
    return str(parties.get(party, {}).get("name", party))


def change_words(change: dict[str, Any], parties: dict[str, Any], zone: ZoneInfo) -> str:
    """One proposed change in words."""
    op: str = change["op"]
    if op == "activity.put":
        due = f", due {when(change['due'], zone)}" if change.get("due") else ""
        kind = "Callback" if change["kind"] == "callback" else "Activity"
        return f"{kind}: {change['title']} — {party_name(parties, change['owner'])}{due}"
    if op == "activity.remove":
        return f"Cancel the activity {change['activity']}"
    if op == "data.put":
        return f"{change.get('label') or change['key']}: {format_value(change['value'])}"
    if op == "data.remove":
        return f"Remove {change['key']}"
    if op == "party.add":
        return f"Add the party {change['party']['name']}"
    return op


PAGES.globals.update(format_value=format_value, is_open=is_open)
