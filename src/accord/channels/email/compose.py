"""Outbound mail: the exact bytes Accord sends, built once and kept in the outbox.

Every message carries its own Message-ID (so a retry is recognisably the same mail),
In-Reply-To and References (so the customer's mail program threads it), Reply-To set to
the case's direct line (so the answer comes back to the case whatever the subject), the
case tag in the subject, a plain-text part and, when given, an HTML alternative. Notices
Accord writes by itself are marked ``Auto-Submitted: auto-replied`` or
``auto-generated`` (RFC 3834), so well-behaved responders never answer them.

Header values come from customers (names, subjects): the ``email`` package's header
registry folds and encodes them and refuses CR/LF, which is what stops header injection.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

MAX_REFERENCES = 20


@dataclass(frozen=True)
class Outgoing:
    """What to send, before it is turned into bytes."""

    sender: str  # the mailbox address
    sender_name: str
    to: str
    to_name: str
    subject: str
    text: str
    reply_to: str | None = None
    html: str | None = None
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    auto: str | None = None  # "auto-replied" | "auto-generated" for Accord's own notices
    case_number: int | None = None


def new_message_id(domain: str) -> str:
    return f"<accord.{secrets.token_hex(12)}@{domain}>"


def compose(mail: Outgoing, *, message_id: str, date: datetime) -> bytes:
    """The RFC 5322 bytes of ``mail`` (CRLF line ends, 7-bit safe where possible)."""
    message = EmailMessage(policy=SMTP)
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(date)
    message["From"] = Address(_one_line(mail.sender_name), addr_spec=mail.sender)
    message["To"] = Address(_one_line(mail.to_name), addr_spec=mail.to)
    if mail.reply_to:
        message["Reply-To"] = Address(_one_line(mail.sender_name), addr_spec=mail.reply_to)
    message["Subject"] = _one_line(mail.subject)
    if mail.in_reply_to:
        message["In-Reply-To"] = mail.in_reply_to
    references = list(dict.fromkeys(mail.references))[-MAX_REFERENCES:]
    if references:
        message["References"] = " ".join(references)
    if mail.auto:
        message["Auto-Submitted"] = mail.auto
        message["X-Auto-Response-Suppress"] = "All"
    if mail.case_number is not None:
        message["X-Accord-Case"] = str(mail.case_number)
    message.set_content(mail.text)
    if mail.html:
        message.add_alternative(mail.html, subtype="html")
    return message.as_bytes()


def reply_subject(subject: str) -> str:
    stripped = subject.strip()
    if stripped.lower().startswith(("re:", "aw:", "sv:")):
        return stripped
    return f"Re: {stripped}" if stripped else "Your message"


def _one_line(value: str) -> str:
    """No CR, LF or other control characters: a header value is one line."""
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())[:500]
