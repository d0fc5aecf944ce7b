"""Answering the customer: on which channel, and what the channels are called.

The REST API's reply endpoint (``accord.api.connectors``) and the case workspace
(``accord.web.pages``) both answer through ``reply_on_channel``: the channel a member
chose, or the one the customer last wrote on. ``reply_channels`` is what the workspace
offers: only the channels this customer has written on (in this case or another of
theirs), with the names people use ("WhatsApp", not ``whatsapp-twilio``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from accord.channels.connectors.accounts import Connectors
from accord.channels.email.mailchannel import MailChannel
from accord.service.negotiation import Actor, Negotiation
from accord.store.tables import case_customers, channel_messages

CHANNEL_NAMES = {
    "email": "email",
    "webchat": "web chat",
    "whatsapp": "WhatsApp",
    "whatsapp-twilio": "WhatsApp",
    "messenger": "Messenger",
    "instagram": "Instagram",
    "telegram": "Telegram",
    "sms": "SMS",
    "x": "X",
    "portal": "the portal",
    "web": "the workspace",
    "api": "the API",
    "cli": "the command line",
    "import": "an import",
}
"""What people call each channel (and each ``via`` of the log)."""


def channel_name(channel: str | None) -> str:
    """The channel as people call it; a case message without a channel is "the case"."""
    if not channel:
        return "the case"
    return CHANNEL_NAMES.get(channel, channel)


@dataclass(frozen=True)
class ReplyChannel:
    channel: str  # "" for a message in the case itself (the portal shows it)
    name: str
    last: bool  # the one the customer last wrote on: the default


def last_channel(connectors: Connectors, case_id: str) -> str | None:
    """The channel the customer last wrote on in this case, if any."""
    with connectors.db.read() as conn:
        last = connectors.last_inbound(conn, case_id)
    return None if last is None else str(last.channel)


def reply_channels(connectors: Connectors, case_id: str) -> list[ReplyChannel]:
    """The channels a reply in this case can go on: the customer's own (those they wrote
    on, in this case or another of theirs), the last one first, then the case itself."""
    with connectors.db.read() as conn:
        theirs = sa.select(case_customers.c.customer_id).where(case_customers.c.case_id == case_id)
        others = sa.select(case_customers.c.case_id).where(case_customers.c.customer_id.in_(theirs))
        rows = conn.execute(
            sa.select(channel_messages.c.channel, sa.func.max(channel_messages.c.id))
            .where(
                channel_messages.c.direction == "in",
                sa.or_(
                    channel_messages.c.case_id == case_id,
                    channel_messages.c.case_id.in_(others),
                    channel_messages.c.customer_id.in_(theirs),
                ),
            )
            .group_by(channel_messages.c.channel)
        ).all()
    last = last_channel(connectors, case_id)
    used = [c for c, _ in sorted(rows, key=lambda r: -int(r[1]))]
    if last in used:
        used.remove(last)
        used.insert(0, last)
    names = [CHANNEL_NAMES.get(c, c) for c in used]
    out = [
        ReplyChannel(
            c,
            f"{n} ({c})" if names.count(n) > 1 else n,
            c == last,
        )
        for c, n in zip(used, names, strict=True)
        if c != "webchat"
    ]
    out.append(ReplyChannel("", "the case (web chat and portal)", last in (None, "webchat")))
    return out


def reply_on_channel(
    connectors: Connectors,
    mail: MailChannel,
    negotiation: Negotiation,
    actor: Actor,
    case_id: str,
    text: str,
    *,
    channel: str | None = None,
    template: str | None = None,
    private: bool = False,
) -> dict[str, Any]:
    """Answer the customer on ``channel``, or the one they last wrote on: email through
    the outbox, web chat and cases without a channel as a case message, a messaging
    platform through its connector. The API's reply endpoint and the case page use it."""
    channel = channel or last_channel(connectors, case_id)
    if channel == "email":
        done = mail.reply(Actor(member=actor.member, via="email"), case_id, text)
        return {
            "case": case_id,
            "event": done.outcome.event_ids[0],
            "channel": "email",
            "message": done.message_id,
        }
    if channel in ("webchat", None):
        outcome = negotiation.post_message(Actor(member=actor.member, via="web"), case_id, text)
        return {"case": case_id, "event": outcome.event_ids[0], "channel": channel or "case"}
    return connectors.reply(
        actor, case_id, text, channel=channel, template=template, private=private
    )
