"""Peers are followers too: pushes follow the log from a mark per peer, in log order,
retried until acknowledged; a peer missing earlier events gets them; the periodic sync
pages through the cases and pulls only what is behind.

Two nodes in-process: A on SQLite, B on the backend under test, each served by its own
application and reaching the other through an httpx transport the test can switch off.
A's pushers run when the test says (``catch_up``), on A's injected clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.core.crypto import NodeKey
from accord.federation import sync as sync_module
from accord.federation.push import PREFIX, PeerPushers
from accord.federation.signing import sign_request
from accord.node import Node
from accord.service.notes import Notes
from accord.store.tables import follower_marks
from tests.clocks import FakeClock, cheap_passwords

A_URL, B_URL = "http://a.test", "http://b.test"
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def org(party_id: str, name: str, key: NodeKey, url: str | None = None) -> dict[str, Any]:
    party = {"id": party_id, "name": name, "kind": "organisation", "node": key.public}
    if url:
        party["url"] = url
    return party


def messages(n: int, prefix: str = "message") -> list[tuple[str, dict[str, Any]]]:
    return [("message.posted", {"text": f"{prefix} {i}"}) for i in range(n)]


@dataclass
class Route:
    """An httpx transport to one in-process node, with a switch and a log."""

    client: TestClient | None = None
    up: bool = True
    seen: list[tuple[str, bytes]] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.up or self.client is None:
            raise httpx.ConnectError("connection refused", request=request)
        self.seen.append((request.url.path, request.content))
        skip = {"host", "content-length", "transfer-encoding", "connection"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        answer = self.client.request(
            request.method, str(request.url), content=request.content, headers=headers
        )
        if request.url.path.endswith("/events") and answer.status_code == 200:
            self.answers.append(answer.json())
        return httpx.Response(
            answer.status_code,
            content=answer.content,
            headers={k: v for k, v in answer.headers.items() if k.lower() in ("content-type",)},
        )

    def pushes(self) -> list[tuple[str, list[bytes]]]:
        return [
            (path.split("/")[4], [line for line in body.split(b"\n") if line])
            for path, body in self.seen
            if path.endswith("/events")
        ]

    def paths(self, suffix: str) -> list[str]:
        return [path for path, _ in self.seen if path.endswith(suffix)]


@dataclass
class Pair:
    a: Node
    b: Node
    to_a: Route
    to_b: Route
    clock: FakeClock
    pushers: PeerPushers  # A's
    b_app: Any

    def open_case(self, title: str, *, with_b: bool = True) -> str:
        parties = [org("northwind", "Northwind", self.a.key, A_URL)]
        if with_b:
            parties.append(org("contoso", "Contoso", self.b.key, B_URL))
        genesis = self.a.cases.create(
            self.a.key,
            None,
            "case.opened",
            {"title": title, "nonce": title, "parties": parties},
            member="Tom",
        )
        if with_b:  # B holds it, as after a join
            pulled = self.b_federation.pull(genesis.case, self.a.key.public, A_URL)
            assert pulled.error is None, pulled.error
        return genesis.case

    @property
    def b_federation(self) -> sync_module.Federation:
        federation: sync_module.Federation = self.b_app.state.services.federation
        return federation

    def write(self, case_id: str, n: int, prefix: str = "update") -> None:
        self.a.cases.create_many(self.a.key, case_id, messages(n, prefix), member="Tom")

    def same(self, case_id: str) -> bool:
        return self.a.cases.state_hash(case_id) == self.b.cases.state_hash(case_id)

    def mark(self) -> Any:
        with self.a.db.read() as conn:
            return conn.execute(
                sa.select(follower_marks).where(follower_marks.c.name == PREFIX + self.b.key.public)
            ).one()


@pytest.fixture
def pair(tmp_path: Path, database_url: str) -> Iterator[Pair]:
    clock = FakeClock(NOW)
    a = Node.init(tmp_path / "a", name="Northwind")
    a.set_url(A_URL)
    b = Node.init(tmp_path / "b", name="Contoso", database=database_url)
    b.set_url(B_URL)
    to_a, to_b = Route(), Route()
    app_a = create_app(
        a, now=clock, transport=httpx.MockTransport(to_b), passwords=cheap_passwords()
    )
    app_b = create_app(
        b, now=clock, transport=httpx.MockTransport(to_a), passwords=cheap_passwords()
    )
    with (
        TestClient(app_a, base_url=A_URL) as client_a,
        TestClient(app_b, base_url=B_URL) as client_b,
    ):
        to_a.client, to_b.client = client_a, client_b
        pushers = app_a.state.services.pushers
        yield Pair(a, b, to_a, to_b, clock, pushers, app_b)
    a.close()
    b.close()


def test_pushes_follow_the_log_and_are_retried_until_acknowledged(pair: Pair) -> None:
    case = pair.open_case("Leased line")
    pair.write(case, 30)
    pair.to_b.up = False

    (failed,) = pair.pushers.catch_up()

    assert failed.error and "connection refused" in failed.error
    assert not pair.same(case)
    mark = pair.mark()
    assert mark.failures == 1 and "connection refused" in mark.last_error
    (status,) = pair.pushers.status()
    assert status.behind == 31 and status.cases == {case: 31}  # the opening and 30 messages

    pair.to_b.up = True
    assert pair.pushers.catch_up()[0].sent == 0  # still backing off: nothing sent
    assert pair.to_b.pushes() == []

    pair.clock.advance(seconds=3)
    (done,) = pair.pushers.catch_up()

    assert done.error is None and done.sent == 31
    assert pair.same(case)
    ((pushed_case, lines),) = pair.to_b.pushes()  # one request, in log order
    assert pushed_case == case
    seqs = [orjson.loads(line)["event"]["seq"] for line in lines]
    assert seqs == sorted(seqs) == list(range(1, 32))
    (status,) = pair.pushers.status()
    assert (status.behind, status.failures, status.last_error) == (0, 0, None)

    # the next write goes out on the next pass, alone
    pair.write(case, 1, "later")
    assert pair.pushers.catch_up()[0].sent == 1
    assert pair.same(case)


def test_a_peer_missing_earlier_events_gets_them(pair: Pair) -> None:
    case = pair.open_case("Billing dispute")
    pair.write(case, 10, "lost")
    # A believes those ten were acknowledged (a lost push, a mark from an older node)
    pair.pushers.discover()
    with pair.a.db.write() as conn:
        end = conn.execute(sa.text("SELECT MAX(pos) FROM events")).scalar()
        conn.execute(
            follower_marks.update()
            .where(follower_marks.c.name == PREFIX + pair.b.key.public)
            .values(position=end)
        )
    pair.write(case, 5, "after")

    (done,) = pair.pushers.catch_up()

    assert done.error is None, done.error
    first = pair.to_b.answers[0]
    assert first["missing_parents"] is True  # the five arrived before what they follow
    assert pair.a.key.public in first["heads"]
    assert done.repaired == 15  # what B's heads showed it lacked, the five included
    assert pair.same(case)
    assert pair.b.cases.state(case) == pair.b.cases.refold(case)


def test_only_cases_the_peer_is_a_party_of_go_to_it_and_notes_never(pair: Pair) -> None:
    shared = pair.open_case("Shared case")
    private = pair.open_case("Not Contoso's", with_b=False)
    Notes(pair.a.cases, now=pair.clock).add(shared, "Tom", "internal: customer is a pain")
    pair.write(shared, 3)
    pair.write(private, 3)

    (done,) = pair.pushers.catch_up()

    assert done.error is None
    assert {c for c, _ in pair.to_b.pushes()} == {shared}
    assert all(b"internal" not in body for _, body in pair.to_b.seen)
    assert pair.same(shared) and pair.b.cases.state(private) is None


def test_a_peer_that_calls_again_is_retried_at_once(pair: Pair) -> None:
    case = pair.open_case("Outage")
    pair.write(case, 4)
    pair.to_b.up = False
    pair.pushers.catch_up()
    assert pair.mark().failures == 1
    pair.to_b.up = True

    # B pulls from A (a signed request): A stops waiting out its backoff
    assert pair.b_federation.pull(case, pair.a.key.public, A_URL).error is None
    pair.write(case, 2, "more")
    (done,) = pair.pushers.catch_up()

    assert done.error is None and done.sent > 0
    assert pair.same(case)
    assert pair.mark().failures == 0


def test_the_periodic_sync_pages_and_pulls_only_what_is_behind(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_module, "PAGE", 2)
    cases = [pair.open_case(f"Case {i}") for i in range(5)]
    behind = sorted(cases)[1], sorted(cases)[4]  # on two different pages
    for case_id in behind:
        pair.write(case_id, 3)
    ahead = sorted(cases)[2]  # B holds something A lacks
    pair.b.cases.create(pair.b.key, ahead, "message.posted", {"text": "from B"}, member="Kim")
    pair.to_a.seen.clear()

    results = pair.b_federation.sync()

    assert len(pair.to_a.paths("/heads")) == 3  # 5 cases, 2 a page: one request each
    pulled = {path.split("/")[4] for path in pair.to_a.paths("/sync")}
    assert pulled == set(behind)
    assert all(pair.same(c) for c in behind)
    by_case = {r.case_id: r for r in results}
    assert set(by_case) == {*behind, ahead}
    assert all(by_case[c].stored == 3 and by_case[c].we_lack == 0 for c in behind)
    assert (by_case[ahead].we_lack, by_case[ahead].they_lack) == (0, 1)
    status = {s.case_id: s for s in pair.b_federation.peers()}
    assert status[ahead].they_lack == 1 and status[behind[0]].we_lack == 0


def test_heads_answers_only_for_cases_the_requester_may_read(pair: Pair) -> None:
    shared = pair.open_case("Shared")
    private = pair.open_case("Private", with_b=False)
    outsider = NodeKey.generate()
    body = orjson.dumps({"cases": {shared: {}, private: {}, "sha256:" + "0" * 64: {}}})
    url = f"{A_URL}/federation/v1/heads"
    assert pair.to_a.client is not None

    def ask(key: NodeKey) -> Any:
        signed = sign_request(key, "POST", url, body, now=pair.clock())
        answer = pair.to_a.client.post("/federation/v1/heads", content=body, headers=signed)  # type: ignore[union-attr]
        assert answer.status_code == 200, answer.text
        return answer.json()

    mine = ask(pair.b.key)
    assert set(mine["cases"]) == {shared} and mine["cases"][shared]["you_lack"] == 1
    assert sorted(mine["unknown"]) == sorted([private, "sha256:" + "0" * 64])
    theirs = ask(outsider)
    assert theirs["cases"] == {} and len(theirs["unknown"]) == 3
