"""Accountable service: one owner per case, routing, lead overrides and handoffs.

Who owns a case, the routing rules and the assignment history are node-private; the
owner's *name* goes into the shared log (``owner.named``) so the customer always
knows who is accountable, and every handoff tells the customer who the new owner is.
A handoff needs a note, and the new owner receives it with a generated summary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.auth.members import Member, MemberStore
from accord.core.crypto import NodeKey
from accord.core.errors import AccordError
from accord.core.state import State
from accord.service.errors import Conflict, Forbidden, Invalid, NotFound
from accord.service.summary import summarize
from accord.store.cases import CaseStore
from accord.store.tables import (
    assignment_history,
    case_owners,
    cases,
    member_routing,
    members,
    notifications,
    routing_rules,
    teams,
)

AVAILABILITY = ("online", "away", "off")
SYSTEM_MEMBER = "Accord"
"""``author.member`` of what Accord writes by itself (introductions, apologies): never
mistaken for a member's own reply, e.g. by response-time targets."""
Clock = Callable[[], datetime]

# Routing runs inside every new case's transaction: its statements are built once.
_RULES = sa.select(routing_rules).order_by(routing_rules.c.priority, routing_rules.c.id)
_AVAILABLE = (
    sa.select(member_routing, members.c.id)
    .join(members, members.c.id == member_routing.c.member_id)
    .where(members.c.disabled_at.is_(None), member_routing.c.availability != "off")
)
_LOADS = (
    sa.select(case_owners.c.member_id, sa.func.count().label("load"))
    .join(cases, cases.c.case_id == case_owners.c.case_id)
    .where(
        case_owners.c.member_id.in_(sa.bindparam("members", expanding=True)),
        cases.c.resolved.is_(False),
    )
    .group_by(case_owners.c.member_id)
)
_ASSIGNED_AT = member_routing.update().where(member_routing.c.member_id == sa.bindparam("member"))


@dataclass(frozen=True)
class Assignment:
    case_id: str
    member: Member
    transfers: int
    assigned_at: datetime
    event_ids: tuple[str, ...] = ()  # what the assignment wrote in the shared log


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    reason: str
    from_member: str | None
    to_member: str
    by_member: str | None
    note: str | None
    summary: str | None


