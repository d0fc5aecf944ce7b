"""Outbound webhooks: what happens in cases, POSTed to other systems, signed and retried.

An admin subscribes a URL to some event types (``EVENT_TYPES``). Whatever changed a case
(the API, the CLI, a mail, a timer, another party's node), ``Webhooks.follow`` — the
``webhooks`` follower of the case log (``accord.service.followers``) — turns the new
events into notifications, and each notification into one *delivery* per subscribed
webhook: a row
of ``webhook_deliveries`` holding the exact body to send and its idempotency key, plus a
durable ``webhook.deliver`` job, both in one transaction. Timers of kind
``webhook.activity`` produce ``activity.due`` and ``activity.missed``.

**Delivery.** The job POSTs the body to the URL signed as Standard Webhooks
(standardwebhooks.com) signs it, so receivers can use a ready-made verifier in their
language: ``webhook-id`` (the idempotency key, also the body's ``id``),
``webhook-timestamp`` (unix seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
``f"{id}.{timestamp}.{body}"``, keyed with the secret's 32 bytes (``standard_secret`` gives
them as the ``whsec_…`` string those libraries take). For one release it also sends the
earlier headers, ``Accord-Webhook-Id``, ``Accord-Webhook-Timestamp`` and
``Accord-Webhook-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>``
(``sign``/``verify``), so receivers can move over.
A 2xx answer delivers it. Anything else — another status, a redirect (never followed),
a timeout, a refused connection, a URL that now resolves to a refused address — is a
failed attempt, recorded in ``webhook_attempts`` with its status code or error, and the
job re-arms itself after ``retry_delay``: 30 s, doubling to an hour, for ``MAX_ATTEMPTS``
attempts (about 25 hours) before the delivery is marked failed. Delivery is
at-least-once: a receiver that answered too late may see a delivery again, with the same
id. ``redeliver`` puts any delivery back to pending, due now.

**Order.** Deliveries of one webhook and one case go out in the order they were recorded:
a delivery's job sends nothing while an earlier delivery of the same webhook and case is
still pending, and re-arms itself for when that one is next tried; a delivery that
succeeds or finally fails wakes the next one. A failed delivery no longer holds the
others back.

**Addresses.** ``accord.integrations.ssrf`` checks the URL at subscription and before
every attempt; the request goes to the address that was checked (the URL's host is
replaced by it, with the name kept in ``Host`` and as the TLS server name), through a
fresh connection that reads no proxy settings, so a DNS answer that changes after the
check cannot redirect it.

**Where events come from.** Commands through the ``Negotiation`` — the API, the portal,
the CLI — call the listener. Events that reach this node by federation from another
party's node, and events written by timers (such as the apology of a missed callback)
do not pass through it yet: federation can call ``Webhooks.record`` once its events are
stored, a timer ``Webhooks.emit`` in its own transaction (``emit`` is also where
``customer.merged`` will come from).

**No transaction open during the POST.** The ``webhook.deliver`` handler reads the
delivery in a short transaction and returns the POST as a ``Deferred`` call
(``accord.jobs.worker``): the worker makes it with no transaction open — so a receiver
that is slow to answer (up to ``TIMEOUT``) holds no lock, and on the embedded SQLite
default no other write waits for it — then records the attempt in a short transaction
that first checks the job's lease is still its own. A worker killed between the POST and
the record, or fenced out meanwhile, means the POST is made again with the same
``Accord-Webhook-Id``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord import __version__
from accord.core.activities import activity_open, is_open
from accord.core.crypto import NodeKey
from accord.core.events import Event
from accord.core.state import State
from accord.core.timefmt import format_time, parse_time
from accord.integrations.ssrf import Resolver, UnsafeURL, check_url
from accord.jobs.queue import Job, JobQueue, aware
from accord.jobs.worker import Deferred
from accord.service import settings
from accord.service.callbacks import GRACE
from accord.service.errors import Invalid, NotFound
from accord.store import secrets as sealed
from accord.store.cases import CaseStore
from accord.store.database import Database
from accord.store.tables import webhook_attempts, webhook_deliveries, webhooks

log = logging.getLogger("accord.webhooks")

Clock = Callable[[], datetime]

EVENT_TYPES: dict[str, str] = {
    "case.opened": "a case was opened",
    "message.received": "a message from another party: the customer through the portal or "
    "a channel, or another party's node",
    "proposal.made": "a party proposed a change to the terms (a counter-proposal too)",
    "proposal.accepted": "a party accepted a proposal",
    "agreement.reached": "every party accepted a proposal: a new agreement version",
    "activity.done": "the party that owns an agreed activity reported it done (from any "
    "node: a subcontractor's own, or this one)",
    "activity.due": "an agreed activity's due time has come and it is not done",
    "activity.missed": "an agreed activity is still not done 5 minutes after its due time "
    "(the next business opening, if the node is closed then)",
    "case.resolved": "every party is satisfied with the current agreement",
    "customer.merged": "two customer records were merged (reserved: not emitted yet)",
}
"""Every event type a webhook can subscribe to, with what it means."""

RESERVED = frozenset({"customer.merged"})
"""Types that can be subscribed to but that nothing emits yet."""

DELIVER = "webhook.deliver"
TIMER = "webhook.activity"
ACTIVITY_TYPES = ("activity.due", "activity.missed")
TERMS_CHANGING = frozenset({"proposal.made", "proposal.accepted", "activity.updated"})

MAX_ATTEMPTS = 32
BLOCKED_RECHECK = timedelta(seconds=5)
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
TOLERANCE = 300  # seconds: how old a timestamp receivers should accept
MAX_ERROR = 500
SIGNATURE_VERSION = "v1"
STANDARD_PREFIX = "whsec_"  # how Standard Webhooks libraries take a secret
USER_AGENT = f"Accord-Webhooks/{__version__}"


def retry_delay(attempts: int) -> timedelta:
    """How long after failed attempt number ``attempts`` (1, 2, …) the next one is made."""
    delay: timedelta = min(MAX_RETRY, FIRST_RETRY * 2 ** max(0, min(attempts - 1, 20)))
    return delay


def new_secret() -> str:
    """32 random bytes, base64url without padding (43 characters): a webhook's HMAC key."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Accord-Webhook-Signature`` value: ``v1=`` and HMAC-SHA256 over
    ``f"{timestamp}.{body}"`` keyed with the secret as ASCII, in hex."""
    mac = hmac.new(secret.encode("ascii"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def _secret_key(secret: str) -> bytes:
    """The key Standard Webhooks signs with: the bytes of a ``whsec_`` secret, or of one of
    ours (``new_secret``: base64url without padding)."""
    if secret.startswith(STANDARD_PREFIX):
        return base64.b64decode(secret.removeprefix(STANDARD_PREFIX), validate=True)
    return base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))


def standard_secret(secret: str) -> str:
    """A webhook's secret as Standard Webhooks libraries take it: ``whsec_`` and the same
    32 bytes in standard base64."""
    return STANDARD_PREFIX + base64.b64encode(_secret_key(secret)).decode("ascii")


def sign_standard(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256 of
    ``f"{message_id}.{timestamp}.{body}"`` keyed with the secret's bytes."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    mac = hmac.new(_secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(mac).decode('ascii')}"


def verify_standard(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> bool:
    """What a Standard Webhooks receiver checks: ``webhook-id``, a ``webhook-timestamp`` at
    most ``TOLERANCE`` seconds away, and a ``v1`` signature among the space-separated ones
    of ``webhook-signature`` that matches, compared in constant time. ``secret``: ours or
    its ``whsec_`` form."""
    lookup = {k.lower(): v for k, v in headers.items()}
    message_id = lookup.get("webhook-id", "")
    stamp = lookup.get("webhook-timestamp", "")
    if not message_id or not (stamp.isascii() and stamp.isdigit()):
        return False
    sent = int(stamp)
    if abs((time.time() if now is None else now) - sent) > TOLERANCE:
        return False
    expected = sign_standard(secret, message_id, sent, body)
    return any(
        hmac.compare_digest(expected, candidate)
        for candidate in lookup.get("webhook-signature", "").split()
    )


def verify(
    secret: str, timestamp: str, signature: str, body: bytes, *, now: float | None = None
) -> bool:
    """What a receiver checks (see docs/webhooks.md): a ``v1`` signature that matches,
    compared in constant time, on a timestamp at most ``TOLERANCE`` seconds old."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > TOLERANCE:
        return False
    expected = sign(secret, sent, body)
    return any(
        hmac.compare_digest(expected, candidate.strip()) for candidate in signature.split(",")
    )


