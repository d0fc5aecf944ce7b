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


class DbGraph:
    """A ``accord.core.fold.Graph`` over the ``events`` table plus pending rows."""

    def __init__(self, conn: Connection, case_id: str, upto: tuple[int, str] | None = None) -> None:
        """``upto``: read only stored events at or before this (depth, id) position —
        when re-folding a tail, the stored rows after it are stale until re-folded."""
        self.conn = conn
        self.case_id = case_id
        self.pending: dict[str, tuple[Event, Meta]] = {}
        self._metas: dict[str, Meta] = {}
        t = events_table
        self._where = [t.c.case_id == case_id]
        if upto is not None:
            self._where.append(sa.tuple_(t.c.depth, t.c.event_id) <= sa.tuple_(*upto))

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
            t = events_table
            rows = self.conn.execute(
                sa.select(
                    t.c.event_id, t.c.depth, t.c.clock, t.c.auth, t.c.party, t.c.verdict
                ).where(*self._where, t.c.event_id.in_(wanted))
            )
            for row in rows:
                meta = meta_from_row(row._mapping)
                self._metas[row.event_id] = found[row.event_id] = meta
        return found

    def events(self, ids: Sequence[str]) -> Mapping[str, Event]:
        found = {i: self.pending[i][0] for i in ids if i in self.pending}
        wanted = [i for i in ids if i not in found]
        if wanted:
            t = events_table
            rows = self.conn.execute(
                sa.select(t.c.raw, t.c.sig, t.c.event_id).where(
                    *self._where, t.c.event_id.in_(wanted)
                )
            )
            for raw, sig, eid in rows:
                found[eid] = load_trusted(raw, sig, eid)
        return found

    def at_position(self, author: str, seq: int) -> Sequence[str]:
        ids = [e.id for e, _ in self.pending.values() if e.author.node == author and e.seq == seq]
        t = events_table
        ids += self.conn.execute(
            sa.select(t.c.event_id).where(*self._where, t.c.author == author, t.c.seq == seq)
        ).scalars()
        return ids

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
