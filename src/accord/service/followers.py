"""A node's followers of the case log: everything that reacts to a change of a case.

Every change is written once, as signed events, by whoever makes it — a member's page,
the API, the portal, the CLI, a mail, a messaging platform, a timer, an import, another
party's node. Nothing reacts on that write path. The followers below read the log from
their own marks (``accord.jobs.follow``) and write their effects in the transaction that
moves the mark, so each event's effects happen once:

============================  ==========================================================
``webhooks``                  deliveries for every subscribed webhook (sent later by the
                              ``webhook.deliver`` job, at least once, one stable id)
``customer-notices``          mail to the case's email customer: our proposals, notices,
                              and what other parties say or do from their own nodes
``callback-timers``           reminder and missed-callback timers of agreed callbacks
``response-targets``          the customer's response clock (first and next response)
``member-notices``            the owner's notifications of what other parties did
``outcome-facts``             the per-case outcome facts behind metrics and comparisons
============================  ==========================================================

Imported history (events an import wrote, ``via: "import"``) notifies nobody, as
docs/import.md promises: the webhooks, notices and response targets skip it (``live``);
the timers, outcome facts, inbox and search take it like any other change.

The inbox rows and the search index are derived from the ``cases`` rows, which every
append updates whatever its origin (``accord.store.changes``), and the pages poll the same
mark: they need no follower of their own.

``Followers.wake()`` is what a write path calls after its commit: in a process that runs
the followers in the background (``accord serve``'s worker thread, ``accord worker``) it
only wakes that loop; with ``inline=True`` (tests, one-shot tools) it runs them at once
in the caller's thread. Either way a failure is recorded on the follower, never raised to
the writer, and events that no write path announced (a peer's push, a pull, the CLI in
another process) are found by the loop's next pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.channels.email.mailchannel import MailChannel
from accord.core.events import Event
from accord.core.state import State
from accord.integrations.webhooks import Webhooks
from accord.jobs.follow import Follower, FollowerRunner, Lag
from accord.outcomes.store import MetricsStore
from accord.service.callbacks import Callbacks
from accord.service.ownership import Ownership
from accord.service.sla import ResponseTargets
from accord.store.cases import CaseStore
from accord.store.database import Database
from accord.store.tables import case_owners, notifications

log = logging.getLogger("accord.followers")

Clock = Callable[[], datetime]

NAMES = (
    "webhooks",
    "customer-notices",
    "callback-timers",
    "response-targets",
    "member-notices",
    "outcome-facts",
)
"""Every follower a node runs; migration 0023 starts each at the end of an existing log."""

TIMER_EVENTS = frozenset(
    {"case.opened", "proposal.accepted", "activity.updated", "party.satisfied", "case.reopened"}
) | {"activity.committed"}
"""What can start, move or stop a callback's timers: the agreed terms (a template's, or an
accepted proposal's) and their progress."""


AUTHORITY = frozenset(
    {"proposal.made", "proposal.accepted", "proposal.rejected", "proposal.withdrawn"}
)
"""The events after which an agreement some node showed may turn out not to stand."""
SUPERSEDED = "agreement.superseded"
"""The kind of the owner's notice that an agreement did not stand."""


def live(batch: Sequence[Event]) -> list[Event]:
    """The events of ``batch`` that are news: not history brought in by an import."""
    return [e for e in batch if e.author.via != "import"]


class WebhookDeliveries:
    name = "webhooks"

    def __init__(self, webhooks: Webhooks) -> None:
        self.webhooks = webhooks

    def handle(
        self, conn: Connection, case_id: str, batch: Sequence[Event], state: State | None
    ) -> None:
        if state is not None and (news := live(batch)):
            self.webhooks.follow(conn, case_id, news, state)


class CustomerNotices:
    name = "customer-notices"

    def __init__(self, mail: MailChannel) -> None:
        self.mail = mail

    def handle(
        self, conn: Connection, case_id: str, batch: Sequence[Event], state: State | None
    ) -> None:
        if state is not None and (news := live(batch)):
            self.mail.notify_customer(conn, case_id, news, state)
            if any(e.type in AUTHORITY for e in news):
                self.mail.notify_superseded(conn, case_id, state)


