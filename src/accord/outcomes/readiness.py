"""``accord readiness``: what stands between this node and going live, and what to do.

Each finding has an area (data, process, people, infrastructure), a severity (``todo``
must be done before go-live, ``check`` deserves a look) and the next step. The checks
read the node's own tables only; nothing is changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.store.database import Database
from accord.store.tables import (
    api_tokens,
    case_owners,
    case_templates,
    cases,
    customers,
    jobs,
    mailboxes,
    member_routing,
    members,
    metric_targets,
    node_settings,
    practice_runs,
    teams,
    template_cases,
    web_sessions,
    webhook_deliveries,
)

AREAS = ("data", "process", "people", "infrastructure")
RECENT = timedelta(days=30)


@dataclass(frozen=True)
class Finding:
    area: str
    severity: str  # todo or check
    text: str
    action: str

    def json(self) -> dict[str, str]:
        return {
            "area": self.area,
            "severity": self.severity,
            "text": self.text,
            "action": self.action,
        }


def readiness(db: Database, *, now: datetime) -> list[Finding]:
    """Every finding, by area."""
    with db.read() as conn:
        found = [
            *_data(conn, now),
            *_process(conn),
            *_people(conn),
            *_infrastructure(conn, db),
        ]
    return sorted(found, key=lambda f: (AREAS.index(f.area), f.severity != "todo"))


def _count(conn: Connection, query: Any) -> int:
    return int(conn.execute(query).scalar_one())


def _data(conn: Connection, now: datetime) -> list[Finding]:
    out = []
    dupes = conn.execute(
        sa.select(sa.func.lower(customers.c.name), sa.func.count())
        .where(customers.c.merged_into.is_(None))
        .group_by(sa.func.lower(customers.c.name))
        .having(sa.func.count() > 1)
    ).all()
    if dupes:
        records = sum(n for _, n in dupes)
        out.append(
            Finding(
                "data",
                "check",
                f"{records} customer records share a name with another record "
                f"({len(dupes)} names), e.g. {dupes[0][0]!r}",
                "look at them and link the identities of the same person to one customer record, "
                "so a returning customer is never asked to identify again",
            )
        )
    untemplated = _count(
        conn,
        sa.select(sa.func.count())
        .select_from(cases)
        .outerjoin(template_cases, template_cases.c.case_id == cases.c.case_id)
        .where(template_cases.c.case_id.is_(None), cases.c.updated_at >= now - RECENT),
    )
    if untemplated:
        out.append(
            Finding(
                "data",
                "check",
                f"{untemplated} cases changed in the last 30 days have no template",
                "write a template for each recurring case type (accord template apply FILE) so its "
                "cases can be measured and compared",
            )
        )
    return out


def _process(conn: Connection) -> list[Finding]:
    out = []
    if not _count(conn, sa.select(sa.func.count()).select_from(case_templates)):
        out.append(
            Finding(
                "process",
                "todo",
                "no case type has a template",
                "write one YAML file per case type and apply it: accord template apply FILE "
                "(docs/templates.md)",
            )
        )
    targets = conn.execute(sa.select(metric_targets.c.name, metric_targets.c.owner_member_id)).all()
    if not targets:
        out.append(
            Finding(
                "process",
                "todo",
                "no outcome targets are set",
                "set the few that matter, each with an owner: accord goal add NAME --metric ... "
                "--owner USERNAME",
            )
        )
    for name, owner in targets:
        if owner is None:
            out.append(
                Finding(
                    "process",
                    "todo",
                    f"the target {name!r} has no owner",
                    "give it one: accord goal own ID USERNAME",
                )
            )
    if (
        conn.execute(
            sa.select(node_settings.c.name).where(node_settings.c.name == "calendar")
        ).first()
        is None
    ):
        out.append(
            Finding(
                "process",
                "todo",
                "no business calendar: targets and timers count every hour of every day",
                "set your hours and holidays: accord calendar set --timezone Europe/London "
                "--hours 'mon-fri 09:00-17:30' --country GB",
            )
        )
    return out


def _people(conn: Connection) -> list[Finding]:
    out = []
    active = conn.execute(
        sa.select(members.c.id, members.c.username, members.c.role).where(
            members.c.disabled_at.is_(None)
        )
    ).all()
    if not active:
        return [
            Finding(
                "people",
                "todo",
                "no members yet",
                "add the people who will answer customers: accord member add USERNAME",
            )
        ]
    teamless = [
        m.username
        for m in active
        if m.role != "admin"
        and conn.execute(
            sa.select(member_routing.c.team_id).where(member_routing.c.member_id == m.id)
        ).scalar_one_or_none()
        is None
    ]
    if teamless:
        out.append(
            Finding(
                "people",
                "todo",
                f"{len(teamless)} members are in no team ({', '.join(sorted(teamless)[:5])}): "
                "missed promises have no lead to escalate to",
                "put each in a team: accord routing set USERNAME --team NAME",
            )
        )
    leaderless = (
        conn.execute(sa.select(teams.c.name).where(teams.c.lead_member_id.is_(None)))
        .scalars()
        .all()
    )
    if leaderless:
        out.append(
            Finding(
                "people",
                "todo",
                f"teams without a lead: {', '.join(leaderless)}",
                "name a lead for each team, who escalations go to",
            )
        )
    practised = set(
        conn.execute(
            sa.select(practice_runs.c.member_id).where(practice_runs.c.finished_at.is_not(None))
        ).scalars()
    )
    unpractised = sorted(m.username for m in active if m.role != "admin" and m.id not in practised)
    if unpractised:
        shown = ", ".join(unpractised[:5]) + (", …" if len(unpractised) > 5 else "")
        out.append(
            Finding(
                "people",
                "check",
                f"{len(unpractised)} members have not done a practice run ({shown})",
                "have each rehearse a case with a simulated customer: "
                "accord practice start --member USERNAME, then accord practice check",
            )
        )
    never = []
    for m in active:
        used = (
            conn.execute(
                sa.select(web_sessions.c.token_hash)
                .where(web_sessions.c.member_id == m.id)
                .limit(1)
            ).first()
            or conn.execute(
                sa.select(api_tokens.c.id)
                .where(api_tokens.c.member_id == m.id, api_tokens.c.last_used_at.is_not(None))
                .limit(1)
            ).first()
        )
        if used is None:
            never.append(m.username)
    if never:
        shown = ", ".join(sorted(never)[:5]) + (", …" if len(never) > 5 else "")
        out.append(
            Finding(
                "people",
                "check",
                f"{len(never)} members have never logged in or used a token ({shown})",
                "make sure each can log in before go-live (accord member list shows who is "
                "enabled)",
            )
        )
    disabled_owners = _count(
        conn,
        sa.select(sa.func.count())
        .select_from(case_owners)
        .join(members, members.c.id == case_owners.c.member_id)
        .join(cases, cases.c.case_id == case_owners.c.case_id)
        .where(members.c.disabled_at.is_not(None), cases.c.resolved.is_(False)),
    )
    if disabled_owners:
        out.append(
            Finding(
                "people",
                "todo",
                f"{disabled_owners} open cases are owned by disabled members",
                "hand them off with a note: accord handoff CASE --to USERNAME --note ...",
            )
        )
    return out


def _infrastructure(conn: Connection, db: Database) -> list[Finding]:
    out = []
    if db.is_sqlite:
        out.append(
            Finding(
                "infrastructure",
                "check",
                "the database is SQLite: one process only",
                "for production run PostgreSQL (--database postgresql+psycopg://…) with "
                "separate web and worker processes (docs/operations.md)",
            )
        )
    boxes = conn.execute(
        sa.select(mailboxes.c.address, mailboxes.c.settings, mailboxes.c.imap_uidvalidity)
    ).all()
    if not boxes:
        out.append(
            Finding(
                "infrastructure",
                "todo",
                "no mailbox: customers cannot write in by email",
                "add your support address: accord mailbox add ADDRESS --smtp-host HOST "
                "(docs/email.md)",
            )
        )
    for box in boxes:
        if (orjson.loads(box.settings) or {}).get("imap") and box.imap_uidvalidity is None:
            out.append(
                Finding(
                    "infrastructure",
                    "todo",
                    f"the IMAP mailbox {box.address} has never been polled successfully",
                    "check its host and password, then run accord serve and watch accord mail list",
                )
            )
    failed_jobs = _count(
        conn, sa.select(sa.func.count()).select_from(jobs).where(jobs.c.status == "failed")
    )
    if failed_jobs:
        out.append(
            Finding(
                "infrastructure",
                "todo",
                f"{failed_jobs} timer jobs failed",
                "see why with accord jobs list --status failed, fix, and retry them",
            )
        )
    failed_hooks = _count(
        conn,
        sa.select(sa.func.count())
        .select_from(webhook_deliveries)
        .where(webhook_deliveries.c.status == "failed"),
    )
    if failed_hooks:
        out.append(
            Finding(
                "infrastructure",
                "check",
                f"{failed_hooks} webhook deliveries failed for good",
                "check the receiving systems, then redeliver (POST /api/v1/webhooks/…/redeliver)",
            )
        )
    return out
