"""The schema, as SQLAlchemy Core tables (migrations in ``migrations/versions``).

Shared log: ``cases`` (one row per case with its materialised state) and ``events``
(the signed events, unique per case, with what the fold derived about each).
Node-private: ``node_info`` (this node's identity), ``known_nodes`` (keys of other
nodes), ``notes`` (internal notes on cases), and the members and credentials of
``accord.auth``: ``members``, ``web_sessions``, ``api_tokens`` and ``node_secrets``,
and ``request_nonces`` (nonces of signed requests from other nodes, for replay protection),
and the outbound ``webhooks`` with their ``webhook_deliveries`` and ``webhook_attempts``.
Node-private tables are never read by anything that exports or replicates.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("case_id", sa.String(71), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("state", sa.LargeBinary, nullable=False),
    sa.Column("state_hash", sa.String(71), nullable=False),
    sa.Column("auth_ids", sa.LargeBinary, nullable=False),
    sa.Column("event_count", sa.Integer, nullable=False),
    sa.Column("last_depth", sa.Integer, nullable=False),
    sa.Column("resolved", sa.Boolean, nullable=False),
    sa.Column("opened_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_cases_updated_at", "updated_at"),  # migration 0022: the inbox's order
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("pos", BigId, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(71), nullable=False),
    sa.Column("event_id", sa.String(71), nullable=False),
    sa.Column("author", sa.String(51), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("depth", sa.Integer, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("raw", sa.LargeBinary, nullable=False),
    sa.Column("sig", sa.String(86), nullable=False),
    sa.Column("clock", sa.LargeBinary, nullable=False),
    sa.Column("auth", sa.Text, nullable=False),
    sa.Column("party", sa.String(64)),
    sa.Column("verdict", sa.Text),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("case_id", "event_id", name="uq_events_case_event"),
    sa.Index("ix_events_case_author_seq", "case_id", "author", "seq"),
    sa.Index("ix_events_case_order", "case_id", "depth", "event_id"),
)

node_info = sa.Table(
    "node_info",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("public_key", sa.String(51), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("url", sa.Text),
    sa.Column("personal", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

known_nodes = sa.Table(
    "known_nodes",
    metadata,
    sa.Column("public_key", sa.String(51), primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("url", sa.Text),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
)

notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(71), nullable=False, index=True),
    sa.Column("member", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# -- members and credentials (node-private, migration 0002) ----------------------------

members = sa.Table(
    "members",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("disabled_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("username", name="uq_members_username"),
)

web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column(
        "member_id",
        sa.Integer,
        sa.ForeignKey("members.id", name="fk_web_sessions_member", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "member_id",
        sa.Integer,
        sa.ForeignKey("members.id", name="fk_api_tokens_member", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
)

node_secrets = sa.Table(
    "node_secrets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
)

case_snapshots = sa.Table(
    "case_snapshots",
    metadata,
    sa.Column("case_id", sa.String(71), primary_key=True),
    sa.Column("depth", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.String(71), primary_key=True),
    sa.Column("state", sa.LargeBinary, nullable=False),
    sa.Column("auth_len", sa.Integer, nullable=False),
)
"""The fold's state after event ``(depth, event_id)``, kept every few hundred events so a
concurrent event that sorts early re-folds only the tail after the nearest snapshot."""

# -- federation (node-private, migration 0004) -----------------------------------------

request_nonces = sa.Table(
    "request_nonces",
    metadata,
    sa.Column("node", sa.String(51), primary_key=True),
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)
"""Nonces of signed requests from other nodes, kept until they expire so a captured
request is accepted once (``accord.federation.signing.DbNonceStore``)."""

invites = sa.Table(
    "invites",
    metadata,
    sa.Column("secret_hash", sa.String(64), primary_key=True),
    sa.Column("case_id", sa.String(71), nullable=False, index=True),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True)),
    sa.Column("used_by", sa.String(51)),
)
"""One-time invitations into a case (node-private; only the secret's SHA-256 is kept)."""

peer_sync = sa.Table(
    "peer_sync",
    metadata,
    sa.Column("peer", sa.String(51), primary_key=True),
    sa.Column("case_id", sa.String(71), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("last_sync_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("events_received", sa.Integer, nullable=False),
    sa.Column("bytes_received", sa.BigInteger, nullable=False),
    sa.Column("we_lack", sa.Integer),  # migration 0024: the last comparison of heads
    sa.Column("they_lack", sa.Integer),
    sa.Column("compared_at", sa.DateTime(timezone=True)),
)
"""How syncing each case with each peer went: for `accord peers` and backoff. ``we_lack``
and ``they_lack`` count the events one side held and the other lacked when the heads were
last compared (a pull, a push's answer, or the periodic comparison), at ``compared_at``."""

# -- durable jobs and timers (node-private, migration 0006) ----------------------------

JOB_STATUSES = ("pending", "running", "done", "failed", "cancelled")
UNFINISHED_JOB = "status IN ('pending', 'running')"

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("key", sa.Text),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("locked_by", sa.Text),
    sa.Column("locked_until", sa.DateTime(timezone=True)),
    sa.Column("lease_token", sa.String(32)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    sa.CheckConstraint(
        "status IN ('pending', 'running', 'done', 'failed', 'cancelled')", name="ck_jobs_status"
    ),
    sa.Index("ix_jobs_status_run_at", "status", "run_at", "id"),  # id: FIFO among equal times
    sa.Index(
        "uq_jobs_key_unfinished",
        "key",
        unique=True,
        postgresql_where=sa.text(UNFINISHED_JOB),
        sqlite_where=sa.text(UNFINISHED_JOB),
    ),
)
"""Durable jobs and timers (``accord.jobs``): a job runs once, at or after ``run_at``, in
the same transaction as its effects. ``key`` names at most one unfinished job (pending or
running), so rescheduling by key replaces it. Times are stored in UTC."""

teams = sa.Table(
    "teams",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("lead_member_id", sa.Integer, sa.ForeignKey("members.id", name="fk_teams_lead")),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("name", name="uq_teams_name"),
)
"""Teams of members; a team's lead is who missed promises escalate to."""

member_routing = sa.Table(
    "member_routing",
    metadata,
    sa.Column(
        "member_id",
        sa.Integer,
        sa.ForeignKey("members.id", name="fk_member_routing_member", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id", name="fk_member_routing_team")),
    sa.Column("skills", sa.Text, nullable=False),
    sa.Column("availability", sa.String(16), nullable=False),
    sa.Column("max_load", sa.Integer),
    sa.Column("last_assigned_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
"""How cases reach a member: team, skills, availability (online, away, off), load cap."""

routing_rules = sa.Table(
    "routing_rules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("template", sa.String(100)),
    sa.Column("topic", sa.String(64)),
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id", name="fk_routing_rules_team")),
    sa.Column("skill", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
"""Which team or skill a new case needs, by its template or topics; lowest priority first."""

case_owners = sa.Table(
    "case_owners",
    metadata,
    sa.Column("case_id", sa.String(71), primary_key=True),
    sa.Column(
        "member_id",
        sa.Integer,
        sa.ForeignKey("members.id", name="fk_case_owners_member"),
        nullable=False,
        index=True,
    ),
    sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("transfers", sa.Integer, nullable=False),
)
"""The one accountable member of each case this node's party is in (node-private)."""

assignment_history = sa.Table(
    "assignment_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(71), nullable=False, index=True),
    sa.Column("from_member_id", sa.Integer),
    sa.Column("to_member_id", sa.Integer, nullable=False),
    sa.Column("by_member_id", sa.Integer),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("summary", sa.Text),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
"""Every routing, override and handoff, with its note and the summary handed over."""

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "member_id",
        sa.Integer,
        sa.ForeignKey("members.id", name="fk_notifications_member", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("case_id", sa.String(71)),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("read_at", sa.DateTime(timezone=True)),
)
"""What a member should know now: assignments, handoffs, reminders, escalations."""

node_settings = sa.Table(
    "node_settings",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
"""Small node-wide settings as JSON, such as the business calendar."""

# -- outbound webhooks (node-private, migration 0008) ----------------------------------

DELIVERY_STATUSES = ("pending", "delivered", "failed")

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("allow_private", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
)
"""Subscriptions of outside systems to case events (``accord.integrations.webhooks``).
``secret`` is the HMAC key deliveries are signed with, kept to sign (shown once, at
creation) and sealed with the secrets key (``accord.store.secrets``, migration 0025);
``events`` is a JSON list of event types; ``allow_private`` (set only by an admin) lets
the URL reach private and loopback addresses."""

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "webhook_id",
        sa.Integer,
        sa.ForeignKey("webhooks.id", name="fk_webhook_deliveries_webhook", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("case_id", sa.String(71)),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("idempotency_key", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("idempotency_key", name="uq_webhook_deliveries_idempotency_key"),
    sa.CheckConstraint(
        "status IN ('pending', 'delivered', 'failed')", name="ck_webhook_deliveries_status"
    ),
    sa.Index("ix_webhook_deliveries_stream", "webhook_id", "case_id", "id"),
)
"""One notification for one webhook: its exact body (the same bytes on every attempt),
the key receivers deduplicate by, and where its delivery stands. Deliveries of one
webhook and case are sent in ``id`` order."""

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "delivery_id",
        BigId,
        sa.ForeignKey(
            "webhook_deliveries.id", name="fk_webhook_attempts_delivery", ondelete="CASCADE"
        ),
        nullable=False,
        index=True,
    ),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
)
"""Every attempt to send a delivery: the receiver's status code, or why there was none."""

# -- channels (node-private): customers, their identities, messages in and out --------

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("merged_into", sa.Integer, sa.ForeignKey("customers.id", name="fk_customers_merged")),
)
"""A person or organisation this node serves. Never replicated: in the shared log a
customer is only a party with a display name."""

customer_identities = sa.Table(
    "customer_identities",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "customer_id",
        sa.Integer,
        sa.ForeignKey("customers.id", name="fk_customer_identities_customer"),
        nullable=False,
        index=True,
    ),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("value", sa.String(320), nullable=False),
    sa.Column("verified", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("kind", "value", name="uq_customer_identities_kind_value"),
)
"""How a customer reaches us: ``email`` (lower-cased address), and later phone, chat ids."""

case_customers = sa.Table(
    "case_customers",
    metadata,
    sa.Column("case_id", sa.String(71), primary_key=True),
    sa.Column("party_id", sa.String(64), primary_key=True),
    sa.Column(
        "customer_id",
        sa.Integer,
        sa.ForeignKey("customers.id", name="fk_case_customers_customer"),
        nullable=False,
        index=True,
    ),
)
"""Which customer record stands behind a hosted party of a case."""

case_refs = sa.Table(
    "case_refs",
    metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(71), nullable=False, unique=True),
    sa.Column("token", sa.String(32), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
"""A case's short number (for subject tags, ``[Accord #12]``) and the secret token of its
direct line (``support+<token>@…``), made when the case first meets a channel."""

mailboxes = sa.Table(
    "mailboxes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("address", sa.String(320), nullable=False, unique=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("settings", sa.LargeBinary, nullable=False),
    sa.Column("secrets", sa.LargeBinary, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("imap_uidvalidity", sa.BigInteger),
    sa.Column("imap_last_uid", sa.BigInteger),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
"""An email address Accord answers for: SMTP relay and IMAP account settings (JSON) and
their passwords (JSON, sealed with the secrets key, ``accord.store.secrets``; never
shown), and how far IMAP polling has read."""

channel_messages = sa.Table(
    "channel_messages",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("direction", sa.String(3), nullable=False),
    sa.Column(
        "mailbox_id", sa.Integer, sa.ForeignKey("mailboxes.id", name="fk_channel_messages_mailbox")
    ),
    sa.Column("external_id", sa.Text, nullable=False),
    sa.Column("dedupe_key", sa.String(80), unique=True),
    sa.Column("case_id", sa.String(71), index=True),
    sa.Column("customer_id", sa.Integer),
    sa.Column("event_id", sa.String(71)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("sender", sa.Text, nullable=False),
    sa.Column("recipients", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary),
    sa.Column("thread", sa.Text, nullable=False),
    sa.Column("raw_sha256", sa.String(64)),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("flags", sa.Text, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("done_at", sa.DateTime(timezone=True)),
    sa.Column("idempotency_key", sa.String(240)),  # migration 0028
    sa.Index("ix_channel_messages_external", "channel", "external_id"),
    sa.Index("ix_channel_messages_sender", "channel", "sender", "created_at"),
    sa.Index("ux_channel_messages_idempotency", "channel", "idempotency_key", unique=True),
)
"""Every message in or out on a channel. Inbound ``status``: ``stored`` (appended to a
case), ``held`` (waiting for a member), ``ignored`` (auto-reply, loop, list mail),
``bounce``; outbound: ``queued``, ``sent``, ``failed``, ``bounced``. ``external_id`` is the
Message-ID (threading looks it up in both directions), ``dedupe_key`` makes a second
delivery of the same message a no-op, ``thread`` holds In-Reply-To/References (JSON),
``body`` what a held message would post (JSON: text, attachments, sender name) until a
member releases it. ``idempotency_key``: the inbound API's Idempotency-Key
(``<channel>:<key>``), unique per channel, so one key names one message even when two
requests carry it at once; empty for every other message."""

# -- imports (node-private, migration 0013) ---------------------------------------------

import_keys = sa.Table(
    "import_keys",
    metadata,
    sa.Column("source", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("external_id", sa.String(200), primary_key=True),
    sa.Column("local_id", sa.String(100), nullable=False),
    sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
)
"""What each record of an import (``kind``: customer, case, entry) became here
(``local_id``: customer id, case id, event id or ``note:<id>``), per ``source`` (e.g.
``zendesk:acme``): a second import of the same export finds everything and changes
nothing; a later export adds only what is new."""

# -- customer changes (node-private, migration 0016) --------------------------------------

customer_changes = sa.Table(
    "customer_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("by", sa.Text, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("customer_id", sa.Integer, nullable=False, index=True),
    sa.Column("other_id", sa.Integer),
    sa.Column("detail", sa.Text, nullable=False),
)
"""Every change members make to customer records — ``link``, ``unlink``, ``merge``,
``unmerge``, ``split`` — with who, when and what moved (``detail``, JSON): the audit
trail, and what an undo needs."""

# -- messaging-platform accounts (node-private, migration 0019) ---------------------------

channel_accounts = sa.Table(
    "channel_accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("settings", sa.Text, nullable=False),
    sa.Column("secrets", sa.LargeBinary, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
"""A WhatsApp number, Messenger page, Telegram bot, Twilio number or X account Accord
answers on: its settings (JSON) and secrets (JSON, sealed with the secrets key like
mailbox passwords, ``accord.store.secrets``; never shown)."""
# -- templates, outcome metrics and targets (node-private, migration 0020) -------------

case_templates = sa.Table(
    "case_templates",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
)
"""Every version of every case type (``accord.templates``): ``spec`` is its canonical JSON.
Versions are never changed; applying a changed file adds the next version."""

template_cases = sa.Table(
    "template_cases",
    metadata,
    sa.Column("case_id", sa.String(71), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)
"""Which template version each case was opened from (the log carries only the name)."""

case_marks = sa.Table(
    "case_marks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(71), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("party", sa.String(64)),
    sa.Column("value", sa.Integer),
    sa.Column("member_id", sa.Integer, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('identify', 'repeat', 'rating')", name="ck_case_marks_kind"),
)
"""A member's one-click marks: the customer was asked to identify again or to repeat
something, or a party's satisfaction rating (1-5) taken outside the case."""

case_metrics = sa.Table(
    "case_metrics",
    metadata,
    sa.Column("case_id", sa.String(71), primary_key=True),
    sa.Column("event_count", sa.Integer, nullable=False),
    sa.Column("marks", sa.Integer, nullable=False),
    sa.Column("template", sa.String(64)),
    sa.Column("template_version", sa.Integer),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("member_id", sa.Integer),
    sa.Column("team_id", sa.Integer),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("first_response_at", sa.DateTime(timezone=True)),
    sa.Column("first_agreement_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("first_response_s", sa.Integer),
    sa.Column("agreement_s", sa.Integer),
    sa.Column("resolution_s", sa.Integer),
    sa.Column("transfers", sa.Integer, nullable=False),
    sa.Column("repeats", sa.Integer, nullable=False),
    sa.Column("callbacks_promised", sa.Integer, nullable=False),
    sa.Column("callbacks_kept", sa.Integer, nullable=False),
    sa.Column("activities_promised", sa.Integer, nullable=False),
    sa.Column("activities_kept", sa.Integer, nullable=False),
    sa.Column("rounds", sa.Integer, nullable=False),
    sa.Column("reopenings", sa.Integer, nullable=False),
    sa.Column("rating", sa.Float),
    sa.Column("deviations", sa.Integer),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_case_metrics_opened", "opened_at"),
    sa.Index("ix_case_metrics_template", "template", "template_version", "opened_at"),
)
"""One row of outcome facts per case (``accord.outcomes``), derived from its log and the
node's private data; recomputed when the case's event count or marks change. Durations
are seconds of business time; ``resolved_at`` is null while the case is open."""

metric_targets = sa.Table(
    "metric_targets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("metric", sa.String(32), nullable=False),
    sa.Column("stat", sa.String(16), nullable=False),
    sa.Column("op", sa.String(2), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column(
        "owner_member_id", sa.Integer, sa.ForeignKey("members.id", name="fk_metric_targets_owner")
    ),
    sa.Column("template", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
"""Goals for outcomes ("median time to agreement under 4 business hours"), each with the
member accountable for it; ``template`` narrows a goal to one case type."""

practice_runs = sa.Table(
    "practice_runs",
    metadata,
    sa.Column("case_id", sa.String(71), primary_key=True),
    sa.Column(
        "member_id",
        sa.Integer,
        sa.ForeignKey("members.id", name="fk_practice_runs_member", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)
"""Practice cases (``accord practice``): a member's rehearsal with a simulated customer,
kept out of every metric."""

# -- erasures (node-private, migration 0021) ----------------------------------------------

erasures = sa.Table(
    "erasures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer_id", sa.Integer, nullable=False, unique=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("by", sa.Text, nullable=False),
    sa.Column("removed", sa.Text, nullable=False),
)
"""That a customer's node-private data was erased, when, by whom, and how much of each kind
(``removed``, JSON counts): the proof of an erasure, holding no personal data itself."""

# -- the members' inbox (node-private, derived, migration 0022) ---------------------------

case_inbox = sa.Table(
    "case_inbox",
    metadata,
    sa.Column("case_id", sa.String(71), primary_key=True),
    sa.Column("event_count", sa.Integer, nullable=False),
    sa.Column("next_due", sa.String(32), index=True),
    sa.Column("waiting", sa.Boolean, nullable=False),
    sa.Column("last_message_at", sa.String(32)),
    sa.Column("last_reply_at", sa.String(32)),
    sa.Column("needs_reply", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("messages", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_in_at", sa.String(32)),
    sa.Column("preview", sa.Text),
    sa.Column("preview_ours", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("party_name", sa.Text),
    sa.Column("via", sa.String(32)),
)
"""What the inbox sorts and filters by, per case, derived from its state (``accord.service
.inbox``): the earliest due time of an open activity of this node's party, whether the case
waits on another party, and when the last message and this party's last reply were
posted. ``event_count`` says which state it was computed from; a row that lags its case is
recomputed before the inbox is read. Migration 0026 (the agent's desk): whether the case
needs a reply from us (the last word is another party's, no person here answered it), how
many messages it has (against each member's read mark), when another party last wrote,
one line of the last message (and whether we wrote it), the other party's name and the
channel they came by."""

case_reads = sa.Table(
    "case_reads",
    metadata,
    sa.Column(
        "member_id",
        sa.Integer,
        sa.ForeignKey("members.id", name="fk_case_reads_member", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("case_id", sa.String(71), primary_key=True),
    sa.Column("messages", sa.Integer, nullable=False),
)
"""How many messages of a case a member had seen when they last opened it (migration 0026):
the case is unread for them while it has more."""

saved_views = sa.Table(
    "saved_views",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "member_id",
        sa.Integer,
        sa.ForeignKey("members.id", name="fk_saved_views_member", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("query", sa.String(1000), nullable=False),
    sa.UniqueConstraint("member_id", "name", name="uq_saved_views_member_name"),
)
"""A member's saved inbox views: a name and the inbox's query string (migration 0026)."""

canned_replies = sa.Table(
    "canned_replies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("title", sa.String(120), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("title", name="uq_canned_replies_title"),
)
"""Replies members insert with one choice, with placeholders (``{customer}``, ``{owner}``,
``{case_link}``, ``{next_due}``, …) filled for the case; kept by leads (migration 0026)."""

member_prefs = sa.Table(
    "member_prefs",
    metadata,
    sa.Column(
        "member_id",
        sa.Integer,
        sa.ForeignKey("members.id", name="fk_member_prefs_member", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("zone", sa.String(64)),
    sa.Column("clock", sa.String(3), nullable=False),
)
"""The zone (none: the business calendar's) and clock (``24h`` or ``12h``) a member reads
times in on the pages (migration 0026)."""

case_presence = sa.Table(
    "case_presence",
    metadata,
    sa.Column("case_id", sa.String(71), primary_key=True),
    sa.Column(
        "member_id",
        sa.Integer,
        sa.ForeignKey("members.id", name="fk_case_presence_member", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("typing_at", sa.DateTime(timezone=True)),
)
"""Who has a case open and who is typing a reply (migration 0027): the case page refreshes
its member's row; rows older than ``accord.service.presence.PRESENCE_TTL`` mean nobody.
In the database so that every process sees every member."""

# -- followers of the case log (node-private, migration 0023) ------------------------------

follower_marks = sa.Table(
    "follower_marks",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", BigId, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("retry_at", sa.DateTime(timezone=True)),
)
"""How far each follower (``accord.jobs.follow``) has read the log: the ``events.pos`` of
the last event it has acted on, advanced in the same transaction as what it wrote. A
follower that failed shows its error and waits until ``retry_at``."""
