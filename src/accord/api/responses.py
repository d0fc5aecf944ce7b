"""Response bodies of the REST API: what each operation returns, so ``/openapi.json``
describes every success body and integrators (and ``accord.client``) get their types from
the document rather than from reading the code.

Shapes only, written to match the JSON the services build field for field and in the
same order (the bodies are byte-for-byte those of the untyped API; the clients and tests
depend on them). Every model forbids fields it does not name when the server checks its
own answer, so a field added to a service's dict without its model fails the tests loudly
instead of vanishing from the response; the published schema leaves
``additionalProperties`` open, so a client built from it keeps working when a later
version adds a field. A body is ``open`` (any further keys) only where it is open-ended by
nature, such as the case state, and the field's description says so.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def _open_to_additions(schema: dict[str, Any]) -> None:
    schema.pop("additionalProperties", None)


class Out(BaseModel):
    """A response body: exactly these fields when sent, open to additions when read."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_open_to_additions)


OPEN = "Open-ended: further keys may appear."
CASE_STATE = "Part of the case state as the core folds it (open-ended; see docs/api.md)."


# -- operations -----------------------------------------------------------------------


class HealthOut(Out):
    status: str = Field(examples=["ok"])
    version: str


class ReadyOut(Out):
    status: str = Field(description="`ready`, or `unavailable` (then 503 with `database`).")
    database: str | None = Field(None, description="`unreachable` when the answer is 503.")


# -- session and members --------------------------------------------------------------


class MemberOut(Out):
    id: int
    username: str
    display_name: str
    role: str


class LoginOut(Out):
    member: MemberOut
    csrf: str = Field(description="Send it as `X-CSRF-Token` with every session write.")


class MeOut(MemberOut):
    scopes: list[str]
    via: str = Field(description="How the member authenticated: `api` (token) or `session`.")


# -- cases ----------------------------------------------------------------------------


class CaseRow(Out):
    case: str
    title: str
    events: int
    resolved: bool
    opened: str
    updated: str


class CaseList(Out):
    cases: list[CaseRow]
    limit: int
    offset: int


class Changed(Out):
    """The case and the ids of the events this change signed."""

    case: str
    events: list[str]


class OwnerRef(Out):
    member: str = Field(description="The owner's username.")
    name: str = Field(description="The owner's display name.")


class AssignmentOut(Out):
    case: str
    owner: OwnerRef
    transfers: int
    assigned: str


class OpenedCase(Changed):
    owner: AssignmentOut


class EventAuthor(Out):
    member: str | None
    party: str | None
    via: str | None = Field(None, description="Present when the event names a channel.")


class EventSummary(Out):
    id: str
    type: str
    time: str
    depth: int
    author: EventAuthor
    body: dict[str, Any] = Field(description="The event's body, by type (open-ended).")


class Agreement(Out):
    version: int
    data: dict[str, Any] = Field(description=CASE_STATE)
    activities: dict[str, Any] = Field(description=CASE_STATE)
    proposal: str | None
    acceptances: dict[str, Any] = Field(description=CASE_STATE)
    time: str | None


class CaseOpened(Out):
    by: str = Field(description="The party that opened the case.")
    event: str
    time: str


class OpenWork(Out):
    activities: list[str] = Field(description="Activities not yet done or cancelled.")
    topics: list[str] = Field(description="Topics still open.")


class CaseView(Out):
    """The case as the API and pages show it. The maps inside are the case state as the
    core folds it (``accord.core``): open-ended, keyed by party, topic, proposal,
    activity or info key."""

    case: str
    title: str
    opened: CaseOpened | None
    template: Any = Field(description="The template the case was opened from, if any.")
    parties: dict[str, Any] = Field(description=CASE_STATE)
    topics: dict[str, Any] = Field(description=CASE_STATE)
    status: str | None
    resolved: bool
    reopened: int = Field(description="How many times the case was reopened.")
    satisfied: dict[str, Any] = Field(description=CASE_STATE)
    agreement: Agreement
    agreements: list[dict[str, Any]] = Field(description=CASE_STATE)
    open_proposals: dict[str, Any] = Field(description=CASE_STATE)
    crossed_proposals: dict[str, Any] = Field(description=CASE_STATE)
    open_work: OpenWork
    superseded: list[Any] = Field(description=CASE_STATE)
    activities: dict[str, list[dict[str, Any]]] = Field(
        description="Every activity grouped by state (" + CASE_STATE + ")"
    )
    info: dict[str, Any] = Field(description=CASE_STATE)
    messages: int = Field(description="How many messages the case holds.")
    events: int = Field(description="How many events the case holds.")
    evidence: list[Any] = Field(description=CASE_STATE)
    equivocations: list[Any] = Field(description=CASE_STATE)
    timeline: list[EventSummary]


