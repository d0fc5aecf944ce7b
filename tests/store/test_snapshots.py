"""A late concurrent event re-folds only the tail after the nearest snapshot, and the
materialised state still equals a fold from scratch."""

from __future__ import annotations

import random
from typing import Any

import pytest
import sqlalchemy as sa

from accord.core.events import Event
from accord.core.fold import fold_events
from accord.core.state import state_hash
from accord.store import cases as cases_module
from accord.store.cases import CaseStore
from accord.store.tables import case_snapshots

from .helpers import CUSTOMER, SUPPLIER, after, message, opening


def two_branches(rounds: int) -> list[Event]:
    """Supplier and customer write concurrently, merging every few events; a proposal
    and its acceptance sit in the middle so authority state is exercised too."""
    g = opening()
    events = [g]
    last = {SUPPLIER.public: g, CUSTOMER.public: None}
    heads: dict[str, Event] = {SUPPLIER.public: g, CUSTOMER.public: g}
    proposal = None
    for i in range(rounds):
        for key in (SUPPLIER, CUSTOMER):
            parents = [heads[key.public]]
            if i % 3 == 2:  # merge: see the other side's latest event
                other = heads[CUSTOMER.public if key is SUPPLIER else SUPPLIER.public]
                parents = sorted(
                    {parents[0].id: parents[0], other.id: other}.values(), key=lambda e: e.id
                )
            if i == rounds // 2 and key is SUPPLIER:
                event = after(
                    key,
                    parents,
                    last[key.public],
                    "proposal.made",
                    {
                        "base": 0,
                        "changes": [
                            {
                                "op": "data.put",
                                "key": "price",
                                "value": {"type": "text", "value": "20"},
                            }
                        ],
                    },
                )
                proposal = event
            elif proposal is not None and key is CUSTOMER and i == rounds // 2 + 1:
                if proposal.id not in {p.id for p in parents}:
                    parents = sorted([*parents, proposal], key=lambda e: e.id)
                event = after(
                    key, parents, last[key.public], "proposal.accepted", {"proposal": proposal.id}
                )
            else:
                event = message(key, parents, last[key.public], f"{i}")
            events.append(event)
            last[key.public] = heads[key.public] = event
    return events


@pytest.mark.parametrize("seed", [1, 2])
def test_late_events_refold_from_snapshots(
    store: CaseStore, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(cases_module, "SNAPSHOT_EVERY", 5)
    tails: list[tuple[int, int]] = []  # (stored events re-folded, events held)
    load_after = CaseStore._load_after

    def spy(self: CaseStore, conn: Any, case_id: str, upto: tuple[int, str]) -> list[Event]:
        tail = load_after(self, conn, case_id, upto)
        held = (self.state(case_id) or {"events": 0})["events"]
        tails.append((len(tail), held))
        return tail

    monkeypatch.setattr(CaseStore, "_load_after", spy)
    events = two_branches(20)
    case_id = events[0].case
    expected = state_hash(fold_events(case_id, events)[0].state)
    # each side's own events arrive in order, interleaved at random, so the other
    # side's concurrent events keep landing before the last one held
    rng = random.Random(seed)
    pending = events[:]
    refolds = 0
    while pending:
        pick = pending[min(len(pending) - 1, int(rng.random() ** 3 * len(pending)))]
        result = store.append([pick], strict=False)
        if not result.rejected:
            pending.remove(pick)
            refolds += len(result.refolded)
            assert store.state(case_id) == store.refold(case_id)
    assert refolds > 5
    # once snapshots exist, a late event re-folds a short tail, not the whole case
    assert any(held > 15 and tail < held // 2 for tail, held in tails), tails
    assert store.state_hash(case_id) == expected
    state = store.state(case_id)
    assert state is not None and state["terms"]["version"] == 1
    with store.db.read() as conn:
        snapshots = conn.execute(
            sa.select(sa.func.count())
            .select_from(case_snapshots)
            .where(case_snapshots.c.case_id == case_id)
        ).scalar_one()
    assert snapshots >= 3
