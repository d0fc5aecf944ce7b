"""Issue 19 in the service layer: withdraw, propose a crossed proposal again, promise an
activity at once, refuse resolution while work is open — and three nodes' stores through
a partition, where no agreement any node showed is replaced without a trace."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accord.core.canonical import canonical
from accord.core.crypto import NodeKey
from accord.core.state import state_hash
from accord.service.errors import Conflict, Forbidden
from accord.service.negotiation import Actor, Negotiation
from accord.service.views import case_view
from accord.store.cases import CaseStore
from accord.store.database import Database
from tests.service.test_negotiation import (
    PLAN,
    PRIYA,
    TOM,
    Clock,
    clock,
    money,
    open_broadband,
    service,
    store,
)

__all__ = ["clock", "service", "store"]  # the fixtures, shared with test_negotiation

NORTHWIND = NodeKey(b"northwind".ljust(32, b"\0"))


def price(amount: str) -> list[dict[str, Any]]:
    return [{"op": "data.put", "key": "new-price", "value": money(amount)}]


@pytest.fixture
def stores(sqlite_template: Path, tmp_path: Path) -> Iterator[list[CaseStore]]:
    """Three nodes' stores: a migrated SQLite database each."""
    made = []
    for name in ("northwind", "priya", "fibrefix"):
        path = tmp_path / f"{name}.db"
        shutil.copyfile(sqlite_template, path)
        made.append(Database(f"sqlite:///{path}"))
    yield [CaseStore(db) for db in made]
    for db in made:
        db.dispose()


def test_withdraw_and_repropose(service: Negotiation, clock: Clock) -> None:
    case_id = open_broadband(service)
    first = service.propose(TOM, case_id, PLAN).event_ids[0]
    service.accept(PRIYA, case_id, first)
    offer = service.propose(TOM, case_id, price("18.00"), note="loyalty").event_ids[0]
    counter = service.counter(PRIYA, case_id, offer, price("15.00"), note="£15?").event_ids[0]
    callback = service.propose(TOM, case_id, price("17.00")).event_ids[0]
    with pytest.raises(Forbidden):
        service.withdraw(PRIYA, case_id, callback)
    service.accept(PRIYA, case_id, callback)  # Priya's counter is now crossed
    view = case_view(service.state(case_id), [])
    assert counter not in view["open_proposals"]
    assert view["crossed_proposals"][counter]["crossed_with"] == 2
    with pytest.raises(Forbidden):  # only its author proposes it again
        service.repropose(TOM, case_id, counter)
    again = service.repropose(PRIYA, case_id, counter).event_ids[0]
    state = service.state(case_id)
    assert state["proposals"][again]["by"] == "priya"
    assert state["proposals"][again]["note"] == "£15?"
    assert state["proposals"][again]["base"] == 2
    assert counter not in case_view(state, [])["crossed_proposals"]
    with pytest.raises(Conflict):
        service.repropose(PRIYA, case_id, counter)
    service.withdraw(PRIYA, case_id, again, reason="Fine at £17")
    assert service.state(case_id)["proposals"][again]["state"] == "withdrawn"
    with pytest.raises(Conflict):
        service.withdraw(PRIYA, case_id, again)


def test_a_promise_without_clicks_and_resolution_with_open_work(
    service: Negotiation, clock: Clock
) -> None:
    case_id = open_broadband(service)
    phone = Actor(member="Tom Baker", via="phone")
    promise = {
        "activity": "call-back",
        "title": "Call Priya back about the router",
        "kind": "callback",
        "due": "2026-11-24T10:00:00Z",
    }
    service.commit(phone, case_id, promise, note="promised on the phone")
    state = service.state(case_id)
    assert state["terms"]["version"] == 0
    assert state["terms"]["activities"]["call-back"]["committed"]["by"] == "northwind"
    assert state["progress"]["call-back"]["state"] == "agreed"
    with pytest.raises(Forbidden):  # not for someone else's activity
        service.commit(TOM, case_id, {**promise, "activity": "x", "owner": "priya"})
    with pytest.raises(Conflict):
        service.commit(TOM, case_id, promise)

    with pytest.raises(Conflict) as refused:
        service.satisfied(PRIYA, case_id)
    assert refused.value.details["open"]["activities"][0]["activity"] == "call-back"
    assert [t["topic"] for t in refused.value.details["open"]["topics"]] == ["price", "term"]
    service.satisfied(PRIYA, case_id, reason="I sorted it out myself")
    entry = service.state(case_id)["satisfied"]["priya"]
    assert entry["reason"] == "I sorted it out myself"
    assert entry["open"] == {"activities": ["call-back"], "topics": ["price", "term"]}