class NoteOut(Out):
    id: int
    member: str
    text: str
    created: str


class PortalLinkOut(Out):
    token: str
    path: str
    expires: str


class InviteOut(Out):
    link: str
    expires: str


# -- ownership, routing, notifications, calendar ----------------------------------------


class HandoverOut(Out):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    at: str
    reason: str
    from_: str | None = Field(alias="from")
    to: str | None
    by: str | None
    note: str | None
    summary: str | None


class OwnerOut(Out):
    owner: AssignmentOut | None
    history: list[HandoverOut]


class NotificationOut(Out):
    id: int
    case: str | None
    kind: str
    text: str
    created: str
    read: bool


class MarkedOut(Out):
    marked: int


class ProfileOut(Out):
    member: str
    name: str
    team: str | None
    skills: list[str]
    availability: str
    max_load: int | None
    open_cases: int


class TeamOut(Out):
    id: int
    name: str
    lead: str | None


class CreatedId(Out):
    id: int


class RuleOut(Out):
    id: int
    priority: int
    template: str | None
    topic: str | None
    team: str | None
    skill: str | None


class AlwaysOpen(Out):
    always_open: bool


class CalendarOut(Out):
    timezone: str
    hours: str
    country: str | None
    subdivision: str | None


# -- channels ---------------------------------------------------------------------------


class ChannelMessage(Out):
    id: int
    channel: str
    direction: str
    kind: str
    status: str
    case: str | None
    customer: int | None
    event: str | None
    sender: str | None
    recipients: list[Any]
    subject: str | None
    external_id: str | None
    flags: list[str] = Field(
        description="Markers set on the message by parsing, policy and delivery, e.g. 'auto'"
    )
    error: str | None
    attempts: int
    size: int
    created_at: str
    done_at: str | None


class ChannelMessages(Out):
    messages: list[ChannelMessage]


class MailReplyOut(Out):
    case: str
    events: list[str]
    message: int


class ServerOut(Out):
    host: str
    port: int
    security: str
    username: str
    password_set: bool
    allow_plaintext: bool


class MailboxOut(Out):
    id: int
    address: str
    display_name: str
    smtp: ServerOut | None
    imap: ServerOut | None
    imap_folder: str
    poll_seconds: int
    max_attachment_bytes: int
    max_message_bytes: int
    active: bool
    reply_all: bool


class Mailboxes(Out):
    mailboxes: list[MailboxOut]


class ReceiptOut(Out):
    status: str = Field(description="stored | held | ignored | bounce | duplicate")
    message: int | None
    case: str | None
    customer: int | None
    new_case: bool
    threaded_by: str | None
    reason: str | None


class AccountOut(Out):
    id: int
    platform: str
    name: str
    settings: dict[str, Any] = Field(description="The platform's settings (" + OPEN + ")")
    secrets_set: list[str]
    active: bool


class AddedAccount(AccountOut):
    webhook: str = Field(description="The path the platform posts to.")


class RepliedByEmail(Out):
    case: str
    event: str
    channel: str
    message: int


class RepliedInCase(Out):
    case: str
    event: str
    channel: str


class RepliedOnPlatform(Out):
    case: str
    event: str
    message: int
    channel: str
    account: str
    public: bool


Replied = RepliedByEmail | RepliedOnPlatform | RepliedInCase


# -- webhooks ---------------------------------------------------------------------------


class WebhookOut(Out):
    id: int
    url: str
    events: list[str]
    active: bool
    allow_private: bool
    created: str
    created_by: str | None


class NewWebhook(WebhookOut):
    secret: str = Field(description="Shown once: keep it to verify the signatures.")
    standard_secret: str = Field(
        description="The same secret as Standard Webhooks libraries take it (whsec_…)."
    )


class WebhookList(Out):
    webhooks: list[WebhookOut]
    event_types: dict[str, str] = Field(description="Each event type and what it means.")


class AttemptOut(Out):
    at: str
    status_code: int | None
    error: str | None
    duration_ms: int | None


class DeliveryOut(Out):
    id: int
    webhook: int
    type: str
    case: str | None
    idempotency_key: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt: str | None
    created: str
    delivered: str | None
    log: list[AttemptOut]


class Deliveries(Out):
    deliveries: list[DeliveryOut]
    limit: int


# -- bodies that are not JSON documents ---------------------------------------------------

BUNDLE: dict[str, Any] = {
    "type": "string",
    "description": "The signed case bundle: one JSON object per line (`accord verify`).",
}
RFC822: dict[str, Any] = {"type": "string", "format": "binary", "description": "RFC 5322 mail."}
CSV: dict[str, Any] = {"type": "string", "description": "Comma-separated values, header first."}
TEXT: dict[str, Any] = {"type": "string"}
PROMETHEUS: dict[str, Any] = {
    "type": "string",
    "description": "Prometheus text exposition format 0.0.4.",
}


