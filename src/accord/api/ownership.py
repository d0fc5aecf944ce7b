"""Endpoints for owners, routing, handoffs, notifications and the business calendar."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field

from accord.api.auth import Principal, require
from accord.api.models import Body
from accord.api.responses import (
    AlwaysOpen,
    AssignmentOut,
    CalendarOut,
    CreatedId,
    MarkedOut,
    NotificationOut,
    OwnerOut,
    ProfileOut,
    RuleOut,
    TeamOut,
)
from accord.service import settings
from accord.service.ownership import Assignment, Ownership


class AssignIn(Body):
    member: str = Field(max_length=64, description="Username of the new owner.")
    note: str | None = Field(None, max_length=10_000)


class HandoffIn(Body):
    to: str = Field(max_length=64, description="Username of the new owner.")
    note: str = Field(min_length=1, max_length=10_000, description="What the next owner needs.")


class TeamIn(Body):
    name: str = Field(min_length=1, max_length=64)
    lead: str | None = Field(None, max_length=64, description="Username of the team's lead.")


class ProfileIn(Body):
    team: str | None = Field(None, max_length=64, description="Team name ('' for none).")
    skills: list[str] | None = Field(None, max_length=50)
    availability: str | None = Field(None, pattern="^(online|away|off)$")
    max_load: int | None = Field(None, ge=1, le=10_000)


class AvailabilityIn(Body):
    availability: str = Field(pattern="^(online|away|off)$")


class RuleIn(Body):
    priority: int = Field(100, ge=0, le=1_000_000)
    team: str | None = Field(None, max_length=64)
    skill: str | None = Field(None, max_length=64)
    template: str | None = Field(None, max_length=100)
    topic: str | None = Field(None, max_length=64)


class ReadIn(Body):
    ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(max_length=1000)


class CalendarIn(Body):
    timezone: str = Field(max_length=64, examples=["Europe/London"])
    hours: str = Field(max_length=300, examples=["mon-fri 09:00-17:30"])
    country: str | None = Field(None, max_length=8, examples=["GB"])
    subdivision: str | None = Field(None, max_length=16, examples=["ENG"])


def assignment_json(a: Assignment) -> dict[str, Any]:
    return {
        "case": a.case_id,
        "owner": {"member": a.member.username, "name": a.member.display_name},
        "transfers": a.transfers,
        "assigned": a.assigned_at.isoformat(),
    }


def ownership_routes(ownership: Ownership) -> tuple[APIRouter, APIRouter]:
    """(routes under /api/v1/cases/{case_id}, routes under /api/v1)."""
    case = APIRouter()
    top = APIRouter()
    reader, writer, admin = require("cases:read"), require("cases:write"), require("members:admin")

    @case.get(
        "/owner",
        summary="The owner, transfers and the node-private history",
        response_model=OwnerOut,
    )
    def owner(case_id: str, _who: Principal = Depends(reader)) -> Any:
        current = ownership.owner(case_id)
        return {
            "owner": assignment_json(current) if current else None,
            "history": [
                {
                    "at": h.at.isoformat(),
                    "reason": h.reason,
                    "from": h.from_member,
                    "to": h.to_member,
                    "by": h.by_member,
                    "note": h.note,
                    "summary": h.summary,
                }
                for h in ownership.history(case_id)
            ],
        }

    @case.post(
        "/route",
        summary="Give the case an owner by the routing rules",
        response_model=AssignmentOut,
    )
    def route(case_id: str, _who: Principal = Depends(writer)) -> Any:
        return assignment_json(ownership.route(case_id))

    @case.post(
        "/assign",
        summary="A lead chooses the owner (overrides routing)",
        response_model=AssignmentOut,
    )
    def assign(case_id: str, body: AssignIn, who: Principal = Depends(writer)) -> Any:
        return assignment_json(
            ownership.assign(case_id, body.member, by=who.member, note=body.note)
        )

    @case.post(
        "/handoff",
        summary="Transfer the case with a note; the customer is told",
        response_model=AssignmentOut,
    )
    def handoff(case_id: str, body: HandoffIn, who: Principal = Depends(writer)) -> Any:
        return assignment_json(ownership.handoff(case_id, body.to, body.note, by=who.member))

    @top.get(
        "/notifications",
        summary="Your notifications, newest first",
        tags=["members"],
        response_model=list[NotificationOut],
    )
    def notifications(
        who: Principal = Depends(reader),
        unread: bool = Query(False, description="Only unread ones."),
    ) -> Any:
        return ownership.notifications_for(who.member.id, unread=unread)

    @top.post(
        "/notifications/read",
        summary="Mark notifications read",
        tags=["members"],
        response_model=MarkedOut,
    )
    def read(body: ReadIn, who: Principal = Depends(reader)) -> Any:
        return {"marked": ownership.mark_read(who.member.id, body.ids)}

    @top.put(
        "/me/availability",
        summary="Set your availability for routing",
        tags=["members"],
        response_model=ProfileOut,
    )
    def availability(body: AvailabilityIn, who: Principal = Depends(reader)) -> Any:
        return ownership.set_profile(who.member.username, availability=body.availability)

    @top.get(
        "/routing/teams",
        summary="Teams and their leads",
        tags=["routing"],
        response_model=list[TeamOut],
    )
    def list_teams(_who: Principal = Depends(reader)) -> Any:
        return ownership.list_teams()

    @top.post(
        "/routing/teams",
        status_code=201,
        summary="Add a team",
        tags=["routing"],
        response_model=CreatedId,
    )
    def add_team(body: TeamIn, _who: Principal = Depends(admin)) -> Any:
        return {"id": ownership.add_team(body.name, body.lead)}

    @top.get(
        "/routing/members/{username}",
        summary="A member's routing profile",
        tags=["routing"],
        response_model=ProfileOut,
    )
    def profile(username: str, _who: Principal = Depends(reader)) -> Any:
        return ownership.profile(username)

    @top.put(
        "/routing/members/{username}",
        summary="Set a member's team, skills, availability and load cap",
        tags=["routing"],
        response_model=ProfileOut,
    )
    def set_profile(username: str, body: ProfileIn, _who: Principal = Depends(admin)) -> Any:
        return ownership.set_profile(
            username,
            team=body.team,
            skills=body.skills,
            availability=body.availability,
            max_load=body.max_load,
        )

    @top.get(
        "/routing/rules",
        summary="Routing rules, first match wins",
        tags=["routing"],
        response_model=list[RuleOut],
    )
    def rules(_who: Principal = Depends(reader)) -> Any:
        return ownership.list_rules()

    @top.post(
        "/routing/rules",
        status_code=201,
        summary="Add a routing rule",
        tags=["routing"],
        response_model=CreatedId,
    )
    def add_rule(body: RuleIn, _who: Principal = Depends(admin)) -> Any:
        return {
            "id": ownership.add_rule(
                priority=body.priority,
                team=body.team,
                skill=body.skill,
                template=body.template,
                topic=body.topic,
            )
        }

    @top.delete(
        "/routing/rules/{rule_id}",
        status_code=204,
        summary="Remove a routing rule",
        tags=["routing"],
    )
    def remove_rule(
        rule_id: int = Path(ge=1, le=2**31 - 1), _who: Principal = Depends(admin)
    ) -> None:
        ownership.remove_rule(rule_id)

    @top.get(
        "/settings/calendar",
        summary="The business calendar timers use",
        tags=["settings"],
        response_model=CalendarOut | AlwaysOpen,
    )
    def get_calendar(_who: Principal = Depends(reader)) -> Any:
        return settings.read(ownership.db, settings.CALENDAR) or {"always_open": True}

    @top.put(
        "/settings/calendar",
        summary="Set business hours, time zone and holidays",
        tags=["settings"],
        response_model=CalendarOut,
    )
    def put_calendar(body: CalendarIn, _who: Principal = Depends(admin)) -> Any:
        settings.set_calendar(
            ownership.db,
            timezone=body.timezone,
            hours=body.hours,
            country=body.country,
            subdivision=body.subdivision,
        )
        return settings.read(ownership.db, settings.CALENDAR)

    return case, top
