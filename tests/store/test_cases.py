"""The case repository on SQLite and PostgreSQL: atomic, idempotent, materialised state
that always equals a full re-fold."""

from __future__ import annotations

import random

import pytest

from accord.core.errors import ChainError, MissingParentsError, RuleError
from accord.core.fold import fold_events
from accord.core.state import state_hash
from accord.store import migrate
from accord.store.cases import CaseStore
from accord.store.database import Database

from .helpers import CUSTOMER, SUPPLIER, after, message, negotiated_case, opening


def assert_materialised(store: CaseStore, case_id: str) -> None:
    stored = store.state(case_id)
    assert stored == store.refold(case_id)
    assert store.state_hash(case_id) == state_hash(stored)


def test_migrations_are_idempotent(db: Database) -> None:
    assert migrate.current(db) == migrate.head()
    migrate.upgrade(db)
    assert migrate.current(db) == migrate.head()


def test_append_is_idempotent(store: CaseStore) -> None:
    events = negotiated_case()
    first = store.append(events)
    assert len(first.stored) == len(events) and not first.duplicates
    before = store.state_hash(events[0].case)
    again = store.append(events)
    assert again.stored == [] and sorted(again.duplicates) == sorted(e.id for e in events)
    assert store.state_hash(events[0].case) == before
    assert len(store.events(events[0].case)) == len(events)


def test_materialised_state_matches_full_fold_in_any_delivery_order(store: CaseStore) -> None:
    events = negotiated_case()
    case_id = events[0].case
    expected = state_hash(fold_events(case_id, events)[0].state)
    rng = random.Random(7)
    shuffled = events[:]
    rng.shuffle(shuffled)
    pending = shuffled
    while pending:  # deliver one at a time; what lacks a parent comes round again
        result = store.append([pending[0]], strict=False)
        pending = pending[1:] + ([pending[0]] if result.rejected else [])
        if store.state_hash(case_id):
            assert_materialised(store, case_id)
    assert store.state_hash(case_id) == expected
    state = store.state(case_id)
    assert state is not None and state["terms"]["version"] == 1
    assert state["progress"]["switch"]["state"] == "done"


def test_a_concurrent_branch_that_sorts_earlier_triggers_a_refold(store: CaseStore) -> None:
    g = opening()
    late = message(SUPPLIER, [g], g, "supplier speaks first")
    deep = message(SUPPLIER, [late], late, "and again")
    store.append([g, late, deep])
    early = message(CUSTOMER, [g], None, "customer, concurrently")  # depth 2 < deep's 3
    result = store.append([early])
    assert result.refolded == [g.case] and result.stored == [early.id]
    assert_materialised(store, g.case)
    assert store.state(g.case)["heads"] == sorted([deep.id, early.id])  # type: ignore[index]


def test_missing_parent_is_refused_and_stores_nothing(store: CaseStore) -> None:
    g, s1, *_ = negotiated_case()
    store.append([g])
    orphan = message(SUPPLIER, [s1], s1, "my parent never arrived")
    with pytest.raises(MissingParentsError) as caught:
        store.append([orphan])
    assert s1.id in caught.value.missing
    assert [e.id for e in store.events(g.case)] == [g.id]
    lenient = store.append([orphan], strict=False)
    assert lenient.rejected[0].error == "MissingParentsError"
    assert_materialised(store, g.case)


def test_a_broken_chain_is_refused(store: CaseStore) -> None:
    g = opening()
    store.append([g])
    skipped = after(SUPPLIER, [g], g, "message.posted", {"text": "seq jumps"}, seq=5)
    with pytest.raises(ChainError):
        store.append([skipped])
    assert store.state(g.case)["events"] == 1  # type: ignore[index]


def test_a_fork_is_kept_as_evidence_of_equivocation(store: CaseStore) -> None:
    g = opening()
    one = message(SUPPLIER, [g], g, "the price is 20")
    two = message(SUPPLIER, [g], g, "the price is 40")  # same author, same seq
    store.append([g, one])
    result = store.append([two])
    assert result.stored == [two.id]
    state = store.state(g.case)
    assert state is not None
    later = max(one, two, key=lambda e: e.key)  # the first in (depth, id) order stands
    assert [item["event"] for item in state["evidence"]] == [later.id]
    assert state["evidence"][0]["reason"].startswith("equivocation")
    assert state["equivocations"] == [
        {"author": SUPPLIER.public, "seq": 2, "events": sorted([one.id, two.id])}
    ]
    assert_materialised(store, g.case)


def test_rule_breaking_events_are_stored_as_evidence_not_applied(store: CaseStore) -> None:
    events = negotiated_case()
    store.append(events)
    a = events[5]
    cheat = after(
        CUSTOMER,
        [events[-1]],
        events[-1],
        "data.set",
        {"key": "price", "value": {"type": "money", "amount": "1.00", "currency": "GBP"}},
    )
    result = store.append([cheat])
    assert result.evidence == [cheat.id]
    state = store.state(a.case)
    assert state is not None
    assert state["terms"]["data"]["price"]["value"]["amount"] == "20.00"
    assert "price" not in state["info"]
    assert "terms change only through an accepted proposal" in state["evidence"][0]["reason"]


def test_create_authors_chained_events_and_refuses_rule_breaks(store: CaseStore) -> None:
    opened = store.create(
        SUPPLIER,
        None,
        "case.opened",
        {
            "title": "Refund",
            "nonce": "n1",
            "parties": [
                {
                    "id": "northwind",
                    "name": "Northwind",
                    "kind": "organisation",
                    "node": SUPPLIER.public,
                }
            ],
        },
        member="Tom Baker",
    )
    made = store.create_many(
        SUPPLIER,
        opened.case,
        [
            ("message.posted", {"text": "one"}),
            ("message.posted", {"text": "two"}),
        ],
        member="Tom Baker",
    )
    assert [e.seq for e in made] == [2, 3] and made[1].prev == made[0].id
    assert made[1].parents == (made[0].id,) and made[1].depth == 3
    with pytest.raises(RuleError, match="not a party"):
        store.create(CUSTOMER, opened.case, "message.posted", {"text": "hi"}, member="x")
    assert store.state(opened.case)["events"] == 3  # type: ignore[index]
    assert_materialised(store, opened.case)


def test_reads_timeline_and_per_author_ranges(store: CaseStore) -> None:
    events = negotiated_case()
    store.append(events)
    case_id = events[0].case
    newest = store.timeline(case_id, limit=3)
    ordered = sorted(events, key=lambda e: e.key)
    assert [e.id for e in newest] == [e.id for e in reversed(ordered[-3:])]
    customer_tail = store.events_after(case_id, CUSTOMER.public, 1)
    assert [e.seq for e in customer_tail] == [2, 3, 4]
    assert store.find_case(case_id[7:20]) == case_id
    assert [row.case_id for row in store.list_cases()] == [case_id]
