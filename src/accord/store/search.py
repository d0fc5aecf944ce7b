"""Full-text search over cases: titles, messages and internal notes.

SQLite uses an FTS5 table (``unicode61`` tokens, diacritics folded); PostgreSQL a table
with a generated ``tsvector`` (the ``simple`` configuration: customers write in many
languages, so no stemming) and a GIN index. Both answer the same query language: the
words of the query, all required, the last one as a prefix (``"ref 12"`` finds
"refund 1234").

The index follows each case: ``search_marks`` holds, per case, how many events it has
indexed and up to which position, and how many notes. ``catch_up`` indexes what a case
gained since (its events are appended under the case's lock, so their positions grow in
commit order) and re-indexes a case's notes when their number changed. Any process — a
web worker, ``accord worker``, the CLI — can bring it up to date; catch-ups take a lock
(SQLite's writer lock, a PostgreSQL advisory lock) so nothing is indexed twice; a
restored or new database builds the index on first use. Catching up reads and writes
the primary; the searches then read where a read replica may serve them
(``Database.read_replica``).

The first build on PostgreSQL (no marks at all: a new or restored database, an upgrade)
does not go case by case: maintaining the GIN index row by row and a round trip per
batch made 100,000 cases take 40 s and more. ``_cold_build`` does it in one transaction
under the same advisory lock: the marks from one statement (one snapshot, so an event
committed meanwhile is past a case's mark and indexed by the next catch-up), the
documents up to those marks loaded with ``COPY``, then the GIN index (and the one by case)
created once. They are dropped inside that transaction, so a process killed mid-build
leaves the indexes, the marks and the documents as they were (empty), and the next
catch-up builds again; an index missing for any other reason is made again by the first
catch-up of a process (``_ensure_index``). These tables are derived and
node-private (notes are), so they are neither in ``accord.store.tables`` nor in backups;
erasing a customer removes their notes from it (``forget_notes``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord import faults
from accord.store.changes import Unchanged
from accord.store.database import Database, unbounded
from accord.store.tables import events, notes

DOCS = "search_docs"
MARKS = "search_marks"
INDEXED_TYPES = ("case.opened", "message.posted")
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 12
BATCH = 500
_STALE_EVENTS = (
    f"SELECT c.case_id FROM cases c LEFT JOIN {MARKS} m ON m.case_id = c.case_id "
    "WHERE m.events IS NULL OR m.events <> c.event_count"
)
_STALE_NOTES = (
    f" UNION ALL SELECT n.case_id FROM notes n LEFT JOIN {MARKS} m ON m.case_id = n.case_id "
    "GROUP BY n.case_id, m.notes HAVING m.notes IS NULL OR m.notes <> count(*)"
)
LOCK_KEY = 0x5EA2C4  # the advisory lock that serialises catch-ups on PostgreSQL
GIN_INDEX = "ix_search_docs_tsv"
CASE_INDEX = "ix_search_docs_case"
# the documents' indexes, dropped for the cold build and made once after it
_INDEXES = {
    GIN_INDEX: f"CREATE INDEX IF NOT EXISTS {GIN_INDEX} ON {DOCS} USING GIN (tsv)",
    CASE_INDEX: f"CREATE INDEX IF NOT EXISTS {CASE_INDEX} ON {DOCS} (case_id)",
}
BUILD_MEMORY = "256MB"  # work_mem and maintenance_work_mem of the cold build's transaction
# The cold build's marks, from one snapshot: each case's event count with the position of
# its last event (a case's events are appended under its lock, so every event at or
# before that position is committed and visible), and how many notes it has.
_COLD_MARKS = (
    f"INSERT INTO {MARKS} (case_id, events, pos, notes) "
    "SELECT c.case_id, c.event_count, COALESCE(e.pos, 0), COALESCE(n.notes, 0) FROM cases c "
    "LEFT JOIN (SELECT case_id, max(pos) AS pos FROM events GROUP BY case_id) e "
    "ON e.case_id = c.case_id "
    "LEFT JOIN (SELECT case_id, count(*) AS notes FROM notes GROUP BY case_id) n "
    "ON n.case_id = c.case_id"
)
# The indexed events up to the marks, their text taken out of the JSON by the server (the
# rows stay small; Python only folds them): a title or a message's text.
_COLD_EVENTS = (
    "SELECT e.case_id, e.type, convert_from(e.raw, 'UTF8')::json -> 'body' ->> "
    "(CASE e.type WHEN 'case.opened' THEN 'title' ELSE 'text' END) "
    f"FROM events e JOIN {MARKS} m ON m.case_id = e.case_id "
    "WHERE e.type IN ('case.opened', 'message.posted') AND e.pos <= m.pos"
)
_COLD_NOTES = f"SELECT n.case_id, n.text FROM notes n JOIN {MARKS} m ON m.case_id = n.case_id"


@dataclass(frozen=True)
class Hit:
    """A case that matches, with the best-matching passage."""

    case_id: str
    kind: str  # "title", "message" or "note"
    snippet: str


def fold(text: str) -> str:
    """Lower case without diacritics ("Ünïcode" → "unicode"), as both indexes match:
    FTS5 folds by itself (``remove_diacritics``); PostgreSQL indexes this form, since
    ``unaccent`` cannot serve a generated column."""
    if text.isascii():  # NFKD leaves ASCII alone and it has no combining marks
        return text.lower()
    flat = unicodedata.normalize("NFKD", text)
    return "".join(c for c in flat if not unicodedata.combining(c)).lower()


def words(query: str) -> list[str]:
    """The words of a query as the index sees them (at most ``MAX_WORDS``)."""
    return _WORD.findall(fold(query))[:MAX_WORDS]


class Search:
    """The search index of one node's database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.unchanged = Unchanged(db)
        self._index_seen = db.is_sqlite  # FTS5 has no separate index to lose

    def catch_up(self) -> int:
        """Index what every case gained since the last call; returns the cases touched.
        Skipped while no case changed and no note was added since this process last
        looked (two index lookups), except at most ``FULL_CHECK_SECONDS`` apart."""
        skip, mark, clock = self.unchanged.check()
        if skip:
            return 0
        built = 0
        if not self.db.is_sqlite:
            with self.db.read() as conn:
                cold = conn.execute(sa.text(f"SELECT NOT EXISTS (SELECT 1 FROM {MARKS})")).scalar()
            if cold:
                built = self._cold_build()
            if not self._index_seen:
                self._ensure_index()
        with self.db.read() as conn:
            stale = [r[0] for r in conn.execute(sa.text(_STALE_EVENTS + _STALE_NOTES))]
        ids = list(dict.fromkeys(stale))
        for start in range(0, len(ids), BATCH):
            with self.db.write() as conn:
                self._step(conn, ids[start : start + BATCH])
        self.unchanged.checked(mark, clock)
        return max(built, len(ids))

    def _cold_build(self) -> int:
        """Build the whole index at once (PostgreSQL, no marks at all): one transaction,
        the GIN index dropped before the documents are copied in and created after;
        returns the cases marked. Another process that finds no marks waits here for the
        lock (without the lock timeout: the build is what it waits for), then finds the
        marks and leaves; cases written during the build are past their marks and left
        to the ordinary catch-up that follows."""
        with self.db.write() as conn, unbounded(conn):
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
            if conn.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {MARKS})")).scalar():
                return 0  # built by another process meanwhile
            conn.exec_driver_sql(f"SET LOCAL work_mem = '{BUILD_MEMORY}'")
            conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
            conn.exec_driver_sql(f"DELETE FROM {DOCS}")  # none without marks; to be sure
            for name in _INDEXES:
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
            marked = conn.exec_driver_sql(_COLD_MARKS).rowcount
            found = conn.exec_driver_sql(_COLD_EVENTS).all()
            texts = [
                (case_id, "title" if kind == "case.opened" else "message", text)
                for case_id, kind, text in found
                if text
            ]
            texts.extend(
                (case_id, "note", text) for case_id, text in conn.exec_driver_sql(_COLD_NOTES)
            )
            raw: Any = conn.connection.dbapi_connection
            with raw.cursor() as cursor:
                sql = f"COPY {DOCS} (case_id, kind, body, folded) FROM STDIN"
                with cursor.copy(sql) as copy:
                    for case_id, kind, body in texts:
                        copy.write_row((case_id, kind, body, fold(body)))
            faults.point("search.cold-build.copied")
            for create in _INDEXES.values():
                conn.exec_driver_sql(create)
            faults.point("search.cold-build.indexed")
        self._index_seen = True
        return int(marked or 0)

    def _ensure_index(self) -> None:
        """Make the documents' indexes again if one is missing (PostgreSQL; once a
        process)."""
        with self.db.read() as conn:
            missing = [
                create
                for name, create in _INDEXES.items()
                if conn.execute(sa.text(f"SELECT to_regclass('{name}')")).scalar() is None
            ]
        if missing:
            with self.db.write() as conn, unbounded(conn):
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
                conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
                for create in missing:
                    conn.exec_driver_sql(create)
        self._index_seen = True

    def _step(self, conn: Connection, ids: list[str]) -> None:
        """Index these cases' new events and changed notes (checked again under the lock:
        another process may have indexed them meanwhile)."""
        if not self.db.is_sqlite:  # SQLite's BEGIN IMMEDIATE already serialises writers
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        expanding: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)
        stale_events = conn.execute(
            sa.text(
                f"SELECT c.case_id, c.event_count, m.pos FROM cases c "
                f"LEFT JOIN {MARKS} m ON m.case_id = c.case_id "
                "WHERE (m.events IS NULL OR m.events <> c.event_count) AND c.case_id IN :ids"
            ).bindparams(expanding),
            {"ids": ids},
        ).all()
        stale_notes = conn.execute(
            sa.text(
                f"SELECT n.case_id, count(*) FROM notes n LEFT JOIN {MARKS} m "
                "ON m.case_id = n.case_id WHERE n.case_id IN :ids GROUP BY n.case_id, m.notes "
                "HAVING m.notes IS NULL OR m.notes <> count(*)"
            ).bindparams(expanding),
            {"ids": ids},
        ).all()
        docs: list[dict[str, str]] = []
        marks: dict[str, dict[str, int]] = {}
        if stale_events:
            since = {case_id: pos or 0 for case_id, _count, pos in stale_events}
            ids = list(since)
            # the last position before the events themselves: an event committed between
            # the two reads is past the mark (indexed next time), never behind it unread
            last = dict(
                conn.execute(
                    sa.select(events.c.case_id, sa.func.max(events.c.pos))
                    .where(events.c.case_id.in_(ids))
                    .group_by(events.c.case_id)
                ).all()
            )
            rows = conn.execute(
                sa.select(events.c.case_id, events.c.pos, events.c.type, events.c.raw).where(
                    events.c.case_id.in_(ids), events.c.type.in_(INDEXED_TYPES)
                )
            ).all()
            for case_id, pos, kind, raw in rows:
                if pos <= since[case_id] or pos > (last.get(case_id) or 0):
                    continue
                body = orjson.loads(raw)["body"]
                text = body["title"] if kind == "case.opened" else body.get("text", "")
                if text:
                    kinds = "title" if kind == "case.opened" else "message"
                    docs.append({"c": case_id, "k": kinds, "b": text})
            for case_id, count, _pos in stale_events:
                marks[case_id] = {"events": count, "pos": int(last.get(case_id) or 0)}
        if stale_notes:
            ids = [case_id for case_id, _count in stale_notes]
            self.forget_notes(conn, ids)
            texts = conn.execute(
                sa.select(notes.c.case_id, notes.c.text).where(notes.c.case_id.in_(ids))
            )
            docs.extend({"c": case_id, "k": "note", "b": t} for case_id, t in texts)
            for case_id, count in stale_notes:
                marks.setdefault(case_id, {})["notes"] = int(count)
        if docs:
            if self.db.is_sqlite:
                insert = f"INSERT INTO {DOCS} (case_id, kind, body) VALUES (:c, :k, :b)"
            else:
                insert = f"INSERT INTO {DOCS} (case_id, kind, body, folded) VALUES (:c, :k, :b, :f)"
                docs = [{**d, "f": fold(d["b"])} for d in docs]
            conn.execute(sa.text(insert), docs)
        self._mark(conn, marks)

    def _mark(self, conn: Connection, marks: dict[str, dict[str, int]]) -> None:
        """Record how far each case is indexed: one statement per kind of change."""
        if not marks:
            return
        known = {
            row[0]: row[1:]
            for row in conn.execute(
                sa.text(
                    f"SELECT case_id, events, pos, notes FROM {MARKS} WHERE case_id IN :ids"
                ).bindparams(sa.bindparam("ids", expanding=True)),
                {"ids": list(marks)},
            )
        }
        updates: list[dict[str, Any]] = []
        inserts: list[dict[str, Any]] = []
        for case_id, values in marks.items():
            old = known.get(case_id)
            row: dict[str, Any] = (
                {"events": old[0], "pos": old[1], "notes": old[2]}
                if old is not None
                else {"events": -1, "pos": 0, "notes": 0}
            )
            row.update(values)
            row["case_id"] = case_id
            (updates if old is not None else inserts).append(row)
        if updates:
            conn.execute(
                sa.text(
                    f"UPDATE {MARKS} SET events = :events, pos = :pos, notes = :notes "
                    "WHERE case_id = :case_id"
                ),
                updates,
            )
        if inserts:
            conn.execute(
                sa.text(
                    f"INSERT INTO {MARKS} (case_id, events, pos, notes) "
                    "VALUES (:case_id, :events, :pos, :notes)"
                ),
                inserts,
            )

    def forget_notes(self, conn: Connection, case_ids: Sequence[str]) -> None:
        """Remove the notes of these cases from the index (erasure)."""
        if case_ids:
            conn.execute(
                sa.text(f"DELETE FROM {DOCS} WHERE kind = 'note' AND case_id IN :ids").bindparams(
                    sa.bindparam("ids", expanding=True)
                ),
                {"ids": list(case_ids)},
            )
            conn.execute(
                sa.text(f"UPDATE {MARKS} SET notes = 0 WHERE case_id IN :ids").bindparams(
                    sa.bindparam("ids", expanding=True)
                ),
                {"ids": list(case_ids)},
            )

    def matching(self, query: str) -> sa.Select[Any] | None:
        """Every case matching ``query`` (all its words, the last as a prefix), as a query
        of case ids to use inside another (the inbox's views filter it in the database:
        no top-N is taken before them); ``None`` for a query without words."""
        terms = words(query)
        if not terms:
            return None
        self.catch_up()
        if self.db.is_sqlite:
            sql = sa.text(f"SELECT case_id FROM {DOCS} WHERE {DOCS} MATCH :m").bindparams(
                m=_fts_match(terms)
            )
        else:
            sql = sa.text(
                f"SELECT case_id FROM {DOCS} WHERE tsv @@ to_tsquery('simple', :q)"
            ).bindparams(q=_tsquery(terms))
        found = sql.columns(case_id=sa.String(71)).subquery("search_docs_hit")
        # PostgreSQL: the matches first (from the GIN index), then the view's rows among
        # them; left to itself the planner walks the view in its order and probes the
        # index once per case, which is slow when few cases match
        hits = (
            sa.select(found.c.case_id)
            .distinct()
            .cte("search_hits")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        return sa.select(hits.c.case_id)

    def snippets(self, query: str, case_ids: Sequence[str]) -> dict[str, str]:
        """The best-matching passage of each of ``case_ids`` (already known to match)."""
        terms = words(query)
        if not terms or not case_ids:
            return {}
        ids: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)
        with self.db.read_replica() as conn:
            if self.db.is_sqlite:
                rows = conn.execute(
                    sa.text(
                        f"SELECT case_id, snippet({DOCS}, 2, '[', ']', '…', 12) FROM {DOCS} "
                        f"WHERE {DOCS} MATCH :m AND case_id IN :ids ORDER BY rank"
                    ).bindparams(ids),
                    {"m": _fts_match(terms), "ids": list(case_ids)},
                ).all()
            else:
                rows = conn.execute(
                    sa.text(
                        "SELECT case_id, ts_headline('simple', body, q, "
                        "'StartSel=[,StopSel=],MaxWords=14,MinWords=6,MaxFragments=1') "
                        f"FROM {DOCS}, to_tsquery('simple', :q) q "
                        "WHERE tsv @@ q AND case_id IN :ids ORDER BY ts_rank(tsv, q) DESC"
                    ).bindparams(ids),
                    {"q": _tsquery(terms), "ids": list(case_ids)},
                ).all()
        found: dict[str, str] = {}
        for case_id, snippet in rows:
            found.setdefault(case_id, " ".join(str(snippet).split()))
        return found

    def search(
        self, query: str, *, limit: int = 50, within: Iterable[str] | None = None
    ) -> list[Hit]:
        """Cases matching every word of ``query`` (best first), one hit per case."""
        terms = words(query)
        if not terms:
            return []
        self.catch_up()
        with self.db.read_replica() as conn:
            if self.db.is_sqlite:
                rows = conn.execute(
                    sa.text(
                        f"SELECT case_id, kind, snippet({DOCS}, 2, '[', ']', '…', 12) "
                        f"FROM {DOCS} WHERE {DOCS} MATCH :m ORDER BY rank LIMIT :n"
                    ),
                    {"m": _fts_match(terms), "n": limit * 5},
                ).all()
            else:
                rows = conn.execute(
                    sa.text(
                        "SELECT case_id, kind, ts_headline('simple', body, q, "
                        "'StartSel=[,StopSel=],MaxWords=14,MinWords=6,MaxFragments=1') "
                        f"FROM {DOCS}, to_tsquery('simple', :q) q WHERE tsv @@ q "
                        "ORDER BY ts_rank(tsv, q) DESC LIMIT :n"
                    ),
                    {"q": _tsquery(terms), "n": limit * 5},
                ).all()
        allowed = None if within is None else set(within)
        hits: dict[str, Hit] = {}
        for case_id, kind, snippet in rows:
            if case_id in hits or (allowed is not None and case_id not in allowed):
                continue
            hits[case_id] = Hit(case_id, kind, " ".join(str(snippet).split()))
            if len(hits) >= limit:
                break
        return list(hits.values())


def _fts_match(terms: list[str]) -> str:
    """An FTS5 query: every word, the last as a prefix."""
    return (" ".join(f'"{t}"' for t in terms[:-1]) + f' "{terms[-1]}"*').strip()


def _tsquery(terms: list[str]) -> str:
    """A PostgreSQL tsquery: every word, the last as a prefix."""
    quoted = [t.replace("'", "''").replace("\\", "\\\\") for t in terms]
    head = " & ".join(f"'{t}'" for t in quoted[:-1])
    return (head + " & " if head else "") + f"'{quoted[-1]}':*"
