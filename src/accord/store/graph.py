"""The fold's view of a case held in the database, inside one write transaction.

Events folded earlier in the same transaction are kept in memory (``record``) and
written by the caller in one batch; everything older is read by id on demand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.core.events import Event, load_trusted
from accord.core.fold import Meta
from accord.store.tables import events as events_table

_T = events_table
# The fold asks for events by id on every write: its statements are built once.
_IN_CASE = _T.c.case_id == sa.bindparam("g_case")
_METAS = sa.select(
    _T.c.event_id, _T.c.depth, _T.c.clock, _T.c.auth, _T.c.party, _T.c.verdict
).where(_IN_CASE, _T.c.event_id.in_(sa.bindparam("g_ids", expanding=True)))
_EVENTS = sa.select(_T.c.raw, _T.c.sig, _T.c.event_id).where(
    _IN_CASE, _T.c.event_id.in_(sa.bindparam("g_ids", expanding=True))
)
_AT_POSITION = sa.select(_T.c.event_id).where(
    _IN_CASE, _T.c.author == sa.bindparam("g_author"), _T.c.seq == sa.bindparam("g_seq")
)


class DbGraph:
    """A ``accord.core.fold.Graph`` over the ``events`` table plus pending rows."""

    def __init__(self, conn: Connection, case_id: str, upto: tuple[int, str] | None = None) -> None:
        """``upto``: read only stored events at or before this (depth, id) position —
        when re-folding a tail, the stored rows after it are stale until re-folded."""
        self.conn = conn
        self.case_id = case_id
        self.pending: dict[str, tuple[Event, Meta]] = {}
        self._metas: dict[str, Meta] = {}
        self._upto = (
            None if upto is None else sa.tuple_(_T.c.depth, _T.c.event_id) <= sa.tuple_(*upto)
        )

    def metas(self, ids: Sequence[str]) -> Mapping[str, Meta]:
        found: dict[str, Meta] = {}
        wanted = []
        for i in ids:
            if i in self.pending:
                found[i] = self.pending[i][1]
            elif i in self._metas:
                found[i] = self._metas[i]
            else:
                wanted.append(i)
        if wanted:
            rows = self.conn.execute(
                self._bounded(_METAS),
                {"g_case": self.case_id, "g_ids": wanted},
            )
            for row in rows:
                meta = meta_from_row(row._mapping)
                self._metas[row.event_id] = found[row.event_id] = meta
        return found

    def events(self, ids: Sequence[str]) -> Mapping[str, Event]:
        found = {i: self.pending[i][0] for i in ids if i in self.pending}
        wanted = [i for i in ids if i not in found]
        if wanted:
            rows = self.conn.execute(
                self._bounded(_EVENTS), {"g_case": self.case_id, "g_ids": wanted}
            )
            for raw, sig, eid in rows:
                found[eid] = load_trusted(raw, sig, eid)
        return found

    def at_position(self, author: str, seq: int) -> Sequence[str]:
        ids = [e.id for e, _ in self.pending.values() if e.author.node == author and e.seq == seq]
        ids += self.conn.execute(
            self._bounded(_AT_POSITION),
            {"g_case": self.case_id, "g_author": author, "g_seq": seq},
        ).scalars()
        return ids

    def _bounded(self, query: sa.Select[Any]) -> sa.Select[Any]:
        return query if self._upto is None else query.where(self._upto)

    def record(self, event: Event, meta: Meta) -> None:
        self.pending[event.id] = (event, meta)


def meta_from_row(row: Mapping[Any, Any]) -> Meta:
    return Meta(
        depth=row["depth"],
        clock=orjson.loads(row["clock"]),
        auth=int(row["auth"], 16),
        party=row["party"],
        verdict=row["verdict"],
    )


def meta_columns(meta: Meta) -> dict[str, Any]:
    return {
        "clock": orjson.dumps(meta.clock),
        "auth": format(meta.auth, "x"),
        "party": meta.party,
        "verdict": meta.verdict,
    }
