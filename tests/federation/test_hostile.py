"""A hostile party node against node A, in-process: every tampering the issue names is
rejected or kept as evidence, never applied, and A's stored state always equals a full
re-fold of what it holds. Then a peer that fails in every way an HTTP peer can, and a
node that still catches up fully once it answers again.

Hostile requests are signed with ``sign_request`` for exactly ``http://a.test`` + path
(the URL the server verifies against: A's public URL); events are built with
``create_event`` chained on A's current heads, as a well-behaved node would, and then
broken in one way each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.core.crypto import NodeKey
from accord.core.events import Event, create_event, wire_line
from accord.core.state import State
from accord.federation.signing import sign_request
from accord.federation.sync import Federation
from accord.node import Node
from accord.ops.ratelimit import RateLimiter
from accord.service.negotiation import Negotiation
from tests.clocks import cheap_passwords

from ..core.builders import activity_put, data_put, money

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
A_URL = "http://a.test"
TOM = "Tom Baker"
MALLORY = "Mallory"
B64U = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class Clock:
    def __init__(self, at: datetime = NOW) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


def org(party_id: str, name: str, key: NodeKey, url: str | None = None) -> dict[str, Any]:
    party = {"id": party_id, "name": name, "kind": "organisation", "node": key.public}
    if url:
        party["url"] = url
    return party


def body_of(events: Sequence[Event]) -> bytes:
    return b"".join(e.wire() + b"\n" for e in events)


def chain_after(
    state: State, key: NodeKey, case_id: str, items: Sequence[tuple[str, dict[str, Any]]]
) -> list[Event]:
    """``key``'s next events, each on the one before, the first on ``state``'s heads."""
    mine = state["authors"].get(key.public)
    seq, prev = (mine["seq"], mine["id"]) if mine else (0, None)
    parents, depth = list(state["heads"]), state["last"][0]
    made = []
    for type_, body in items:
        seq, depth = seq + 1, depth + 1
        event = create_event(
            key,
            case=case_id,
            type=type_,
            member=MALLORY,
            seq=seq,
            prev=prev,
            parents=parents,
            depth=depth,
            time=NOW,
            body=body,
        )
        made.append(event)
        prev, parents = event.id, [event.id]
    return made


def messages(n: int, prefix: str = "message") -> list[tuple[str, dict[str, Any]]]:
    return [("message.posted", {"text": f"{prefix} {i}"}) for i in range(n)]


@dataclass
class NodeA:
    """Node A served in-process, one case on it, and a hostile party H in that case."""

    node: Node
    app: FastAPI
    client: TestClient
    clock: Clock
    hostile: NodeKey
    case: str

    @property
    def key(self) -> NodeKey:
        return self.node.key

    def open_case(self, *others: dict[str, Any], title: str = "Broadband contract") -> str:
        parties = [org("northwind", "Northwind Broadband", self.key, A_URL), *others]
        genesis = self.node.cases.create(
            self.key,
            None,
            "case.opened",
            {"title": title, "nonce": title, "parties": parties},
            member=TOM,
            time=NOW,
        )
        return genesis.case

    def state(self, case_id: str | None = None) -> State:
        state = self.node.cases.state(case_id or self.case)
        assert state is not None
        return state

    def assert_consistent(self, case_id: str | None = None) -> None:
        """The materialised state is what a full re-fold of the stored events gives."""
        cid = case_id or self.case
        assert self.node.cases.state(cid) == self.node.cases.refold(cid)

    def held(self, *ids: str, case_id: str | None = None) -> set[str]:
        return {e.id for e in self.node.cases.get(case_id or self.case, list(ids))}

    def next(
        self, type_: str, body: dict[str, Any], *, key: NodeKey | None = None, case: str = ""
    ) -> Event:
        """``key``'s (H's by default) next event on A's current heads, unsent."""
        cid = case or self.case
        return chain_after(self.state(cid), key or self.hostile, cid, [(type_, body)])[0]

    def post(
        self,
        path: str,
        body: bytes,
        *,
        key: NodeKey | None = None,
        now: datetime | None = None,
        url: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        signed = sign_request(
            key or self.hostile, "POST", url or A_URL + path, body, now=now or self.clock()
        )
        return self.client.post(path, content=body, headers={**signed, **(headers or {})})

    def push(
        self, events: Sequence[Event] | bytes, *, key: NodeKey | None = None, case: str = ""
    ) -> httpx.Response:
        body = events if isinstance(events, bytes) else body_of(events)
        path = f"/federation/v1/cases/{case or self.case}/events"
        return self.post(path, body, key=key, headers={"Content-Type": "application/jsonl"})

    def sync(
        self, have: dict[str, Any], *, limit: int = 1000, key: NodeKey | None = None, case: str = ""
    ) -> httpx.Response:
        body = orjson.dumps({"have": have, "limit": limit})
        return self.post(f"/federation/v1/cases/{case or self.case}/sync", body, key=key)


MakeA = Callable[..., NodeA]


@pytest.fixture
def make_a(tmp_path: Path, database_url: str) -> Iterator[MakeA]:
    """Node A on the backend under test; ``push_rate`` as ``create_app`` takes it."""
    with ExitStack() as stack:

        def make(push_rate: int = 20_000) -> NodeA:
            node = Node.init(tmp_path / "a", name="Northwind Broadband", database=database_url)
            stack.callback(node.close)
            node.set_url(A_URL)
            clock = Clock()
            app = create_app(node, now=clock, push_rate=push_rate, passwords=cheap_passwords())
            client = stack.enter_context(TestClient(app, base_url=A_URL))
            hostile = NodeKey.generate()
            a = NodeA(node, app, client, clock, hostile, "")
            a.case = a.open_case(org("mallory", "Mallory Ltd", hostile))
            return a

        yield make


@pytest.fixture
def a(make_a: MakeA) -> NodeA:
    return make_a()


@pytest.fixture
def sqlite_a(tmp_path: Path) -> Iterator[NodeA]:
    """The same on SQLite only, for checks of the protocol that store nothing."""
    node = Node.init(tmp_path / "a", name="Northwind Broadband")
    node.set_url(A_URL)
    clock = Clock()
    app = create_app(node, now=clock, passwords=cheap_passwords())
    hostile = NodeKey.generate()
    with TestClient(app, base_url=A_URL) as client:
        a = NodeA(node, app, client, clock, hostile, "")
        a.case = a.open_case(org("mallory", "Mallory Ltd", hostile))
        yield a
    node.close()


def unchanged(a: NodeA, before: State) -> None:
    assert a.state() == before
    a.assert_consistent()


def flip(text: str, at: int) -> str:
    """``text`` with the base64url character at ``at`` replaced by another one."""
    old = text[at]
    new = B64U[(B64U.index(old) + 1) % len(B64U)]
    return text[:at] + new + text[at + 1 :]


# -- bad signatures and forged authors: rejected, nothing stored -------------------------------


@pytest.mark.parametrize("where", ["signature", "signature-last-char", "body"])
def test_a_bad_signature_is_rejected_and_nothing_stored(a: NodeA, where: str) -> None:
    before = a.state()
    event = a.next("message.posted", {"text": "Your price is £20 a month."})
    if where == "body":  # the bytes changed after signing: another id, the signature is not its
        raw = event.raw.replace(b"20 a month", b"99 a month")
        line = wire_line(raw, event.sig)
    else:
        at = 10 if where == "signature" else len(event.sig) - 1
        line = wire_line(event.raw, flip(event.sig, at))

    response = a.push(line + b"\n")

    assert response.status_code == 200, response.text
    outcome = response.json()
    assert outcome["stored"] == 0
    assert [r["error"] for r in outcome["rejected"]] == ["IntegrityError"]
    assert outcome["evidence"] == []
    assert a.held(event.id) == set()
    unchanged(a, before)


def test_a_forged_author_is_rejected_and_nothing_stored(a: NodeA) -> None:
    """H writes an event that claims A as its author and signs it with its own key."""
    before = a.state()
    claims_a = a.next("message.posted", {"text": "We waive every fee."}, key=a.key)
    assert claims_a.author.node == a.key.public
    resigned = wire_line(claims_a.raw, a.hostile.sign_event_id(claims_a.id))
    # ... and the same claim with H's key as the author, then the author field edited to A
    own = a.next("message.posted", {"text": "We waive every fee."})
    edited = own.raw.replace(a.hostile.public.encode(), a.key.public.encode())
    assert edited != own.raw
    relabelled = wire_line(edited, own.sig)

    response = a.push(resigned + b"\n" + relabelled + b"\n")

    assert response.status_code == 200, response.text
    outcome = response.json()
    assert outcome["stored"] == 0
    assert [r["error"] for r in outcome["rejected"]] == ["IntegrityError", "IntegrityError"]
    assert a.held(claims_a.id, own.id) == set()
    unchanged(a, before)


def test_acting_for_a_party_another_node_hosts_is_evidence(make_a: MakeA) -> None:
    """H signs honestly but claims to speak for A's hosted customer through the portal."""
    a = make_a()
    priya = {"id": "priya", "name": "Priya Shah", "kind": "person", "hosted_by": a.key.public}
    case = a.open_case(org("mallory", "Mallory Ltd", a.hostile), priya, title="Hosted")
    before = a.state(case)
    event = create_event(
        a.hostile,
        case=case,
        type="status.set",
        member="Priya Shah",
        seq=1,
        prev=None,
        parents=before["heads"],
        depth=2,
        time=NOW,
        body={"label": "resolved"},
        via="portal",
        for_party="priya",
        session="stolen-session",
    )

    response = a.push([event], case=case)

    assert response.status_code == 200, response.text
    assert response.json()["evidence"] == [event.id]
    after = a.state(case)
    assert after["status"] is None  # not applied
    assert after["evidence"][-1]["event"] == event.id
    assert "does not host" in after["evidence"][-1]["reason"]
    a.assert_consistent(case)


# -- rule violations: stored as evidence, never applied ----------------------------------------


def agree_price(a: NodeA) -> str:
    """A proposes a price and an activity A owns; H accepts; v1 is agreed."""
    proposal = a.node.cases.create(
        a.key,
        a.case,
        "proposal.made",
        {
            "base": 0,
            "changes": [
                data_put("price", money("20.00", per="month"), "Monthly price"),
                activity_put("install", "Install the line", "northwind"),
            ],
        },
        member=TOM,
        time=NOW,
    )
    accept = a.next("proposal.accepted", {"proposal": proposal.id})
    response = a.push([accept])
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1 and response.json()["evidence"] == []
    assert a.state()["terms"]["version"] == 1
    return proposal.id


@pytest.mark.parametrize(
    "violation",
    ["set an agreed term", "report progress on A's activity", "accept again", "stale proposal"],
)
def test_a_rule_violation_is_stored_as_evidence_and_not_applied(a: NodeA, violation: str) -> None:
    proposal = agree_price(a)
    before = a.state()
    type_, body = {
        "set an agreed term": ("data.set", {"key": "price", "value": money("0.01", per="month")}),
        "report progress on A's activity": (
            "activity.updated",
            {"activity": "install", "state": "done"},
        ),
        "accept again": ("proposal.accepted", {"proposal": proposal}),
        "stale proposal": ("proposal.made", {"base": 0, "changes": [data_put("x", money("1.00"))]}),
    }[violation]
    event = a.next(type_, body)

    response = a.push([event])

    assert response.status_code == 200, response.text
    outcome = response.json()
    assert outcome["stored"] == 1
    assert outcome["evidence"] == [event.id]
    assert outcome["rejected"] == []
    after = a.state()
    assert a.held(event.id) == {event.id}
    for part in ("terms", "info", "progress", "agreements", "proposals", "parties"):
        assert after[part] == before[part], part
    assert after["evidence"][-1]["event"] == event.id
    assert after["evidence"][-1]["author"] == a.hostile.public
    assert after["evidence"][-1]["reason"]
    a.assert_consistent()


# -- forks: both kept, the equivocation named ------------------------------------------------------


def flagged_evidence(a: NodeA) -> list[dict[str, Any]]:
    return [e for e in a.state()["evidence"] if e["author"] == a.hostile.public]


@pytest.mark.parametrize("delivery", ["one push", "flagged one last", "flagged one first"])
def test_a_fork_keeps_both_events_and_names_the_equivocation(a: NodeA, delivery: str) -> None:
    one = a.next("message.posted", {"text": "The price is £20."})
    two = a.next("message.posted", {"text": "The price is £25."})
    assert (one.seq, one.prev, one.parents) == (two.seq, two.prev, two.parents)
    assert one.id != two.id
    # The fold flags the later of the two in (depth, id) order, whatever the arrival order.
    kept, flagged = sorted([one, two], key=lambda e: e.key)

    if delivery == "one push":
        outcome = a.push([one, two]).json()
        assert (outcome["stored"], outcome["evidence"]) == (2, [flagged.id])
    elif delivery == "flagged one last":
        assert a.push([kept]).json()["evidence"] == []
        outcome = a.push([flagged]).json()
        assert (outcome["stored"], outcome["evidence"]) == (1, [flagged.id])
    else:  # the applied one arrives second, sorts first: A re-folds and flags the held one
        assert a.push([flagged]).json()["evidence"] == []
        outcome = a.push([kept]).json()
        assert (outcome["stored"], outcome["evidence"]) == (1, [])

    state = a.state()
    assert a.held(one.id, two.id) == {one.id, two.id}
    assert state["equivocations"] == [
        {"author": a.hostile.public, "seq": one.seq, "events": sorted([one.id, two.id])}
    ]
    evidence = flagged_evidence(a)
    assert [e["event"] for e in evidence] == [flagged.id]
    assert evidence[0]["reason"].startswith("equivocation: the author also signed")
    a.assert_consistent()

    # Continuing the flagged branch is evidence too.
    later = create_event(
        a.hostile,
        case=a.case,
        type="message.posted",
        member=MALLORY,
        seq=flagged.seq + 1,
        prev=flagged.id,
        parents=[flagged.id],
        depth=flagged.depth + 1,
        time=NOW,
        body={"text": "and more"},
    )
    assert a.push([later]).json()["evidence"] == [later.id]
    assert a.state()["evidence"][-1]["reason"] == "continues an equivocation by the same author"
    a.assert_consistent()


# -- floods and oversized requests --------------------------------------------------------------


def test_a_flood_is_rate_limited_and_the_refused_push_stores_nothing(make_a: MakeA) -> None:
    a = make_a(push_rate=50)
    flood = chain_after(a.state(), a.hostile, a.case, messages(80, "flood"))

    first = a.push(flood[:40])
    assert first.status_code == 200, first.text
    assert first.json()["stored"] == 40
    before = a.state()

    second = a.push(flood[40:])

    assert second.status_code == 429, second.text
    assert int(second.headers["Retry-After"]) >= 1
    assert a.held(*(e.id for e in flood[40:])) == set()
    unchanged(a, before)


def test_retry_after_is_a_wait_after_which_the_push_is_accepted() -> None:
    now = [0.0]
    limit = RateLimiter(50, clock=lambda: now[0])
    assert limit.take("ed25519:node", 40) == 0
    wait = limit.take("ed25519:node", 40)
    assert wait > 0
    now[0] += wait - 1
    assert limit.take("ed25519:node", 40) > 0  # not yet
    now[0] += 2
    assert limit.take("ed25519:node", 40) == 0  # the wait it named was enough


def test_a_push_larger_than_the_allowance_is_413_not_a_false_wait(make_a: MakeA) -> None:
    a = make_a(push_rate=50)
    before = a.state()
    body = body_of(chain_after(before, a.hostile, a.case, messages(60)))
    path = f"/federation/v1/cases/{a.case}/events"
    response = a.client.post(
        path, content=body, headers=sign_request(a.hostile, "POST", A_URL + path, body, now=NOW)
    )
    assert response.status_code == 413 and "at most 50 events a minute" in response.text
    unchanged(a, before)


@pytest.mark.parametrize("shape", ["over 8 MiB", "over 8 MiB, streamed", "over 2000 lines"])
def test_an_oversized_push_is_refused_with_413(sqlite_a: NodeA, shape: str) -> None:
    a = sqlite_a
    before = a.state()
    if shape == "over 2000 lines":
        body = body_of(chain_after(before, a.hostile, a.case, messages(2001)))
    else:
        one = chain_after(before, a.hostile, a.case, [("message.posted", {"text": "x" * 90_000})])
        body = (one[0].wire() + b"\n") * 100  # 9 MB of (duplicate) lines
        assert len(body) > 8 * 1024 * 1024
    path = f"/federation/v1/cases/{a.case}/events"
    headers = sign_request(a.hostile, "POST", A_URL + path, body, now=NOW)

    if shape == "over 8 MiB, streamed":  # no Content-Length: the server counts as it reads
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        response = a.client.post(path, content=chunks, headers=headers)
    else:
        response = a.client.post(path, content=body, headers=headers)

    assert response.status_code == 413, response.text
    unchanged(a, before)


# -- signatures on requests -------------------------------------------------------------------


def test_unsigned_replayed_expired_and_misaddressed_requests_get_401(sqlite_a: NodeA) -> None:
    a = sqlite_a
    before = a.state()
    events = chain_after(before, a.hostile, a.case, messages(4, "signed"))
    path = f"/federation/v1/cases/{a.case}/events"

    unsigned = a.client.post(path, content=body_of(events[:1]))
    assert unsigned.status_code == 401
    assert "SignatureMissing" in unsigned.json()["detail"]

    expired = a.post(path, body_of(events[:1]), now=NOW - timedelta(hours=1))
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]

    elsewhere = a.post(path, body_of(events[:1]), url="http://b.test" + path)
    assert elsewhere.status_code == 401
    assert "SignatureInvalid" in elsewhere.json()["detail"]

    body = body_of(events[:1])
    headers = sign_request(a.hostile, "POST", A_URL + path, body, now=NOW)
    swapped = a.client.post(path, content=body_of(events[1:2]), headers=headers)
    assert swapped.status_code == 401  # the digest binds the body
    unchanged(a, before)

    first = a.client.post(path, content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["stored"] == 1
    held = a.state()
    replayed = a.client.post(path, content=body, headers=headers)
    assert replayed.status_code == 401
    assert "replay" in replayed.json()["detail"].lower()
    unchanged(a, held)


# -- who may push where ------------------------------------------------------------------------


def test_a_non_party_node_pushing_gets_403(a: NodeA) -> None:
    before = a.state()
    outsider = NodeKey.generate()
    event = a.next("message.posted", {"text": "let me in"}, key=outsider)

    response = a.push([event], key=outsider)

    assert response.status_code == 403, response.text
    assert a.held(event.id) == set()
    unchanged(a, before)


def test_a_party_pushing_to_a_case_a_does_not_hold_gets_404(a: NodeA) -> None:
    before = a.state()
    event = a.next("message.posted", {"text": "hello"})
    unknown = "sha256:" + "0" * 64

    assert a.push([event], case=unknown).status_code == 404
    assert a.push([event], case="not-a-case").status_code == 404
    unchanged(a, before)


def test_garbage_lines_are_listed_as_rejected_and_the_good_ones_stored(a: NodeA) -> None:
    before = a.state()
    good = a.next("message.posted", {"text": "a real one among the junk"})
    line = good.wire()
    unknown_parent = create_event(
        a.hostile,
        case=a.case,
        type="message.posted",
        member=MALLORY,
        seq=1,
        prev=None,
        parents=["sha256:" + "1" * 64],
        depth=5,
        time=NOW,
        body={"text": "orphan"},
    )
    other_case = a.open_case(org("mallory", "Mallory Ltd", a.hostile), title="Another case")
    elsewhere = a.next("message.posted", {"text": "for the other case"}, case=other_case)
    junk = [
        b"not json at all",
        line[: len(line) // 2],  # truncated in the middle
        line + b"trailing",
        b"{}",
        b"[]",
        b"null",
        b'{"event":{},"sig":"' + b"A" * 86 + b'"}',
        b"\xff\xfe\x00binary",
        b'{"event":' + b"[" * 5000 + b"]" * 5000 + b',"sig":"' + b"A" * 86 + b'"}',
        orjson.dumps(
            {"event": orjson.loads(good.raw), "sig": good.sig}, option=orjson.OPT_INDENT_2
        ).replace(b"\n", b" "),  # the same event, not canonical
        elsewhere.wire(),  # a real event of another case
    ]

    response = a.push(b"\n".join([*junk, line, unknown_parent.wire()]) + b"\n")

    assert response.status_code == 200, response.text
    outcome = response.json()
    assert outcome["stored"] == 1
    errors = [r["error"] for r in outcome["rejected"]]
    assert len(errors) == len(junk) + 1, outcome["rejected"]
    assert errors[-1] == "MissingParentsError"
    assert "WrongCaseError" in errors
    assert outcome["missing_parents"] is True
    assert a.held(good.id, elsewhere.id, unknown_parent.id) == {good.id}
    after = a.state()
    assert after["events"] == before["events"] + 1
    a.assert_consistent()
    a.assert_consistent(other_case)


# -- the sync endpoint --------------------------------------------------------------------------


def sync_answer(response: httpx.Response) -> tuple[dict[str, Any], list[bytes]]:
    assert response.status_code == 200, response.text
    lines = response.content.split(b"\n")
    assert lines[-1] == b""
    return orjson.loads(lines[0]), lines[1:-1]


def test_sync_refuses_a_non_party_with_403(sqlite_a: NodeA) -> None:
    outsider = NodeKey.generate()
    assert sqlite_a.sync({}, key=outsider).status_code == 403


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"limit": 5}', b'{"have": []}', b'{"have": {}, "limit": "lots"}'],
    ids=["not json", "array", "no have", "have not an object", "limit not a number"],
)
def test_sync_refuses_a_malformed_body_with_400(sqlite_a: NodeA, body: bytes) -> None:
    response = sqlite_a.post(f"/federation/v1/cases/{sqlite_a.case}/sync", body)
    assert response.status_code == 400, response.text


