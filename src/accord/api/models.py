"""Request bodies of the REST API. Shapes only; the service and core check meaning."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TopicIn(Body):
    topic: str = Field(description="Short id of the topic, e.g. `price`.", max_length=64)
    title: str = Field(max_length=300)


class CustomerIn(Body):
    name: str = Field(max_length=200)
    id: str = Field("customer", description="Party id of the customer in this case.", max_length=64)
    kind: str = Field("person", pattern="^(person|organisation)$")


class CaseIn(Body):
    title: str = Field(max_length=300)
    customer: CustomerIn | None = Field(None, description="A customer this node hosts.")
    topics: list[TopicIn] = Field(default_factory=list, max_length=50)
    template: str | None = Field(None, max_length=100)
    route: bool = Field(False, description="Let routing choose the owner (default: you own it).")


class MessageIn(Body):
    text: str = Field(max_length=100_000)
    topic: str | None = Field(None, max_length=64)


class InfoIn(Body):
    value: dict[str, Any] = Field(description='A typed value: `{"type": "money", …}`.')
    label: str | None = Field(None, max_length=200)


class ProposalIn(Body):
    changes: list[dict[str, Any]] = Field(
        description="Changes: data.put, data.remove, activity.put, activity.remove, "
        "party.add, party.key.",
        max_length=200,
    )
    base: int | None = Field(
        None,
        ge=0,
        le=2**53 - 1,
        description="Agreement version it builds on (default: the current one).",
    )
    note: str | None = Field(None, max_length=10_000)


class CounterIn(Body):
    changes: list[dict[str, Any]] = Field(max_length=200)
    note: str | None = Field(None, max_length=10_000)


class RejectIn(Body):
    reason: str | None = Field(None, max_length=10_000)


class ProgressIn(Body):
    state: str = Field(pattern="^(in_progress|done)$")
    note: str | None = Field(None, max_length=10_000)


class SatisfiedIn(Body):
    rating: int | None = Field(None, ge=1, le=5)
    note: str | None = Field(None, max_length=10_000)
    reason: str | None = Field(
        None,
        max_length=10_000,
        description="Close anyway: why the party is satisfied although agreed activities "
        "or topics are still open (recorded in the log). Without it, open work is refused "
        "(409, with the open work in details.open).",
    )


class WithdrawIn(Body):
    reason: str | None = Field(None, max_length=10_000)


class CommitIn(Body):
    """An activity your party promises at once (the fields of an ``activity.put``)."""

    activity: str = Field(description="Short id of the activity.", max_length=64)
    title: str = Field(max_length=300)
    kind: str = Field(pattern="^(task|callback)$")
    owner: str | None = Field(None, description="Your own party (the default).")
    member: str | None = Field(None, max_length=200)
    due: str | None = Field(None, description="RFC 3339 UTC; required for a callback.")
    channel: str | None = Field(None, max_length=64)
    topic: str | None = Field(None, max_length=64)
    note: str | None = Field(None, max_length=10_000)


class ReopenIn(Body):
    reason: str = Field(min_length=1, max_length=10_000)


class StatusIn(Body):
    label: str = Field(min_length=1, max_length=64)


class NoteIn(Body):
    text: str = Field(min_length=1, max_length=20_000)


class PortalLinkIn(Body):
    party: str = Field(max_length=64)
    identity: str = Field(
        description="The customer's verified identity, e.g. an email.", max_length=320
    )
    hours: int | None = Field(
        None,
        ge=1,
        le=24 * 366,
        description="How long the link works, in hours (default: 168, i.e. 7 days).",
    )


class InviteIn(Body):
    hours: int = Field(72, ge=1, le=24 * 30, description="How long the link stays valid.")


class LoginIn(Body):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
