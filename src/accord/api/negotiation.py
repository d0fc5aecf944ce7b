"""The negotiation endpoints, written once and mounted twice.

Members reach them at ``/api/v1/cases/{case_id}/…`` (token or session, with scopes);
a customer with a magic link reaches the same ones at ``/api/v1/portal/…``, acting as
their hosted party. Only the ``Context`` differs: who acts, on which case.

The case itself (the hottest read) takes the context from ``Contexts.now`` inside its own
one hop to the thread pool, authentication and read together; the other endpoints depend
on ``read`` and ``write``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from accord.api.models import (
    CommitIn,
    CounterIn,
    InfoIn,
    MessageIn,
    ProgressIn,
    ProposalIn,
    RejectIn,
    ReopenIn,
    SatisfiedIn,
    StatusIn,
    TopicIn,
    WithdrawIn,
)
from accord.api.responses import BUNDLE, CaseView, Changed, EventSummary
from accord.core.bundle import write_bundle
from accord.core.crypto import is_event_id
from accord.core.events import Event
from accord.core.state import State
from accord.service.errors import NotFound
from accord.service.negotiation import Actor, Negotiation, Outcome
from accord.service.views import case_view, event_summary
from accord.store.database import Database


@dataclass(frozen=True)
class Context:
    """Who acts, on which case, through which service."""

    actor: Actor
    case_id: str
    negotiation: Negotiation


def _state_and_timeline(ctx: Context, limit: int) -> tuple[State, list[Event]]:
    """The case's state and latest events (404 as ``Negotiation.state`` says it)."""
    if not is_event_id(ctx.case_id):
        raise NotFound(f"no case {ctx.case_id!r} on this node")
    found = ctx.negotiation.cases.view(ctx.case_id, limit=limit)
    if found is None:
        raise NotFound(f"no case {ctx.case_id} on this node")
    return found


@dataclass(frozen=True)
class Contexts:
    """Where a mount's endpoints get their ``Context``.

    ``read`` and ``write`` are FastAPI dependencies. ``now`` builds the read context
    synchronously from the request, for an ``async`` endpoint that authenticates and
    reads in one hop to the thread pool: FastAPI gives each synchronous dependency and
    endpoint a hop of its own, and the profile of case reads put a third of a worker's
    time in those hops (benchmarks/RESULTS.md). ``params`` declares the mount's path
    parameters for such an endpoint, which depends on nothing else; ``db`` is where it
    reads."""

    read: Callable[..., Context | Awaitable[Context]]
    write: Callable[..., Context | Awaitable[Context]]
    now: Callable[[Request], Context]
    params: Callable[..., Awaitable[None]]
    db: Database


def changed(outcome: Outcome) -> dict[str, Any]:
    return {"case": outcome.case_id, "events": outcome.event_ids}


CHANGED = {"description": "The case and the ids of the events this change signed."}