class CallbackTimers:
    name = "callback-timers"

    def __init__(self, callbacks: Callbacks, cases: CaseStore) -> None:
        self.callbacks = callbacks
        self.cases = cases

    def handle(
        self, conn: Connection, case_id: str, batch: Sequence[Event], state: State | None
    ) -> None:
        if state is not None and any(e.type in TIMER_EVENTS for e in batch):
            self.callbacks.schedule(state, conn)


class ResponseClock:
    name = "response-targets"

    def __init__(self, targets: ResponseTargets) -> None:
        self.targets = targets

    def handle(
        self, conn: Connection, case_id: str, batch: Sequence[Event], state: State | None
    ) -> None:
        if state is not None and (news := live(batch)):
            self.targets.follow(conn, case_id, news, state)


class MemberNotices:
    """Tells the case's owner what another party did: a party on its own node, or a
    customer through the portal, a mail or a messaging channel."""

    name = "member-notices"
    KINDS = frozenset(
        {
            "message.posted",
            "activity.updated",
            "proposal.made",
            "proposal.accepted",
            "proposal.rejected",
            "party.satisfied",
            "case.reopened",
        }
    )

    def __init__(self, ownership: Ownership, cases: CaseStore, public_key: str) -> None:
        self.ownership = ownership
        self.cases = cases
        self.public_key = public_key

    def handle(
        self, conn: Connection, case_id: str, batch: Sequence[Event], state: State | None
    ) -> None:
        news = live(batch)
        theirs = [e for e in news if e.type in self.KINDS and not self._ours(e)]
        settled = any(e.type in AUTHORITY for e in news)
        if not theirs and not settled:
            return
        owner = conn.execute(case_owners.select().where(case_owners.c.case_id == case_id)).first()
        state = state if state is not None else self.cases.state(case_id)
        if owner is None or state is None:
            return
        if settled:
            self._superseded(conn, int(owner.member_id), case_id, state)
        # a message that reopened a resolved case (the reopening written with it, by this
        # node for a relayed message or by the customer in the portal) is one notice
        reopened = any(e.type == "case.reopened" for e in news)
        wrote = any(e.type == "message.posted" for e in theirs)
        for event in theirs:
            if event.type == "case.reopened" and wrote:
                continue
            text = describe(state, event)
            if event.type == "message.posted" and reopened:
                text = f"{text} (the case was resolved: it is open again)"
            self.ownership.notify(conn, int(owner.member_id), case_id, "case.activity", text)

    def _ours(self, event: Event) -> bool:
        return event.author.node == self.public_key and event.author.for_party is None

    def _superseded(self, conn: Connection, member_id: int, case_id: str, state: State) -> None:
        """Tell the owner, once each, of an agreement some node showed as reached that
        did not stand (the state's ``superseded``; docs/case-log.md). Checked whenever a
        proposal event arrives, against the owner's earlier notices of this kind — so an
        entry a re-fold found under an event of an earlier batch is told all the same."""
        entries = state.get("superseded") or []
        if not entries:
            return
        told = "\n".join(
            conn.execute(
                sa.select(notifications.c.text).where(
                    notifications.c.case_id == case_id,
                    notifications.c.kind == SUPERSEDED,
                )
            ).scalars()
        )
        for entry in entries:
            if entry["proposal"] in told:
                continue
            text = (
                f"{state['title']}: the agreement of version {entry['version']} that other "
                f"nodes showed as reached did not stand — {entry['reason']} "
                f"(proposal {entry['proposal']})"
            )
            self.ownership.notify(conn, member_id, case_id, SUPERSEDED, text)