def test_sync_answers_a_party_with_only_what_it_lacks(a: NodeA) -> None:
    made = a.node.cases.create_many(a.key, a.case, messages(30), member=TOM, time=NOW)
    state = a.state()

    header, lines = sync_answer(a.sync(state["authors"]))
    assert header["more"] is False
    assert lines == []
    assert header["authors"] == state["authors"]

    behind = {a.key.public: {"seq": made[-11].seq, "id": made[-11].id}}
    header, lines = sync_answer(a.sync(behind))
    assert header["more"] is False
    assert lines == [e.wire() for e in made[-10:]]

    header, lines = sync_answer(a.sync({}, limit=7))
    assert header["more"] is True
    assert len(lines) == 7
    assert lines[0] == a.node.cases.events(a.case)[0].wire()  # the genesis first


def test_internal_notes_never_reach_a_peer(a: NodeA) -> None:
    secret = "Mallory's firm is on our watch list; be careful what we promise"
    a.app.state.services.notes.add(a.case, TOM, secret)
    a.node.cases.create_many(a.key, a.case, messages(3), member=TOM, time=NOW)
    header, lines = sync_answer(a.sync({}))
    assert len(lines) == a.state()["events"]
    assert all(b"watch list" not in line for line in lines)
    assert b"watch list" not in orjson.dumps(header)


