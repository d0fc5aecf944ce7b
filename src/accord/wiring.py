"""One way to build a node's services: ``Services.build(node, now=…)``, once per process.

Every process of a node — the web app (``accord.api.app.create_app``), ``accord serve``
with its timer worker, followers and mail listeners, ``accord worker``, and each command
of the CLI — builds the one ``Services`` below from the node, a clock and a few settings,
and takes every service from it. So there is one ``JobQueue``, one ``Negotiation``, one
``Intake`` per process, each service is built from the others in one place (this module),
and what runs the timers (``Services.handlers``) is the same object that serves the
requests: a reminder's mail goes out through the same ``MailChannel`` the pages use.

Nothing registers itself at import time: the job kinds a worker runs are listed in
``handlers`` below, so adding a kind means adding one line here. This module is the
composition root; the layers below it never import it (import-linter contracts in
``pyproject.toml``), and the interfaces (``accord.api``, ``accord.web``, the CLI) take a
typed ``Services`` rather than ``Any``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from accord.auth.members import MemberStore
from accord.auth.passwords import Passwords
from accord.auth.portal import PortalLinks, load_or_create_secret
from accord.auth.sessions import SessionStore
from accord.auth.tokens import TokenStore
from accord.channels.blobs import node_blobs
from accord.channels.connectors.accounts import SEND as CHANNEL_SEND
from accord.channels.connectors.accounts import Connectors
from accord.channels.email.mailboxes import Mailboxes
from accord.channels.email.mailchannel import DEFAULT_PUBLIC_URL, MailChannel
from accord.channels.email.outbox import SEND as MAIL_SEND
from accord.channels.email.outbox import Outbox
from accord.channels.intake import Intake
from accord.channels.webchat import WebChat
from accord.customers.records import CustomerRecords
from accord.federation.push import PeerPushers
from accord.federation.sync import Federation, party_nodes
from accord.integrations import webhooks as webhook_jobs
from accord.integrations.webhooks import Webhooks
from accord.jobs.queue import JobQueue
from accord.jobs.runner import default_worker_id, local_worker_gone, system_clock
from accord.jobs.worker import Handler, Worker
from accord.node import Node, party_slug
from accord.service import callbacks as callback_jobs
from accord.service.callbacks import Callbacks
from accord.service.digest import DIGEST, Digest
from accord.service.followers import Followers, build_followers
from accord.service.negotiation import Negotiation
from accord.service.notes import Notes
from accord.service.ownership import Ownership
from accord.service.sla import BREACH, ResponseTargets

Clock = Callable[[], datetime]
log = logging.getLogger("accord.jobs")


@dataclass
class Services:
    """Everything a process of a node uses, built once (``build``) and shared."""

    node: Node
    now: Clock
    party_id: str
    jobs: JobQueue
    negotiation: Negotiation
    notes: Notes
    members: MemberStore
    tokens: TokenStore
    sessions: SessionStore
    links: PortalLinks
    federation: Federation
    ownership: Ownership
    callbacks: Callbacks
    targets: ResponseTargets
    digest: Digest
    webhooks: Webhooks
    intake: Intake
    mail: MailChannel
    customers: CustomerRecords
    webchat: WebChat
    connectors: Connectors
    followers: Followers
    pushers: PeerPushers
    background: ThreadPoolExecutor

    @classmethod
    def build(
        cls,
        node: Node,
        *,
        now: Clock = system_clock,
        transport: httpx.BaseTransport | None = None,
        passwords: Passwords | None = None,
        inline_followers: bool = True,
        channel_client: Callable[[], httpx.Client] | None = None,
    ) -> Services:
        """The node's services on the clock ``now``. ``transport`` carries requests to
        other nodes (tests route them in memory); ``passwords`` is the members' hashing
        (argon2id's production profile by default); with ``inline_followers`` the
        followers of the case log run in the writer's thread right after each commit
        (tests, one-shot commands), otherwise a loop runs them (``Followers.run``);
        ``channel_client`` makes the messaging platforms' HTTP clients (tests)."""
        party_id = party_slug(node.name)
        jobs = JobQueue(node.db, now=now)
        blobs = node_blobs(node.data_dir)
        negotiation = Negotiation(node.cases, node.key, now=now)
        members = MemberStore(node.db, passwords=passwords, now=now)
        ownership = Ownership(node.cases, node.key, members, now=now)
        federation = Federation(node, negotiation, now=now, transport=transport)
        links = PortalLinks(load_or_create_secret(node.db), now=now)
        intake = Intake(node, negotiation, ownership, party_id=party_id, now=now)
        mailboxes = Mailboxes(node.db, node.key, now=now)
        mail = MailChannel(
            node,
            intake,
            Outbox(node.db, blobs, mailboxes, jobs, ownership, now=now),
            mailboxes,
            blobs,
            links,
            negotiation,
            now=now,
            public_url=lambda: node.url or DEFAULT_PUBLIC_URL,
        )
        callbacks = Callbacks(node.cases, node.key, ownership, jobs, now=now)
        callbacks.on_remind.append(mail.remind_callback)  # an email customer hears when
        targets = ResponseTargets(node.cases, node.key, ownership, jobs, now=now)
        webhooks = Webhooks(node.db, node.cases, node.key, jobs, now=now)
        followers = build_followers(
            node.db,
            node.cases,
            node.key.public,
            webhooks=webhooks,
            mail=mail,
            callbacks=callbacks,
            targets=targets,
            ownership=ownership,
            now=now,
            inline=inline_followers,
        )
        services = cls(
            node=node,
            now=now,
            party_id=party_id,
            jobs=jobs,
            negotiation=negotiation,
            notes=Notes(node.cases, now=now, ownership=ownership),
            members=members,
            tokens=TokenStore(node.db, now=now),
            sessions=SessionStore(node.db, now=now),
            links=links,
            federation=federation,
            ownership=ownership,
            callbacks=callbacks,
            targets=targets,
            digest=Digest(node.cases, ownership, jobs, now=now),
            webhooks=webhooks,
            intake=intake,
            mail=mail,
            customers=CustomerRecords(node.cases, now=now),
            webchat=WebChat(intake, Notes(node.cases, now=now), now=now),
            connectors=Connectors(intake, negotiation, blobs, jobs, now=now, client=channel_client),
            followers=followers,
            pushers=PeerPushers(federation, now=now),
            background=ThreadPoolExecutor(max_workers=2, thread_name_prefix="accord-push"),
        )
        negotiation.listeners.append(services.push_later)
        negotiation.listeners.append(followers.wake)
        ownership.listeners.append(negotiation.announce)
        return services

    # -- the timers and the outbox -----------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        """Every kind of job this node runs, and the service method that runs it."""
        return {
            callback_jobs.REMIND: self.callbacks.remind,
            callback_jobs.MISSED: self.callbacks.missed,
            BREACH: self.targets.breach,
            DIGEST: self.digest.run,
            webhook_jobs.DELIVER: self.webhooks.deliver,
            webhook_jobs.TIMER: self.webhooks.activity_timer,
            MAIL_SEND: self.mail.outbox.send,
            CHANNEL_SEND: self.connectors.send,
        }

    def worker(
        self,
        *,
        worker_id: str | None = None,
        lease: timedelta = timedelta(minutes=5),
        batch: int = 20,
        handlers: dict[str, Handler] | None = None,
    ) -> Worker:
        """A worker on the node's queue running ``handlers`` (every kind by default)."""
        return Worker(
            self.node.db,
            self.jobs,
            self.handlers() if handlers is None else handlers,
            worker_id=worker_id or default_worker_id(),
            now=self.now,
            lease=lease,
            batch=batch,
        )

    def prepare(self) -> None:
        """Before a worker starts: the jobs a dead worker of this machine held (a killed
        ``accord serve``), timers for callbacks agreed while no worker ran, response clocks
        rebuilt from the case logs, and the next daily digest. Each is idempotent: a timer
        that already fired does not fire again. A failure is logged, and the worker starts
        anyway (its timers then come from the followers as cases change)."""
        try:
            reaped = self.jobs.reap(local_worker_gone)
            if reaped:
                log.info("took back %d job(s) from a worker process that died", reaped)
            self.callbacks.reconcile_all()
            self.targets.reconcile_all()
            self.digest.ensure_scheduled()
        except Exception:
            log.exception("could not prepare the timers at start")

    # -- after a write ------------------------------------------------------------------

    def push_later(self, case_id: str, event_ids: list[str]) -> None:
        """After a local write: start the pushes to peers now, off the request. They
        follow the log from each peer's mark (``accord.federation.push``), so this is
        only a wake-up: ``accord serve`` and ``accord worker`` run the pushers' loop;
        with inline followers (tests, one-shot tools) a pass runs in the background."""
        if self.followers.inline:
            self.background.submit(self.pushers.catch_up)
        else:
            self.pushers.wake(case_id, event_ids)

    def pull_later(self, case_id: str, sender: str) -> None:
        """A peer pushed events whose predecessors this node lacks: pull them from it."""
        state = self.node.cases.state(case_id)
        party = party_nodes(state).get(sender) if state else None
        if party and party.get("url"):
            self.background.submit(self.federation.pull, case_id, sender, party["url"])

    def close(self) -> None:
        self.background.shutdown(wait=True)
        self.pushers.close()
        self.federation.close()


__all__ = ["Clock", "Services", "default_worker_id", "system_clock"]
