"""The daily digest: at each business day's opening, every owner is told what is due
today (and what is overdue) in the cases they own.

One durable job per day (key ``digest:<local date>``); each run schedules the next
day's, so the digest survives restarts and runs once however many workers there are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.core.activities import activity_open
from accord.core.timefmt import parse_time
from accord.jobs.queue import Job, JobQueue
from accord.service import settings
from accord.service.ownership import Ownership
from accord.store.cases import CaseStore
from accord.store.tables import case_owners

DIGEST = "digest.daily"


class Digest:
    def __init__(
        self,
        cases: CaseStore,
        ownership: Ownership,
        queue: JobQueue,
        *,
        now: Callable[[], datetime],
    ) -> None:
        self.cases = cases
        self.ownership = ownership
        self.queue = queue
        self.now = now

    def ensure_scheduled(
        self, conn: Connection | None = None, after: datetime | None = None
    ) -> datetime:
        """Schedule the next digest: today's first opening if it is still ahead of
        ``after`` (default now), else the first opening of a later day."""
        calendar = settings.calendar(self.cases.db)
        zone = ZoneInfo(calendar.timezone)
        moment = after or self.now()
        day = moment.astimezone(zone).date()
        run_at = calendar.next_open(_midnight(day, zone))
        if run_at < moment:
            run_at = calendar.next_open(_midnight(day + timedelta(days=1), zone))
        label = run_at.astimezone(zone).date().isoformat()
        self.queue.schedule(DIGEST, run_at, {"day": label}, key=f"digest:{label}", conn=conn)
        return run_at

    def run(self, job: Job, conn: Connection) -> None:
        calendar = settings.calendar(self.cases.db)
        zone = ZoneInfo(calendar.timezone)
        today = self.now().astimezone(zone).date()
        with self.cases.db.read() as read:
            owned = read.execute(sa.select(case_owners.c.case_id, case_owners.c.member_id)).all()
        per_member: dict[int, list[str]] = {}
        for case_id, member_id in owned:
            state = self.cases.state(case_id)
            if state is None or state["resolved"]:
                continue
            for aid, activity in state["terms"]["activities"].items():
                due = activity.get("due")
                if not due or not activity_open(state, aid):
                    continue
                local = parse_time(due).astimezone(zone)
                if local.date() > today:
                    continue
                label = (
                    "OVERDUE"
                    if local.date() < today or parse_time(due) < self.now()
                    else (local.strftime("%H:%M"))
                )
                kind = "call back" if activity["kind"] == "callback" else "do"
                per_member.setdefault(member_id, []).append(
                    f"{label}: {kind} {activity['title']!r} — {state['title']}"
                )
        for member_id, lines in per_member.items():
            self.ownership.notify(
                conn,
                member_id,
                None,
                "digest",
                f"Due today ({today:%a %d %b}):\n" + "\n".join(sorted(lines)),
            )
        self.ensure_scheduled(conn, after=self.now() + timedelta(seconds=1))


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)
