"""The REST endpoints for templates, metrics, targets and comparisons, installed on the
application by ``install``.

JSON under ``/api/v1`` (``templates``, ``metrics``, ``targets``, ``compare``, case marks).
Reading needs ``cases:read``; marking a case ``cases:write``; defining templates and
targets ``workflows:admin``. The pages that show them, Outcomes (``/dashboard``) and
Compare (``/compare``), are the web app's (``accord.web.outcomes``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi import Path as InPath
from fastapi.responses import PlainTextResponse, Response
from pydantic import Field

from accord.api.auth import Principal, require
from accord.api.models import Body as Model
from accord.api.models import CustomerIn
from accord.api.responses import (
    AppliedTemplate,
    Board,
    CaseFactsOut,
    ComparisonOut,
    MarkMade,
    OpenedFromTemplate,
    TargetOut,
    TargetStanding,
    TemplateDiff,
    TemplateOut,
    TemplateVersion,
)
from accord.outcomes.figures import (
    Dashboard,
    Outcomes,
    comparison_json,
    figure_json,
    filter_from,
)
from accord.outcomes.measures import METRICS, STATS
from accord.outcomes.store import Filter
from accord.service.errors import Invalid
from accord.service.negotiation import Actor
from accord.templates.opening import CaseTemplates
from accord.templates.spec import TemplateError, diff_specs, parse_ref
from accord.templates.store import TemplateStore, Version

if TYPE_CHECKING:
    from accord.wiring import Services

TargetId = Annotated[int, InPath(ge=1, le=2**31 - 1)]
"""A target's id: beyond the column's range is a 422, never the database's overflow."""
log = logging.getLogger(__name__)


class TemplateIn(Model):
    text: str = Field(max_length=200_000, description="The template file's text (YAML or JSON).")


class FromTemplateIn(Model):
    title: str = Field(max_length=300)
    customer: CustomerIn | None = Field(None, description="A customer this node hosts.")
    version: int | None = Field(
        None, ge=1, le=999_999, description="A version (default: the latest)."
    )


class MarkIn(Model):
    kind: str = Field(pattern="^(identify|repeat|rating)$")
    note: str | None = Field(None, max_length=2000)
    value: int | None = Field(None, ge=1, le=5, description="The rating, for kind rating.")
    party: str | None = Field(None, max_length=64, description="Whose rating.")


class TargetIn(Model):
    name: str = Field(min_length=1, max_length=200)
    metric: str = Field(max_length=32, examples=list(METRICS))
    stat: str | None = Field(None, max_length=16, examples=list(STATS))
    op: str = Field(pattern="^(<=|>=)$")
    threshold: float = Field(ge=0, le=1e9)
    owner: str | None = Field(None, max_length=64, description="Username of its owner.")
    template: str | None = Field(None, max_length=64)


class OwnerIn(Model):
    owner: str = Field(max_length=64)


def install(app: FastAPI, services: Services, now: Callable[[], datetime]) -> Outcomes:
    """Add the endpoints to ``app`` (``services``: ``accord.api.app.Services``); the pages
    are the web app's (``accord.web.outcomes``), which take the ``Outcomes`` made here."""
    node = services.node
    outcomes = Outcomes(node.db, node.key.public, now=now)
    templates = CaseTemplates(
        TemplateStore(node.db, now=now), services.negotiation, services.ownership
    )
    app.state.outcomes = outcomes
    app.state.templates = templates

    app.include_router(_template_routes(services, templates), prefix="/api/v1", tags=["templates"])
    app.include_router(_metric_routes(outcomes), prefix="/api/v1", tags=["metrics"])
    return outcomes


def _version_json(v: Version) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "created_at": v.created_at.isoformat(),
        "created_by": v.created_by,
        "spec": v.spec.data,
    }