def test_an_incremental_sync_answer_does_not_grow_with_the_history(a: NodeA) -> None:
    sizes = {}
    for length in (50, 2_000):
        case = a.open_case(org("mallory", "Mallory Ltd", a.hostile), title=f"{length} events")
        for start in range(0, length - 1, 500):
            count = min(500, length - 1 - start)
            batch = [("message.posted", {"text": f"message {start + i:05d}"}) for i in range(count)]
            a.node.cases.create_many(a.key, case, batch, member=TOM, time=NOW)
        state = a.state(case)
        assert state["events"] == length
        seq = state["authors"][a.key.public]["seq"]
        response = a.sync({a.key.public: {"seq": seq - 10}}, case=case)
        _, lines = sync_answer(response)
        assert len(lines) == 10
        sizes[length] = len(response.content)
    assert sizes[2_000] <= 2 * sizes[50], sizes


# -- the join endpoint ----------------------------------------------------------------------------


@dataclass
class Joining:
    a: NodeA
    link: Any
    joiner: NodeKey

    def join(
        self,
        *,
        secret: str | None = None,
        party_id: str = "fibrefix",
        key: NodeKey | None = None,
        party: dict[str, Any] | None = None,
    ) -> httpx.Response:
        body = {
            "case": self.a.case,
            "secret": self.link.secret if secret is None else secret,
            "party": party or {"id": party_id, "name": "Fibrefix", "kind": "organisation"},
            "url": "http://f.test",
        }
        return self.a.post("/federation/v1/join", orjson.dumps(body), key=key or self.joiner)


