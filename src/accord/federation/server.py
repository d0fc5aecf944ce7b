"""The endpoints other nodes call, under ``/federation/v1``.

Every request but ``GET /federation/v1/node`` (public identity) is signed by the
sending node (see ``signing``); the verified key decides what it may read or push.
Bodies are capped, pushes rate-limited per node, and everything a peer sends is
verified event by event before it is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from accord.core.crypto import fingerprint
from accord.federation.signing import (
    DbNonceStore,
    SignatureExpired,
    SignatureInvalid,
    SignatureMissing,
    SignatureReplayed,
    verify_request,
)
from accord.federation.sync import PAGE, Federation, sync_header
from accord.ops.ratelimit import RateLimiter

# -- what the federation endpoints answer (their schemas in /openapi.json) -----------------
# Exactly these fields are sent (extra="forbid" when the server checks its answer);
# the published schemas stay open to fields a later version adds.


def _open_to_additions(schema: dict[str, Any]) -> None:
    schema.pop("additionalProperties", None)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_open_to_additions)


class NodeIdentity(_Out):
    key: str = Field(description="The node's Ed25519 public key.")
    fingerprint: str
    name: str
    url: str | None


class Joined(_Out):
    case: str
    proposal: str = Field(description="The event proposing the joining party.")
    agreed: bool
    node: NodeRef = Field(description="The inviting node.")


class NodeRef(_Out):
    key: str
    name: str
    url: str | None


class Lag(_Out):
    you_lack: int
    they_lack: int


class HeadsCompared(_Out):
    cases: dict[str, Lag] = Field(description="The cases whose heads differ, by case id.")
    unknown: list[str]


class Rejected(_Out):
    event: str | None = None
    error: str
    message: str


class PushReceived(_Out):
    stored: int
    duplicates: int
    evidence: Any = Field(description="Equivocation evidence found in the pushed events.")
    rejected: list[Rejected]
    missing_parents: bool
    heads: dict[str, Any] = Field(description="This node's heads by author after the push.")
    missing: list[str] | None = Field(
        None, description="Events this node lacks (present when missing_parents)."
    )


SYNC: dict[str, Any] = {
    "type": "string",
    "description": "A header line, then one signed event per line (JSON lines).",
}


MAX_BODY = 8 * 1024 * 1024
MAX_EVENTS_PER_PUSH = 2000
PUSH_EVENTS_PER_MINUTE = 20_000
"""The events a peer may push a minute (a token bucket per peer, ``accord.ops.ratelimit``)."""


def addressed_url(public_url: str | None, request: Request) -> str:
    """The URL the sender signed: this node's public URL with the raw path and query —
    behind a reverse proxy, the URL the application sees is not the one addressed."""
    if not public_url:
        return str(request.url)
    target = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    query = request.scope.get("query_string", b"").decode("latin-1")
    base = public_url.rstrip("/")
    return f"{base}{target}" + (f"?{query}" if query else "")


def federation_router(
    federation: Federation,
    *,
    now: Callable[[], Any],
    on_missing: Callable[[str, str], None],
    rate_limit: RateLimiter | None = None,
    on_heard: Callable[[str], None] | None = None,
) -> APIRouter:
    """``on_missing(case_id, sender)``: a push lacked parents; pull from the sender.
    ``on_heard(sender)``: a peer's signed request arrived — it is up again, so pushes to
    it that were waiting out a backoff may go now."""
    router = APIRouter(prefix="/federation/v1", tags=["federation"])
    nonces = DbNonceStore(federation.node.db)
    limiter = rate_limit or RateLimiter(PUSH_EVENTS_PER_MINUTE)
    node = federation.node

    def addressed(request: Request) -> str:
        return addressed_url(node.url, request)

    async def signed(request: Request) -> tuple[str, bytes]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            raise HTTPException(413, detail=f"a request body is at most {MAX_BODY} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise HTTPException(413, detail=f"a request body is at most {MAX_BODY} bytes")
        try:
            sender = verify_request(
                request.method, addressed(request), request.headers, body, now=now(), nonces=nonces
            )
        except (SignatureMissing, SignatureInvalid, SignatureExpired, SignatureReplayed) as exc:
            raise HTTPException(401, detail=f"{type(exc).__name__}: {exc}") from exc
        if on_heard is not None:
            on_heard(sender)
        return sender, body

    @router.get("/node", summary="This node's public identity", response_model=NodeIdentity)
    def identity() -> dict[str, Any]:
        return {
            "key": node.key.public,
            "fingerprint": fingerprint(node.key.public),
            "name": node.name,
            "url": node.url,
        }

    @router.get(
        "/invites",
        response_class=PlainTextResponse,
        summary="What to do with an invitation link",
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def invite_page() -> str:
        return (
            "This is an invitation into a case on an Accord node.\n"
            "Join it from your own node with:  accord join '<this whole link>'\n"
        )

    @router.post(
        "/join", summary="Present an invitation: become a proposed party", response_model=Joined
    )
    async def join(request: Request) -> Any:
        sender, body = await signed(request)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise HTTPException(400, detail="the body is not JSON") from exc
        if not isinstance(payload, dict):
            raise HTTPException(400, detail="the body is a JSON object")
        return federation.accept_join(sender, payload)

    @router.post(
        "/cases/{case_id}/sync",
        summary="The events a peer lacks, given its heads",
        response_class=Response,
        responses={200: {"content": {"application/jsonl": {"schema": SYNC}}}},
    )
    async def sync(case_id: str, request: Request) -> Response:
        sender, body = await signed(request)
        try:
            payload = orjson.loads(body)
            have, limit = payload["have"], int(payload.get("limit", 1000))
            want = payload.get("want", [])
            if not isinstance(have, dict) or not isinstance(want, list):
                raise TypeError("have")
            if not all(isinstance(w, str) for w in want):
                raise TypeError("want")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise HTTPException(400, detail='the body is {"have": {…}, "limit": n}') from exc
        events, more, state = federation.missing_for(case_id, sender, have, limit, want)
        lines = [sync_header(more, state), *(e.wire() for e in events)]
        return Response(b"\n".join(lines) + b"\n", media_type="application/jsonl")

    @router.post(
        "/heads",
        summary="Which of these cases differ, given the peer's heads",
        response_model=HeadsCompared,
    )
    async def heads(request: Request) -> Any:
        sender, body = await signed(request)
        try:
            payload = orjson.loads(body)
            cases = payload["cases"]
            if not isinstance(cases, dict):
                raise TypeError("cases")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise HTTPException(400, detail='the body is {"cases": {case id: heads}}') from exc
        if len(cases) > PAGE:
            raise HTTPException(413, detail=f"at most {PAGE} cases per request")
        return federation.compare(sender, cases)

    @router.post(
        "/cases/{case_id}/events",
        summary="Receive events pushed by a party node",
        response_model=PushReceived,
        response_model_exclude_unset=True,  # missing: only when some parents are missing
    )
    async def push(case_id: str, request: Request) -> Any:
        sender, body = await signed(request)
        lines = [line for line in body.split(b"\n") if line.strip()]
        if len(lines) > MAX_EVENTS_PER_PUSH:
            raise HTTPException(413, detail=f"at most {MAX_EVENTS_PER_PUSH} events per push")
        if len(lines) > limiter.burst:
            raise HTTPException(
                413,
                detail=f"this node accepts at most {limiter.burst} events a minute "
                "from a peer; push fewer at a time",
            )
        wait = limiter.take(sender, len(lines))
        if wait:
            return JSONResponse(
                {"detail": "too many events from your node; slow down"},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        outcome = federation.receive(sender, case_id, lines)
        if outcome["missing_parents"]:
            on_missing(case_id, sender)
        return outcome

    return router