def _template_routes(services: Services, templates: CaseTemplates) -> APIRouter:
    router = APIRouter()
    reader, writer = require("cases:read"), require("cases:write")
    admin = require("workflows:admin")

    @router.get(
        "/templates",
        summary="Templates (case types) and their versions",
        response_model=list[TemplateOut],
    )
    def list_templates(_who: Principal = Depends(reader)) -> Any:
        return templates.store.list()

    @router.get(
        "/templates/{ref}",
        summary="One version of a template (name or name@vN)",
        response_model=TemplateVersion,
    )
    def get_template(ref: str, _who: Principal = Depends(reader)) -> Any:
        name, version = _ref(ref)
        return _version_json(templates.store.get(name, version))

    @router.get(
        "/templates/{ref}/yaml",
        summary="A template version as a YAML file",
        response_class=PlainTextResponse,
    )
    def export_template(ref: str, _who: Principal = Depends(reader)) -> Any:
        name, version = _ref(ref)
        v = templates.store.get(name, version)
        return PlainTextResponse(v.spec.to_yaml(v.version), media_type="application/yaml")

    @router.get(
        "/templates/{name}/diff",
        summary="What changed between two versions",
        response_model=TemplateDiff,
    )
    def diff_template(
        name: str,
        a: int = Query(ge=1, le=1_000_000),
        b: int = Query(ge=1, le=1_000_000),
        _who: Principal = Depends(reader),
    ) -> Any:
        old, new = templates.store.get(name, a), templates.store.get(name, b)
        return {"name": name, "a": a, "b": b, "changes": diff_specs(old.spec, new.spec)}

    @router.post(
        "/templates",
        status_code=201,
        summary="Apply a template (YAML or JSON text): a new version if it changed",
        response_model=AppliedTemplate,
    )
    def apply_template(body: TemplateIn, who: Principal = Depends(admin)) -> Any:
        version, created = templates.apply(body.text, by=who.member.username)
        return {**_version_json(version), "created": created}

    @router.post(
        "/templates/{ref}/cases",
        status_code=201,
        summary="Open a case from a template",
        response_model=OpenedFromTemplate,
    )
    def open_from_template(ref: str, body: FromTemplateIn, who: Principal = Depends(writer)) -> Any:
        name, version = _ref(ref)
        opened = templates.open_case(
            Actor(member=who.member.display_name, via=who.via),
            name,
            version=body.version or version,
            title=body.title,
            party_id=services.party_id,
            party_name=services.node.name,
            party_url=services.node.url,
            customer=body.customer.model_dump() if body.customer else None,
            member=who.member,
        )
        return {
            "case": opened.case_id,
            "template": opened.template,
            "version": opened.version,
            "events": opened.event_ids,
            "owner": opened.owner,
        }

    return router


def _ref(ref: str) -> tuple[str, int | None]:
    try:
        return parse_ref(ref)
    except TemplateError as exc:
        raise Invalid(str(exc), field="template") from exc


def _where(
    outcomes: Outcomes,
    start: date | None,
    end: date | None,
    template: str | None,
    team: str | None,
    channel: str | None,
    member: str | None,
) -> Filter:
    return filter_from(
        outcomes,
        start=start,
        end=end,
        template=template,
        team=team,
        channel=channel,
        member=member,
    )


class Scope:
    """The filter parameters every metrics endpoint and page takes."""

    def __init__(
        self,
        since: date | None = Query(None, description="First day of opening (YYYY-MM-DD)."),
        until: date | None = Query(None, description="Last day of opening, included."),
        template: str | None = Query(None, max_length=80, description="name or name@vN"),
        team: str | None = Query(None, max_length=64),
        channel: str | None = Query(None, max_length=20),
        member: str | None = Query(None, max_length=64),
    ) -> None:
        self.start, self.end = since, until
        self.template, self.team, self.channel, self.member = template, team, channel, member

    def filter(self, outcomes: Outcomes) -> Filter:
        return _where(
            outcomes,
            self.start,
            self.end,
            self.template or None,
            self.team or None,
            self.channel or None,
            self.member or None,
        )

    def query(self) -> dict[str, str]:
        out = {
            "since": self.start.isoformat() if self.start else "",
            "until": self.end.isoformat() if self.end else "",
            "template": self.template or "",
            "team": self.team or "",
            "channel": self.channel or "",
            "member": self.member or "",
        }
        return {k: v for k, v in out.items() if v}


def _board_json(board: Dashboard) -> dict[str, Any]:
    return {
        "cases": board.cases,
        "open": board.open,
        "backlog": board.backlog,
        "ageing": board.ageing,
        "at": board.at.isoformat(),
        "metrics": {
            key: {"label": METRICS[key].label, **figure_json(fig)}
            for key, fig in board.summary.items()
        },
        "targets": [
            {
                **s.target.json(),
                "current": figure_json(s.current),
                "met": s.met,
                "series": [
                    {"bucket": start.date().isoformat(), **figure_json(fig)}
                    for start, fig in s.series
                ],
            }
            for s in board.targets
        ],
    }