@pytest.fixture
def joining(a: NodeA) -> Joining:
    link = a.app.state.services.federation.invite(a.case, TOM, timedelta(hours=1))
    return Joining(a, link, NodeKey.generate())


def pending_party_adds(state: State) -> list[str]:
    return [
        change["party"]["id"]
        for p in state["proposals"].values()
        for change in p["changes"]
        if change["op"] == "party.add"
    ]


def test_join_with_a_wrong_secret_is_403_and_proposes_nothing(joining: Joining) -> None:
    before = joining.a.state()
    response = joining.join(secret="not-the-secret")
    assert response.status_code == 403, response.text
    unchanged(joining.a, before)
    # the right secret still works afterwards
    assert joining.join().status_code == 200
    assert pending_party_adds(joining.a.state()) == ["fibrefix"]


def test_join_with_an_expired_invite_is_403(joining: Joining) -> None:
    before = joining.a.state()
    joining.a.clock.advance(timedelta(hours=1, seconds=1))
    response = joining.join()
    assert response.status_code == 403, response.text
    assert "expired" in response.json()["message"]
    unchanged(joining.a, before)


def test_a_used_invite_cannot_be_used_again(joining: Joining) -> None:
    assert joining.join().status_code == 200
    proposed = joining.a.state()
    again = joining.join(key=NodeKey.generate(), party_id="someone-else")
    assert again.status_code == 403, again.text
    assert "already been used" in again.json()["message"]
    unchanged(joining.a, proposed)


