"""Every endpoint of the REST API, declared once for both clients.

Each is a signature and a docstring (``accord.client.operation`` explains how the
arguments become the path, query and body). To cover a new endpoint, add one here with
the method and path exactly as ``/openapi.json`` has them and its request fields as
arguments of the same names; ``tests/client/test_coverage.py`` fails until every
operation outside ``/federation`` has one. The portal variants reuse the case ones.

``/federation/v1/…`` is left out on purpose: those endpoints are for nodes, not
programs; every request but two is signed with the calling node's key, which
``accord.federation`` does (``accord join``, ``accord sync``).
"""

# The declarations' bodies are only docstrings: they are never run.
# mypy: disable-error-code="empty-body"

from __future__ import annotations

from typing import Any

from accord.client.models import (
    Assignment,
    CaseList,
    Changed,
    Invite,
    Json,
    Login,
    Me,
    Note,
    Notification,
    OpenedCase,
    PortalLink,
)
from accord.client.operation import operation, portal


def _remember_csrf(client: Any, result: Login) -> None:
    client.csrf = result["csrf"]


def _forget_csrf(client: Any, _result: None) -> None:
    client.csrf = None


class Endpoints:
    """The API's operations; ``AccordClient`` and ``AsyncAccordClient`` call them."""

    # Operations

    @operation("GET", "/health")
    def health(self) -> Json:
        """Liveness: the process answers."""

    @operation("GET", "/ready")
    def ready(self) -> Json:
        """Readiness: the database answers (``AccordAPIError`` with status 503 if not)."""

    @operation("GET", "/metrics")
    def prometheus_metrics(self) -> bytes:
        """Prometheus metrics (exposition text); needs ``metrics:read`` off loopback."""

    # Session: a member logs in with a password; the client keeps the cookie and the
    # CSRF token and sends them with every later call.

    @operation("POST", "/api/v1/session", after=_remember_csrf)
    def login(self, username: str, password: str) -> Login:
        """Log in as a member: the session lasts 12 hours."""

    @operation("DELETE", "/api/v1/session", after=_forget_csrf)
    def logout(self) -> None:
        """Log out: the session ends."""

    @operation("GET", "/api/v1/me")
    def me(self) -> Me:
        """The authenticated member, their scopes and how they called (api or web)."""

    # Cases

    @operation("GET", "/api/v1/cases")
    def list_cases(
        self, *, limit: int | None = None, offset: int | None = None, resolved: bool | None = None
    ) -> CaseList:
        """Cases, most recently changed first (``limit`` 50 by default, at most 500)."""

    @operation("POST", "/api/v1/cases")
    def open_case(
        self,
        title: str,
        *,
        customer: dict[str, Any] | None = None,
        topics: list[dict[str, Any]] | None = None,
        template: str | None = None,
        route: bool | None = None,
    ) -> OpenedCase:
        """Open a case, with a hosted ``customer`` (``{"id", "name", "kind"}``) and
        ``topics`` (``{"topic", "title"}``); you own it unless ``route`` lets routing
        choose."""

    @operation("GET", "/api/v1/cases/{case_id}")
    def case(self, case_id: str, *, limit: int | None = None) -> Json:
        """The case: agreement, versions, open proposals, activities, timeline."""

    @operation("GET", "/api/v1/cases/{case_id}/events")
    def events(self, case_id: str, *, limit: int | None = None) -> list[Json]:
        """The latest events, newest first."""

    @operation("GET", "/api/v1/cases/{case_id}/bundle")
    def bundle(self, case_id: str) -> bytes:
        """The signed case bundle (JSON lines), for ``accord verify``."""

    @operation("POST", "/api/v1/cases/{case_id}/messages")
    def post_message(self, case_id: str, text: str, *, topic: str | None = None) -> Changed:
        """Post a message to the other parties."""

    @operation("POST", "/api/v1/cases/{case_id}/topics")
    def open_topic(self, case_id: str, topic: str, title: str) -> Changed:
        """Open a topic."""

    @operation("POST", "/api/v1/cases/{case_id}/topics/{topic}/close")
    def close_topic(self, case_id: str, topic: str) -> Changed:
        """Close a topic."""

    @operation("PUT", "/api/v1/cases/{case_id}/info/{key}")
    def set_info(
        self, case_id: str, key: str, value: dict[str, Any], *, label: str | None = None
    ) -> Changed:
        """Share a typed data item that is not an agreed term."""

    @operation("POST", "/api/v1/cases/{case_id}/proposals")
    def propose(
        self,
        case_id: str,
        changes: list[dict[str, Any]],
        *,
        base: int | None = None,
        note: str | None = None,
    ) -> Changed:
        """Propose ``changes`` to the terms, on ``base`` (default: the current version)."""

    @operation("POST", "/api/v1/cases/{case_id}/proposals/{proposal_id}/accept")
    def accept(self, case_id: str, proposal_id: str) -> Changed:
        """Accept a proposal for your party (``StaleProposal`` if its base is old)."""

    @operation("POST", "/api/v1/cases/{case_id}/proposals/{proposal_id}/reject")
    def reject(self, case_id: str, proposal_id: str, *, reason: str | None = None) -> Changed:
        """Reject a proposal."""

    @operation("POST", "/api/v1/cases/{case_id}/proposals/{proposal_id}/counter")
    def counter(
        self,
        case_id: str,
        proposal_id: str,
        changes: list[dict[str, Any]],
        *,
        note: str | None = None,
    ) -> Changed:
        """Counter a proposal with your own ``changes``."""

    @operation("POST", "/api/v1/cases/{case_id}/proposals/{proposal_id}/withdraw")
    def withdraw(self, case_id: str, proposal_id: str, *, reason: str | None = None) -> Changed:
        """Withdraw your party's own open (or crossed) proposal."""

    @operation("POST", "/api/v1/cases/{case_id}/proposals/{proposal_id}/repropose")
    def repropose(self, case_id: str, proposal_id: str) -> Changed:
        """Propose a crossed proposal of yours again on the current version."""

    @operation("POST", "/api/v1/cases/{case_id}/activities")
    def commit(
        self,
        case_id: str,
        activity: str,
        title: str,
        kind: str,
        *,
        owner: str | None = None,
        member: str | None = None,
        due: str | None = None,
        channel: str | None = None,
        topic: str | None = None,
        note: str | None = None,
    ) -> Changed:
        """Promise an activity your party owns at once (a ``callback`` needs ``due``)."""

    @operation("POST", "/api/v1/cases/{case_id}/activities/{activity}/progress")
    def progress(
        self, case_id: str, activity: str, state: str, *, note: str | None = None
    ) -> Changed:
        """Report ``in_progress`` or ``done`` on an activity your party owns."""

    @operation("POST", "/api/v1/cases/{case_id}/satisfied")
    def satisfied(
        self,
        case_id: str,
        *,
        rating: int | None = None,
        note: str | None = None,
        reason: str | None = None,
    ) -> Changed:
        """Say your party is satisfied with the current agreement (``rating`` 1 to 5);
        while agreed activities or topics are open, only with a ``reason`` (close anyway)."""

    @operation("POST", "/api/v1/cases/{case_id}/reopen")
    def reopen(self, case_id: str, reason: str) -> Changed:
        """Reopen a resolved case."""

    @operation("PUT", "/api/v1/cases/{case_id}/status")
    def set_status(self, case_id: str, label: str) -> Changed:
        """Set the case's status label."""

    @operation("GET", "/api/v1/cases/{case_id}/notes")
    def notes(self, case_id: str) -> list[Note]:
        """Internal notes (node-private)."""

    @operation("POST", "/api/v1/cases/{case_id}/notes")
    def add_note(self, case_id: str, text: str) -> Note:
        """Add an internal note: never in the log, a bundle or a sync."""

    @operation("POST", "/api/v1/cases/{case_id}/portal-links")
    def portal_link(
        self, case_id: str, party: str, identity: str, *, hours: int | None = None
    ) -> PortalLink:
        """A case link for a customer this node hosts; its ``token`` is what
        ``AccordClient(portal=…)`` takes."""

    @operation("POST", "/api/v1/cases/{case_id}/invites")
    def invite(self, case_id: str, *, hours: int | None = None) -> Invite:
        """A one-time link for another node to join the case (``accord join``)."""

    # Owners and handoffs

    @operation("GET", "/api/v1/cases/{case_id}/owner")
    def owner(self, case_id: str) -> Json:
        """The owner, the number of transfers and the node-private history."""

    @operation("POST", "/api/v1/cases/{case_id}/route")
    def route(self, case_id: str) -> Assignment:
        """Give an unowned case its owner by the routing rules."""

    @operation("POST", "/api/v1/cases/{case_id}/assign")
    def assign(self, case_id: str, member: str, *, note: str | None = None) -> Assignment:
        """A lead or admin chooses the owner (a username)."""

    @operation("POST", "/api/v1/cases/{case_id}/handoff")
    def handoff(self, case_id: str, to: str, note: str) -> Assignment:
        """Hand the case to another member with a note; the customer is told."""

    # Members, routing and settings

    @operation("GET", "/api/v1/notifications")
    def notifications(self, *, unread: bool | None = None) -> list[Notification]:
        """Your notifications, newest first."""

    @operation("POST", "/api/v1/notifications/read")
    def mark_read(self, ids: list[int]) -> Json:
        """Mark notifications read: ``{"marked": n}``."""

    @operation("PUT", "/api/v1/me/availability")
    def set_availability(self, availability: str) -> Json:
        """``online``, ``away`` or ``off``, for routing."""

    @operation("GET", "/api/v1/routing/teams")
    def teams(self) -> list[Json]:
        """Teams and their leads."""

    @operation("POST", "/api/v1/routing/teams")
    def add_team(self, name: str, *, lead: str | None = None) -> Json:
        """Add a team: ``{"id": …}``."""

    @operation("GET", "/api/v1/routing/members/{username}")
    def member_profile(self, username: str) -> Json:
        """A member's team, skills, availability, load cap and open cases."""

    @operation("PUT", "/api/v1/routing/members/{username}")
    def set_member_profile(
        self,
        username: str,
        *,
        team: str | None = None,
        skills: list[str] | None = None,
        availability: str | None = None,
        max_load: int | None = None,
    ) -> Json:
        """Set a member's team (``""`` for none), skills, availability and load cap."""

    @operation("GET", "/api/v1/routing/rules")
    def rules(self) -> list[Json]:
        """Routing rules, lowest priority first; the first match wins."""

    @operation("POST", "/api/v1/routing/rules")
    def add_rule(
        self,
        *,
        priority: int | None = None,
        team: str | None = None,
        skill: str | None = None,
        template: str | None = None,
        topic: str | None = None,
    ) -> Json:
        """Route cases by ``template`` and/or ``topic`` to a ``team`` and/or ``skill``."""

    @operation("DELETE", "/api/v1/routing/rules/{rule_id}")
    def remove_rule(self, rule_id: int) -> None:
        """Remove a routing rule."""

    @operation("GET", "/api/v1/settings/calendar")
    def calendar(self) -> Json:
        """The business calendar timers use."""

    @operation("PUT", "/api/v1/settings/calendar")
    def set_calendar(
        self,
        timezone: str,
        hours: str,
        *,
        country: str | None = None,
        subdivision: str | None = None,
    ) -> Json:
        """Set the time zone, ``hours`` (``mon-fri 09:00-17:30``) and holidays."""

    # Webhooks (members:admin)

    @operation("GET", "/api/v1/webhooks")
    def webhooks(self) -> Json:
        """The webhooks (``webhooks``) and the event types they can subscribe to."""

    @operation("POST", "/api/v1/webhooks")
    def create_webhook(
        self, url: str, events: list[str], *, allow_private: bool | None = None
    ) -> Json:
        """Subscribe ``url`` to event types; the answer's ``secret`` is shown only now.
        ``allow_private`` lets it reach private addresses (the admin role only)."""

    @operation("GET", "/api/v1/webhooks/{webhook_id}")
    def webhook(self, webhook_id: int) -> Json:
        """One webhook (never its secret)."""

    @operation("PATCH", "/api/v1/webhooks/{webhook_id}")
    def change_webhook(
        self, webhook_id: int, *, active: bool | None = None, events: list[str] | None = None
    ) -> Json:
        """Pause (``active=False``) or resume a webhook, or change its event types."""

    @operation("DELETE", "/api/v1/webhooks/{webhook_id}")
    def delete_webhook(self, webhook_id: int) -> None:
        """Remove a webhook and its delivery log."""

    @operation("GET", "/api/v1/webhooks/{webhook_id}/deliveries")
    def deliveries(
        self,
        webhook_id: int,
        *,
        status: str | None = None,
        limit: int | None = None,
        before: int | None = None,
    ) -> Json:
        """The delivery log, newest first (``status``: pending, delivered or failed;
        ``before``: older than this delivery id)."""

    @operation("POST", "/api/v1/webhooks/deliveries/{delivery_id}/redeliver")
    def redeliver(self, delivery_id: int) -> Json:
        """Send a delivery again now, with the same id and body."""

    # Email (mailboxes need channels:admin; see docs/email.md)

    @operation("GET", "/api/v1/outbound")
    def outbound(
        self,
        *,
        channel: str | None = None,
        status: str | None = None,
        case: str | None = None,
        limit: int | None = None,
    ) -> Json:
        """Outgoing messages on every channel, newest first, each with its fate (queued,
        sent, delivered, read, failed with the reason, bounced, cancelled)."""

    @operation("GET", "/api/v1/mailboxes")
    def mailboxes(self) -> Json:
        """The mailboxes (``mailboxes``), passwords only as ``password_set``."""

    @operation("POST", "/api/v1/mailboxes")
    def add_mailbox(
        self,
        address: str,
        display_name: str,
        *,
        smtp: dict[str, Any] | None = None,
        imap: dict[str, Any] | None = None,
        imap_folder: str | None = None,
        poll_seconds: int | None = None,
        max_attachment_bytes: int | None = None,
        max_message_bytes: int | None = None,
        reply_all: bool | None = None,
    ) -> Json:
        """Add a mailbox; ``smtp`` and ``imap`` are ``{host, port, security, username,
        password}`` (the password is write-only); ``reply_all`` copies a member's reply to
        the others on the customer's last mail (the server's default: on)."""

    @operation("GET", "/api/v1/mailboxes/{mailbox_id}")
    def mailbox(self, mailbox_id: int) -> Json:
        """One mailbox."""

    @operation("PATCH", "/api/v1/mailboxes/{mailbox_id}")
    def change_mailbox(
        self,
        mailbox_id: int,
        *,
        display_name: str | None = None,
        smtp: dict[str, Any] | None = None,
        imap: dict[str, Any] | None = None,
        imap_folder: str | None = None,
        poll_seconds: int | None = None,
        max_attachment_bytes: int | None = None,
        max_message_bytes: int | None = None,
        reply_all: bool | None = None,
        active: bool | None = None,
    ) -> Json:
        """Change a mailbox's servers, limits or state."""

    @operation("DELETE", "/api/v1/mailboxes/{mailbox_id}")
    def remove_mailbox(self, mailbox_id: int) -> None:
        """Stop using a mailbox (kept, inactive)."""

    @operation("GET", "/api/v1/cases/{case_id}/mail")
    def case_mail(self, case_id: str) -> Json:
        """The case's email messages in and out (``messages``), with their status."""

    @operation("POST", "/api/v1/cases/{case_id}/mail")
    def reply_by_mail(self, case_id: str, text: str, *, html: str | None = None) -> Json:
        """Reply to the case's customer by email: written in the case and queued."""

    @operation("POST", "/api/v1/mail/inbound")
    def inbound_mail(self, raw: str, *, recipients: list[str] | None = None) -> Json:
        """Hand in one raw mail, base64 (``raw``), with its envelope ``recipients``."""

    @operation("GET", "/api/v1/mail/messages")
    def mail_messages(
        self,
        *,
        status: str | None = None,
        direction: str | None = None,
        limit: int | None = None,
        before: int | None = None,
    ) -> Json:
        """The mail log, newest first: the outbox, held and failed mail."""

    @operation("GET", "/api/v1/mail/messages/{message_id}")
    def mail_message(self, message_id: int) -> Json:
        """One email message."""

    @operation("GET", "/api/v1/mail/messages/{message_id}/raw")
    def raw_mail(self, message_id: int) -> bytes:
        """The message exactly as received or sent (RFC 5322 bytes)."""

    @operation("POST", "/api/v1/mail/messages/{message_id}/release")
    def release_mail(self, message_id: int, *, link: bool | None = None) -> Json:
        """Append a held message to its case as the case's customer."""

    @operation("POST", "/api/v1/mail/messages/{message_id}/retry")
    def retry_mail(self, message_id: int) -> Json:
        """Send a failed or bounced mail again (same bytes and Message-ID)."""

    @operation("POST", "/api/v1/inbound/{channel}")
    def inbound(
        self,
        channel: str,
        sender: Json,
        text: str,
        *,
        subject: str | None = None,
        external_id: str | None = None,
        thread: list[str] | None = None,
        case_ref: str | None = None,
    ) -> Json:
        """Hand in a message from another system (``sender``: ``{kind, value, name}``;
        the idempotency key is ``external_id``)."""

    # Messaging platforms (see docs/channels.md)

    @operation("GET", "/api/v1/channels")
    def channel_accounts(self) -> list[Json]:
        """The messaging-platform accounts, secrets only by name (``secrets_set``)."""

    @operation("POST", "/api/v1/channels")
    def add_channel_account(
        self,
        platform: str,
        name: str,
        secrets: dict[str, str],
        *,
        settings: dict[str, str] | None = None,
    ) -> Json:
        """Add an account; the answer names its webhook path (``/hooks/{id}``)."""

    @operation("DELETE", "/api/v1/channels/{account_id}")
    def remove_channel_account(self, account_id: int) -> None:
        """Stop answering on an account (kept for its messages' history)."""

    @operation("POST", "/api/v1/cases/{case_id}/reply")
    def reply(
        self,
        case_id: str,
        *,
        text: str | None = None,
        channel: str | None = None,
        template: str | None = None,
        private: bool | None = None,
    ) -> Json:
        """Reply to the customer on the channel they last used (or ``channel``)."""

    # Customers: one record per person across channels (see docs/customers.md)

    @operation("GET", "/api/v1/customers")
    def find_customers(self, *, q: str | None = None, limit: int | None = None) -> list[Json]:
        """Customers whose name or an identity contains ``q``."""

    @operation("GET", "/api/v1/customers/suggestions")
    def customer_suggestions(self, *, limit: int | None = None) -> list[Json]:
        """Pairs of records that are probably one person (``customers``, ``reason``)."""

    @operation("GET", "/api/v1/customers/{customer_id}")
    def customer(self, customer_id: int) -> Json:
        """A customer with every identity and case, merged records included."""

    @operation("GET", "/api/v1/customers/{customer_id}/timeline")
    def customer_timeline(self, customer_id: int, *, limit: int | None = None) -> list[Json]:
        """Every message of every case of the customer, all channels, oldest first."""

    @operation("GET", "/api/v1/customers/{customer_id}/history")
    def customer_history(self, customer_id: int) -> list[Json]:
        """Every link, unlink, merge, unmerge and split, oldest first."""

    @operation("POST", "/api/v1/customers/{customer_id}/identities")
    def link_identity(self, customer_id: int, kind: str, value: str) -> Json:
        """Link an identity (``email``, ``phone``, ``whatsapp``, …) to the customer."""

    @operation("POST", "/api/v1/customers/{customer_id}/identities/remove")
    def unlink_identity(self, customer_id: int, kind: str, value: str) -> Json:
        """Unlink an identity from the customer."""

    @operation("POST", "/api/v1/customers/{customer_id}/merge")
    def merge_customers(self, customer_id: int, other: int) -> Json:
        """Merge record ``other`` into the customer (undo with ``unmerge_customer``)."""

    @operation("POST", "/api/v1/customers/{customer_id}/unmerge")
    def unmerge_customer(self, customer_id: int) -> Json:
        """Undo a merge: the record stands on its own again."""

    @operation("POST", "/api/v1/customers/{customer_id}/split")
    def split_customer(
        self,
        customer_id: int,
        name: str,
        *,
        identities: list[Json] | None = None,
        cases: list[str] | None = None,
    ) -> Json:
        """Move identities (``{kind, value}``) and cases to a new customer ``name``."""

    # Templates (case types), outcome metrics, targets and comparisons

    @operation("GET", "/api/v1/templates")
    def templates(self) -> Json:
        """Templates and their versions, with the cases each version opened."""

    @operation("POST", "/api/v1/templates")
    def apply_template(self, text: str) -> Json:
        """Apply a template file's text: a new version if it changed (workflows:admin)."""

    @operation("GET", "/api/v1/templates/{ref}")
    def template(self, ref: str) -> Json:
        """One version of a template: ``name`` (the latest) or ``name@vN``."""

    @operation("GET", "/api/v1/templates/{ref}/yaml")
    def template_yaml(self, ref: str) -> bytes:
        """A template version as the YAML file ``apply_template`` reads."""

    @operation("GET", "/api/v1/templates/{name}/diff")
    def template_diff(self, name: str, *, a: int, b: int) -> Json:
        """What changed from version ``a`` to version ``b``."""

    @operation("POST", "/api/v1/templates/{ref}/cases")
    def open_from_template(
        self,
        ref: str,
        title: str,
        *,
        customer: dict[str, Any] | None = None,
        version: int | None = None,
    ) -> Json:
        """Open a case from a template; its version is recorded."""

    @operation("POST", "/api/v1/cases/{case_id}/marks")
    def mark_case(
        self,
        case_id: str,
        kind: str,
        *,
        note: str | None = None,
        value: int | None = None,
        party: str | None = None,
    ) -> Json:
        """Mark that the customer was asked to ``identify`` again or to ``repeat``
        something, or record a ``rating`` (node-private)."""

    @operation("GET", "/api/v1/metrics")
    def metrics(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        template: str | None = None,
        team: str | None = None,
        channel: str | None = None,
        member: str | None = None,
        bucket: str | None = None,
    ) -> Json:
        """Every metric over the cases opened in a period, targets, backlog, ageing."""

    @operation("GET", "/api/v1/metrics/export.csv")
    def metrics_csv(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        template: str | None = None,
        team: str | None = None,
        channel: str | None = None,
        member: str | None = None,
    ) -> bytes:
        """The facts of each case, as CSV."""

    @operation("GET", "/api/v1/metrics/series.csv")
    def metrics_series_csv(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        template: str | None = None,
        team: str | None = None,
        channel: str | None = None,
        member: str | None = None,
        bucket: str | None = None,
    ) -> bytes:
        """Each metric per day, week or month, as CSV."""

    @operation("GET", "/api/v1/metrics/cases/{case_id}")
    def case_metrics(self, case_id: str) -> Json:
        """The outcome facts of one case and its marks."""

    @operation("GET", "/api/v1/targets")
    def targets(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        template: str | None = None,
        team: str | None = None,
        channel: str | None = None,
        member: str | None = None,
    ) -> Json:
        """Targets with their owners and where they stand."""

    @operation("POST", "/api/v1/targets")
    def add_target(
        self,
        name: str,
        metric: str,
        op: str,
        threshold: float,
        *,
        stat: str | None = None,
        owner: str | None = None,
        template: str | None = None,
    ) -> Json:
        """Add a target (workflows:admin)."""

    @operation("PUT", "/api/v1/targets/{target_id}/owner")
    def own_target(self, target_id: int, owner: str) -> Json:
        """Give a target its owner (workflows:admin)."""

    @operation("DELETE", "/api/v1/targets/{target_id}")
    def remove_target(self, target_id: int) -> None:
        """Remove a target (workflows:admin)."""

    @operation("GET", "/api/v1/compare")
    def compare(
        self,
        a: str,
        b: str,
        *,
        since: str | None = None,
        until: str | None = None,
        template: str | None = None,
        team: str | None = None,
        channel: str | None = None,
        member: str | None = None,
    ) -> Json:
        """Two groups (``template:billing@v1``, ``period:…``, ``team:…``, ``channel:…``,
        ``member:…``) side by side on every metric, with significance tests."""

    @operation("GET", "/api/v1/customers/{customer_id}/export")
    def export_customer(self, customer_id: int) -> bytes:
        """All of the customer's data as a ZIP (a GDPR access request)."""

    @operation("POST", "/api/v1/customers/{customer_id}/erase")
    def erase_customer(self, customer_id: int) -> Json:
        """Erase the customer's node-private data; the record of the erasure."""

    @operation("GET", "/api/v1/erasures")
    def erasures(self) -> list[Json]:
        """The record of every erasure: when, by whom, how much of what."""

    # The portal: a customer with a case link (AccordClient(portal=token)) acts in that
    # one case as their party, through the same endpoints without the case argument.

    portal_case = portal(case)
    portal_events = portal(events)
    portal_bundle = portal(bundle)
    portal_post_message = portal(post_message)
    portal_open_topic = portal(open_topic)
    portal_close_topic = portal(close_topic)
    portal_set_info = portal(set_info)
    portal_propose = portal(propose)
    portal_accept = portal(accept)
    portal_reject = portal(reject)
    portal_counter = portal(counter)
    portal_withdraw = portal(withdraw)
    portal_repropose = portal(repropose)
    portal_commit = portal(commit)
    portal_progress = portal(progress)
    portal_satisfied = portal(satisfied)
    portal_reopen = portal(reopen)
    portal_set_status = portal(set_status)
