"""Keeping every party's copy of a case whole: join, pull, push and peer status.

Sync is by author chains. A node tells a peer how far it holds each author's chain
(``have``: author → latest seq and id, a few bytes per party); the peer answers with
every event after those positions, in (depth, id) order and in batches, so parents
always arrive before children. The bytes and round trips grow with what is missing,
never with the history. Every event is verified before it is stored, and a batch is
stored whole or not at all.

Pushes follow the log (``accord.federation.push``): this module's ``deliver`` sends one
case's events to one peer and, when the peer answers that it lacks earlier events, sends
what its heads show it lacks. Pulls ask for fewer events after an answer was cut on the
way (``BatchSize``). The periodic ``sync`` pages through the cases, compares heads with
each peer in one request per page (``/federation/v1/heads``) and pulls only the cases
where the peer holds something this node lacks; every comparison is recorded, so
``accord peers`` can say how far behind each peer and case is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
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
from accord.federation.client import PeerClient, PeerError, check_peer_url, private_peers_allowed
from accord.federation.invites import InviteError, InviteLink, InviteStore
from accord.integrations.ssrf import UnsafeURL
from accord.node import Node
from accord.service.errors import Conflict, Forbidden, Invalid
from accord.service.negotiation import Actor, Negotiation
from accord.store.tables import cases as cases_table
from accord.store.tables import known_nodes, peer_sync

BATCH = 1000
log = logging.getLogger("accord.federation")
MAX_BACKOFF = timedelta(minutes=10)
PAGE = 500
"""Cases compared with a peer per heads request of the periodic sync."""
MAX_CUTS = 3
"""Cut answers in a row one pull retries at once, each asking for half as many events;
past that the pull fails (and backs off), and the next one starts from the smaller size."""
PUSH_BATCH = 1000
"""Events per push request (the receiver takes at most 2,000)."""
REPAIR_ROUNDS = 200


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
    asked: list[int] = field(default_factory=list)  # the batch size of each request
    we_lack: int | None = None  # after the pull: what the peer still held that we lack
    they_lack: int | None = None  # what we held that the peer lacked, by its heads


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
    we_lack: int | None = None
    they_lack: int | None = None
    compared_at: datetime | None = None


@dataclass
class Delivery:
    """What a peer acknowledged of one push (and of the events sent after it to fill
    what it lacked)."""

    case_id: str
    peer: str
    sent: int = 0
    stored: int = 0
    requests: int = 0
    repaired: int = 0  # earlier events it lacked, sent after it said so
    they_lack: int | None = None
    we_lack: int | None = None  # what its heads show it holds and this node lacks
    refused: str | None = None  # a definitive refusal (403/404): not retried


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


def targets(state: State, me: str) -> dict[str, str]:
    """Node key → URL of every other party node this node pushes the case to: the party
    nodes with a URL, and nodes invited by a pending ``party.add`` that name one."""
    found = {k: p["url"] for k, p in party_nodes(state).items() if k != me and p.get("url")}
    for proposal in state["proposals"].values():
        if proposal["state"] == "pending":
            for change in proposal["changes"]:
                party = change.get("party") or {}
                if change["op"] == "party.add" and party.get("node") and party.get("url"):
                    found.setdefault(party["node"], party["url"])
    found.pop(me, None)
    return found


def heads_lag(ours: dict[str, Any], theirs: dict[str, Any]) -> tuple[int, int]:
    """(we lack, they lack): events by chain position between two sets of heads
    (author → {"seq", "id"}); a fork at equal positions counts as nothing here."""

    def seq(heads: dict[str, Any], author: str) -> int:
        head = heads.get(author)
        value = head.get("seq", 0) if isinstance(head, dict) else 0
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    authors = set(ours) | set(theirs)
    we_lack = sum(max(0, seq(theirs, a) - seq(ours, a)) for a in authors)
    they_lack = sum(max(0, seq(ours, a) - seq(theirs, a)) for a in authors)
    return we_lack, they_lack


class BatchSize:
    """How many events to ask a peer for: halved when an answer is cut on the way,
    grown back towards the size that was cut (a binary search for what gets through),
    and, after many whole answers, allowed to try larger again."""

    GROW_AFTER = 4  # whole full answers before asking for more
    RELAX_AFTER = 64  # whole answers before a size that was cut may be tried again

    def __init__(self, top: int) -> None:
        self.top = top
        self.size = top
        self.ceiling = top + 1  # the smallest size known to be cut
        self._good = 0
        self._since_cut = 0

    def cut(self) -> None:
        self.ceiling = min(self.ceiling, self.size)
        self.size = max(1, self.size // 2)
        self._good = self._since_cut = 0

    def whole(self, full: bool) -> None:
        self._since_cut += 1
        if self._since_cut >= self.RELAX_AFTER:
            self.ceiling, self._since_cut = self.top + 1, 0
        if not full:
            return
        self._good += 1
        if self._good >= self.GROW_AFTER and self.size < self.top:
            self.size = min(self.top, max(self.size + 1, (self.size + self.ceiling) // 2))
            if self.size >= self.ceiling:
                self.size = max(1, self.ceiling - 1)
            self._good = 0


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
        allow_private_peers: bool | None = None,
    ) -> None:
        """``allow_private_peers``: call peers on private and loopback addresses (tests,
        local development); by default what ``ACCORD_ALLOW_PRIVATE_PEERS`` says, off
        unless set (``accord.federation.client``)."""
        self.node = node
        self.cases = node.cases
        self.negotiation = negotiation
        self.now = now
        self.invites = InviteStore(node.db, now=now)
        if allow_private_peers is None:
            allow_private_peers = private_peers_allowed()
        self.allow_private_peers = allow_private_peers
        self.client = PeerClient(
            node.key, now=now, transport=transport, allow_private=allow_private_peers
        )
        self.batch = batch
        self._sizes: dict[str, BatchSize] = {}
        self._sizes_lock = threading.Lock()

    def batch_size(self, peer: str) -> BatchSize:
        """The adaptive size of the batches asked of ``peer`` (per process)."""
        with self._sizes_lock:
            return self._sizes.setdefault(peer, BatchSize(self.batch))

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
            url = body["url"]
            try:  # the node will push to it and pull from it: never an internal address
                if not isinstance(url, str):
                    raise UnsafeURL("a joining node's URL is text")
                check_peer_url(url, allow_private=self.allow_private_peers)
            except UnsafeURL as exc:
                log.warning("join to case %s by %s refused: its URL: %s", case_id, sender, exc)
                raise Invalid(f"the joining node's URL is refused: {exc}", field="url") from exc
            new_party["url"] = url
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
        found, more = self._lacking(case_id, state, have, want or [], limit)
        return found, more, state

    def _lacking(
        self, case_id: str, state: State, have: dict[str, Any], want: list[str], limit: int
    ) -> tuple[list[Event], bool]:
        """The first ``limit`` events, in (depth, id) order, that a node holding ``have``
        (and missing ``want``) lacks, and whether there are more."""
        found: list[Event] = self.cases.get(case_id, want[:limit]) if want else []
        for author, head in state["authors"].items():
            theirs = have.get(author)
            seq = theirs.get("seq", 0) if isinstance(theirs, dict) else 0
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
                raise Invalid(f"have[{author}].seq must be a non-negative integer")
            if head["seq"] > seq:
                found.extend(self.cases.events_after(case_id, author, seq, limit=limit + 1))
        found = sorted({e.id: e for e in found}.values(), key=lambda e: e.key)
        return found[:limit], len(found) > limit

    def compare(self, requester: str, cases: dict[str, Any]) -> dict[str, Any]:
        """The heads request of a peer's periodic sync: for each case it names with its
        heads (at most ``PAGE``), what each side lacks — only the cases that differ, and
        only cases ``requester`` may read (the others are answered as ``unknown``, whether
        this node holds them or not)."""
        differ: dict[str, dict[str, int]] = {}
        unknown: list[str] = []
        for case_id, have in list(cases.items())[:PAGE]:
            state = self.cases.state(case_id) if isinstance(case_id, str) else None
            readable = state is not None and (
                requester in party_nodes(state) or requester in invited_nodes(state)
            )
            if state is None or not readable or not isinstance(have, dict):
                unknown.append(str(case_id))
                continue
            we_lack, you_lack = heads_lag(state["authors"], have)  # "you": the requester
            if we_lack or you_lack:
                differ[case_id] = {"you_lack": you_lack, "they_lack": we_lack}
        return {"cases": differ, "unknown": unknown}

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
        answer: dict[str, Any] = {
            "stored": len(result.stored),
            "duplicates": len(result.duplicates),
            "evidence": result.evidence,
            "rejected": rejected,
            "missing_parents": missing,
        }
        after = self.cases.state(case_id)  # the sender learns what this node still lacks
        answer["heads"] = after["authors"] if after else {}
        if missing:
            answer["missing"] = sorted({m for r in result.rejected for m in r.missing})[:1000]
        return answer

    # -- pulling and pushing -------------------------------------------------------

    def pull(self, case_id: str, peer: str, url: str) -> PullResult:
        """Fetch from ``peer`` everything of the case this node lacks, batch by batch.

        An answer cut on the way (a closed connection, a read timeout, a body that stops
        mid-line) is retried at once asking for half as many events, up to ``MAX_CUTS``
        times; the size that got through is remembered for the peer's next pulls."""
        result = PullResult(case_id, peer)
        want: list[str] = []
        size = self.batch_size(peer)
        cuts = 0
        header: dict[str, Any] = {}
        try:
            while True:
                state = self.cases.state(case_id)
                have = state["authors"] if state else {}
                limit = size.size
                request: dict[str, Any] = {"have": have, "limit": limit}
                if want:
                    request["want"] = want
                body = orjson.dumps(request)
                result.asked.append(limit)
                try:
                    data = self.client.post(f"{url}/federation/v1/cases/{case_id}/sync", body)
                    result.round_trips += 1
                    result.bytes_received += len(data)
                    header, events = self._parse_batch(data, case_id)
                except (PeerError, SyncError) as exc:
                    if isinstance(exc, PeerError):
                        if not exc.cut:
                            raise
                        result.round_trips += 1
                    cuts += 1
                    size.cut()
                    if cuts > MAX_CUTS or limit == 1:
                        raise
                    continue
                cuts = 0  # MAX_CUTS counts cuts in a row
                size.whole(full=len(events) >= limit)
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
        if result.error is None and isinstance(header.get("authors"), dict):
            state = self.cases.state(case_id)
            ours = state["authors"] if state else {}
            result.we_lack, result.they_lack = heads_lag(ours, header["authors"])
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

    def deliver(self, case_id: str, peer: str, url: str, lines: list[bytes]) -> Delivery:
        """Push one case's events (wire lines, in log order) to ``peer`` until it
        acknowledges them; when it answers that it lacks earlier events, send what its
        heads show it lacks, in (depth, id) order, until it lacks nothing of ours.

        Raises ``PeerError`` when the peer cannot be reached or fails (the caller retries
        later); a refusal of the case itself (403, 404) is returned in ``refused``. No
        database transaction is open during the requests."""
        outcome = Delivery(case_id, peer)
        target = f"{url}/federation/v1/cases/{case_id}/events"
        answer: dict[str, Any] = {}
        for start in range(0, len(lines), PUSH_BATCH):
            chunk = lines[start : start + PUSH_BATCH]
            try:
                answer = self._post_events(target, chunk)
            except PeerError as exc:
                if exc.status in (403, 404):
                    outcome.refused = str(exc)
                    return outcome
                raise
            outcome.sent += len(chunk)
            outcome.requests += 1
            outcome.stored += int(answer.get("stored", 0))
            if answer.get("missing_parents"):
                break  # what it lacks is sent below, this batch included
        rounds = 0
        need = bool(answer.get("missing_parents"))
        while need:
            rounds += 1
            heads = answer.get("heads")
            if not isinstance(heads, dict) or rounds > REPAIR_ROUNDS:
                raise PeerError(f"{url}: the peer lacks earlier events and says not which")
            state = self.cases.state(case_id)
            if state is None:
                break
            missing = [m for m in answer.get("missing", []) if isinstance(m, str)]
            lacking, more = self._lacking(case_id, state, heads, missing, PUSH_BATCH)
            if not lacking:
                break
            answer = self._post_events(target, [e.wire() for e in lacking])
            outcome.requests += 1
            outcome.repaired += len(lacking)
            outcome.stored += int(answer.get("stored", 0))
            if not answer.get("stored") and answer.get("missing_parents"):
                raise PeerError(f"{url}: the peer takes none of the events it lacks")
            need = bool(answer.get("missing_parents")) or more
        heads = answer.get("heads")
        state = self.cases.state(case_id)
        if isinstance(heads, dict) and state is not None:
            outcome.we_lack, outcome.they_lack = heads_lag(state["authors"], heads)
        return outcome

    def _post_events(self, target: str, lines: list[bytes]) -> dict[str, Any]:
        data = self.client.post(target, b"\n".join(lines) + b"\n", content_type="application/jsonl")
        try:
            answer = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise PeerError(f"{target}: the answer to a push is not JSON", cut=True) from exc
        if not isinstance(answer, dict):
            raise PeerError(f"{target}: the answer to a push is not an object")
        return answer

    def sync(self, case_id: str | None = None, *, force: bool = False) -> list[PullResult]:
        """Pull what this node lacks from every other party node that has a URL.

        One case: pull it from each of them. Every case: page through the cases
        (``PAGE`` at a time, however many), compare heads with each peer in one request
        per page, and pull only the cases where the peer holds events this node lacks.
        Returns the pulls, a result for each case where the peer lacks events of ours
        (``they_lack``), and the failures. A (peer, case) backing off after failures is
        left alone unless ``force``."""
        due = self._due()
        if case_id is not None:
            state = self.cases.state(case_id)
            if state is None:
                return []
            results = []
            for key, party in party_nodes(state).items():
                if key == self.node.key.public or not party.get("url"):
                    continue
                if not force and due.get((key, case_id), self.now()) > self.now():
                    continue  # backing off after failures
                results.append(self.pull(case_id, key, party["url"]))
            return results
        results = []
        failing: set[str] = set()
        for page in self._pages():
            results += self._sync_page(page, due, force, failing)
        return results

    def _pages(self) -> Iterator[list[tuple[str, State]]]:
        """Every case held, ``PAGE`` at a time, in case id order (keyset paging)."""
        after = ""
        while True:
            with self.node.db.read() as conn:
                rows = conn.execute(
                    sa.select(cases_table.c.case_id, cases_table.c.state)
                    .where(cases_table.c.case_id > after)
                    .order_by(cases_table.c.case_id)
                    .limit(PAGE)
                ).all()
            if not rows:
                return
            yield [(row.case_id, orjson.loads(row.state)) for row in rows]
            after = rows[-1].case_id

    def _sync_page(
        self,
        page: list[tuple[str, State]],
        due: dict[tuple[str, str], datetime],
        force: bool,
        failing: set[str],
    ) -> list[PullResult]:
        now, me = self.now(), self.node.key.public
        shared: dict[tuple[str, str], dict[str, State]] = {}
        for case_id, state in page:
            for key, party in party_nodes(state).items():
                if key == me or not party.get("url") or key in failing:
                    continue
                if not force and due.get((key, case_id), now) > now:
                    continue  # backing off after failures
                shared.setdefault((key, party["url"]), {})[case_id] = state
        results: list[PullResult] = []
        for (peer, url), states in shared.items():
            if peer in failing:
                continue
            body = orjson.dumps({"cases": {c: s["authors"] for c, s in states.items()}})
            try:
                answer = orjson.loads(self.client.post(f"{url}/federation/v1/heads", body))
                differ = answer["cases"]
                if not isinstance(differ, dict):
                    raise TypeError("cases")
            except PeerError as exc:
                if exc.status in (404, 405):  # a peer without heads requests: pull each
                    results += [self.pull(c, peer, url) for c in states]
                    continue
                failing.add(peer)
                for case_id in states:
                    failed = PullResult(case_id, peer, error=str(exc))
                    self._record(failed, url)
                    results.append(failed)
                continue
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                failing.add(peer)
                for case_id in states:
                    failed = PullResult(case_id, peer, error=f"{url}: unusable heads answer: {exc}")
                    self._record(failed, url)
                    results.append(failed)
                continue
            self._settled(peer, [c for c in states if c not in differ])
            for case_id, lag in differ.items():
                if case_id not in states or not isinstance(lag, dict):
                    continue
                if int(lag.get("you_lack", 0)) > 0:
                    results.append(self.pull(case_id, peer, url))
                else:
                    they_lack = int(lag.get("they_lack", 0))
                    self.record_lag(peer, url, case_id, we_lack=0, they_lack=they_lack)
                    results.append(PullResult(case_id, peer, we_lack=0, they_lack=they_lack))
        return results

    def record_lag(
        self, peer: str, url: str, case_id: str, *, we_lack: int | None, they_lack: int | None
    ) -> None:
        """Remember how far apart this node and ``peer`` were on a case just now. When
        neither lacks anything, the case's pull failures are over too: the peer answered
        and holds what we hold."""
        values: dict[str, Any] = {"url": url, "compared_at": self.now()}
        if we_lack == 0 and they_lack == 0:
            values.update(failures=0, last_error=None, next_attempt_at=None)
        if we_lack is not None:
            values["we_lack"] = we_lack
        if they_lack is not None:
            values["they_lack"] = they_lack
        where = (peer_sync.c.peer == peer, peer_sync.c.case_id == case_id)
        with self.node.db.write() as conn:
            if conn.execute(peer_sync.update().where(*where).values(**values)).rowcount:
                return
            row = {"failures": 0, "events_received": 0, "bytes_received": 0, **values}
            conn.execute(
                self.node.db.insert_or_ignore(peer_sync).values(peer=peer, case_id=case_id, **row)
            )

    def _settled(self, peer: str, case_ids: list[str]) -> None:
        """The heads of these cases were equal: neither side lacks anything (one write,
        and only when a row said otherwise)."""
        if not case_ids:
            return
        c = peer_sync.c
        with self.node.db.write() as conn:
            conn.execute(
                peer_sync.update()
                .where(
                    c.peer == peer,
                    c.case_id.in_(case_ids),
                    sa.or_(
                        sa.func.coalesce(c.we_lack, 0) != 0, sa.func.coalesce(c.they_lack, 0) != 0
                    ),
                )
                .values(we_lack=0, they_lack=0, compared_at=self.now())
            )

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
            if result.we_lack is not None:
                values.update(we_lack=result.we_lack, they_lack=result.they_lack, compared_at=now)
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