def test_joining_with_a_party_id_already_taken_is_409(joining: Joining) -> None:
    before = joining.a.state()
    for taken in ("northwind", "mallory"):
        response = joining.join(party_id=taken)
        assert response.status_code == 409, response.text
    unchanged(joining.a, before)
    # a node already a party cannot join again, and the invite was not spent on any of it
    assert joining.join(key=joining.a.hostile).status_code == 409
    assert joining.join().status_code == 200


def test_a_malformed_join_does_not_spend_the_invitation(joining: Joining) -> None:
    bad = joining.join(party={"id": "Not A Slug!", "name": "Fibrefix", "kind": "organisation"})
    assert bad.status_code == 422, bad.text
    assert pending_party_adds(joining.a.state()) == []
    retry = joining.join()
    assert retry.status_code == 200, retry.text


# -- resilience: B pulls from A through a peer that fails in every way ---------------------------


class Peer:
    """An httpx transport for B whose behaviour the test switches between calls."""

    def __init__(self, a_client: TestClient) -> None:
        self.a_client = a_client
        self.mode = "good"
        self.calls = 0
        self.limit = 0  # "cut-long"/"close-long": a middlebox passing this many bytes
        self.asked: list[int] = []  # the batch size of each sync request

    def forward(self, request: httpx.Request) -> httpx.Response:
        skip = {"host", "content-length", "transfer-encoding", "connection"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        answer = self.a_client.request(
            request.method, str(request.url), content=request.content, headers=headers
        )
        return httpx.Response(
            answer.status_code,
            content=answer.content,
            headers={"content-type": answer.headers.get("content-type", "")},
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if request.url.path.endswith("/sync"):
            self.asked.append(orjson.loads(request.content)["limit"])
        mode = self.mode
        if mode == "refused":
            raise httpx.ConnectError("connection refused", request=request)
        if mode == "slow":
            raise httpx.ReadTimeout("timed out", request=request)
        if mode == "gone":
            raise httpx.RemoteProtocolError("peer closed connection mid-body", request=request)
        if mode == "garbage":
            return httpx.Response(200, content=b"<html><body>502 Bad Gateway</body></html>")
        if mode == "error":
            return httpx.Response(500, content=b"Internal Server Error")
        answer = self.forward(request)
        if mode == "truncated" or (mode == "truncate-second" and self.calls >= 2):
            body = answer.content
            starts = [i + 1 for i, byte in enumerate(body) if byte == ord("\n")]
            if len(starts) >= 4:
                line_start, line_end = starts[2], starts[3] - 1
                cut = (line_start + line_end) // 2  # in the middle of the third event's line
            else:  # a smaller answer: in the middle of its last line
                cut = len(body) - 2
            return httpx.Response(200, content=body[:cut])
        if mode == "cut-long" and len(answer.content) > self.limit:
            return httpx.Response(200, content=answer.content[: self.limit])
        if mode == "close-long" and len(answer.content) > self.limit:
            raise httpx.RemoteProtocolError("peer closed connection mid-body", request=request)
        if mode == "bad-event":  # a real answer with one signature flipped
            lines = answer.content.split(b"\n")
            at = min(3, len(lines) - 2)  # the third event, or the last one
            raw = lines[at]
            lines[at] = raw[:-10] + (b"B" if raw[-10:-9] != b"B" else b"C") + raw[-9:]
            return httpx.Response(200, content=b"\n".join(lines))
        return answer


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Pair:
    a: Node
    a_client: TestClient
    b: Node
    fed_b: Federation
    peer: Peer
    clock: Clock
    case: str
    made: list[Event]
    c: NodeKey  # the third party's key: the test can author as C

    def pull(self) -> Any:
        return self.fed_b.pull(self.case, self.a.key.public, A_URL)

    def b_events(self) -> list[str]:
        return [e.id for e in self.b.cases.events(self.case)]

    def status(self) -> Any:
        (status,) = [s for s in self.fed_b.peers() if s.case_id == self.case]
        return status


@pytest.fixture
def pair(tmp_path: Path, database_url: str) -> Iterator[Pair]:
    """A on SQLite with a 35-event case naming B as a party; B on the backend under test,
    pulling in batches of 10 through ``Peer``."""
    clock = Clock()
    node_a = Node.init(tmp_path / "a", name="Northwind Broadband")
    node_a.set_url(A_URL)
    node_b = Node.init(tmp_path / "b", name="Contoso", database=database_url)
    c = NodeKey.generate()
    parties = [
        org("northwind", "Northwind Broadband", node_a.key, A_URL),
        org("contoso", "Contoso", node_b.key),
        org("fibrefix", "Fibrefix", c),
    ]
    genesis = node_a.cases.create(
        node_a.key,
        None,
        "case.opened",
        {"title": "Leased line", "nonce": "pair", "parties": parties},
        member=TOM,
        time=NOW,
    )
    made = [genesis]
    for round_ in range(4):  # two authors, interleaved chains
        for key in (node_a.key, c):
            made += node_a.cases.create_many(
                key, genesis.case, messages(4, f"r{round_}"), member="someone", time=NOW
            )
    made += node_a.cases.create_many(node_a.key, genesis.case, messages(2), member=TOM, time=NOW)
    assert len(made) == 35
    app_a = create_app(node_a, now=clock, passwords=cheap_passwords())
    with TestClient(app_a, base_url=A_URL) as a_client:
        peer = Peer(a_client)
        fed_b = Federation(
            node_b,
            Negotiation(node_b.cases, node_b.key, now=clock),
            now=clock,
            transport=httpx.MockTransport(peer),
            batch=10,
        )
        yield Pair(node_a, a_client, node_b, fed_b, peer, clock, genesis.case, made, c)
        fed_b.close()
    node_a.close()
    node_b.close()


@pytest.mark.parametrize("failure", ["refused", "slow", "gone", "garbage", "error", "truncated"])
def test_a_failing_peer_leaves_nothing_and_is_retried_with_backoff(
    pair: Pair, failure: str
) -> None:
    pair.peer.mode = failure

    result = pair.pull()

    assert result.error, result
    assert result.stored == 0
    assert pair.b.cases.state(pair.case) is None
    assert pair.b_events() == []
    status = pair.status()
    assert status.failures == 1
    assert status.last_error == result.error
    assert status.last_sync_at is None
    next_at = _aware(status.next_attempt_at)
    assert next_at is not None and next_at > pair.clock()

    pair.peer.mode = "good"
    done = pair.pull()
    assert done.error is None, done.error
    assert done.stored == 35
    assert pair.b.cases.state_hash(pair.case) == pair.a.cases.state_hash(pair.case)
    assert pair.status().failures == 0
    assert pair.status().next_attempt_at is None


def test_a_cut_transfer_keeps_whole_verified_batches_only_then_catches_up(pair: Pair) -> None:
    # (a) refused, (b) the second batch cut mid-line, (c) garbage, (d) a good peer.
    pair.peer.mode = "refused"
    assert pair.pull().error
    assert pair.b_events() == []

    pair.peer.mode, pair.peer.calls = "truncate-second", 0
    cut = pair.pull()
    assert cut.error and "unusable batch" in cut.error
    assert cut.stored == 10  # the first batch, whole and verified; nothing of the second
    assert cut.asked == [10, 10, 5, 2, 1]  # each cut answer asked again for half as many
    first_batch = [e.id for e in sorted(pair.made, key=lambda e: e.key)[:10]]
    assert sorted(pair.b_events()) == sorted(first_batch)
    assert pair.b.cases.state(pair.case) == pair.b.cases.refold(pair.case)

    pair.peer.mode = "bad-event"  # one event of the batch fails verification: none is kept
    bad = pair.pull()
    assert bad.error
    assert sorted(pair.b_events()) == sorted(first_batch)

    pair.peer.mode = "garbage"
    assert pair.pull().error
    status = pair.status()
    assert status.failures == 4
    assert status.events_received == 10
    backoff = _aware(status.next_attempt_at)
    assert backoff is not None and backoff - pair.clock() == timedelta(seconds=16)

    # the scheduled sync respects the backoff; forcing it, or waiting, pulls again
    pair.peer.mode = "good"
    assert pair.fed_b.sync(pair.case) == []
    pair.clock.advance(timedelta(seconds=17))
    (caught_up,) = pair.fed_b.sync(pair.case)
    assert caught_up.error is None, caught_up.error
    assert caught_up.stored == 25
    assert caught_up.round_trips == len(caught_up.asked)
    assert max(caught_up.asked) < 10  # it remembers that long answers were cut
    assert sorted(pair.b_events()) == sorted(e.id for e in pair.made)
    assert pair.b.cases.state_hash(pair.case) == pair.a.cases.state_hash(pair.case)
    assert pair.b.cases.state(pair.case) == pair.b.cases.refold(pair.case)
    assert pair.status().failures == 0

    # and once caught up, a pull costs one round trip and no events
    again = pair.pull()
    assert (again.error, again.stored, again.round_trips) == (None, 0, 1)


@pytest.mark.parametrize("mode", ["cut-long", "close-long"])
def test_a_middlebox_cutting_long_answers_shrinks_the_batch_and_sync_progresses(
    pair: Pair, mode: str
) -> None:
    # every answer longer than 1,500 bytes is cut (mid-line, or the connection closed)
    pair.peer.mode, pair.peer.limit = mode, 1500

    result = pair.pull()

    assert result.error is None, result.error
    assert result.stored == 35
    assert pair.b.cases.state_hash(pair.case) == pair.a.cases.state_hash(pair.case)
    assert result.asked[0] == 10 and min(result.asked) < 10
    assert pair.status().failures == 0

    # the next pull starts from what got through, not from the size that was cut
    pair.a.cases.create_many(pair.a.key, pair.case, messages(12, "later"), member=TOM, time=NOW)
    again = pair.pull()
    assert again.error is None, again.error
    assert again.stored == 12
    assert again.asked[0] < 10
    assert len(again.asked) == again.round_trips
    assert pair.b.cases.state_hash(pair.case) == pair.a.cases.state_hash(pair.case)


def test_a_node_holding_one_side_of_a_fork_converges_with_one_holding_both(pair: Pair) -> None:
    assert pair.pull().error is None
    state = pair.b.cases.state(pair.case)
    assert state is not None
    # C, the third party, forks at its next seq; B got one side (a push), A got both
    one, two = (
        chain_after(state, pair.c, pair.case, [("message.posted", {"text": text})])[0]
        for text in ("one", "two")
    )
    assert pair.b.cases.append([one], strict=False).stored == [one.id]
    assert len(pair.a.cases.append([one, two], strict=False).stored) == 2
    a_state = pair.a.cases.state(pair.case)
    assert a_state is not None and len(a_state["equivocations"]) == 1
    pair.a.cases.create(pair.a.key, pair.case, "message.posted", {"text": "after"}, member=TOM)

    result = pair.pull()

    assert result.error is None, result.error
    assert pair.b.cases.state_hash(pair.case) == pair.a.cases.state_hash(pair.case)