def add_negotiation_routes(router: APIRouter, contexts: Contexts) -> None:
    """Register every negotiation endpoint on ``router`` with the given contexts."""
    read, write = contexts.read, contexts.write

    @router.get(
        "",
        summary="The case: agreement, open proposals, activities, timeline",
        responses={200: {"model": CaseView, "description": "The case."}},
    )
    async def show(
        request: Request,
        _params: None = Depends(contexts.params),
        limit: int = Query(50, ge=1, le=500, description="Timeline length."),
    ) -> Any:
        # The hottest read (benchmarks/case_reads.py): who asks and the case in one hop to
        # the thread pool, the state and the timeline in one statement, the answer
        # encoded by orjson straight from the view.
        def answer() -> bytes:
            with contexts.db.reading():  # the grant's check and the case: one connection
                state, timeline = _state_and_timeline(contexts.now(request), limit)
            return orjson.dumps(case_view(state, timeline))

        return Response(await run_in_threadpool(answer), media_type="application/json")

    @router.get(
        "/events",
        summary="The latest events, newest first",
        response_model=list[EventSummary],
        response_model_exclude_unset=True,  # an author's via only when the event has one
    )
    def events(ctx: Context = Depends(read), limit: int = Query(100, ge=1, le=1000)) -> Any:
        n = ctx.negotiation
        state = n.state(ctx.case_id)
        return [event_summary(state, e) for e in n.cases.timeline(ctx.case_id, limit=limit)]

    @router.get(
        "/bundle",
        summary="The signed case bundle (verify offline with accord verify)",
        response_class=Response,
        responses={200: {"content": {"application/jsonl": {"schema": BUNDLE}}}},
    )
    def bundle(ctx: Context = Depends(read)) -> Response:
        n = ctx.negotiation
        # where a read replica may serve it, for a member (who sees their own writes); a
        # customer through the portal has no mark to wait for: the primary
        exported = n.cases.export(ctx.case_id, replica=not ctx.actor.hosted)
        if exported is None:
            raise NotFound(f"no case {ctx.case_id} on this node")
        state, events = exported
        data = write_bundle(ctx.case_id, events, state, exported_by=n.key.public)
        name = f"accord-case-{ctx.case_id[7:19]}.jsonl"
        return Response(
            data,
            media_type="application/jsonl",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @router.post(
        "/messages",
        status_code=201,
        summary="Post a message to the other parties",
        response_model=Changed,
        responses={201: CHANGED},
    )
    def post_message(body: MessageIn, ctx: Context = Depends(write)) -> Any:
        return changed(
            ctx.negotiation.post_message(ctx.actor, ctx.case_id, body.text, topic=body.topic)
        )

    @router.post(
        "/topics",
        status_code=201,
        summary="Open a topic",
        response_model=Changed,
        responses={201: CHANGED},
    )
    def open_topic(body: TopicIn, ctx: Context = Depends(write)) -> Any:
        return changed(ctx.negotiation.open_topic(ctx.actor, ctx.case_id, body.topic, body.title))

    @router.post(
        "/topics/{topic}/close",
        summary="Close a topic",
        response_model=Changed,
        responses={200: CHANGED},
    )
    def close_topic(topic: str, ctx: Context = Depends(write)) -> Any:
        return changed(ctx.negotiation.close_topic(ctx.actor, ctx.case_id, topic))

    @router.put(
        "/info/{key}",
        summary="Share a data item that is not an agreed term",
        response_model=Changed,
        responses={200: CHANGED},
    )
    def set_info(key: str, body: InfoIn, ctx: Context = Depends(write)) -> Any:
        return changed(
            ctx.negotiation.set_info(ctx.actor, ctx.case_id, key, body.value, label=body.label)
        )

    @router.post(
        "/proposals",
        status_code=201,
        summary="Propose changes to the terms",
        response_model=Changed,
        responses={201: CHANGED},
    )
    def propose(body: ProposalIn, ctx: Context = Depends(write)) -> Any:
        return changed(
            ctx.negotiation.propose(
                ctx.actor, ctx.case_id, body.changes, base=body.base, note=body.note
            )
        )

    @router.post(
        "/proposals/{proposal_id}/accept",
        summary="Accept a proposal for your party",
        response_model=Changed,
        responses={200: CHANGED},
    )
    def accept(proposal_id: str, ctx: Context = Depends(write)) -> Any:
        return changed(ctx.negotiation.accept(ctx.actor, ctx.case_id, proposal_id))

    @router.post(
        "/proposals/{proposal_id}/reject",
        summary="Reject a proposal",
        response_model=Changed,
        responses={200: CHANGED},
    )
    def reject(proposal_id: str, body: RejectIn, ctx: Context = Depends(write)) -> Any:
        return changed(
            ctx.negotiation.reject(ctx.actor, ctx.case_id, proposal_id, reason=body.reason)
        )

    @router.post(
        "/proposals/{proposal_id}/counter",
        status_code=201,
        summary="Counter a proposal with one of your own",
        response_model=Changed,
        responses={201: CHANGED},
    )
    def counter(proposal_id: str, body: CounterIn, ctx: Context = Depends(write)) -> Any:
        return changed(
            ctx.negotiation.counter(
                ctx.actor, ctx.case_id, proposal_id, body.changes, note=body.note
            )
        )

    @router.post(
        "/proposals/{proposal_id}/withdraw",
        summary="Withdraw your party's own open (or crossed) proposal",
        response_model=Changed,
        responses={200: CHANGED},
    )
    def withdraw(proposal_id: str, body: WithdrawIn, ctx: Context = Depends(write)) -> Any:
        return changed(
            ctx.negotiation.withdraw(ctx.actor, ctx.case_id, proposal_id, reason=body.reason)
        )

    @router.post(
        "/proposals/{proposal_id}/repropose",
        status_code=201,
        summary="Propose a crossed proposal again on the current version",
        description="The same changes and note, by the same party, linked to the crossed "
        "one (only its author may). A proposal is crossed when another was agreed on its "
        "base; the case lists them under crossed_proposals.",
        response_model=Changed,
        responses={201: CHANGED},
    )
    def repropose(proposal_id: str, ctx: Context = Depends(write)) -> Any:
        return changed(ctx.negotiation.repropose(ctx.actor, ctx.case_id, proposal_id))

    @router.post(
        "/activities",
        status_code=201,
        summary="Promise an activity your party owns, at once",
        description="A callback or task your own party will do, agreed without waiting for "
        "the others (activity.committed); its timers start now. Changing it later is a "
        "proposal like any other.",
        response_model=Changed,
        responses={201: CHANGED},
    )
    def commit(body: CommitIn, ctx: Context = Depends(write)) -> Any:
        fields = body.model_dump(exclude_none=True, exclude={"note"})
        return changed(ctx.negotiation.commit(ctx.actor, ctx.case_id, fields, note=body.note))

    @router.post(
        "/activities/{activity}/progress",
        summary="Report progress on your activity",
        response_model=Changed,
        responses={200: CHANGED},
    )
    def progress(activity: str, body: ProgressIn, ctx: Context = Depends(write)) -> Any:
        return changed(
            ctx.negotiation.report_progress(
                ctx.actor, ctx.case_id, activity, body.state, note=body.note
            )
        )

    @router.post(
        "/satisfied",
        summary="Say your party is satisfied with the agreement",
        response_model=Changed,
        responses={200: CHANGED},
    )
    def satisfied(body: SatisfiedIn, ctx: Context = Depends(write)) -> Any:
        return changed(
            ctx.negotiation.satisfied(
                ctx.actor, ctx.case_id, rating=body.rating, note=body.note, reason=body.reason
            )
        )

    @router.post(
        "/reopen",
        summary="Reopen a resolved case",
        response_model=Changed,
        responses={200: CHANGED},
    )
    def reopen(body: ReopenIn, ctx: Context = Depends(write)) -> Any:
        return changed(ctx.negotiation.reopen(ctx.actor, ctx.case_id, body.reason))

    @router.put(
        "/status",
        summary="Set the case's status label",
        response_model=Changed,
        responses={200: CHANGED},
    )
    def status(body: StatusIn, ctx: Context = Depends(write)) -> Any:
        return changed(ctx.negotiation.set_status(ctx.actor, ctx.case_id, body.label))