@dataclass(frozen=True)
class Webhook:
    id: int
    url: str
    events: tuple[str, ...]
    active: bool
    allow_private: bool
    created_at: datetime
    created_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "active": self.active,
            "allow_private": self.allow_private,
            "created": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class Attempt:
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "status_code": self.status_code,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook_id: int
    event_type: str
    case_id: str | None
    idempotency_key: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    payload: bytes = b""
    log: tuple[Attempt, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "webhook": self.webhook_id,
            "type": self.event_type,
            "case": self.case_id,
            "idempotency_key": self.idempotency_key,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "next_attempt": _iso(self.next_attempt_at),
            "created": self.created_at.isoformat(),
            "delivered": _iso(self.delivered_at),
            "log": [a.to_json() for a in self.log],
        }


@dataclass(frozen=True)
class Notification:
    """Something a webhook may be told: its type, what it is about and its data.
    ``source`` names what caused it (an event id, a timer), so it is recorded once."""

    type: str
    source: str
    data: dict[str, Any]


class Webhooks:
    """Subscriptions, the listener that records deliveries, and the job handlers."""

    def __init__(
        self,
        db: Database,
        cases: CaseStore,
        key: NodeKey,
        queue: JobQueue,
        *,
        now: Clock,
        resolver: Resolver | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = TIMEOUT,
    ) -> None:
        self.db = db
        self.cases = cases
        self.key = key
        self.queue = queue
        self.now = now
        self.resolver = resolver
        """``(host, port) -> addresses``; None for the system's (``socket.getaddrinfo``)."""
        self.transport = transport
        """For tests: where requests go instead of the network (the address is still checked)."""
        self.timeout = timeout

    # -- subscriptions ---------------------------------------------------------------

    def create(
        self, url: str, events: Sequence[str], *, created_by: str, allow_private: bool = False
    ) -> tuple[Webhook, str]:
        """Subscribe ``url``; returns the webhook and its secret (shown this once)."""
        types = _event_types(events)
        try:
            check_url(url, allow_private=allow_private, resolver=self.resolver)
        except UnsafeURL as exc:
            raise Invalid(str(exc), field="url") from exc
        secret = new_secret()
        with self.db.write() as conn:
            row = conn.execute(
                webhooks.insert()
                .values(
                    url=url,
                    secret=sealed.of(self.db).seal_text(secret),
                    events=orjson.dumps(list(types)).decode(),
                    active=True,
                    allow_private=allow_private,
                    created_at=self.now(),
                    created_by=created_by,
                )
                .returning(*webhooks.c)
            ).one()
            hook = _webhook(row)
            if set(types) & set(ACTIVITY_TYPES):
                self._reconcile_timers(conn)
        return hook, secret

    def all(self) -> list[Webhook]:
        with self.db.read() as conn:
            return [_webhook(r) for r in conn.execute(sa.select(webhooks).order_by(webhooks.c.id))]

    def get(self, webhook_id: int) -> Webhook:
        with self.db.read() as conn:
            row = conn.execute(sa.select(webhooks).where(webhooks.c.id == webhook_id)).first()
        if row is None:
            raise NotFound(f"no webhook {webhook_id}")
        return _webhook(row)

    def update(
        self, webhook_id: int, *, active: bool | None = None, events: Sequence[str] | None = None
    ) -> Webhook:
        """Pause or resume a webhook, or change what it is sent. An inactive webhook gets
        no new deliveries; those already recorded are still sent."""
        values: dict[str, Any] = {}
        if active is not None:
            values["active"] = active
        if events is not None:
            values["events"] = orjson.dumps(list(_event_types(events))).decode()
        with self.db.write() as conn:
            row = conn.execute(sa.select(webhooks).where(webhooks.c.id == webhook_id)).first()
            if row is None:
                raise NotFound(f"no webhook {webhook_id}")
            if values:
                row = conn.execute(
                    webhooks.update()
                    .where(webhooks.c.id == webhook_id)
                    .values(**values)
                    .returning(*webhooks.c)
                ).one()
            hook = _webhook(row)
            if hook.active and set(hook.events) & set(ACTIVITY_TYPES):
                self._reconcile_timers(conn)
        return hook

    def delete(self, webhook_id: int) -> None:
        """Remove a webhook with its deliveries and their log; its secret is gone."""
        with self.db.write() as conn:
            gone = conn.execute(
                webhooks.delete().where(webhooks.c.id == webhook_id).returning(webhooks.c.id)
            ).first()
        if gone is None:
            raise NotFound(f"no webhook {webhook_id}")

    # -- the delivery log --------------------------------------------------------------

    def deliveries(
        self,
        webhook_id: int,
        *,
        status: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[Delivery]:
        """A webhook's deliveries, newest first, each with every attempt."""
        self.get(webhook_id)
        query = (
            sa.select(webhook_deliveries)
            .where(webhook_deliveries.c.webhook_id == webhook_id)
            .order_by(webhook_deliveries.c.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(webhook_deliveries.c.status == status)
        if before is not None:
            query = query.where(webhook_deliveries.c.id < before)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
            logs = self._attempts(conn, [r.id for r in rows])
        return [_delivery(r, logs.get(r.id, ())) for r in rows]

    def delivery(self, delivery_id: int) -> Delivery:
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
            ).first()
            if row is None:
                raise NotFound(f"no webhook delivery {delivery_id}")
            logs = self._attempts(conn, [row.id])
        return _delivery(row, logs.get(row.id, ()))

    def redeliver(self, delivery_id: int) -> Delivery:
        """Send a delivery again, now, whatever its state, with a fresh retry schedule."""
        now = self.now()
        with self.db.write() as conn:
            done = conn.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.id == delivery_id)
                .values(status="pending", attempts=0, next_attempt_at=now, delivered_at=None)
                .returning(webhook_deliveries.c.id)
            ).first()
            if done is None:
                raise NotFound(f"no webhook delivery {delivery_id}")
            self._arm(conn, delivery_id, now)
        return self.delivery(delivery_id)

    def _attempts(self, conn: Connection, ids: list[int]) -> dict[int, tuple[Attempt, ...]]:
        found: dict[int, list[Attempt]] = {}
        if ids:
            rows = conn.execute(
                sa.select(webhook_attempts)
                .where(webhook_attempts.c.delivery_id.in_(ids))
                .order_by(webhook_attempts.c.id)
            )
            for r in rows:
                found.setdefault(r.delivery_id, []).append(
                    Attempt(aware(r.at), r.status_code, r.error, r.duration_ms)
                )
        return {k: tuple(v) for k, v in found.items()}

    # -- recording: from case events to deliveries -------------------------------------

    def follow(self, conn: Connection, case_id: str, events: Sequence[Event], state: State) -> int:
        """The follower's step (``accord.service.followers``): record a delivery per
        subscribed webhook for what these stored events mean (``state``: the case now),
        in the follower's transaction; returns how many. Idempotent: the same event never
        gives a webhook two deliveries."""
        if not self._active(conn):
            return 0
        notes = self.notifications(state, list(events))
        count = sum(self._emit(conn, n.type, case_id, n.source, n.data) for n in notes)
        if any(e.type in TERMS_CHANGING for e in events):
            self.schedule_timers(state, conn)
        return count

    def record(self, case_id: str, event_ids: Sequence[str]) -> int:
        """``follow`` in a transaction of its own, for committed events named by id."""
        events = self.cases.get(case_id, list(event_ids))
        state = self.cases.state(case_id)
        if state is None:
            return 0
        with self.db.write() as conn:
            return self.follow(conn, case_id, events, state)

    def emit(
        self,
        event_type: str,
        case_id: str | None,
        source: str,
        data: dict[str, Any],
        *,
        conn: Connection | None = None,
    ) -> int:
        """Record ``event_type`` for every active webhook subscribed to it — for callers
        other than the listener (a merge of customer records, say), in their own
        transaction if ``conn`` is given. ``source`` makes it idempotent: the same type and
        source give a webhook one delivery."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {event_type!r}")
        with self._write(conn) as c:
            return self._emit(c, event_type, case_id, source, data)

    def notifications(self, state: State, events: Iterable[Event]) -> list[Notification]:
        """What ``events`` (already folded into ``state``) mean to a webhook, in order."""
        found: list[Notification] = []
        agreements = {a["event"]: a for a in state["agreements"]}
        for event in events:
            by = self._by(state, event)
            base = {"event": event.id, "time": event.time, "by": by}
            body = event.body
            if event.type == "case.opened":
                found.append(
                    Notification(
                        "case.opened",
                        event.id,
                        {
                            **base,
                            "title": body["title"],
                            "template": body.get("template"),
                            "parties": [
                                {"id": p["id"], "name": p["name"], "kind": p["kind"]}
                                for p in body["parties"]
                            ],
                            "topics": body.get("topics", []),
                        },
                    )
                )
            elif event.type == "message.posted" and self._received(event):
                data = {**base, "text": body["text"], "topic": body.get("topic")}
                if body.get("attachments"):
                    data["attachments"] = body["attachments"]
                found.append(Notification("message.received", event.id, data))
            elif event.type == "proposal.made":
                found.append(
                    Notification(
                        "proposal.made",
                        event.id,
                        {
                            **base,
                            "proposal": event.id,
                            "base": body["base"],
                            "changes": body["changes"],
                            "note": body.get("note"),
                            "counter_of": body.get("counter_of"),
                        },
                    )
                )
            elif event.type == "proposal.accepted":
                found.append(
                    Notification(
                        "proposal.accepted", event.id, {**base, "proposal": body["proposal"]}
                    )
                )
            elif event.type == "activity.updated" and body["state"] == "done":
                activity: Mapping[str, Any] = state["terms"]["activities"].get(body["activity"], {})
                found.append(
                    Notification(
                        "activity.done",
                        event.id,
                        {
                            **base,
                            "activity": body["activity"],
                            "title": activity.get("title"),
                            "owner": activity.get("owner"),
                            "note": body.get("note"),
                        },
                    )
                )
            elif event.type == "party.satisfied" and state["resolved"]:
                satisfied = state["satisfied"]
                if any(s["event"] == event.id for s in satisfied.values()):
                    found.append(
                        Notification(
                            "case.resolved",
                            event.id,
                            {
                                **base,
                                "version": state["terms"]["version"],
                                "ratings": {p: s.get("rating") for p, s in satisfied.items()},
                            },
                        )
                    )
            agreement = agreements.get(event.id)
            if agreement is not None:  # this event completed the acceptances
                found.append(
                    Notification(
                        "agreement.reached",
                        event.id,
                        {
                            **base,
                            "version": agreement["version"],
                            "proposal": agreement["proposal"],
                            "acceptances": agreement["acceptances"],
                            "terms": agreement["terms"],
                        },
                    )
                )
        return found

    def _emit(
        self, conn: Connection, event_type: str, case_id: str | None, source: str, data: Any
    ) -> int:
        now = self.now()
        count = 0
        for hook in self._subscribed(conn, event_type):
            key = idempotency_key(hook.id, event_type, source)
            body = orjson.dumps(
                {
                    "id": key,
                    "type": event_type,
                    "created": format_time(now),
                    "case": case_id,
                    "data": data,
                }
            )
            new = conn.execute(
                self.db.insert_or_ignore(webhook_deliveries)
                .values(
                    webhook_id=hook.id,
                    event_type=event_type,
                    case_id=case_id,
                    payload=body,
                    idempotency_key=key,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
                .returning(webhook_deliveries.c.id)
            ).scalar()
            if new is not None:
                self._arm(conn, int(new), now)
                count += 1
        return count

    def _received(self, event: Event) -> bool:
        """Written by or for another party: a hosted customer, or another party's node."""
        return event.author.for_party is not None or event.author.node != self.key.public

    def _by(self, state: State, event: Event) -> dict[str, Any]:
        party = event.author.for_party
        if party is None:
            party = next(
                (pid for pid, p in state["parties"].items() if p["node"] == event.author.node),
                None,
            )
        return {"party": party, "member": event.author.member, "via": event.author.via}

    def _active(self, conn: Connection | None = None) -> list[Webhook]:
        query = sa.select(webhooks).where(webhooks.c.active.is_(True)).order_by(webhooks.c.id)
        if conn is not None:
            return [_webhook(r) for r in conn.execute(query)]
        with self.db.read() as own:
            return [_webhook(r) for r in own.execute(query)]

    def _subscribed(self, conn: Connection, event_type: str) -> list[Webhook]:
        return [h for h in self._active(conn) if event_type in h.events]

    # -- activity timers -------------------------------------------------------------

    def schedule_timers(self, state: State, conn: Connection) -> int:
        """Timers for ``activity.due`` and ``activity.missed`` of every open activity with
        a due time, if a webhook wants them; cancelled once the activity is done."""
        wanted = {t for h in self._active(conn) for t in h.events} & set(ACTIVITY_TYPES)
        count = 0
        for aid, progress in state["progress"].items():
            activity: Mapping[str, Any] = state["terms"]["activities"].get(aid) or {}
            due_text = activity.get("due")
            open_ = is_open(progress["state"])
            for kind in ACTIVITY_TYPES:
                key = f"{TIMER}:{kind}:{state['case']}:{aid}"
                if not (open_ and due_text and kind in wanted):
                    self.queue.cancel(key, conn=conn)
                    continue
                due = parse_time(due_text)
                if kind == "activity.missed":
                    due = settings.calendar(self.db).next_open(due + GRACE)
                payload = {"type": kind, "case": state["case"], "activity": aid, "due": due_text}
                self.queue.schedule(TIMER, due, payload, key=key, conn=conn)
                count += 1
        return count

    def _reconcile_timers(self, conn: Connection) -> None:
        for row in self.cases.list_cases(limit=1_000_000, resolved=False):
            state = self.cases.state(row.case_id)
            if state is not None:
                self.schedule_timers(state, conn)

    def activity_timer(self, job: Job, conn: Connection) -> None:
        """Handler of ``webhook.activity``: tell if the activity is still open and due."""
        case_id, aid = job.payload["case"], job.payload["activity"]
        state = self.cases.state(case_id)
        if state is None:
            return
        activity = state["terms"]["activities"].get(aid)
        if activity is None or not activity_open(state, aid):
            return  # done or cancelled meanwhile
        if activity.get("due") != job.payload["due"]:
            return  # moved: the new time's timer fires instead
        data = {
            "activity": aid,
            "title": activity.get("title"),
            "owner": activity.get("owner"),
            "member": activity.get("member"),
            "kind": activity.get("kind"),
            "due": activity["due"],
            "state": state["progress"][aid]["state"],
        }
        kind = job.payload["type"]
        # the case is part of the source: activity ids repeat from case to case (every
        # template's "callback"), and the source makes the delivery's idempotency key
        self._emit(conn, kind, case_id, f"{case_id}:{aid}@{activity['due']}", data)

    # -- delivering --------------------------------------------------------------------

    def deliver(self, job: Job, conn: Connection) -> Deferred[Any] | None:
        """Handler of ``webhook.deliver``: one attempt, in order. In the job's transaction
        it only reads (or, while an earlier delivery of the same webhook and case is
        pending, re-arms itself); the worker makes the POST with no transaction open and
        records its outcome with the job's completion (``record_attempt``). Never raises
        for the receiver's sake."""
        delivery_id = int(job.payload["delivery"])
        row = conn.execute(self._lock(delivery_id)).first()
        if row is None or row.status != "pending":
            return None  # deleted with its webhook, or already settled
        hook_row = conn.execute(sa.select(webhooks).where(webhooks.c.id == row.webhook_id)).first()
        if hook_row is None:
            return None
        now = self.now()
        earlier = self._earlier_pending(conn, row)
        if earlier is not None:  # not yet: wait for it to be tried again
            due = aware(earlier.next_attempt_at) if earlier.next_attempt_at else now
            if due <= now:  # overdue: make sure its job is there, then look again soon
                self._arm(conn, int(earlier.id), now)
                self._arm(conn, delivery_id, now + BLOCKED_RECHECK)
            else:
                self._arm(conn, delivery_id, due + timedelta(seconds=1))
            return None
        payload, key = bytes(row.payload), row.idempotency_key

        def post() -> tuple[int | None, str | None, int]:
            started = time.perf_counter()
            status_code, error = self._send(hook_row, payload, key, now)
            return status_code, error, int((time.perf_counter() - started) * 1000)

        return Deferred(post, lambda c, outcome: self.record_attempt(c, delivery_id, now, outcome))

    def record_attempt(
        self,
        conn: Connection,
        delivery_id: int,
        now: datetime,
        outcome: tuple[int | None, str | None, int],
    ) -> None:
        """Record one attempt (status code, error, milliseconds) made at ``now``: delivered,
        failed for good, or due again after ``retry_delay``."""
        status_code, error, duration = outcome
        row = conn.execute(self._lock(delivery_id)).first()
        if row is None or row.status != "pending":
            return  # the webhook was deleted while the receiver had it
        conn.execute(
            webhook_attempts.insert().values(
                delivery_id=delivery_id,
                at=now,
                status_code=status_code,
                error=error,
                duration_ms=duration,
            )
        )
        attempts = row.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": status_code,
            "last_error": error,
        }
        if error is None:
            values |= {"status": "delivered", "delivered_at": now, "next_attempt_at": None}
        elif attempts >= MAX_ATTEMPTS:
            values |= {"status": "failed", "next_attempt_at": None}
        else:
            values["next_attempt_at"] = now + retry_delay(attempts)
            self._arm(conn, delivery_id, values["next_attempt_at"])
        conn.execute(
            webhook_deliveries.update()
            .where(webhook_deliveries.c.id == delivery_id)
            .values(**values)
        )
        level = logging.INFO if error is None else logging.WARNING
        log.log(
            level,
            "webhook %d delivery %d (%s) attempt %d: %s",
            row.webhook_id,
            delivery_id,
            row.event_type,
            attempts,
            error or f"delivered ({status_code})",
        )
        if values.get("status") in ("delivered", "failed"):
            self._wake_next(conn, row, now)

    def _send(
        self, hook: Any, body: bytes, key: str, now: datetime
    ) -> tuple[int | None, str | None]:
        """POST once; (status code, None) when delivered, else (status code or None, why)."""
        try:
            target = check_url(hook.url, allow_private=hook.allow_private, resolver=self.resolver)
        except UnsafeURL as exc:
            return None, _short(f"refused: {exc}")
        timestamp = int(now.timestamp())
        secret = sealed.of(self.db).open_text(hook.secret)
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": key,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign_standard(secret, key, timestamp, body),
            # the earlier format, sent for one more release (docs/webhooks.md)
            "Accord-Webhook-Id": key,
            "Accord-Webhook-Timestamp": str(timestamp),
            "Accord-Webhook-Signature": sign(secret, timestamp, body),
        }
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        error = "no address"
        for address in target.addresses:
            url = target.url.copy_with(host=str(address))
            try:
                with httpx.Client(
                    transport=self.transport,
                    timeout=self.timeout,
                    follow_redirects=False,
                    trust_env=False,
                ) as client:
                    request = client.build_request(
                        "POST", url, content=body, headers=headers, extensions=extensions
                    )
                    response = client.send(request, stream=True)
                    response.close()
            except httpx.ConnectError as exc:
                error = _short(f"could not connect to {address}: {str(exc) or 'refused'}")
                continue  # the next address, if the name has several
            except httpx.TimeoutException as exc:
                return None, _short(f"timed out ({type(exc).__name__})")
            except httpx.HTTPError as exc:
                return None, _short(f"{type(exc).__name__}: {exc}")
            code = response.status_code
            if 200 <= code < 300:
                return code, None
            if 300 <= code < 400:
                where = response.headers.get("location", "?")
                return code, _short(
                    f"redirect refused: HTTP {code} to {where} (webhooks never follow redirects)"
                )
            return code, f"HTTP {code}"
        return None, error

    def _earlier_pending(self, conn: Connection, row: Any) -> Any:
        d = webhook_deliveries
        return conn.execute(
            sa.select(d.c.id, d.c.next_attempt_at)
            .where(
                d.c.webhook_id == row.webhook_id,
                d.c.case_id.is_not_distinct_from(row.case_id),
                d.c.id < row.id,
                d.c.status == "pending",
            )
            .order_by(d.c.id)
            .limit(1)
        ).first()

    def _wake_next(self, conn: Connection, row: Any, now: datetime) -> None:
        d = webhook_deliveries
        following = conn.execute(
            sa.select(d.c.id)
            .where(
                d.c.webhook_id == row.webhook_id,
                d.c.case_id.is_not_distinct_from(row.case_id),
                d.c.id > row.id,
                d.c.status == "pending",
            )
            .order_by(d.c.id)
            .limit(1)
        ).scalar()
        if following is not None:
            self._arm(conn, int(following), now)

    def _arm(self, conn: Connection, delivery_id: int, at: datetime) -> None:
        self.queue.schedule(
            DELIVER, at, {"delivery": delivery_id}, key=f"{DELIVER}:{delivery_id}", conn=conn
        )

    def _lock(self, delivery_id: int) -> sa.Select[Any]:
        query = sa.select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
        return query if self.db.is_sqlite else query.with_for_update()

    def _write(self, conn: Connection | None) -> AbstractContextManager[Connection]:
        """The caller's transaction if given (it commits), else a write transaction."""
        return nullcontext(conn) if conn is not None else self.db.write()