# -- customers ------------------------------------------------------------------------------


class CustomerSummary(Out):
    id: int
    name: str
    identities: list[str] = Field(description="Each as `kind:value`.")
    cases: int
    open_cases: int


class Suggestion(Out):
    customers: list[int] = Field(description="The two records that are probably one person.")
    reason: str


class IdentityOut(Out):
    kind: str
    value: str
    verified: bool
    record: int = Field(description="The record (before merges) that holds the identity.")


class CustomerCase(Out):
    case: str
    title: str
    resolved: bool
    opened: str
    updated: str
    record: int


class CustomerOut(Out):
    id: int
    name: str
    created_at: str
    merged: list[int]
    identities: list[IdentityOut]
    cases: list[CustomerCase]


class TimelineItem(Out):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    case: str
    title: str
    event: str
    time: str
    via: str | None
    from_: str | None = Field(alias="from")
    customer: bool = Field(description="Whether the customer wrote it.")
    text: str


class CustomerChange(Out):
    id: int
    at: str
    by: str
    action: str
    customer: int
    other: int | None
    detail: dict[str, Any] = Field(description="What changed, by action (" + OPEN + ")")


class ErasureOut(Out):
    customer: int
    at: str
    by: str
    removed: dict[str, int] = Field(description="How many rows or files of each kind.")


ZIP: dict[str, Any] = {"type": "string", "format": "binary", "description": "A ZIP archive."}


# -- templates and outcome metrics (accord.api.outcomes) -------------------------------


class TemplateVersionRow(Out):
    version: int
    created_at: str
    created_by: str | None
    cases: int


class TemplateOut(Out):
    name: str
    versions: list[TemplateVersionRow]
    latest: int
    title: str


class TemplateVersion(Out):
    name: str
    version: int
    created_at: str
    created_by: str | None
    spec: dict[str, Any] = Field(description="The template as written (YAML's data model).")


class AppliedTemplate(TemplateVersion):
    created: bool = Field(description="False when the text equals the latest version.")


class TemplateDiff(Out):
    name: str
    a: int
    b: int
    changes: list[str] = Field(
        description="One line per changed item: `-` removed, `+` added, with its value."
    )


class OpenedFromTemplate(Out):
    case: str
    template: str
    version: int
    events: list[str]
    owner: Any = Field(description="The owner routing chose, if any.")


class FigureOut(Out):
    stat: str
    value: int | float | None
    cases: int
    shown: str


class MetricFigure(Out):
    label: str
    stat: str
    value: int | float | None
    cases: int
    shown: str


class BucketFigure(Out):
    bucket: str
    stat: str
    value: int | float | None
    cases: int
    shown: str


class TargetOut(Out):
    id: int
    name: str
    metric: str
    stat: str
    op: str
    threshold: int | float
    owner: str | None
    owner_name: str | None
    template: str | None
    describe: str


class TargetStanding(TargetOut):
    current: FigureOut
    met: bool | None
    series: list[BucketFigure]


class Board(Out):
    cases: int
    open: int
    backlog: int
    ageing: dict[str, int] = Field(description="Open cases by age band.")
    at: str
    metrics: dict[str, MetricFigure] = Field(description="Each metric by its key.")
    targets: list[TargetStanding]


class MarkOut(Out):
    id: int
    kind: str
    party: str | None
    value: Any
    member_id: int | None
    note: str | None
    at: str


class CaseFactsOut(Out):
    case_id: str
    event_count: int
    marks: list[MarkOut]
    template: str | None
    template_version: int | None
    channel: str
    member_id: int | None
    team_id: int | None
    opened_at: str
    first_response_at: str | None
    first_agreement_at: str | None
    resolved_at: str | None
    first_response_s: int | None
    agreement_s: int | None
    resolution_s: int | None
    transfers: int
    repeats: int
    callbacks_promised: int
    callbacks_kept: int
    activities_promised: int
    activities_kept: int
    rounds: int
    reopenings: int
    rating: int | float | None
    deviations: int | None


class MarkMade(Out):
    id: int
    case: str
    kind: str


class SideOut(Out):
    value: int | float | None
    cases: int
    shown: str


class MetricComparison(Out):
    metric: str
    label: str
    stat: str
    a: SideOut
    b: SideOut
    test: str | None
    p_value: int | float | None
    verdict: str


class ComparisonOut(Out):
    a: str
    b: str
    alpha: int | float
    summary: str
    metrics: list[MetricComparison]