def test_three_nodes_through_a_partition(stores: list[CaseStore], clock: Clock) -> None:
    """Northwind, Priya's own node and Fibrefix. Two proposals on one version: £30 by
    Northwind, £31 by Fibrefix; before the cut Priya accepted £30, then £31. Cut off,
    Fibrefix accepts £30 while Northwind accepts £31 (and shows it agreed, as does Priya).
    Priya's later acceptance withdrew her earlier one on every node, so Fibrefix never
    shows £30 as agreed. After the heal the three stores hold the same bytes, and the £31
    agreement either stands or is listed as superseded — never silently gone."""
    keys = {
        "northwind": NORTHWIND,
        "priya": NodeKey(b"priya-laptop".ljust(32, b"\0")),
        "fibrefix": NodeKey(b"fibrefix".ljust(32, b"\0")),
    }
    nodes = {
        name: Negotiation(store, keys[name], now=clock)
        for name, store in zip(keys, stores, strict=True)
    }
    me = Actor(member="someone", via="api")
    nw = nodes["northwind"]
    case_id = nw.open_case(me, title="Fibre install", party_id="northwind", party_name="NW").case_id

    def sync(source: str, target: str) -> None:
        nodes[target].cases.append(nodes[source].cases.events(case_id))

    # the customer and the subcontractor join by proposals (keeping the story short:
    # each added by a proposal the current parties accept)
    for party in ("priya", "fibrefix"):
        change = {
            "op": "party.add",
            "party": {
                "id": party,
                "name": party,
                "kind": "organisation",
                "node": keys[party].public,
            },
        }
        pid = nw.propose(me, case_id, [change]).event_ids[0]
        for other in ("priya",) if party == "fibrefix" else ():
            sync("northwind", other)
            nodes[other].accept(me, case_id, pid)
            sync(other, "northwind")
    for name in ("priya", "fibrefix"):
        sync("northwind", name)
    version = nw.state(case_id)["terms"]["version"]
    assert version == 2

    thirty = nw.propose(me, case_id, price("30.00")).event_ids[0]
    sync("northwind", "fibrefix")
    thirty_one = nodes["fibrefix"].propose(me, case_id, price("31.00")).event_ids[0]
    for a, b in (("fibrefix", "northwind"), ("northwind", "priya")):
        sync(a, b)
    nodes["priya"].accept(me, case_id, thirty)
    nodes["priya"].accept(me, case_id, thirty_one)
    for target in ("northwind", "fibrefix"):
        sync("priya", target)

    # the cut: Fibrefix alone accepts £30; Northwind (with Priya) accepts £31
    nodes["fibrefix"].accept(me, case_id, thirty)
    nw.accept(me, case_id, thirty_one)
    sync("northwind", "priya")
    shown = {name: node.state(case_id) for name, node in nodes.items()}
    assert shown["fibrefix"]["terms"]["version"] == version  # nothing agreed there
    assert shown["northwind"]["agreements"][-1]["proposal"] == thirty_one
    assert shown["priya"]["agreements"][-1]["proposal"] == thirty_one

    # the heal
    for a in keys:
        for b in keys:
            if a != b:
                sync(a, b)
    states = [node.state(case_id) for node in nodes.values()]
    assert len({state_hash(s) for s in states}) == 1
    assert canonical(states[0]) == canonical(nw.cases.refold(case_id))
    final = states[0]
    # £30 was never shown as agreed anywhere, so it cannot come back
    assert all(a["proposal"] != thirty for a in final["agreements"])
    # £31, shown by Northwind and Priya, stands — or, when the fold meets Fibrefix's
    # acceptance of £30 first (it withdrew Fibrefix's own backing of £31, made before it
    # knew of Northwind's), it is listed as superseded with that acceptance named
    if final["agreements"][-1]["proposal"] == thirty_one:
        assert final["terms"]["data"]["new-price"]["value"]["amount"] == "31.00"
        assert final["superseded"] == []
    else:
        [entry] = final["superseded"]
        assert entry["proposal"] == thirty_one and entry["version"] == version + 1
        assert set(entry["withdrawn_by"]) == {"fibrefix"}
        assert "fibrefix's later acceptance" in entry["reason"]
    view = case_view(final, [])
    assert view["superseded"] == final["superseded"]