def idempotency_key(webhook_id: int, event_type: str, source: str) -> str:
    """The id receivers deduplicate by: the same for every attempt of one delivery."""
    digest = hashlib.sha256(f"{webhook_id}\n{event_type}\n{source}".encode()).hexdigest()
    return f"whd_{digest[:40]}"


def _event_types(events: Sequence[str]) -> tuple[str, ...]:
    if not events:
        raise Invalid("subscribe to at least one event type", field="events")
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise Invalid(
            f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}", field="events"
        )
    return tuple(dict.fromkeys(events))


def _webhook(row: Any) -> Webhook:
    return Webhook(
        id=int(row.id),
        url=row.url,
        events=tuple(orjson.loads(row.events)),
        active=bool(row.active),
        allow_private=bool(row.allow_private),
        created_at=aware(row.created_at),
        created_by=row.created_by,
    )


def _delivery(row: Any, attempts: tuple[Attempt, ...] = ()) -> Delivery:
    return Delivery(
        id=int(row.id),
        webhook_id=int(row.webhook_id),
        event_type=row.event_type,
        case_id=row.case_id,
        idempotency_key=row.idempotency_key,
        status=row.status,
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        next_attempt_at=None if row.next_attempt_at is None else aware(row.next_attempt_at),
        created_at=aware(row.created_at),
        delivered_at=None if row.delivered_at is None else aware(row.delivered_at),
        payload=bytes(row.payload),
        log=attempts,
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def utc_now() -> datetime:
    return datetime.now(UTC)


__all__ = [
    "DELIVER",
    "EVENT_TYPES",
    "MAX_ATTEMPTS",
    "RESERVED",
    "TIMER",
    "Delivery",
    "Notification",
    "Webhook",
    "Webhooks",
    "idempotency_key",
    "new_secret",
    "retry_delay",
    "sign",
    "sign_standard",
    "standard_secret",
    "verify",
    "verify_standard",
]
