"""Cases as negotiations: the commands a party gives, checked before they are signed.

The core's rules are the constitution every node enforces on receipt; this module is
the courteous clerk in front of it. It refuses, with an error naming the field or the
rule, what the rules would only record as evidence — a stale acceptance, a due time in
the past, a change to a term without a proposal — so this node never signs an event
it knows will not count.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from accord.core.bodies import SLUG, check_change
from accord.core.crypto import NodeKey, is_event_id
from accord.core.errors import AccordError, EventFormatError, RuleError, ValueFormatError
from accord.core.rules import describe_open_work
from accord.core.state import OpenWork, Proposal, State, open_work
from accord.core.timefmt import parse_time
from accord.core.values import check_value
from accord.service.errors import Conflict, Forbidden, Invalid, NotFound, StaleProposal
from accord.store.cases import CaseStore

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Actor:
    """Who is acting: a member of this node, or a hosted party through the portal."""

    member: str
    via: str
    party: str | None = None  # a hosted party this node acts for (portal only)
    session: str | None = None  # the hosted party's verified session reference

    @property
    def hosted(self) -> bool:
        return self.party is not None


@dataclass
class Outcome:
    """What a command changed: the case and the events it signed."""

    case_id: str
    event_ids: list[str] = field(default_factory=list)


class Negotiation:
    """The negotiation commands of one node."""

    def __init__(self, cases: CaseStore, key: NodeKey, *, now: Clock = utc_now) -> None:
        self.cases = cases
        self.key = key
        self.now = now
        self.listeners: list[Callable[[str, list[str]], None]] = []
        """Called with (case id, event ids) after every change, e.g. to push to peers."""

    # -- opening ---------------------------------------------------------------

    def open_case(
        self,
        actor: Actor,
        *,
        title: str,
        party_id: str,
        party_name: str,
        customer: dict[str, Any] | None = None,
        party_url: str | None = None,
        topics: Sequence[dict[str, str]] = (),
        template: str | None = None,
        conn: Connection | None = None,
    ) -> Outcome:
        """Open a case with this node's party and, optionally, a customer it hosts; with
        ``conn``, in the caller's transaction (its owner is named in the same commit), and
        the caller announces it after the commit."""
        body = self.opening(
            title=title,
            party_id=party_id,
            party_name=party_name,
            customer=customer,
            party_url=party_url,
            topics=topics,
            template=template,
        )
        event = self._write(actor, None, "case.opened", body, conn=conn)
        return Outcome(event.case, [event.id])

    def opening(
        self,
        *,
        title: str,
        party_id: str,
        party_name: str,
        customer: dict[str, Any] | None = None,
        party_url: str | None = None,
        topics: Sequence[dict[str, str]] = (),
        template: str | None = None,
    ) -> dict[str, Any]:
        """The body of a ``case.opened`` event for ``open_case`` (and channels' intake)."""
        _slug(party_id, "party_id")
        parties: list[dict[str, Any]] = [
            {"id": party_id, "name": party_name, "kind": "organisation", "node": self.key.public}
        ]
        if party_url:
            parties[0]["url"] = party_url
        if customer is not None:
            cid = customer.get("id", "customer")
            _slug(cid, "customer.id")
            if cid == party_id:
                raise Invalid("the customer needs its own party id", field="customer.id")
            parties.append(
                {
                    "id": cid,
                    "name": customer.get("name", ""),
                    "kind": customer.get("kind", "person"),
                    "hosted_by": self.key.public,
                }
            )
        body: dict[str, Any] = {"title": title, "nonce": secrets.token_hex(8), "parties": parties}
        if topics:
            body["topics"] = [{"topic": t["topic"], "title": t["title"]} for t in topics]
        if template:
            body["template"] = template
        return body

    # -- conversation and information ------------------------------------------

    def post_message(
        self,
        actor: Actor,
        case_id: str,
        text: str,
        *,
        topic: str | None = None,
        attachments: Sequence[dict[str, Any]] = (),
    ) -> Outcome:
        state = self._state(case_id)
        self._party(state, actor)
        body: dict[str, Any] = {"text": text}
        if topic is not None:
            if topic not in state["topics"]:
                raise NotFound(f"no topic {topic!r} in this case", field="topic")
            body["topic"] = topic
        if attachments:
            body["attachments"] = list(attachments)
        if not state["resolved"]:
            return self._one(actor, case_id, "message.posted", body)
        return self._write_many(
            actor,
            case_id,
            [("message.posted", body), ("case.reopened", {"reason": reopen_reason(actor)})],
        )

    def open_topic(self, actor: Actor, case_id: str, topic: str, title: str) -> Outcome:
        state = self._state(case_id)
        self._party(state, actor)
        _slug(topic, "topic")
        existing = state["topics"].get(topic)
        if existing is not None and existing["state"] == "open":
            raise Conflict(f"topic {topic!r} is already open", field="topic")
        return self._one(actor, case_id, "topic.opened", {"topic": topic, "title": title})

    def close_topic(self, actor: Actor, case_id: str, topic: str) -> Outcome:
        state = self._state(case_id)
        self._party(state, actor)
        existing = state["topics"].get(topic)
        if existing is None:
            raise NotFound(f"no topic {topic!r} in this case", field="topic")
        if existing["state"] == "closed":
            raise Conflict(f"topic {topic!r} is already closed", field="topic")
        return self._one(actor, case_id, "topic.closed", {"topic": topic})

    def set_info(
        self,
        actor: Actor,
        case_id: str,
        key: str,
        value: dict[str, Any],
        *,
        label: str | None = None,
    ) -> Outcome:
        """Share a piece of information (not an agreed term) with the other parties."""
        state = self._state(case_id)
        self._party(state, actor)
        _slug(key, "key")
        _value(value, "value")
        if key in state["terms"]["data"]:
            raise Conflict(
                f"data item {key!r} is part of the agreed terms; propose a change instead",
                field="key",
            )
        body: dict[str, Any] = {"key": key, "value": value}
        if label is not None:
            body["label"] = label
        return self._one(actor, case_id, "data.set", body)

    # -- proposals -------------------------------------------------------------

    def propose(
        self,
        actor: Actor,
        case_id: str,
        changes: Sequence[dict[str, Any]],
        *,
        base: int | None = None,
        note: str | None = None,
        counter_of: str | None = None,
    ) -> Outcome:
        """Propose changes to the terms, on the current agreement version by default."""
        state = self._state(case_id)
        self._party(state, actor)
        current = state["terms"]["version"]
        if base is None:
            base = current
        if base != current:
            raise StaleProposal(
                f"the proposal is based on v{base} but v{current} is the current agreement",
                field="base",
                details={"current_version": current},
            )
        if not changes:
            raise Invalid("a proposal changes at least one thing", field="changes")
        self._check_changes(state, changes)
        body: dict[str, Any] = {"base": base, "changes": list(changes)}
        if note:
            body["note"] = note
        if counter_of is not None:
            countered = self._proposal(state, counter_of)
            if countered["state"] != "pending":
                raise Conflict(
                    f"cannot counter a proposal that is {countered['state']}", field="proposal"
                )
            body["counter_of"] = counter_of
        return self._one(actor, case_id, "proposal.made", body)

    def counter(
        self,
        actor: Actor,
        case_id: str,
        proposal_id: str,
        changes: Sequence[dict[str, Any]],
        *,
        note: str | None = None,
    ) -> Outcome:
        return self.propose(actor, case_id, changes, note=note, counter_of=proposal_id)

    def accept(self, actor: Actor, case_id: str, proposal_id: str) -> Outcome:
        state = self._state(case_id)
        party = self._party(state, actor)
        proposal = self._pending(state, proposal_id)
        if party in proposal["accepted_by"]:
            raise Conflict(f"party {party!r} has already accepted this proposal", field="proposal")
        return self._one(actor, case_id, "proposal.accepted", {"proposal": proposal_id})

    def reject(
        self, actor: Actor, case_id: str, proposal_id: str, *, reason: str | None = None
    ) -> Outcome:
        state = self._state(case_id)
        party = self._party(state, actor)
        proposal = self._pending(state, proposal_id)
        if party in proposal["accepted_by"]:
            raise Conflict(
                f"party {party!r} has accepted this proposal; counter it instead", field="proposal"
            )
        body: dict[str, Any] = {"proposal": proposal_id}
        if reason:
            body["reason"] = reason
        return self._one(actor, case_id, "proposal.rejected", body)

    def withdraw(
        self, actor: Actor, case_id: str, proposal_id: str, *, reason: str | None = None
    ) -> Outcome:
        """The author party takes back its own open (or crossed) proposal."""
        state = self._state(case_id)
        party = self._party(state, actor)
        proposal = self._proposal(state, proposal_id)
        if proposal["by"] != party:
            raise Forbidden(
                f"only {proposal['by']}, who made the proposal, withdraws it", field="proposal"
            )
        if proposal["state"] not in ("pending", "stale"):
            raise Conflict(f"the proposal is {proposal['state']}", field="proposal")
        body: dict[str, Any] = {"proposal": proposal_id}
        if reason:
            body["reason"] = reason
        return self._one(actor, case_id, "proposal.withdrawn", body)

    def repropose(self, actor: Actor, case_id: str, proposal_id: str) -> Outcome:
        """Make a crossed proposal again on the current version: the same changes and
        note, by the same party, linked to the one it replaces (``rebase_of``)."""
        state = self._state(case_id)
        party = self._party(state, actor)
        proposal = self._proposal(state, proposal_id)
        current = state["terms"]["version"]
        if not crossed(proposal, current):
            raise Conflict(
                f"the proposal is {proposal['state']}; only a crossed proposal is proposed again",
                field="proposal",
            )
        if proposal["by"] != party:
            raise Forbidden(
                f"only {proposal['by']}, who made the proposal, proposes it again; "
                "make your own proposal instead",
                field="proposal",
            )
        if proposal.get("reproposed_as"):
            raise Conflict(
                f"the proposal was already proposed again as {proposal['reproposed_as']}",
                field="proposal",
            )
        self._check_changes(state, proposal["changes"])
        body: dict[str, Any] = {
            "base": current,
            "changes": list(proposal["changes"]),
            "rebase_of": proposal_id,
        }
        if proposal.get("note"):
            body["note"] = proposal["note"]
        return self._one(actor, case_id, "proposal.made", body)

    def commit(
        self, actor: Actor, case_id: str, activity: dict[str, Any], *, note: str | None = None
    ) -> Outcome:
        """Promise an activity this party owns (a callback, a task) at once, without
        waiting for the other parties: ``activity`` holds the fields of an
        ``activity.put`` change (``owner`` defaults to this party)."""
        state = self._state(case_id)
        party = self._party(state, actor)
        fields = {"owner": party, **activity}
        fields.pop("op", None)
        if fields["owner"] != party:
            raise Forbidden(
                "a party promises at once only what it does itself; propose an activity "
                "for another party",
                field="owner",
            )
        self._check_changes(state, [{"op": "activity.put", **fields}])
        if fields["activity"] in state["terms"]["activities"]:
            raise Conflict(
                f"activity {fields['activity']!r} is already agreed; propose a change instead",
                field="activity",
            )
        body = dict(fields)
        if note:
            body["note"] = note
        return self._one(actor, case_id, "activity.committed", body)

    # -- progress and closure --------------------------------------------------

    def report_progress(
        self,
        actor: Actor,
        case_id: str,
        activity: str,
        progress: str,
        *,
        note: str | None = None,
    ) -> Outcome:
        state = self._state(case_id)
        party = self._party(state, actor)
        agreed = state["terms"]["activities"].get(activity)
        if agreed is None:
            raise NotFound(f"no agreed activity {activity!r} in this case", field="activity")
        if agreed["owner"] != party:
            raise Forbidden(
                f"only the owner party ({agreed['owner']}) reports progress on {activity!r}",
                field="activity",
            )
        if progress not in ("in_progress", "done"):
            raise Invalid("state must be in_progress or done", field="state")
        if state["progress"][activity]["state"] == "done":
            raise Conflict(f"activity {activity!r} is already done", field="activity")
        body: dict[str, Any] = {"activity": activity, "state": progress}
        if note:
            body["note"] = note
        return self._one(actor, case_id, "activity.updated", body)

    def satisfied(
        self,
        actor: Actor,
        case_id: str,
        *,
        rating: int | None = None,
        note: str | None = None,
        reason: str | None = None,
    ) -> Outcome:
        """Say this party is satisfied. Refused while agreed activities or topics are
        open, unless ``reason`` says why the case closes anyway (recorded in the log)."""
        state = self._state(case_id)
        party = self._party(state, actor)
        if party in state["satisfied"]:
            raise Conflict(f"party {party!r} is already satisfied with this agreement")
        work = open_work(state)
        reason = reason.strip() if reason else None
        if (work["activities"] or work["topics"]) and not reason:
            raise Conflict(
                f"work is still open ({describe_open_work(work)}): finish it, or close "
                "anyway with a reason",
                field="reason",
                details={"open": open_work_details(state, work)},
            )
        body: dict[str, Any] = {"version": state["terms"]["version"]}
        if reason:
            body["reason"] = reason
        if rating is not None:
            if isinstance(rating, bool) or not 1 <= rating <= 5:
                raise Invalid("rating is 1 to 5", field="rating")
            body["rating"] = rating
        if note:
            body["note"] = note
        return self._one(actor, case_id, "party.satisfied", body)

    def reopen(self, actor: Actor, case_id: str, reason: str) -> Outcome:
        state = self._state(case_id)
        self._party(state, actor)
        if not state["resolved"]:
            raise Conflict("the case is not resolved; there is nothing to reopen")
        return self._one(actor, case_id, "case.reopened", {"reason": reason})

    def set_status(self, actor: Actor, case_id: str, label: str) -> Outcome:
        state = self._state(case_id)
        self._party(state, actor)
        return self._one(actor, case_id, "status.set", {"label": label})

    # -- helpers ---------------------------------------------------------------

    def state(self, case_id: str) -> State:
        return self._state(case_id)

    def party_of(self, state: State, actor: Actor) -> str:
        """The party ``actor`` speaks for in this case (Forbidden if none)."""
        return self._party(state, actor)

    def _state(self, case_id: str) -> State:
        if not is_event_id(case_id):
            raise NotFound(f"no case {case_id!r} on this node")
        state = self.cases.state(case_id)
        if state is None:
            raise NotFound(f"no case {case_id} on this node")
        return state

    def _party(self, state: State, actor: Actor) -> str:
        parties = state["parties"]
        if actor.party is not None:
            party = parties.get(actor.party)
            if party is None or party["hosted_by"] != self.key.public:
                raise Forbidden(f"this node does not host party {actor.party!r} in this case")
            if actor.via != "portal" or not actor.session:
                raise Forbidden("a hosted party acts only through a verified portal session")
            return actor.party
        for pid, party in parties.items():
            if party["node"] == self.key.public:
                return pid
        raise Forbidden("this node is not a party of the case")

    def _proposal(self, state: State, proposal_id: str) -> Proposal:
        proposal = state["proposals"].get(proposal_id)
        if proposal is None:
            raise NotFound(f"no proposal {proposal_id!r} in this case", field="proposal")
        return proposal

    def _pending(self, state: State, proposal_id: str) -> Proposal:
        proposal = self._proposal(state, proposal_id)
        current = state["terms"]["version"]
        if proposal["state"] == "stale" or (
            proposal["state"] == "pending" and proposal["base"] != current
        ):
            raise StaleProposal(
                f"the proposal was made on v{proposal['base']}, but v{current} has since been "
                "agreed; it can no longer be accepted. Propose it again on the current version.",
                field="proposal",
                details={
                    "proposal": proposal_id,
                    "base": proposal["base"],
                    "current_version": current,
                    "rebase": {"base": current, "changes": proposal["changes"], "counter_of": None},
                },
            )
        if proposal["state"] != "pending":
            raise Conflict(f"the proposal is {proposal['state']}", field="proposal")
        return proposal

    def _check_changes(self, state: State, changes: Sequence[dict[str, Any]]) -> None:
        parties = set(state["parties"])
        data = set(state["terms"]["data"])
        activities = set(state["terms"]["activities"])
        now = self.now()
        for i, change in enumerate(changes):
            where = f"changes[{i}]"
            try:
                check_change(change, where)
            except ValueFormatError as exc:
                raise Invalid(exc.message, field=exc.field) from exc
            except EventFormatError as exc:
                raise Invalid(str(exc), field=_field_of(str(exc), where)) from exc
            op = change["op"]
            if op == "activity.put":
                if change["owner"] not in parties:
                    raise Invalid(
                        f"owner {change['owner']!r} is not a party of the case",
                        field=f"{where}.owner",
                    )
                if "due" in change and parse_time(change["due"]) <= now:
                    raise Invalid("the due time is in the past", field=f"{where}.due")
                activities.add(change["activity"])
            elif op == "activity.remove":
                if change["activity"] not in activities:
                    raise Invalid(
                        f"no agreed activity {change['activity']!r} to remove",
                        field=f"{where}.activity",
                    )
                activities.discard(change["activity"])
            elif op == "data.put":
                data.add(change["key"])
            elif op == "data.remove":
                if change["key"] not in data:
                    raise Invalid(
                        f"no agreed data item {change['key']!r} to remove", field=f"{where}.key"
                    )
                data.discard(change["key"])
            elif op == "party.add":
                if change["party"]["id"] in parties:
                    raise Invalid(
                        f"{change['party']['id']!r} is already a party", field=f"{where}.party.id"
                    )
                parties.add(change["party"]["id"])
            elif op == "party.key" and change["party"] not in parties:
                raise Invalid(f"{change['party']!r} is not a party", field=f"{where}.party")

    def _write_many(
        self, actor: Actor, case_id: str, items: list[tuple[str, dict[str, Any]]]
    ) -> Outcome:
        """Author several events as ``actor`` in one transaction (a message and the
        reopening it causes)."""
        try:
            events = self.cases.create_many(
                self.key,
                case_id,
                items,
                member=actor.member,
                time=self.now(),
                via=actor.via,
                for_party=actor.party,
                session=actor.session,
            )
        except ValueFormatError as exc:
            raise Invalid(exc.message, field=exc.field) from exc
        except EventFormatError as exc:
            raise Invalid(str(exc), field=_field_of(str(exc), "body")) from exc
        except RuleError as exc:
            raise Conflict(exc.reason) from exc
        except AccordError as exc:
            raise Invalid(str(exc)) from exc
        ids = [e.id for e in events]
        self._changed(case_id, ids)
        return Outcome(case_id, ids)

    def _one(self, actor: Actor, case_id: str, type_: str, body: dict[str, Any]) -> Outcome:
        event = self._write(actor, case_id, type_, body)
        return Outcome(case_id, [event.id])

    def announce(self, case_id: str, event_ids: list[str]) -> None:
        """Tell the listeners about events written elsewhere (a channel's intake)."""
        self._changed(case_id, event_ids)

    def _changed(self, case_id: str, event_ids: list[str]) -> None:
        for listener in self.listeners:
            listener(case_id, event_ids)

    def _write(
        self,
        actor: Actor,
        case_id: str | None,
        type_: str,
        body: dict[str, Any],
        *,
        conn: Connection | None = None,
    ) -> Any:
        try:
            event = self.cases.create(
                self.key,
                case_id,
                type_,
                body,
                member=actor.member,
                time=self.now(),
                via=actor.via,
                for_party=actor.party,
                session=actor.session,
                conn=conn,
            )
        except ValueFormatError as exc:
            raise Invalid(exc.message, field=exc.field) from exc
        except EventFormatError as exc:
            raise Invalid(str(exc), field=_field_of(str(exc), "body")) from exc
        except RuleError as exc:  # the case moved on between our check and the write
            raise Conflict(exc.reason) from exc
        except AccordError as exc:
            raise Invalid(str(exc)) from exc
        if conn is None:  # in the caller's transaction: the caller announces after commit
            self._changed(event.case, [event.id])
        return event


def reopen_reason(actor: Actor, channel: str | None = None) -> str:
    """The reason a ``case.reopened`` gives when a message to a resolved case reopens it."""
    return f"{actor.member} wrote on the resolved case (via {channel or actor.via})"


def crossed(proposal: Mapping[str, Any], current: int) -> bool:
    """Whether another agreement crossed the proposal: it is stale, or still pending on
    an older version than ``current``."""
    was_crossed: bool = proposal["state"] == "stale" or (
        proposal["state"] == "pending" and proposal["base"] != current
    )
    return was_crossed


def open_work_details(state: State, work: OpenWork) -> dict[str, Any]:
    """The open activities (with title, owner and state) and topics (with title)."""
    activities = state["terms"]["activities"]
    return {
        "activities": [
            {
                "activity": aid,
                "title": activities[aid]["title"],
                "owner": activities[aid]["owner"],
                "state": state["progress"][aid]["state"],
            }
            for aid in work["activities"]
        ],
        "topics": [{"topic": t, "title": state["topics"][t]["title"]} for t in work["topics"]],
    }


def _slug(value: Any, name: str) -> None:
    if not isinstance(value, str) or not SLUG.fullmatch(value):
        raise Invalid("must be a short id of a-z, 0-9, '.', '_' or '-'", field=name)


def _value(value: Any, name: str) -> None:
    try:
        check_value(value, name)
    except ValueFormatError as exc:
        raise Invalid(exc.message, field=exc.field) from exc


def _field_of(message: str, default: str) -> str:
    """The dotted path at the start of a core shape error ("body.title must …")."""
    head = message.split(" ", 1)[0].rstrip(":")
    return head if head and (head.startswith(("body", "changes")) or "." in head) else default
