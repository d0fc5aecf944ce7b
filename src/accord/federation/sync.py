"""Keeping every party's copy of a case whole: join, pull, push and peer status.

Sync is by author chains. A node tells a peer how far it holds each author's chain
(``have``: author → latest seq and id, a few bytes per party); the peer answers with
every event after those positions, in (depth, id) order and in batches, so parents
always arrive before children. The bytes and round trips grow with what is missing,
never with the history. Every event is verified before it is stored, and a batch is
stored whole or not at all; pushes are best effort and periodic pulls repair the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import sqlalchemy as sa

from accord.core.bodies import check_change
from accord.core.canonical import canonical
from accord.core.crypto import fingerprint
from accord.core.errors import AccordError, EventFormatError, MissingParentsError
from accord.core.events import Event, parse_wire
from accord.core.state import State
from accord.federation.client import PeerClient, PeerError
from accord.federation.invites import InviteError, InviteLink, InviteStore
from accord.node import Node
from accord.service.errors import Conflict, Forbidden, Invalid
from accord.service.negotiation import Actor, Negotiation
from accord.store.tables import known_nodes, peer_sync

BATCH = 1000
MAX_BACKOFF = timedelta(minutes=10)


class SyncError(Exception):
    """A sync could not complete; nothing unverified or partial was stored."""


@dataclass
class PullResult:
    case_id: str
    peer: str
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    round_trips: int = 0
    bytes_received: int = 0
    error: str | None = None


@dataclass
class JoinResult:
    case_id: str
    proposal: str
    party: str
    member: bool  # already a party (the proposal was agreed at once)
    pull: PullResult = field(repr=False, default_factory=lambda: PullResult("", ""))


@dataclass
class PeerStatus:
    peer: str
    case_id: str
    url: str
    last_sync_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    failures: int
    next_attempt_at: datetime | None
    events_received: int
    bytes_received: int


def party_nodes(state: State) -> dict[str, dict[str, Any]]:
    """Node key → party, for the parties that run their own node."""
    return {p["node"]: {**p, "id": pid} for pid, p in state["parties"].items() if p["node"]}


def invited_nodes(state: State) -> set[str]:
    """Nodes named by a pending ``party.add``: they may read the case before it is agreed."""
    found = set()
    for proposal in state["proposals"].values():
        if proposal["state"] == "pending":
            for change in proposal["changes"]:
                if change["op"] == "party.add" and change["party"].get("node"):
                    found.add(change["party"]["node"])
    return found


class Federation:
    """This node's side of federation, for the CLI, the server and background sync."""

    def __init__(
        self,
        node: Node,
        negotiation: Negotiation,
        *,
        now: Callable[[], datetime],
        transport: httpx.BaseTransport | None = None,
        batch: int = BATCH,
    ) -> None:
        self.node = node
        self.cases = node.cases
        self.negotiation = negotiation
        self.now = now
        self.invites = InviteStore(node.db, now=now)
        self.client = PeerClient(node.key, now=now, transport=transport)
        self.batch = batch

    # -- invitations -----------------------------------------------------------

    def invite(self, case_id: str, created_by: str, ttl: timedelta) -> InviteLink:
        if not self.node.url:
            raise Invalid(
                "this node has no public URL to invite to: run `accord node set-url URL` first",
                field="url",
            )
        state = self.negotiation.state(case_id)
        if self.node.key.public not in party_nodes(state):
            raise Forbidden("this node is not a party of the case and cannot invite to it")
        try:
            secret, expires = self.invites.create(case_id, created_by, ttl)
        except InviteError as exc:
            raise Invalid(str(exc), field="hours") from exc
        return InviteLink(
            self.node.url, case_id, fingerprint(self.node.key.public), secret, expires
        )

    def accept_join(self, sender: str, body: dict[str, Any]) -> dict[str, Any]:
        """The inviting side: check the secret, then propose the joiner as a party."""
        case_id, secret, party = body.get("case"), body.get("secret"), body.get("party")
        if not isinstance(case_id, str) or not isinstance(secret, str):
            raise Invalid("a join names its case and secret")
        if not isinstance(party, dict):
            raise Invalid("a join says who is joining: party {id, name, kind}", field="party")
        state = self.negotiation.state(case_id)
        if sender in party_nodes(state):
            raise Conflict("that node is already a party of this case")
        new_party = {
            "id": party.get("id"),
            "name": party.get("name"),
            "kind": party.get("kind", "organisation"),
            "node": sender,
        }
        if body.get("url"):
            new_party["url"] = body["url"]
        if new_party["id"] in state["parties"]:
            raise Conflict(
                f"party id {new_party['id']!r} is taken in this case; choose another",
                field="party.id",
            )
        try:  # check the party before the one-time secret is spent on it
            check_change({"op": "party.add", "party": new_party}, "party")
        except EventFormatError as exc:
            raise Invalid(str(exc).removeprefix("party."), field="party") from exc
        try:
            self.invites.consume(case_id, secret, sender)
        except InviteError as exc:
            raise Forbidden(str(exc)) from exc
        actor = Actor(member=f"invitation of {party.get('name')}", via="api")
        outcome = self.negotiation.propose(
            actor,
            case_id,
            [{"op": "party.add", "party": new_party}],
            note=f"{new_party['name']} joins the case by invitation",
        )
        self._remember_node(sender, str(new_party["name"]), body.get("url"))
        agreed = new_party["id"] in self.negotiation.state(case_id)["parties"]
        return {
            "case": case_id,
            "proposal": outcome.event_ids[0],
            "agreed": agreed,
            "node": {"key": self.node.key.public, "name": self.node.name, "url": self.node.url},
        }

    def join(self, link_text: str, party: dict[str, Any]) -> JoinResult:
        """The joining side: present the invitation, then fetch and verify the case."""
        link = InviteLink.parse(link_text)
        if link.expires <= self.now():
            raise InviteError("this invitation has expired; ask for a new one")
        body = {"case": link.case_id, "secret": link.secret, "party": party, "url": self.node.url}
        answer = orjson.loads(
            self.client.post(f"{link.node_url}/federation/v1/join", orjson.dumps(body))
        )
        inviter = answer["node"]["key"]
        if fingerprint(inviter) != link.fingerprint:
            raise SyncError(
                "the node that answered is not the one the link names "
                f"(fingerprint {fingerprint(inviter)}, link says {link.fingerprint})"
            )
        self._remember_node(inviter, answer["node"]["name"], link.node_url)
        pulled = self.pull(link.case_id, inviter, link.node_url)
        if pulled.error:
            raise SyncError(pulled.error)
        state = self.cases.state(link.case_id)
        if state is None or inviter not in party_nodes(state):
            raise SyncError("the case does not name the inviting node as a party")
        member = self.node.key.public in party_nodes(state)
        return JoinResult(link.case_id, answer["proposal"], str(party["id"]), member, pulled)

    # -- serving peers -----------------------------------------------------------

    def readable_state(self, case_id: str, requester: str) -> State:
        """The case, if ``requester`` is one of its party nodes (or invited into it)."""
        state = self.negotiation.state(case_id)
        if requester not in party_nodes(state) and requester not in invited_nodes(state):
            raise Forbidden("your node is not a party of this case")
        return state

    def missing_for(
        self,
        case_id: str,
        requester: str,
        have: dict[str, Any],
        limit: int,
        want: list[str] | None = None,
    ) -> tuple[list[Event], bool, State]:
        """What a peer that holds ``have`` lacks: the first ``limit`` events in (depth, id)
        order, and whether there are more. ``want`` names events the peer found missing
        as parents — such as the other side of a fork, which no chain position reveals."""
        state = self.readable_state(case_id, requester)
        limit = max(1, min(limit, self.batch))
        found: list[Event] = self.cases.get(case_id, want[:limit]) if want else []
        for author, head in state["authors"].items():
            theirs = have.get(author)
            seq = theirs.get("seq", 0) if isinstance(theirs, dict) else 0
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
                raise Invalid(f"have[{author}].seq must be a non-negative integer")
            if head["seq"] > seq:
                found.extend(self.cases.events_after(case_id, author, seq, limit=limit + 1))
        found = sorted({e.id: e for e in found}.values(), key=lambda e: e.key)
        return found[:limit], len(found) > limit, state

    def receive(self, sender: str, case_id: str, lines: Iterable[bytes]) -> dict[str, Any]:
        """Events pushed by a party node: verify each, store what fits, report the rest."""
        state = self.negotiation.state(case_id)
        if sender not in party_nodes(state):
            raise Forbidden("your node is not a party of this case")
        events: list[Event] = []
        rejected: list[dict[str, str]] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                events.append(parse_wire(line, case=case_id))
            except AccordError as exc:
                rejected.append({"error": type(exc).__name__, "message": str(exc)})
        result = self.cases.append(events, strict=False)
        missing = any(r.error == MissingParentsError.__name__ for r in result.rejected)
        rejected += [
            {"event": r.event_id, "error": r.error, "message": r.message} for r in result.rejected
        ]
        return {
            "stored": len(result.stored),
            "duplicates": len(result.duplicates),
            "evidence": result.evidence,
            "rejected": rejected,
            "missing_parents": missing,
        }

    # -- pulling and pushing -------------------------------------------------------

    def pull(self, case_id: str, peer: str, url: str) -> PullResult:
        """Fetch from ``peer`` everything of the case this node lacks, batch by batch."""
        result = PullResult(case_id, peer)
        want: list[str] = []
        try:
            while True:
                state = self.cases.state(case_id)
                have = state["authors"] if state else {}
                request: dict[str, Any] = {"have": have, "limit": self.batch}
                if want:
                    request["want"] = want
                body = orjson.dumps(request)
                data = self.client.post(f"{url}/federation/v1/cases/{case_id}/sync", body)
                result.round_trips += 1
                result.bytes_received += len(data)
                header, events = self._parse_batch(data, case_id)
                if not events:
                    break
                stored = self.cases.append(events, strict=False)
                result.stored += len(stored.stored)
                result.duplicates += len(stored.duplicates)
                asked, want = want, sorted({m for r in stored.rejected for m in r.missing})
                if not stored.stored and (not want or want == asked):
                    if stored.rejected:  # no progress, even with the parents asked for
                        result.rejected += len(stored.rejected)
                        first = stored.rejected[0]
                        raise SyncError(f"the peer's events do not fit: {first.message}")
                    break
                if not header.get("more") and not want:
                    break
        except (PeerError, SyncError) as exc:
            result.error = str(exc)
        self._record(result, url)
        return result

    def _parse_batch(self, data: bytes, case_id: str) -> tuple[dict[str, Any], list[Event]]:
        lines = data.split(b"\n")
        try:
            header = orjson.loads(lines[0])
            if not isinstance(header, dict):
                raise ValueError("header is not an object")
            events = [parse_wire(line, case=case_id) for line in lines[1:] if line]
        except (ValueError, AccordError) as exc:  # garbage or a truncated answer: keep none
            raise SyncError(f"the peer sent an unusable batch: {exc}") from exc
        return header, events

    def push(self, case_id: str, event_ids: list[str]) -> dict[str, str | None]:
        """Best effort: send new events to every other party node with a URL."""
        state = self.cases.state(case_id)
        if state is None:
            return {}
        events = self.cases.get(case_id, event_ids)
        body = b"\n".join(e.wire() for e in events) + b"\n"
        outcome: dict[str, str | None] = {}
        for key, party in party_nodes(state).items():
            if key == self.node.key.public or not party.get("url"):
                continue
            try:
                self.client.post(
                    f"{party['url']}/federation/v1/cases/{case_id}/events",
                    body,
                    content_type="application/jsonl",
                )
                outcome[key] = None
            except PeerError as exc:
                outcome[key] = str(exc)
        return outcome

    def sync(self, case_id: str | None = None, *, force: bool = False) -> list[PullResult]:
        """Pull every case (or one) from every other party node that has a URL."""
        ids = [case_id] if case_id else [r.case_id for r in self.cases.list_cases(limit=100_000)]
        results = []
        due = self._due()
        for cid in ids:
            state = self.cases.state(cid)
            if state is None:
                continue
            for key, party in party_nodes(state).items():
                if key == self.node.key.public or not party.get("url"):
                    continue
                if not force and due.get((key, cid), self.now()) > self.now():
                    continue  # backing off after failures
                results.append(self.pull(cid, key, party["url"]))
        return results

    # -- peer status ------------------------------------------------------------------

    def peers(self) -> list[PeerStatus]:
        with self.node.db.read() as conn:
            rows = conn.execute(
                sa.select(peer_sync).order_by(peer_sync.c.peer, peer_sync.c.case_id)
            ).mappings()
            return [
                PeerStatus(**{k: row[k] for k in PeerStatus.__dataclass_fields__}) for row in rows
            ]

    def _due(self) -> dict[tuple[str, str], datetime]:
        with self.node.db.read() as conn:
            rows = conn.execute(
                sa.select(peer_sync.c.peer, peer_sync.c.case_id, peer_sync.c.next_attempt_at)
            ).all()
        return {
            (r.peer, r.case_id): _aware(r.next_attempt_at)
            for r in rows
            if r.next_attempt_at is not None
        }

    def _record(self, result: PullResult, url: str) -> None:
        now = self.now()
        key = {"peer": result.peer, "case_id": result.case_id}
        with self.node.db.write() as conn:
            row = (
                conn.execute(
                    sa.select(peer_sync).where(
                        peer_sync.c.peer == result.peer, peer_sync.c.case_id == result.case_id
                    )
                )
                .mappings()
                .first()
            )
            failures = (row["failures"] if row else 0) + 1 if result.error else 0
            values: dict[str, Any] = {
                "url": url,
                "last_attempt_at": now,
                "failures": failures,
                "last_error": result.error,
                "events_received": (row["events_received"] if row else 0) + result.stored,
                "bytes_received": (row["bytes_received"] if row else 0) + result.bytes_received,
                "next_attempt_at": now + min(MAX_BACKOFF, timedelta(seconds=2**failures))
                if failures
                else None,
            }
            if not result.error:
                values["last_sync_at"] = now
            if row is None:
                conn.execute(
                    peer_sync.insert().values(
                        **key, last_sync_at=values.pop("last_sync_at", None), **values
                    )
                )
            else:
                conn.execute(
                    peer_sync.update()
                    .where(peer_sync.c.peer == result.peer, peer_sync.c.case_id == result.case_id)
                    .values(**values)
                )

    def _remember_node(self, key: str, name: str, url: str | None) -> None:
        with self.node.db.write() as conn:
            exists = conn.execute(
                sa.select(known_nodes.c.public_key).where(known_nodes.c.public_key == key)
            ).first()
            if exists:
                conn.execute(
                    known_nodes.update()
                    .where(known_nodes.c.public_key == key)
                    .values(name=name, url=url)
                )
            else:
                conn.execute(
                    known_nodes.insert().values(
                        public_key=key, name=name, url=url, first_seen=self.now()
                    )
                )

    def close(self) -> None:
        self.client.close()


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def sync_header(more: bool, state: State) -> bytes:
    return canonical({"more": more, "authors": state["authors"]})