class OutcomeFacts:
    """Recomputes a case's outcome facts when it reaches a milestone (opened, agreed,
    satisfied, reopened). Computing them reads the case's whole log, so doing it for every
    message would cost a long case quadratic time; between milestones the facts go stale
    and every read of the metrics refreshes stale cases first (``MetricsStore.stale``)."""

    name = "outcome-facts"
    MILESTONES = frozenset({"case.opened", "proposal.accepted", "party.satisfied", "case.reopened"})

    def __init__(self, store: MetricsStore) -> None:
        self.store = store

    def handle(
        self, conn: Connection, case_id: str, batch: Sequence[Event], state: State | None
    ) -> None:
        if state is not None and any(e.type in self.MILESTONES for e in batch):
            self.store.refresh([case_id], conn=conn)


def describe(state: State, event: Event) -> str:
    """One line for a member: who did what on which case."""
    who = _party_name(state, event)
    title = state.get("title") or "a case"
    body = event.body
    if event.type == "message.posted":
        text = " ".join(str(body.get("text", "")).split())
        short = text if len(text) <= 120 else text[:119] + "…"
        return f"{who} wrote on “{title}”: {short}"
    if event.type == "activity.updated":
        aid = body["activity"]
        activity: Mapping[str, Any] = state["terms"]["activities"].get(aid, {})
        done = str(body["state"]).replace("_", " ")
        return f"{who} marked “{activity.get('title', aid)}” {done} on “{title}”"
    if event.type == "proposal.made":
        return f"{who} proposed a change on “{title}”"
    if event.type == "proposal.accepted":
        return f"{who} accepted a proposal on “{title}”"
    if event.type == "proposal.rejected":
        return f"{who} rejected a proposal on “{title}”"
    if event.type == "party.satisfied":
        return f"{who} is satisfied with “{title}”"
    return f"{who} reopened “{title}”"


def _party_name(state: State, event: Event) -> str:
    parties = state.get("parties", {})
    if event.author.for_party and event.author.for_party in parties:
        return str(parties[event.author.for_party].get("name") or event.author.for_party)
    for party in parties.values():
        if party.get("node") == event.author.node:
            return str(party.get("name") or "A party")
    return "A party"


class Followers:
    """The node's followers and how they run in this process."""

    def __init__(self, runner: FollowerRunner, *, inline: bool) -> None:
        self.runner = runner
        self.inline = inline
        self._wake = threading.Event()

    def wake(self, _case_id: str | None = None, _event_ids: Sequence[str] = ()) -> None:
        """After a commit: catch up now (inline) or wake the background loop."""
        if not self.inline:
            self._wake.set()
            return
        try:
            self.runner.catch_up()
        except Exception:  # the runner records failures itself; this is a last resort
            log.exception("followers could not catch up")

    def catch_up(self) -> int:
        return self.runner.catch_up()

    def lag(self) -> list[Lag]:
        return self.runner.lag()

    def run(self, stop: threading.Event, *, idle: float = 1.0) -> None:
        """Follow the log until ``stop``: a pass whenever woken, or every ``idle`` s."""
        while not stop.is_set():
            try:
                self.runner.catch_up()
            except Exception:
                log.exception("followers: pass failed; retrying in %.1f s", idle)
            self._wake.wait(idle)
            self._wake.clear()


def build_followers(
    db: Database,
    cases: CaseStore,
    public_key: str,
    *,
    webhooks: Webhooks,
    mail: MailChannel,
    callbacks: Callbacks,
    targets: ResponseTargets,
    ownership: Ownership,
    now: Clock,
    inline: bool,
) -> Followers:
    """The node's followers over the services this process built (one of each)."""
    followers: list[Follower] = [
        WebhookDeliveries(webhooks),
        CustomerNotices(mail),
        CallbackTimers(callbacks, cases),
        ResponseClock(targets),
        MemberNotices(ownership, cases, public_key),
        OutcomeFacts(MetricsStore(db, public_key, now=now)),
    ]
    assert tuple(f.name for f in followers) == NAMES
    return Followers(FollowerRunner(db, followers, now=now), inline=inline)


__all__ = ["NAMES", "Followers", "build_followers", "describe", "live"]
