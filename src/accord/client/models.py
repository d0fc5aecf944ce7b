"""Shapes of the answers the client types precisely; the rest are ``dict[str, Any]``."""

from __future__ import annotations

from typing import Any, TypedDict

Json = dict[str, Any]


class Changed(TypedDict):
    """Every change: the case and the ids of the events it signed."""

    case: str
    events: list[str]


class OwnerName(TypedDict):
    member: str  # username
    name: str  # display name


class Assignment(TypedDict):
    case: str
    owner: OwnerName
    transfers: int
    assigned: str


class OpenedCase(Changed):
    owner: Assignment


class CaseRow(TypedDict):
    case: str
    title: str
    events: int
    resolved: bool
    opened: str
    updated: str


class CaseList(TypedDict):
    cases: list[CaseRow]
    limit: int
    offset: int


class Note(TypedDict):
    id: int
    member: str
    text: str
    created: str


class PortalLink(TypedDict):
    token: str  # for AccordClient(portal=…)
    path: str  # /portal/<token>, the customer's page
    expires: str


class Invite(TypedDict):
    link: str
    expires: str


class Member(TypedDict):
    id: int
    username: str
    display_name: str
    role: str


class Me(Member):
    scopes: list[str]
    via: str


class Login(TypedDict):
    member: Member
    csrf: str


class Notification(TypedDict):
    id: int
    case: str | None  # none for a notification about no case in particular
    kind: str
    text: str
    created: str
    read: bool
