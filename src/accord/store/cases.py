"""The case repository: append signed events atomically, author new ones, read cases.

Appending is idempotent (events are content-addressed and ``UNIQUE(case_id,
event_id)``) and atomic: the events, what the fold derived about each, and the
case's materialised state are written in one transaction. The materialised state
is what a full re-fold would give, byte for byte — incrementally when the new
events sort after everything held, by a re-fold when a concurrent branch sorts
earlier. Reading a case reads one row, whatever the length of its history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.core.crypto import NodeKey
from accord.core.errors import AccordError, MissingParentsError, RuleError
from accord.core.events import Event, create_event, load_trusted, parse_event
from accord.core.fold import CaseFold, Meta, fold_events
from accord.core.state import State, state_hash
from accord.core.timefmt import format_time
from accord.store.database import Database
from accord.store.graph import DbGraph, meta_columns
from accord.store.tables import case_snapshots, cases, events


class Authoring(TypedDict, total=False):
    """Who writes an event and how (see ``accord.core.events.create_event``)."""

    member: str
    via: str | None
    for_party: str | None
    session: str | None
    time: str  # RFC 3339, as ``format_time`` writes it (an import keeps the original times)


SNAPSHOT_EVERY = 256
"""Events between fold snapshots: bounds the re-fold a late concurrent event costs."""

# Every write to a case runs these: built once (building costs more than running them).
_UPDATE_STATE = cases.update().where(cases.c.case_id == sa.bindparam("b_case_id"))
_STATE = sa.select(cases.c.state).where(cases.c.case_id == sa.bindparam("b_case_id"))
# A case as it is shown: its materialised state and its latest events, in one statement
# (one round trip and one transaction on the hottest read, ``GET /api/v1/cases/{id}``).
_VIEW = sa.text(
    "SELECT 0 AS part, state AS raw, NULL AS sig, NULL AS event_id, NULL AS depth "
    "FROM cases WHERE case_id = :case_id "
    "UNION ALL "
    "SELECT 1, raw, sig, event_id, depth FROM ("
    "SELECT raw, sig, event_id, depth FROM events WHERE case_id = :case_id "
    "ORDER BY depth DESC, event_id DESC LIMIT :limit) AS latest "
    "ORDER BY part, depth DESC, event_id DESC"
)

# A case's state and every event in one statement (one snapshot): the pair a bundle needs
_EXPORT = sa.text(
    "SELECT 0 AS part, state AS raw, NULL AS sig, NULL AS event_id, NULL AS depth "
    "FROM cases WHERE case_id = :case_id "
    "UNION ALL "
    "SELECT 1, raw, sig, event_id, depth FROM events WHERE case_id = :case_id "
    "ORDER BY part, depth, event_id"
)


@dataclass
class Rejected:
    event_id: str
    error: str
    message: str
    missing: list[str] = field(default_factory=list)  # held by nobody here yet: fetch them

    @classmethod
    def of(cls, event: Event, exc: AccordError) -> Rejected:
        missing = exc.missing if isinstance(exc, MissingParentsError) else []
        return cls(event.id, type(exc).__name__, str(exc), list(missing))


@dataclass
class AppendResult:
    stored: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    refolded: list[str] = field(default_factory=list)


@dataclass
class CaseRow:
    case_id: str
    title: str
    state_hash: str
    event_count: int
    resolved: bool
    opened_at: str
    updated_at: datetime


class CaseStore:
    """Signed events and materialised case state in one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing -----------------------------------------------------------------

    def append(self, batch: Iterable[Event], *, strict: bool = True) -> AppendResult:
        """Store verified events (any order, any cases) in one transaction.

        With ``strict`` the first structural fault (missing parent, broken chain)
        raises and nothing is stored; otherwise faulty events are skipped and listed
        in ``rejected``. Rule-breaking events are stored as evidence either way.
        """
        by_case: dict[str, list[Event]] = defaultdict(list)
        for event in batch:
            by_case[event.case].append(event)
        result = AppendResult()
        with self.db.write() as conn:
            self.db.serialise_appends(conn)  # first of all locks: see Database.lock_case
            for case_id in sorted(by_case):  # one lock order: no deadlocks between writers
                self._append_case(conn, case_id, by_case[case_id], strict, result)
        return result

    def create(
        self,
        key: NodeKey,
        case_id: str | None,
        type: str,
        body: dict[str, Any],
        *,
        member: str,
        time: datetime | None = None,
        via: str | None = None,
        for_party: str | None = None,
        session: str | None = None,
        conn: Connection | None = None,
    ) -> Event:
        """Author one event as this node and append it; ``case_id=None`` opens a case."""
        return self.create_many(
            key,
            case_id,
            [(type, body)],
            member=member,
            time=time,
            via=via,
            for_party=for_party,
            session=session,
            conn=conn,
        )[0]

    def create_many(
        self,
        key: NodeKey,
        case_id: str | None,
        items: Sequence[tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], Authoring]],
        *,
        member: str,
        time: datetime | None = None,
        via: str | None = None,
        for_party: str | None = None,
        session: str | None = None,
        conn: Connection | None = None,
    ) -> list[Event]:
        """Author a chain of events in one transaction (one group commit).

        Raises ``RuleError`` — and stores nothing — if any of them would break a rule.
        With ``conn`` the events join the caller's transaction (a timer's effects and its
        completion commit together). An item's third element overrides the authoring
        (``member``, ``via``, ``for_party``, ``session``) for that event alone: a channel
        opens a case and posts the customer's message in one fold.
        """
        stamp = format_time(time or datetime.now(UTC))
        made: list[Event] = []
        default: Authoring = {
            "member": member,
            "via": via,
            "for_party": for_party,
            "session": session,
            "time": stamp,
        }
        with self._writing(conn) as conn:
            self.db.serialise_appends(conn)
            folder, graph = self._open_fold(conn, case_id) if case_id else (None, None)
            counted = folder.state["events"] if folder is not None else 0
            for type_, body, *override in items:
                who: Authoring = {**default, **override[0]} if override else default
                if folder is None:
                    event = create_event(
                        key,
                        case=None,
                        type=type_,
                        member=who["member"],
                        seq=1,
                        prev=None,
                        parents=[],
                        depth=1,
                        time=who["time"],
                        body=body,
                        via=who["via"],
                        for_party=who["for_party"],
                        session=who["session"],
                    )
                    case_id = event.case
                    folder, graph = self._open_fold(conn, case_id, new=True)
                else:
                    s = folder.state
                    mine = s["authors"].get(key.public)
                    last = s["last"]
                    assert last is not None  # an existing case has folded its opening
                    event = create_event(
                        key,
                        case=folder.case_id,
                        type=type_,
                        member=who["member"],
                        seq=mine["seq"] + 1 if mine else 1,
                        prev=mine["id"] if mine else None,
                        parents=s["heads"],
                        depth=last[0] + 1,
                        time=who["time"],
                        body=body,
                        via=who["via"],
                        for_party=who["for_party"],
                        session=who["session"],
                    )
                meta = folder.add(event)
                if meta.verdict is not None:
                    raise RuleError(meta.verdict)
                made.append(event)
            if folder is not None and graph is not None:
                self._insert(conn, graph.pending.values())
                self._save_state(conn, folder, exists=made[0].type != "case.opened", before=counted)
        return made

    @contextmanager
    def _writing(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.db.write() as own:
                yield own

    def _open_fold(
        self, conn: Connection, case_id: str, *, new: bool = False
    ) -> tuple[CaseFold, DbGraph]:
        graph = DbGraph(conn, case_id)
        row = None if new else self.db.lock_case(conn, cases, case_id)
        if row is None:
            if not new:
                raise AccordError(f"no case {case_id} on this node")
            return CaseFold(case_id, graph), graph
        folder = CaseFold(case_id, graph, orjson.loads(row["state"]), orjson.loads(row["auth_ids"]))
        return folder, graph

    def _append_case(
        self, conn: Connection, case_id: str, batch: list[Event], strict: bool, result: AppendResult
    ) -> None:
        row = self.db.lock_case(conn, cases, case_id)
        unique = {e.id: e for e in batch}
        held = set(
            conn.execute(
                sa.select(events.c.event_id).where(
                    events.c.case_id == case_id, events.c.event_id.in_(list(unique))
                )
            ).scalars()
        )
        result.duplicates.extend(sorted(held))
        new = sorted((e for i, e in unique.items() if i not in held), key=lambda e: e.key)
        if not new:
            return
        graph = DbGraph(conn, case_id)
        if row is None:
            folder = CaseFold(case_id, graph)
        else:
            folder = CaseFold(
                case_id, graph, orjson.loads(row["state"]), orjson.loads(row["auth_ids"])
            )
        if not folder.fits(new[0]):
            self._refold(conn, case_id, new, strict, result)
            return
        for event in new:
            try:
                meta = folder.add(event)
            except AccordError as exc:
                if strict:
                    raise
                result.rejected.append(Rejected.of(event, exc))
                continue
            result.stored.append(event.id)
            if meta.verdict is not None:
                result.evidence.append(event.id)
        if graph.pending:
            self._insert(conn, graph.pending.values())
            self._save_state(
                conn, folder, exists=row is not None, before=row["event_count"] if row else 0
            )

    def _refold(
        self, conn: Connection, case_id: str, new: list[Event], strict: bool, result: AppendResult
    ) -> None:
        """A concurrent branch sorts before what is held: fold again from the nearest
        snapshot before it. Events up to the snapshot keep their derived metadata, since
        nothing before them in (depth, id) order changed; only the tail is re-folded."""
        row = self.db.lock_case(conn, cases, case_id)
        snapshot = self._snapshot_before(conn, case_id, new[0].key)
        if snapshot is None:
            upto: tuple[int, str] = (0, "")  # nothing stored counts: fold from the start
            state, auth_ids, counted = None, list[str](), 0
        else:
            upto = (snapshot["depth"], snapshot["event_id"])
            state = orjson.loads(snapshot["state"])
            counted = state["events"]
            auth_ids = orjson.loads(row["auth_ids"])[: snapshot["auth_len"]] if row else []
        tail = self._load_after(conn, case_id, upto)
        graph = DbGraph(conn, case_id, upto=upto)
        folder = CaseFold(case_id, graph, state, auth_ids)
        held = {e.id for e in tail}
        for event in sorted([*tail, *new], key=lambda e: e.key):
            try:
                folder.add(event)
            except AccordError as exc:
                if event.id in held:  # cannot happen unless the database was edited by hand
                    raise AccordError(f"stored event {event.id} no longer folds: {exc}") from exc
                if strict:
                    raise
                result.rejected.append(Rejected.of(event, exc))
        accepted = [e for e in new if e.id in graph.pending]
        if not accepted:
            return
        updates = [
            {"b_case": case_id, "b_event": eid, **meta_columns(meta)}
            for eid, (_, meta) in graph.pending.items()
            if eid in held
        ]
        if updates:
            conn.execute(
                events.update()
                .where(
                    events.c.case_id == sa.bindparam("b_case"),
                    events.c.event_id == sa.bindparam("b_event"),
                )
                .values(
                    clock=sa.bindparam("clock"),
                    auth=sa.bindparam("auth"),
                    party=sa.bindparam("party"),
                    verdict=sa.bindparam("verdict"),
                ),
                updates,
            )
        conn.execute(  # snapshots inside the re-folded tail no longer hold
            case_snapshots.delete().where(
                case_snapshots.c.case_id == case_id,
                sa.tuple_(case_snapshots.c.depth, case_snapshots.c.event_id) > sa.tuple_(*upto),
            )
        )
        self._insert(conn, [graph.pending[e.id] for e in accepted])
        self._save_state(conn, folder, exists=row is not None, before=counted)
        result.refolded.append(case_id)
        for event in accepted:
            result.stored.append(event.id)
            if graph.pending[event.id][1].verdict is not None:
                result.evidence.append(event.id)

    def _snapshot_before(self, conn: Connection, case_id: str, key: tuple[int, str]) -> Any:
        t = case_snapshots
        return (
            conn.execute(
                sa.select(t.c.depth, t.c.event_id, t.c.state, t.c.auth_len)
                .where(t.c.case_id == case_id, sa.tuple_(t.c.depth, t.c.event_id) < sa.tuple_(*key))
                .order_by(t.c.depth.desc(), t.c.event_id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )

    def _load_after(self, conn: Connection, case_id: str, upto: tuple[int, str]) -> list[Event]:
        query = (
            sa.select(events.c.raw, events.c.sig, events.c.event_id)
            .where(
                events.c.case_id == case_id,
                sa.tuple_(events.c.depth, events.c.event_id) > sa.tuple_(*upto),
            )
            .order_by(events.c.depth, events.c.event_id)
        )
        return [load_trusted(*r) for r in conn.execute(query)]

    def _insert(self, conn: Connection, rows: Iterable[tuple[Event, Meta]]) -> None:
        now = datetime.now(UTC)
        values = [
            {
                "case_id": e.case,
                "event_id": e.id,
                "author": e.author.node,
                "seq": e.seq,
                "depth": e.depth,
                "type": e.type,
                "raw": e.raw,
                "sig": e.sig,
                "received_at": now,
                **meta_columns(m),
            }
            for e, m in rows
        ]
        if values:
            conn.execute(events.insert(), values)

    def _save_state(
        self, conn: Connection, folder: CaseFold, *, exists: bool, before: int | None = None
    ) -> None:
        """Write the materialised state; keep a snapshot each time the case passes
        another ``SNAPSHOT_EVERY`` events (``before``: its event count before this write)."""
        s = folder.state
        last = s["last"]
        assert last is not None  # a case is saved once it holds at least its opening
        values = {
            "title": s["title"],
            "state": orjson.dumps(s),
            "state_hash": state_hash(s),
            "auth_ids": orjson.dumps(folder.auth_ids),
            "event_count": s["events"],
            "last_depth": last[0],
            "resolved": s["resolved"],
            "updated_at": datetime.now(UTC),
        }
        if exists:
            conn.execute(_UPDATE_STATE, {"b_case_id": folder.case_id, **values})
        else:
            opened = s["opened"]["time"] if s["opened"] else ""
            conn.execute(cases.insert(), {"case_id": folder.case_id, "opened_at": opened, **values})
        if before is not None and s["events"] // SNAPSHOT_EVERY > before // SNAPSHOT_EVERY:
            depth, last_id = last
            conn.execute(
                case_snapshots.insert(),
                {
                    "case_id": folder.case_id,
                    "depth": depth,
                    "event_id": last_id,
                    "state": values["state"],
                    "auth_len": len(folder.auth_ids),
                },
            )

    # -- reading -----------------------------------------------------------------

    def state(self, case_id: str) -> State | None:
        """The materialised state of a case (one row read), or None if not held."""
        with self.db.read() as conn:
            return self.state_in(conn, case_id)

    def state_in(self, conn: Connection, case_id: str) -> State | None:
        """``state`` as seen inside the caller's transaction."""
        raw = conn.execute(_STATE, {"b_case_id": case_id}).scalar_one_or_none()
        return None if raw is None else orjson.loads(raw)

    def view(self, case_id: str, *, limit: int = 50) -> tuple[State, list[Event]] | None:
        """``state`` and ``timeline(limit=…)`` together, read in one statement; None if the
        case is not held."""
        with self.db.read() as conn:
            rows = conn.execute(_VIEW, {"case_id": case_id, "limit": limit}).all()
        if not rows or rows[0][0] != 0:
            return None
        state: State = orjson.loads(rows[0][1])
        return state, [
            load_trusted(bytes(raw), sig, event_id) for _, raw, sig, event_id, _ in rows[1:]
        ]

    def export(self, case_id: str, *, replica: bool = True) -> tuple[State, list[Event]] | None:
        """The state and every event of a case, in (depth, id) order, read together (the
        state is the fold of exactly these events), for a bundle; read where a read
        replica may serve it (``Database.read_replica``) unless ``replica`` is false. None
        if the case is not held."""
        with self.db.read_replica() if replica else self.db.read() as conn:
            rows = conn.execute(_EXPORT, {"case_id": case_id}).all()
        if not rows or rows[0][0] != 0:
            return None
        state: State = orjson.loads(rows[0][1])
        return state, [
            load_trusted(bytes(raw), sig, event_id) for _, raw, sig, event_id, _ in rows[1:]
        ]

    def state_hash(self, case_id: str) -> str | None:
        with self.db.read() as conn:
            return conn.execute(
                sa.select(cases.c.state_hash).where(cases.c.case_id == case_id)
            ).scalar_one_or_none()

    def list_cases(
        self, *, limit: int = 50, offset: int = 0, resolved: bool | None = None
    ) -> list[CaseRow]:
        query = sa.select(
            cases.c.case_id,
            cases.c.title,
            cases.c.state_hash,
            cases.c.event_count,
            cases.c.resolved,
            cases.c.opened_at,
            cases.c.updated_at,
        ).order_by(cases.c.updated_at.desc(), cases.c.case_id)
        if resolved is not None:
            query = query.where(cases.c.resolved == resolved)
        with self.db.read() as conn:
            rows = conn.execute(query.limit(limit).offset(offset)).all()
        return [CaseRow(*row) for row in rows]

    def find_case(self, prefix: str) -> str | None:
        """Resolve a case id or an unambiguous prefix of it (``sha256:`` optional)."""
        if not prefix.startswith("sha256:"):
            prefix = "sha256:" + prefix
        with self.db.read() as conn:
            ids = (
                conn.execute(
                    sa.select(cases.c.case_id).where(cases.c.case_id.startswith(prefix)).limit(2)
                )
                .scalars()
                .all()
            )
        return ids[0] if len(ids) == 1 else None

    def events(self, case_id: str, *, verify: bool = False) -> list[Event]:
        """Every event of a case in (depth, id) order."""
        with self.db.read() as conn:
            return self._load_all(conn, case_id, verify=verify)

    def timeline(self, case_id: str, *, limit: int = 50) -> list[Event]:
        """The latest ``limit`` events, newest first (index range scan)."""
        query = (
            sa.select(events.c.raw, events.c.sig, events.c.event_id)
            .where(events.c.case_id == case_id)
            .order_by(events.c.depth.desc(), events.c.event_id.desc())
            .limit(limit)
        )
        with self.db.read() as conn:
            return [load_trusted(*row) for row in conn.execute(query)]

    def get(self, case_id: str, ids: Sequence[str]) -> list[Event]:
        """The events of a case with these ids that this node holds, in (depth, id) order."""
        query = (
            sa.select(events.c.raw, events.c.sig, events.c.event_id)
            .where(events.c.case_id == case_id, events.c.event_id.in_(list(ids)))
            .order_by(events.c.depth, events.c.event_id)
        )
        with self.db.read() as conn:
            return [load_trusted(*row) for row in conn.execute(query)]

    def events_after(self, case_id: str, author: str, seq: int, limit: int = 1000) -> list[Event]:
        """An author's events after ``seq`` — what a peer that holds ``seq`` is missing."""
        query = (
            sa.select(events.c.raw, events.c.sig, events.c.event_id)
            .where(events.c.case_id == case_id, events.c.author == author, events.c.seq > seq)
            .order_by(events.c.seq, events.c.event_id)
            .limit(limit)
        )
        with self.db.read() as conn:
            return [load_trusted(*row) for row in conn.execute(query)]

    def refold(self, case_id: str) -> State:
        """Fold the stored events from scratch (to check the materialised state)."""
        folder, _ = fold_events(case_id, self.events(case_id))
        return folder.state

    def _load_all(self, conn: Connection, case_id: str, *, verify: bool = False) -> list[Event]:
        query = (
            sa.select(events.c.raw, events.c.sig, events.c.event_id)
            .where(events.c.case_id == case_id)
            .order_by(events.c.depth, events.c.event_id)
        )
        if verify:  # re-check everything, signatures included (audits, tests)
            return [parse_event(raw, sig) for raw, sig, _ in conn.execute(query)]
        return [load_trusted(*row) for row in conn.execute(query)]