def _metric_routes(outcomes: Outcomes) -> APIRouter:
    router = APIRouter()
    reader, writer = require("cases:read"), require("cases:write")
    admin = require("workflows:admin")

    @router.get(
        "/metrics", summary="Every metric over the cases opened in a period", response_model=Board
    )
    def metrics(
        scope: Scope = Depends(),
        bucket: str = Query("week", pattern="^(day|week|month)$"),
        _who: Principal = Depends(reader),
    ) -> Any:
        return _board_json(outcomes.dashboard(scope.filter(outcomes), bucket=bucket))

    @router.get(
        "/metrics/export.csv",
        summary="The facts of each case, as CSV",
        response_class=PlainTextResponse,
    )
    def export(scope: Scope = Depends(), _who: Principal = Depends(reader)) -> Response:
        return Response(
            outcomes.export_csv(scope.filter(outcomes)),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="accord-metrics.csv"'},
        )

    @router.get(
        "/metrics/series.csv",
        summary="Each metric per day, week or month, as CSV",
        response_class=PlainTextResponse,
    )
    def series_csv(
        scope: Scope = Depends(),
        bucket: str = Query("week", pattern="^(day|week|month)$"),
        _who: Principal = Depends(reader),
    ) -> Response:
        board = outcomes.dashboard(scope.filter(outcomes), bucket=bucket)
        return Response(
            outcomes.series_csv(board),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="accord-series.csv"'},
        )

    @router.get(
        "/metrics/cases/{case_id}",
        summary="The outcome facts of one case",
        response_model=CaseFactsOut,
    )
    def case_facts(case_id: str, _who: Principal = Depends(reader)) -> Any:
        facts = outcomes.store.facts(case_id)
        out = facts.row()
        for k, v in out.items():
            if isinstance(v, datetime):
                out[k] = v.isoformat()
        return {**out, "marks": outcomes.store.marks(case_id)}

    @router.post(
        "/cases/{case_id}/marks",
        status_code=201,
        summary="Mark that the customer was asked to identify again or repeat (node-private)",
        response_model=MarkMade,
    )
    def mark(case_id: str, body: MarkIn, who: Principal = Depends(writer)) -> Any:
        mark_id = outcomes.store.mark(
            case_id,
            body.kind,
            member_id=who.member.id,
            note=body.note,
            value=body.value,
            party=body.party,
        )
        return {"id": mark_id, "case": case_id, "kind": body.kind}

    @router.get(
        "/targets",
        summary="Targets, each with its owner and where it stands",
        response_model=list[TargetStanding],
    )
    def list_targets(scope: Scope = Depends(), _who: Principal = Depends(reader)) -> Any:
        return _board_json(outcomes.dashboard(scope.filter(outcomes)))["targets"]

    @router.post("/targets", status_code=201, summary="Add a target", response_model=TargetOut)
    def add_target(body: TargetIn, _who: Principal = Depends(admin)) -> Any:
        return outcomes.targets.add(**body.model_dump()).json()

    @router.put(
        "/targets/{target_id}/owner", summary="Give a target its owner", response_model=TargetOut
    )
    def own_target(target_id: TargetId, body: OwnerIn, _who: Principal = Depends(admin)) -> Any:
        return outcomes.targets.set_owner(target_id, body.owner).json()

    @router.delete("/targets/{target_id}", status_code=204, summary="Remove a target")
    def remove_target(target_id: TargetId, _who: Principal = Depends(admin)) -> Response:
        outcomes.targets.remove(target_id)
        return Response(status_code=204)

    @router.get(
        "/compare",
        summary="Two groups of cases side by side on every metric, with significance tests",
        response_model=ComparisonOut,
    )
    def compare(
        a: str = Query(max_length=120, examples=["template:billing@v1"]),
        b: str = Query(max_length=120, examples=["template:billing@v2"]),
        scope: Scope = Depends(),
        _who: Principal = Depends(reader),
    ) -> Any:
        base = scope.filter(outcomes)
        (la, fa), (lb, fb) = outcomes.group(a, base), outcomes.group(b, base)
        return comparison_json(la, lb, outcomes.compare(fa, fb))

    return router
