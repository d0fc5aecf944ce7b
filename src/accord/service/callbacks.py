"""Promised callbacks kept: reminders before, escalation and a new time when missed.

A callback is an agreed activity of kind ``callback`` with a due time, owned by this
node's party. For each, two durable timers are kept in the job queue (so they survive
restarts and fire once across workers):

* ``callback.remind`` — REMIND_BEFORE the due time: a notification to the case owner;
* ``callback.missed`` — GRACE after the due time, moved to the next business opening if
  the node is closed then: if the callback is still not done, the owner's lead (or the
  owner) is notified, the customer is told in the case that the promise was missed and
  by when the lead will call, and the callback is re-proposed to the lead at that time.

Each handler re-reads the case and does nothing if the promise was kept, cancelled or
moved in the meantime; its effects commit with the job's completion.

**Each fires once per due time.** The timers derive from the case's agreed terms, and are
rebuilt from them at every worker start (``reconcile_all``) and after every change to the
case (``on_change``). A timer that fired is not done: it stays armed but idle (at
``IDLE``), its payload marked ``fired`` with the due time it fired for, and rebuilding
leaves a key whose job fired for the activity's current due time alone — so a restart or
a later message does not apologise to the customer again. A new due time (the customer
accepted the re-proposal) arms the timers again; a callback done or cancelled cancels
them. Deciding and re-arming happen in one transaction with the job's row locked, so a
rebuild racing the firing worker sees the fired mark.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from accord.core.activities import activity_open
from accord.core.crypto import NodeKey
from accord.core.errors import AccordError
from accord.core.state import Activity, State
from accord.core.timefmt import format_time, parse_time
from accord.jobs.queue import Job, JobQueue
from accord.service import settings
from accord.service.calendar import BusinessCalendar
from accord.service.ownership import SYSTEM_MEMBER, Ownership
from accord.store.cases import CaseStore

REMIND_BEFORE = timedelta(minutes=15)
GRACE = timedelta(minutes=5)
NEW_TIME_AFTER = timedelta(hours=1)  # of business time after the escalation
REMIND, MISSED = "callback.remind", "callback.missed"
IDLE = datetime(9999, 1, 1, tzinfo=UTC)  # where a timer that fired waits, armed but idle
RemindHook = Callable[[Connection, State, Activity], None]


class Callbacks:
    def __init__(
        self,
        cases: CaseStore,
        key: NodeKey,
        ownership: Ownership,
        queue: JobQueue,
        *,
        now: Callable[[], datetime],
    ) -> None:
        self.cases = cases
        self.key = key
        self.ownership = ownership
        self.queue = queue
        self.now = now
        self.on_remind: list[RemindHook] = []

    def calendar(self) -> BusinessCalendar:
        return settings.calendar(self.cases.db)

    # -- scheduling ------------------------------------------------------------------

    def on_change(self, case_id: str, _event_ids: list[str] | None = None) -> None:
        """Bring the case's callback timers in line with its agreed terms."""
        state = self.cases.state(case_id)
        if state is not None:
            self.schedule(state)

    def reconcile_all(self) -> int:
        """On start: make sure every open case's callbacks have their timers."""
        count = 0
        for row in self.cases.list_cases(limit=1_000_000, resolved=False):
            state = self.cases.state(row.case_id)
            if state is not None:
                count += self.schedule(state)
        return count

    def schedule(self, state: State, conn: Connection | None = None) -> int:
        """Bring the case's callback timers in line with its terms (in ``conn``'s
        transaction, or one of its own); a timer that already fired for an activity's
        current due time is left as it is. Returns how many callbacks are timed."""
        mine = self._my_party(state)
        calendar = self.calendar()
        count = 0
        with self._write(conn) as c:
            for aid, activity in state["terms"]["activities"].items():
                if (
                    activity["kind"] != "callback"
                    or activity["owner"] != mine
                    or not activity.get("due")
                ):
                    continue
                keys = _keys(state["case"], aid)
                if not activity_open(state, aid):
                    self.queue.cancel(keys[0], conn=c)
                    self.queue.cancel(keys[1], conn=c)
                    continue
                due = parse_time(activity["due"])
                payload = {"case": state["case"], "activity": aid, "due": activity["due"]}
                if due - REMIND_BEFORE > self.now():
                    self._arm(c, REMIND, keys[0], due - REMIND_BEFORE, payload)
                self._arm(c, MISSED, keys[1], calendar.next_open(due + GRACE), payload)
                count += 1
            for aid, progress in state["progress"].items():  # removed from the terms
                if progress["state"] == "cancelled":
                    for key in _keys(state["case"], aid):
                        self.queue.cancel(key, conn=c)
        return count

    def _arm(
        self, conn: Connection, kind: str, key: str, at: datetime, payload: dict[str, Any]
    ) -> None:
        """Schedule a timer unless it already fired for this due time."""
        held = self.queue.unfinished(key, conn=conn, lock=True)
        if held is not None and held.payload.get("fired") == payload["due"]:
            return
        self.queue.schedule(kind, at, payload, key=key, conn=conn)

    def _fired(self, conn: Connection, job: Job) -> None:
        """Keep the job armed but idle, marked as fired for its due time."""
        self.queue.schedule(
            job.kind, IDLE, {**job.payload, "fired": job.payload["due"]}, key=job.key, conn=conn
        )

    # -- handlers ----------------------------------------------------------------------

    def remind(self, job: Job, conn: Connection) -> None:
        found = self._still_promised(job)
        if found is None:
            return
        state, activity = found
        owner = self.ownership.owner(state["case"])
        if owner is None:
            return
        due = self._local(parse_time(activity["due"]))
        self.ownership.notify(
            conn,
            owner.member.id,
            state["case"],
            "reminder",
            f"In {int(REMIND_BEFORE.total_seconds() // 60)} minutes: "
            f"{activity['title']} (due {due}) — {state['title']}",
        )
        for hook in self.on_remind:
            hook(conn, state, activity)
        self._fired(conn, job)

    def missed(self, job: Job, conn: Connection) -> None:
        found = self._still_promised(job)
        if found is None:
            return
        state, activity = found
        case_id = state["case"]
        owner = self.ownership.owner(case_id)
        if owner is None:
            return
        lead = self.ownership.lead_of(owner.member.id) or owner.member
        calendar = self.calendar()
        new_due = calendar.add(calendar.next_open(self.now()), NEW_TIME_AFTER)
        due_text, new_text = self._local(parse_time(activity["due"])), self._local(new_due)
        self.ownership.notify(
            conn,
            lead.id,
            case_id,
            "escalation",
            f"Missed callback: {owner.member.display_name} promised "
            f"{activity['title']!r} by {due_text}. The customer has been told "
            f"you will call by {new_text}. — {state['title']}",
        )
        if lead.id != owner.member.id:
            self.ownership.notify(
                conn,
                owner.member.id,
                case_id,
                "missed",
                f"Missed callback {activity['title']!r} ({due_text}); "
                f"escalated to {lead.display_name}.",
            )
        changed = {**activity, "member": lead.display_name, "due": format_time(new_due)}
        apology = (
            f"We are sorry: we did not call you back by {due_text} as promised. "
            f"{lead.display_name} will call you by {new_text}."
        )
        proposal = {
            "base": state["terms"]["version"],
            "changes": [{"op": "activity.put", "activity": job.payload["activity"], **changed}],
            "note": f"A new time for the missed callback, with {lead.display_name}",
        }
        self._fired(conn, job)
        # If the case moved on (say a concurrent agreement), the notifications stand and
        # the lead proposes the new time by hand.
        with contextlib.suppress(AccordError):
            self.cases.create_many(
                self.key,
                case_id,
                [("message.posted", {"text": apology}), ("proposal.made", proposal)],
                member=SYSTEM_MEMBER,
                time=self.now(),
                via="api",
                conn=conn,
            )

    # -- helpers -----------------------------------------------------------------------

    def _still_promised(self, job: Job) -> tuple[State, Activity] | None:
        state = self.cases.state(job.payload["case"])
        if state is None:
            return None
        activity = state["terms"]["activities"].get(job.payload["activity"])
        if activity is None or not activity_open(state, job.payload["activity"]):
            return None  # kept or cancelled
        if activity.get("due") != job.payload["due"]:
            return None  # moved: the timers of the new time will fire instead
        return state, activity

    def _write(self, conn: Connection | None) -> AbstractContextManager[Connection]:
        return nullcontext(conn) if conn is not None else self.cases.db.write()

    def _my_party(self, state: State) -> str | None:
        for pid, party in state["parties"].items():
            if party["node"] == self.key.public:
                return pid
        return None

    def _local(self, moment: datetime) -> str:
        zone = ZoneInfo(self.calendar().timezone)
        return moment.astimezone(zone).strftime("%a %d %b %H:%M %Z")


def _keys(case_id: str, activity: str) -> tuple[str, str]:
    return f"{REMIND}:{case_id}:{activity}", f"{MISSED}:{case_id}:{activity}"
