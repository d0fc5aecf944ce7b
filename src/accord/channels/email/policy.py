"""What a sender cannot make Accord do (docs/email.md, "What a sender cannot do").

The inbound mail path asks this module three things about a parsed mail:

- **its id**, when it came without a Message-ID: a substitute made from what the sender
  wrote (From, To, Cc, Date, Subject, the text and the attachments), never from the
  ``Received`` trace, so the same mail arriving by two relay paths is one message;
- **whether its sender is authenticated**: the ``Authentication-Results`` fields (RFC
  8601) added by a trusted server — one whose authserv-id the node's mail policy names
  (``accord mail policy --authserv-id``) — decide. DMARC decides when it was checked; else
  a failed SPF or DKIM check with no passing one. A failure, or no result at all from a
  trusted server once one is configured, holds the mail for a member instead of writing
  it in the customer's name;
- **whether it may be answered automatically**: not a list's or an alias's mail, not one
  marked ``X-Auto-Response-Suppress`` (RFC 3834 5), not a null envelope sender. The mail
  itself is filed as any other.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

import orjson

from accord.channels.email.parse import ParsedMail

_HEADERS = BytesHeaderParser(policy=compat32)
_METHOD = re.compile(r"\b(dmarc|spf|dkim)\s*=\s*([a-z]+)", re.I)
_COMMENT = re.compile(r"\([^()]*\)")
QUIET_FLAGS = ("auto-response-suppressed", "list-mail")


def stable_id(parsed: ParsedMail) -> str:
    """A substitute Message-ID from what the sender wrote, never from the trace fields a
    relay adds (``Received``, ``Return-Path``, ``Authentication-Results``)."""
    material = orjson.dumps(
        [
            parsed.sender,
            sorted(parsed.to),
            sorted(parsed.cc),
            parsed.date.isoformat() if parsed.date else "",
            parsed.subject,
            parsed.text,
            [a.sha256 for a in parsed.attachments],
        ]
    )
    return f"<{hashlib.sha256(material).hexdigest()}@accord.invalid>"


@dataclass(frozen=True)
class Verdict:
    """What the trusted server said about the sender: ``pass``, ``fail`` or ``none``."""

    result: str
    detail: str

    @property
    def failed(self) -> bool:
        return self.result != "pass"


def authenticate(raw: bytes, authserv_ids: tuple[str, ...]) -> Verdict:
    """The sender's authentication as the trusted servers recorded it (RFC 8601)."""
    results: dict[str, list[str]] = {}
    seen = False
    for field in _HEADERS.parsebytes(raw).get_all("authentication-results") or []:
        value = " ".join(str(field).split())
        authserv = value.split(";", 1)[0].strip().split()[0].lower() if value.strip() else ""
        if authserv not in authserv_ids:
            continue  # anyone can write this field: only our own server's counts
        seen = True
        for method, result in _METHOD.findall(_COMMENT.sub("", value.split(";", 1)[-1])):
            results.setdefault(method.lower(), []).append(result.lower())
    if not seen:
        return Verdict("none", "no Authentication-Results from a trusted server")
    summary = ", ".join(f"{m}={'/'.join(r)}" for m, r in sorted(results.items()))
    dmarc = results.get("dmarc", [])
    if dmarc:
        if "fail" in dmarc:
            return Verdict("fail", f"DMARC failed ({summary})")
        if "pass" in dmarc:
            return Verdict("pass", summary)
    checks = [*results.get("spf", []), *results.get("dkim", [])]
    if "pass" in checks:
        return Verdict("pass", summary)
    if "fail" in checks:
        return Verdict("fail", f"SPF/DKIM failed ({summary})")
    return Verdict("none", f"not authenticated ({summary or 'no results'})")


def quiet(parsed: ParsedMail) -> str | None:
    """Why no automatic answer may go to this mail, if one must not."""
    if "list-mail" in parsed.flags:
        return "mail through a list or alias (List-Id)"
    if "auto-response-suppressed" in parsed.flags:
        return "the sender asked for no automatic answer (X-Auto-Response-Suppress)"
    return None
