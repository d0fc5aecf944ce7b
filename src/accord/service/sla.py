"""Response-time targets: first response and next response, in business time.

Each case this node is in has one durable ``sla.breach`` job (key ``sla:<case>``) whose
payload carries the response clock (``SlaClock``: start, pauses). A customer's message
starts the clock if none is running; a member's reply stops it; setting the status to
``waiting_on_customer`` pauses it and any other status, or a customer message, resumes
it. The job's run time is when the target is reached in business time (or far in the
future while nothing is awaited); if it fires, the owner and the owner's lead are told.

Targets, in minutes of business time, come from the ``sla`` node setting:
``{"default": {"first_response": 60, "next_response": 240}, "<template>": {…}}``.

**Rebuilt at start.** Should the step that moves a clock have been lost (a process killed
between a write and it, or a node upgraded from before the clocks were followed), the
worker rebuilds each open case's clock from its log at start (``reconcile_all``, at each
event's time) and replaces a job whose clock disagrees — or creates the missing one, so a
target missed meanwhile still sounds, once. A job that agrees is kept, and a breach
already reported for the same wait (no member reply since) is not reported again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from accord.core.crypto import NodeKey
from accord.core.events import Event
from accord.core.state import State
from accord.core.timefmt import parse_time
from accord.jobs.queue import Job, JobQueue
from accord.service import settings
from accord.service.calendar import SlaClock
from accord.service.ownership import SYSTEM_MEMBER, Ownership
from accord.store.cases import CaseStore

BREACH = "sla.breach"
WAITING = "waiting_on_customer"
SETTING = "sla"
IDLE = datetime(9999, 1, 1, tzinfo=UTC)  # the job waits here while no reply is awaited


class ResponseTargets:
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

    def targets(self, state: State, conn: Connection | None = None) -> dict[str, int] | None:
        """The case's response targets (its template's, else the default), read in
        ``conn`` when the caller holds a transaction."""
        if conn is None:
            config = settings.read(self.cases.db, SETTING) or {}
        else:
            config = settings.read_in(conn, SETTING) or {}
        found = config.get(state.get("template") or "", config.get("default"))
        return found if isinstance(found, dict) else None

    def follow(self, conn: Connection, case_id: str, events: Sequence[Event], state: State) -> None:
        """The follower's step (``response-targets``): move the case's response clock for
        these stored events, in the follower's transaction — at each event's own time, so
        a follower that runs late starts no clock late. One read and at most one write of
        the case's clock job per batch, whatever the number of events."""
        if not any(e.type in ("message.posted", "status.set") for e in events):
            return
        targets = self.targets(state, conn)
        if targets is None:
            return
        key = f"sla:{state['case']}"
        held = self.queue.pending(kind=BREACH, key_prefix=key, conn=conn)
        payload: dict[str, Any] = dict(held[0].payload) if held else {"answered": 0}
        clock = _load(payload.get("clock"))
        moved = False
        for event in events:
            at = parse_time(event.time)
            if clock is not None:
                at = max(at, clock.last_event)
            changed, clock = self._move(payload, clock, event, at)
            moved = moved or changed
        if not moved:
            return
        payload.update(case=state["case"], clock=_dump(clock))
        due = self._due(state, payload, clock, targets=targets, conn=conn) or IDLE
        self.queue.schedule(BREACH, due, payload, key=key, conn=conn)

    def _move(
        self, payload: dict[str, Any], clock: SlaClock | None, event: Event, at: datetime
    ) -> tuple[bool, SlaClock | None]:
        """The clock after ``event`` at ``at``, and whether the event moves it at all;
        counts the answered messages in ``payload``. Imported history moves nothing: its
        customers were answered (or not) elsewhere, before the import."""
        if event.author.via == "import":
            return False, clock
        ours = event.author.node == self.key.public and event.author.for_party is None
        if event.type == "message.posted" and not ours:
            if clock is None:
                return True, SlaClock.started(at)
            return True, clock.resumed(at) if clock.is_paused else clock
        if event.type == "message.posted" and event.author.member != SYSTEM_MEMBER:
            if clock is not None:
                payload["answered"] = payload.get("answered", 0) + 1
            payload.pop("breached", None)
            return True, None  # a member replied
        if event.type == "status.set" and ours and clock is not None:
            if event.body["label"] == WAITING and not clock.is_paused:
                return True, clock.paused(at)
            if event.body["label"] != WAITING and clock.is_paused:
                return True, clock.resumed(at)
            return True, clock
        return False, clock

    # -- rebuilt from the log at start -------------------------------------------------

    def reconcile_all(self) -> int:
        """At worker start: rebuild every open case's response clock from its log;
        returns how many jobs were created or replaced. Idempotent."""
        count = 0
        for row in self.cases.list_cases(limit=1_000_000, resolved=False):
            count += self.reconcile(row.case_id)
        return count

    def reconcile(self, case_id: str) -> int:
        """Rebuild one case's clock from its log; 1 if its job was created or replaced
        (missing, or its clock disagrees with the log), 0 if it was right."""
        state = self.cases.state(case_id)
        if state is None or self.targets(state) is None:
            return 0
        payload: dict[str, Any] = {"answered": 0}
        clock: SlaClock | None = None
        for event in self.cases.events(case_id):
            at = parse_time(event.time)
            if clock is not None:
                at = max(at, clock.last_event)  # another party's clock may lag ours
            _, clock = self._move(payload, clock, event, at)
        payload.update(case=case_id, clock=_dump(clock))
        key = f"sla:{case_id}"
        with self.cases.db.write() as conn:
            held = self.queue.unfinished(key, conn=conn, lock=True)
            if held is None and clock is None and not payload["answered"]:
                return 0  # nothing was ever awaited
            if held is not None and _shape(held.payload) == _shape(payload):
                return 0  # the job agrees with the log
            if (
                held is not None
                and held.payload.get("breached")
                and held.payload.get("answered", 0) == payload["answered"]
            ):
                payload["breached"] = True  # the same wait: reported already
            due = self._due(state, payload, clock) or IDLE
            self.queue.schedule(BREACH, due, payload, key=key, conn=conn)
        return 1

    def _due(
        self,
        state: State,
        payload: dict[str, Any],
        clock: SlaClock | None,
        *,
        targets: dict[str, int] | None = None,
        conn: Connection | None = None,
    ) -> datetime | None:
        """When the clock breaches its target; ``targets`` and ``conn`` spare the
        follower a second read and a second connection per case."""
        if targets is None:
            targets = self.targets(state, conn)
        if clock is None or targets is None or payload.get("breached"):
            return None  # nothing awaited, or already reported until someone replies
        kind = "first_response" if payload.get("answered", 0) == 0 else "next_response"
        minutes = targets.get(kind)
        if not minutes:
            return None
        payload["target"] = kind
        calendar = settings.calendar(self.cases.db) if conn is None else settings.calendar_in(conn)
        return clock.due(calendar, timedelta(minutes=int(minutes)))

    def breach(self, job: Job, conn: Connection) -> None:
        clock = _load(job.payload.get("clock"))
        if clock is None or clock.is_paused:
            return
        case_id = job.payload["case"]
        state = self.cases.state(case_id)
        owner = self.ownership.owner(case_id)
        if state is None or owner is None:
            return
        calendar = settings.calendar(self.cases.db)
        since = clock.started_at.astimezone(ZoneInfo(calendar.timezone)).strftime(
            "%a %d %b %H:%M %Z"
        )
        what = job.payload.get("target", "response").replace("_", " ")
        text = (
            f"Target missed: the customer has waited for a {what} since {since} "
            f"(business time {clock.elapsed(calendar, self.now())}). — {state['title']}"
        )
        self.ownership.notify(conn, owner.member.id, case_id, "sla", text)
        lead = self.ownership.lead_of(owner.member.id)
        if lead is not None:
            self.ownership.notify(conn, lead.id, case_id, "sla", text)
        # stay armed but idle: the count of answered messages carries on, and no second
        # alarm sounds until a member replies
        self.queue.schedule(BREACH, IDLE, {**job.payload, "breached": True}, key=job.key, conn=conn)


def _shape(payload: dict[str, Any]) -> tuple[int, bool, bool]:
    """What a rebuilt clock must agree on with the held one: messages answered, whether a
    reply is awaited, whether the wait is paused (a rebuilt clock's instants are its
    events' times, a live one's the moments they were followed)."""
    clock = _load(payload.get("clock"))
    return (
        int(payload.get("answered", 0)),
        clock is not None,
        clock is not None and clock.is_paused,
    )


def _dump(clock: SlaClock | None) -> dict[str, Any] | None:
    if clock is None:
        return None
    return {
        "started": clock.started_at.isoformat(),
        "pauses": [[a.isoformat(), b.isoformat()] for a, b in clock.pauses],
        "paused": clock.paused_at.isoformat() if clock.paused_at else None,
    }


def _load(raw: dict[str, Any] | None) -> SlaClock | None:
    if not raw:
        return None
    return SlaClock(
        started_at=datetime.fromisoformat(raw["started"]),
        pauses=tuple(
            (datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in raw["pauses"]
        ),
        paused_at=datetime.fromisoformat(raw["paused"]) if raw["paused"] else None,
    )
