"""Pushes to peers follow the case log: one mark per peer, in log order, until acknowledged.

Each peer node this node shares a case with has a row in ``follower_marks`` named
``peer:<its public key>``: the log position (``events.pos``) up to which it has
acknowledged everything of ours it should get. One pass for a peer:

1. claim the peer's row for a short lease (a short transaction; several processes may
   run pushers, and a claimed or backing-off peer is left alone);
2. read the next events after the mark that this node authored (the author's node pushes
   its own events; what others wrote reaches a peer from them, or from us when the peer
   says it lacks it), keep those of cases the peer is a party of (or invited into), and
   send them case by case, in log order — **with no transaction open**;
3. when the peer answers that it lacks earlier events (it missed a push, or joined
   later), send what its heads show it lacks (``Federation.deliver``);
4. move the mark past what was acknowledged, in a short transaction that compares and
   sets the old position; on failure, record it and retry with backoff (2 s doubling to
   five minutes, or what a 429's ``Retry-After`` asks). A refusal of one case (403: the
   peer does not count us a party yet; 404: it does not hold the case) is recorded and
   passed: its periodic comparison of heads repairs that case without holding back the
   others.

Peers are found by following the log too (the ``peer-discovery`` mark): a case opened or
a party added or invited makes a peer's row, starting just before that event. Whatever
writes an event — a request, the CLI in another process, an import, a peer — the next
pass finds it; a local write also wakes the loop (``wake``). A peer that contacts us
while we back off from it (``heard_from``) is retried at once.

Only events of the shared case log go to a peer; node-private data never does.
Models: Synapse's federation sender (per-destination queues, backoff reset on contact).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.core.events import wire_line
from accord.federation.client import PeerError
from accord.federation.sync import Federation, targets
from accord.jobs.follow import log_end
from accord.jobs.worker import describe
from accord.store.tables import events, follower_marks

log = logging.getLogger("accord.push")

Clock = Callable[[], datetime]
PREFIX = "peer:"
DISCOVERY = "peer-discovery"
BATCH = 500
LEASE = timedelta(minutes=2)
PARTY_EVENTS = ("case.opened", "proposal.made", "proposal.accepted")
"""What can make a node a party of a case, or invite it: where peers are found."""


def peer_backoff(failures: int) -> timedelta:
    """2 s after the first failure, doubling, at most five minutes."""
    return timedelta(seconds=min(300, 2 ** max(1, failures)))


@dataclass
class PushStatus:
    """Where pushing to one peer stands, for ``accord peers`` and ``accord sync``."""

    peer: str
    position: int
    behind: int  # events of ours not yet acknowledged, in cases the peer is a party of
    cases: dict[str, int]  # case id → events of it not yet acknowledged
    failures: int
    last_error: str | None
    retry_at: datetime | None
    updated_at: datetime | None


@dataclass
class PushPass:
    """What one pass for one peer did."""

    peer: str
    acknowledged: int = 0  # log positions the mark moved past
    sent: int = 0
    repaired: int = 0
    refused: list[str] = field(default_factory=list)
    error: str | None = None


class PeerPushers:
    """Pushes this node's events to every peer from its own mark."""

    def __init__(
        self,
        federation: Federation,
        *,
        now: Clock,
        batch: int = BATCH,
        backoff: Callable[[int], timedelta] = peer_backoff,
        lease: timedelta = LEASE,
        parallel: int = 4,
    ) -> None:
        self.federation = federation
        self.db = federation.node.db
        self.cases = federation.node.cases
        self.me = federation.node.key.public
        self.now = now
        self.batch = batch
        self.backoff = backoff
        self.lease = lease
        self.parallel = parallel
        self._wake = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # -- running -------------------------------------------------------------------

    def wake(self, _case_id: str | None = None, _event_ids: Sequence[str] = ()) -> None:
        """After a local commit: start a pass now instead of at the next tick."""
        self._wake.set()

    def run(self, stop: threading.Event, *, idle: float = 1.0) -> None:
        """Push until ``stop``: a pass whenever woken, or every ``idle`` seconds."""
        while not stop.is_set():
            self._wake.clear()
            try:
                self.catch_up()
            except Exception:  # a broken pass must not end the loop
                log.exception("pushes to peers: pass failed; retrying in %.1f s", idle)
            self._wake.wait(idle)

    def catch_up(self, *, force: bool = False) -> list[PushPass]:
        """Find new peers, then push to each until it has everything or fails (peers in
        parallel; ``force`` ignores backoff, as ``accord sync`` does)."""
        while self.discover() >= self.batch:
            pass
        peers = self.peers()
        if not peers:
            return []
        if len(peers) == 1 or self.parallel <= 1:
            return [self._drain(peer, force) for peer in peers]
        pool = self._executor()
        return list(pool.map(lambda peer: self._drain(peer, force), peers))

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="accord-push")
            return self._pool

    def _drain(self, peer: str, force: bool) -> PushPass:
        total = PushPass(peer)
        for _ in range(10_000):
            one = self.push_once(peer, force=force)
            total.acknowledged += one.acknowledged
            total.sent += one.sent
            total.repaired += one.repaired
            total.refused += one.refused
            total.error = one.error
            if one.error or not one.acknowledged:
                break
        return total

    # -- finding peers ---------------------------------------------------------------

    def discover(self) -> int:
        """Read the next events that can make a party or invite one; give every peer
        they name a mark, starting just before that event. Returns the events read."""
        with self.db.read() as conn:  # most passes find nothing new: no write for them
            held = conn.execute(
                sa.select(follower_marks.c.position).where(follower_marks.c.name == DISCOVERY)
            ).scalar()
            if held is not None and int(held) >= log_end(conn):
                return 0
        with self.db.write() as conn:
            query = sa.select(follower_marks).where(follower_marks.c.name == DISCOVERY)
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            row = conn.execute(query).first()
            if row is None:
                made = conn.execute(
                    self.db.insert_or_ignore(follower_marks)
                    .values(name=DISCOVERY, position=0, failures=0)
                    .returning(follower_marks.c.name)
                ).first()
                if made is None:
                    return 0
                position = 0
            else:
                position = int(row.position)
            end = log_end(conn)
            if end <= position:
                return 0
            rows = conn.execute(
                sa.select(events.c.pos, events.c.case_id)
                .where(
                    events.c.pos > position,
                    events.c.pos <= end,
                    events.c.type.in_(PARTY_EVENTS),
                    events.c.verdict.is_(None),
                )
                .order_by(events.c.pos)
                .limit(self.batch)
            ).all()
            first: dict[str, int] = {}
            for found in rows:
                first.setdefault(found.case_id, int(found.pos))
            starts: dict[str, int] = {}
            for case_id, pos in first.items():
                state = self.cases.state_in(conn, case_id)
                for peer in targets(state, self.me) if state else {}:
                    starts[peer] = min(starts.get(peer, pos), pos)
            for peer, pos in starts.items():
                conn.execute(
                    self.db.insert_or_ignore(follower_marks).values(
                        name=PREFIX + peer, position=pos - 1, failures=0
                    )
                )
            moved = int(rows[-1].pos) if len(rows) >= self.batch else end
            conn.execute(
                follower_marks.update()
                .where(follower_marks.c.name == DISCOVERY)
                .values(position=moved, updated_at=self.now())
            )
            return len(rows) if len(rows) >= self.batch else 0

    def peers(self) -> list[str]:
        with self.db.read() as conn:
            names = conn.execute(
                sa.select(follower_marks.c.name).where(follower_marks.c.name.startswith(PREFIX))
            ).scalars()
            return sorted(name.removeprefix(PREFIX) for name in names)

    # -- one pass for one peer ---------------------------------------------------------

    def push_once(self, peer: str, *, force: bool = False) -> PushPass:
        """One batch for ``peer``: claim it, send with no transaction open, move the mark
        past what it acknowledged. Nothing to do, claimed elsewhere or backing off: a pass
        that acknowledged nothing."""
        outcome = PushPass(peer)
        position = self._claim(peer, force)
        if position is None:
            return outcome
        try:
            with self.db.read() as conn:
                end = log_end(conn)
                rows = conn.execute(
                    sa.select(events.c.pos, events.c.case_id, events.c.raw, events.c.sig)
                    .where(events.c.pos > position, events.c.author == self.me)
                    .order_by(events.c.pos)
                    .limit(self.batch)
                ).all()
            upto = int(rows[-1].pos) if len(rows) >= self.batch else max(end, position)
            by_case: dict[str, list[tuple[int, bytes]]] = {}
            for row in rows:
                by_case.setdefault(row.case_id, []).append(
                    (int(row.pos), wire_line(row.raw, row.sig))
                )
            for case_id, lines in by_case.items():  # in the order of their first event
                state = self.cases.state(case_id)
                url = targets(state, self.me).get(peer) if state else None
                if url is None:
                    continue  # not a case this peer takes part in
                try:
                    sent = self.federation.deliver(case_id, peer, url, [line for _, line in lines])
                except PeerError as exc:
                    upto = min(upto, lines[0][0] - 1)  # everything before it was acknowledged
                    outcome.error = str(exc)
                    self._advance(peer, position, upto, clear=False)
                    self._failed(peer, exc)
                    return outcome
                outcome.sent += sent.sent
                outcome.repaired += sent.repaired
                if sent.refused:
                    outcome.refused.append(case_id)
                    log.warning(
                        "peer %s refused case %s: %s", peer[:19], case_id[:19], sent.refused
                    )
                self.federation.record_lag(
                    peer, url, case_id, we_lack=sent.we_lack, they_lack=sent.they_lack
                )
                if sent.we_lack:  # it holds events we lack (we missed a push): fetch them
                    self.federation.pull(case_id, peer, url)
            outcome.acknowledged = upto - position
            self._advance(peer, position, upto, clear=True)
            return outcome
        except Exception as exc:
            outcome.error = describe(exc)
            self._failed(peer, exc)
            return outcome

    def _claim(self, peer: str, force: bool) -> int | None:
        """The peer's position, with its row leased to this pass; None when another pass
        holds it or it waits out a backoff (``force`` ignores both)."""
        now = self.now()
        with self.db.read() as conn:  # nothing new and nothing failed: no write at all
            row = conn.execute(
                sa.select(follower_marks).where(follower_marks.c.name == PREFIX + peer)
            ).first()
            if row is None or (not row.failures and int(row.position) >= log_end(conn)):
                return None
        with self.db.write() as conn:
            query = sa.select(follower_marks).where(follower_marks.c.name == PREFIX + peer)
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            row = conn.execute(query).first()
            if row is None:
                return None
            if not force and row.retry_at is not None and _aware(row.retry_at) > now:
                return None
            conn.execute(
                follower_marks.update()
                .where(follower_marks.c.name == PREFIX + peer)
                .values(retry_at=now + self.lease)
            )
            return int(row.position)

    def _advance(self, peer: str, old: int, new: int, *, clear: bool) -> None:
        """Move the mark from ``old`` to ``new`` (compare and set: a mark another pass
        moved is left where it is) and, after a good pass, end the lease."""
        values: dict[str, object] = {"updated_at": self.now()}
        if clear:
            values.update(failures=0, last_error=None, retry_at=None)
        with self.db.write() as conn:
            if new > old:
                conn.execute(
                    follower_marks.update()
                    .where(follower_marks.c.name == PREFIX + peer, follower_marks.c.position == old)
                    .values(position=new, **values)
                )
            elif clear:
                conn.execute(
                    follower_marks.update()
                    .where(follower_marks.c.name == PREFIX + peer)
                    .values(**values)
                )

    def _failed(self, peer: str, exc: Exception) -> None:
        error = describe(exc) if not isinstance(exc, PeerError) else str(exc)
        with self.db.write() as conn:
            failures = (
                conn.execute(
                    sa.select(follower_marks.c.failures).where(
                        follower_marks.c.name == PREFIX + peer
                    )
                ).scalar()
                or 0
            ) + 1
            wait = self.backoff(failures)
            if isinstance(exc, PeerError) and exc.retry_after:
                wait = max(wait, timedelta(seconds=exc.retry_after))
            conn.execute(
                follower_marks.update()
                .where(follower_marks.c.name == PREFIX + peer)
                .values(failures=failures, last_error=error[:2000], retry_at=self.now() + wait)
            )
        log.warning(
            "push to %s failed (%s); attempt %d, next in %d s",
            peer[:19],
            error,
            failures,
            int(wait.total_seconds()),
        )

    # -- contact and status -------------------------------------------------------------

    def heard_from(self, peer: str) -> None:
        """A signed request from ``peer`` arrived: if pushes to it are backing off, try
        again now (one read per request; a write only when it was failing)."""
        name = PREFIX + peer
        with self.db.read() as conn:
            failures = conn.execute(
                sa.select(follower_marks.c.failures).where(follower_marks.c.name == name)
            ).scalar()
        if not failures:
            return
        with self.db.write() as conn:
            conn.execute(
                follower_marks.update()
                .where(follower_marks.c.name == name, follower_marks.c.failures > 0)
                .values(retry_at=None)
            )
        self.wake()

    def status(self) -> list[PushStatus]:
        """Every peer's push mark and what of ours it has yet to acknowledge, by case."""
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(follower_marks)
                .where(follower_marks.c.name.startswith(PREFIX))
                .order_by(follower_marks.c.name)
            ).all()
            found = []
            for row in rows:
                peer = row.name.removeprefix(PREFIX)
                pending = self._pending(conn, peer, int(row.position))
                found.append(
                    PushStatus(
                        peer,
                        int(row.position),
                        sum(pending.values()),
                        pending,
                        int(row.failures),
                        row.last_error,
                        _aware(row.retry_at) if row.retry_at else None,
                        _aware(row.updated_at) if row.updated_at else None,
                    )
                )
            return found

    def _pending(self, conn: Connection, peer: str, position: int) -> dict[str, int]:
        counts = conn.execute(
            sa.select(events.c.case_id, sa.func.count())
            .where(events.c.pos > position, events.c.author == self.me)
            .group_by(events.c.case_id)
        ).all()
        pending = {}
        for case_id, count in counts:
            state = self.cases.state_in(conn, case_id)
            if state is not None and peer in targets(state, self.me):
                pending[case_id] = int(count)
        return pending


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


__all__ = [
    "DISCOVERY",
    "PREFIX",
    "PeerPushers",
    "PushPass",
    "PushStatus",
    "peer_backoff",
]