class Ownership:
    """Owners, routing and handoffs on this node."""

    def __init__(
        self, cases_store: CaseStore, key: NodeKey, members_store: MemberStore, *, now: Clock
    ) -> None:
        self.cases = cases_store
        self.db = cases_store.db
        self.key = key
        self.members = members_store
        self.now = now
        self.listeners: list[Callable[[str, list[str]], None]] = []
        """Told (case id, event ids) after an assignment wrote in the shared log."""

    # -- teams, profiles and rules -----------------------------------------------------

    def add_team(self, name: str, lead: str | None = None) -> int:
        name = name.strip()
        if not name or len(name) > 64:
            raise Invalid("a team name is 1 to 64 characters", field="name")
        lead_id = self._member(lead).id if lead else None
        with self.db.write() as conn:
            if conn.execute(sa.select(teams.c.id).where(teams.c.name == name)).first():
                raise Conflict(f"there is already a team {name!r}", field="name")
            return int(
                conn.execute(
                    teams.insert()
                    .values(name=name, lead_member_id=lead_id, created_at=self.now())
                    .returning(teams.c.id)
                ).scalar_one()
            )

    def list_teams(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(teams.c.id, teams.c.name, members.c.display_name)
                .outerjoin(members, members.c.id == teams.c.lead_member_id)
                .order_by(teams.c.name)
            ).all()
        return [{"id": r.id, "name": r.name, "lead": r.display_name} for r in rows]

    def set_profile(
        self,
        username: str,
        *,
        team: str | None = None,
        skills: Sequence[str] | None = None,
        availability: str | None = None,
        max_load: int | None = None,
    ) -> dict[str, Any]:
        """Set how cases reach a member; unspecified fields keep their value."""
        member = self._member(username)
        if availability is not None and availability not in AVAILABILITY:
            raise Invalid(f"availability is one of {', '.join(AVAILABILITY)}", field="availability")
        if max_load is not None and max_load < 1:
            raise Invalid("max_load is at least 1", field="max_load")
        with self.db.write() as conn:
            row = (
                conn.execute(
                    sa.select(member_routing).where(member_routing.c.member_id == member.id)
                )
                .mappings()
                .first()
            )
            values: dict[str, Any] = {
                "team_id": row["team_id"] if row else None,
                "skills": row["skills"] if row else "[]",
                "availability": row["availability"] if row else "online",
                "max_load": row["max_load"] if row else None,
                "updated_at": self.now(),
            }
            if team is not None:
                values["team_id"] = self._team_id(conn, team) if team else None
            if skills is not None:
                values["skills"] = orjson.dumps(
                    sorted({s.strip().lower() for s in skills if s.strip()})
                ).decode()
            if availability is not None:
                values["availability"] = availability
            if max_load is not None:
                values["max_load"] = max_load
            if row is None:
                conn.execute(member_routing.insert().values(member_id=member.id, **values))
            else:
                conn.execute(
                    member_routing.update()
                    .where(member_routing.c.member_id == member.id)
                    .values(values)
                )
        return self.profile(username)

    def profile(self, username: str) -> dict[str, Any]:
        member = self._member(username)
        with self.db.read() as conn:
            row = (
                conn.execute(
                    sa.select(member_routing, teams.c.name.label("team"))
                    .outerjoin(teams, teams.c.id == member_routing.c.team_id)
                    .where(member_routing.c.member_id == member.id)
                )
                .mappings()
                .first()
            )
            load = self._loads(conn, [member.id]).get(member.id, 0)
        return {
            "member": member.username,
            "name": member.display_name,
            "team": row["team"] if row else None,
            "skills": orjson.loads(row["skills"]) if row else [],
            "availability": row["availability"] if row else "online",
            "max_load": row["max_load"] if row else None,
            "open_cases": load,
        }

    def add_rule(
        self,
        *,
        priority: int,
        team: str | None = None,
        skill: str | None = None,
        template: str | None = None,
        topic: str | None = None,
    ) -> int:
        if team is None and skill is None:
            raise Invalid("a routing rule sends cases to a team, a skill or both", field="team")
        with self.db.write() as conn:
            team_id = self._team_id(conn, team) if team else None
            return int(
                conn.execute(
                    routing_rules.insert()
                    .values(
                        priority=priority,
                        template=template,
                        topic=topic,
                        team_id=team_id,
                        skill=skill.lower() if skill else None,
                        created_at=self.now(),
                    )
                    .returning(routing_rules.c.id)
                ).scalar_one()
            )

    def list_rules(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = (
                conn.execute(
                    sa.select(routing_rules, teams.c.name.label("team"))
                    .outerjoin(teams, teams.c.id == routing_rules.c.team_id)
                    .order_by(routing_rules.c.priority, routing_rules.c.id)
                )
                .mappings()
                .all()
            )
        return [
            {
                "id": r["id"],
                "priority": r["priority"],
                "template": r["template"],
                "topic": r["topic"],
                "team": r["team"],
                "skill": r["skill"],
            }
            for r in rows
        ]

    def remove_rule(self, rule_id: int) -> None:
        with self.db.write() as conn:
            if not conn.execute(
                routing_rules.delete().where(routing_rules.c.id == rule_id)
            ).rowcount:
                raise NotFound(f"no routing rule {rule_id}")

    # -- routing and ownership ------------------------------------------------------------

    def route(self, case_id: str, *, by: str = "routing") -> Assignment:
        """Give a new case its owner: by rule, team, skill, availability, then load, with
        round robin among equals (the least recently assigned first)."""
        state = self._state(case_id)
        with self.db.write() as conn:
            if self._owner_row(conn, case_id) is not None:
                raise Conflict("the case already has an owner; hand it off instead")
            candidate = self._pick(conn, state)
            if candidate is None:
                raise Conflict(
                    "nobody is available to own this case (check availability, "
                    "teams and routing rules)"
                )
            done = self._assign(conn, case_id, candidate, None, "routed", None, None, first=True)
        return self._announced(done)

    def _announced(self, done: Assignment) -> Assignment:
        for listener in self.listeners:
            listener(done.case_id, list(done.event_ids))
        return done

    def route_in(self, conn: Connection, case_id: str) -> Assignment | None:
        """``route`` inside the caller's transaction (a channel's intake opens the case and
        names its owner in one commit); None when nobody is available."""
        if self._owner_row(conn, case_id) is not None:
            return None
        state = self.cases.state_in(conn, case_id)
        if state is None:
            raise NotFound(f"no case {case_id} on this node")
        candidate = self._pick(conn, state)
        if candidate is None:
            return None
        return self._assign(conn, case_id, candidate, None, "routed", None, None, first=True)

    def take_in(self, conn: Connection, case_id: str, member: Member) -> Assignment:
        """``take`` inside the caller's transaction (the case was opened in it)."""
        if self._owner_row(conn, case_id) is not None:
            raise Conflict("the case already has an owner; hand it off instead")
        return self._assign(conn, case_id, member, None, "opened", None, None, first=True)

    def take(self, case_id: str, member: Member) -> Assignment:
        """The member who opened a case owns it (no routing needed)."""
        self._state(case_id)
        with self.db.write() as conn:
            if self._owner_row(conn, case_id) is not None:
                raise Conflict("the case already has an owner; hand it off instead")
            done = self._assign(conn, case_id, member, None, "opened", None, None, first=True)
        return self._announced(done)

    def assign(
        self, case_id: str, username: str, *, by: Member, note: str | None = None
    ) -> Assignment:
        """A lead (or admin) chooses the owner, overriding routing."""
        if by.role not in ("lead", "admin"):
            raise Forbidden("only a lead or an admin overrides routing")
        member = self._member(username)
        self._state(case_id)
        with self.db.write() as conn:
            current = self._owner_row(conn, case_id)
            if current is not None and current["member_id"] == member.id:
                raise Conflict(f"{member.display_name} already owns this case")
            summary = summarize(self._state(case_id), self.cases.timeline(case_id, limit=5))
            done = self._assign(
                conn,
                case_id,
                member,
                current,
                "override",
                note,
                summary,
                by=by,
                first=current is None,
            )
        return self._announced(done)

    def handoff(self, case_id: str, username: str, note: str, *, by: Member) -> Assignment:
        """Transfer the case with a required note; the new owner gets it with a summary."""
        if not note or not note.strip():
            raise Invalid("a handoff needs a note for the next owner", field="note")
        member = self._member(username)
        state = self._state(case_id)
        with self.db.write() as conn:
            current = self._owner_row(conn, case_id)
            if current is None:
                raise Conflict("the case has no owner yet; route or assign it first")
            if current["member_id"] == member.id:
                raise Conflict(f"{member.display_name} already owns this case")
            if by.role not in ("lead", "admin") and by.id != current["member_id"]:
                raise Forbidden("only the owner, a lead or an admin hands a case off")
            summary = summarize(state, self.cases.timeline(case_id, limit=5))
            done = self._assign(
                conn, case_id, member, current, "handoff", note.strip(), summary, by=by
            )
        return self._announced(done)

    def owner(self, case_id: str) -> Assignment | None:
        with self.db.read() as conn:
            row = self._owner_row(conn, case_id)
        if row is None:
            return None
        member = self.members.get(row["member_id"])
        assert member is not None
        return Assignment(case_id, member, row["transfers"], _aware(row["assigned_at"]))

    def history(self, case_id: str) -> list[HistoryEntry]:
        names = {m.id: m.display_name for m in self.members.list()}
        with self.db.read() as conn:
            rows = (
                conn.execute(
                    sa.select(assignment_history)
                    .where(assignment_history.c.case_id == case_id)
                    .order_by(assignment_history.c.id)
                )
                .mappings()
                .all()
            )
        return [
            HistoryEntry(
                _aware(r["at"]),
                r["reason"],
                names.get(r["from_member_id"]),
                names.get(r["to_member_id"], "?"),
                names.get(r["by_member_id"]),
                r["note"],
                r["summary"],
            )
            for r in rows
        ]

    def lead_of(self, member_id: int) -> Member | None:
        """The lead of the member's team, if there is one (and it is not the member)."""
        with self.db.read() as conn:
            lead_id = conn.execute(
                sa.select(teams.c.lead_member_id)
                .join(member_routing, member_routing.c.team_id == teams.c.id)
                .where(member_routing.c.member_id == member_id)
            ).scalar_one_or_none()
        if lead_id is None or lead_id == member_id:
            return None
        return self.members.get(lead_id)

    def notify(
        self, conn: Connection, member_id: int, case_id: str | None, kind: str, text: str
    ) -> None:
        conn.execute(
            notifications.insert(),
            {
                "member_id": member_id,
                "case_id": case_id,
                "kind": kind,
                "text": text,
                "created_at": self.now(),
            },
        )

    def notifications_for(self, member_id: int, *, unread: bool = False) -> list[dict[str, Any]]:
        query = (
            sa.select(notifications)
            .where(notifications.c.member_id == member_id)
            .order_by(notifications.c.id.desc())
            .limit(200)
        )
        if unread:
            query = query.where(notifications.c.read_at.is_(None))
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            {
                "id": r["id"],
                "case": r["case_id"],
                "kind": r["kind"],
                "text": r["text"],
                "created": _aware(r["created_at"]).isoformat(),
                "read": r["read_at"] is not None,
            }
            for r in rows
        ]

    def unread_count(self, member_id: int) -> int:
        """How many of the member's notifications are unread (the pages' header count)."""
        with self.db.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(notifications)
                    .where(
                        notifications.c.member_id == member_id,
                        notifications.c.read_at.is_(None),
                    )
                ).scalar_one()
            )

    def mark_all_read(self, member_id: int) -> int:
        """Mark every notification of the member read; how many were unread."""
        with self.db.write() as conn:
            return int(
                conn.execute(
                    notifications.update()
                    .where(
                        notifications.c.member_id == member_id,
                        notifications.c.read_at.is_(None),
                    )
                    .values(read_at=self.now())
                ).rowcount
            )

    def mark_read(self, member_id: int, ids: Sequence[int]) -> int:
        with self.db.write() as conn:
            return int(
                conn.execute(
                    notifications.update()
                    .where(
                        notifications.c.member_id == member_id,
                        notifications.c.id.in_(list(ids)),
                        notifications.c.read_at.is_(None),
                    )
                    .values(read_at=self.now())
                ).rowcount
            )

    # -- internals -------------------------------------------------------------------

    def _assign(
        self,
        conn: Connection,
        case_id: str,
        member: Member,
        current: Any,
        reason: str,
        note: str | None,
        summary: str | None,
        *,
        by: Member | None = None,
        first: bool = False,
    ) -> Assignment:
        now = self.now()
        transfers = 0 if current is None else current["transfers"] + (reason == "handoff")
        if current is None:
            conn.execute(
                case_owners.insert(),
                {
                    "case_id": case_id,
                    "member_id": member.id,
                    "assigned_at": now,
                    "transfers": transfers,
                },
            )
        else:
            conn.execute(
                case_owners.update()
                .where(case_owners.c.case_id == case_id)
                .values(member_id=member.id, assigned_at=now, transfers=transfers)
            )
        conn.execute(
            assignment_history.insert(),
            {
                "case_id": case_id,
                "from_member_id": current["member_id"] if current else None,
                "to_member_id": member.id,
                "by_member_id": by.id if by else None,
                "reason": reason,
                "note": note,
                "summary": summary,
                "at": now,
            },
        )
        conn.execute(_ASSIGNED_AT, {"member": member.id, "last_assigned_at": now})
        previous = self.members.get(current["member_id"]) if current else None
        text = (
            f"You now own this case. Note from {by.display_name if by else 'routing'}: "
            f"{note}\n\n{summary}"
            if note
            else "You now own this case."
        )
        self.notify(conn, member.id, case_id, reason, text)
        written = self._tell_the_case(conn, case_id, member, previous, first)
        return Assignment(case_id, member, transfers, now, written)

    def _tell_the_case(
        self, conn: Connection, case_id: str, member: Member, previous: Member | None, first: bool
    ) -> tuple[str, ...]:
        """The owner's name in the shared log, and a word to the customer."""
        if previous is None:
            text = (
                f"Your case is owned by {member.display_name}, who is accountable for it "
                "until it is resolved. Reply here or use your case link any time — you "
                "will never need to explain this again."
            )
        else:
            text = (
                f"Your case is now owned by {member.display_name}, who has the whole case "
                f"and {previous.display_name}'s notes. Your case link and replies still "
                "reach us — there is nothing to repeat."
            )
        try:
            made = self.cases.create_many(
                self.key,
                case_id,
                [
                    ("owner.named", {"name": member.display_name}),
                    ("message.posted", {"text": text}),
                ],
                member=SYSTEM_MEMBER,
                time=self.now(),
                via="api",
                conn=conn,
            )
        except AccordError as exc:
            raise Conflict(f"cannot name the owner in this case: {exc}") from exc
        return tuple(e.id for e in made)

    def _pick(self, conn: Connection, state: State) -> Member | None:
        topics = set(state["topics"])
        template = state.get("template")
        rule = None
        for r in conn.execute(_RULES).mappings():
            if (r["template"] is None or r["template"] == template) and (
                r["topic"] is None or r["topic"] in topics
            ):
                rule = r
                break
        query = _AVAILABLE
        if rule is not None and rule["team_id"] is not None:
            query = query.where(member_routing.c.team_id == rule["team_id"])
        rows = conn.execute(query).mappings().all()
        loads = self._loads(conn, [row["member_id"] for row in rows])
        candidates = []
        for row in rows:
            if (
                rule is not None
                and rule["skill"]
                and rule["skill"] not in orjson.loads(row["skills"])
            ):
                continue
            load = loads.get(row["member_id"], 0)
            if row["max_load"] is not None and load >= row["max_load"]:
                continue
            last = row["last_assigned_at"]
            candidates.append(
                (
                    row["availability"] != "online",  # online before away
                    load,
                    _aware(last) if last else datetime.min.replace(tzinfo=UTC),  # round robin
                    row["member_id"],
                )
            )
        if not candidates:
            return None
        return self.members.get(min(candidates)[3])

    def _loads(self, conn: Connection, member_ids: Sequence[int]) -> dict[int, int]:
        """Each member's open cases (a member with none is absent), in one query."""
        if not member_ids:
            return {}
        rows = conn.execute(_LOADS, {"members": list(member_ids)})
        return {int(r.member_id): int(r.load) for r in rows}

    def _owner_row(self, conn: Connection, case_id: str) -> Any:
        return self.db.lock_case(conn, case_owners, case_id)

    def _team_id(self, conn: Connection, name: str) -> int:
        team_id = conn.execute(
            sa.select(teams.c.id).where(teams.c.name == name)
        ).scalar_one_or_none()
        if team_id is None:
            raise NotFound(f"no team {name!r}", field="team")
        return int(team_id)

    def _member(self, username: str) -> Member:
        member = self.members.by_username(username)
        if member is None or member.disabled:
            raise NotFound(f"no active member {username!r}", field="member")
        return member

    def _state(self, case_id: str) -> State:
        state = self.cases.state(case_id)
        if state is None:
            raise NotFound(f"no case {case_id} on this node")
        return state


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
