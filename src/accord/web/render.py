"""The pages' templates and the helpers they share (members' pages, portal, admin).

Jinja2 with autoescaping on for every template: whatever a customer wrote — a message,
a name, a file name — reaches the page as text. Times are shown in the business
calendar's zone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from accord import __version__
from accord.core.activities import is_open
from accord.service.summary import format_value
from accord.service.wording import EVENT_WORDS
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


PAGES.globals.update(format_value=format_value, is_open=is_open)
