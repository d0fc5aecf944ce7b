"""Issue 19, item 8: when this node learns that an agreement some node showed as reached did
not stand (the state's ``superseded``), the case says so and the parties are told — the
owner by a notice, the email customer by one mail — once each, however often the
followers pass over the case and whichever later batch carries the news.

The fold that produces a ``superseded`` entry is tested in tests/core (properties) and
tests/service/test_negotiation_work.py (three stores through a partition); here the entry
is given to the followers as the fold would list it, so what is checked is the telling."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from accord.core.events import Event
from accord.service.followers import SUPERSEDED, CustomerNotices, MemberNotices
from accord.service.negotiation import Actor
from accord.store.tables import notifications

from .conftest import MailDesk, mail


def _entry(proposal: str) -> dict[str, Any]:
    return {
        "proposal": proposal,
        "version": 2,
        "by": "sha256:" + "b" * 64,
        "state": "stale",
        "acceptances": {"northwind-broadband": "sha256:" + "c" * 64},
        "withdrawn_by": {"fibrefix": "sha256:" + "d" * 64},
        "learnt": "sha256:" + "e" * 64,  # an event of an earlier batch (a re-fold found it)
        "reason": "fibrefix's later acceptance withdrew its acceptance of this proposal",
    }


def test_owner_and_email_customer_are_told_once_of_an_agreement_that_did_not_stand(
    desk: MailDesk,
) -> None:
    receipt = desk.receive(mail())
    case_id = receipt.case_id
    services = desk.services
    tom = Actor(member="Tom Baker", via="web")
    made = services.negotiation.propose(
        tom,
        case_id,
        [{"op": "data.put", "key": "credit", "value": {"type": "text", "value": "£25"}}],
    )
    [proposal] = [e for e in services.node.cases.events(case_id) if e.id == made.event_ids[0]]
    owner = services.ownership.owner(case_id)
    assert owner is not None

    state = services.node.cases.state(case_id)
    assert state is not None and state["superseded"] == []
    state["superseded"] = [_entry("sha256:" + "a" * 64)]
    members = MemberNotices(services.ownership, services.node.cases, services.node.key.public)
    customers = CustomerNotices(services.mail)

    def told() -> list[str]:
        with services.node.db.read() as conn:
            return list(
                conn.execute(
                    sa.select(notifications.c.text).where(
                        notifications.c.case_id == case_id, notifications.c.kind == SUPERSEDED
                    )
                ).scalars()
            )

    batch: list[Event] = [proposal]
    for _ in range(2):  # a second pass (or a later proposal event) tells nobody again
        with services.node.db.write() as conn:
            members.handle(conn, case_id, batch, state)
            customers.handle(conn, case_id, batch, state)
    [notice] = told()
    assert "version 2" in notice and "did not stand" in notice
    assert "fibrefix's later acceptance" in notice
    corrections = [m for m in desk.outbound() if m.kind == "superseded"]
    assert len(corrections) == 1
    assert corrections[0].recipients.count("priya@example.com") == 1
    text = desk.raw(corrections[0]) if corrections[0].raw_sha256 else corrections[0].body
    assert b"did not stand" in text and b"/portal/" in text

    # a second entry, learnt later, is told too — and only it
    state["superseded"].append(_entry("sha256:" + "f" * 64))
    with services.node.db.write() as conn:
        members.handle(conn, case_id, batch, state)
        customers.handle(conn, case_id, batch, state)
    assert len(told()) == 2
    assert len([m for m in desk.outbound() if m.kind == "superseded"]) == 2

    # a batch with no proposal event does not look (a message cannot supersede anything)
    state["superseded"].append(_entry("sha256:" + "9" * 64))
    posted = services.negotiation.post_message(tom, case_id, "On it.")
    [message] = [e for e in services.node.cases.events(case_id) if e.id == posted.event_ids[0]]
    with services.node.db.write() as conn:
        members.handle(conn, case_id, [message], state)
        customers.handle(conn, case_id, [message], state)
    assert len(told()) == 2


def test_the_workspace_says_so() -> None:
    """The case page lists the agreement that did not stand, with the reason."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    import accord.web

    templates = accord.web.__file__.rsplit("/", 1)[0] + "/templates"
    env = Environment(loader=FileSystemLoader(templates), autoescape=select_autoescape())
    env.globals.update(
        when=lambda *a, **k: "", format_value=str, _=lambda s, **k: s % k if k else s
    )
    state = {
        "parties": {},
        "satisfied": [],
        "terms": {"version": 0, "data": {}},
        "agreements": [],
        "resolved": False,
        "superseded": [_entry("sha256:" + "a" * 64)],
    }
    html = env.get_template("_agreement.html").render(
        state=state, accepted=[], zone=None, base="/cases/x", swim=""
    )
    assert "An agreement did not stand." in html
    assert "fibrefix&#39;s later acceptance" in html and "Version 2" in html
