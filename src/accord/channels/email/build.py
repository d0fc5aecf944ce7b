"""Building the email channel for a node, and its jobs.

The web app builds one ``MailChannel`` on its own services (so the events it writes
reach the same listeners: peers, timers, webhooks); workers build theirs from the node.
Registers the ``mail.send`` job kind (the outbox) and the customer's callback reminder.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from accord.auth.members import MemberStore
from accord.auth.portal import PortalLinks, load_or_create_secret
from accord.channels.blobs import BlobStore, node_blobs
from accord.channels.email.mailboxes import Mailboxes
from accord.channels.email.outbox import SEND, Outbox
from accord.channels.email.service import MailChannel
from accord.channels.intake import Intake
from accord.jobs.queue import JobQueue
from accord.jobs.registry import register
from accord.jobs.worker import Handler
from accord.node import Node, party_slug
from accord.service import callbacks
from accord.service.negotiation import Negotiation
from accord.service.ownership import Ownership

Clock = Callable[[], datetime]
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8640"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def blobs_of(node: Node) -> BlobStore:
    return node_blobs(node.data_dir)


def outbox_of(node: Node, ownership: Ownership, *, now: Clock = _utc_now) -> Outbox:
    return Outbox(
        node.db,
        blobs_of(node),
        Mailboxes(node.db, node.key, now=now),
        JobQueue(node.db, now=now),
        ownership,
        now=now,
    )


def mail_channel(
    node: Node,
    *,
    negotiation: Negotiation | None = None,
    ownership: Ownership | None = None,
    links: PortalLinks | None = None,
    now: Clock = _utc_now,
) -> MailChannel:
    """The email channel of ``node``, on the given services or on new ones."""
    negotiation = negotiation or Negotiation(node.cases, node.key, now=now)
    ownership = ownership or Ownership(node.cases, node.key, MemberStore(node.db), now=now)
    links = links or PortalLinks(load_or_create_secret(node.db), now=now)
    intake = Intake(node, negotiation, ownership, party_id=party_slug(node.name), now=now)
    return MailChannel(
        node,
        intake,
        outbox_of(node, ownership, now=now),
        Mailboxes(node.db, node.key, now=now),
        blobs_of(node),
        links,
        negotiation,
        now=now,
        public_url=lambda: node.url or DEFAULT_PUBLIC_URL,
    )


@register(SEND)
def _send_handler(node: Node) -> Handler:
    return outbox_of(node, Ownership(node.cases, node.key, MemberStore(node.db), now=_utc_now)).send


callbacks.REMIND_HOOKS.append(lambda node: mail_channel(node).remind_callback)
