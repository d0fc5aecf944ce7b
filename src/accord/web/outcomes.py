"""Outcomes (``/dashboard``) and Compare (``/compare``): pages of the web app like the
others — the member's session (a logged-out browser goes to the login page), the base
layout and its stylesheet, the pages' security headers. Their JSON is the API's
(``/api/v1/metrics``, ``/api/v1/compare``, ``accord.api.outcomes``).

Compare picks each group from lists — the node's templates and their versions, teams,
channels, members — or a period from two dates, instead of typed ``kind:value`` syntax
(which its address still carries, so links keep working); a group naming a template,
team or member this node does not have is an error, not "not enough data".
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from accord.auth.scopes import CASES_READ
from accord.outcomes import charts
from accord.outcomes.figures import comparison_json, filter_from
from accord.outcomes.measures import METRICS
from accord.service.errors import ServiceError
from accord.templates.store import TemplateStore
from accord.web.render import render
from accord.web.session import Viewer, need, viewer

if TYPE_CHECKING:
    from accord.outcomes.figures import Outcomes
    from accord.wiring import Services

BUCKETS = ("day", "week", "month")
KINDS = {
    "template": "Template",
    "team": "Team",
    "channel": "Channel",
    "member": "Member",
    "period": "Period",
}


def outcome_pages(services: Services, outcomes: Outcomes) -> APIRouter:
    router = APIRouter()
    templates = TemplateStore(services.node.db, now=services.negotiation.now)

    def choices() -> dict[str, list[tuple[str, str]]]:
        """The groups Compare offers, as (value, label) per kind."""
        made: dict[str, list[tuple[str, str]]] = {"template": [], "team": [], "channel": []}
        for t in templates.list():
            made["template"].append((f"template:{t['name']}", f"{t['title']} — every version"))
            made["template"] += [
                (f"template:{t['name']}@v{v['version']}", f"{t['title']} v{v['version']}")
                for v in t["versions"]
            ]
        made["team"] = [(f"team:{t['name']}", t["name"]) for t in services.ownership.list_teams()]
        made["channel"] = [
            (f"channel:{c}", str(c)) for c in outcomes.store.dimensions()["channels"] if c
        ]
        made["member"] = [
            (f"member:{m.username}", m.display_name)
            for m in services.members.list(include_disabled=False)
        ]
        return made

    @router.get("/dashboard")
    def dashboard(
        request: Request,
        since: date | None = Query(None),
        until: date | None = Query(None),
        template: str = Query("", max_length=80),
        team: str = Query("", max_length=64),
        channel: str = Query("", max_length=20),
        member: str = Query("", max_length=64),
        bucket: str = Query("week", pattern="^(day|week|month)$"),
        who: Viewer = Depends(viewer),
    ) -> Response:
        need(who, CASES_READ)
        query = {
            "since": since.isoformat() if since else "",
            "until": until.isoformat() if until else "",
            "template": template,
            "team": team,
            "channel": channel,
            "member": member,
        }
        query = {k: v for k, v in query.items() if v}
        context: dict[str, Any] = {
            "who": who,
            "page": "dashboard",
            "query": query,
            "bucket": bucket,
            "buckets": BUCKETS,
            "dims": outcomes.store.dimensions(),
            "teams": [t["name"] for t in services.ownership.list_teams()],
            "members": services.members.list(include_disabled=False),
        }
        try:
            where = filter_from(
                outcomes,
                start=since,
                end=until,
                template=template or None,
                team=team or None,
                channel=channel or None,
                member=member or None,
            )
        except ServiceError as exc:
            return render("outcomes.html", status=exc.status, error=exc.message, **context)
        board = outcomes.dashboard(where, bucket=bucket)
        panels = [
            {
                "status": s,
                "chart": charts.line_chart(
                    f"{s.target.name}: {s.target.describe()}",
                    s.target.metric,
                    s.series,
                    target=s.target.threshold,
                    target_ok_below=s.target.op == "<=",
                ),
            }
            for s in board.targets
        ]
        others = [
            {
                "metric": METRICS[key],
                "figure": board.summary[key],
                "chart": charts.line_chart(METRICS[key].label, key, board.series[key]),
            }
            for key in METRICS
        ]
        return render(
            "outcomes.html",
            board=board,
            panels=panels,
            others=others,
            ageing=charts.bar_chart("Open cases by age", board.ageing),
            error=None,
            **context,
        )

    @router.get("/compare")
    def compare(
        request: Request,
        a: str = Query("", max_length=120),
        b: str = Query("", max_length=120),
        a_from: date | None = Query(None),
        a_to: date | None = Query(None),
        b_from: date | None = Query(None),
        b_to: date | None = Query(None),
        who: Viewer = Depends(viewer),
    ) -> Response:
        need(who, CASES_READ)
        # a period chosen with the two dates wins over the list
        if a_from and a_to:
            a = f"period:{a_from.isoformat()}..{a_to.isoformat()}"
        if b_from and b_to:
            b = f"period:{b_from.isoformat()}..{b_to.isoformat()}"
        result, error, status = None, None, 200
        if a or b:
            if not (a and b):
                error, status = "Choose two groups to compare, A and B.", 400
            else:
                try:
                    (la, fa), (lb, fb) = outcomes.group(a), outcomes.group(b)
                    result = comparison_json(la, lb, outcomes.compare(fa, fb))
                except ServiceError as exc:
                    error, status = exc.message, exc.status
        picked = {
            side: {
                "value": value,
                "from": value[7:].split("..")[0] if value.startswith("period:") else "",
                "to": value[7:].split("..")[-1] if value.startswith("period:") else "",
            }
            for side, value in (("a", a), ("b", b))
        }
        return render(
            "compare.html",
            status=status,
            who=who,
            page="compare",
            picked=picked,
            choices=choices(),
            kinds=KINDS,
            result=result,
            error=error,
        )

    return router
